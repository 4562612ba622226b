"""Units s(x; theta) of a two-layer network f(x) = int s(x; theta) drho(theta).

Every unit maps data x (M, d) and parameters theta (Q, k) to the unit matrix
S[m, q] = s(x_m; theta_q), its parameter gradients G[m, q, j] = d s(x_m; theta_q) / d theta_q[j]
and the vector-Jacobian product sum_m v_m grad_theta s(x_m; theta_q), computed with matrix
products on (M, Q) arrays. Everything is float64.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from numbers import Real

import numpy as np
from scipy.special import expit

Array = np.ndarray


# --- activations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Activation:
    """A scalar activation sigma, applied elementwise, with its derivative sigma'."""

    name: str
    f: Callable[[Array], Array]
    df: Callable[[Array], Array]


def _tanh_prime(z: Array) -> Array:
    return 1.0 - np.tanh(z) ** 2


def _relu(z: Array) -> Array:
    return np.maximum(z, 0.0)


def _relu_prime(z: Array) -> Array:
    return (z > 0).astype(np.float64)


def _sigmoid_prime(z: Array) -> Array:
    return expit(z) * expit(-z)


def _softplus(z: Array) -> Array:
    return np.logaddexp(0.0, z)


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("tanh", np.tanh, _tanh_prime),
        Activation("relu", _relu, _relu_prime),
        Activation("sigmoid", expit, _sigmoid_prime),
        Activation("softplus", _softplus, expit),
    )
}


