"""DG transport: observed order on the exact translation solution, and cost per step.

1. Exact solution. s(x; theta) = theta . x, x ~ N(0, I_2) (Gauss-Hermite: E x x^T = I
   exactly), y = m* . x. Then grad Psi = m(t) - m* for every theta, m(t) the mean of
   rho_t, so rho_t is rho_0 translated: rho_t(theta) = rho_0(theta - shift(t)),
   shift(t) = (m0 - m*)(e^{-t} - 1). Psi is linear, so its CG_{k+1} interpolant and the
   velocity are exact and the density error is the transport scheme's alone. The table
   gives the L1 and L2 density errors at t_final against h with observed orders, for DG0
   (FiniteVolume, two-point upwind), DG1 and DG2 (DGTransport), all with SSP-RK3 at
   cfl = 0.5 of each scheme's positivity bound.
2. Cost. ms per SSP-RK3 step (3 stages, the CFL bound and the per-step diagnostics, as
   solve() does them) on the flagship RBF-on-circle problem (M = 64 lattice points, a
   3-unit teacher) at 64^2 and 128^2 cells, against the prototype figures of
   shared/DOLFINX-NOTES.md (18 and 93 ms per step for DG1, measured there with M = 256);
   ``--m 256`` runs that data size.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.dg_translation [--quick] [--m 256]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import ufl
from mpi4py import MPI

from benchmarks.problems import circle_rbf
from solver.model import density, quadrature, targets, units
from solver.model.domain import Box
from solver.model.problem import Problem
from solver.pde.dg_transport import DGTransport
from solver.pde.meshes import box_mesh
from solver.pde.timestepping import try_step

M_STAR = np.array([1.5, -0.5])
M0 = np.array([0.3, 0.2])
STD = 0.4
# rho_0 and rho_t stay >= 5.5 std inside the box for t <= 0.5
DOMAIN = Box((-1.9, -2.3), (3.0, 2.4))
PROTOTYPE_MS = {64: 18.0, 128: 93.0}


def translation_problem(t_final: float = 0.5) -> Problem:
    return Problem(units.LinearUnit(2), quadrature.gauss_hermite([0.0, 0.0], 1.0, 4),
                   targets.ExpressionTarget("1.5*x0 - 0.5*x1", 2), DOMAIN,
                   density.Gaussian(M0, [STD, STD]), t_final=t_final)


def make_scheme(problem: Problem, degree: int, cells: int, comm=MPI.COMM_SELF,
                max_bytes: int | None = None):
    msh = box_mesh(comm, problem.domain, (cells, cells))
    kw = {} if max_bytes is None else {"max_bytes": max_bytes}
    if degree == 0:
        from solver.pde.finite_volume import FiniteVolume

        return FiniteVolume(msh, problem, **kw)
    return DGTransport(msh, problem, degree, **kw)


def advance(scheme, t_final: float, integrator: str = "ssprk3", cfl: float = 0.5,
            diagnostics: bool = False) -> tuple[int, float]:
    """Run to t_final with dt = cfl * the positivity bound; (steps, wall seconds)."""
    t, steps = 0.0, 0
    start = time.perf_counter()
    while t < t_final * (1 - 1e-12):
        dt = min(cfl * scheme.max_stable_step(), t_final - t)
        while not try_step(scheme, integrator, dt):
            dt /= 2
        if diagnostics:
            scheme.diagnostics()
        t += dt
        steps += 1
    return steps, time.perf_counter() - start


def march(scheme, times, integrator: str = "ssprk3", cfl: float = 0.5
          ) -> tuple[np.ndarray, np.ndarray, float, int]:
    """From times[0] = 0 through the output times at dt = cfl * the positivity bound:
    (E at the times, f at the times (T, M), wall seconds, steps)."""
    energy, f, t, steps = [scheme.diagnostics().energy], [scheme.f.copy()], 0.0, 0
    start = time.perf_counter()
    for t_out in times[1:]:
        while t < t_out * (1 - 1e-13):
            dt = min(cfl * scheme.max_stable_step(), t_out - t)
            while not try_step(scheme, integrator, dt):
                dt /= 2
            t, steps = t + dt, steps + 1
        energy.append(scheme.diagnostics().energy)
        f.append(scheme.f.copy())
    return np.array(energy), np.array(f), time.perf_counter() - start, steps


def exact_density(msh, problem: Problem, t: float):
    """rho_0(theta - shift(t)) as a UFL expression (rho_0 renormalised to the box)."""
    shift = (M0 - M_STAR) * (np.exp(-t) - 1.0)
    x = ufl.SpatialCoordinate(msh)
    z2 = sum(((x[i] - M0[i] - shift[i]) / STD) ** 2 for i in range(2))
    norm = 2 * np.pi * STD**2 * problem.initial.mass_in(problem.domain)
    return ufl.exp(-z2 / 2) / norm


def density_errors(scheme, problem: Problem, t: float, quad_degree: int = 8) -> tuple[float, float]:
    """(L1, L2) norms of rho_h - rho_exact(t), by a Gauss rule of degree ``quad_degree``."""
    from dolfinx import fem  # after solver.pde has loaded the wheel's MPI

    msh = scheme.mesh
    err = scheme.rho - exact_density(msh, problem, t)
    dx = ufl.Measure("dx", domain=msh, metadata={"quadrature_degree": quad_degree})
    l1 = fem.assemble_scalar(fem.form(abs(err) * dx))
    l2 = fem.assemble_scalar(fem.form(err**2 * dx))
    comm = msh.comm
    return comm.allreduce(l1, MPI.SUM), float(np.sqrt(comm.allreduce(l2, MPI.SUM)))


def translation_error(degree: int, cells: int, t_final: float = 0.5,
                      integrator: str = "ssprk3", cfl: float = 0.5) -> dict:
    """Density errors of DG_degree (0: finite volumes) on a cells x cells mesh at t_final."""
    problem = translation_problem(t_final)
    scheme = make_scheme(problem, degree, cells)
    scheme.set_density(scheme.initial_density())
    mass0 = scheme.diagnostics().mass
    steps, wall = advance(scheme, t_final, integrator, cfl)
    l1, l2 = density_errors(scheme, problem, t_final)
    d = scheme.diagnostics()
    h = max(np.subtract(DOMAIN.upper, DOMAIN.lower)) / cells
    return {"h": h, "l1": l1, "l2": l2, "steps": steps, "wall": wall,
            "mass_drift": abs(d.mass - mass0), "min_rho": d.min_rho}


def step_cost(degree: int, cells: int, M: int = 64, steps: int = 20,
              integrator: str = "ssprk3") -> tuple[float, float]:
    """(ms per step, setup seconds) on the circle problem, best of 3 batches of ``steps``."""
    problem = circle_rbf(M, t_final=4.0)
    start = time.perf_counter()
    scheme = make_scheme(problem, degree, cells, max_bytes=2**30)
    scheme.set_density(scheme.initial_density())
    setup = time.perf_counter() - start
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(steps):
            dt = 0.5 * scheme.max_stable_step()
            while not try_step(scheme, integrator, dt):
                dt /= 2
            scheme.diagnostics()
        best = min(best, (time.perf_counter() - start) / steps * 1e3)
    return best, setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="coarser meshes only")
    parser.add_argument("--m", type=int, default=64, help="data points of the cost problem")
    args = parser.parse_args()
    meshes = (8, 16, 32, 64) if args.quick else (8, 16, 32, 64, 128)
    print("Translation, t = 0.5, SSP-RK3, cfl 0.5: density error vs h")
    print("scheme  cells     h       steps   L1 error    order   L2 error    order  "
          "mass drift  min rho")
    for degree in (0, 1, 2):
        prev = None
        for n in meshes:
            r = translation_error(degree, n)
            o1 = o2 = ""
            if prev is not None:
                rate = np.log(prev["h"] / r["h"])
                o1 = f"{np.log(prev['l1'] / r['l1']) / rate:.2f}"
                o2 = f"{np.log(prev['l2'] / r['l2']) / rate:.2f}"
            name = "FV/DG0" if degree == 0 else f"DG{degree}"
            print(f"{name:6s}  {n:5d}  {r['h']:.4f}  {r['steps']:6d}  {r['l1']:.3e}  {o1:>5s}"
                  f"   {r['l2']:.3e}  {o2:>5s}  {r['mass_drift']:.1e}    {r['min_rho']:.1e}")
            prev = r
    print(f"\nCost per SSP-RK3 step (circle RBF, M = {args.m}; 3 stages + CFL + diagnostics)")
    print("scheme  cells   ms/step  setup s  prototype DG1 ms/step (M=256)")
    for degree in (0, 1, 2):
        for n in (64, 128):
            ms, setup = step_cost(degree, n, args.m)
            name = "FV/DG0" if degree == 0 else f"DG{degree}"
            print(f"{name:6s}  {n:4d}^2  {ms:7.1f}  {setup:7.2f}  {PROTOTYPE_MS[n]:.0f}")


if __name__ == "__main__":
    main()
