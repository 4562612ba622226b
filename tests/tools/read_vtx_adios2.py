"""Read a DOLFINx VTX file (rho.bp) with the ADIOS2 Python bindings alone, as ParaView's
reader does, and print per step: t, the mass sum_K rho_K |K| of the cell data, min rho.

Runs in its own environment (``pip install adios2 numpy``): PyPI's adios2 cannot live beside
the DOLFINx wheel's vendored ADIOS2. Cells are quadrilaterals or triangles in VTK order
(counter-clockwise), planar: |K| from the triangles (p0, p_i, p_i+1).
"""

import json
import sys

import adios2
import numpy as np


def areas(geometry: np.ndarray, connectivity: np.ndarray) -> np.ndarray:
    cells = connectivity[:, 1:]
    p = geometry[cells]  # (cells, vertices, 3)
    total = np.zeros(len(cells))
    for i in range(1, cells.shape[1] - 1):
        total += 0.5 * np.linalg.norm(np.cross(p[:, i] - p[:, 0], p[:, i + 1] - p[:, 0]), axis=1)
    return total


def main(path: str) -> None:
    rows = []
    with adios2.FileReader(path) as f:
        steps = f.available_variables()["step"]["AvailableStepsCount"]
        for s in range(int(steps)):
            read = {name: f.read(name, step_selection=[s, 1])
                    for name in ("step", "geometry", "connectivity", "rho")}
            rho = np.asarray(read["rho"]).ravel()
            size = areas(np.asarray(read["geometry"]), np.asarray(read["connectivity"]))
            rows.append({"t": float(np.ravel(read["step"])[0]), "mass": float(rho @ size),
                         "min": float(rho.min()), "cells": len(size)})
    print(json.dumps(rows))


if __name__ == "__main__":
    main(sys.argv[1])
