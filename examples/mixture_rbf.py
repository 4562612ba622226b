"""Gaussian-mixture target with 1-D RBF units: the PDE's energy against closed forms.

Units s(x; c, z) = c exp(-(x - z)^2 / (2 w^2)), theta = (c, z), w = 0.5; data x ~ N(0, s^2),
s = 1.5; target y(x) = sum_j a_j exp(-(x - m_j)^2 / (2 v_j^2)) with (a, m, v) =
(2.5, -1.5, 0.7), (-2, 0, 0.6), (2, 1.5, 0.8) (the setting of the neuron birth-death
examples of Rotskoff, Jelassi, Bruna and Vanden-Eijnden, ICML 2019, in one dimension).
Every v_j > w, so y is a smooth superposition of units (int N(z; m, v^2 - w^2) ... dz) and the
flow does not have to concentrate onto points.

Here F(theta) = E_mu[y s] and K(theta, theta') = E_mu[s s'] are Gaussian integrals. With
g(x; m, v) = exp(-(x - m)^2 / (2 v^2)) and lam = 1/v1^2 + 1/v2^2, b = m1/v1^2 + m2/v2^2,
q = (m1^2/v1^2 + m2^2/v2^2)/2, completing the square under N(0, s^2) gives

    I(m1, v1; m2, v2) = E[g(x; m1, v1) g(x; m2, v2)]
                      = (1 + lam s^2)^(-1/2) exp(b^2 s^2 / (2 (1 + lam s^2)) - q),
    F(c, z) = c sum_j a_j I(m_j, v_j; z, w),   K((c, z), (c', z')) = c c' I(z, w; z', w),
    E[rho] = E[y^2]/2 - int F rho + 1/2 int int K rho rho,
    E[y^2] = sum_jk a_j a_k I(m_j, v_j; m_k, v_k),
    MC[rho] = int K(theta, theta) rho - int int K rho rho

(``solver/reference/closed_form.py``, tested against brute-force integration). The solver
never sees these formulas: it uses a Gauss-Hermite data rule (M nodes) and M x Q products.
Three comparisons:

1. the closed-form energy of the PDE's own final density (its weighted Gauss points),
   E_cf[rho_h(T)], against the PDE's E(T): they differ only by the data quadrature
   error, shown for M = 40 .. 240 (narrow bumps need many Gauss-Hermite nodes);
2. the PDE's E(t) and MC(t) against a Lagrangian reference that moves weighted nodes of
   rho_0 (Gauss-Hermite in c times composite Gauss-Legendre in z on the box, the PDE's
   restriction of rho_0) with the closed-form velocity -grad Psi = grad F - grad int K rho
   (RK4; no data quadrature at all), on a sequence of meshes: the error and its order;
3. the reference's own error, from a run with fewer nodes.

PDE: DG1 + SSP-RK3 on [-6, 6]^2 (c, z), rho_0 = N(0, diag(0.3^2, 1.2^2)), t in [0, 3]: the
early phase of training (E falls from 0.92 to 0.77; the closed-form reference reaches
E = 0.10 only at t = 30), where the reference is accurate to 6e-5.

Outputs (runs/mixture_rbf): pde_<cells>/ (each mesh's run), energy.csv, gallery.png,
report.md, summary.json.
"""

from __future__ import annotations

import sys
import time

import _common
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from mpi4py import MPI

from solver.io import RunDirectory
from solver.model import density, functionals, quadrature, targets, units
from solver.model.domain import Box
from solver.model.problem import Problem
from solver.reference.closed_form import GaussianMixtureRBF, lagrangian_energy
from solver.reference.rules import gauss_legendre, tensor
from solver.settings import PDESettings

# --- parameters ----------------------------------------------------------------------------

MODEL = GaussianMixtureRBF(width=0.5, data_std=1.5, amplitudes=(2.5, -2.0, 2.0),
                           means=(-1.5, 0.0, 1.5), stds=(0.7, 0.6, 0.8))
INITIAL = density.Gaussian([0.0, 0.0], [0.3, 1.2])
BOX = Box((-6.0, -6.0), (6.0, 6.0))
#: per size: PDE meshes (cells per axis), t_final, Gauss-Hermite data nodes M, Lagrangian
#: rules (Gauss-Hermite nodes in c, 4-node Gauss-Legendre panels in z: reference, its check)
#: and RK4 step
SIZES = {
    "default": {"cells": (16, 32, 64), "t_final": 3.0, "M": 240, "nodes": ((12, 32), (8, 24)),
                "dt": 0.03},
    "small": {"cells": (8, 16), "t_final": 1.0, "M": 120, "nodes": ((8, 16), (6, 12)),
              "dt": 0.05},
}
QUADRATURE_STUDY = (40, 80, 160, 240)


