"""Why the single-index example's gap stops falling with n in d = 200: online SGD's noise.

The reduced PDE (DG1 112 x 56, t in [0, 1]) of ``examples/single_index.py`` at d = 200
against one seed of n = 2048 particles in R^200 (rk4, one fresh batch per step) at three
(batch P, step dt): P = 1024, dt = 0.02 (the example's); P = 4096, dt = 0.02; P = 1024,
dt = 0.005. The batch noise moves each w_i in all d - 1 directions across U, a bias of the
order of d dt / P that does not shrink with n: the gap falls as dt/P does.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.single_index_sgd
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from particle_check.particles import simulate


def main(d: int = 200, n: int = 2048) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    import single_index as ex

    from solver.pde.solve import solve

    size = ex.SIZES["default"]._replace(t_final=1.0, outputs=5)
    red = ex.setting(d, size)
    result = solve(red.reduced, ex.pde_settings(size, size.cells), comm=MPI.COMM_SELF)
    f_pde = np.asarray(result.f)[:, red.test]
    w = red.full.data.weights
    print(f"d = {d}, n = {n}, t = {np.array2string(result.times, precision=2)}")
    for batch, dt in ((1024, 0.02), (4096, 0.02), (1024, 0.005)):
        rng = np.random.default_rng(5)
        theta = red.full.sample_initial(rng, n)
        start = time.perf_counter()
        run = simulate(red.full, theta, result.times, dt, "rk4", rng=rng, batch=batch)
        gap = np.sqrt(((run.f - f_pde) ** 2) @ w)
        print(f"  P = {batch:4d}, dt = {dt:5.3f}: gap {np.array2string(gap, precision=4)} "
              f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
