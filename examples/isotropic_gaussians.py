"""Isotropic Gaussians (Mei, Montanari and Nguyen): a 1-D PDE for |w| against SGD in d = 40.

The problem [MMN, PNAS 115 (2018) E7665, "isotropic Gaussians"]: labels y = +1 and y = -1
with probability 1/2 each, x ~ N(0, (1 + y Delta)^2 I_d); the network

    f(x) = (1/n) sum_i sigma*(<w_i, x>),   sigma*(t) = s1 (t <= t1), s2 (t >= t2), linear between,

trained on the square loss E = 1/2 E[(f(x) - y)^2] (MMN's risk is R = E[(f - y)^2] = 2 E).
Parameters: d = 40, Delta = 0.8, t1 = 0.5, t2 = 1.5, s1 = -2.5, s2 = 7.5 (MMN's values as
we recall them; the paper's text could not be retrieved here to check), w_i(0) ~ N(0, r0^2/d
I_d) with r0 = 0.8, so |w_i(0)| concentrates at r0.

The reduction. Write x = xi e and w = r e' (xi = |x|, r = |w|, e, e' unit vectors). The
data law is rotation invariant, so if rho is, Psi(w; rho) = E[(f_rho(x) - y) sigma*(<w, x>)]
depends on r only, the velocity -grad Psi is radial and rho stays rotation invariant. Its
law of r, p(r), then solves the 1-D PDE

    dp/dt = d/dr (p dPsi_red/dr),
    Psi_red(r) = E_{xi,y}[(f_red(xi) - y) s_red(xi; r)],  f_red(xi) = int s_red(xi; r) p(r) dr,
    s_red(xi; r) = E_u[sigma*(r xi u)],  u = <e, e'> with density ~ (1 - u^2)^((d-3)/2),

the same Problem form as always, with unit s_red (``units.RadialRidgeUnit``: exact in closed
form, with its r-derivative), one parameter r in [0, R] and data (xi, y) with
xi ~ (1 + y Delta) chi_d (``quadrature.isotropic_gaussians_radial``, a Gauss rule per
class). For a rotation-invariant rho, f_rho(x) = f_red(|x|), so the reduced loss *is* the
full loss (tests/test_units_radial.py checks it against Monte Carlo in d dimensions).

Boundary r = 0: s_red is even in r, so dPsi_red/dr = 0 at r = 0 (in fact for all
r < t1 / max xi, where sigma* is flat on every r xi u): the no-flux wall of the PDE is
exact, not a truncation; mass that drifts down stalls where r xi_max ~ t1. The initial p(r)
(a scaled chi_d law) is ~ r^(d-1) near 0. R = 8 holds all the mass (the run fails loudly
through pde.max_outflow otherwise).

Compared with: online SGD of the full d = 40 network (n particles w_i in R^40, one fresh
batch of P labelled pairs per step, step dt, in the mean-field time t = steps * dt), the
risk on a Monte Carlo test set (on several ranks, rank 0 solves the PDE and the others run the
seeds); PDE risk from the Gauss rule, classification errors from
f_red on a fine xi grid (zero-weight points of the data rule) and the chi_d CDF.

Outputs: gallery.png (histograms of |w_i| vs the PDE density; risks vs time), risk.csv,
report.md, summary.json (KS distance between the SGD |w| and the PDE law at each snapshot,
risks at the final time).
"""

from __future__ import annotations

import sys
import time
from typing import NamedTuple

import _common
import numpy as np
from mpi4py import MPI
from scipy.stats import chi

from particle_check.particles import simulate
from solver.model import density, functionals, quadrature, targets, units
from solver.model.domain import Box
from solver.model.problem import Problem
from solver.settings import PDESettings


class Size(NamedTuple):
    t_final: float
    snapshots: tuple[float, ...]  # histogram times (t_final last)
    cells: int  # DG2 cells on [0, R]
    n: int  # SGD particles per seed
    seeds: int
    dt: float  # SGD step
    batch: int
    test_points: int  # Monte Carlo test set for the SGD risk


SIZES = {
    "small": Size(3.0, (0.0, 1.0, 3.0), 100, 300, 1, 2e-3, 20, 2000),
    "default": Size(30.0, (0.0, 3.0, 12.0, 30.0), 400, 800, 2, 2e-3, 20, 8000),
}
D, DELTA, R0, R_MAX = 40, 0.8, 0.8, 8.0
OUTPUTS = 30  # equal output intervals on [0, t_final]
GAUSS_NODES, GRID = 40, 200  # per class: Gauss nodes, zero-weight evaluation points


# --- the law of r = |w| at t = 0 ---------------------------------------------------------


