"""Write the reference meshes of this folder as XDMF (+ HDF5): ``python meshes/make_meshes.py``.

Each mesh is written as ``<name>_<level>.xdmf`` (grid name "mesh") on the reference
shape below; ``solver.pde.meshes.load_mesh`` maps it affinely onto a domain.

=========  ====================================  ========================  =============
name       reference shape                       level L                   cells
=========  ====================================  ========================  =============
interval   [0, 1]                                n = 8 * 2^L               n
rectangle  [0, 1]^2, triangles                   n = 8 * 2^L per side      2 n^2
box        [0, 1]^3, tetrahedra (Kuhn)           n = 4 * 2^L per side      6 n^3
disc       unit disc, 6 j vertices on ring j     n = 4 * 2^L rings         6 n^2
circle     unit circle, polygon in R^2           n = 16 * 2^L edges        n
cylinder   c in [0, 1], (c, cos z, sin z)        n = 8 * 2^L each way      2 n^2 triangles
sphere     unit icosphere in R^3                 subdivision level L       20 * 4^L
=========  ====================================  ========================  =============

Levels 0-3 are shipped (box: 0-2); ``--max-level`` writes more (finer files are
large: keep them out of the repository).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from solver.pde import meshes as m  # imports dolfinx_solver before dolfinx and MPI

HERE = Path(__file__).resolve().parent

#: name -> (builder of (points, cells) for a level, DOLFINx cell type, shipped levels)
MESHES = {
    "interval": (lambda L: m.interval_geometry(8 * 2**L), "interval", 4),
    "rectangle": (lambda L: m.square_triangles(8 * 2**L), "triangle", 4),
    "box": (lambda L: m.cube_tetrahedra(4 * 2**L), "tetrahedron", 3),
    "disc": (lambda L: m.disc_geometry(4 * 2**L), "triangle", 4),
    "circle": (lambda L: m.circle_geometry(16 * 2**L), "interval", 4),
    "cylinder": (lambda L: m.cylinder_geometry(8 * 2**L, 8 * 2**L, triangles=True),
                 "triangle", 4),
    "sphere": (lambda L: m.icosphere_geometry(L), "triangle", 4),
}


def write(name: str, level: int, directory: Path = HERE) -> Path:
    """Write mesh ``name`` at ``level`` to ``directory``; returns the XDMF path."""
    from dolfinx.io import XDMFFile
    from mpi4py import MPI

    build, cell_type, _ = MESHES[name]
    points, cells = build(level)
    msh = m.create_ghosted_mesh(MPI.COMM_SELF, cell_type, points, cells)
    msh.name = "mesh"
    path = Path(directory) / f"{name}_{level}.xdmf"
    with XDMFFile(MPI.COMM_SELF, str(path), "w") as f:
        f.write_mesh(msh)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-level", type=int, default=None,
                        help="write levels 0..N of every mesh (default: the shipped levels)")
    parser.add_argument("--output", type=Path, default=HERE, help="folder (default: meshes/)")
    parser.add_argument("names", nargs="*", default=list(MESHES), help="meshes to write")
    args = parser.parse_args(argv)
    for name in args.names:
        if name not in MESHES:
            parser.error(f"unknown mesh {name!r}; choose from {', '.join(MESHES)}")
        shipped = MESHES[name][2]
        levels = range(shipped if args.max_level is None else args.max_level + 1)
        for level in levels:
            path = write(name, level, args.output)
            print(f"{path.name}: {path.stat().st_size + path.with_suffix('.h5').stat().st_size}"
                  " bytes")


if __name__ == "__main__":
    main()
