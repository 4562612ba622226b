"""Tests for solver.model.units: formulas, gradients vs finite differences, VJPs, errors."""

import re

import numpy as np
import pytest

from solver.model.units import (
    ACTIVATIONS,
    CallableUnit,
    CircleBumpUnit,
    CircleRBFUnit,
    FixedOutputNeuron,
    LinearUnit,
    NeuronUnit,
    RBFUnit,
    Unit,
    get_activation,
)

M, Q = 15, 6


def quadratic_unit(name: str = "quadratic", wrong: bool = False) -> CallableUnit:
    """s(x; theta) = theta_0 |x|^2 + theta_1^2 x_0 on R^2 (gradient off by 1% if wrong)."""

    def value(x, theta):
        return np.sum(x**2, axis=1)[:, None] * theta[:, 0] + x[:, :1] * theta[:, 1] ** 2

    def gradient(x, theta):
        g0 = np.broadcast_to(np.sum(x**2, axis=1)[:, None], (len(x), len(theta)))
        g1 = 2.0 * x[:, :1] * theta[:, 1] * (1.01 if wrong else 1.0)
        return np.stack([g0, g1], axis=2)

    return CallableUnit(value, gradient, param_dim=2, data_dim=2, name=name)


def ridge_params(unit) -> tuple[int, float | None, bool]:
    """(d, fixed output weight or None when free, has bias) of a neuron-type unit."""
    if isinstance(unit, NeuronUnit):
        return unit.data_dim, unit.output_weight, True
    return unit.data_dim, 1.0, unit.bias


def ridge_reference(unit, x, theta) -> np.ndarray:
    """c sigma(a . x + b) by explicit loops."""
    d, fixed_c, bias = ridge_params(unit)
    a0 = int(fixed_c is None)
    out = np.empty((len(x), len(theta)))
    for m, xm in enumerate(x):
        for q, t in enumerate(theta):
            c = t[0] if fixed_c is None else fixed_c
            a = t[a0 : a0 + d]
            b = t[-1] if bias else 0.0
            out[m, q] = c * unit.activation.f(np.array(sum(a * xm) + b))
    return out