class RadialChi(density.Density):
    """Law of r = |w| for w ~ N(0, r0^2/d I_d): r = (r0 / sqrt(d)) chi_d, on R (k = 1)."""

    dim = 1

    def __init__(self, d: int, r0: float) -> None:
        self.d, self.scale = d, r0 / np.sqrt(d)

    def pdf(self, theta: np.ndarray) -> np.ndarray:
        return chi.pdf(theta[:, 0] / self.scale, self.d) / self.scale

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return (self.scale * np.sqrt(rng.chisquare(self.d, n)))[:, None]

    def _mass_in_box(self, box: Box) -> float:
        lo, hi = chi.cdf(np.array([box.lower[0], box.upper[0]]) / self.scale, self.d)
        return float(hi - lo)


# --- the two problems: the reduced PDE and the full SGD ----------------------------------


def reduced_problem(t_final: float) -> Problem:
    """theta = r in [0, R], data (xi, y), target y read from data column 1."""
    data = quadrature.isotropic_gaussians_radial(D, DELTA, GAUSS_NODES, grid=GRID)
    return Problem(units.RadialRidgeUnit(D), data, targets.ExpressionTarget("x1", 2),
                   Box((0.0,), (R_MAX,)), RadialChi(D, R0), t_final=t_final,
                   name="isotropic-gaussians-radial")


def full_problem(t_final: float, test_points: int) -> Problem:
    """theta = w in R^d; data rows (x, y) in R^(d+1), the unit ignores y, the target reads it."""
    unit = units.LabelledDataUnit(units.FixedOutputNeuron(D, "mmn_piecewise_linear"))
    data = quadrature.monte_carlo("isotropic_gaussians", test_points, 2018, dim=D, delta=DELTA)
    return Problem(unit, data, targets.ExpressionTarget(f"x{D}", D + 1),
                   Box((-50.0,) * D, (50.0,) * D),
                   density.Gaussian(np.zeros(D), np.full(D, R0 / np.sqrt(D))),
                   t_final=t_final, name="isotropic-gaussians-sgd")


# --- classification error of a radial predictor ------------------------------------------


def classification_error(xi: np.ndarray, f: np.ndarray, y: float) -> float:
    """P(y f_red(xi) < 0) for xi ~ (1 + y Delta) chi_d, f_red linear between grid points
    ``xi`` (sorted) and constant beyond them."""
    scale = 1.0 + y * DELTA
    wrong = y * f < 0
    cuts = [0.0]
    for a in range(len(xi) - 1):  # sign changes: the root of the linear interpolant
        if wrong[a] != wrong[a + 1]:
            cuts.append(xi[a] + (xi[a + 1] - xi[a]) * f[a] / (f[a] - f[a + 1]))
    cuts.append(np.inf)
    cdf = chi.cdf(np.asarray(cuts) / scale, D)
    starts_wrong = wrong[0]
    pieces = np.diff(cdf)
    return float(pieces[0 if starts_wrong else 1::2].sum())


def radial_errors(problem: Problem, f: np.ndarray) -> float:
    """Classification error 1/2 sum_y P(y f < 0) from f on the zero-weight grid points."""
    points = problem.data.points
    grid = problem.data.weights == 0
    total = 0.0
    for y in (-1.0, 1.0):
        rows = grid & (points[:, 1] == y)
        order = np.argsort(points[rows, 0])
        total += 0.5 * classification_error(points[rows, 0][order], f[rows][order], y)
    return total


# --- the PDE ------------------------------------------------------------------------------


def pde_settings(size: Size, progress: bool) -> PDESettings:
    return PDESettings(cells=(size.cells,), scheme="dg", degree=2, integrator="ssprk3",
                       outputs=OUTPUTS, snapshots=0, progress=progress)


def pde_density(t: float, size: Size) -> tuple[np.ndarray, np.ndarray]:
    """(cell edges (cells + 1,), cell averages of p(r)) at time t (a solve to t, this rank)."""
    if t == 0.0:
        edges = np.linspace(0.0, R_MAX, size.cells + 1)
        mids = 0.5 * (edges[1:] + edges[:-1])
        return edges, RadialChi(D, R0).pdf(mids[:, None])
    from solver.pde.output import gather_cell_values  # DOLFINx only when the PDE runs
    from solver.pde.solve import solve

    problem = reduced_problem(t)
    result = solve(problem, pde_settings(size, False), comm=MPI.COMM_SELF)
    polygons, values = gather_cell_values(result.scheme.rho, problem.domain)
    order = np.argsort(polygons[:, 0, 0])
    ends = np.sort(polygons[order, :, 0], axis=1)
    return np.append(ends[:, 0], ends[-1, 1]), values[order]


