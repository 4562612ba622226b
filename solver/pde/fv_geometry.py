"""Two-point finite-volume geometry of any DOLFINx mesh: cells, interior and boundary facets.

Built once per mesh (flat or a surface embedded in 3-D) and held as numpy arrays
indexed by local DG0 degrees of freedom, so every flux evaluation is a few
vectorised gathers and one scatter-add:

    cells:     |K| (area on a surface), cell point X_K (embedding coordinates): the centroid,
               on meshes of acute triangles the circumcentre, so X_L - X_K crosses the
               facet at right angles and the two-point flux is consistent (with centroids
               FV did not converge on the icosphere: L1 error 0.08 -> 0.12 from level 2
               to 5); meshes with right or obtuse triangles keep the centroids
    interior:  (K, L), |sigma|, d_KL = |X_L - X_K| (triangles: |X_K - m| + |X_L - m|, m
               the facet midpoint, the distance unfolded across a surface's fold),
               for facets touching an owned cell
    boundary:  (K, |sigma|, outward conormal n) for facets of owned cells on the domain boundary

With shared-facet ghosting every facet of an owned cell has both its cells on the
rank, so a facet of an owned cell seen from one cell only is a boundary facet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ufl
from dolfinx import fem, la, mesh
from mpi4py import MPI


@dataclass(frozen=True)
class FVGeometry:
    """Cell and facet data of the local mesh part, by DG0 dof index."""

    n_owned: int
    volumes: np.ndarray  # (n_local,) |K|
    centroids: np.ndarray  # (n_local, gdim) X_K (circumcentres on triangles)
    inner: np.ndarray  # (F, 2) dofs (K, L)
    inner_area: np.ndarray  # (F,) |sigma|
    inner_distance: np.ndarray  # (F,) d_KL
    inner_direction: np.ndarray  # (F, gdim) (X_L - X_K) / d_KL
    inner_midpoint: np.ndarray  # (F, gdim) facet midpoints
    boundary_cell: np.ndarray  # (B,) dofs
    boundary_area: np.ndarray  # (B,)
    boundary_normal: np.ndarray  # (B, gdim) unit outward conormal


def _measure(points: np.ndarray) -> np.ndarray:
    """|sigma| of facets given by their vertex coordinates (F, n_vertices, gdim)."""
    n = points.shape[1]
    if n == 1:  # a point facet of an interval mesh
        return np.ones(len(points))
    if n == 2:  # a segment
        return np.linalg.norm(points[:, 1] - points[:, 0], axis=1)
    pad = np.zeros((*points.shape[:2], 3))
    pad[..., : points.shape[2]] = points
    if n == 3:  # a triangle
        cross = np.cross(pad[:, 1] - pad[:, 0], pad[:, 2] - pad[:, 0])
    else:  # a planar quadrilateral in tensor ordering: diagonals 0-3 and 1-2
        cross = np.cross(pad[:, 3] - pad[:, 0], pad[:, 2] - pad[:, 1])
    return 0.5 * np.linalg.norm(cross, axis=1)


def _conormal(points: np.ndarray, outward: np.ndarray) -> np.ndarray:
    """Unit vectors orthogonal to each facet's tangent space, along ``outward``."""
    n = outward.copy()
    if points.shape[1] > 1:
        edges = points[:, 1:] - points[:, :1]  # (B, n_vertices - 1, gdim)
        for b in range(len(n)):  # project out the tangent space of each boundary facet
            u, sv, _ = np.linalg.svd(edges[b].T, full_matrices=False)
            basis = u[:, sv > 1e-12 * sv[0]]  # a quadrilateral's 3 edges span only 2 dims
            n[b] -= basis @ (basis.T @ n[b])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _acute(points: np.ndarray, margin: float = 1e-3) -> bool:
    """Every triangle (C, 3, gdim) has all angles below 90 degrees (cosines > ``margin``)."""
    for i in range(3):
        a = points[:, (i + 1) % 3] - points[:, i]
        b = points[:, (i + 2) % 3] - points[:, i]
        cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        if np.any(cos <= margin):
            return False
    return True


