"""Single-index teacher, tanh student, d = 10, 50, 200: the symmetry-reduced PDE against the
particles in R^d (issue 16).

The problem: x ~ N(0, I_d), target y = tanh(x_1) (a single-index teacher along U = span(e_1),
k = 1), student f(x) = (1/n) sum_i tanh(w_i . x) (output weight fixed to 1) trained by
gradient flow on E = 1/2 E[(f - y)^2], w_i(0) ~ N(0, s^2 I_d / d), s = 0.5.

The reduction (solver/model/reduction.py): the law of (a, q) = (w_1, |w_perp|) solves the
PDE of the reduced unit s_red(x_1, r; a, q) = E_t[tanh(a x_1 + q r t)], t ~ (1 - t^2)^((d-4)/2),
on the box (a, q) in [-0.6, 1.6] x [0, 1] (q = 0 a no-flux wall by symmetry), with the data
(x_1, |x_perp|) ~ N(0, 1) x chi_(d-1) by Gauss rules: the same 2-D PDE for every d, only
the unit's Beta law changes. The particles move w_i in R^d by online SGD (rk4, one fresh
batch per step, the mean-field time scaling), from the full Gaussian rho_0.

Compared at the Monte Carlo test points of the full problem (their reductions are zero-
weight points of the reduced rule, so the PDE gives f_t there): the risk curves, the gap
||f_n - f_t||_{L2(test)} at each width, its exponent alpha(t) (gap ~ n^-alpha, 90% bootstrap
intervals over seeds, particle_check.compare), the PDE error budget (the same PDE on half the
cells), and the CRBV ratio n gap^2 / MC(t), MC(t) = E_x[int s^2 rho_t - f_t^2] of the full
network as the PDE reports it (the reduced unit's values_squared = E_t[tanh^2], the full
units' second moment); the sample variance of the widest runs' units at t_final is printed
beside it as a check.

Outputs: gallery.png (risk vs t per d; gap vs n), report.md, risk.csv, summary.json.
"""

from __future__ import annotations

import sys
import time
from typing import NamedTuple

import _common
import numpy as np
from mpi4py import MPI

from particle_check.compare import compare
from particle_check.particles import simulate
from solver.model import reduction
from solver.settings import PDESettings


class Size(NamedTuple):
    dims: tuple[int, ...]
    t_final: float
    outputs: int
    cells: tuple[int, int]  # DG1 cells in (a, q)
    n: tuple[int, ...]
    seeds: int
    dt: float
    batch: int
    test_points: int


SIZES = {
    "small": Size((10,), 1.0, 4, (24, 12), (64, 256), 2, 0.05, 256, 300),
    "default": Size((10, 50, 200), 3.0, 15, (112, 56), (128, 512, 2048), 4, 0.02, 1024, 1000),
}
S0 = 0.5  # |w(0)| ~ S0
A_BOX, Q_MAX = (-0.6, 1.6), 1.4


def setting(d: int, size: Size) -> reduction.Reduction:
    return reduction.ridge_problem(
        "tanh", d, 1, target="tanh(x0)", output=1.0, w_std=S0 / np.sqrt(d),
        a_min=A_BOX[0], a_max=A_BOX[1], q_max=Q_MAX, nodes_u=24, nodes_r=16,
        test_points=size.test_points, seed=d, t_final=size.t_final, name=f"single-index-d{d}")


def pde_settings(size: Size, cells: tuple[int, int]) -> PDESettings:
    # max_outflow: the wall q = 0 has no normal velocity, but the scheme's velocity is the
    # gradient of the CG interpolant of Psi, whose normal component there is O(h^2), not 0:
    # the mass it lets out is ~1e-5 on the coarse mesh of the small size (6e-12 at 48 x 24)
    return PDESettings(cells=cells, scheme="dg", degree=1, integrator="ssprk3",
                       outputs=size.outputs, snapshots=0, progress=False, max_outflow=1e-4)