def solve_pde(size: Size, progress: bool) -> dict:
    """The reduced PDE on one rank: risk, classification error, p(r) at the snapshots."""
    from solver.pde.output import gather_cell_values  # DOLFINx only when the PDE runs
    from solver.pde.solve import solve

    start = time.perf_counter()
    problem = reduced_problem(size.t_final)
    result = solve(problem, pde_settings(size, progress), comm=MPI.COMM_SELF)
    # p(r) at the snapshot times (t_final from this run, the others by solves to t)
    densities = {t: pde_density(t, size) for t in size.snapshots[:-1]}
    polygons, values = gather_cell_values(result.scheme.rho, problem.domain)
    order = np.argsort(polygons[:, 0, 0])
    ends = np.sort(polygons[order, :, 0], axis=1)
    densities[size.t_final] = (np.append(ends[:, 0], ends[-1, 1]), values[order])
    # the velocity at the wall r = 0 (zero by symmetry) at the final state
    wall_velocity = float(np.abs(functionals.potential_gradient(
        problem, np.array([[0.0]]), result.f[-1])).max())
    return {"risk": 2.0 * result.loss,
            "error": np.array([radial_errors(problem, f) for f in result.f]),
            "densities": densities, "wall_velocity": wall_velocity,
            "steps": len(result.steps["t"]) - 1, "wall_time": time.perf_counter() - start}


# --- SGD of the full network ------------------------------------------------------------


def run_sgd(problem: Problem, size: Size, times: np.ndarray, seed: int) -> dict:
    """Online SGD from w ~ rho_0, segment by segment so |w_i| is kept at every snapshot."""
    rng = np.random.default_rng(np.random.SeedSequence(2018, spawn_key=(seed,)))
    theta = problem.sample_initial(rng, size.n)
    radii, f, loss = {0.0: np.linalg.norm(theta, axis=1)}, [], []
    start = 0
    for t in size.snapshots[1:]:
        stop = int(np.searchsorted(times, t))
        run = simulate(problem, theta, times[start:stop + 1], size.dt, "euler", rng=rng,
                       batch=size.batch)
        keep = slice(0 if start == 0 else 1, None)
        f.extend(run.f[keep])
        loss.extend(run.loss[keep])
        theta, start = run.theta, stop
        radii[t] = np.linalg.norm(theta, axis=1)
    y = problem.y
    f = np.array(f)
    return {"radii": radii, "risk": 2.0 * np.array(loss),
            "error": np.mean(np.sign(f) != y, axis=1)}


# --- figures and numbers ------------------------------------------------------------------


def ks_distance(radii: np.ndarray, edges: np.ndarray, values: np.ndarray) -> float:
    """max over the cell edges r_e of |F_n(r_e) - F(r_e)|: the empirical CDF of the |w_i|
    against the PDE's, which is exact at the edges (the masses of the cells)."""
    cdf = np.concatenate([[0.0], np.cumsum(values * np.diff(edges))])
    empirical = np.searchsorted(np.sort(radii), edges, side="right") / radii.size
    return float(np.max(np.abs(empirical - cdf)))


def gallery(run_dir, size: Size, densities: dict, sgd: list[dict], times: np.ndarray,
            pde_risk: np.ndarray, pde_error: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    snaps = size.snapshots
    fig, axes = plt.subplots(1, len(snaps) + 1, figsize=(4.0 * (len(snaps) + 1), 3.6))
    for ax, t in zip(axes, snaps, strict=False):
        edges, values = densities[t]
        radii = np.concatenate([s["radii"][t] for s in sgd])
        top = max(np.quantile(radii, 0.999), edges[np.flatnonzero(values > 1e-3)[-1] + 1])
        ax.hist(radii, bins=40, range=(0, top), density=True, alpha=0.5,
                label=f"SGD |w_i|, d={D}")
        ax.stairs(values, edges, color="k", lw=1.5, label="PDE p(r)")
        ax.set_xlim(0, top)
        ax.set_xlabel("r = |w|")
        ax.set_title(f"t = {t:g}")
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=8)
    ax = axes[-1]
    ax.plot(times, pde_risk, "k-", label="PDE risk E(f-y)^2")
    ax.plot(times, pde_error, "k--", label="PDE classification error")
    for i, s in enumerate(sgd):
        ax.plot(times, s["risk"], "C0-", alpha=0.6, label="SGD risk" if i == 0 else None)
        ax.plot(times, s["error"], "C1--", alpha=0.6, label="SGD error" if i == 0 else None)
    ax.set_yscale("log")
    ax.set_ylim(1e-4, 3.0)
    ax.set_xlabel("t")
    ax.set_title("risk and classification error")
    ax.legend(fontsize=8)
    _common.save_figure(
        fig, run_dir.path / "gallery.png",
        f"Isotropic Gaussians (MMN), d={D}, Delta={DELTA}: 1-D PDE for |w| vs "
        f"SGD (n={size.n}, batch {size.batch}, dt={size.dt:g})")