def _circumcentres(points: np.ndarray) -> np.ndarray:
    """Circumcentres of triangles (C, 3, gdim), gdim 2 or 3:
    a + (|u|^2 v x w + |v|^2 w x u) / (2 |w|^2), u = b - a, v = c - a, w = u x v."""
    pad = np.zeros((*points.shape[:2], 3))
    pad[..., : points.shape[2]] = points
    a, u, v = pad[:, 0], pad[:, 1] - pad[:, 0], pad[:, 2] - pad[:, 0]
    w = np.cross(u, v)
    uu, vv, ww = (np.sum(z * z, axis=1, keepdims=True) for z in (u, v, w))
    return (a + (uu * np.cross(v, w) + vv * np.cross(w, u)) / (2 * ww))[:, : points.shape[2]]


def cell_volumes(V: fem.FunctionSpace) -> np.ndarray:
    """|K| by DG0 dof on owned and ghost cells."""
    vec = la.vector(V.dofmap.index_map)
    vec.array[:] = 0.0
    fem.assemble_vector(vec.array, fem.form(ufl.TestFunction(V) * ufl.dx))
    vec.scatter_reverse(la.InsertMode.add)
    vec.scatter_forward()
    return vec.array.copy()


def build_geometry(msh: mesh.Mesh, V: fem.FunctionSpace) -> FVGeometry:
    """The two-point geometry of the local part of ``msh`` for the DG0 space V."""
    tdim, gdim = msh.topology.dim, msh.geometry.dim
    imap = V.dofmap.index_map
    n_owned = imap.size_local
    n_local = n_owned + imap.num_ghosts
    dof = V.dofmap.list[:, 0]
    X = msh.geometry.x[:, :gdim]

    centroids = np.empty((n_local, gdim))
    cells = np.arange(n_local, dtype=np.int32)
    triangles = False
    if msh.topology.cell_name() == "triangle":
        # circumcentres, if every triangle is acute (each strictly inside its cell): the line
        # between two crosses their facet at right angles; a right triangle's sits on its
        # hypotenuse, shared with its neighbour (d_KL = 0): such meshes keep the centroids
        corners = X[mesh.entities_to_geometry(msh, tdim, cells)]
        triangles = msh.comm.allreduce(_acute(corners), MPI.LAND)
    if triangles:
        centroids[dof] = _circumcentres(corners)
    else:
        centroids[dof] = mesh.compute_midpoints(msh, tdim, cells)[:, :gdim]

    msh.topology.create_connectivity(tdim - 1, tdim)
    f2c = msh.topology.connectivity(tdim - 1, tdim)
    counts = np.diff(f2c.offsets)
    first = f2c.array[f2c.offsets[:-1]]
    owned_cell = dof < n_owned  # by local cell index

    two = np.flatnonzero(counts == 2)
    pairs = np.stack([first[two], f2c.array[f2c.offsets[two] + 1]], axis=1)
    keep = owned_cell[pairs[:, 0]] | owned_cell[pairs[:, 1]]
    two, pairs = two[keep], dof[pairs[keep]]
    fpts = X[mesh.entities_to_geometry(msh, tdim - 1, two.astype(np.int32))]
    delta = centroids[pairs[:, 1]] - centroids[pairs[:, 0]]
    dist = np.linalg.norm(delta, axis=1)
    if triangles:  # unfolded across the facet (a surface mesh folds there)
        mid = fpts.mean(axis=1)
        dist = (np.linalg.norm(centroids[pairs[:, 0]] - mid, axis=1)
                + np.linalg.norm(centroids[pairs[:, 1]] - mid, axis=1))

    one = np.flatnonzero((counts == 1) & owned_cell[first])
    bpts = X[mesh.entities_to_geometry(msh, tdim - 1, one.astype(np.int32))]
    bcell = dof[first[one]]
    outward = bpts.mean(axis=1) - centroids[bcell]

    return FVGeometry(
        n_owned=n_owned,
        volumes=cell_volumes(V),
        centroids=centroids,
        inner=pairs,
        inner_area=_measure(fpts),
        inner_distance=dist,
        inner_direction=delta / dist[:, None],
        inner_midpoint=fpts.mean(axis=1),
        boundary_cell=bcell,
        boundary_area=_measure(bpts) if len(one) else np.zeros(0),
        boundary_normal=_conormal(bpts, outward) if len(one) else np.zeros((0, gdim)),
    )
