"""Centred anisotropic Gaussians (Mei, Montanari and Nguyen): a 2-D PDE for (|w_U|, |w_perp|)
against SGD in d = 40 (issue 16).

The problem [MMN, PNAS 115 (2018) E7665, "centered anisotropic Gaussians"]: labels y = +1 and
y = -1 with probability 1/2 each, x | y ~ N(0, Sigma_y), Sigma_(+-) = diag((1 +- Delta)^2
I_s0, I_(d - s0)): the classes differ only in their scale along the s0-dimensional subspace U
= span(e_1..e_s0). The network f(x) = (1/n) sum_i sigma*(<w_i, x>) (MMN's piecewise-linear
sigma*, knots 0.5, 1.5, values -2.5, 7.5, output weight fixed to 1) is trained on the square
loss E = 1/2 E[(f - y)^2] (MMN's risk R = E[(f - y)^2] = 2 E), w_i(0) ~ N(0, r0^2/d I_d),
r0 = 0.8 as in examples/isotropic_gaussians.py. Our choices, MMN-type: d = 40, s0 = 8,
Delta = 0.5 (the paper's exact numbers could not be checked here).

The reduction (solver/model/reduction.py, ``radial_u``). The data law is invariant under the
rotations of U and those of U^perp, so a rho that is stays so, and the law of
(a, q) = (|w_U|, |w_perp|) solves the PDE d rho/dt = div(rho grad Psi_red) on [0, a_max] x
[0, q_max] with the reduced unit

    s_red(r_U, r_perp; a, q) = E_{t1 ~ p_s0, t2 ~ p_(d - s0)}[sigma*(a r_U t1 + q r_perp t2)],

p_m the law of a cosine on S^(m-1) (``TwoRadiiRidgeUnit``: the t2 average in closed form, the
t1 average by a composite rule split at sigma*'s breakpoints, interpolated from an (alpha,
beta) table whose measured error the report gives), and the data (r_U, r_perp, y) = (|x_U|,
|x_perp|, y) ~ (1 + y Delta) chi_s0 x chi_(d - s0) by Gauss rules. Both walls a = 0 and
q = 0 are no-flux by symmetry (s_red is even in a and in q).

Compared with: online SGD of the full d = 40 network (n = 200, 800, 3200 particles w_i in
R^40, seeds, one fresh batch per step, the mean-field time t = steps * dt), on one Monte
Carlo test set whose reductions are zero-weight points of the reduced rule (so the PDE's
f_t is known there too): the risks on that set (PDE vs SGD per n), the risk gap and its
scaling in n, the L2(test) gap ||f_n - f_t||, the KS distances between the SGD marginals of
|w_U| and |w_perp| and the PDE's, and the PDE error budget (the same PDE on half the cells).

Outputs: gallery.png (risk vs t, gaps vs n, the PDE density of (|w_U|, |w_perp|) under the
SGD particles at three times, the marginals at t_final), risk.csv, report.md, summary.json.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import NamedTuple

import _common
import numpy as np
from mpi4py import MPI

from particle_check.particles import simulate
from solver.model import reduction
from solver.settings import PDESettings


class Size(NamedTuple):
    t_final: float
    snapshots: tuple[float, ...]  # density snapshot times (t_final last)
    cells: int  # DG1 cells per axis on [0, A_MAX] x [0, Q_MAX]
    n: tuple[int, ...]  # SGD widths
    seeds: int
    dt: float  # SGD step
    batch: int
    test_points: int  # Monte Carlo test set (full x, and zero-weight reduced rows)
    nodes: int  # Gauss nodes in r_U and in r_perp per class
    table_step: float  # the unit's (alpha, beta) table


SIZES = {
    "small": Size(1.0, (0.0, 0.5, 1.0), 16, (100, 400), 1, 4e-3, 20, 500, 10, 0.1),
    "default": Size(10.0, (0.0, 1.0, 10.0), 64, (200, 800, 3200), 3, 2e-3, 20, 2000, 16,
                    0.05),
}
D, S0, DELTA, R0 = 40, 8, 0.5, 0.8
A_MAX, Q_MAX = 2.5, 2.5
OUTPUTS = 20  # equal output intervals on [0, t_final]


def setting(size: Size) -> reduction.Reduction:
    law = reduction.DataLaw(D, S0, classes=(
        reduction.GaussianClass(0.5, 1.0, 1.0 + DELTA, 1.0),
        reduction.GaussianClass(0.5, -1.0, 1.0 - DELTA, 1.0)), labelled=True, radial_u=True)
    return reduction.ridge_problem(
        "mmn_piecewise_linear", D, S0, law=law, target="label", output=1.0,
        w_std=R0 / np.sqrt(D), a_max=A_MAX, q_max=Q_MAX, nodes_u=size.nodes,
        nodes_r=size.nodes, test_points=size.test_points, seed=2018, t_final=size.t_final,
        radial_u=True, table_step=size.table_step, name="anisotropic-gaussians")


def pde_settings(size: Size, cells: int) -> PDESettings:
    # max_outflow: the walls a = 0, q = 0 have no normal velocity, the scheme's velocity (the
    # gradient of the CG interpolant of Psi) an O(h^2) one: the report gives what left
    return PDESettings(cells=(cells, cells), scheme="dg", degree=1, integrator="ssprk3",
                       outputs=OUTPUTS, snapshots=0, progress=False, max_outflow=1e-3)


# --- the PDE ------------------------------------------------------------------------------


def cells_of(result, problem) -> dict:
    """The density's cells: centroids (N, 2), masses (N,), cell averages, polygons."""
    from solver.pde.output import gather_cell_values

    polygons, values = gather_cell_values(result.scheme.rho, problem.domain)
    x, y = polygons[:, :, 0], polygons[:, :, 1]
    area = 0.5 * np.abs(np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, axis=1))
    return {"centroid": polygons.mean(axis=1), "mass": values * area, "value": values,
            "polygons": polygons}