def make_case(unit, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Data x (<= M, d) and parameters theta (Q, k) for unit; ReLU rows kept off the kink."""
    rng = np.random.default_rng(seed)
    d = unit.data_dim
    if isinstance(unit, CircleRBFUnit):
        x = rng.uniform(-np.pi, np.pi, (M, 1))
        theta = np.column_stack([rng.normal(size=Q), rng.uniform(-np.pi, np.pi, Q)])
        return x, theta
    if isinstance(unit, CircleBumpUnit):
        return rng.uniform(-np.pi, np.pi, (M, 1)), rng.uniform(-np.pi, np.pi, (Q, 1))
    x = rng.normal(size=(M, d))
    theta = rng.normal(size=(Q, unit.param_dim))
    if isinstance(unit, NeuronUnit | FixedOutputNeuron) and unit.activation.name == "relu":
        _, fixed_c, bias = ridge_params(unit)
        a0 = int(fixed_c is None)
        a = theta[:, a0 : a0 + d]
        pre = x @ a.T + (theta[:, -1] if bias else 0.0)
        x = x[np.all(np.abs(pre) > 1e-3, axis=1)]
        assert len(x) >= M // 2
    return x, theta


UNITS = [
    LinearUnit(3),
    RBFUnit(1, 0.7),
    RBFUnit(2, 1.3),
    RBFUnit(3, 0.9),
    CircleRBFUnit(0.6),
    CircleBumpUnit(0.6, -1.7),
    quadratic_unit(),
    *(NeuronUnit(2, a) for a in ACTIVATIONS),
    *(NeuronUnit(3, a, output_weight=-1.5) for a in ACTIVATIONS),
    *(FixedOutputNeuron(2, a) for a in ACTIVATIONS),
    *(FixedOutputNeuron(3, a, bias=True) for a in ACTIVATIONS),
]


def unit_id(unit: Unit) -> str:
    act = getattr(unit, "activation", None)
    return f"{unit.name}{f'-{act.name}' if act else ''}-d{unit.data_dim}-k{unit.param_dim}"


parametrize_units = pytest.mark.parametrize("unit", UNITS, ids=unit_id)


def central_differences(unit: Unit, x: np.ndarray, theta: np.ndarray, h: float = 1e-5):
    """fd[m, q, j] from one perturbation of theta_q[j] at a time."""
    fd = np.empty((len(x), *theta.shape))
    for q in range(theta.shape[0]):
        for j in range(theta.shape[1]):
            plus, minus = theta[q : q + 1].copy(), theta[q : q + 1].copy()
            plus[0, j] += h
            minus[0, j] -= h
            fd[:, q, j] = (unit.values(x, plus) - unit.values(x, minus))[:, 0] / (2 * h)
    return fd


# --- values --------------------------------------------------------------------------------


def test_values_match_explicit_formulas():
    rng = np.random.default_rng(1)
    x, theta = rng.normal(size=(4, 2)), rng.normal(size=(3, 3))
    expected = theta[:, 0] * np.exp(
        -np.sum((x[:, None, :] - theta[None, :, 1:]) ** 2, axis=2) / (2 * 1.3**2)
    )
    np.testing.assert_allclose(RBFUnit(2, 1.3).values(x, theta), expected, rtol=1e-13)

    ang, th = rng.uniform(-4, 4, (4, 1)), rng.normal(size=(3, 2))
    expected = th[:, 0] * np.exp((np.cos(ang - th[:, 1]) - 1) / 0.6**2)
    np.testing.assert_allclose(CircleRBFUnit(0.6).values(ang, th), expected, rtol=1e-13)

    x3, w = rng.normal(size=(4, 3)), rng.normal(size=(3, 3))
    np.testing.assert_allclose(LinearUnit(3).values(x3, w), x3 @ w.T, rtol=1e-14)


@pytest.mark.parametrize(
    "unit",
    [u for u in UNITS if isinstance(u, NeuronUnit | FixedOutputNeuron)],
    ids=unit_id,
)
def test_neuron_values_match_loops(unit):
    x, theta = make_case(unit)
    np.testing.assert_allclose(unit.values(x, theta), ridge_reference(unit, x, theta),
                               rtol=1e-13, atol=1e-15)


def test_rbf_far_from_center_is_zero_not_nan():
    s = RBFUnit(2, 0.1).values(np.array([[1e3, 0.0]]), np.array([[1.0, -1e3, 0.0]]))
    assert s.shape == (1, 1) and s[0, 0] == 0.0


def test_activations_are_stable_and_correct():
    z = np.array([-800.0, -3.0, 0.5, 800.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for act in ACTIVATIONS.values():
            assert np.all(np.isfinite(act.f(z))) and np.all(np.isfinite(act.df(z)))
    np.testing.assert_allclose(ACTIVATIONS["softplus"].f(z), [0.0, np.log1p(np.exp(-3.0)),
                                                                np.log1p(np.exp(0.5)), 800.0])
    np.testing.assert_allclose(ACTIVATIONS["sigmoid"].f(z[1:3]), 1 / (1 + np.exp(-z[1:3])))
    np.testing.assert_array_equal(ACTIVATIONS["relu"].df(z), [0.0, 0.0, 1.0, 1.0])


def test_get_activation_lists_allowed_names():
    assert get_activation("tanh") is ACTIVATIONS["tanh"]
    with pytest.raises(ValueError, match=r"relu.*sigmoid.*softplus"):
        get_activation("swish")


# --- gradients -----------------------------------------------------------------------------


@parametrize_units
def test_gradients_match_finite_differences(unit):
    x, theta = make_case(unit)
    g = unit.gradients(x, theta)
    assert g.shape == (len(x), *theta.shape)
    fd = central_differences(unit, x, theta)
    err = np.abs(fd - g) / np.maximum(np.abs(g), 1e-3 * np.abs(g).max())
    assert err.max() <= 1e-6


@parametrize_units
def test_check_gradient_passes_on_builtin_units(unit):
    x, theta = make_case(unit)
    assert 0.0 <= unit.check_gradient(x, theta) <= 1e-6


def test_check_gradient_raises_on_wrong_gradient():
    x, theta = make_case(quadratic_unit())
    with pytest.raises(ValueError, match=r"'broken'.*component 1"):
        quadratic_unit("broken", wrong=True).check_gradient(x, theta)


# --- vector-Jacobian products --------------------------------------------------------------


@parametrize_units
def test_theta_vjp_matches_einsum_over_gradients(unit):
    x, theta = make_case(unit)
    v = np.random.default_rng(2).normal(size=len(x))
    expected = np.einsum("m,mqk->qk", v, unit.gradients(x, theta))
    got = unit.theta_vjp(x, theta, v)
    assert got.shape == theta.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("unit", [u for u in UNITS if not isinstance(u, CallableUnit)],
                         ids=unit_id)
def test_builtin_units_override_theta_vjp(unit):
    assert type(unit).theta_vjp is not Unit.theta_vjp


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "x", "theta", "match"),
    [
        (RBFUnit(2, 1.0), np.zeros((4, 3)), np.zeros((2, 3)), r"'rbf'.*x.*\(M, 2\)"),
        (RBFUnit(2, 1.0), np.zeros(4), np.zeros((2, 3)), r"'rbf'.*x.*\(M, 2\)"),
        (RBFUnit(2, 1.0), np.zeros((4, 2)), np.zeros((2, 2)), r"'rbf'.*theta.*\(Q, 3\)"),
        (CircleRBFUnit(1.0), np.zeros(4), np.zeros((2, 2)), r"'circle_rbf'.*\(M, 1\)"),
        (NeuronUnit(2, "tanh"), np.zeros((4, 2)), np.zeros(4), r"'neuron'.*\(Q, 4\)"),
        (FixedOutputNeuron(2, "relu"), np.zeros((4, 2)), np.zeros((1, 3)),
         r"'fixed_output_neuron'.*\(Q, 2\)"),
        (LinearUnit(2), np.zeros((4, 1)), np.zeros((1, 2)), r"'linear'.*\(M, 2\)"),
    ],
)
def test_shape_errors_name_the_unit(unit, x, theta, match):
    with pytest.raises(ValueError, match=match):
        unit.values(x, theta)
    with pytest.raises(ValueError, match=match):
        unit.gradients(x, theta)
    with pytest.raises(ValueError, match=match):
        unit.theta_vjp(x, theta, np.zeros(len(x)))


def test_theta_vjp_rejects_wrong_v():
    with pytest.raises(ValueError, match=r"'rbf'.*v.*\(4,\)"):
        RBFUnit(2, 1.0).theta_vjp(np.zeros((4, 2)), np.zeros((2, 3)), np.zeros(3))


def test_callable_unit_checks_results():
    x, theta = np.zeros((4, 2)), np.zeros((3, 2))
    bad_shape = CallableUnit(lambda x, t: np.zeros((len(x), len(t) + 1)),
                             lambda x, t: np.zeros((len(x), len(t), 2)), 2, name="odd")
    with pytest.raises(ValueError, match=r"'odd'.*value.*\(4, 4\).*\(4, 3\)"):
        bad_shape.values(x, theta)
    nan_grad = CallableUnit(lambda x, t: np.zeros((len(x), len(t))),
                            lambda x, t: np.full((len(x), len(t), 2), np.nan), 2, name="nan")
    with pytest.raises(ValueError, match=r"'nan'.*gradient.*non-finite"):
        nan_grad.gradients(x, theta)
    assert nan_grad.values(np.zeros((4, 7)), theta).shape == (4, 3)  # data_dim None: any d


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: RBFUnit(0, 1.0), "d must be a positive integer"),
        (lambda: RBFUnit(2, -1.0), "width"),
        (lambda: CircleRBFUnit(float("nan")), "width"),
        (lambda: NeuronUnit(2, "gelu"), "allowed: tanh"),
        (lambda: NeuronUnit(2, "tanh", output_weight=float("inf")), "output_weight"),
        (lambda: LinearUnit(1.5), "positive integer"),
    ],
)
def test_constructor_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_fixed_output_weight_layout():
    free, fixed = NeuronUnit(2, "tanh"), NeuronUnit(2, "tanh", output_weight=2)
    assert (free.param_dim, fixed.param_dim) == (4, 3)
    assert (FixedOutputNeuron(2, "tanh").param_dim,
            FixedOutputNeuron(2, "tanh", bias=True).param_dim) == (2, 3)
    x, theta = make_case(fixed)
    np.testing.assert_allclose(fixed.values(x, theta),
                               free.values(x, np.column_stack([np.full(Q, 2.0), theta])))


def test_circle_bump_is_circle_rbf_with_fixed_output_weight():
    bump, full = CircleBumpUnit(0.5, 2.0), CircleRBFUnit(0.5)
    x, z = make_case(bump)
    theta = np.column_stack([np.full(len(z), 2.0), z])
    np.testing.assert_allclose(bump.values(x, z), full.values(x, theta), rtol=1e-14)
    np.testing.assert_allclose(bump.gradients(x, z)[:, :, 0], full.gradients(x, theta)[:, :, 1],
                               rtol=1e-14)
    with pytest.raises(ValueError, match="amplitude"):
        CircleBumpUnit(0.5, 0.0)


@pytest.mark.parametrize("expression, message", [
    ("sin(x) + 9**9**9", "overflows a float"),           # hung in integer arithmetic
    ("'a'*10**10", "the constant 'a' is not a real number"),  # MemoryError
    ("x + 10**400", "overflows a float"),
    ("log(x - 10)", "is nan at x = "),
    ("1/0 + x", "cannot be evaluated"),
    ("True + x", "the constant True is not a real number"),
    ("x[1.5]", "the index 1.5 of x[...] must be an integer"),
])
def test_hostile_expressions_fail_fast_with_a_named_error(expression, message):
    from solver.model.targets import ExpressionTarget

    with pytest.raises(ValueError, match=re.escape(message)):
        ExpressionTarget(expression, 1)(np.linspace(-1.0, 1.0, 5)[:, None])
