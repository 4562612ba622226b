"""Verification study of the PDE solver on exact and independent reference solutions.

    (i)   linear-unit translation (beta = inf): L1 density error vs h, loss error
    (ii)  its noisy Gaussian version (beta = 20, Scharfetter-Gummel): L1 density error vs h
    (iii) fixed-feature kernel flow (z frozen, circle-RBF): max relative loss error vs h
    (iv)  noisy steady state (beta = 5, lam = 0.1) vs the Newton-computed Gibbs fixed point
    (v)   nonlinear circle-RBF, theta = (c, z): E(t) vs the Lagrangian cross-check
    (vi)  time error of the implicit integrators (noisy circle, beta = 20): implicit (lagged
          backward Euler) and mprk22 at fixed and "auto" tolerances against the space error

Each row also prints the structural record of the run: max mass drift, min rho and the
number of energy increases (targets: <= 1e-12, >= 0, 0). Orders are log2 of successive
error ratios under halving h (and the time step with it, at fixed cfl).

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.verification [study ...] [--dg]
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
from mpi4py import MPI

import solver.pde  # noqa: F401  (dolfinx_solver first)
from benchmarks.problems import circle_rbf
from solver.model import density, quadrature, targets, units
from solver.model.domain import Box, Circle
from solver.model.problem import Problem
from solver.pde.solve import PDEResult, solve
from solver.reference.exact import KernelFlow, LinearTranslation
from solver.reference.gibbs import gibbs_state
from solver.reference.lagrangian import LagrangianResult, lagrangian_flow
from solver.settings import PDESettings

COMM = MPI.COMM_SELF
#: Panels (of 4 Gauss-Legendre nodes) per axis of the Lagrangian reference of study (v).
REF_PANELS = 64


def linear(dim: int, beta: float = np.inf, t_final: float = 1.0) -> Problem:
    expr = " + ".join(f"{c}*x{i}" for i, c in enumerate((1.5, -0.5, 0.8)[:dim]))
    return Problem(units.LinearUnit(dim), quadrature.gauss_hermite([0.0] * dim, 1.0, 4),
                   targets.ExpressionTarget(expr, dim), Box((-4.0,) * dim, (6.0,) * dim),
                   density.Gaussian([0.3, 0.2, -0.1][:dim], [0.4] * dim), beta=beta,
                   t_final=t_final)


def settings(cells, **kw) -> PDESettings:
    return PDESettings(cells=tuple(cells), outputs=kw.pop("outputs", 10), snapshots=0,
                       progress=False, **kw)


def structure(result: PDEResult) -> str:
    s = {k: np.asarray(v) for k, v in result.steps.items()}
    return (f"{np.max(np.abs(s['mass'] - s['mass'][0])):9.1e} {s['min_rho'].min():9.1e} "
            f"{int(np.sum(np.diff(s['energy']) > 0)):3d}")


def table(title: str, rows: list[tuple[str, float, PDEResult, float]]) -> None:
    """rows: (label, error, result, wall seconds); order from consecutive errors."""
    print(f"\n{title}\n{'run':>26} {'steps':>6} {'error':>10} {'order':>6} "
          f"{'mass drift':>10} {'min rho':>9} {'E+':>3} {'wall s':>7}")
    previous = None
    for label, err, result, wall in rows:
        order = "" if previous is None else f"{np.log2(previous / err):6.2f}"
        print(f"{label:>26} {len(result.steps['t']) - 1:6d} {err:10.3e} {order:>6} "
              f"{structure(result)} {wall:7.2f}")
        previous = err


def run(problem: Problem, s: PDESettings) -> tuple[PDEResult, float]:
    start = time.perf_counter()
    result = solve(problem, s, comm=COMM)
    return result, time.perf_counter() - start


def study_translation(dim: int, levels, noisy: bool, **scheme) -> None:
    problem = linear(dim, 20.0 if noisy else np.inf)
    exact = LinearTranslation.from_problem(problem)
    rows = []
    for cells in levels:
        result, wall = run(problem, settings([cells] * dim, **scheme))
        err = result.scheme.l1_error(lambda th: exact.density(th, problem.t_final))
        rows.append((f"{dim}-D, {cells} cells/axis", err, result, wall))
    name = "(ii) noisy Gaussian translation, beta = 20" if noisy else "(i) linear translation"
    table(f"{name}: L1 density error at t = 1 [{scheme or 'fv ssprk2'}]", rows)


def study_kernel_flow(levels, steps, **scheme) -> None:
    """Mesh refinement at a small step, then step refinement on the coarsest mesh.

    With z frozen, Psi = c g(z) is linear in c, so each z-column moves at a uniform speed
    and the upwind flux moves its mean exactly: f_t only sees the midpoint rule in z, which
    is spectrally accurate for this smooth, nearly periodic z-marginal. The loss error is
    then the time integrator's.
    """
    problem = circle_rbf(frozen=(1,), std=(0.5, 0.4), t_final=4.0)
    exact = KernelFlow.from_problem(problem)

    def row(cells, max_step):
        result, wall = run(problem, settings([cells, cells], max_step=max_step, **scheme))
        err = float(np.max(np.abs(result.loss / exact.loss(result.times) - 1)))
        return f"{cells}^2, dt <= {max_step:g}", err, result, wall

    label = scheme or "fv ssprk2"
    table(f"(iii) kernel flow: max rel. loss error on [0, 4] vs h [{label}]",
          [row(cells, steps[-1]) for cells in levels])
    table(f"(iii) kernel flow: max rel. loss error on [0, 4] vs dt [{label}]",
          [row(levels[1], dt) for dt in steps])


def study_gibbs(levels) -> None:
    problem = circle_rbf(beta=5.0, lam=0.1, t_final=400.0)
    gibbs = gibbs_state(problem, nodes=96)
    rows = []
    for cells in levels:
        s = settings([cells, cells], integrator="implicit", time_tolerance=1e-3,
                     stationary_tolerance=1e-13, outputs=1)
        result, wall = run(problem, s)
        err = result.scheme.l1_error(gibbs.density_at)
        rows.append((f"{cells}^2 (t_stop {result.times[-1]:.0f})", err, result, wall))
    print(f"\nGibbs fixed point: Newton residual {gibbs.residual:.1e}, "
          f"free energy {gibbs.free_energy:.10f}")
    table("(iv) noisy steady state vs Gibbs fixed point: L1 density error [fv implicit]", rows)


@functools.cache
def lagrangian_reference(panels: int) -> LagrangianResult:
    return lagrangian_flow(circle_rbf(t_final=5.0), np.linspace(0, 5, 11), nodes=panels,
                           dt=0.01, rule="grid")


def study_lagrangian(levels, **scheme) -> None:
    """E(t) on [0, 5] against the Lagrangian flow of a 4-node x ``REF_PANELS`` grid of rho_0.

    The reference's own error is printed: the same flow from half as many panels per axis.
    """
    problem = circle_rbf(t_final=5.0)
    ref, coarse = lagrangian_reference(REF_PANELS), lagrangian_reference(REF_PANELS // 2)
    rows = []
    for cells in levels:
        result, wall = run(problem, settings([cells, cells], **scheme))
        err = float(np.max(np.abs(result.energy / ref.energy - 1)))
        rows.append((f"{cells}^2", err, result, wall))
    own = float(np.max(np.abs(coarse.energy / ref.energy - 1)))
    print(f"\nLagrangian reference: {ref.theta.shape[0]} nodes, E(5) = {ref.energy[-1]:.12f}; "
          f"max rel. change of E(t) from {coarse.theta.shape[0]} nodes: {own:.1e}")
    table(f"(v) circle-RBF: max rel. E(t) error vs Lagrangian on [0, 5] [{scheme or 'fv'}]",
          rows)


def noisy_circle() -> Problem:
    """theta = z on the circle, s(x; z) = exp((cos(x - z) - 1) / 0.49), a bump target at
    x = 1, rho_0 = N(-0.5, 0.6^2) wrapped, beta = 20, t in [0, 1]."""

    def value(x, theta):
        return np.exp((np.cos(x[:, :1] - theta[:, 0]) - 1) / 0.49)

    def gradient(x, theta):
        return (value(x, theta) * np.sin(x[:, :1] - theta[:, 0]) / 0.49)[..., None]

    unit = units.CallableUnit(value, gradient, param_dim=1, data_dim=1, name="angle_bump")
    return Problem(unit, quadrature.circle_lattice(32),
                   targets.ExpressionTarget("0.8*exp((cos(x0 - 1.0) - 1)/0.49)", 1), Circle(),
                   density.Gaussian([-0.5], [0.6]), beta=20.0, t_final=1.0)


def study_time_error(levels, sweep_cells: int, implicit_auto_max: int) -> None:
    """Loss on [0, 1] (11 outputs): the time error is the distance to an explicit SSP-RK2
    run on the same mesh at cfl = 0.05 (time error O(cfl^2 h^4), 1e-8 of the loss on 64
    cells), the space error the cfl = 0.5 run's distance to a Richardson reference from 1024
    and 2048 cells."""
    problem = noisy_circle()
    fine = [run(problem, settings([c]))[0].loss for c in (1024, 2048)]
    ref = fine[1] + (fine[1] - fine[0]) / 3
    print(f"\nreference: Richardson of 1024/2048 cells; it moves the loss by "
          f"{np.max(np.abs(ref / fine[1] - 1)):.1e} from 2048 cells")

    def rel(a, b):
        return float(np.max(np.abs(a / b - 1)))

    print("\n(vi) noisy circle, beta = 20: max rel. loss error on [0, 1]\n"
          f"{'cells':>5} {'integrator':>10} {'tolerance':>10} {'steps':>6} {'space err':>9} "
          f"{'time err':>9} {'time/space':>10} {'summary says':>12} {'wall s':>7}")
    for cells in levels:
        explicit, wall = run(problem, settings([cells]))
        space = rel(explicit.loss, ref)
        print(f"{cells:5d} {'ssprk2':>10} {'-':>10} {len(explicit.steps['t']) - 1:6d} "
              f"{space:9.2e} {'-':>9} {'-':>10} {'space':>12} {wall:7.2f}")
        explicit = run(problem, settings([cells], cfl=0.05))[0]
        for integrator, tol in (("implicit", 1e-4), ("implicit", "auto"), ("mprk22", 1e-4),
                                ("mprk22", "auto")):
            if integrator == "implicit" and tol == "auto" and cells > implicit_auto_max:
                continue
            result, wall = run(problem, settings([cells], integrator=integrator,
                                                 time_tolerance=tol))
            err, info = rel(result.loss, explicit.loss), result.time_error
            print(f"{cells:5d} {integrator:>10} {info['time_tolerance']:10.2e} "
                  f"{len(result.steps['t']) - 1:6d} {space:9.2e} {err:9.2e} "
                  f"{err / space:10.2e} {info['dominant_error']:>12} {wall:7.2f}")
    explicit = run(problem, settings([sweep_cells], cfl=0.05))[0]
    print(f"\n(vi) time error vs tolerance on {sweep_cells} cells (slope: d log err / d log tol)"
          f"\n{'integrator':>10} {'tolerance':>10} {'steps':>6} {'time err':>9} {'slope':>6}")
    for integrator, tols in (("implicit", (1e-4, 1e-5, 1e-6, 1e-7, 1e-8)),
                             ("mprk22", (1e-3, 1e-4, 1e-5, 1e-6))):
        previous = None
        for tol in tols:
            result = run(problem, settings([sweep_cells], integrator=integrator,
                                           time_tolerance=tol))[0]
            err = rel(result.loss, explicit.loss)
            slope = "" if previous is None else f"{np.log10(previous / err):6.2f}"
            print(f"{integrator:>10} {tol:10.0e} {len(result.steps['t']) - 1:6d} {err:9.2e} "
                  f"{slope:>6}")
            previous = err


STUDIES = {
    "i": lambda: [study_translation(1, [100, 200, 400, 800], noisy=False),
                  study_translation(2, [64, 128, 256], noisy=False)],
    "ii": lambda: [study_translation(1, [100, 200, 400, 800], noisy=True),
                   study_translation(2, [64, 128, 256], noisy=True)],
    "iii": lambda: [study_kernel_flow([16, 32, 64], [0.2, 0.1, 0.05, 0.025]),
                    study_kernel_flow([16, 32, 64], [0.2, 0.1, 0.05, 0.025],
                                      integrator="ssprk3")],
    "iv": lambda: study_gibbs([16, 32, 64, 128]),
    "v": lambda: [study_lagrangian([32, 64, 128, 256]),
                  study_lagrangian([16, 32, 64], scheme="dg", degree=1, integrator="ssprk3"),
                  study_lagrangian([16, 32, 48, 64], scheme="dg", degree=2,
                                   integrator="ssprk3")],
    "vi": lambda: study_time_error([64, 128, 256, 512], sweep_cells=256, implicit_auto_max=128),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="*", help=f"any of {', '.join(STUDIES)} (default all)")
    args = parser.parse_args()
    unknown = set(args.studies) - set(STUDIES)
    if unknown:
        parser.error(f"unknown studies {sorted(unknown)}; choose from {list(STUDIES)}")
    for name in args.studies or STUDIES:
        STUDIES[name]()


if __name__ == "__main__":
    main()
