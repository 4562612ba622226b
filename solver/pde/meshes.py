"""Parameter-space meshes built from a Problem's domain."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from dolfinx import mesh
from mpi4py import MPI

from solver.model.domain import Box


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