def get_activation(name: str) -> Activation:
    """The registered activation called name."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}"
        ) from None


# --- argument checks -----------------------------------------------------------------------


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _positive_float(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 < value < np.inf:
        raise ValueError(f"{what} must be a finite number > 0, got {value!r}")
    return float(value)


def _width(value: object, what: str) -> float:
    """A width w > 0 whose 1/w^2 (in every exponent) is a finite float: w >= 1e-150."""
    w = _positive_float(value, what)
    if not w >= 1e-150:
        raise ValueError(f"{what} must be >= 1e-150 (1/width^2 must be a finite float), "
                         f"got {value!r}")
    return w


def _indexed(symbol: str, count: int) -> tuple[str, ...]:
    """("a",) for one component, ("a_1", ..., "a_count") for more."""
    return (symbol,) if count == 1 else tuple(f"{symbol}_{j + 1}" for j in range(count))


# --- base class ----------------------------------------------------------------------------


class Unit(ABC):
    """A unit s(x; theta) with parameters theta in R^k and data x in R^d."""

    name: str
    param_dim: int
    data_dim: int | None

    def __init__(self, name: str, param_dim: int, data_dim: int | None) -> None:
        self.name = name
        self.param_dim = _positive_int(param_dim, f"unit {name!r}: param_dim")
        self.data_dim = None if data_dim is None else _positive_int(
            data_dim, f"unit {name!r}: data_dim"
        )

    @property
    def param_names(self) -> tuple[str, ...]:
        """The names of theta's components, in order (axis labels, docs)."""
        return tuple(f"theta_{j + 1}" for j in range(self.param_dim))

    @abstractmethod
    def values(self, x: Array, theta: Array) -> Array:
        """S[m, q] = s(x_m; theta_q) for x (M, d), theta (Q, k) -> (M, Q)."""

    @abstractmethod
    def gradients(self, x: Array, theta: Array) -> Array:
        """G[m, q, j] = d s(x_m; theta_q) / d theta_q[j] -> (M, Q, k)."""

    #: True when s is an average of the units of the network over hidden parameters (a
    #: symmetry-reduced unit: ``reduction.ReducedRidgeUnit``), so that ``values_squared``,
    #: the mean of their squares, is not values()^2.
    averaged: bool = False

    def values_squared(self, x: Array, theta: Array) -> Array:
        """The second moment of the network's units at (x_m, theta_q), (M, Q): the integrand
        of MC = E_x[int s^2 rho - f^2] (functionals.mc_variance). values()^2, except for
        ``averaged`` units, which stand for a family of units and return the mean of their
        squares (ReducedRidgeUnit: c^2 E_t[sigma^2], not (c E_t sigma)^2)."""
        return self.values(x, theta) ** 2

    def theta_vjp(self, x: Array, theta: Array, v: Array) -> Array:
        """sum_m v_m grad_theta s(x_m; theta_q) for v (M,) -> (Q, k)."""
        x, theta = self._check(x, theta)
        return np.einsum("m,mqk->qk", self._check_v(x, v), self.gradients(x, theta))

    #: How many (M, Q) float64 arrays the vjp returned by ``output_and_vjp`` keeps alive.
    fused_entries: int = 0

    def output_and_vjp(self, x: Array, theta: Array,
                       weights: Array) -> tuple[Array, Callable[[Array], Array]]:
        """(f, vjp): f = sum_q W_q s(x_m; theta_q) (M,) and vjp(v) = theta_vjp(x, theta, v).

        The fused evaluation for a moving point set: built-in units evaluate their
        exp/trig/activation matrices once, use them for f, and keep them (``fused_entries``
        (M, Q) arrays) for vjp, which is then only matrix products. This default evaluates
        values() now and theta_vjp() when vjp is called.
        """
        x, theta = self._check(x, theta)
        weights = self._check_weights(theta, weights)
        return self.values(x, theta) @ weights, lambda v: self.theta_vjp(x, theta, v)

    def check_gradient(self, x: Array, theta: Array, rtol: float = 1e-6) -> float:
        """Max relative error of gradients() against central finite differences.

        Component j uses the step h_q = eps^(1/3) max(1, |theta_qj|) and the error
        |fd - G| / max(|G|, max|S| / max(1, max_q |theta_qj|)): relative where the gradient is
        large, measured against the natural derivative scale (values over parameters) where it
        is small. Raises ValueError naming the unit and the worst component if above rtol.
        """
        x, theta = self._check(x, theta)
        grads = self.gradients(x, theta)
        value_scale = np.abs(self.values(x, theta)).max(initial=0.0)
        step = np.cbrt(np.finfo(np.float64).eps)
        errors = np.zeros(self.param_dim)
        for j in range(self.param_dim):
            plus, minus = theta.copy(), theta.copy()
            h = step * np.maximum(1.0, np.abs(theta[:, j]))
            plus[:, j] += h
            minus[:, j] -= h
            fd = (self.values(x, plus) - self.values(x, minus)) / (plus[:, j] - minus[:, j])
            g = grads[:, :, j]
            scale = value_scale / max(1.0, np.abs(theta[:, j]).max(initial=0.0))
            denom = np.maximum(np.abs(g), max(scale, np.finfo(np.float64).tiny))
            errors[j] = (np.abs(fd - g) / denom).max(initial=0.0)
        j = int(np.argmax(errors))
        if not errors[j] <= rtol:
            raise ValueError(
                f"unit {self.name!r}: gradient of theta component {j} (of {self.param_dim}) "
                f"disagrees with central finite differences: relative error {errors[j]:.3g} "
                f"> rtol {rtol:.3g}"
            )
        return float(errors[j])

    def _check(self, x: Array, theta: Array) -> tuple[Array, Array]:
        """x as float64 (M, d) and theta as float64 (Q, k), or a ValueError naming the unit."""
        x = np.asarray(x, dtype=np.float64)
        theta = np.asarray(theta, dtype=np.float64)
        d = "d" if self.data_dim is None else str(self.data_dim)
        if x.ndim != 2 or (self.data_dim is not None and x.shape[1] != self.data_dim):
            raise ValueError(f"unit {self.name!r}: x must have shape (M, {d}), got {x.shape}")
        if theta.ndim != 2 or theta.shape[1] != self.param_dim:
            raise ValueError(
                f"unit {self.name!r}: theta must have shape (Q, {self.param_dim}), "
                f"got {theta.shape}"
            )
        return x, theta

    def _check_weights(self, theta: Array, weights: Array) -> Array:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (theta.shape[0],):
            raise ValueError(
                f"unit {self.name!r}: weights must have shape ({theta.shape[0]},), "
                f"got {weights.shape}"
            )
        return weights

    def _check_v(self, x: Array, v: Array) -> Array:
        v = np.asarray(v, dtype=np.float64)
        if v.shape != (x.shape[0],):
            raise ValueError(
                f"unit {self.name!r}: v must have shape ({x.shape[0]},), got {v.shape}"
            )
        return v


# --- concrete units ------------------------------------------------------------------------


