"""Accuracy table of the reference solutions against each other.

    .venv/bin/python -m solver.reference

Checks: Lagrangian (RK4 / DOP853) vs the exact linear translation; Lagrangian with frozen axes
vs the exact kernel flow (circle RBF); the Gibbs fixed point vs the closed-form Gaussian and its
quadrature convergence; the Lagrangian self-consistency estimate on the nonlinear circle problem.
"""

from __future__ import annotations

import warnings

import numpy as np

from solver.model import density, quadrature, targets, units
from solver.model.domain import Box
from solver.model.problem import Problem
from solver.reference.exact import KernelFlow, LinearTranslation
from solver.reference.gibbs import gibbs_state
from solver.reference.lagrangian import lagrangian_convergence, lagrangian_flow


def _linear(lam: float = 0.0, beta: float = np.inf) -> Problem:
    return Problem(units.LinearUnit(2), quadrature.gauss_hermite([0.0, 0.0], 1.0, 4),
                   targets.ExpressionTarget("1.5*x0 - 0.5*x1", 2), Box((-6, -6), (6, 6)),
                   density.Gaussian([0.3, 0.2], [0.4, 0.4]), lam=lam, beta=beta)


def _circle(std_z: float, lam: float = 0.0, frozen: tuple[int, ...] = (),
            beta: float = np.inf) -> Problem:
    unit = units.CircleRBFUnit(0.5)
    teacher = targets.TeacherTarget(unit, [[2.0, -1.0], [-1.5, 0.3], [1.5, 1.2]])
    return Problem(unit, quadrature.circle_lattice(32), teacher,
                   Box((-5.0, -np.pi), (5.0, np.pi)), density.Gaussian([0.2, 0.1], [0.5, std_z]),
                   lam=lam, frozen=frozen, beta=beta)


def main() -> None:
    warnings.simplefilter("ignore", RuntimeWarning)
    times = np.linspace(0.0, 2.0, 5)
    print("1. Lagrangian vs exact linear translation, t in [0, 2], max relative loss error")
    for lam in (0.0, 0.4):
        problem = _linear(lam)
        exact = LinearTranslation.from_problem(problem)
        for dt in (0.02, 0.01, 0.005):
            run = lagrangian_flow(problem, times, nodes=4, dt=dt)
            err = np.max(np.abs(run.loss / exact.loss(times) - 1))
            print(f"   lam={lam}  RK4 dt={dt:<6}  {err:.2e}")
        run = lagrangian_flow(problem, times, nodes=4, integrator="dop853", rtol=1e-12,
                              atol=1e-13)
        err = np.max(np.abs(run.loss / exact.loss(times) - 1))
        print(f"   lam={lam}  DOP853 rtol=1e-12  {err:.2e}  ({run.steps} steps)")

    print("2. Lagrangian (frozen z) vs exact kernel flow, circle RBF, t in [0, 4], max |f error|")
    times = np.linspace(0.0, 4.0, 9)
    for lam in (0.0, 0.3):
        problem = _circle(0.4, lam, frozen=(1,))
        exact = KernelFlow.from_problem(problem)
        for nz in (20, 30, 40):
            run = lagrangian_flow(problem, times, nodes=(3, nz), dt=0.01)
            err = np.max(np.abs(run.f - exact.f(times)))
            mc = np.max(np.abs(run.mc - exact.mc(times)))
            print(f"   lam={lam}  z nodes={nz:<3} RK4 dt=0.01  f {err:.2e}  MC {mc:.2e}")

    print("3. Gibbs fixed point")
    problem = _linear(0.5, 20.0)
    state = gibbs_state(problem, nodes=20, panels=8)
    exact = LinearTranslation.from_problem(problem)
    err = np.max(np.abs(state.density - exact.gibbs_density(state.theta)))
    print(f"   linear unit vs N(m_inf, I/(lam beta)): max |rho error| {err:.2e}, residual "
          f"{state.residual:.1e}, Newton steps {state.iterations}")
    problem = _circle(0.6, lam=0.1, beta=5.0)
    coarse = gibbs_state(problem, nodes=24, panels=4)
    fine = gibbs_state(problem, nodes=24, panels=8)
    print(f"   circle RBF beta=5 lam=0.1: residual {coarse.residual:.1e}, density residual "
          f"{coarse.density_residual:.1e}, Newton steps {coarse.iterations}; 96^2 vs 192^2 "
          f"nodes: |df| {np.max(np.abs(fine.f - coarse.f)):.1e}, "
          f"|dF| {abs(fine.free_energy - coarse.free_energy):.1e}")

    print("4. Lagrangian self-consistency, circle RBF (all axes free), t in [0, 4]")
    check = lagrangian_convergence(_circle(0.6), np.linspace(0.0, 4.0, 9), nodes=16, dt=0.04)
    print(f"   {check.summary()}")


if __name__ == "__main__":
    main()
