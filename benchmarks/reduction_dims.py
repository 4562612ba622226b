"""The reduced PDE's cost against d: the single-index setting of examples/single_index.py
(y = tanh(x_1), tanh units, fixed output, w(0) ~ N(0, 0.25 I/d)) for d = 10, 100, 1000 on
the same 2-D mesh (DG1 56 x 28 on (a, q) in [-0.6, 1.6] x [0, 1.4], t in [0, 3], no test
points): wall time, steps, the largest t rule used, and the risk 2E at t = 0, 1, 3.
Particles in R^d would cost O(n d) per unit and step; the PDE's cost depends on d only
through the t rules (q r grows like sqrt(d) while the cosine law narrows like 1/sqrt(d)).

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.reduction_dims
"""

from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI

from solver.model import reduction


def main() -> None:
    from solver.pde.solve import solve
    from solver.settings import PDESettings

    for d in (10, 100, 1000):
        red = reduction.ridge_problem(
            "tanh", d, 1, target="tanh(x0)", output=1.0, w_std=0.5 / np.sqrt(d), a_min=-0.6,
            a_max=1.6, q_max=1.4, nodes_u=24, nodes_r=16, test_points=1, t_final=3.0)
        start = time.perf_counter()
        result = solve(red.reduced, PDESettings(cells=(56, 28), scheme="dg", degree=1,
                                                integrator="ssprk3", outputs=3, snapshots=0,
                                                progress=False, max_outflow=1e-4),
                       comm=MPI.COMM_SELF)
        wall = time.perf_counter() - start
        risk = 2 * np.asarray(result.loss)
        print(f"d = {d:4d}: {wall:5.1f} s, {len(result.steps['t']) - 1} steps, largest t rule "
              f"{red.unit.nodes} nodes, risk t = 0, 1, 3: "
              f"{risk[0]:.4f}, {risk[1]:.4f}, {risk[3]:.4f}")


if __name__ == "__main__":
    main()
