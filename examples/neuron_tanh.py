"""Single-hidden-layer tanh neurons on 1-D data: the mean-field PDE in 2-D and 3-D parameter space.

A network of n neurons s(x; theta) = c tanh(a x + b) on data x uniform on [-2, 2]
(Gauss-Legendre quadrature, M = 32 nodes), trained by gradient descent on

    E[rho] = 1/2 E_mu[(f_rho(x) - y(x))^2],   f_rho(x) = int c tanh(a x + b) rho(dtheta),

in the mean-field scaling, so that rho_t solves d rho/dt = div(rho grad Psi[rho]) with
Psi(theta; rho) = E_mu[(f_rho(x) - y(x)) s(x; theta)] (../shared/SCIENCE.md). The target is
a two-neuron teacher network y(x) = 1/2 sum_j c_j tanh(a_j x + b_j).

Part A, theta = (a, b) in 2-D: the output weight is fixed, c = 1 (``units.FixedOutputNeuron``
with a bias), teacher (a, b) = (2, -1), (-1.5, -0.5); rho_0 = N(0, 0.5^2 I) on the box
[-4, 4]^2, t in [0, 20]. The units must travel to |a| ~ 2 to fit the steep teacher, and
the loss decays slowly (no finite-time convergence). Discretisation: DG2 + SSP-RK3 on
48^2 cells (about 1.5 s; in E(40) it is 5e-5 from n = 4096 particles, first-order FV on
128^2 cells 2.4e-4).

Part B, theta = (c, a, b) in 3-D (``units.NeuronUnit``): teacher (c, a, b) = (1, 2, -1),
(-1, -1.5, -0.5); rho_0 = N(0, 0.5^2 I) on [-6, 6] x [-4, 4]^2 (some units grow |c| to
~3), t in [0, 8]. Discretisation: DG1 on 16^3 hexahedra (E(t) within 3e-4 of the
particles at n = 4096; FV on 32^3 cells is 2.8e-3 off at t = 2, its numerical diffusion
pushing mass to the c walls). The error budget of part B comes from DG1 on 8^3 cells and
is far above the gaps (so alpha is not fitted there): a finer budget run costs too much.

Each part runs the PDE, an error-budget PDE run on half the cells, and n-particle GD
ensembles (RK4) from the same rho_0, then compares them: the gap
||f_n(t) - f_t||_{L2(mu)} ~ n^(-alpha(t)) with alpha = 1/2 at finite times (CLT), and
the loss of the particle network against the PDE loss. References: Rotskoff and
Vanden-Eijnden, CPAM 2022 (arXiv:1805.00915); Mei, Montanari and Nguyen, PNAS 2018.

Outputs (runs/neuron_tanh): part_a/ and part_b/ (pde/, particles/, report.md, comparison.csv,
figures), gallery.png (loss curves, gap vs n, densities), report.md, summary.json.
"""

from __future__ import annotations

import sys

import _common
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from mpi4py import MPI

from particle_check.compare import Comparison
from particle_check.pipeline import pde_and_particles
from solver.config import RunConfig
from solver.io import RunDirectory
from solver.model import density, quadrature, targets, units
from solver.model.domain import Box
from solver.model.problem import Problem
from solver.settings import ParticleSettings, PDESettings

# --- parameters per size -----------------------------------------------------------------
# per part: (cells per axis, t_final, particle widths, seeds); max_outflow: the mass the
# no-flux walls may hold back (the coarse error-budget meshes smear rho_t towards the c
# walls of part B; summary.json reports the outflow rate of the main runs)

SIZES = {
    "default": {"a": (48, 20.0, (64, 256, 1024, 4096), 8),
                "b": (16, 8.0, (64, 256, 1024, 4096), 8), "max_outflow": 1e-2},
    "small": {"a": (12, 4.0, (32, 128, 512), 4),
              "b": (8, 2.0, (32, 128, 512), 4), "max_outflow": 1e-2},
}
DATA = quadrature.gauss_legendre(-2.0, 2.0, 32)


# --- the two problems ----------------------------------------------------------------------

def problem_a(t_final: float) -> Problem:
    """theta = (a, b), c = 1 fixed: s = tanh(a x + b)."""
    unit = units.FixedOutputNeuron(1, "tanh", bias=True)
    teacher = targets.TeacherTarget(unit, [[2.0, -1.0], [-1.5, -0.5]])
    return Problem(unit, DATA, teacher, Box((-4.0, -4.0), (4.0, 4.0)),
                   density.Gaussian([0.0, 0.0], [0.5, 0.5]), t_final=t_final,
                   name="neuron-2d")


