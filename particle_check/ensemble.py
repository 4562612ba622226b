"""Sweeps over widths n and seeds, spread over MPI ranks, each task stored as it finishes.

Task (n, seed) draws theta_0 ~ rho_0 (n exact draws) from its own SeedSequence, so a
result does not depend on the rank that ran it or on the number of ranks. A task
whose file exists is loaded, not recomputed: an interrupted sweep resumes.
"""

from __future__ import annotations

import numpy as np
from mpi4py import MPI
from tqdm import tqdm

from particle_check.particles import ParticleRun, simulate
from solver.io import RunDirectory
from solver.model.problem import Problem
from solver.settings import ParticleSettings


def task_name(n: int, seed: int) -> str:
    return f"n{n:07d}_seed{seed:03d}.npz"


def assign_tasks(settings: ParticleSettings, size: int) -> list[list[tuple[int, int]]]:
    """Tasks per rank: largest n first, each to the least-loaded rank (cost ~ n)."""
    tasks = sorted(((n, s) for n in settings.n for s in range(settings.seeds)), reverse=True)
    loads, plan = [0] * size, [[] for _ in range(size)]
    for n, s in tasks:
        r = int(np.argmin(loads))
        plan[r].append((n, s))
        loads[r] += n
    return plan


def run_ensemble(problem: Problem, settings: ParticleSettings, times: np.ndarray,
                 run_dir: RunDirectory | None = None, comm: MPI.Comm = MPI.COMM_WORLD,
                 progress: bool = False) -> dict[tuple[int, int], ParticleRun] | None:
    """Run every (n, seed) task; rank 0 returns all results, other ranks None.

    progress: a bar on rank 0 over its own tasks.
    """
    mine: dict[tuple[int, int], ParticleRun] = {}
    tasks = assign_tasks(settings, comm.size)[comm.rank]
    for n, seed in tqdm(tasks, desc="particles", disable=not (progress and comm.rank == 0)):
        path = None if run_dir is None else run_dir / task_name(n, seed)
        if path is not None and path.exists():
            with np.load(path) as data:
                if np.array_equal(data["times"], times):
                    mine[(n, seed)] = ParticleRun(**{k: data[k] for k in data.files})
                    continue
        rng = settings.rng(n, seed)
        theta0 = problem.sample_initial(rng, n)
        run = simulate(problem, theta0, times, settings.dt, settings.integrator, rng=rng,
                       batch=settings.batch, rtol=settings.rtol)
        if run_dir is not None:
            RunDirectory(run_dir.path).write_npz(task_name(n, seed), **vars(run))
        mine[(n, seed)] = run
    gathered = comm.gather(mine, root=0)
    if comm.rank != 0:
        return None
    return {key: run for part in gathered for key, run in part.items()}