class LinearUnit(Unit):
    """s(x; theta) = theta . x, theta in R^d."""

    def __init__(self, d: int) -> None:
        super().__init__("linear", d, d)

    @property
    def param_names(self) -> tuple[str, ...]:
        return _indexed("theta", self.param_dim)

    def values(self, x: Array, theta: Array) -> Array:
        x, theta = self._check(x, theta)
        return x @ theta.T

    def gradients(self, x: Array, theta: Array) -> Array:
        x, theta = self._check(x, theta)
        return np.broadcast_to(x[:, None, :], (x.shape[0], *theta.shape)).copy()

    def theta_vjp(self, x: Array, theta: Array, v: Array) -> Array:
        x, theta = self._check(x, theta)
        return np.tile(self._check_v(x, v) @ x, (theta.shape[0], 1))

    def output_and_vjp(self, x: Array, theta: Array,
                       weights: Array) -> tuple[Array, Callable[[Array], Array]]:
        """f = x (theta^T W): O((M + Q) d), no (M, Q) matrix at all."""
        x, theta = self._check(x, theta)
        weights = self._check_weights(theta, weights)

        def vjp(v: Array) -> Array:
            return np.tile(self._check_v(x, v) @ x, (theta.shape[0], 1))

        return x @ (weights @ theta), vjp


class RBFUnit(Unit):
    """s(x; c, z) = c exp(-|x - z|^2 / (2 width^2)), theta = (c, z) in R^(1+d)."""

    def __init__(self, d: int, width: float) -> None:
        super().__init__("rbf", _positive_int(d, "unit 'rbf': d") + 1, d)
        self.width = _width(width, "unit 'rbf': width")

    @property
    def param_names(self) -> tuple[str, ...]:
        return ("c", *_indexed("z", self.param_dim - 1))

    def _kernel(self, x: Array, z: Array) -> Array:
        """E[m, q] = exp(-|x_m - z_q|^2 / (2 width^2)), |x - z|^2 = |x|^2 + |z|^2 - 2 x.z."""
        r2 = np.sum(x**2, axis=1)[:, None] + np.sum(z**2, axis=1)[None, :] - 2.0 * (x @ z.T)
        return np.exp(np.maximum(r2, 0.0) / (-2.0 * self.width**2))

    def values(self, x: Array, theta: Array) -> Array:
        x, theta = self._check(x, theta)
        return self._kernel(x, theta[:, 1:]) * theta[:, 0]

    def gradients(self, x: Array, theta: Array) -> Array:
        """ds/dc = E, ds/dz = c E (x - z) / width^2."""
        x, theta = self._check(x, theta)
        c, z = theta[:, 0], theta[:, 1:]
        e = self._kernel(x, z)
        dz = (e * (c / self.width**2))[:, :, None] * (x[:, None, :] - z[None, :, :])
        return np.concatenate([e[:, :, None], dz], axis=2)

    def theta_vjp(self, x: Array, theta: Array, v: Array) -> Array:
        """(v^T E, c / width^2 ((v E)^T x - z (v^T E)))."""
        x, theta = self._check(x, theta)
        v = self._check_v(x, v)
        c, z = theta[:, 0], theta[:, 1:]
        ve = v[:, None] * self._kernel(x, z)
        total = ve.sum(axis=0)
        dz = (c / self.width**2)[:, None] * (ve.T @ x - z * total[:, None])
        return np.concatenate([total[:, None], dz], axis=1)

    fused_entries = 1

    def output_and_vjp(self, x: Array, theta: Array,
                       weights: Array) -> tuple[Array, Callable[[Array], Array]]:
        """E from one product [x/w^2, -|x|^2/(2w^2), 1] [z, 1, -|z|^2/(2w^2)]^T, one exp;
        f = E (c W); vjp = c/w^2 ([v, v x]^T E) as one (1 + d, M) x (M, Q) product."""
        x, theta = self._check(x, theta)
        weights = self._check_weights(theta, weights)
        c, z = theta[:, 0], theta[:, 1:]
        h = 0.5 / self.width**2
        left = np.column_stack([2.0 * h * x, -h * np.sum(x**2, axis=1), np.ones(len(x))])
        right = np.column_stack([z, np.ones(len(z)), -h * np.sum(z**2, axis=1)])
        e = left @ right.T
        np.minimum(e, 0.0, out=e)
        np.exp(e, out=e)

        def vjp(v: Array) -> Array:
            v = self._check_v(x, v)
            moments = np.vstack([v, (v[:, None] * x).T]) @ e  # (1 + d, Q)
            dz = (moments[1:] - z.T * moments[0]).T * (c / self.width**2)[:, None]
            return np.concatenate([moments[0][:, None], dz], axis=1)

        return e @ (c * weights), vjp