def problem_b(t_final: float) -> Problem:
    """theta = (c, a, b): s = c tanh(a x + b)."""
    unit = units.NeuronUnit(1, "tanh")
    teacher = targets.TeacherTarget(unit, [[1.0, 2.0, -1.0], [-1.0, -1.5, -0.5]])
    return Problem(unit, DATA, teacher, Box((-6.0, -4.0, -4.0), (6.0, 4.0, 4.0)),
                   density.Gaussian([0.0, 0.0, 0.0], [0.5, 0.5, 0.5]), t_final=t_final,
                   name="neuron-3d")


# --- the density as points, and headline numbers -------------------------------------

def gathered_measure(pde, comm: MPI.Comm) -> tuple[np.ndarray, np.ndarray] | None:
    """The final density as a weighted point set (theta_q, W_q), gathered on rank 0."""
    theta, weights = pde.scheme.point_measure()
    parts = comm.gather((theta, weights), root=0)
    if comm.rank != 0:
        return None
    return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def part_summary(pde, cmp: Comparison, report: dict, settings: PDESettings) -> dict:
    """Headline numbers of one part."""
    steps = pde.steps
    alpha = report["alpha"][-1]
    return {
        "pde": {"scheme": f"{settings.scheme}{settings.degree if settings.scheme == 'dg' else ''}",
                "cells": pde.cells, "steps": len(steps["t"]) - 1, "wall_time_s": pde.wall_time,
                "energy_initial": float(pde.energy[0]), "energy_final": float(pde.energy[-1]),
                "energy_monotone": bool(np.all(np.diff(steps["energy"]) <= 0)),
                "mass_drift": float(np.max(np.abs(np.array(steps["mass"]) - steps["mass"][0]))),
                "max_boundary_outflow_rate": float(np.max(steps["boundary_outflow"])),
                "error_budget_final": report["error_budget"]["max_pde_error"]},
        "n": cmp.n.tolist(),
        "particle_loss_final": cmp.loss_mean[:, -1].tolist(),
        "loss_bias_final": cmp.loss_bias[:, -1].tolist(),
        "gap_final": cmp.gap[:, -1].tolist(),
        "alpha_final": {"t": alpha["t"], "alpha": alpha["alpha"], "lo": alpha["lo"],
                        "hi": alpha["hi"]},
        "crbv_verdict": report["crbv"]["verdict"],
    }


# --- figures -------------------------------------------------------------------------------

def plot_loss(ax, cmp: Comparison, title: str) -> None:
    ax.semilogy(cmp.times, cmp.pde_loss, "k-", lw=2, label="PDE")
    for i, n in enumerate(cmp.n):
        ax.semilogy(cmp.times, cmp.loss_mean[i], "--", label=f"particles n={n}")
    ax.set(xlabel="t", ylabel="loss 1/2 E(f - y)^2", title=title)
    ax.legend(fontsize=7)


def plot_gap(ax, cmp: Comparison, title: str) -> None:
    for j in np.unique(np.linspace(1, len(cmp.times) - 1, 3).round().astype(int)):
        ax.loglog(cmp.n, cmp.gap[:, j], "o-", label=f"t={cmp.times[j]:.3g}")
    n = cmp.n.astype(float)
    ax.loglog(n, cmp.gap[0, -1] * np.sqrt(n[0] / n), "k:", label="n^-1/2")
    if cmp.pde_error is not None:
        ax.axhline(cmp.pde_error.max(), color="gray", lw=0.8, label="PDE error budget")
    ax.set(xlabel="n", ylabel="||f_n - f_t||_L2(mu) (RMS over seeds)", title=title)
    ax.legend(fontsize=7)


def plot_density(ax, theta: np.ndarray, weights: np.ndarray, box: Box, axes: tuple[int, int],
                 bins: int, labels: tuple[str, str], teacher: np.ndarray, title: str) -> None:
    """The (marginal) density on two axes as cell averages of the weighted point set."""
    i, j = axes
    rng = [[box.lower[i], box.upper[i]], [box.lower[j], box.upper[j]]]
    mass, xe, ye = np.histogram2d(theta[:, i], theta[:, j], bins=bins, range=rng,
                                  weights=weights)
    area = (xe[1] - xe[0]) * (ye[1] - ye[0])
    im = ax.pcolormesh(xe, ye, mass.T / area, cmap="magma_r", shading="flat")
    ax.plot(teacher[:, i], teacher[:, j], "c+", ms=12, mew=2, label="teacher")
    ax.set(xlabel=labels[0], ylabel=labels[1], title=title)
    ax.legend(fontsize=7, loc="upper right")
    plt.colorbar(im, ax=ax, shrink=0.8)


