"""The piecewise-linear activation, the radial ridge unit, the labelled-data unit, the
isotropic-Gaussians data rules and the cubic-form target."""

import numpy as np
import pytest

from solver.model import quadrature, targets, units

MMN = units.get_activation("mmn_piecewise_linear")


def test_piecewise_linear_values_and_slopes():
    z = np.array([-3.0, 0.5, 1.0, 1.5, 9.0])
    np.testing.assert_allclose(MMN.f(z), [-2.5, -2.5, 2.5, 7.5, 7.5])
    np.testing.assert_array_equal(MMN.df(z), [0.0, 10.0, 10.0, 0.0, 0.0])
    three = units.piecewise_linear([0.0, 1.0, 3.0], [1.0, -1.0, 3.0])
    np.testing.assert_allclose(three.f(np.array([[0.5, 2.0]])), [[0.0, 1.0]])
    np.testing.assert_allclose(three.df(np.array([0.5, 2.0])), [-2.0, 2.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        units.piecewise_linear([1.0, 1.0], [0.0, 1.0])


@pytest.mark.parametrize("d", [2, 3, 5, 40])
def test_radial_unit_is_the_direction_average(d):
    """s(xi; r) = E_u[sigma(r xi u)] against a 400-node Gauss-Jacobi rule in u (the unit's
    closed form is exact; the rule converges slowly only at the kinks, hence 2e-3)."""
    from scipy.special import roots_jacobi

    unit = units.RadialRidgeUnit(d)
    xi = np.array([[0.3], [1.0], [3.0], [11.0]])
    r = np.array([[0.0], [0.2], [0.8], [-0.7]])
    u, w = roots_jacobi(400, 0.5 * (d - 3), 0.5 * (d - 3))
    w = w / w.sum()
    expected = np.array([[w @ MMN.f(x * q * u) for q in r[:, 0]] for x in xi[:, 0]])
    np.testing.assert_allclose(unit.values(xi, r), expected, atol=2e-3)
    assert np.all(unit.values(xi, r[:1]) == -2.5)  # r = 0: sigma(0)


@pytest.mark.parametrize("d", [3, 40])
def test_radial_unit_gradients_against_finite_differences(d):
    unit = units.RadialRidgeUnit(d)
    rng = np.random.default_rng(d)
    xi = np.column_stack([rng.uniform(0.2, 12.0, 20), rng.choice([-1.0, 1.0], 20)])
    r = rng.uniform(-2.0, 2.0, (7, 1))
    assert unit.check_gradient(xi, r, rtol=1e-6) < 1e-6
    v, weights = rng.normal(size=20), rng.random(7)
    f, vjp = unit.output_and_vjp(xi, r, weights)
    np.testing.assert_allclose(f, unit.values(xi, r) @ weights, rtol=1e-13)
    np.testing.assert_allclose(vjp(v), np.einsum("m,mqk->qk", v, unit.gradients(xi, r)),
                               rtol=1e-12)


def test_radial_unit_velocity_vanishes_at_the_origin():
    """ds/dr = 0 for r xi < t1 (sigma flat on [-r xi, r xi]), in particular at r = 0."""
    unit = units.RadialRidgeUnit(40)
    xi = np.array([[1.0], [5.0], [20.0]])
    assert np.all(unit.gradients(xi, np.array([[0.0], [0.02]])) == 0.0)
    assert np.all(unit.gradients(xi, np.array([[0.5]]))[1:] > 0.0)


def test_reduced_loss_equals_the_full_loss_in_d_dimensions():
    """For a rotation-invariant rho (|w| from a 3-atom law, uniform directions), the reduced
    loss 1/2 E_(xi,y)(f_red - y)^2 equals 1/2 E_(x,y)(f_rho(x) - y)^2 in d = 8, estimated by
    Monte Carlo over x with f_rho(x) from nw direction samples, debiased by the sample
    variance / nw; agreement within 4 standard errors of the x average."""
    d, delta = 8, 0.6
    radii, probs = np.array([0.3, 0.9, 1.6]), np.array([0.2, 0.5, 0.3])
    rule = quadrature.isotropic_gaussians_radial(d, delta, 30)
    f_red = units.RadialRidgeUnit(d).values(rule.points, radii[:, None]) @ probs
    reduced = 0.5 * rule.integrate((f_red - rule.points[:, 1]) ** 2)

    rng = np.random.default_rng(0)
    nw = 3000
    w = rng.standard_normal((nw, d))
    w *= (rng.choice(radii, nw, p=probs) / np.linalg.norm(w, axis=1))[:, None]
    data = quadrature.monte_carlo("isotropic_gaussians", 6000, 1, dim=d, delta=delta)
    s = MMN.f(data.points[:, :d] @ w.T)
    f, var = s.mean(axis=1), s.var(axis=1, ddof=1)
    terms = 0.5 * ((f - data.points[:, d]) ** 2 - var / nw)
    error = terms.std() / np.sqrt(len(terms))
    assert abs(terms.mean() - reduced) < 4 * error, (terms.mean(), reduced, error)
    assert error < 0.02 * reduced


def test_radial_rule_moments_and_sampler():
    d, delta = 40, 0.8
    rule = quadrature.isotropic_gaussians_radial(d, delta, 20, grid=50)
    assert rule.size == 2 * (20 + 50) and np.sum(rule.weights == 0) == 100
    xi, y = rule.points[:, 0], rule.points[:, 1]
    # E[xi^2 | y] = (1 + y delta)^2 d, E[xi^4 | y] = (1 + y delta)^4 d (d + 2): exact
    for y0 in (-1.0, 1.0):
        mask = y == y0
        w = rule.weights[mask] / rule.weights[mask].sum()
        s = 1 + y0 * delta
        np.testing.assert_allclose(w @ xi[mask] ** 2, s**2 * d, rtol=1e-12)
        np.testing.assert_allclose(w @ xi[mask] ** 4, s**4 * d * (d + 2), rtol=1e-12)
    sample = rule.sample(np.random.default_rng(1), 20000)
    for y0 in (-1.0, 1.0):
        mask = sample[:, 1] == y0
        assert abs(mask.mean() - 0.5) < 0.02
        np.testing.assert_allclose(np.mean(sample[mask, 0] ** 2), (1 + y0 * delta) ** 2 * d,
                                   rtol=0.03)
    with pytest.raises(ValueError, match="delta"):
        quadrature.isotropic_gaussians_radial(d, 1.5, 10)


def test_labelled_data_unit_ignores_the_label_column():
    base = units.FixedOutputNeuron(3, "mmn_piecewise_linear")
    unit = units.LabelledDataUnit(base)
    rng = np.random.default_rng(2)
    x, theta = rng.normal(size=(10, 3)), rng.normal(size=(4, 3))
    xy = np.column_stack([x, rng.choice([-1.0, 1.0], 10)])
    np.testing.assert_array_equal(unit.values(xy, theta), base.values(x, theta))
    np.testing.assert_array_equal(unit.gradients(xy, theta), base.gradients(x, theta))
    weights, v = rng.random(4), rng.normal(size=10)
    f, vjp = unit.output_and_vjp(xy, theta, weights)
    np.testing.assert_allclose(f, base.values(x, theta) @ weights, rtol=1e-14)
    np.testing.assert_allclose(vjp(v), base.theta_vjp(x, theta, v), rtol=1e-12)
    with pytest.raises(ValueError, match=r"\(M, 4\)"):
        unit.values(x, theta)


def test_isotropic_gaussians_law():
    data = quadrature.monte_carlo("isotropic_gaussians", 20000, 3, dim=5, delta=0.5)
    x, y = data.points[:, :5], data.points[:, 5]
    assert set(np.unique(y)) == {-1.0, 1.0}
    for y0 in (-1.0, 1.0):
        np.testing.assert_allclose(x[y == y0].var(), (1 + 0.5 * y0) ** 2, rtol=0.03)
    with pytest.raises(ValueError, match="delta"):
        quadrature.monte_carlo("isotropic_gaussians", 10, 0, dim=5, delta=1.0)


def test_cubic_form_target():
    rng = np.random.default_rng(4)
    a, x = rng.normal(size=(3, 3, 3)), rng.normal(size=(6, 3))
    expected = [sum(a[i, j, k] * p[i] * p[j] * p[k] for i in range(3) for j in range(3)
                    for k in range(3)) for p in x]
    np.testing.assert_allclose(targets.CubicFormTarget(a, 2.0)(x), 2.0 * np.array(expected),
                               rtol=1e-12)
    with pytest.raises(ValueError, match=r"\(d, d, d\)"):
        targets.CubicFormTarget(np.zeros((2, 3, 3)))