def marginal_cdf(cells: dict, axis: int, edges: np.ndarray) -> np.ndarray:
    """P(theta_axis <= e) at the mesh lines ``edges`` (every cell lies between two)."""
    column = np.searchsorted(edges, cells["centroid"][:, axis]) - 1
    mass = np.bincount(column, weights=cells["mass"], minlength=edges.size - 1)
    return np.concatenate([[0.0], np.cumsum(mass)])


def solve_pde(red: reduction.Reduction, size: Size) -> dict:
    """The reduced PDE (and on half the cells): risks, f at the test points, densities."""
    from solver.pde.solve import solve

    out = {}
    for key, cells in (("fine", size.cells), ("coarse", size.cells // 2)):
        start = time.perf_counter()
        result = solve(red.reduced, pde_settings(size, cells), comm=MPI.COMM_SELF)
        f = np.asarray(result.f)
        out[key] = {"risk": 2.0 * np.asarray(result.loss), "f": f[:, red.test], "f_all": f,
                    "outflow": float(np.sum(result.steps["boundary_outflow"])),
                    "steps": len(result.steps["t"]) - 1,
                    "wall_time": time.perf_counter() - start, "cells": cells_of(result,
                                                                                 red.reduced)}
    # the densities at the other snapshot times: solves to t on the fine mesh
    densities = {size.t_final: out["fine"]["cells"]}
    for t in size.snapshots[:-1]:
        if t == 0.0:
            densities[t] = None  # rho_0 is known in closed form
            continue
        problem = dataclasses.replace(red.reduced, t_final=t)
        densities[t] = cells_of(solve(problem, pde_settings(size, size.cells),
                                      comm=MPI.COMM_SELF), problem)
    out["densities"] = densities
    # the velocity at the walls a = 0 and q = 0 (zero by symmetry), at rho_t_final
    from solver.model import functionals

    wall = np.array([[0.0, q] for q in np.linspace(0.1, 2.0, 8)]
                    + [[a, 0.0] for a in np.linspace(0.1, 2.0, 8)])
    grad = functionals.potential_gradient(red.reduced, wall, out["fine"]["f_all"][-1])
    out["wall_velocity"] = float(max(np.abs(grad[:8, 0]).max(), np.abs(grad[8:, 1]).max()))
    return out


# --- SGD of the full network ------------------------------------------------------------


def run_sgd(red: reduction.Reduction, size: Size, times: np.ndarray, n: int,
            seed: int) -> dict:
    """Online SGD from w ~ rho_0; (|w_U|, |w_perp|) kept at the snapshot times."""
    rng = np.random.default_rng(np.random.SeedSequence(2018, spawn_key=(n, seed)))
    theta = red.full.sample_initial(rng, n)
    radii, f, loss = {0.0: red.reduce_params(theta)}, [], []
    start, clock = 0, time.perf_counter()
    for t in size.snapshots[1:]:
        stop = int(np.searchsorted(times, t - 1e-12))
        run = simulate(red.full, theta, times[start:stop + 1], size.dt, "euler", rng=rng,
                       batch=size.batch)
        keep = slice(0 if start == 0 else 1, None)
        f.extend(run.f[keep])
        loss.extend(run.loss[keep])
        theta, start = run.theta, stop
        radii[t] = red.reduce_params(theta)
    return {"radii": radii, "risk": 2.0 * np.array(loss), "f": np.array(f),
            "wall_time": time.perf_counter() - clock}


# --- numbers and figures ------------------------------------------------------------------


def ks_distance(samples: np.ndarray, edges: np.ndarray, cdf: np.ndarray) -> float:
    """max over the mesh lines of |F_n - F|: the PDE's marginal CDF is exact there."""
    empirical = np.searchsorted(np.sort(samples), edges, side="right") / samples.size
    return float(np.max(np.abs(empirical - cdf)))


def initial_cdf(axis: int, edges: np.ndarray) -> np.ndarray:
    from scipy.stats import chi

    k = S0 if axis == 0 else D - S0
    return chi.cdf(edges / (R0 / np.sqrt(D)), k)


def slope(n: np.ndarray, gap: np.ndarray) -> float:
    """The least-squares exponent alpha of gap ~ n^-alpha."""
    return float(-np.polyfit(np.log(n), np.log(gap), 1)[0])


def gallery(run_dir, size: Size, times, pde, sgd, gaps, edges, cdfs) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    fig, axes = plt.subplots(3, 3, figsize=(14, 12))
    ax = axes[0, 0]
    ax.plot(times, pde["fine"]["test_risk"], "k-", lw=2, label="PDE (test set)")
    for i, n in enumerate(size.n):
        for s in range(size.seeds):
            ax.plot(times, sgd[(n, s)]["risk"], f"C{i}-", alpha=0.5, lw=1,
                    label=f"SGD n={n}" if s == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("risk E(f - y)^2")
    ax.set_title("risk vs time")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    n = np.array(size.n, float)
    for j, (label, values) in enumerate(gaps.items()):
        ax.loglog(n, values, "o-", color=f"C{j}", label=label)
    ax.loglog(n, gaps["L2 gap, t=0"][0] * (n / n[0]) ** -0.5, "k:", label="n^-1/2")
    ax.set_xlabel("n")
    ax.set_title("SGD - PDE gaps vs width (mean over seeds)")
    ax.legend(fontsize=7)
    ax = axes[0, 2]
    for j, axis_name in enumerate(("|w_U|", "|w_perp|")):
        ks = [max(cdfs["ks"][(nn, t, j)] for t in size.snapshots) for nn in size.n]
        ax.loglog(n, ks, "o-", color=f"C{j}", label=f"KS, {axis_name} (max over t)")
    ax.loglog(n, 1.0 / np.sqrt(n * size.seeds), "k:", label="1/sqrt(n seeds)")
    ax.set_xlabel("n")
    ax.set_title("KS distance of the SGD marginals")
    ax.legend(fontsize=8)
    widest = size.n[min(1, len(size.n) - 1)]
    for ax, t in zip(axes[1], size.snapshots, strict=False):
        cells = pde["densities"][t]
        if cells is not None:
            coll = PolyCollection(cells["polygons"], array=cells["value"], cmap="viridis",
                                  edgecolors="none")
            ax.add_collection(coll)
        else:
            from scipy.stats import chi

            a, q = np.meshgrid(np.linspace(0, A_MAX, 200), np.linspace(0, Q_MAX, 200))
            s = R0 / np.sqrt(D)
            rho = chi.pdf(a / s, S0) * chi.pdf(q / s, D - S0) / s**2
            ax.pcolormesh(a, q, rho, cmap="viridis", shading="auto")
        pts = sgd[(widest, 0)]["radii"][t]
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c="w", alpha=0.6, label=f"SGD n={widest}")
        ax.set_xlim(0, A_MAX)
        ax.set_ylim(0, Q_MAX)
        ax.set_xlabel("a = |w_U|")
        ax.set_ylabel("q = |w_perp|")
        ax.set_title(f"PDE density and SGD particles, t = {t:g}")
    t = size.t_final
    for j, ax in enumerate(axes[2, :2]):
        samples = np.concatenate([sgd[(size.n[-1], s)]["radii"][t][:, j]
                                  for s in range(size.seeds)])
        cdf = cdfs["pde"][(t, j)]
        ax.stairs(np.diff(cdf) / np.diff(edges[j]), edges[j], color="k", lw=1.5,
                  label="PDE marginal")
        ax.hist(samples, bins=60, range=(0, edges[j][-1]), density=True, alpha=0.5,
                label=f"SGD n={size.n[-1]} x {size.seeds}")
        top = edges[j][min(np.searchsorted(cdf, 1 - 1e-4) + 2, edges[j].size - 1)]
        ax.set_xlim(0, max(top, np.quantile(samples, 0.999)))
        ax.set_xlabel(("a = |w_U|", "q = |w_perp|")[j])
        ax.set_title(f"marginal at t = {t:g}")
        ax.legend(fontsize=8)
    ax = axes[2, 2]
    ax.plot(times, pde["fine"]["test_risk"], "k-", label="PDE, test set")
    ax.plot(times, pde["fine"]["risk"], "k--", label="PDE, Gauss rule")
    ax.plot(times, np.abs(pde["fine"]["test_risk"] - pde["coarse"]["test_risk"]), "r:",
            label="PDE error budget |fine - coarse|")
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_title("PDE risk and its error budget")
    ax.legend(fontsize=8)
    _common.save_figure(
        fig, run_dir.path / "gallery.png",
        f"Centred anisotropic Gaussians (MMN-type), d={D}, s0={S0}, Delta={DELTA}: 2-D PDE for "
        f"(|w_U|, |w_perp|) vs online SGD (batch {size.batch}, dt={size.dt:g})")


# --- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = _common.parse_args(__doc__, argv)
    comm = MPI.COMM_WORLD
    size = SIZES[args.size]
    run_dir = _common.open_run("anisotropic_gaussians", args)
    start = time.perf_counter()
    red = setting(size)
    times = pde_settings(size, size.cells).output_times(size.t_final)
    # rank 0 solves the PDE, the (width, seed) runs are dealt over the others (all ranks
    # when there is one); the results do not depend on the ranks
    tasks = [(n, s) for n in size.n for s in range(size.seeds)]
    workers = list(range(1, comm.size)) or [0]
    pde = None
    if comm.rank == 0:
        clock = time.perf_counter()
        red.unit.double_averages(np.ones(1), np.ones(1))  # the table, timed on its own
        table_time = time.perf_counter() - clock
        pde = solve_pde(red, size)
    mine = {task: run_sgd(red, size, times, *task) for i, task in enumerate(tasks)
            if workers[i % len(workers)] == comm.rank}
    gathered = comm.gather(mine, root=0)
    wall = comm.allreduce(time.perf_counter() - start, MPI.MAX)
    if comm.rank != 0:
        _common.finish(run_dir, {}, comm)
        return
    sgd = {k: v for part in gathered for k, v in part.items()}
    y = red.full.y
    for key in ("fine", "coarse"):
        pde[key]["test_risk"] = np.mean((pde[key]["f"] - y) ** 2, axis=1)
    f_pde = pde["fine"]["f"]
    budget = float(np.max(np.abs(pde["fine"]["test_risk"] - pde["coarse"]["test_risk"])))

    # gaps per width (mean over seeds): risk gap R_n - R_pde on the test set, max over t and
    # at t_final; L2(test) gap ||f_n - f_t|| at t = 0 and t_final
    gap = {}
    for n in size.n:
        runs = [sgd[(n, s)] for s in range(size.seeds)]
        risk_gap = np.mean([r["risk"] - pde["fine"]["test_risk"] for r in runs], axis=0)
        l2 = np.mean([np.sqrt(np.mean((r["f"] - f_pde) ** 2, axis=1)) for r in runs], axis=0)
        gap[n] = {"risk_gap": risk_gap, "l2": l2}
    n_arr = np.array(size.n, float)
    gaps = {"|risk gap|, max over t": [float(np.max(np.abs(gap[n]["risk_gap"])))
                                       for n in size.n],
            f"|risk gap|, t={size.t_final:g}": [float(abs(gap[n]["risk_gap"][-1]))
                                                for n in size.n],
            "L2 gap, t=0": [float(gap[n]["l2"][0]) for n in size.n],
            f"L2 gap, t={size.t_final:g}": [float(gap[n]["l2"][-1]) for n in size.n]}

    # marginal CDFs of a and q (PDE, exact at the mesh lines) and KS distances
    edges = [np.linspace(0, A_MAX, size.cells + 1), np.linspace(0, Q_MAX, size.cells + 1)]
    cdfs = {"pde": {}, "ks": {}}
    for t in size.snapshots:
        for j in (0, 1):
            cells = pde["densities"][t]
            cdf = initial_cdf(j, edges[j]) if cells is None else marginal_cdf(
                cells, j, edges[j])
            cdfs["pde"][(t, j)] = cdf
            for n in size.n:
                samples = np.concatenate([sgd[(n, s)]["radii"][t][:, j]
                                          for s in range(size.seeds)])
                cdfs["ks"][(n, t, j)] = ks_distance(samples, edges[j], cdf)

    sgd_mean = {n: np.mean([sgd[(n, s)]["risk"] for s in range(size.seeds)], axis=0)
                for n in size.n}
    run_dir.write_csv(
        "risk.csv", ("t", "pde_risk_rule", "pde_risk_test", *(f"sgd_risk_n{n}" for n in size.n)),
        zip(times, pde["fine"]["risk"], pde["fine"]["test_risk"],
            *(sgd_mean[n] for n in size.n), strict=True))
    gallery(run_dir, size, times, pde, sgd, gaps, edges, cdfs)
    exponents = {k: (slope(n_arr, np.array(v)) if len(size.n) > 1 else None)
                 for k, v in gaps.items()}
    ks = {f"n={n}": {f"t={t:g}": {"a": cdfs["ks"][(n, t, 0)], "q": cdfs["ks"][(n, t, 1)]}
                     for t in size.snapshots} for n in size.n}
    summary = {
        "d": D, "s0": S0, "delta": DELTA, "r0": R0, "t_final": size.t_final,
        "n": list(size.n), "seeds": size.seeds, "sgd_dt": size.dt, "sgd_batch": size.batch,
        "test_points": size.test_points, "pde_cells": [size.cells, size.cells],
        "pde_steps": pde["fine"]["steps"], "data_points": int(np.sum(
            red.reduced.data.weights > 0)), "outer_nodes": red.unit.nodes,
        "table_error": red.unit.table_error, "table_time": table_time,
        "pde_risk_initial": float(pde["fine"]["risk"][0]),
        "pde_risk_final": float(pde["fine"]["risk"][-1]),
        "pde_test_risk_initial": float(pde["fine"]["test_risk"][0]),
        "pde_test_risk_final": float(pde["fine"]["test_risk"][-1]),
        "sgd_risk_final": {f"n={n}": float(sgd_mean[n][-1]) for n in size.n},
        "gaps": gaps, "gap_exponents": exponents, "pde_error_budget": budget,
        "ks_distance": ks, "ks_scale": {f"n={n}": float(1 / np.sqrt(n * size.seeds))
                                        for n in size.n},
        "wall_velocity": pde["wall_velocity"],
        "pde_outflow": pde["fine"]["outflow"],
        "pde_wall_time": pde["fine"]["wall_time"],
        "sgd_wall_time": {f"n={n}": float(np.mean([sgd[(n, s)]["wall_time"]
                                                   for s in range(size.seeds)]))
                          for n in size.n},
        "wall_time": wall,
    }
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    lines = [
        "# Centred anisotropic Gaussians: 2-D PDE for (|w_U|, |w_perp|) vs SGD in d = 40", "",
        f"d = {D}, s0 = {S0}, Delta = {DELTA} (our MMN-type choices), sigma* knots (0.5, 1.5) "
        f"values (-2.5, 7.5), r0 = {R0}; PDE: DG1, {size.cells}^2 cells on [0, {A_MAX:g}] x "
        f"[0, {Q_MAX:g}], {summary['data_points']} Gauss data points, unit table error "
        f"{red.unit.table_error:.1e}; SGD: n = {', '.join(map(str, size.n))} x {size.seeds} "
        f"seeds, batch {size.batch}, dt = {size.dt:g}; test set {size.test_points} points.", "",
        "| t | PDE risk (rule) | PDE risk (test) | "
        + " | ".join(f"SGD n={n}" for n in size.n) + " |",
        "|---" * (3 + len(size.n)) + "|",
        *(f"| {times[i]:.3g} | {pde['fine']['risk'][i]:.4f} | {pde['fine']['test_risk'][i]:.4f}"
          " | " + " | ".join(f"{sgd_mean[n][i]:.4f}" for n in size.n) + " |"
          for i in range(0, times.size, max(1, times.size // 10))), "",
        "Gaps (mean over seeds), per n = " + ", ".join(map(str, size.n)) + ":", "",
        *(f"- {k}: " + ", ".join(f"{v:.2e}" for v in vals) + f" (exponent {fmt(exponents[k])})"
          for k, vals in gaps.items()), "",
        f"PDE error budget (max |risk fine - coarse| on the test set): {budget:.1e}.", "",
        "KS distances (a = |w_U|, q = |w_perp|) between the pooled SGD radii and the PDE "
        "marginals:", "",
        *(f"- n = {n} (1/sqrt(n seeds) = {1 / np.sqrt(n * size.seeds):.3f}): " + ", ".join(
            f"t={t:g}: {cdfs['ks'][(n, t, 0)]:.3f} / {cdfs['ks'][(n, t, 1)]:.3f}"
            for t in size.snapshots) for n in size.n), "",
        f"|dPsi/da| at a = 0 and |dPsi/dq| at q = 0: {pde['wall_velocity']:.1e}; mass out "
        f"through the walls: {pde['fine']['outflow']:.1e}.", "",
        "![gallery](gallery.png)",
    ]
    run_dir.write_text("report.md", "\n".join(lines) + "\n")
    _common.finish(run_dir, summary, comm)


if __name__ == "__main__":
    sys.exit(_common.run(main))
