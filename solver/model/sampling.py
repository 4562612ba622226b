"""Initial particles from a density given on a mesh: exact draws, cell by cell.

A piecewise-constant density rho_0 = sum_K rho_K 1_K on a mesh (the PDE's DG0 initial
state, or any density known only through its cell averages) is sampled exactly: a
cell K with probability m_K / sum m (multinomial counts, m_K = rho_K |K|), then a
point uniform in K, then theta = domain.from_mesh(point) (which projects points of a
polygonal/polyhedral mesh onto the curved domain: the circle, the cylinder, the sphere).

Cells are given by their vertex coordinates in mesh coordinates, (C, V, gdim), in
DOLFINx's reference order: intervals (2 vertices), triangles (3), tetrahedra (4),
quadrilaterals (4, vertex i + 2 j at reference corner (i, j)) and hexahedra (8, vertex
i + 2 j + 4 l at (i, j, l)). Uniform in a cell:
  - simplices: barycentric coordinates ~ Dirichlet(1, ..., 1) (exact);
  - quadrilaterals / hexahedra: uniform in the reference square/cube mapped
    bilinearly/trilinearly; exact for parallelograms/parallelepipeds (affine cells);
    for the others a rejection step with probability |J(xi)| / (a bound on |J|) makes
    it exactly uniform too (|J| the area/volume element of the map, also on surfaces).
"""

from __future__ import annotations

import numpy as np

from solver.model.domain import Domain

CELL_TYPES = {"interval": 1, "triangle": 2, "tetrahedron": 3, "quadrilateral": 2,
              "hexahedron": 3}
_VERTICES = {"interval": 2, "triangle": 3, "tetrahedron": 4, "quadrilateral": 4,
             "hexahedron": 8}


def cell_masses_from_values(values: np.ndarray, volumes: np.ndarray) -> np.ndarray:
    """Masses m_K = rho_K |K| of the piecewise-constant density with cell values rho_K.

    values, volumes: (C,). Raises ValueError naming ``initial`` for negative or
    non-finite values and for volumes that are not finite and > 0. Not normalised.
    """
    values = np.asarray(values, dtype=float)
    volumes = np.asarray(volumes, dtype=float)
    if values.ndim != 1 or values.shape != volumes.shape:
        raise ValueError(f"initial: cell values {values.shape} and cell volumes "
                         f"{volumes.shape} must be matching 1-D arrays")
    _check_nonnegative("cell values", values)
    bad = np.flatnonzero(~(np.isfinite(volumes) & (volumes > 0)))
    if bad.size:
        raise ValueError(f"initial: cell volumes must be finite and > 0; cell {bad[0]} has "
                         f"{volumes[bad[0]]}")
    return values * volumes


def _check_nonnegative(what: str, a: np.ndarray) -> None:
    bad = np.flatnonzero(~(np.isfinite(a) & (a >= 0)))
    if bad.size:
        raise ValueError(f"initial: {what} must be finite and >= 0; cell {bad[0]} has "
                         f"{a[bad[0]]} ({bad.size} such cells)")


def infer_cell_type(vertices_per_cell: int, manifold_dim: int) -> str:
    """The cell type from its vertex count (4 vertices: quadrilateral in 2-D, else tet)."""
    if vertices_per_cell == 4:
        return "quadrilateral" if manifold_dim == 2 else "tetrahedron"
    names = {2: "interval", 3: "triangle", 8: "hexahedron"}
    if vertices_per_cell not in names:
        raise ValueError(f"initial: cells with {vertices_per_cell} vertices are not supported "
                         f"(intervals 2, triangles 3, quadrilaterals/tetrahedra 4, "
                         f"hexahedra 8)")
    return names[vertices_per_cell]


# --- uniform points in cells ---------------------------------------------------------------


def _simplex_points(rng: np.random.Generator, verts: np.ndarray) -> np.ndarray:
    """Uniform points in simplices verts (N, t + 1, g): Dirichlet(1..1) barycentrics."""
    lam = rng.standard_exponential(verts.shape[:2])
    lam /= lam.sum(axis=1, keepdims=True)
    return np.einsum("nv,nvg->ng", lam, verts)


