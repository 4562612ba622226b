"""The extra gap of online SGD with batch size P at fixed width n (flagship problem).

For each seed the same initial particles run full-batch GD and SGD (both Euler; SGD with P
fresh samples of mu per step, the same dt); the extra gap is the RMS over seeds of
||f_n^SGD(t) - f_n^GD(t)||_{L2(mu)}, printed beside the finite-n gap scale
sqrt(MC(0)/n) of GD itself (the CRBV resampling level at t = 0). The batch-size
guideline [RVE] is P = O(n^(2 alpha)): the SGD noise, ~ sqrt(dt/P) per unit time, should
stay below the n^-alpha gap.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.sgd_batch [--n 1024] [--seeds 4]
"""

from __future__ import annotations

import argparse

import numpy as np

from particle_check.particles import simulate
from solver.config import load
from solver.model import functionals
from solver.settings import ParticleSettings

EXAMPLE = "examples/rbf_circle.toml"


def extra_gaps(n: int, batches: list[int], seeds: int, t_final: float, dt: float
               ) -> tuple[dict[int, float], float]:
    """{P: RMS over seeds of max_t ||f_SGD - f_GD||}, and sqrt(MC(0)/n) of the initial draws."""
    cfg = load(EXAMPLE)
    problem, settings = cfg.problem, ParticleSettings(n=(n,), seeds=seeds, dt=dt)
    w = problem.data.weights
    times = np.linspace(0.0, t_final, 5)
    sq = {P: [] for P in batches}
    mc0 = []
    for seed in range(seeds):
        rng = settings.rng(n, seed)
        theta0 = problem.sample_initial(rng, n)
        weights = np.full(n, 1.0 / n)
        f0 = functionals.network_output(problem, theta0, weights)
        f2 = functionals.UnitMatrix(problem, theta0).forward_squared(weights)
        mc0.append(functionals.mc_variance(problem, f0, f2))
        gd = simulate(problem, theta0, times, dt, "euler")
        for P in batches:
            sgd = simulate(problem, theta0, times, dt, "euler", rng=rng, batch=P)
            sq[P].append(np.max(((sgd.f - gd.f) ** 2) @ w))
    return {P: float(np.sqrt(np.mean(v))) for P, v in sq.items()}, float(
        np.sqrt(np.mean(mc0) / n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--t-final", type=float, default=4.0)
    parser.add_argument("--dt", type=float, default=0.01)
    args = parser.parse_args()
    batches = [1, 4, 16, 64, 256, 1024]
    gaps, scale = extra_gaps(args.n, batches, args.seeds, args.t_final, args.dt)
    print(f"n = {args.n}, {args.seeds} seeds, t in [0, {args.t_final}], dt = {args.dt}; "
          f"finite-n gap scale sqrt(MC(0)/n) = {scale:.3e}")
    print(f"{'P':>6} {'extra gap (SGD - GD)':>22} {'ratio to gap scale':>19} {'order':>6}")
    previous = None
    for P in batches:
        order = "" if previous is None else f"{np.log(previous / gaps[P]) / np.log(4):6.2f}"
        print(f"{P:6d} {gaps[P]:22.3e} {gaps[P] / scale:19.3f} {order:>6}")
        previous = gaps[P]


if __name__ == "__main__":
    main()
