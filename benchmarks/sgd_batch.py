"""Online SGD with batch size P against full-batch GD at fixed width n (flagship problem).

For each (n, seed) the same initial particles run full-batch GD and SGD with P fresh
samples of mu per step (both Euler, the same dt). The extra gap is

    extra(n, P) = RMS over seeds of max_t ||f_n^SGD(t) - f_n^GD(t)||_{L2(mu)},

with a 90% bootstrap interval over seeds, set against GD's own finite-n gap scale
g(n) = sqrt(MC(0)/n) (the CRBV resampling level, n^-alpha with alpha = 1/2 at t = 0).
The batch noise is shared by all n particles, so it does not average out over n:
extra ~ sqrt(dt/P), and the guideline P = O(n^(2 alpha)) [RVE] keeps extra/g(n) fixed.
The study checks that extra/g(n) is a function of P / n^(2 alpha) alone (the curves for
different n collapse) and fits extra ~ P^-gamma (gamma = 1/2 expected) per n.

Writes <output>/sgd_batch.csv and <output>/sgd_batch.png; MPI spreads (n, seed) tasks.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.sgd_batch [--n 256 1024 4096]
      [--seeds 8] [--output runs/sgd-batch]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from mpi4py import MPI

from particle_check.particles import simulate
from solver.config import load
from solver.io import RunDirectory
from solver.model import functionals
from solver.settings import ParticleSettings

EXAMPLE = "examples/rbf_circle.toml"
LEVEL = 0.9
RESAMPLES = 2000


def run_task(n: int, seed: int, batches: list[int], t_final: float, dt: float
             ) -> tuple[dict[int, float], float]:
    """One seed: ({P: max_t ||f_SGD - f_GD||^2}, MC(0) of the initial draw)."""
    problem = load(EXAMPLE).problem
    settings = ParticleSettings(n=(n,), seeds=seed + 1, dt=dt)
    w = problem.data.weights
    times = np.linspace(0.0, t_final, 5)
    rng = settings.rng(n, seed)
    theta0 = problem.sample_initial(rng, n)
    weights = np.full(n, 1.0 / n)
    f0 = functionals.network_output(problem, theta0, weights)
    f2 = functionals.UnitMatrix(problem, theta0).forward_squared(weights)
    gd = simulate(problem, theta0, times, dt, "euler")
    sq = {}
    for P in batches:
        sgd = simulate(problem, theta0, times, dt, "euler", rng=rng, batch=P)
        sq[P] = float(np.max(((sgd.f - gd.f) ** 2) @ w))
    return sq, float(functionals.mc_variance(problem, f0, f2))


def bootstrap(sq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(RESAMPLES, ...) RMS over seeds (axis 0 of sq) of seed-resampled copies."""
    idx = rng.integers(0, len(sq), size=(RESAMPLES, len(sq)))
    return np.sqrt(sq[idx].mean(axis=1))


def slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """-d log y / d log x by least squares over the last axis."""
    lx = np.log(x) - np.log(x).mean()
    ly = np.log(y)
    return -(ly * lx).sum(axis=-1) / (lx**2).sum()


def figure(path: Path, ns: list[int], batches: list[int], ratio: np.ndarray,
           lo: np.ndarray, hi: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, n in enumerate(ns):
        x = np.array(batches) / n
        ax.errorbar(x, ratio[i], yerr=[ratio[i] - lo[i], hi[i] - ratio[i]], marker="o",
                    capsize=3, label=f"n = {n}")
    x = np.geomspace(min(batches) / max(ns), max(batches) / min(ns), 50)
    ref = np.exp(np.mean(np.log(ratio * np.sqrt(np.array(batches)[None, :]
                                                / np.array(ns)[:, None]))))
    ax.plot(x, ref / np.sqrt(x), "k--", lw=1, label="(P/n)^(-1/2)")
    ax.axvline(1.0, color="0.6", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="P / n^(2 alpha), alpha = 1/2",
           ylabel="extra gap / sqrt(MC(0)/n)",
           title="SGD batch P: extra gap over the finite-n gap scale")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 16, 64, 256, 1024, 4096])
    parser.add_argument("--t-final", type=float, default=4.0)
    parser.add_argument("--dt", type=float, default=0.01)
    parser.add_argument("--output", type=Path, default=Path("runs/sgd-batch"))
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    tasks = [(n, s) for n in args.n for s in range(args.seeds)]
    mine = {task: run_task(*task, args.batches, args.t_final, args.dt)
            for task in tasks[comm.rank::comm.size]}
    parts = comm.gather(mine, root=0)
    if comm.rank != 0:
        return
    results = {k: v for part in parts for k, v in part.items()}
    ns, batches = args.n, args.batches
    sq = np.array([[[results[(n, s)][0][P] for P in batches] for s in range(args.seeds)]
                   for n in ns])                                        # (N, seeds, P)
    mc0 = np.array([[results[(n, s)][1] for s in range(args.seeds)] for n in ns])
    scale = np.sqrt(mc0.mean(axis=1) / np.array(ns))                     # (N,)
    extra = np.sqrt(sq.mean(axis=1))
    rng = np.random.default_rng(2024)
    boot = np.stack([bootstrap(sq[i], rng) for i in range(len(ns))])     # (N, B, P)
    q = [(1 - LEVEL) / 2 * 100, (1 + LEVEL) / 2 * 100]
    lo, hi = np.percentile(boot, q, axis=1)
    gamma, gamma_boot = slope(np.array(batches, float), extra), slope(np.array(batches, float),
                                                                      boot)
    g_lo, g_hi = np.percentile(gamma_boot, q, axis=1)
    ratio, r_lo, r_hi = extra / scale[:, None], lo / scale[:, None], hi / scale[:, None]

    print(f"flagship problem, {args.seeds} seeds, t in [0, {args.t_final}], dt = {args.dt}, "
          f"{comm.size} rank(s); {int(LEVEL * 100)}% bootstrap intervals over seeds")
    rows = []
    for i, n in enumerate(ns):
        print(f"n = {n}: gap scale sqrt(MC(0)/n) = {scale[i]:.3e}; extra ~ P^-gamma, "
              f"gamma = {gamma[i]:.3f} [{g_lo[i]:.3f}, {g_hi[i]:.3f}]")
        print(f"  {'P':>6} {'P/n':>8} {'extra gap':>10} {'interval':>22} {'/ scale':>8}")
        for j, P in enumerate(batches):
            print(f"  {P:6d} {P / n:8.3g} {extra[i, j]:10.3e} "
                  f"[{lo[i, j]:.3e}, {hi[i, j]:.3e}] {ratio[i, j]:8.3f}")
            rows.append((n, P, P / n, extra[i, j], lo[i, j], hi[i, j], scale[i], ratio[i, j],
                         gamma[i], g_lo[i], g_hi[i]))
    out = RunDirectory(args.output)
    out.write_csv("sgd_batch.csv", ("n", "P", "P_over_n", "extra_gap", "extra_lo", "extra_hi",
                                    "gap_scale", "ratio", "gamma", "gamma_lo", "gamma_hi"),
                  rows)
    figure(args.output / "sgd_batch.png", ns, batches, ratio, r_lo, r_hi)
    print(f"wrote {args.output / 'sgd_batch.csv'} and {args.output / 'sgd_batch.png'}")


if __name__ == "__main__":
    main()
