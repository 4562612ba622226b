"""Verification on the exact linear-unit solution: observed order in time of the PDE loss.

s(x; theta) = theta . x, x ~ N(0, I_2) (Gauss-Hermite, E x x^T = I exactly), y = m* . x.
grad Psi = m(t) - m* for every theta, so rho_t is rho_0 translated and
    L(t) = 1/2 |m(t) - m*|^2,   m(t) = m* + (m(0) - m*) e^{-t}.
With Psi linear in theta the two-point gradient is exact, and the upwind flux of a
uniform velocity moves the discrete mean exactly, so with m(0) taken from the
discrete rho_0 the remaining error is the time integrator's (until mass nears the
boundary). Run:  .venv/bin/python benchmarks/linear_translation.py
"""

import numpy as np
from mpi4py import MPI

from solver.model import density, quadrature, targets, units
from solver.model.domain import Box
from solver.model.problem import Problem
from solver.pde.solve import solve
from solver.settings import PDESettings

M_STAR = np.array([1.5, -0.5])


def linear_problem(t_final: float) -> Problem:
    return Problem(units.LinearUnit(2), quadrature.gauss_hermite([0.0, 0.0], 1.0, 4),
                   targets.ExpressionTarget("1.5*x0 - 0.5*x1", 2), Box((-5, -5), (5, 5)),
                   density.Gaussian([0.3, 0.2], [0.4, 0.4]), t_final=t_final)


def loss_error(integrator: str, max_step: float, cells: int = 64, t_final: float = 1.0):
    problem = linear_problem(t_final)
    settings = PDESettings(cells=(cells, cells), integrator=integrator, max_step=max_step,
                           outputs=4, snapshots=0, progress=False)
    result = solve(problem, settings, comm=MPI.COMM_SELF)
    # m(0) of the discrete rho_0: f_0(x) = m0 . x, read off at the data points
    x = problem.data.points
    m0 = np.linalg.lstsq(x, result.f[0], rcond=None)[0]
    m_t = M_STAR + np.outer(np.exp(-result.times), m0 - M_STAR)
    exact = 0.5 * np.sum((m_t - M_STAR) ** 2, axis=1)
    return float(np.max(np.abs(result.loss - exact) / exact)), len(result.steps["t"]) - 1


def main() -> None:
    print("integrator  max_step  steps  max rel. loss error  observed order")
    for integrator in ("euler", "ssprk2", "ssprk3"):
        previous = None
        for max_step in (0.04, 0.02, 0.01, 0.005):
            err, steps = loss_error(integrator, max_step)
            order = "" if previous is None else f"{np.log2(previous / err):.2f}"
            print(f"{integrator:10s}  {max_step:8.4f}  {steps:5d}  {err:19.3e}  {order}")
            previous = err


if __name__ == "__main__":
    main()