# --- main ----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    args = _common.parse_args(__doc__, argv)
    comm = MPI.COMM_WORLD
    run_dir = _common.open_run("neuron_tanh", args, comm)
    size = SIZES[args.size]
    progress = not args.no_progress

    parts = {}
    for key, build, scheme, degree, integrator in (("a", problem_a, "dg", 2, "ssprk3"),
                                                   ("b", problem_b, "dg", 1, "ssprk3")):
        cells, t_final, widths, seeds = size[key]
        problem = build(t_final)
        pde = PDESettings(cells=(cells,) * problem.param_dim, scheme=scheme, degree=degree,
                          integrator=integrator, outputs=20, snapshots=3, progress=progress,
                          max_outflow=size["max_outflow"])
        particles = ParticleSettings(n=widths, seeds=seeds, dt=0.02, integrator="rk4")
        sub = RunDirectory(run_dir / f"part_{key}", writer=run_dir.writer)
        cfg = RunConfig(problem.name, sub.path, problem, pde, particles, {})
        result, cmp, report = pde_and_particles(cfg, sub, comm)
        measure = gathered_measure(result, comm)
        if comm.rank == 0:
            parts[key] = (problem, result, cmp, report, measure, pde)

    summary = None
    if comm.rank == 0:
        fig, ax = plt.subplots(2, 3, figsize=(16, 9.5))
        for row, key in enumerate("ab"):
            problem, result, cmp, report, (theta, weights), pde = parts[key]
            label = "A: theta=(a, b), c=1" if key == "a" else "B: theta=(c, a, b)"
            plot_loss(ax[row, 0], cmp, f"{label}: loss, PDE vs particles")
            plot_gap(ax[row, 1], cmp, f"{label}: gap to the PDE vs n")
            teacher = problem.target.theta
            cells = pde.cells[0]
            if key == "a":
                plot_density(ax[row, 2], theta, weights, problem.domain, (0, 1), cells,
                             ("a", "b"), teacher, f"A: rho(a, b) at t={problem.t_final:g}")
            else:
                plot_density(ax[row, 2], theta, weights, problem.domain, (1, 0), cells,
                             ("a", "c"), teacher,
                             f"B: marginal rho(a, c) at t={problem.t_final:g}")
        _common.save_figure(
            fig, run_dir / "gallery.png",
            "tanh neurons c tanh(a x + b) on x ~ U[-2, 2]: mean-field PDE vs "
            "n-particle gradient descent")
        summary = {"part_a": part_summary(parts["a"][1], parts["a"][2], parts["a"][3],
                                          parts["a"][5]),
                   "part_b": part_summary(parts["b"][1], parts["b"][2], parts["b"][3],
                                          parts["b"][5]),
                   "size": args.size, "ranks": comm.size}
        run_dir.write_text("report.md", report_text(summary))
    _common.finish(run_dir, summary, comm)


def report_text(summary: dict) -> str:
    lines = ["# tanh neurons: PDE vs particles", ""]
    for key, title in (("part_a", "A: theta = (a, b), c = 1"), ("part_b", "B: theta = (c, a, b)")):
        s = summary[key]
        p, a = s["pde"], s["alpha_final"]
        lines += [f"## {title}", "",
                  f"PDE {p['scheme']}, {p['cells']} cells, {p['steps']} steps, "
                  f"{p['wall_time_s']:.1f} s: E {p['energy_initial']:.4g} -> "
                  f"{p['energy_final']:.4g} (monotone: {p['energy_monotone']}, mass drift "
                  f"{p['mass_drift']:.1e}, error budget {p['error_budget_final']:.1e}).", "",
                  "| n | particle loss(T) | loss bias | gap(T) |", "|---|---|---|---|"]
        lines += [f"| {n} | {lo:.4g} | {b:+.2e} | {g:.3e} |" for n, lo, b, g in
                  zip(s["n"], s["particle_loss_final"], s["loss_bias_final"], s["gap_final"],
                      strict=True)]
        fit = ("not fitted (fewer than 2 widths resolved above the PDE error budget)"
               if a["alpha"] is None else
               f"{a['alpha']:.3f} (90% interval [{a['lo']:.3f}, {a['hi']:.3f}])")
        lines += ["", f"alpha(t={a['t']:.3g}) = {fit}; CRBV: {s['crbv_verdict']}", ""]
    lines += ["![gallery](gallery.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(_common.run(main))
