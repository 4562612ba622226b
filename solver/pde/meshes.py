"""Parameter-space meshes of every domain type, reference meshes and mesh files.

``build_mesh(comm, domain, cells)`` makes a structured mesh of any domain:

==========  ==========================================================  ======================
domain      ``cells``                                                   cells of the mesh
==========  ==========================================================  ======================
Box         one count per axis (an int is used for every axis)          intervals/quads/hexes
Disc        n, the number of rings (an int or ``[n]``)                  6 n^2 triangles
Circle      n, the number of edges of the unit polygon                  n intervals in R^2
Cylinder    (n_c, n_z): cells along c and around the angle              n_c n_z quads in R^3
Sphere(3)   L, the icosphere subdivision level (an int or ``[L]``)      20 * 4^L triangles
==========  ==========================================================  ======================

The disc mesh has ring j = 1..n at radius j R / n with 6 j vertices on the circle
(a polygon inscribed in the disc), the circle and cylinder meshes put their
vertices on the unit circle at angles -pi + 2 pi i / n, and the icosphere
subdivides an icosahedron L times, projecting new vertices onto the unit sphere.
Curved domains are thus approximated by inscribed polygons/polyhedra, whose
measure converges at second order (2 pi for the circle, 4 pi for the sphere).

``load_mesh(comm, domain, name, level)`` reads a reference mesh shipped in
``meshes/`` (written by ``meshes/make_meshes.py``; see ``meshes/README.md``) and
maps it affinely onto the domain; ``read_mesh(comm, path, domain)`` reads any
XDMF file (or a gmsh ``.msh`` file when the ``gmsh`` module is installed).

Every mesh is ghosted by shared facets, so interior-facet integrals work under MPI.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import basix.ufl
import numpy as np
import ufl
from dolfinx import fem, mesh
from dolfinx.io import XDMFFile
from mpi4py import MPI

from solver.mesh_files import (
    MESH_DIR,
    inspect_mesh_file,
    reference_mesh_path,
)
from solver.model.domain import Box, Circle, Cylinder, Disc, Domain, Sphere


def ghosted_partitioner():
    """Cell partitioner with ghosts on shared facets (interior-facet integrals in parallel)."""
    return mesh.create_cell_partitioner(mesh.GhostMode.shared_facet, 2)


# -- geometry (numpy only: points and cells on one process) --------------------------


def interval_geometry(n: int) -> tuple[np.ndarray, np.ndarray]:
    """[0, 1] in n equal cells: points (n + 1, 1), cells (n, 2)."""
    x = np.linspace(0.0, 1.0, n + 1)[:, None]
    i = np.arange(n)
    return x, np.column_stack([i, i + 1])


def square_triangles(n: int) -> tuple[np.ndarray, np.ndarray]:
    """[0, 1]^2 in n x n squares, each cut in 2 triangles, diagonals alternating like a
    chequerboard (a mesh with the square's symmetries): (n + 1)^2 points, 2 n^2 cells."""
    s = np.linspace(0.0, 1.0, n + 1)
    x = np.array([[a, b] for b in s for a in s])
    tris = []
    for j, i in itertools.product(range(n), range(n)):
        v00, v10 = j * (n + 1) + i, j * (n + 1) + i + 1
        v01, v11 = v00 + n + 1, v10 + n + 1
        if (i + j) % 2 == 0:
            tris += [(v00, v10, v11), (v00, v11, v01)]
        else:
            tris += [(v00, v10, v01), (v10, v11, v01)]
    return x, np.array(tris, dtype=np.int64)


def cube_tetrahedra(n: int) -> tuple[np.ndarray, np.ndarray]:
    """[0, 1]^3 in n^3 cubes, each cut in 6 tetrahedra along its main diagonal (the
    conforming Kuhn triangulation): (n + 1)^3 points, 6 n^3 cells."""
    s = np.linspace(0.0, 1.0, n + 1)
    x = np.array([[a, b, c] for c in s for b in s for a in s])

    def vid(i: int, j: int, k: int) -> int:
        return (k * (n + 1) + j) * (n + 1) + i

    tets = []
    for k, j, i in itertools.product(range(n), range(n), range(n)):
        for perm in itertools.permutations(range(3)):
            corner = [i, j, k]
            path = [vid(*corner)]
            for axis in perm:
                corner[axis] += 1
                path.append(vid(*corner))
            tets.append(path)
    return x, np.array(tets, dtype=np.int64)


def disc_geometry(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit disc: centre plus rings j = 1..n at radius j/n with 6 j vertices each;
    1 + 3 n (n + 1) points, 6 n^2 triangles of nearly equal size."""
    pts = [np.zeros((1, 2))]
    start = [0]  # index of the first vertex of ring j
    for j in range(1, n + 1):
        a = 2 * np.pi * np.arange(6 * j) / (6 * j)
        pts.append(j / n * np.column_stack([np.cos(a), np.sin(a)]))
        start.append(start[-1] + (1 if j == 1 else 6 * (j - 1)))
    tris = []
    for j in range(1, n + 1):
        inner_n, outer_n = max(6 * (j - 1), 1), 6 * j

        def inner(m: int, j: int = j, inner_n: int = inner_n) -> int:
            return start[j - 1] + m % inner_n

        def outer(m: int, j: int = j, outer_n: int = outer_n) -> int:
            return start[j] + m % outer_n

        for sector in range(6):
            o, i0 = sector * j, sector * (j - 1)
            for m in range(j):
                tris.append((outer(o + m), outer(o + m + 1), inner(i0 + m)))
            for m in range(j - 1):
                tris.append((inner(i0 + m), outer(o + m + 1), inner(i0 + m + 1)))
    return np.vstack(pts), np.array(tris, dtype=np.int64)


def circle_geometry(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit circle as an n-gon in R^2, vertices at angles -pi + 2 pi i / n."""
    a = -np.pi + 2 * np.pi * np.arange(n) / n
    i = np.arange(n)
    return np.column_stack([np.cos(a), np.sin(a)]), np.column_stack([i, (i + 1) % n])


def cylinder_geometry(n_c: int, n_z: int, triangles: bool = False
                      ) -> tuple[np.ndarray, np.ndarray]:
    """c in [0, 1] times the unit circle, X = (c, cos z, sin z) in R^3, vertices at
    c = i / n_c and z = -pi + 2 pi j / n_z: n_c n_z quadrilaterals (DOLFINx vertex
    order) or, with ``triangles``, 2 n_c n_z triangles."""
    c = np.linspace(0.0, 1.0, n_c + 1)
    z = -np.pi + 2 * np.pi * np.arange(n_z) / n_z
    cc, zz = np.meshgrid(c, z, indexing="ij")  # vertex (i, j) -> i * n_z + j
    x = np.column_stack([cc.ravel(), np.cos(zz).ravel(), np.sin(zz).ravel()])
    i, j = (a.ravel() for a in np.meshgrid(np.arange(n_c), np.arange(n_z), indexing="ij"))
    v00, v10 = i * n_z + j, (i + 1) * n_z + j
    v01, v11 = i * n_z + (j + 1) % n_z, (i + 1) * n_z + (j + 1) % n_z
    if not triangles:
        return x, np.column_stack([v00, v10, v01, v11])
    cells = np.vstack([np.column_stack([v00, v10, v11]), np.column_stack([v00, v11, v01])])
    return x, cells


def icosphere_geometry(level: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere: an icosahedron subdivided ``level`` times (each triangle into 4,
    new vertices projected onto the sphere): 10 * 4^level + 2 points, 20 * 4^level cells."""
    from scipy.spatial import ConvexHull

    p = (1 + np.sqrt(5)) / 2
    x = np.array([[s1, s2 * p, 0] for s1 in (-1, 1) for s2 in (-1, 1)], dtype=float)
    x = np.vstack([x, np.roll(x, 1, axis=1), np.roll(x, 2, axis=1)])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    tris = ConvexHull(x).simplices.astype(np.int64)
    for _ in range(level):
        edges = np.sort(np.vstack([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
        unique, inverse = np.unique(edges, axis=0, return_inverse=True)
        mid = x[unique[:, 0]] + x[unique[:, 1]]
        x = np.vstack([x, mid / np.linalg.norm(mid, axis=1, keepdims=True)])
        m = len(x) - len(unique) + inverse.reshape(3, -1)  # midpoints of edges 01, 12, 20
        a, b, c = tris.T
        tris = np.vstack([
            np.column_stack([a, m[0], m[2]]), np.column_stack([m[0], b, m[1]]),
            np.column_stack([m[2], m[1], c]), np.column_stack([m[0], m[1], m[2]]),
        ])
    return x, tris


# -- DOLFINx meshes ------------------------------------------------------------------


def create_ghosted_mesh(comm: MPI.Comm, cell_type: str, points: np.ndarray,
                        cells: np.ndarray) -> mesh.Mesh:
    """A DOLFINx mesh of P1 cells from points/cells given on rank 0 (other ranks' inputs
    are ignored), distributed over ``comm`` and ghosted by shared facets."""
    gdim = points.shape[1]
    element = basix.ufl.element("Lagrange", cell_type, 1, shape=(gdim,))
    if comm.rank != 0:
        points = np.empty((0, gdim))
        cells = np.empty((0, cells.shape[1]), dtype=np.int64)
    return mesh.create_mesh(comm, np.ascontiguousarray(cells, dtype=np.int64), element,
                            np.ascontiguousarray(points, dtype=float),
                            partitioner=ghosted_partitioner())


def box_mesh(comm: MPI.Comm, box: Box, cells: Sequence[int]) -> mesh.Mesh:
    """Interval, rectangle (quadrilaterals) or box (hexahedra) mesh of the domain.

    Ghosted by shared facets so interior-facet integrals work in parallel.
    """
    cells = [int(c) for c in cells]
    if len(cells) != box.dim:
        raise ValueError(
            f"pde.cells: the domain has dimension {box.dim}, got {len(cells)} cell counts {cells}"
        )
    if any(c < 1 for c in cells):
        raise ValueError(f"pde.cells: counts must be >= 1, got {cells}")
    lo, hi = np.array(box.lower), np.array(box.upper)
    ghost = mesh.GhostMode.shared_facet
    if box.dim == 1:
        return mesh.create_interval(comm, cells[0], [lo[0], hi[0]], ghost_mode=ghost)
    if box.dim == 2:
        return mesh.create_rectangle(
            comm, [lo, hi], cells, mesh.CellType.quadrilateral, ghost_mode=ghost
        )
    if box.dim == 3:
        return mesh.create_box(comm, [lo, hi], cells, mesh.CellType.hexahedron, ghost_mode=ghost)
    raise ValueError(f"domain: meshes exist for dimensions 1-3, not {box.dim}")


def _counts(cells, n: int, what: str, minimum: int) -> list[int]:
    """``cells`` as n integers >= minimum (an int is repeated n times)."""
    raw = [cells] if np.isscalar(cells) else list(cells)
    if len(raw) == 1 and n > 1:
        raw = raw * n
    if len(raw) != n or any(isinstance(c, bool) or int(c) != c for c in raw):
        raise ValueError(f"pde.cells: the domain needs {what}, got {cells!r}")
    counts = [int(c) for c in raw]
    if any(c < minimum for c in counts):
        raise ValueError(f"pde.cells: the domain needs {what} (each >= {minimum}), got {cells!r}")
    return counts


def build_mesh(comm: MPI.Comm, domain: Domain, cells) -> mesh.Mesh:
    """A structured mesh of the domain (conventions for ``cells`` in the module docstring)."""
    if isinstance(domain, Box):
        return box_mesh(comm, domain, _counts(cells, domain.param_dim,
                                              f"{domain.param_dim} cell counts", 1))
    if isinstance(domain, Disc):
        (n,) = _counts(cells, 1, "one number of rings n (6 n^2 triangles)", 1)
        x, c = disc_geometry(n)
        x = np.asarray(domain.center) + domain.radius * x
        return create_ghosted_mesh(comm, "triangle", x, c)
    if isinstance(domain, Circle):
        (n,) = _counts(cells, 1, "one number of edges n", 3)
        return create_ghosted_mesh(comm, "interval", *circle_geometry(n))
    if isinstance(domain, Cylinder):
        n_c, n_z = _counts(cells, 2, "two counts (n_c along c, n_z around the angle)", 1)
        if n_z < 3:
            raise ValueError(f"pde.cells: the cylinder needs n_z >= 3 cells around, got {cells}")
        x, c = cylinder_geometry(n_c, n_z)
        x[:, 0] = domain.lower + (domain.upper - domain.lower) * x[:, 0]
        return create_ghosted_mesh(comm, "quadrilateral", x, c)
    if isinstance(domain, Sphere):
        _require_sphere_mesh(domain)
        (level,) = _counts(cells, 1, "one icosphere subdivision level L (20 * 4^L cells)", 0)
        if level > 8:
            raise ValueError(f"pde.cells: icosphere level {level} is too fine (at most 8, "
                             f"{20 * 4**8} cells)")
        return create_ghosted_mesh(comm, "triangle", *icosphere_geometry(level))
    raise ValueError(f"pde.mesh: no mesh builder for the {domain.describe()}")


def _require_sphere_mesh(domain: Sphere) -> None:
    if domain.ambient_dim != 3:
        raise ValueError(
            f"pde.mesh: the {domain.describe()} has no mesh (only S^2 in R^3 is meshed); "
            f"run particles only, or use Sphere(ambient_dim=3)"
        )


def check_mesh(msh: mesh.Mesh, domain: Domain, field: str = "pde.mesh") -> mesh.Mesh:
    """The mesh, if it is a mesh of the domain; else ValueError naming ``field``.

    Checked: the topological and geometric dimensions; every vertex on the domain's
    surface (embedded domains: |X - to_mesh(from_mesh(X))| <= h^2/2, the most an inscribed
    polygon with edges h deviates from a surface of curvature 1) and inside it (to 1e-9 of
    its extent); the total measure against the domain's (boxes: to 1e-9; curved domains:
    to (h/R)^2, R the radius of curvature, above the O(h^2) deficit of inscribed polygons).
    Collective."""
    tdim, gdim = msh.topology.dim, msh.geometry.dim
    if tdim != domain.manifold_dim or gdim != domain.embedding_dim:
        raise ValueError(
            f"{field}: the mesh has topological dimension {tdim} and geometric dimension "
            f"{gdim}, but the {domain.describe()} needs topological dimension "
            f"{domain.manifold_dim} and geometric dimension {domain.embedding_dim}"
        )
    comm = msh.comm
    X = msh.geometry.x[:, :gdim]
    nodes = X[msh.geometry.dofmaps[0]]
    diameters = np.linalg.norm(nodes[:, :, None, :] - nodes[:, None, :, :], axis=-1)
    h = comm.allreduce(float(diameters.max(initial=0.0)), MPI.MAX)
    theta = domain.from_mesh(X)
    off = comm.allreduce(float(np.abs(X - domain.to_mesh(theta)).max(initial=0.0)), MPI.MAX)
    if off > 0.5 * h**2 + 1e-9:
        raise ValueError(f"{field}: the mesh's vertices are up to {off:.3g} off the surface of "
                         f"the {domain.describe()} (cells of size {h:.3g}); is it a mesh of "
                         f"another domain?")
    outside = comm.allreduce(_distance_outside(domain, theta), MPI.MAX)
    if outside > 0:
        raise ValueError(f"{field}: the mesh reaches {outside:.3g} beyond the "
                         f"{domain.describe()}; mesh exactly the domain")
    one = fem.Constant(msh, 1.0)
    area = comm.allreduce(fem.assemble_scalar(fem.form(one * ufl.dx(domain=msh))), MPI.SUM)
    radius = _curvature_radius(domain)
    tolerance = 1e-9 if radius is None else (h / radius) ** 2
    if abs(area / domain.measure - 1) > tolerance:
        raise ValueError(f"{field}: the mesh has measure {area:.6g} but the "
                         f"{domain.describe()} has {domain.measure:.6g} (allowed relative "
                         f"difference {tolerance:.2g}); mesh all of the domain")
    return msh


def _distance_outside(domain: Domain, theta: np.ndarray) -> float:
    """How far the points reach beyond the domain's bounds, beyond 1e-9 of its extent."""
    if isinstance(domain, Disc):
        r = np.linalg.norm(theta - np.asarray(domain.center), axis=1)
        return float(np.maximum(r - domain.radius * (1 + 1e-9), 0.0).max(initial=0.0))
    if isinstance(domain, Box | Cylinder):
        lower = np.atleast_1d(np.asarray(domain.lower, dtype=float))
        upper = np.atleast_1d(np.asarray(domain.upper, dtype=float))
        slack = 1e-9 * (upper - lower)
        c = theta[:, : len(lower)]
        beyond = np.maximum(np.maximum(lower - slack - c, c - upper - slack), 0.0)
        return float(beyond.max(initial=0.0))
    return 0.0  # circle and sphere: on the surface is inside


def _curvature_radius(domain: Domain) -> float | None:
    """The radius of curvature of the domain's curved boundary or surface (None: flat)."""
    if isinstance(domain, Disc):
        return domain.radius
    return None if isinstance(domain, Box) else 1.0


def fit_geometry(msh: mesh.Mesh, domain: Domain) -> mesh.Mesh:
    """Drop trailing coordinates that are zero everywhere when the mesh's geometric
    dimension exceeds the domain's (XDMF stores a 1-D mesh as XY, many tools store
    flat 2-D meshes as XYZ): the mesh is rebuilt (collectively) from rank 0."""
    gdim, want = msh.geometry.dim, domain.embedding_dim
    if gdim <= want or msh.topology.dim != domain.manifold_dim:
        return msh
    comm = msh.comm
    extra = float(np.max(np.abs(msh.geometry.x[:, want:gdim]), initial=0.0))
    if comm.allreduce(extra, MPI.MAX) > 0 or comm.allreduce(
            msh.geometry.cmaps[0].degree, MPI.MAX) != 1:
        return msh
    owned = msh.topology.index_map(msh.topology.dim).size_local
    nodes = np.asarray(msh.geometry.input_global_indices, dtype=np.int64)
    cells = nodes[msh.geometry.dofmaps[0][:owned]]
    gathered = comm.gather((cells, nodes, msh.geometry.x[:, :want].copy()), root=0)
    if comm.rank == 0:
        cells = np.vstack([c for c, _, _ in gathered])
        ids, first = np.unique(np.concatenate([n for _, n, _ in gathered]), return_index=True)
        points = np.vstack([x for _, _, x in gathered])[first]
        cells = np.searchsorted(ids, cells)
    else:
        points, cells = np.empty((0, want)), np.empty((0, cells.shape[1]), dtype=np.int64)
    return create_ghosted_mesh(comm, mesh.to_string(msh.topology.cell_type), points, cells)


def map_reference(msh: mesh.Mesh, domain: Domain) -> None:
    """Map a reference mesh (unit interval/square/cube, unit disc, c in [0, 1] on the
    cylinder, unit circle and sphere) affinely onto the domain, in place."""
    x = msh.geometry.x
    if isinstance(domain, Box):
        k = domain.param_dim
        lo, hi = np.asarray(domain.lower), np.asarray(domain.upper)
        x[:, :k] = lo + (hi - lo) * x[:, :k]
    elif isinstance(domain, Disc):
        x[:, :2] = np.asarray(domain.center) + domain.radius * x[:, :2]
    elif isinstance(domain, Cylinder):
        x[:, 0] = domain.lower + (domain.upper - domain.lower) * x[:, 0]


def load_mesh(comm: MPI.Comm, domain: Domain, name: str, level: int,
              directory: Path | str = MESH_DIR) -> mesh.Mesh:
    """Reference mesh ``name`` at refinement ``level`` from ``directory``, mapped onto the
    domain (see ``meshes/README.md`` for the meshes and levels)."""
    path = reference_mesh_path(domain, name, level, directory)
    with XDMFFile(comm, str(path), "r") as f:
        msh = f.read_mesh(ghost_mode=mesh.GhostMode.shared_facet, name="mesh")
    msh = fit_geometry(msh, domain)
    map_reference(msh, domain)
    return check_mesh(msh, domain)


def _xdmf_grid_name(path: Path) -> str:
    """Name of the first grid with a topology in an XDMF file ("mesh" for DOLFINx files)."""
    for grid in ET.parse(path).getroot().iter("Grid"):
        if grid.find("Topology") is not None and grid.get("Name"):
            return grid.get("Name")
    raise ValueError(f"pde.mesh: {path} has no mesh (no XDMF Grid with a Topology)")


def read_mesh(comm: MPI.Comm, path: Path | str, domain: Domain) -> mesh.Mesh:
    """A mesh from an XDMF file, or a gmsh ``.msh`` file (needs the ``gmsh`` module),
    ghosted by shared facets and checked against the domain; coordinates as in the file."""
    path = Path(path)
    inspect_mesh_file(path)
    if path.suffix.lower() == ".xdmf":
        name = _xdmf_grid_name(path)
        with XDMFFile(comm, str(path), "r") as f:
            msh = f.read_mesh(ghost_mode=mesh.GhostMode.shared_facet, name=name)
    else:
        try:
            import gmsh  # noqa: F401
        except ImportError as err:
            raise ValueError(
                f"pde.mesh: reading the gmsh file {path} needs the gmsh Python module: "
                f"pip install gmsh (or write the mesh as XDMF)"
            ) from err
        from dolfinx.io import gmsh as gmshio

        data = gmshio.read_from_msh(str(path), comm, rank=0, gdim=domain.embedding_dim,
                                    partitioner=ghosted_partitioner())
        msh = data.mesh
    return check_mesh(fit_geometry(msh, domain), domain, "pde.mesh_file")