class CircleRBFUnit(Unit):
    """s(x; c, z) = c exp((cos(x - z) - 1) / width^2) for angles x, z; theta = (c, z)."""

    def __init__(self, width: float) -> None:
        super().__init__("circle_rbf", 2, 1)
        self.width = _width(width, "unit 'circle_rbf': width")

    @property
    def param_names(self) -> tuple[str, ...]:
        return ("c", "z")

    def _kernel(self, x: Array, z: Array) -> Array:
        """E = exp((cos(x - z) - 1) / width^2), (M, Q); cos(x - z) = cos x cos z + sin x sin z."""
        e = np.cos(x) @ np.cos(z).T
        e += np.sin(x) @ np.sin(z).T
        e -= 1.0
        e *= 1.0 / self.width**2
        return np.exp(e, out=e)

    def values(self, x: Array, theta: Array) -> Array:
        x, theta = self._check(x, theta)
        s = self._kernel(x, theta[:, 1:])
        s *= theta[:, 0]
        return s

    def gradients(self, x: Array, theta: Array) -> Array:
        """ds/dc = E, ds/dz = c E sin(x - z) / width^2."""
        x, theta = self._check(x, theta)
        z = theta[:, 1:]
        e = self._kernel(x, z)
        sin_diff = np.sin(x) @ np.cos(z).T - np.cos(x) @ np.sin(z).T
        return np.stack([e, e * sin_diff * (theta[:, 0] / self.width**2)], axis=2)

    def theta_vjp(self, x: Array, theta: Array, v: Array) -> Array:
        """(v^T E, c / width^2 (cos z (v sin x)^T E - sin z (v cos x)^T E))."""
        x, theta = self._check(x, theta)
        v = self._check_v(x, v)
        c, z = theta[:, 0], theta[:, 1]
        e = self._kernel(x, theta[:, 1:])
        vx = v[:, None] * np.hstack([np.ones_like(x), np.sin(x), np.cos(x)])
        total, vs, vc = vx.T @ e
        dz = (c / self.width**2) * (np.cos(z) * vs - np.sin(z) * vc)
        return np.stack([total, dz], axis=1)

    fused_entries = 1

    def output_and_vjp(self, x: Array, theta: Array,
                       weights: Array) -> tuple[Array, Callable[[Array], Array]]:
        """E from one product [cos x, sin x, -1] / w^2 [cos z, sin z, 1]^T, one exp;
        f = E (c W); vjp from ([v, v sin x, v cos x]^T E) as one (3, M) x (M, Q) product."""
        x, theta = self._check(x, theta)
        weights = self._check_weights(theta, weights)
        c, z = theta[:, 0], theta[:, 1]
        inv = 1.0 / self.width**2
        xs = x[:, 0]
        left = np.column_stack([inv * np.cos(xs), inv * np.sin(xs), np.full(len(xs), -inv)])
        cz, sz = np.cos(z), np.sin(z)
        e = left @ np.vstack([cz, sz, np.ones(len(z))])
        np.exp(e, out=e)

        def vjp(v: Array) -> Array:
            v = self._check_v(x, v)
            total, vs, vc = np.vstack([v, v * np.sin(xs), v * np.cos(xs)]) @ e
            return np.stack([total, (c * inv) * (cz * vs - sz * vc)], axis=1)

        return e @ (c * weights), vjp


