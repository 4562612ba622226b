"""The blocked M x Q products against direct loops over the points."""

import numpy as np
import pytest

from solver.model import functionals
from tests.conftest import circle_problem


def _direct(problem, theta, weights):
    x, unit = problem.data.points, problem.unit
    f = np.zeros(problem.data.size)
    f2 = np.zeros(problem.data.size)
    for q in range(len(theta)):
        s = unit.values(x, theta[q : q + 1])[:, 0]
        f += weights[q] * s
        f2 += weights[q] * s**2
    r = problem.data.weights * (f - problem.y)
    psi = np.array([r @ unit.values(x, theta[q : q + 1])[:, 0] for q in range(len(theta))])
    grad = np.array([np.einsum("m,mj->j", r, unit.gradients(x, theta[q : q + 1])[:, 0])
                     for q in range(len(theta))])
    return f, f2, psi + problem.lam * 0.5 * np.sum(theta**2, 1), grad + problem.lam * theta


@pytest.mark.parametrize("max_bytes", [1, 8 * 32 * 7, 8 * 32 * 64, 2**30])
def test_blocked_products_match_direct_loop(max_bytes):
    problem = circle_problem(lam=0.3)
    rng = np.random.default_rng(1)
    theta = problem.sample_initial(rng, 101)
    weights = rng.uniform(0, 1, 101)
    f_ref, f2_ref, psi_ref, grad_ref = _direct(problem, theta, weights)
    S = functionals.UnitMatrix(problem, theta, max_bytes)
    assert (S._whole is None) == (max_bytes < 8 * 32 * 101)
    f = S.forward(weights)
    np.testing.assert_allclose(f, f_ref, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(S.forward_squared(weights), f2_ref, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(functionals.potential(problem, theta, f, max_bytes), psi_ref,
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(functionals.potential_gradient(problem, theta, f, max_bytes),
                               grad_ref, rtol=1e-12, atol=1e-14)


def test_column_blocks_cover_and_respect_budget():
    blocks = list(functionals.column_blocks(10, 95, 3, 8 * 10 * 3 * 7))
    assert [b.stop - b.start for b in blocks] == [7] * 13 + [4]
    assert blocks[0].start == 0 and blocks[-1].stop == 95


def test_energy_and_mc_of_a_single_atom():
    """One atom: MC = 0 (no resampling variance) and E = 1/2 |s - y|^2 + lam |theta|^2/2."""
    problem = circle_problem(lam=0.2)
    theta, w = np.array([[1.0, 0.5]]), np.array([1.0])
    S = functionals.UnitMatrix(problem, theta)
    f = S.forward(w)
    assert abs(functionals.mc_variance(problem, f, S.forward_squared(w))) < 1e-15
    expected = 0.5 * problem.data.weights @ (f - problem.y) ** 2 + 0.1 * 1.25
    assert functionals.energy(problem, f, theta, w) == pytest.approx(expected, rel=1e-14)
