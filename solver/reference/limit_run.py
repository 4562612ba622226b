"""``meanfield limit CONFIG``: the RQMC reference of a config's noiseless limit.

Writes <output>/limit/: ``timeseries.csv`` (t, E, its error and the finest level's 90 %
half-width, the largest f_t error over the data, whether the last two levels agree),
``f.npz`` (t, the data points, f_t and its error per point, every level's E per scramble),
``energy.png`` (E(t) with its error band, and the relative errors), ``summary.json``
(written last: a run without it is unfinished) and ``scrambles/`` (one file per finished
scramble: ``--resume``, or the same command again, runs only the missing ones). SIGTERM or
SIGUSR1 stop it before the next round of scrambles (exit 75, ``Preempted``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from solver import preemption
from solver.io import RunDirectory
from solver.reference.rqmc import RQMCLadder, rqmc_estimate

if TYPE_CHECKING:
    from mpi4py import MPI

    from solver.config import RunConfig


def run_limit(cfg: RunConfig, run_dir: RunDirectory, comm: MPI.Comm) -> dict:
    """The ladder of ``cfg.limit`` (scrambles dealt over ``comm``) into <run>/limit; returns
    the summary (on every rank)."""
    settings, problem = cfg.limit, cfg.problem
    out = RunDirectory(run_dir.path / "limit", writer=run_dir.writer)
    times = np.linspace(0.0, problem.t_final, settings.outputs + 1)
    start = time.perf_counter()
    levels = []
    for nodes in settings.nodes:
        level_start = time.perf_counter()
        levels.append(rqmc_estimate(
            problem, times, nodes, settings.scrambles, rtol=settings.rtol, comm=comm,
            store=run_dir.path / "limit" / "scrambles",
            poll=lambda: preemption.poll(comm, "the RQMC limit (its finished scrambles are "
                                               "kept: run the same command again)")))
        if comm.rank == 0:
            est = levels[-1]
            print(f"limit: {nodes} nodes x {settings.scrambles} scrambles in "
                  f"{time.perf_counter() - level_start:.1f} s; E(t_final) = "
                  f"{est.energy_mean[-1]:.8e} +- {est.energy_half_width[-1]:.1e}", flush=True)
    ladder = RQMCLadder(levels)
    scale = np.maximum(np.max(np.abs(ladder.f), axis=1), np.finfo(float).tiny)
    f_error = np.max(ladder.f_error, axis=1)
    consistent = ladder.consistent()
    out.write_csv("timeseries.csv", ("t", "E", "E_error", "E_half_width", "f_error_max",
                                     "levels_agree"),
                  zip(times, ladder.energy, ladder.energy_error,
                      levels[-1].energy_half_width, f_error, consistent.astype(int),
                      strict=True))
    out.write_npz("f.npz", t=times, x=problem.data.points, f=ladder.f, f_error=ladder.f_error,
                  **{f"energy_{e.nodes}": e.energy for e in levels})
    if out.writer:
        _figure(times, ladder, out / "energy.png")
    summary = {"nodes": list(settings.nodes), "scrambles": settings.scrambles,
               "rtol": settings.rtol, "level": levels[-1].level, "t_final": problem.t_final,
               "E_final": ladder.energy[-1], "E_final_error": ladder.energy_error[-1],
               "E_relative_error_max": float(np.max(ladder.energy_error / ladder.energy)),
               "f_final_relative_error": float(f_error[-1] / scale[-1]),
               "levels_agree": bool(consistent.all()),
               "wall_s": time.perf_counter() - start, "ranks": comm.size}
    out.write_json("summary.json", summary)
    return summary


def _figure(times: np.ndarray, ladder: RQMCLadder, path) -> None:
    """E(t) with its error band; the relative error of E and each level's half-width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    E, err = ladder.energy, ladder.energy_error
    ax[0].semilogy(times, E, "k-", label="E(t), RQMC")
    ax[0].fill_between(times, np.maximum(E - err, E * 1e-3), E + err, alpha=0.3,
                       label="its error")
    ax[0].set(xlabel="t", ylabel="E", title="the limit's energy")
    ax[1].semilogy(times[1:], (err / E)[1:], "k-", label="reported error")
    for est in ladder.levels:
        ax[1].semilogy(times[1:], (est.energy_half_width / est.energy_mean)[1:], "--",
                       label=f"{est.nodes} nodes: 90% half-width")
    ax[1].set(xlabel="t", ylabel="relative", title="error of E")
    for a in ax:
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