def solve_pde(red: reduction.Reduction, size: Size) -> dict:
    """The reduced PDE on this rank (fine and half-cells meshes): f_t at the test points."""
    from solver.pde.solve import solve

    problem = red.reduced
    out = {}
    for key, cells in (("fine", size.cells), ("coarse", tuple(c // 2 for c in size.cells))):
        start = time.perf_counter()
        result = solve(problem, pde_settings(size, cells), comm=MPI.COMM_SELF)
        out[key] = {"f": np.asarray(result.f)[:, red.test], "times": result.times,
                    "mc": np.asarray(result.mc),
                    "outflow": float(np.max(result.steps["boundary_outflow"])),
                    "wall_time": time.perf_counter() - start,
                    "steps": len(result.steps["t"]) - 1}
    return out


def run_particles(red: reduction.Reduction, size: Size, times: np.ndarray, n: int,
                  seed: int, d: int):
    rng = np.random.default_rng(np.random.SeedSequence(16, spawn_key=(d, n, seed)))
    theta = red.full.sample_initial(rng, n)
    start = time.perf_counter()
    run = simulate(red.full, theta, times, size.dt, "rk4", rng=rng, batch=size.batch)
    S = red.full.unit.values(red.full.data.points, run.theta)
    return run, float(np.mean(S.var(axis=1))), time.perf_counter() - start


def study(d: int, size: Size, comm: MPI.Comm) -> dict:
    red = setting(d, size)
    times = pde_settings(size, size.cells).output_times(size.t_final)
    tasks = [(n, s) for n in size.n for s in range(size.seeds)]
    mine = {task: run_particles(red, size, times, *task, d)
            for i, task in enumerate(tasks) if i % comm.size == comm.rank}
    pde = solve_pde(red, size) if comm.rank == 0 else None
    gathered = comm.gather(mine, root=0)
    if comm.rank != 0:
        return {}
    results = {k: v for part in gathered for k, v in part.items()}
    runs = {task: r[0] for task, r in results.items()}
    w, y = red.full.data.weights, red.full.y
    f_pde = pde["fine"]["f"]
    pde_loss = 0.5 * ((f_pde - y) ** 2) @ w
    # MC(t) of the full units from the PDE (over the law); the sample variance of the widest
    # runs' units at t_final (over the test points) is its check
    mc = pde["fine"]["mc"]
    mc_final = np.mean([results[(size.n[-1], s)][1] for s in range(size.seeds)])
    error = np.sqrt(((pde["fine"]["f"] - pde["coarse"]["f"]) ** 2) @ w)
    cmp = compare(w, times, f_pde, pde_loss, mc, runs, pde_error=error, targets=y,
                  pde_mc_error=np.abs(mc - pde["coarse"]["mc"]))
    boot = cmp.bootstrap(rng=16)
    return {"d": d, "times": times, "pde_loss": pde_loss, "cmp": cmp, "boot": boot,
            "pde_error": error, "mc": mc_final, "mc_pde": mc, "pde": pde,
            "particle_wall": {n: float(np.mean([results[(n, s)][2] for s in range(size.seeds)]))
                              for n in size.n},
            "nodes": red.unit.nodes, "data_points": int(red.reduced.data.size)}


def _num(x: float) -> float | None:
    """A JSON number, None for nan (an exponent with fewer than 2 resolved widths)."""
    return float(x) if np.isfinite(x) else None


def gallery(run_dir, size: Size, studies: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, s in enumerate(studies):
        cmp = s["cmp"]
        axes[0].plot(s["times"], 2 * s["pde_loss"], f"C{i}-", lw=2, label=f"PDE, d={s['d']}")
        axes[0].plot(s["times"], 2 * cmp.loss_mean[-1], f"C{i}o", ms=4,
                     label=f"particles n={cmp.n[-1]}, d={s['d']}")
        j = len(s["times"]) - 1
        axes[1].loglog(cmp.n, cmp.gap[:, j], f"C{i}o-", label=f"d={s['d']}, t={s['times'][j]:g}")
        axes[1].loglog(cmp.n, cmp.gap[:, 0], f"C{i}s--", alpha=0.6, label=f"d={s['d']}, t=0")
        alpha = s["boot"].alpha
        axes[2].plot(s["times"], cmp.exponent(), f"C{i}-", label=f"d={s['d']}")
        axes[2].fill_between(s["times"], alpha[0], alpha[1], color=f"C{i}", alpha=0.2)
    n = np.array(size.n, float)
    ref = studies[0]["cmp"].gap[0, 0] * (n / n[0]) ** -0.5
    axes[1].loglog(n, ref, "k:", label="n^-1/2")
    axes[0].set(xlabel="t", ylabel="risk E(f - y)^2", yscale="log",
                title="risk: reduced PDE vs particles in R^d")
    axes[1].set(xlabel="n", ylabel="||f_n - f_t||", title="gap vs width")
    axes[2].set(xlabel="t", ylabel="alpha", title="gap ~ n^-alpha (90% bootstrap)")
    axes[2].axhline(0.5, color="k", ls=":")
    for ax in axes:
        ax.legend(fontsize=7)
    _common.save_figure(
        fig, run_dir.path / "gallery.png",
        f"single-index teacher tanh(x_1), tanh student, online SGD (rk4, dt "
        f"{size.dt:g}, batch {size.batch}) vs the 2-D reduced PDE")


def main(argv: list[str] | None = None) -> None:
    args = _common.parse_args(__doc__, argv)
    comm = MPI.COMM_WORLD
    size = SIZES[args.size]
    run_dir = _common.open_run("single_index", args)
    start = time.perf_counter()
    studies = [study(d, size, comm) for d in size.dims]
    wall = comm.allreduce(time.perf_counter() - start, MPI.MAX)
    if comm.rank != 0:
        _common.finish(run_dir, {}, comm)
        return
    rows, per_d = [], {}
    for s in studies:
        cmp, boot = s["cmp"], s["boot"]
        for j, t in enumerate(s["times"]):
            rows.append((s["d"], t, 2 * s["pde_loss"][j], *(2 * cmp.loss_mean[:, j]),
                         *cmp.gap[:, j], cmp.exponent(j), boot.alpha[0][j], boot.alpha[1][j],
                         s["pde_error"][j]))
        per_d[str(s["d"])] = {
            "pde_risk_initial": float(2 * s["pde_loss"][0]),
            "pde_risk_final": float(2 * s["pde_loss"][-1]),
            "particle_risk_final": [float(2 * v) for v in cmp.loss_mean[:, -1]],
            "gap_initial": cmp.gap[:, 0].tolist(), "gap_final": cmp.gap[:, -1].tolist(),
            "alpha_initial": [_num(cmp.exponent(0)), _num(boot.alpha[0][0]),
                              _num(boot.alpha[1][0])],
            "alpha_final": [_num(cmp.exponent(len(cmp.times) - 1)), _num(boot.alpha[0][-1]),
                            _num(boot.alpha[1][-1])],
            "pde_error_max": float(np.max(s["pde_error"])),
            "pde_outflow": s["pde"]["fine"]["outflow"],
            "pde_outflow_coarse": s["pde"]["coarse"]["outflow"],
            "crbv_ratio_initial": (cmp.n * cmp.gap[:, 0] ** 2 / s["mc_pde"][0]).tolist(),
            "crbv_ratio_final": (cmp.n * cmp.gap[:, -1] ** 2 / s["mc_pde"][-1]).tolist(),
            "mc_pde_initial": float(s["mc_pde"][0]), "mc_pde_final": float(s["mc_pde"][-1]),
            "mc_particles_final": s["mc"],
            "pde_wall_time": s["pde"]["fine"]["wall_time"], "pde_steps": s["pde"]["fine"]["steps"],
            "particle_wall_time_per_run": s["particle_wall"],
            "t_rule_nodes_max": s["nodes"], "reduced_data_points": s["data_points"],
        }
    header = ("d", "t", "pde_risk", *(f"risk_n{n}" for n in size.n),
              *(f"gap_n{n}" for n in size.n), "alpha", "alpha_lo", "alpha_hi", "pde_error")
    run_dir.write_csv("risk.csv", header, rows)
    gallery(run_dir, size, studies)
    summary = {"size": args.size, "dims": list(size.dims), "n": list(size.n),
               "seeds": size.seeds, "t_final": size.t_final, "cells": list(size.cells),
               "sgd_dt": size.dt, "sgd_batch": size.batch, "test_points": size.test_points,
               "per_d": per_d, "wall_time": wall}
    lines = ["# Single-index teacher, tanh student: reduced PDE vs particles in R^d", "",
             f"y = tanh(x_1), x ~ N(0, I_d), f = mean tanh(w_i . x), w(0) ~ N(0, {S0}^2 I/d); "
             f"PDE: DG1 {size.cells[0]} x {size.cells[1]} cells on (a, q) in {list(A_BOX)} x "
             f"[0, {Q_MAX}] (error budget: half the cells); particles: n = {list(size.n)} x "
             f"{size.seeds} seeds, online SGD rk4 dt = {size.dt}, batch {size.batch}; "
             f"{size.test_points} test points.", "",
             "| d | PDE risk t=0 | PDE risk t_f | particle risk t_f (widest) | alpha(0) | "
             "alpha(t_f) | max PDE error | PDE wall s | particle wall s (widest run) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for d, v in per_d.items():
        a0, af = ([np.nan if a is None else a for a in v[key]]
                  for key in ("alpha_initial", "alpha_final"))
        lines.append(f"| {d} | {v['pde_risk_initial']:.4f} | {v['pde_risk_final']:.4f} | "
                     f"{v['particle_risk_final'][-1]:.4f} | {a0[0]:.3f} [{a0[1]:.3f}, "
                     f"{a0[2]:.3f}] | {af[0]:.3f} [{af[1]:.3f}, {af[2]:.3f}] | "
                     f"{v['pde_error_max']:.1e} | {v['pde_wall_time']:.1f} | "
                     f"{v['particle_wall_time_per_run'][size.n[-1]]:.1f} |")
    lines += ["", "CRBV: n gap^2 / MC(t), MC(t) = E_x[int s^2 rho_t - f_t^2] of the full units "
              "as the reduced PDE reports it (values_squared = E_t[tanh^2]); the widest runs' "
              "unit variance at t_final (test points) is its check.", "",
              "| d | MC(0) PDE | MC(t_f) PDE | MC(t_f) particles | n gap^2 / MC at t = 0 | "
              "at t_f |", "|---|---|---|---|---|---|"]
    for d, v in per_d.items():
        lines.append(f"| {d} | {v['mc_pde_initial']:.4f} | {v['mc_pde_final']:.4f} | "
                     f"{v['mc_particles_final']:.4f} | "
                     + ", ".join(f"{r:.2f}" for r in v["crbv_ratio_initial"]) + " | "
                     + ", ".join(f"{r:.2f}" for r in v["crbv_ratio_final"]) + " |")
    lines += ["", "![gallery](gallery.png)"]
    run_dir.write_text("report.md", "\n".join(lines) + "\n")
    _common.finish(run_dir, summary, comm)


if __name__ == "__main__":
    sys.exit(_common.run(main))
