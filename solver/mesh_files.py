"""Mesh files checked before a parser sees them (numpy, h5py and XML only; no DOLFINx),
and where the reference meshes of ``meshes/`` are.

``inspect_mesh_file(path)`` raises ValueError naming ``pde.mesh_file`` for a file that
is missing, of an unknown format, not well-formed, truncated or inconsistent:

- XDMF: the XML parses; it has a Grid with a Topology and a Geometry whose DataItems are
  inline (``Format="XML"``) or in an HDF5 file that exists, opens, and holds a dataset of
  the declared dimensions; the topology's vertex indices lie within the geometry.
- gmsh ``.msh``: starts with ``$MeshFormat`` and holds complete ``$Nodes`` and
  ``$Elements`` sections (a truncated file lacks their end markers).

``meanfield check`` runs it too, so a broken file fails at once, not after the setup.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

FIELD = "pde.mesh_file"

#: Folder of the reference meshes written by ``meshes/make_meshes.py``.
MESH_DIR = Path(__file__).resolve().parents[1] / "meshes"

#: Reference mesh names and the cell type of their files.
REFERENCE_MESHES = {
    "interval": "interval",
    "rectangle": "triangle",
    "box": "tetrahedron",
    "disc": "triangle",
    "circle": "interval",
    "cylinder": "triangle",
    "sphere": "triangle",
}


def available_levels(name: str, directory: Path | str = MESH_DIR) -> list[int]:
    """Levels of the reference mesh ``name`` present in ``directory``."""
    levels = []
    for path in Path(directory).glob(f"{name}_*.xdmf"):
        suffix = path.stem[len(name) + 1:]
        if suffix.isdigit():
            levels.append(int(suffix))
    return sorted(levels)


def reference_mesh_path(domain, name: str, level: int, directory: Path | str = MESH_DIR
                        ) -> Path:
    """The file of reference mesh ``name`` at ``level``; ValueError naming pde.mesh when the
    mesh does not fit the domain or the level is not there."""
    fits = domain.mesh_names
    if name not in fits:
        known = "" if name in REFERENCE_MESHES else (
            f" (reference meshes: {', '.join(REFERENCE_MESHES)})")
        hint = (f"use {' or '.join(repr(f) for f in fits)}" if fits
                else "no reference mesh fits it")
        raise ValueError(f"pde.mesh: mesh {name!r}{known} does not fit the "
                         f"{domain.describe()}; {hint}")
    path = Path(directory) / f"{name}_{int(level)}.xdmf"
    if not path.is_file():
        levels = available_levels(name, directory)
        raise ValueError(
            f"pde.mesh: no level {level} of mesh {name!r} in {directory} (levels present: "
            f"{levels}); `python meshes/make_meshes.py --max-level N` writes finer ones"
        )
    return path


def inspect_mesh_file(path: Path | str) -> np.ndarray | None:
    """ValueError naming pde.mesh_file and what is wrong; else the vertex coordinates of an
    XDMF file (None for gmsh)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{FIELD}: no file {path}")
    suffix = path.suffix.lower()
    if suffix == ".xdmf":
        return _inspect_xdmf(path)
    if suffix == ".msh":
        _inspect_msh(path)
        return None
    raise ValueError(f"{FIELD}: {path} is neither XDMF (.xdmf) nor gmsh (.msh)")


def _inspect_xdmf(path: Path) -> None:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, UnicodeDecodeError) as err:
        raise ValueError(f"{FIELD}: {path} is not well-formed XDMF (XML): {err}") from None
    grid = next((g for g in root.iter("Grid")
                 if g.find("Topology") is not None and g.find("Geometry") is not None), None)
    if grid is None:
        raise ValueError(f"{FIELD}: {path} has no mesh (no XDMF Grid with a Topology and a "
                         f"Geometry)")
    topology = _data(path, grid.find("Topology"), "Topology")
    geometry = _data(path, grid.find("Geometry"), "Geometry")
    if topology.size and (topology.min() < 0 or topology.max() >= len(geometry)):
        raise ValueError(f"{FIELD}: {path}: the topology refers to vertices "
                         f"{int(topology.min())}..{int(topology.max())} but the geometry has "
                         f"{len(geometry)}")
    if not np.all(np.isfinite(geometry)):
        raise ValueError(f"{FIELD}: {path}: the geometry holds non-finite coordinates")
    return geometry.reshape(len(geometry), -1)


def _data(path: Path, element: ET.Element, what: str) -> np.ndarray:
    """The array of the first DataItem of a Topology or Geometry element."""
    item = element.find("DataItem")
    if item is None or not item.get("Dimensions"):
        raise ValueError(f"{FIELD}: {path}: the {what} has no DataItem with Dimensions")
    try:
        shape = tuple(int(v) for v in item.get("Dimensions").split())
    except ValueError:
        raise ValueError(f"{FIELD}: {path}: the {what} Dimensions "
                         f"{item.get('Dimensions')!r} are not integers") from None
    text = (item.text or "").strip()
    if item.get("Format", "XML").upper() == "XML":
        try:
            values = np.array(text.split(), dtype=float)
        except ValueError:
            raise ValueError(f"{FIELD}: {path}: the {what} holds values that are not "
                             f"numbers") from None
        if values.size != int(np.prod(shape)):
            raise ValueError(f"{FIELD}: {path}: the {what} declares {shape} but holds "
                             f"{values.size} values")
        return values.reshape(shape)
    return _hdf5_data(path, text, shape, what)


def _hdf5_data(path: Path, reference: str, shape: tuple[int, ...], what: str) -> np.ndarray:
    import h5py

    file_name, _, dataset = reference.partition(":")
    h5 = path.parent / file_name
    if not h5.is_file():
        raise ValueError(f"{FIELD}: {path}: the {what} is in {h5}, which does not exist")
    try:
        with h5py.File(h5, "r") as f:
            if dataset not in f:
                raise ValueError(f"{FIELD}: {path}: {h5} has no dataset {dataset!r} (the "
                                 f"{what})")
            data = f[dataset]
            if data.shape != shape:
                raise ValueError(f"{FIELD}: {path}: the {what} {dataset!r} in {h5} has shape "
                                 f"{data.shape}, the XDMF declares {shape}")
            return np.asarray(data[...])
    except OSError as err:  # not HDF5, truncated
        raise ValueError(f"{FIELD}: {path}: {h5} cannot be read as HDF5 ({err}); it is "
                         f"damaged or truncated: write it again") from None


def _inspect_msh(path: Path) -> None:
    data = path.read_bytes()
    if not data.lstrip().startswith(b"$MeshFormat"):
        raise ValueError(f"{FIELD}: {path} is not a gmsh file (no $MeshFormat header)")
    for section in (b"Nodes", b"Elements"):
        if b"$" + section not in data or b"$End" + section not in data:
            raise ValueError(f"{FIELD}: {path}: the ${section.decode()} section is missing "
                             f"or incomplete (a truncated file?)")