class CircleBumpUnit(Unit):
    """s(x; z) = a exp((cos(x - z) - 1) / width^2): the circle RBF with its output weight
    fixed at the amplitude a, so theta = z (an angle) is the only parameter."""

    def __init__(self, width: float, amplitude: float = 1.0) -> None:
        super().__init__("circle_bump", 1, 1)
        self._full = CircleRBFUnit(width)
        self.width = self._full.width
        if not (np.isfinite(amplitude) and amplitude != 0):
            raise ValueError(f"unit 'circle_bump': amplitude must be finite and nonzero, "
                             f"got {amplitude!r}")
        self.amplitude = float(amplitude)

    @property
    def param_names(self) -> tuple[str, ...]:
        return ("z",)

    def _lift(self, x: Array, theta: Array) -> tuple[Array, Array]:
        x, theta = self._check(x, theta)
        return x, np.column_stack([np.full(len(theta), self.amplitude), theta[:, 0]])

    def values(self, x: Array, theta: Array) -> Array:
        return self._full.values(*self._lift(x, theta))

    def gradients(self, x: Array, theta: Array) -> Array:
        return self._full.gradients(*self._lift(x, theta))[:, :, 1:]

    def theta_vjp(self, x: Array, theta: Array, v: Array) -> Array:
        return self._full.theta_vjp(*self._lift(x, theta), v)[:, 1:]

    fused_entries = CircleRBFUnit.fused_entries

    def output_and_vjp(self, x: Array, theta: Array,
                       weights: Array) -> tuple[Array, Callable[[Array], Array]]:
        f, vjp = self._full.output_and_vjp(*self._lift(x, theta), weights)
        return f, lambda v: vjp(v)[:, 1:]


class _RidgeUnit(Unit):
    """s(x; theta) = c sigma(a . x + b), theta = ([c,] a[, b]); c is fixed unless free_c."""

    _weight_symbol = "a"

    def __init__(self, name: str, d: int, activation: str | Activation, c: float | None,
                 bias: bool) -> None:
        d = _positive_int(d, f"unit {name!r}: d")
        self.activation = (
            activation if isinstance(activation, Activation) else get_activation(activation)
        )
        self.output_weight = c
        self.bias = bool(bias)
        self._a0 = int(c is None)
        super().__init__(name, self._a0 + d + self.bias, d)

    @property
    def param_names(self) -> tuple[str, ...]:
        names = _indexed(self._weight_symbol, self.data_dim)
        return (*("c",) * self._a0, *names, *("b",) * self.bias)

    def _parts(self, x: Array, theta: Array) -> tuple[Array, Array]:
        """Output weights c (Q,) and pre-activations a . x + b (M, Q)."""
        c = theta[:, 0] if self.output_weight is None else np.full(len(theta), self.output_weight)
        pre = x @ theta[:, self._a0 : self._a0 + x.shape[1]].T
        if self.bias:
            pre += theta[:, -1]
        return c, pre

    def values(self, x: Array, theta: Array) -> Array:
        x, theta = self._check(x, theta)
        c, pre = self._parts(x, theta)
        return self.activation.f(pre) * c

    def gradients(self, x: Array, theta: Array) -> Array:
        """ds/dc = sigma(u), ds/da = c sigma'(u) x, ds/db = c sigma'(u), u = a . x + b."""
        x, theta = self._check(x, theta)
        c, pre = self._parts(x, theta)
        dpre = self.activation.df(pre) * c
        parts = [dpre[:, :, None] * x[:, None, :]]
        if self.output_weight is None:
            parts.insert(0, self.activation.f(pre)[:, :, None])
        if self.bias:
            parts.append(dpre[:, :, None])
        return np.concatenate(parts, axis=2)

    def theta_vjp(self, x: Array, theta: Array, v: Array) -> Array:
        """(v^T sigma(u), c sigma'(u)^T (v x), c sigma'(u)^T v)."""
        x, theta = self._check(x, theta)
        v = self._check_v(x, v)
        c, pre = self._parts(x, theta)
        out = np.empty(theta.shape)
        if self.output_weight is None:
            out[:, 0] = v @ self.activation.f(pre)
        d_pre = self.activation.df(pre)
        vx = v[:, None] * (np.hstack([x, np.ones_like(v)[:, None]]) if self.bias else x)
        out[:, self._a0 :] = c[:, None] * (d_pre.T @ vx)
        return out

    @property
    def fused_entries(self) -> int:
        return 1 + (self.output_weight is None)

    def _f_and_df(self, pre: Array) -> tuple[Array, Array]:
        """sigma(u), sigma'(u) sharing the transcendental evaluation where an identity allows
        (tanh' = 1 - tanh^2, sigmoid' = s (1 - s), or an activation's own ``f_and_df``)."""
        act = self.activation
        own = getattr(act, "f_and_df", None)
        if callable(own):
            return own(pre)
        if act.f is np.tanh and act.df is _tanh_prime:
            s = np.tanh(pre)
            ds = np.multiply(s, s)
            return s, np.subtract(1.0, ds, out=ds)
        if act.f is expit and act.df is _sigmoid_prime:
            s = expit(pre)
            ds = np.subtract(1.0, s)
            return s, np.multiply(ds, s, out=ds)
        return act.f(pre), act.df(pre)

    def output_and_vjp(self, x: Array, theta: Array,
                       weights: Array) -> tuple[Array, Callable[[Array], Array]]:
        """u from one product [x, 1] [a, b]^T, sigma(u) and sigma'(u) once; f = sigma(u) (c W);
        vjp = (v^T sigma(u), c ([v x, v]^T sigma'(u))^T), sigma kept only when c is free."""
        x, theta = self._check(x, theta)
        weights = self._check_weights(theta, weights)
        c = theta[:, 0] if self.output_weight is None else np.full(len(theta), self.output_weight)
        xa = np.column_stack([x, np.ones(len(x))]) if self.bias else x
        s, ds = self._f_and_df(xa @ theta[:, self._a0 :].T)
        f = s @ (c * weights)
        if self.output_weight is not None:
            s = None

        def vjp(v: Array) -> Array:
            v = self._check_v(x, v)
            out = np.empty(theta.shape)
            if s is not None:
                out[:, 0] = v @ s
            out[:, self._a0 :] = ((v[:, None] * xa).T @ ds).T * c[:, None]
            return out

        return f, vjp


