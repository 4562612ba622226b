"""The dependence on d (issue 16): the same 2-D reduced PDE for d = 10, 30, 100, 300, 1000 at
equal cost, against particles in R^d whose cost grows with d.

The setting of examples/single_index.py: x ~ N(0, I_d), y = tanh(x_1), f = (1/n) sum_i
tanh(w_i . x) (output weight 1), w(0) ~ N(0, 0.25 I/d), t in [0, 3]. The PDE: the law of
(a, q) = (w_1, |w_perp|) on DG1 112 x 56 cells of [-0.6, 1.6] x [0, 1.4] for every d (only the
reduced unit's cosine law changes with d). The particles: one run of n = 4096 units in R^d,
online SGD (rk4, dt 0.02, a fresh batch of 1024 per step). Both give f at the same 1000
Monte Carlo test points: the risk curves, and the gap ||f_n - f_t|| at t = 3 against
sqrt(MC(t)/n). The measurements are ``benchmarks/reduction_cost.py``'s (``pde_run``,
``particle_run``, ``compare``); the PDEs and particle runs are dealt over the MPI ranks
(longest first), each timed on its own rank.

Outputs: gallery.png (risk curves by d; wall time vs d, log-log with fitted slopes; the gap
against sqrt(MC/n)), report.md, risk.csv, summary.json.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for ``benchmarks``

import _common

from benchmarks import reduction_cost as rc

ex = rc.ex  # examples/single_index.py: the setting, its PDE settings, its particle runs

SIZES = {
    "small": ex.Size((10, 30), 1.0, 4, (24, 12), (256,), 1, 0.05, 256, 300),
    "default": ex.Size((10, 30, 100, 300, 1000), 3.0, 15, (112, 56), (4096,), 1, 0.02, 1024,
                       1000),
}


def deal(tasks: list[tuple[str, int]], ranks: int) -> list[int]:
    """The rank of each task: longest first to the least loaded rank, by a rough cost (a PDE
    costs about one particle run in d = 100 at the default size)."""
    cost = [1.0 if kind == "pde" else d / 100 for kind, d in tasks]
    load, owner = [0.0] * ranks, [0] * len(tasks)
    for i in sorted(range(len(tasks)), key=lambda i: -cost[i]):
        owner[i] = int(np.argmin(load))
        load[owner[i]] += cost[i]
    return owner


def run_task(kind: str, d: int, size: ex.Size) -> dict:
    red = ex.setting(d, size)
    if kind == "pde":
        return rc.pde_run(red, size)
    times = ex.pde_settings(size, size.cells).output_times(size.t_final)
    return rc.particle_run(red, size, times, size.n[0], d)


def slope(d: list[int], wall: list[float]) -> float:
    """The least-squares slope of log wall against log d."""
    return float(np.polyfit(np.log(d), np.log(wall), 1)[0])


def gallery(run_dir, size: ex.Size, rows: list[dict], runs: dict, slopes: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    dims = [r["d"] for r in rows]
    for i, d in enumerate(dims):
        pde, part = runs[("pde", d)], runs[("particles", d)]
        axes[0].plot(pde["times"], pde["risk"], f"C{i}-", lw=1.5, label=f"PDE, d={d}")
        axes[0].plot(pde["times"], pde["population_risk"], f"C{i}:", lw=1)
        axes[0].plot(pde["times"], part["risk"], f"C{i}o", ms=4, mfc="none",
                     label=f"particles, d={d}")
    axes[0].set(xlabel="t", ylabel="risk E(f - y)^2", yscale="log",
                title="risk at the test points (dotted: PDE over the law)")
    for key, style, label in (("pde_wall", "s-", "reduced PDE"),
                              ("particle_wall", "o-", f"particles, n = {size.n[0]}")):
        axes[1].loglog(dims, [r[key] for r in rows], style,
                       label=f"{label}: slope {slopes[key]:.2f}")
    axes[1].set(xlabel="d", ylabel="wall time (s, one process each)",
                title="cost vs d (log-log, least-squares slopes)")
    axes[2].loglog(dims, [r["gap"] for r in rows], "o-", label="||f_n - f_t|| at t_f")
    axes[2].loglog(dims, [r["gap_expected"] for r in rows], "k--", label="sqrt(MC(t_f) / n)")
    axes[2].set(xlabel="d", ylabel="gap at the test points",
                title="gap at t_f against sqrt(MC/n)")
    for ax in axes:
        ax.legend(fontsize=7)
    _common.save_figure(
        fig, run_dir.path / "gallery.png",
        f"single-index teacher tanh(x_1): DG1 {size.cells[0]} x {size.cells[1]} reduced PDE vs "
        f"online SGD (rk4, dt {size.dt:g}, batch {size.batch}) in R^d")


def report(size: ex.Size, rows: list[dict], slopes: dict, wall: float, ranks: int,
           load: tuple[float, float]) -> str:
    return "\n".join([
        "# The dependence on d: reduced PDE vs particles in R^d", "",
        f"y = tanh(x_1), x ~ N(0, I_d), f = mean tanh(w_i . x), w(0) ~ N(0, "
        f"{ex.S0}^2 I/d), t in [0, {size.t_final:g}]; PDE: DG1 {size.cells[0]} x "
        f"{size.cells[1]} cells on (a, q) in {list(ex.A_BOX)} x [0, {ex.Q_MAX}], SSP-RK3, the "
        f"same mesh for every d; particles: n = {size.n[0]}, online SGD rk4 dt = {size.dt:g}, "
        f"batch {size.batch}; risks and gap at {size.test_points} test points (a new draw "
        f"per d, seed d); the PDE's risk over the law (reduced Gauss rule) at t_f: "
        + ", ".join(f"{r['population_risk']:.5f}" for r in rows) + ".", "",
        rc.table(rows, highlight=-1), "",
        f"Wall time vs d, least-squares slope of log wall on log d: PDE "
        f"{slopes['pde_wall']:.2f}, particles {slopes['particle_wall']:.2f} (over d >= 100: "
        f"{slopes['particle_wall_large_d']:.2f}).", "",
        f"Run: {wall:.0f} s on {ranks} MPI rank(s) (each task timed on its own rank; 1-min "
        f"load average {load[0]:.2f} before, {load[1]:.2f} after, {os.cpu_count()} cores).",
        "", "![gallery](gallery.png)", ""])


def main(argv: list[str] | None = None) -> None:
    args = _common.parse_args(__doc__, argv)
    comm = MPI.COMM_WORLD
    size = SIZES[args.size]
    run_dir = _common.open_run("dimension_dependence", args)
    load0 = os.getloadavg()[0]
    start = time.perf_counter()
    tasks = [(kind, d) for d in size.dims for kind in ("pde", "particles")]
    owner = deal(tasks, comm.size)
    mine = {task: run_task(*task, size) for task, rank in zip(tasks, owner, strict=True)
            if rank == comm.rank}
    gathered = comm.gather(mine, root=0)
    wall = comm.allreduce(time.perf_counter() - start, MPI.MAX)
    if comm.rank != 0:
        _common.finish(run_dir, {}, comm)
        return
    runs = {task: result for part in gathered for task, result in part.items()}
    rows, csv = [], []
    for d in size.dims:
        weights = ex.setting(d, size).full.data.weights
        pde, part = runs[("pde", d)], runs[("particles", d)]
        rows.append(rc.compare(d, pde, part, size.n[0], weights))
        gap = np.sqrt(((part["f"] - pde["f"]) ** 2) @ weights)
        csv += [(d, t, pde["population_risk"][j], pde["risk"][j], part["risk"][j], gap[j],
                 np.sqrt(pde["mc"][j] / size.n[0])) for j, t in enumerate(pde["times"])]
    dims = list(size.dims)
    large = [i for i, d in enumerate(dims) if d >= 100] or list(range(len(dims)))
    slopes = {"pde_wall": slope(dims, [r["pde_wall"] for r in rows]),
              "particle_wall": slope(dims, [r["particle_wall"] for r in rows]),
              "particle_wall_large_d": slope([dims[i] for i in large],
                                             [rows[i]["particle_wall"] for i in large])}
    run_dir.write_csv("risk.csv", ("d", "t", "pde_risk_law", "pde_risk", "particle_risk", "gap",
                                   "sqrt_mc_over_n"), csv)
    gallery(run_dir, size, rows, runs, slopes)
    load = (load0, os.getloadavg()[0])
    run_dir.write_text("report.md", report(size, rows, slopes, wall, comm.size, load))
    summary = {"size": args.size, "dims": dims, "n": size.n[0], "t_final": size.t_final,
               "cells": list(size.cells), "sgd_dt": size.dt, "sgd_batch": size.batch,
               "test_points": size.test_points, "per_d": {str(r["d"]): r for r in rows},
               "slopes": slopes, "ranks": comm.size, "load_average": list(load),
               "wall_time": wall}
    _common.finish(run_dir, summary, comm)


if __name__ == "__main__":
    sys.exit(_common.run(main))
