"""Independent reference solutions (solver/reference) checked against each other.

Exact linear translation vs Lagrangian characteristics, exact kernel flow vs Lagrangian with
frozen axes, the Gibbs fixed point vs its own equation and the closed-form Gaussian, energy
dissipation of the Lagrangian solution on a nonlinear problem.
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy.linalg import expm

from solver.model import density, functionals, quadrature, targets, units
from solver.model.domain import Box
from solver.model.problem import Problem
from solver.reference.exact import KernelFlow, LinearTranslation
from solver.reference.gibbs import free_energy_of, gibbs_state
from solver.reference.lagrangian import (
    initial_nodes,
    lagrangian_convergence,
    lagrangian_flow,
)
from solver.reference.rules import native_rule, periodic_axes, restricted_rule
from tests.conftest import circle_problem

M_STAR = np.array([1.5, -0.5])


def linear_problem(lam: float = 0.0, beta: float = np.inf) -> Problem:
    """s = theta . x, x ~ N(0, I_2) (Gauss-Hermite: E x x^T = I exactly), y = m* . x."""
    return Problem(units.LinearUnit(2), quadrature.gauss_hermite([0.0, 0.0], 1.0, 4),
                   targets.ExpressionTarget("1.5*x0 - 0.5*x1", 2), Box((-6, -6), (6, 6)),
                   density.Gaussian([0.3, 0.2], [0.4, 0.4]), lam=lam, beta=beta)


def kernel_problem(lam: float = 0.0) -> Problem:
    """Circle RBF with z frozen; rho_0 cut by the box only below 1e-14."""
    unit = units.CircleRBFUnit(0.5)
    teacher = targets.TeacherTarget(unit, [[2.0, -1.0], [-1.5, 0.3], [1.5, 1.2]])
    return Problem(unit, quadrature.circle_lattice(32), teacher,
                   Box((-5.0, -np.pi), (5.0, np.pi)), density.Gaussian([0.2, 0.1], [0.5, 0.4]),
                   lam=lam, frozen=(1,))


# --- exact linear translation ------------------------------------------------------------------


def test_translation_exact_formulas():
    lt = LinearTranslation.from_problem(linear_problem())
    np.testing.assert_allclose(lt.sigma, np.eye(2), rtol=0, atol=1e-14)
    np.testing.assert_allclose(lt.m_star, M_STAR, rtol=0, atol=1e-14)
    np.testing.assert_allclose(lt.m0, [0.3, 0.2], rtol=0, atol=1e-13)
    np.testing.assert_allclose(lt.cov0, 0.16 * np.eye(2), rtol=0, atol=1e-13)
    t = np.array([0.0, 0.7, 3.0])
    m = M_STAR + np.outer(np.exp(-t), np.array([0.3, 0.2]) - M_STAR)
    np.testing.assert_allclose(lt.mean(t), m, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(lt.loss(t), 0.5 * np.sum((m - M_STAR) ** 2, axis=1), rtol=1e-12)
    # the density is rho_0 translated: unit mass, mean m(t)
    g = np.linspace(-6, 6, 481)
    theta = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    rho = lt.density(theta, 0.7) * (g[1] - g[0]) ** 2
    assert rho.sum() == pytest.approx(1.0, abs=1e-10)
    np.testing.assert_allclose(rho @ theta, m[1], rtol=0, atol=1e-10)


def test_noisy_translation_tends_to_the_gibbs_state():
    lt = LinearTranslation.from_problem(linear_problem(lam=0.5, beta=20.0))
    cov = lt.covariance([0.0, 0.3, 80.0])
    assert cov[0] == pytest.approx(0.16 * np.eye(2))
    v = 0.16 * np.exp(-0.3) + (1 - np.exp(-0.3)) / (0.5 * 20.0)
    assert cov[1] == pytest.approx(v * np.eye(2), rel=1e-14)
    np.testing.assert_allclose(lt.mean([80.0])[0], M_STAR / 1.5, rtol=1e-14)
    no_lam = LinearTranslation.from_problem(linear_problem(beta=4.0))
    assert no_lam.covariance([2.0])[0] == pytest.approx((0.16 + 1.0) * np.eye(2), rel=1e-14)


def test_lagrangian_reproduces_exact_translation():
    problem = linear_problem()
    lt = LinearTranslation.from_problem(problem)
    times = np.linspace(0.0, 2.0, 5)
    run = lagrangian_flow(problem, times, nodes=4, dt=0.005)
    assert np.max(np.abs(run.loss / lt.loss(times) - 1)) < 1e-10
    np.testing.assert_allclose(run.f, lt.f(times), rtol=0, atol=1e-10)
    np.testing.assert_allclose(run.mc, lt.mc(times), rtol=0, atol=1e-13)
    adaptive = lagrangian_flow(problem, times, nodes=4, integrator="dop853", rtol=1e-12,
                               atol=1e-13)
    assert np.max(np.abs(adaptive.loss / lt.loss(times) - 1)) < 1e-11


def test_lagrangian_grid_rule_is_the_restricted_density_and_converges():
    """The "grid" rule integrates rho_0 restricted to the box; its translation is exact."""
    problem = linear_problem()
    lt = LinearTranslation.from_problem(problem)
    times = np.linspace(0.0, 1.0, 3)
    errors = []
    for panels in (4, 8, 16):
        run = lagrangian_flow(problem, times, nodes=panels, dt=0.01, rule="grid")
        assert abs(run.weights.sum() - 1) < 1e-14
        errors.append(np.max(np.abs(run.loss / lt.loss(times) - 1)))
    # measured 6.0e-3, 2.0e-4, 1.0e-7: faster than algebraic as the panels resolve rho_0
    assert errors[2] < 1e-6 and errors[1] < 0.1 * errors[0] and errors[2] < 0.01 * errors[1]


def test_lagrangian_reproduces_exact_translation_with_confinement():
    problem = linear_problem(lam=0.4)
    lt = LinearTranslation.from_problem(problem)
    times = np.linspace(0.0, 2.0, 5)
    run = lagrangian_flow(problem, times, nodes=4, dt=0.005)
    np.testing.assert_allclose(run.f, lt.f(times), rtol=0, atol=1e-10)
    np.testing.assert_allclose(run.energy, lt.energy(times), rtol=1e-10)
    np.testing.assert_allclose(run.mc, lt.mc(times), rtol=1e-10)


# --- exact kernel flow -------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_lagrangian_with_frozen_axes_reproduces_kernel_flow(lam):
    problem = kernel_problem(lam)
    kf = KernelFlow.from_problem(problem)
    assert kf.quadrature_change < 1e-13
    times = np.linspace(0.0, 4.0, 9)
    run = lagrangian_flow(problem, times, nodes=(3, 40), dt=0.01)
    assert run.initial_mass_dropped < 1e-12
    assert np.max(np.abs(run.f - kf.f(times))) < 1e-8
    assert np.max(np.abs(run.mc - kf.mc(times))) < 1e-10
    assert np.max(np.abs(run.energy - kf.energy(times))) < 1e-10
    assert np.all(np.diff(kf.energy(times)) < 0)


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_kernel_flow_matches_the_matrix_exponential(lam):
    """f_t = e^{-tB} f_0 + B^{-1} (I - e^{-tB}) K W y, B = K W + lam (lam = 0: y + e^{-tKW} r_0)."""
    kf = KernelFlow.from_problem(kernel_problem(lam))
    K, w, y = kf.kernel, kf.problem.data.weights, kf.problem.y
    B = K * w[None, :] + lam * np.eye(len(w))
    for t in (0.0, 0.5, 3.0):
        decay = expm(-t * B)
        if lam == 0:
            expected = y + decay @ (kf.f0 - y)
        else:
            expected = decay @ kf.f0 + np.linalg.solve(B, (np.eye(len(w)) - decay) @ (K @ (w * y)))
        np.testing.assert_allclose(kf.f([t])[0], expected, rtol=0, atol=1e-12)


def test_kernel_flow_rejects_a_unit_nonlinear_in_the_free_axis():
    problem = kernel_problem()
    problem.frozen = (0,)  # z free, c frozen: s is not linear in z
    with pytest.raises(ValueError, match="not linear"):
        KernelFlow.from_problem(problem)


# --- Gibbs steady state -----------------------------------------------------------------------


def test_gibbs_matches_the_closed_form_gaussian():
    """Linear unit, lam > 0: rho_inf = N((I + lam)^{-1} m*, I / (lam beta)), self-consistent."""
    problem = linear_problem(lam=0.5, beta=20.0)
    lt = LinearTranslation.from_problem(problem)
    state = gibbs_state(problem, nodes=20, panels=8)
    assert state.residual < 1e-12
    assert state.weights @ state.density == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(state.density, lt.gibbs_density(state.theta), rtol=0, atol=1e-12)
    np.testing.assert_allclose(state.f, (M_STAR / 1.5) @ problem.data.points.T, rtol=0, atol=1e-12)
    assert state.free_energy == pytest.approx(lt.free_energy([200.0])[0], abs=1e-12)


def test_gibbs_fixed_point_on_a_nonlinear_problem():
    problem = circle_problem(lam=0.1)
    problem.beta = 5.0
    state = gibbs_state(problem, nodes=24, panels=4)
    assert state.residual < 1e-12 and state.density_residual < 1e-11
    assert state.weights @ state.density == pytest.approx(1.0, abs=1e-13)
    # its own equation, recomputed with the model's functionals
    W = state.weights * state.density
    f = functionals.network_output(problem, state.theta, W)
    np.testing.assert_allclose(f, state.f, rtol=0, atol=1e-14)
    a = -problem.beta * functionals.potential(problem, state.theta, f)
    rho = np.exp(a - a.max())
    rho /= state.weights @ rho
    np.testing.assert_allclose(rho, state.density, rtol=1e-11, atol=1e-13 * rho.max())
    np.testing.assert_allclose(state.density_at(state.theta), state.density, rtol=1e-13)
    assert state.density_at(np.array([[9.0, 0.0]]))[0] == 0.0
    # quadrature converged: a finer rule gives the same f and F
    finer = gibbs_state(problem, nodes=24, panels=8)
    np.testing.assert_allclose(finer.f, state.f, rtol=0, atol=1e-12)
    assert finer.free_energy == pytest.approx(state.free_energy, abs=1e-12)
    # the minimiser of F: other densities on the same rule have a larger free energy
    F = free_energy_of(problem, state.theta, state.weights, state.density)
    assert F == pytest.approx(state.free_energy, abs=1e-14)
    rng = np.random.default_rng(0)
    for eps in (1e-1, 1e-3):
        other = state.density * np.exp(eps * rng.standard_normal(len(rho)))
        other /= state.weights @ other
        assert free_energy_of(problem, state.theta, state.weights, other) > F


# --- Lagrangian on a nonlinear problem ----------------------------------------------------------


def test_lagrangian_energy_decreases_at_the_dissipation_rate():
    problem = circle_problem(t_final=1.0)
    times = np.linspace(0.0, 1.0, 21)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rho_0 cut at 5 std by the box
        run = lagrangian_flow(problem, times, nodes=16, dt=0.01)
    assert np.all(np.diff(run.energy) < 0)
    # E(t1) - E(t0) = -int D dt (Simpson on pairs of output intervals)
    h = times[1] - times[0]
    d = run.dissipation
    simpson = h / 3 * (d[:-2:2] + 4 * d[1:-1:2] + d[2::2])
    np.testing.assert_allclose(np.diff(run.energy[::2]), -simpson, rtol=1e-5)


def test_lagrangian_convergence_reports_small_errors():
    problem = circle_problem(t_final=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        check = lagrangian_convergence(problem, [0.0, 0.5, 1.0], nodes=12, dt=0.05)
    assert check.time_error < 1e-9
    assert check.node_error < 1e-3
    assert check.error == check.node_error + check.time_error
    assert "estimated error" in check.summary()


# --- quadrature rules ---------------------------------------------------------------------------


def test_rules_restricted_mass_and_dropped_nodes():
    problem = circle_problem()
    rr = restricted_rule(problem.domain, problem.initial)
    assert rr.mass == pytest.approx(rr.mass_exact, abs=1e-13)
    assert rr.density_weights.sum() == pytest.approx(1.0, abs=1e-14)
    assert periodic_axes(problem.domain) == ()
    theta, W = native_rule(problem.initial, 12)
    assert W.sum() == pytest.approx(1.0) and theta.shape == (144, 2)
    with pytest.warns(RuntimeWarning, match="outside the domain"):
        _, W_in, dropped, cut = initial_nodes(problem, 30)
    assert dropped > 0 and cut > 0 and W_in.sum() == pytest.approx(1.0)
    uniform = density.Uniform([-1.0, -1.0], [1.0, 0.5])
    rr = restricted_rule(Box((-2.0, -2.0), (0.5, 2.0)), uniform)
    assert rr.mass == pytest.approx(0.75, abs=1e-14)
    np.testing.assert_allclose(rr.density_weights @ rr.theta, [-0.25, -0.25], rtol=0, atol=1e-14)


def test_reference_does_not_import_dolfinx():
    code = (
        "import sys\n"
        "import solver.reference.exact, solver.reference.gibbs, solver.reference.lagrangian\n"
        "heavy = ('dolfinx', 'petsc4py', 'ufl', 'mpi4py')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
