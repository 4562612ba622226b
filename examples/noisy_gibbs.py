"""Noisy training (finite beta): convergence to the self-consistent Gibbs state.

RBF units on the circle, s(x; c, z) = c exp((cos(x - z) - 1) / w^2), w = 0.5, theta = (c, z)
on the cylinder [-5, 5] x S^1; data: 64 equispaced angles; target: the flagship's 3-unit
teacher (c, z) = (2, -1), (-1.5, 0.3), (1.5, 1.2) (weights 1/3). Noisy gradient descent
(Langevin, [MMN]) with beta = 5 and the 2-norm penalty lambda c^2 / 2, lambda = 0.1:

    d theta_i = -grad Psi(theta_i; rho_n) dt + sqrt(2 / beta) dW_i,
    d rho/dt = div(rho grad Psi[rho]) + (1/beta) Laplace rho   (no flux at c = +-5),
    Psi(theta; rho) = E_mu[(f_rho - y) s(x; theta)] + lambda c^2 / 2.

The free energy F[rho] = 1/2 E_mu[(f_rho - y)^2] + lambda int c^2/2 rho + (1/beta) int rho log rho
decreases along the flow (the Scharfetter-Gummel finite volumes keep this exactly:
dF/dt = -sum |sigma| F_KL (mu_K - mu_L) <= 0 with mu = Psi + log(rho)/beta), and the flow
converges to its unique minimiser, the self-consistent Gibbs state

    rho_inf(theta) = exp(-beta Psi(theta; rho_inf)) / Z,

computed independently of any mesh by Newton's method on f = f_{rho_inf} in R^M
(``solver/reference/gibbs.py``, a tensor Gauss-Legendre x trapezoid rule in theta).

The PDE runs lagged-implicit backward Euler (error-controlled steps) until
int |grad mu|^2 rho < 1e-13 on several meshes, giving the L1 error of the stationary
density against rho_inf and its order in h. Beside it, noisy-GD particles
(Euler-Maruyama, reflecting walls) at several widths n: their network output fluctuates
around f_inf with ||f_n - f_inf||^2 = O(1/n), and their empirical law matches rho_inf.

Outputs (runs/noisy_gibbs): pde_<cells>/ (each mesh's run), particles/, gallery.png,
report.md, summary.json.
"""

from __future__ import annotations

import itertools
import sys

import _common
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from mpi4py import MPI

from particle_check.compare import l2_mu
from particle_check.ensemble import run_ensemble
from solver.io import RunDirectory
from solver.model import density, quadrature, targets, units
from solver.model.domain import Cylinder
from solver.model.problem import Problem
from solver.reference.gibbs import GibbsState, gibbs_state
from solver.reference.rules import gauss_legendre
from solver.settings import ParticleSettings, PDESettings

# --- parameters ----------------------------------------------------------------------------

BETA, LAM = 5.0, 0.1
#: per size: PDE meshes (cells along c and around z), particle widths, seeds, particle time
#: horizon and the start of the stationary window the particle statistics average over
SIZES = {
    "default": {"cells": (16, 32, 64), "n": (256, 1024, 4096), "seeds": 2,
                "t_particles": 30.0, "window": 10.0},
    "small": {"cells": (8, 16), "n": (64, 256), "seeds": 2, "t_particles": 6.0,
              "window": 3.0},
}
#: the PDE stops once int |grad mu|^2 rho is below this (the horizon is only a cap)
STATIONARY, T_CAP = 1e-13, 400.0


def problem(t_final: float = T_CAP) -> Problem:
    unit = units.CircleRBFUnit(0.5)
    teacher = targets.TeacherTarget(unit, [[2.0, -1.0], [-1.5, 0.3], [1.5, 1.2]])
    return Problem(unit, quadrature.circle_lattice(64), teacher, Cylinder(-5.0, 5.0),
                   density.Gaussian([0.0, 0.0], [0.5, 0.6]), beta=BETA, lam=LAM,
                   t_final=t_final, name="noisy-gibbs")


# --- marginals of rho_inf, of the PDE density and of the particles ----------------------------

#: z bins of the particle histogram (the PDE's marginal uses its own cells)
Z_EDGES = np.linspace(-np.pi, np.pi, 33)


def gibbs_z_marginal(state: GibbsState) -> tuple[np.ndarray, np.ndarray]:
    """(z, int rho_inf(c, z) dc) on a fine z grid (Gauss-Legendre in c)."""
    z = np.linspace(-np.pi, np.pi, 361)
    c, wc = gauss_legendre(-5.0, 5.0, 8, 16)
    grid = np.column_stack([np.repeat(c, len(z)), np.tile(z, len(c))])
    values = state.density_at(grid).reshape(len(c), len(z))
    return z, wc @ values


