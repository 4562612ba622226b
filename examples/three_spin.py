"""Continuous 3-spin model (Rotskoff, Vanden-Eijnden): loss vs n in d = 25, PDE on the circle.

The target [RVE, CPAM 2022 / arXiv:1805.00915, the spherical 3-spin example] is

    F(x) = sum_{i,j,k=1}^d a_ijk x_i x_j x_k,   a_ijk i.i.d. N(0, 1),   x uniform on S^{d-1},

here on the *unit* sphere, scaled to y = A F / rms(F) (rms over the data) with A below. The
network has RBF units s(x; c, z) = c exp(-|x - z|^2 / (2 w^2)), theta = (c, z),

    f_n(x) = (1/n) sum_i s(x; theta_i),  E = 1/2 sum_m w_m (f_n(x_m) - y_m)^2,

trained by gradient descent in the mean-field time scaling (d theta_i/dt = -grad Psi).

Part A, d = 25 (particles only: no mesh of R^26). z starts near the sphere (z ~ N(0, I/d),
|z| = 1 +- 0.14) and moves in R^d, c ~ N(0, 1); w = d^(-1/4) so that x.z / w^2 = O(1) and a
unit carries the cubic harmonics. A = the rms over x of one unit with c = 1, |z| = 1
(A^2 = E_u exp(-2 (1 - u) / w^2), u = x.z with density ~ (1 - u^2)^((d-3)/2); A ~ 0.018),
so that c = O(1) fits the target; times are given as tau = A^2 t and losses as
L = E / E[f = 0] = 2 E / A^2. Data: M = 256 Monte Carlo points on S^24 (the training set);
a test set of 2048 more. Widths n over a geometric range, a few seeds each, run to tau_final
with Dormand-Prince; the fit log L(tau_final) = log C - alpha log n over every (n, seed),
with a 90% bootstrap interval (seeds resampled per width). The theory describes this
training loss (the energy on the data rule); the test loss stays near 1 at these n: 256
points cannot pin down a cubic form with ~d^3/6 = 2600 independent coefficients.

Part B, d = 2 (the PDE is solvable): x = (cos phi, sin phi) on the circle, z an angle too
(the unit ``circle_rbf``, c exp((cos(phi - z) - 1) / w^2) = c exp(-|x - z|^2 / (2 w^2)) for
unit vectors), F a trigonometric polynomial of degree 3, scaled to rms 1 (A = 1, w = 0.5);
rho(c, z) on the cylinder [-6, 6] x S^1 (DG2) against particle ensembles, through the
project's comparison pipeline (its report lands in <output>/circle). Without DOLFINx (a
particle-only install, docs/install.md) Part B is skipped and the outputs say so.

Outputs: gallery.png, loss_vs_n.csv, part_a.npz, report.md, circle/ (the PDE-vs-particles
report), summary.json.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from typing import NamedTuple

import _common
import numpy as np
from mpi4py import MPI
from scipy.special import roots_jacobi

from particle_check.particles import simulate
from particle_check.pipeline import run_comparison
from solver import config
from solver.io import RunDirectory
from solver.model import density, quadrature, targets, units
from solver.model.domain import Box
from solver.model.problem import Problem


class Size(NamedTuple):
    widths: tuple[int, ...]  # Part A
    seeds: int
    tau_final: float
    circle_n: tuple[int, ...]  # Part B
    circle_seeds: int
    circle_t_final: float
    circle_cells: int


SIZES = {
    "small": Size((8, 16, 32), 2, 12.0, (16, 64), 2, 0.5, 12),
    "default": Size((8, 16, 32, 64, 128), 3, 40.0, (64, 256, 1024), 4, 4.0, 48),
}
D, M, M_TEST, RTOL = 25, 256, 2048, 1e-3
SEED = 1805  # a_ijk, the data and the particle seeds derive from it
LEVEL, RESAMPLES = 0.90, 2000


# --- Part A: d = 25, particles only --------------------------------------------------------


def unit_rms(d: int, width: float) -> float:
    """A = (E_x exp(-|x - z|^2 / w^2))^(1/2) for |z| = 1, x uniform on S^{d-1}: a Gauss-Jacobi
    rule in u = x.z (weight (1 - u^2)^((d-3)/2))."""
    u, weights = roots_jacobi(64, 0.5 * (d - 3), 0.5 * (d - 3))
    return float(np.sqrt(weights @ np.exp(-2.0 * (1.0 - u) / width**2) / weights.sum()))


def sphere_problem(tau_final: float) -> tuple[Problem, float, quadrature.DataQuadrature]:
    """The d = 25 problem (time in units of 1/A^2), A, and the test set."""
    width = D ** -0.25
    amplitude = unit_rms(D, width)
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((D, D, D))
    data = quadrature.monte_carlo("sphere", M, SEED, dim=D)
    test = quadrature.monte_carlo("sphere", M_TEST, SEED + 1, dim=D)
    raw = targets.CubicFormTarget(a)(data.points)
    target = targets.CubicFormTarget(a, amplitude / np.sqrt(np.mean(raw**2)))
    std = np.concatenate([[1.0], np.full(D, 1.0 / np.sqrt(D))])
    problem = Problem(units.RBFUnit(D, width), data, target,
                      Box((-1e3,) * (D + 1), (1e3,) * (D + 1)),
                      density.Gaussian(np.zeros(D + 1), std),
                      t_final=tau_final / amplitude**2, name="three-spin-d25")
    return problem, amplitude, test


def run_widths(problem: Problem, amplitude: float, test: quadrature.DataQuadrature,
               size: Size, taus: np.ndarray, comm: MPI.Comm) -> dict[tuple[int, int], dict]:
    """Every (n, seed) task, largest first round-robin over ranks; rank 0 gets them all."""
    tasks = sorted(((n, s) for n in size.widths for s in range(size.seeds)), reverse=True)
    times = taus / amplitude**2
    e0 = 0.5 * amplitude**2
    y_test = problem.target(test.points)
    mine = {}
    for n, seed in tasks[comm.rank::comm.size]:
        rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(n, seed)))
        run = simulate(problem, problem.sample_initial(rng, n), times, times[1], "adaptive",
                       rtol=RTOL, atol=1e-6)
        f_test = problem.unit.values(test.points, run.theta).mean(axis=1)
        mine[(n, seed)] = {"loss": run.loss / e0, "steps": run.steps,
                           "test": 0.5 * np.mean((f_test - y_test) ** 2) / e0}
    gathered = comm.gather(mine, root=0)
    return {k: v for part in gathered for k, v in part.items()} if comm.rank == 0 else {}


def fit_exponent(widths: np.ndarray, losses: np.ndarray, rng: np.random.Generator
                 ) -> tuple[float, float, float]:
    """alpha of log L = log C - alpha log n (least squares over every (n, seed)), with the
    LEVEL bootstrap interval from resampling the seeds of each width. losses: (widths, seeds)."""
    def slope(values: np.ndarray) -> float:
        x = np.repeat(np.log(widths), values.shape[1])
        return float(-np.polyfit(x, np.log(values).ravel(), 1)[0])

    seeds = losses.shape[1]
    boot = [slope(np.take_along_axis(losses, rng.integers(0, seeds, losses.shape), axis=1))
            for _ in range(RESAMPLES)]
    lo, hi = np.quantile(boot, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return slope(losses), float(lo), float(hi)


# --- Part B: the circle, PDE vs particles -------------------------------------------------


def circle_expression(rng: np.random.Generator) -> str:
    """F(phi) = sum a_ijk x_i x_j x_k with x = (cos phi, sin phi), scaled to rms 1, as a
    target expression in the angle x."""
    a = rng.standard_normal((2, 2, 2))
    phi = 2.0 * np.pi * np.arange(4096) / 4096  # exact for the degree-3 trig polynomial
    rms = np.sqrt(np.mean(targets.CubicFormTarget(a)(np.column_stack([np.cos(phi),
                                                                      np.sin(phi)])) ** 2))
    names = ("cos(x)", "sin(x)")
    return " + ".join(f"({a[i, j, k] / rms:.17g})*{names[i]}*{names[j]}*{names[k]}"
                      for i in range(2) for j in range(2) for k in range(2))


def circle_config(size: Size, expression: str, output: str) -> config.RunConfig:
    return config.parse({
        "name": "three-spin-circle", "output": output,
        "problem": {"t_final": size.circle_t_final},
        "unit": {"kind": "circle_rbf", "width": 0.5},
        "data": {"kind": "circle_lattice", "points": 64},
        "target": {"kind": "expression", "expression": expression},
        "domain": {"kind": "cylinder", "lower": -6.0, "upper": 6.0},
        "initial": {"kind": "gaussian", "mean": [0.0, 0.0], "std": [0.5, 0.8]},
        "pde": {"cells": [size.circle_cells, size.circle_cells], "scheme": "dg", "degree": 2,
                "integrator": "ssprk3", "outputs": 20, "snapshots": 3},
        "particles": {"n": list(size.circle_n), "seeds": size.circle_seeds, "dt": 0.01,
                      "integrator": "rk4"},
    })


# --- figure ------------------------------------------------------------------------------


def gallery(run_dir: RunDirectory, size: Size, taus: np.ndarray, results: dict,
            fit: tuple[float, float, float], circle: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = np.array(size.widths)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for i, n in enumerate(widths):
        curves = np.array([results[(n, s)]["loss"] for s in range(size.seeds)])
        ax.plot(taus[1:], curves.mean(axis=0)[1:], color=f"C{i}", label=f"n = {n}")
    ax.set(xscale="log", yscale="log", xlabel="tau = A^2 t", ylabel="L = E / E[0]",
           title=f"A: training loss, d = {D} (mean of {size.seeds} seeds)")
    ax.legend(fontsize=8)
    ax = axes[1]
    final = np.array([[results[(n, s)]["loss"][-1] for s in range(size.seeds)]
                      for n in widths])
    test = np.array([[results[(n, s)]["test"] for s in range(size.seeds)] for n in widths])
    ax.plot(np.repeat(widths, size.seeds), final.ravel(), "o", color="C0", alpha=0.6,
            label=f"train L(tau = {size.tau_final:g})")
    ax.plot(np.repeat(widths, size.seeds), test.ravel(), "s", color="C3", alpha=0.5,
            label="test L")
    alpha, lo, hi = fit
    c = np.exp(np.mean(np.log(final)) + alpha * np.mean(np.log(widths)))
    ax.plot(widths, c * widths**-alpha, "k--",
            label=f"n^-alpha, alpha = {alpha:.2f} [{lo:.2f}, {hi:.2f}]")
    ax.set(xscale="log", yscale="log", xlabel="n", ylabel="L",
           title="A: long-time loss vs n (90% bootstrap)")
    ax.legend(fontsize=8)
    ax = axes[2]
    if circle is None:
        ax.text(0.5, 0.5, "B: skipped (needs DOLFINx)", ha="center", va="center")
        ax.set_axis_off()
    else:
        circle_panel(ax, circle)
    _common.save_figure(
        fig, run_dir.path / "gallery.png",
        "Continuous 3-spin model (Rotskoff & Vanden-Eijnden): RBF networks")


def circle_panel(ax, circle: dict) -> None:
    """Part B's alpha(t) with its bootstrap band."""
    rows = [r for r in circle["alpha"] if r["alpha"] is not None]
    t = np.array([r["t"] for r in rows])
    ax.plot(t, [r["alpha"] for r in rows], "k-", label="alpha(t), gap ~ n^-alpha")
    ax.fill_between(t, [r["lo"] for r in rows], [r["hi"] for r in rows], alpha=0.3,
                    color="k", label="90% bootstrap")
    ax.axhline(0.5, color="C0", ls=":", label="1/2 (CLT)")
    ax.axhline(1.0, color="C3", ls=":", label="1")
    ax.set(xlabel="t", ylabel="alpha",
           title="B: circle, ||f_n - f_PDE|| vs n (PDE on the cylinder)")
    ax.legend(fontsize=8)