class NeuronUnit(_RidgeUnit):
    """s(x; c, a, b) = c sigma(a . x + b), theta = (c, a_1..a_d, b) in R^(d+2).

    With a number output_weight, c is fixed to it and theta = (a, b) in R^(d+1).
    """

    def __init__(self, d: int, activation: str | Activation,
                 output_weight: float | None = None) -> None:
        c = None
        if output_weight is not None:
            if isinstance(output_weight, bool) or not isinstance(output_weight, Real) or not (
                np.isfinite(output_weight)
            ):
                raise ValueError(
                    f"unit 'neuron': output_weight must be a finite number or None, "
                    f"got {output_weight!r}"
                )
            c = float(output_weight)
        super().__init__("neuron", d, activation, c, bias=True)


class FixedOutputNeuron(_RidgeUnit):
    """s(x; w) = sigma(w . x), theta = w in R^d; with bias, s = sigma(w . x + b), theta = (w, b)."""

    _weight_symbol = "w"

    def __init__(self, d: int, activation: str | Activation, bias: bool = False) -> None:
        super().__init__("fixed_output_neuron", d, activation, 1.0, bias)


class CallableUnit(Unit):
    """s(x; theta) = value(x, theta) given by user callables.

    value(x, theta) -> (M, Q) and gradient(x, theta) -> (M, Q, k); their results are checked
    for shape and finiteness.
    """

    def __init__(self, value: Callable[[Array, Array], Array],
                 gradient: Callable[[Array, Array], Array], param_dim: int,
                 data_dim: int | None = None, name: str = "custom") -> None:
        super().__init__(name, param_dim, data_dim)
        if not (callable(value) and callable(gradient)):
            raise ValueError(f"unit {name!r}: value and gradient must be callable")
        self._value = value
        self._gradient = gradient

    def _result(self, what: str, out: Array, shape: tuple[int, ...]) -> Array:
        out = np.asarray(out, dtype=np.float64)
        if out.shape != shape:
            raise ValueError(
                f"unit {self.name!r}: {what}(x, theta) returned shape {out.shape}, "
                f"expected {shape}"
            )
        if not np.all(np.isfinite(out)):
            raise ValueError(f"unit {self.name!r}: {what}(x, theta) returned non-finite values")
        return out

    def values(self, x: Array, theta: Array) -> Array:
        x, theta = self._check(x, theta)
        return self._result("value", self._value(x, theta), (len(x), len(theta)))

    def gradients(self, x: Array, theta: Array) -> Array:
        x, theta = self._check(x, theta)
        shape = (len(x), len(theta), self.param_dim)
        return self._result("gradient", self._gradient(x, theta), shape)


# --- piecewise-linear activations and the radial (rotation-averaged) ridge unit -------------