def histogram_z(z: np.ndarray, weights: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Density of the z-marginal on the bins ``edges`` from a weighted point set."""
    mass, _ = np.histogram(z, bins=edges, weights=weights)
    return mass / np.diff(edges)


# --- main ----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    args = _common.parse_args(__doc__, argv)
    comm = MPI.COMM_WORLD
    run_dir = _common.open_run("noisy_gibbs", args, comm)
    from solver.pde.solve import solve  # DOLFINx only when the PDE runs (checked above)
    size = SIZES[args.size]
    p = problem()

    # 1. the independent fixed point (every rank: cheap, numpy only)
    gibbs = gibbs_state(p, nodes=24, panels=4)

    # 2. the PDE to stationarity on each mesh
    runs, rows, pde_z = {}, [], None
    for cells in size["cells"]:
        settings = PDESettings(cells=(cells, cells), integrator="implicit",
                               time_tolerance=1e-3, stationary_tolerance=STATIONARY,
                               outputs=40, snapshots=2, progress=not args.no_progress)
        sub = RunDirectory(run_dir / f"pde_{cells}", writer=run_dir.writer)
        res = runs[cells] = solve(p, settings, sub, comm)
        free = np.asarray(res.steps["energy"])
        rows.append({
            "cells": f"{cells}x{cells}", "stopped_at_t": float(res.times[-1]),
            "stopped": res.stopped, "steps": len(free) - 1, "wall_time_s": res.wall_time,
            "l1_error": res.scheme.l1_error(gibbs.density_at),
            "free_energy_error": float(free[-1] - gibbs.free_energy),
            "f_error": float(l2_mu(p.data.weights, res.f[-1], gibbs.f)),
            "free_energy_increases": int(np.sum(np.diff(free) > 0)),
            "mass_drift": float(np.ptp(res.steps["mass"])),
            "min_rho": float(np.min(res.steps["min_rho"])),
        })
        theta, weights = res.scheme.point_measure()
        parts = comm.gather((theta[:, 1], weights), root=0)
        if comm.rank == 0:
            pde_z = histogram_z(np.concatenate([z for z, _ in parts]),
                                np.concatenate([w for _, w in parts]),
                                np.linspace(-np.pi, np.pi, cells + 1))
    for prev, row in itertools.pairwise(rows):
        row["order"] = float(np.log2(prev["l1_error"] / row["l1_error"]))

    # 3. noisy-GD particles (tasks spread over ranks), statistics in the stationary window
    times = np.linspace(0.0, size["t_particles"], 61)
    particles = ParticleSettings(n=size["n"], seeds=size["seeds"], dt=0.01, integrator="euler")
    ensemble = run_ensemble(p, particles, times, RunDirectory(run_dir / "particles"), comm)

    summary = None
    if comm.rank == 0:
        window = times >= size["window"]
        gap2 = {n: np.mean([l2_mu(p.data.weights, ensemble[(n, s)].f[window], gibbs.f) ** 2
                            for s in range(particles.seeds)]) for n in particles.n}
        loss = {n: np.mean([ensemble[(n, s)].loss[window] for s in range(particles.seeds)])
                for n in particles.n}
        largest = max(particles.n)
        final = np.vstack([ensemble[(largest, s)].theta for s in range(particles.seeds)])
        part_z = histogram_z(final[:, 1], np.full(len(final), 1.0 / len(final)), Z_EDGES)
        slope = float(np.polyfit(np.log(list(gap2)), np.log(list(gap2.values())), 1)[0])
        zg, mg = gibbs_z_marginal(gibbs)
        exact_bins = np.interp(0.5 * (Z_EDGES[1:] + Z_EDGES[:-1]), zg, mg)
        z_l1 = float(np.sum(np.abs(part_z - exact_bins) * np.diff(Z_EDGES)))
        summary = {
            "beta": BETA, "lambda": LAM,
            "gibbs": {"free_energy": gibbs.free_energy, "loss": gibbs.loss,
                      "newton_residual": gibbs.residual, "newton_steps": gibbs.iterations},
            "pde": rows,
            "free_energy_monotone": all(r["free_energy_increases"] == 0 for r in rows),
            "particles": {"n": list(particles.n), "seeds": particles.seeds,
                          "window": [float(times[window][0]), float(times[-1])],
                          "mean_gap2_to_f_inf": {str(n): float(v) for n, v in gap2.items()},
                          "n_gap2": {str(n): float(n * v) for n, v in gap2.items()},
                          "gap2_slope_in_n": slope,
                          "mean_loss": {str(n): float(v) for n, v in loss.items()},
                          "z_marginal_l1_vs_gibbs_largest_n": z_l1},
            "ranks": comm.size, "size": args.size,
        }
        figure(run_dir / "gallery.png", runs, rows, gibbs, (zg, mg), pde_z, part_z, gap2,
               largest, size["cells"][-1])
        run_dir.write_text("report.md", report_text(summary))
    _common.finish(run_dir, summary, comm)


def figure(path, runs, rows, gibbs, marginal, pde_z, part_z, gap2, largest, finest) -> None:
    fig, ax = plt.subplots(2, 2, figsize=(12, 9.5))
    a = ax[0, 0]
    for cells, res in runs.items():
        t = np.asarray(res.steps["t"])
        free = np.asarray(res.steps["energy"]) - gibbs.free_energy
        a.semilogy(t[1:], free[1:], label=f"PDE {cells}^2")
    a.set(xlabel="t", ylabel="F[rho_t] - F[rho_inf]",
          title="free energy E + (1/beta) int rho log rho: monotone decay")
    a.legend(fontsize=8)
    a = ax[0, 1]
    h = np.array([float(r["cells"].split("x")[0]) for r in rows])
    err = np.array([r["l1_error"] for r in rows])
    a.loglog(h, err, "o-", label="||rho_PDE(stationary) - rho_inf||_L1")
    a.loglog(h, err[0] * (h[0] / h) ** 2, "k:", label="order 2")
    a.set(xlabel="cells per axis", ylabel="L1 error",
          title="stationary density vs Gibbs fixed point")
    a.legend(fontsize=8)
    a = ax[1, 0]
    zg, mg = marginal
    a.plot(zg, mg, "k-", lw=2, label="Gibbs fixed point (Newton)")
    a.stairs(pde_z, np.linspace(-np.pi, np.pi, finest + 1), color="C0",
             label=f"PDE {finest}^2, stationary")
    a.stairs(part_z, Z_EDGES, color="C3", label=f"noisy GD, n={largest}, final")
    a.set(xlabel="z", ylabel="int rho(c, z) dc", title="z-marginal of rho_inf")
    a.legend(fontsize=8)
    a = ax[1, 1]
    n = np.array(list(gap2), dtype=float)
    g = np.array(list(gap2.values()))
    a.loglog(n, g, "o-", label="time-averaged ||f_n - f_inf||^2")
    a.loglog(n, g[0] * n[0] / n, "k:", label="1/n")
    a.set(xlabel="n", ylabel="mean squared gap", title="noisy-GD particles around f_inf")
    a.legend(fontsize=8)
    _common.save_figure(
        fig, path,
        f"Noisy training, beta = {BETA:g}, lambda = {LAM:g}: convergence to the "
        "self-consistent Gibbs state")


def report_text(s: dict) -> str:
    g = s["gibbs"]
    lines = ["# Noisy training: convergence to the Gibbs state", "",
             f"beta = {s['beta']:g}, lambda = {s['lambda']:g}. Gibbs fixed point (Newton, "
             f"residual {g['newton_residual']:.1e}): free energy {g['free_energy']:.10f}, "
             f"loss {g['loss']:.6f}.", "",
             "| mesh | stopped at t | steps | L1 error | order | F - F_inf | "
             "||f - f_inf|| | F increases | mass drift | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["pde"]:
        order = f"{r['order']:.2f}" if "order" in r else ""
        lines.append(f"| {r['cells']} | {r['stopped_at_t']:.0f} | {r['steps']} | "
                     f"{r['l1_error']:.2e} | {order} | {r['free_energy_error']:.2e} | "
                     f"{r['f_error']:.1e} | {r['free_energy_increases']} | "
                     f"{r['mass_drift']:.0e} | {r['wall_time_s']:.1f} |")
    q = s["particles"]
    lines += ["", f"Noisy GD ({q['seeds']} seeds, averages over t in {q['window']}):", "",
              "| n | mean ||f_n - f_inf||^2 | n x that | mean loss |", "|---|---|---|---|"]
    for n in q["n"]:
        lines.append(f"| {n} | {q['mean_gap2_to_f_inf'][str(n)]:.3e} | "
                     f"{q['n_gap2'][str(n)]:.3f} | {q['mean_loss'][str(n)]:.5f} |")
    lines += ["", f"slope of log gap^2 vs log n: {q['gap2_slope_in_n']:.2f} (expected -1); "
              f"L1 distance of the z-marginal at the largest n to rho_inf's: "
              f"{q['z_marginal_l1_vs_gibbs_largest_n']:.3f} (histogram noise included).", "",
              "![gallery](gallery.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(_common.run(main))