# --- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = _common.parse_args(__doc__, argv)
    comm = MPI.COMM_WORLD
    size = SIZES[args.size]
    run_dir = _common.open_run("isotropic_gaussians", args)
    start = time.perf_counter()

    # Rank 0 solves the PDE (a 1-D mesh gains nothing from being split) while the other
    # ranks run the SGD seeds; a single rank does both. Results do not depend on the ranks.
    pde = solve_pde(size, not args.no_progress) if comm.rank == 0 else None
    sgd_problem = full_problem(size.t_final, size.test_points)
    times = pde_settings(size, False).output_times(size.t_final)
    workers = list(range(1, comm.size)) or [0]
    mine = [run_sgd(sgd_problem, size, times, s) for s in range(size.seeds)
            if workers[s % len(workers)] == comm.rank]
    sgd = [run for part in comm.gather(mine, root=0) or [] for run in part]
    wall = comm.allreduce(time.perf_counter() - start, MPI.MAX)
    if comm.rank != 0:
        _common.finish(run_dir, {}, comm)
        return

    densities, pde_risk, pde_error = pde["densities"], pde["risk"], pde["error"]
    ks = {f"{t:g}": ks_distance(np.concatenate([s["radii"][t] for s in sgd]), *densities[t])
          for t in size.snapshots}
    sgd_risk = np.mean([s["risk"] for s in sgd], axis=0)
    sgd_error = np.mean([s["error"] for s in sgd], axis=0)
    run_dir.write_csv("risk.csv", ("t", "pde_risk", "pde_error", "sgd_risk", "sgd_error"),
                      zip(times, pde_risk, pde_error, sgd_risk, sgd_error, strict=True))
    gallery(run_dir, size, densities, sgd, times, pde_risk, pde_error)
    summary = {
        "d": D, "delta": DELTA, "r0": R0, "t_final": size.t_final,
        "n": size.n, "seeds": size.seeds, "sgd_dt": size.dt, "sgd_batch": size.batch,
        "pde_cells": size.cells, "pde_steps": pde["steps"],
        "pde_risk_initial": float(pde_risk[0]), "sgd_risk_initial": float(sgd_risk[0]),
        "pde_risk_final": float(pde_risk[-1]), "sgd_risk_final": float(sgd_risk[-1]),
        "pde_error_final": float(pde_error[-1]), "sgd_error_final": float(sgd_error[-1]),
        "max_risk_gap": float(np.max(np.abs(sgd_risk - pde_risk))),
        "ks_distance": ks, "ks_scale": float(1.0 / np.sqrt(size.n * size.seeds)),
        "wall_velocity": pde["wall_velocity"], "pde_wall_time": pde["wall_time"],
        "wall_time": wall,
    }
    lines = [
        "# Isotropic Gaussians: 1-D PDE for |w| vs SGD in d = 40", "",
        f"d = {D}, Delta = {DELTA}, sigma* knots (0.5, 1.5) values (-2.5, 7.5), r0 = {R0}; "
        f"PDE: DG2, {size.cells} cells on [0, {R_MAX:g}]; SGD: n = {size.n} x {size.seeds} "
        f"seeds, batch {size.batch}, dt = {size.dt:g}.", "",
        "| t | PDE risk | SGD risk | PDE error | SGD error |", "|---|---|---|---|---|",
        *(f"| {t:.3g} | {a:.4f} | {b:.4f} | {c:.2e} | {e:.2e} |" for t, a, b, c, e in zip(
            times[::5], pde_risk[::5], sgd_risk[::5], pde_error[::5], sgd_error[::5],
            strict=True)),
        "", "KS distance between the SGD |w_i| and the PDE law of r (1/sqrt(n seeds) = "
        f"{summary['ks_scale']:.3f}): " + ", ".join(f"t={k}: {v:.3f}" for k, v in ks.items()),
        "", f"|dPsi/dr| at the wall r = 0: {pde['wall_velocity']:.1e}.", "",
        "![gallery](gallery.png)",
    ]
    run_dir.write_text("report.md", "\n".join(lines) + "\n")
    _common.finish(run_dir, summary, comm)


if __name__ == "__main__":
    sys.exit(_common.run(main))