def _piecewise_linear(knots: Array, values: Array, z: Array) -> Array:
    """sigma(z): linear between the knots, constant outside (np.interp extrapolates flat)."""
    z = np.asarray(z, dtype=np.float64)
    return np.interp(z.ravel(), knots, values).reshape(z.shape)


def _piecewise_linear_prime(knots: Array, slopes: Array, z: Array) -> Array:
    """sigma'(z): the slope of the piece holding z (right derivative at a knot), 0 outside."""
    z = np.asarray(z, dtype=np.float64)
    return slopes[np.searchsorted(knots, z, side="right")]


def _knots_and_values(knots: object, values: object, what: str) -> tuple[Array, Array]:
    t = np.array(knots, dtype=np.float64, ndmin=1)
    v = np.array(values, dtype=np.float64, ndmin=1)
    if (t.ndim != 1 or t.size < 2 or v.shape != t.shape or not np.all(np.isfinite(t))
            or not np.all(np.isfinite(v)) or np.any(np.diff(t) <= 0)):
        raise ValueError(
            f"{what}: knots must be >= 2 strictly increasing finite numbers and values as many "
            f"finite numbers, got knots={knots!r}, values={values!r}"
        )
    return t, v


def piecewise_linear(knots: object, values: object,
                     name: str = "piecewise_linear") -> Activation:
    """sigma(t) = values[0] for t <= knots[0], values[-1] for t >= knots[-1], linear between.

    With knots (t1, t2) and values (s1, s2) this is the sigma* of Mei, Montanari and
    Nguyen (PNAS 2018). f and df are ``functools.partial`` objects, so the activation pickles.
    """
    t, v = _knots_and_values(knots, values, f"activation {name!r}")
    slopes = np.concatenate([[0.0], np.diff(v) / np.diff(t), [0.0]])
    return Activation(name, partial(_piecewise_linear, t, v),
                      partial(_piecewise_linear_prime, t, slopes))


#: sigma* of Mei, Montanari and Nguyen's isotropic-Gaussians example: t1 = 0.5, t2 = 1.5,
#: s1 = -2.5, s2 = 7.5.
MMN_KNOTS, MMN_VALUES = (0.5, 1.5), (-2.5, 7.5)
ACTIVATIONS["mmn_piecewise_linear"] = piecewise_linear(MMN_KNOTS, MMN_VALUES,
                                                       "mmn_piecewise_linear")


def __getattr__(name: str) -> object:
    """``units.RadialRidgeUnit`` lives in ``solver.model.reduction`` (the case k = 0 of its
    ReducedRidgeUnit; reduction imports this module, so the name is resolved on first use)."""
    if name == "RadialRidgeUnit":
        from solver.model.reduction import RadialRidgeUnit

        return RadialRidgeUnit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class LabelledDataUnit(Unit):
    """s((x, y); theta) = base(x; theta): data rows carry one extra column (a label y, read
    by the target) that the unit ignores. data_dim = base.data_dim + 1."""

    def __init__(self, base: Unit) -> None:
        if not isinstance(base, Unit) or base.data_dim is None:
            raise ValueError(f"unit 'labelled': base must be a Unit with a fixed data_dim, "
                             f"got {base!r}")
        super().__init__(f"{base.name}+label", base.param_dim, base.data_dim + 1)
        self.base = base

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.base.param_names

    def values(self, x: Array, theta: Array) -> Array:
        x, theta = self._check(x, theta)
        return self.base.values(x[:, :-1], theta)

    def gradients(self, x: Array, theta: Array) -> Array:
        x, theta = self._check(x, theta)
        return self.base.gradients(x[:, :-1], theta)

    def theta_vjp(self, x: Array, theta: Array, v: Array) -> Array:
        x, theta = self._check(x, theta)
        return self.base.theta_vjp(x[:, :-1], theta, v)

    @property
    def averaged(self) -> bool:
        return self.base.averaged

    def values_squared(self, x: Array, theta: Array) -> Array:
        x, theta = self._check(x, theta)
        return self.base.values_squared(x[:, :-1], theta)

    @property
    def fused_entries(self) -> int:
        return self.base.fused_entries

    def output_and_vjp(self, x: Array, theta: Array,
                       weights: Array) -> tuple[Array, Callable[[Array], Array]]:
        x, theta = self._check(x, theta)
        return self.base.output_and_vjp(np.ascontiguousarray(x[:, :-1]), theta, weights)