def _corner_bits(t: int) -> np.ndarray:
    """bits[a, j] = j-th bit of vertex a: the reference corner of vertex a, (2^t, t)."""
    return (np.arange(2**t)[:, None] >> np.arange(t)[None, :]) & 1


def _shape_factors(ref: np.ndarray) -> np.ndarray:
    """factor[n, a, j] = xi_j or 1 - xi_j as vertex a sits at 1 or 0 along axis j."""
    bits = _corner_bits(ref.shape[1])
    return np.where(bits[None, :, :] == 1, ref[:, None, :], 1.0 - ref[:, None, :])


def _tensor_map(ref: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Multilinear map of reference points ref (N, t) by cells verts (N, 2^t, g) -> (N, g)."""
    return np.einsum("na,nag->ng", _shape_factors(ref).prod(axis=2), verts)


def _tensor_jacobian(ref: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Jacobians dX/dxi (N, g, t) of the multilinear map at ref (N, t)."""
    t = ref.shape[1]
    factor = _shape_factors(ref)
    sign = np.where(_corner_bits(t) == 1, 1.0, -1.0)
    J = np.empty((len(ref), verts.shape[2], t))
    for j in range(t):
        dshape = np.broadcast_to(sign[None, :, j], factor.shape[:2]).copy()
        for i in range(t):
            if i != j:
                dshape *= factor[:, :, i]
        J[:, :, j] = np.einsum("na,nag->ng", dshape, verts)
    return J


def _volume_element(J: np.ndarray) -> np.ndarray:
    """sqrt(det(J^T J)), the area/volume element of J (N, g, t)."""
    return np.sqrt(np.abs(np.linalg.det(np.einsum("ngi,ngj->nij", J, J))))


def _affine(verts: np.ndarray) -> np.ndarray:
    """Whether each tensor cell (C, 2^t, g) is a parallelogram/parallelepiped.

    The multilinear map is affine iff its coefficients of xi_i xi_j (and xi_1 xi_2 xi_3)
    vanish: alternating sums of the vertices over each face of >= 2 reference axes.
    """
    t = int(np.log2(verts.shape[1]))
    bits = _corner_bits(t)
    size = np.ptp(verts, axis=1).max(axis=1)
    twist = np.zeros(len(verts))
    for subset in range(2**t):
        axes = [j for j in range(t) if (subset >> j) & 1]
        if len(axes) < 2:
            continue
        members = [a for a in range(2**t) if not (a & ~subset)]
        signs = np.array([(-1) ** (len(axes) - int(bits[a].sum())) for a in members])
        coeff = np.einsum("a,cag->cg", signs, verts[:, members])
        twist = np.maximum(twist, np.abs(coeff).max(axis=1))
    return twist <= 1e-12 * np.maximum(size, np.finfo(float).tiny)


def _volume_bound(verts: np.ndarray) -> np.ndarray:
    """An upper bound of the volume element over each tensor cell (C, 2^t, g).

    |J| <= prod_j |dX/dxi_j| (Hadamard), and |dX/dxi_j|, multilinear in the other
    coordinates, is largest at a corner of the reference cell.
    """
    C, nc = len(verts), verts.shape[1]
    t = int(np.log2(nc))
    corners = np.tile(_corner_bits(t).astype(float), (C, 1))
    J = _tensor_jacobian(corners, np.repeat(verts, nc, axis=0))
    column_max = np.linalg.norm(J, axis=1).reshape(C, nc, t).max(axis=1)
    return column_max.prod(axis=1) * (1 + 1e-12)


def _tensor_points(rng: np.random.Generator, verts: np.ndarray,
                   cells: np.ndarray) -> np.ndarray:
    """Uniform points in quadrilaterals/hexahedra: one in cell cells[i] for each i.

    Affine cells take xi uniform in the reference cell; the others accept xi with
    probability |J(xi)| / bound (repeated until accepted), which is exactly uniform.
    """
    t = int(np.log2(verts.shape[1]))
    affine = _affine(verts)
    bound = np.ones(len(verts))
    if not np.all(affine):
        bound[~affine] = _volume_bound(verts[~affine])
    out = np.empty((len(cells), verts.shape[2]))
    todo = np.arange(len(cells))
    while todo.size:
        ref = rng.uniform(size=(todo.size, t))
        accept = rng.uniform(size=todo.size)
        c = cells[todo]
        ok = affine[c].copy()
        curved = np.flatnonzero(~ok)
        if curved.size:
            J = _tensor_jacobian(ref[curved], verts[c[curved]])
            ok[curved] = accept[curved] * bound[c[curved]] <= _volume_element(J)
        out[todo[ok]] = _tensor_map(ref[ok], verts[c[ok]])
        todo = todo[~ok]
    return out


def uniform_in_cells(rng: np.random.Generator, verts: np.ndarray, cell_type: str,
                     cells: np.ndarray | None = None) -> np.ndarray:
    """Uniform points in the cells verts (C, V, g): one in cell cells[i] for each i
    (default: one in each cell), shape (len(cells), g)."""
    verts = np.asarray(verts, dtype=float)
    cells = np.arange(len(verts)) if cells is None else np.asarray(cells, dtype=np.intp)
    if cell_type == "interval":
        s = rng.uniform(size=(len(cells), 1))
        return verts[cells, 0] + s * (verts[cells, 1] - verts[cells, 0])
    if cell_type in ("triangle", "tetrahedron"):
        return _simplex_points(rng, verts[cells])
    return _tensor_points(rng, verts, cells)


# --- the sampler ---------------------------------------------------------------------------


def sample_cells(rng: np.random.Generator, n: int, vertices: np.ndarray, masses: np.ndarray,
                 domain: Domain, cell_type: str | None = None) -> np.ndarray:
    """n exact draws from the piecewise-constant density with cell masses ``masses``.

    vertices: (C, V, gdim) cell vertex coordinates in mesh coordinates (DOLFINx vertex
    order; gdim >= domain.embedding_dim, extra columns ignored by from_mesh); masses (C,)
    >= 0 with a positive sum (rho_K |K|, e.g. from ``cell_masses_from_values``).
    cell_type: inferred from V and domain.manifold_dim when None.
    Returns theta = domain.from_mesh(points), (n, k), in random order.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"initial: number of particles must be a positive integer, got {n!r}")
    verts = np.asarray(vertices, dtype=float)
    masses = np.asarray(masses, dtype=float)
    if verts.ndim != 3 or verts.shape[0] < 1:
        raise ValueError(f"initial: cell vertices must have shape (C, V, gdim), got "
                         f"{verts.shape}")
    C, V, gdim = verts.shape
    if masses.shape != (C,):
        raise ValueError(f"initial: cell masses must have shape ({C},), got {masses.shape}")
    _check_nonnegative("cell masses", masses)
    total = masses.sum()
    if not total > 0:
        raise ValueError("initial: cell masses sum to 0; the density has no mass on the mesh")
    if not np.all(np.isfinite(verts)):
        raise ValueError("initial: cell vertex coordinates must be finite")
    if gdim < domain.embedding_dim:
        raise ValueError(f"initial: cell vertices have {gdim} coordinates, the "
                         f"{domain.describe()} is meshed in R^{domain.embedding_dim}")
    cell_type = infer_cell_type(V, domain.manifold_dim) if cell_type is None else cell_type
    if cell_type not in CELL_TYPES:
        raise ValueError(f"initial: unknown cell type {cell_type!r}; allowed: "
                         f"{', '.join(CELL_TYPES)}")
    if _VERTICES[cell_type] != V:
        raise ValueError(f"initial: a {cell_type} has {_VERTICES[cell_type]} vertices, got {V}")
    if CELL_TYPES[cell_type] != domain.manifold_dim:
        raise ValueError(f"initial: {cell_type} cells have dimension {CELL_TYPES[cell_type]}, "
                         f"the {domain.describe()} has dimension {domain.manifold_dim}")
    counts = rng.multinomial(n, masses / total)
    cells = np.repeat(np.arange(C), counts)[rng.permutation(n)]
    points = uniform_in_cells(rng, verts, cell_type, cells)
    return domain.from_mesh(points)
