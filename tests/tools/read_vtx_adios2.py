"""Read a DOLFINx VTX file (rho.bp) with the ADIOS2 Python bindings alone, as ParaView's
reader does, and print per step (JSON): t, the number of cells, the mass int rho recomputed
from the geometry and connectivity read, and the smallest value read.

Runs in its own environment (``scripts/adios2_venv.sh``: adios2 + numpy): PyPI's adios2
cannot live beside the DOLFINx wheel's vendored ADIOS2.

Cells are flat quadrilaterals (parallelograms) or triangles in VTK order (corners first,
counter-clockwise), in R^2 or R^3:

- cell data (DG0/FV): mass = sum_K rho_K |K|;
- point data (DG_k on the discontinuous Lagrange mesh, VTK_LAGRANGE_*): on each cell the
  nodes' reference coordinates (xi, eta) come from the affine map of the corners, the
  nodal values are interpolated by the polynomials of Q_k (quads, (k+1)^2 nodes) or P_k
  (triangles, (k+1)(k+2)/2 nodes), and the interpolant is integrated exactly
  (int xi^a eta^b = 1/((a+1)(b+1)) on the unit square, a! b!/(a+b+2)! on the triangle).
"""

import json
import re
import sys
from math import factorial, isqrt

import adios2
import numpy as np


def _affine(points: np.ndarray, corners: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference coordinates (cells, nodes, 2) of every node and |det J| (cells,) of the
    affine map x = p0 + xi e1 + eta e2 (quads: e2 = p3 - p0; triangles: e2 = p2 - p0)."""
    p0 = points[:, 0]
    e1 = points[:, 1] - p0
    e2 = points[:, 3 if corners == 4 else 2] - p0
    J = np.stack([e1, e2], axis=2)  # (cells, gdim, 2)
    ref = np.linalg.pinv(J) @ (points - p0[:, None]).transpose(0, 2, 1)  # (cells, 2, nodes)
    back = p0[:, None] + (J @ ref).transpose(0, 2, 1)
    size = np.abs(points - p0[:, None]).max()
    if np.abs(back - points).max() > 1e-10 * max(size, 1.0):
        sys.exit("read_vtx_adios2: a cell is not affine (a parallelogram or a triangle)")
    return ref.transpose(0, 2, 1), np.linalg.norm(np.cross(
        np.pad(e1, ((0, 0), (0, 3 - e1.shape[1]))), np.pad(e2, ((0, 0), (0, 3 - e2.shape[1])))),
        axis=1)


def _exponents(nodes: int) -> tuple[list[tuple[int, int]], int]:
    """Monomial exponents (a, b) of Q_k or P_k for a Lagrange cell with this many nodes,
    and the number of corners."""
    k = isqrt(nodes) - 1
    if (k + 1) ** 2 == nodes and nodes >= 4:
        return [(a, b) for a in range(k + 1) for b in range(k + 1)], 4
    k = next((k for k in range(1, 10) if (k + 1) * (k + 2) // 2 == nodes), None)
    if k is None:
        sys.exit(f"read_vtx_adios2: cells of {nodes} nodes are not Q_k quads or P_k triangles")
    return [(a, b) for a in range(k + 1) for b in range(k + 1 - a)], 3


def point_data_mass(geometry: np.ndarray, cells: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """int_K of the Lagrange interpolant of the nodal values, per cell."""
    exps, corners = _exponents(cells.shape[1])
    ref, det = _affine(geometry[cells], corners)
    V = np.stack([ref[..., 0] ** a * ref[..., 1] ** b for a, b in exps], axis=2)
    coeff = np.linalg.solve(V, rho[cells][..., None])[..., 0]  # (cells, monomials)
    if corners == 4:
        moments = np.array([1.0 / ((a + 1) * (b + 1)) for a, b in exps])
    else:
        moments = np.array([factorial(a) * factorial(b) / factorial(a + b + 2)
                            for a, b in exps])
    return det * (coeff @ moments)


def cell_data_mass(geometry: np.ndarray, cells: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """rho_K |K| per cell, |K| from the triangles (p0, p_i, p_i+1) of the corners."""
    p = np.pad(geometry, ((0, 0), (0, 3 - geometry.shape[1])))[cells]
    area = np.zeros(len(cells))
    for i in range(1, cells.shape[1] - 1):
        area += 0.5 * np.linalg.norm(np.cross(p[:, i] - p[:, 0], p[:, i + 1] - p[:, 0]), axis=1)
    return rho * area


def read_step(f: adios2.FileReader, s: int, name: str, cell_data: bool
              ) -> tuple[float, int, np.ndarray, np.ndarray, np.ndarray]:
    """t, the number of blocks (one per writing rank), and per cell of every block: its
    centroid, int_K rho and the smallest value of rho on it."""
    blocks = len(f.all_blocks_info("connectivity")[s])
    t, centroids, masses, mins = 0.0, [], [], []
    for b in range(blocks):
        read = {v: np.asarray(f.read(v, step_selection=[s, 1], block_id=b))
                for v in ("step", "geometry", "connectivity", name)}
        t = float(read["step"].ravel()[0])
        geometry, cells, rho = read["geometry"], read["connectivity"][:, 1:], read[name].ravel()
        mass = cell_data_mass if cell_data else point_data_mass
        masses.append(mass(geometry, cells, rho))
        mins.append(rho if cell_data else rho[cells].min(axis=1))
        centroids.append(geometry[cells].mean(axis=1))
    return t, blocks, np.concatenate(centroids), np.concatenate(masses), np.concatenate(mins)


def main(path: str, name: str = "rho") -> None:
    """A parallel run writes each rank's cells, ghosts included, as one block: a cell read
    twice (same centroid) counts once."""
    rows = []
    with adios2.FileReader(path) as f:
        xml = str(f.available_attributes()["vtk.xml"]["Value"])
        block = re.search(r"<CellData>(.*?)</CellData>", xml, re.S)
        cell_data = block is not None and f'Name="{name}"' in block.group(1)
        steps = int(f.available_variables()["step"]["AvailableStepsCount"])
        for s in range(steps):
            t, blocks, centroids, masses, mins = read_step(f, s, name, cell_data)
            scale = 1e-9 * max(np.abs(centroids).max(), 1.0)
            _, first = np.unique(np.round(centroids / scale), axis=0, return_index=True)
            rows.append({"t": t, "cells": len(first), "blocks": blocks,
                         "data": "cell" if cell_data else "point",
                         "mass": float(masses[first].sum()), "min": float(mins[first].min())})
    print(json.dumps(rows))


if __name__ == "__main__":
    main(*sys.argv[1:])
