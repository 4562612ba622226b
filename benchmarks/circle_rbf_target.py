"""The accuracy-and-time target on the circle-RBF problem, under any number of ranks.

DG2 + SSP-RK3 on 32^2 and 48^2 quadrilaterals, t in [0, 5]: wall time of ``solve`` (max
over ranks) and the max relative E(t) error against the Lagrangian cross-check
(65536-node grid reference, computed on rank 0 after the timed runs).

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/mpiexec -n 2 .venv/bin/python -m benchmarks.circle_rbf_target
"""

from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI

from benchmarks.problems import circle_rbf
from benchmarks.verification import REF_PANELS, lagrangian_reference
from solver.pde.solve import solve
from solver.settings import PDESettings


def main() -> None:
    comm = MPI.COMM_WORLD
    problem = circle_rbf(t_final=5.0)
    runs = []
    for cells in (32, 48):
        settings = PDESettings(cells=(cells, cells), scheme="dg", degree=2, integrator="ssprk3",
                               outputs=10, snapshots=0, progress=False)
        comm.barrier()
        start = time.perf_counter()
        result = solve(problem, settings, comm=comm)
        wall = comm.allreduce(time.perf_counter() - start, MPI.MAX)
        runs.append((cells, wall, result.energy))
    if comm.rank == 0:
        ref = lagrangian_reference(REF_PANELS).energy
        for cells, wall, energy in runs:
            err = np.max(np.abs(energy / ref - 1))
            print(f"DG2 {cells}^2 on {comm.size} rank(s): {wall:.2f} s, max rel. E(t) error "
                  f"{err:.2e}")


if __name__ == "__main__":
    main()
