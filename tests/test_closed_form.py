"""The closed-form Gaussian-mixture / RBF reference against brute-force integration."""

import numpy as np
import pytest
from scipy.integrate import quad

from solver.model import density, functionals, quadrature, targets, units
from solver.model.domain import Box
from solver.model.problem import Problem
from solver.reference.closed_form import GaussianMixtureRBF, lagrangian_energy, overlap
from solver.reference.lagrangian import initial_nodes, lagrangian_flow

MODEL = GaussianMixtureRBF(width=0.5, data_std=1.3, amplitudes=(1.0, -0.7),
                           means=(-1.0, 0.8), stds=(0.7, 0.4))
THETA = np.array([[0.8, -0.3], [-1.2, 1.1], [0.4, 2.0]])


def gauss_mean(fun) -> float:
    """E_{x ~ N(0, s^2)}[fun(x)] by adaptive quadrature on the real line."""
    s = MODEL.data_std
    return quad(lambda x: fun(x) * np.exp(-x**2 / (2 * s**2)) / (np.sqrt(2 * np.pi) * s),
                -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13)[0]


def unit(x: float, theta: np.ndarray) -> float:
    return theta[0] * np.exp(-(x - theta[1]) ** 2 / (2 * MODEL.width**2))


def test_overlap_matches_quadrature_and_its_derivative():
    value, dlog = overlap(0.3, 0.6, -0.9, 0.4, MODEL.data_std)
    brute = gauss_mean(lambda x: np.exp(-(x - 0.3) ** 2 / 0.72 - (x + 0.9) ** 2 / 0.32))
    assert value == pytest.approx(brute, rel=1e-11)
    h = 1e-6
    fd = (np.log(overlap(0.3, 0.6, -0.9 + h, 0.4, MODEL.data_std)[0])
          - np.log(overlap(0.3, 0.6, -0.9 - h, 0.4, MODEL.data_std)[0])) / (2 * h)
    assert dlog == pytest.approx(fd, rel=1e-7)


def test_F_K_and_target_moment_match_quadrature():
    for theta in THETA:
        assert MODEL.F(theta) == pytest.approx(
            gauss_mean(lambda x, th=theta: MODEL.target(np.array([x]))[0] * unit(x, th)),
            rel=1e-11)
    K = MODEL.K(THETA, THETA)
    assert np.allclose(K, K.T, rtol=0, atol=1e-15)
    brute = gauss_mean(lambda x: unit(x, THETA[0]) * unit(x, THETA[1]))
    assert K[0, 1] == pytest.approx(brute, rel=1e-11)
    moment = gauss_mean(lambda x: MODEL.target(np.array([x]))[0] ** 2)
    assert MODEL.target_second_moment() == pytest.approx(moment, rel=1e-11)


def test_expression_is_the_target():
    x = np.linspace(-3, 3, 7)[:, None]
    expr = targets.ExpressionTarget(MODEL.expression(), 1)
    assert np.allclose(expr(x), MODEL.target(x), rtol=1e-15, atol=0)


def problem(M: int = 300) -> Problem:
    return Problem(units.RBFUnit(1, MODEL.width),
                   quadrature.gauss_hermite(0.0, MODEL.data_std, M),
                   targets.ExpressionTarget(MODEL.expression(), 1), Box((-5, -5), (5, 5)),
                   density.Gaussian([0.0, 0.0], [0.4, 0.8]), t_final=1.0)


def test_energy_mc_and_gradient_match_the_solver_products():
    """With enough Gauss-Hermite nodes the solver's M x Q products reproduce the closed forms
    (M = 100 is 6e-6 off, M = 200 7e-10, M = 300 4e-15: the narrow bumps need many)."""
    p, W = problem(), np.array([0.5, 0.3, 0.2])
    f = functionals.network_output(p, THETA, W)
    assert MODEL.energy(THETA, W) == pytest.approx(functionals.energy(p, f, THETA, W),
                                                   rel=1e-12)
    f2 = functionals.UnitMatrix(p, THETA).forward_squared(W)
    assert MODEL.mc(THETA, W) == pytest.approx(functionals.mc_variance(p, f, f2), rel=1e-12)
    grad = functionals.potential_gradient(p, THETA, f)
    assert np.allclose(MODEL.potential_gradient(THETA, THETA, W), grad, rtol=0, atol=1e-13)


def test_potential_gradient_is_the_gradient_of_the_first_variation():
    nodes, W = THETA, np.array([0.5, 0.3, 0.2])

    def psi(theta):
        return -MODEL.F(theta) + MODEL.K(theta, nodes) @ W

    h = 1e-6
    probe = np.array([[0.7, 0.2], [-0.4, -1.5]])
    fd = np.column_stack([(psi(probe + h * e) - psi(probe - h * e)) / (2 * h)
                          for e in np.eye(2)])
    assert np.allclose(MODEL.potential_gradient(probe, nodes, W), fd, rtol=1e-7, atol=1e-9)


def test_lagrangian_energy_decreases_and_matches_the_solver_reference():
    p = problem()
    times = np.linspace(0.0, 1.0, 5)
    ref = lagrangian_flow(p, times, nodes=6, dt=0.02)
    theta0, W, _, _ = initial_nodes(p, 6)
    energy, mc, theta = lagrangian_energy(MODEL, theta0, W, times, dt=0.02)
    assert np.all(np.diff(energy) < 0)
    assert np.allclose(energy, ref.energy, rtol=1e-11, atol=0)
    assert np.allclose(mc, ref.mc, rtol=1e-10, atol=0)
    assert np.allclose(theta, ref.theta, rtol=0, atol=1e-10)


def test_bad_input_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="width"):
        GaussianMixtureRBF(0.0, 1.0, (1.0,), (0.0,), (1.0,))
    with pytest.raises(ValueError, match="stds"):
        GaussianMixtureRBF(0.5, 1.0, (1.0,), (0.0,), (-1.0,))
    with pytest.raises(ValueError, match="same number"):
        GaussianMixtureRBF(0.5, 1.0, (1.0, 2.0), (0.0,), (1.0,))
    with pytest.raises(ValueError, match="shape"):
        MODEL.F(np.zeros((2, 3)))


def test_energy_groups_shared_z_values_exactly():
    theta = np.array([[1.0, 0.3], [2.0, 0.3], [-1.0, 1.1], [0.5, 1.1], [0.2, -2.0]])
    W = np.array([0.1, 0.2, 0.3, 0.25, 0.15])
    K = MODEL.K(theta, theta)
    direct = 0.5 * MODEL.target_second_moment() - W @ MODEL.F(theta) + 0.5 * W @ K @ W
    assert MODEL.energy(theta, W) == pytest.approx(direct, rel=1e-14)
    assert MODEL.mc(theta, W) == pytest.approx(W @ np.diag(K) - W @ K @ W, rel=1e-13)