def problem(t_final: float, M: int) -> Problem:
    """RBF units on the Gaussian-mixture target, data by Gauss-Hermite with M nodes."""
    return Problem(units.RBFUnit(1, MODEL.width), quadrature.gauss_hermite(0.0, MODEL.data_std, M),
                   targets.ExpressionTarget(MODEL.expression(), 1), BOX, INITIAL,
                   t_final=t_final, name="mixture-rbf")


def initial_rule(nodes_c: int, panels_z: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted nodes (theta_q, W_q) of rho_0 restricted to the box: Gauss-Hermite in c (rho_0's
    mass beyond |c| = 6 is 20 std out), composite 4-point Gauss-Legendre panels in z."""
    (mc, mz), (sc, sz) = INITIAL.mean, INITIAL.std
    c, wc = np.polynomial.hermite_e.hermegauss(nodes_c)
    z, wz = gauss_legendre(BOX.lower[1], BOX.upper[1], 4, panels_z)
    theta, w = tensor([mc + sc * c, z], [wc, wz * np.exp(-((z - mz) ** 2) / (2 * sz**2))])
    return theta, w / w.sum()


# --- the PDE on one mesh, and the closed-form energy of its final density -------------------

def solve_on(p: Problem, cells: int, run_dir: RunDirectory, comm: MPI.Comm, progress: bool):
    """DG1 on cells^2; returns the result and the final density as a weighted point set
    (theta_q, W_q) gathered on rank 0 (None elsewhere)."""
    from solver.pde.solve import solve  # DOLFINx only when the PDE runs

    settings = PDESettings(cells=(cells, cells), scheme="dg", degree=1, integrator="ssprk3",
                           outputs=12, snapshots=2, max_outflow=1e-4, progress=progress)
    result = solve(p, settings, RunDirectory(run_dir / f"pde_{cells}", writer=run_dir.writer),
                   comm)
    parts = comm.gather(result.scheme.point_measure(), root=0)
    if comm.rank != 0:
        return result, None
    return result, (np.vstack([t for t, _ in parts]), np.concatenate([w for _, w in parts]))


def quadrature_errors(theta: np.ndarray, weights: np.ndarray, t_final: float) -> dict[int, float]:
    """E_M[rho] - E_cf[rho] for the solver's energy with M Gauss-Hermite nodes, on one density."""
    exact = MODEL.energy(theta, weights)
    out = {}
    for M in QUADRATURE_STUDY:
        p = problem(t_final, M)
        f = functionals.network_output(p, theta, weights)
        out[M] = functionals.energy(p, f, theta, weights) - exact
    return out


# --- figure and report -------------------------------------------------------------------

def gallery(path, times, runs, lag, lag_check, theta, weights, p: Problem, f_final) -> None:
    fig, ax = plt.subplots(2, 2, figsize=(12, 9.5))
    a = ax[0, 0]
    a.plot(times, lag[0], "k-", lw=2.5, label="Lagrangian, closed-form velocity")
    for cells, res in runs.items():
        a.plot(res.times, res.energy, "--", label=f"PDE DG1 {cells}^2")
    a.set(xlabel="t", ylabel="E(t)", title="energy: PDE vs closed-form reference")
    a.legend(fontsize=8)
    a = ax[0, 1]
    for cells, res in runs.items():
        a.semilogy(res.times[1:], np.abs(res.energy - lag[0])[1:], "o-", ms=3,
                   label=f"|E_PDE - E_ref|, {cells}^2")
    a.semilogy(times[1:], np.abs(lag_check[0] - lag[0])[1:], "k:",
               label="reference's own error (fewer nodes)")
    a.set(xlabel="t", ylabel="|error in E(t)|", title="error of E(t) by mesh")
    a.legend(fontsize=8)
    a = ax[1, 0]
    cells = max(runs)
    mass, xe, ye = np.histogram2d(theta[:, 0], theta[:, 1], bins=cells,
                                  range=[[-6, 6], [-6, 6]], weights=weights)
    im = a.pcolormesh(xe, ye, mass.T / ((xe[1] - xe[0]) * (ye[1] - ye[0])), cmap="magma_r")
    plt.colorbar(im, ax=a, shrink=0.8)
    a.set(xlabel="c", ylabel="z", xlim=(-5, 5), ylim=(-5, 5),
          title=f"rho(c, z) at t={p.t_final:g} (DG1 {cells}^2)")
    a = ax[1, 1]
    x = np.linspace(-4.5, 4.5, 400)
    a.plot(x, MODEL.target(x), "k-", lw=2, label="target y(x)")
    order = np.argsort(p.data.points[:, 0])
    a.plot(p.data.points[order, 0], f_final[order], "r--", label=f"f_rho(x), t={p.t_final:g}")
    a.plot(x, 3.5 * np.exp(-x**2 / (2 * MODEL.data_std**2)) - 4.5, color="gray", lw=0.8,
           label="data law N(0, s^2) (scaled)")
    a.set(xlabel="x", xlim=(-4.5, 4.5), title="target and network output")
    a.legend(fontsize=8)
    _common.save_figure(
        fig, path,
        "RBF units on a Gaussian-mixture target: PDE energy vs closed-form F and K")


def report_text(s: dict) -> str:
    lines = ["# RBF units on a Gaussian-mixture target: PDE vs closed forms", "",
             "## Closed-form energy of the PDE density vs the PDE's own energy (t = T)", "",
             f"E_cf[rho_h(T)] - E_PDE(T) = {s['cf_vs_pde_final']:.2e} (M = {s['M']} "
             "Gauss-Hermite nodes). The solver's energy with M nodes on the same density:", "",
             "| M | E_M - E_cf |", "|---|---|"]
    lines += [f"| {m} | {e:.2e} |" for m, e in s["quadrature_error"].items()]
    lines += ["", "## PDE E(t) vs the closed-form Lagrangian reference", "",
              f"Reference: {s['reference']['nodes']} (Gauss-Hermite nodes in c, Gauss-Legendre "
              f"panels in z), RK4 "
              f"dt = {s['reference']['dt']}; its own error estimate (vs "
              f"{s['reference']['check_nodes']} nodes): {s['reference']['error']:.1e}.", "",
              "| cells | max_t abs(E - E_ref) | order | max_t abs(MC - MC_ref) | "
              "E_cf - E_PDE at T | wall s |", "|---|---|---|---|---|---|"]
    for row in s["meshes"]:
        order = "" if row["order"] is None else f"{row['order']:.2f}"
        lines.append(f"| {row['cells']}^2 | {row['energy_error']:.2e} | {order} | "
                     f"{row['mc_error']:.2e} | {row['cf_minus_pde']:.1e} | "
                     f"{row['wall_time_s']:.1f} |")
    lines += ["", "![gallery](gallery.png)", ""]
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    args = _common.parse_args(__doc__, argv)
    comm = MPI.COMM_WORLD
    run_dir = _common.open_run("mixture_rbf", args, comm)
    size = SIZES[args.size]
    p = problem(size["t_final"], size["M"])

    # the PDE on each mesh (collective), the final density of each on rank 0
    runs, measures = {}, {}
    for cells in size["cells"]:
        runs[cells], measures[cells] = solve_on(p, cells, run_dir, comm, not args.no_progress)
    times = runs[size["cells"][0]].times

    summary = None
    if comm.rank == 0:
        # the Lagrangian reference with the closed-form velocity, and a coarser one
        start = time.perf_counter()
        lag = {}
        for nodes in size["nodes"]:
            lag[nodes] = lagrangian_energy(MODEL, *initial_rule(*nodes), times, size["dt"])
        ref, check = (lag[n] for n in size["nodes"])
        ref_wall = time.perf_counter() - start

        rows, prev = [], None
        for cells, res in runs.items():
            theta, weights = measures[cells]
            err = float(np.max(np.abs(res.energy - ref[0])))
            order = None if prev is None else float(np.log2(prev / err))
            rows.append({"cells": cells, "energy_error": err, "order": order,
                         "mc_error": float(np.max(np.abs(res.mc - ref[1]))),
                         "cf_minus_pde": MODEL.energy(theta, weights) - float(res.energy[-1]),
                         "wall_time_s": res.wall_time, "steps": len(res.steps["t"]) - 1,
                         "energy_monotone": bool(np.all(np.diff(res.steps["energy"]) <= 0)),
                         "mass_drift": float(np.ptp(res.steps["mass"]))})
            prev = err
        finest = max(runs)
        theta, weights = measures[finest]
        summary = {
            "M": size["M"], "t_final": p.t_final,
            "energy_initial": float(runs[finest].energy[0]),
            "energy_final": float(runs[finest].energy[-1]),
            "cf_vs_pde_final": rows[-1]["cf_minus_pde"],
            "quadrature_error": quadrature_errors(theta, weights, p.t_final),
            "reference": {"nodes": size["nodes"][0], "check_nodes": size["nodes"][1],
                          "dt": size["dt"], "wall_time_s": ref_wall,
                          "error": float(np.max(np.abs(ref[0] - check[0]))),
                          "energy_final": float(ref[0][-1]), "mc_final": float(ref[1][-1])},
            "meshes": rows, "ranks": comm.size, "size": args.size,
        }
        run_dir.write_csv("energy.csv", ["t", "E_reference", "MC_reference",
                                         *(f"E_pde_{c}" for c in runs),
                                         *(f"MC_pde_{c}" for c in runs)],
                          np.column_stack([times, ref[0], ref[1],
                                           *(r.energy for r in runs.values()),
                                           *(r.mc for r in runs.values())]).tolist())
        gallery(run_dir / "gallery.png", times, runs, ref, check, theta, weights, p,
                runs[finest].f[-1])
        run_dir.write_text("report.md", report_text(summary))
    _common.finish(run_dir, summary, comm)


if __name__ == "__main__":
    sys.exit(_common.run(main))