def part_b_summary(size: Size, circle: dict | None) -> dict:
    """summary.json's part_b (``circle`` None: Part B was skipped)."""
    if circle is None:
        return {"skipped": "needs DOLFINx"}
    last = circle["alpha"][-1]
    return {"n": list(size.circle_n), "seeds": size.circle_seeds,
            "t_final": size.circle_t_final, "cells": size.circle_cells,
            "alpha_final": last["alpha"], "alpha_final_lo": last["lo"],
            "alpha_final_hi": last["hi"], "crbv": circle["crbv"]["verdict"]}


def part_b_line(circle: dict | None) -> str:
    """report.md's line on Part B."""
    if circle is None:
        return "Skipped: needs DOLFINx (docs/install.md)."
    last = circle["alpha"][-1]
    return (f"gap ||f_n - f_PDE|| ~ n^-alpha at t = {last['t']:g}: alpha = {last['alpha']:.2f} "
            f"[{last['lo']:.2f}, {last['hi']:.2f}]; CRBV: {circle['crbv']['verdict']}. "
            "Full report: [circle/report.md](circle/report.md).")


# --- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = _common.parse_args(__doc__, argv)
    comm = MPI.COMM_WORLD
    size = SIZES[args.size]
    run_dir = _common.open_run("three_spin", args, needs_dolfinx=False)
    start = time.perf_counter()

    # Part A: particles in d = 25.
    problem, amplitude, test = sphere_problem(size.tau_final)
    taus = np.concatenate([[0.0], np.geomspace(size.tau_final / 100, size.tau_final, 12)])
    results = run_widths(problem, amplitude, test, size, taus, comm)
    part_a_time = comm.allreduce(time.perf_counter() - start, MPI.MAX)

    # Part B: the circle, PDE vs particles, written to <output>/circle.
    circle = None
    if _common.dolfinx_available():
        circle_dir = RunDirectory(run_dir.path / "circle", writer=comm.rank == 0)
        cfg = circle_config(size, circle_expression(np.random.default_rng(SEED)),
                            str(circle_dir.path))
        if args.no_progress:
            cfg = replace(cfg, pde=replace(cfg.pde, progress=False))
        circle = run_comparison(cfg, circle_dir, comm)
    elif comm.rank == 0:
        print("three_spin: Part B (the PDE on the circle) skipped: needs DOLFINx "
              "(docs/install.md)", file=sys.stderr)
    wall = comm.allreduce(time.perf_counter() - start, MPI.MAX)
    if comm.rank != 0:
        _common.finish(run_dir, {}, comm)
        return

    widths = np.array(size.widths)
    final = np.array([[results[(n, s)]["loss"][-1] for s in range(size.seeds)]
                      for n in widths])
    test_loss = np.array([[results[(n, s)]["test"] for s in range(size.seeds)]
                          for n in widths])
    fit = fit_exponent(widths, final, np.random.default_rng(SEED))
    run_dir.write_csv("loss_vs_n.csv", ("n", "seed", "train_loss", "test_loss", "steps"),
                      [(n, s, results[(n, s)]["loss"][-1], results[(n, s)]["test"],
                        results[(n, s)]["steps"]) for n in widths for s in range(size.seeds)])
    run_dir.write_npz("part_a.npz", taus=taus, widths=widths,
                      loss=np.array([[results[(n, s)]["loss"] for s in range(size.seeds)]
                                     for n in widths]))
    gallery(run_dir, size, taus, results, fit, circle)
    summary = {
        "part_a": {
            "d": D, "M": M, "width": D ** -0.25, "amplitude": amplitude,
            "tau_final": size.tau_final, "widths": widths.tolist(), "seeds": size.seeds,
            "train_loss_final_mean": final.mean(axis=1).tolist(),
            "test_loss_final_mean": test_loss.mean(axis=1).tolist(),
            "alpha": fit[0], "alpha_lo": fit[1], "alpha_hi": fit[2], "level": LEVEL,
            "wall_time": part_a_time,
        },
        "part_b": part_b_summary(size, circle),
        "wall_time": wall,
    }
    lines = [
        "# Continuous 3-spin model (RVE)", "",
        f"## A: d = {D}, RBF width d^-1/4 = {D ** -0.25:.3f}, M = {M} training points", "",
        f"Loss L = E / E[0] at tau = A^2 t = {size.tau_final:g} (A = {amplitude:.4f}):", "",
        "| n | train L (mean) | test L (mean) |", "|---|---|---|",
        *(f"| {n} | {a:.3e} | {b:.3e} |" for n, a, b in zip(
            widths, final.mean(axis=1), test_loss.mean(axis=1), strict=True)),
        "", f"Fit L ~ n^-alpha: alpha = {fit[0]:.2f}, {LEVEL:.0%} bootstrap interval "
        f"[{fit[1]:.2f}, {fit[2]:.2f}] over {size.seeds} seeds per width.", "",
        "## B: the circle, PDE vs particles", "", part_b_line(circle), "",
        "![gallery](gallery.png)",
    ]
    run_dir.write_text("report.md", "\n".join(lines) + "\n")
    _common.finish(run_dir, summary, comm)


if __name__ == "__main__":
    sys.exit(_common.run(main))
