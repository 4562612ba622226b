"""Pointwise losses l(f, y) of the energy E[rho] = E_mu[l(f_rho(x), y(x))] (numpy only).

The first variation of E is Psi(theta; rho) = E_mu[d1 l(f_rho(x), y(x)) s(x; theta)]
(+ lam r(theta)), so a loss enters the dynamics through ``d1`` alone: the PDE, the particle
velocity (GD, noisy GD, SGD on a batch) and the dissipation identity
dE/dt = -int |grad Psi|^2 rho keep their form. ``d2`` is the curvature: linearising the
dynamics around f_rho, a fluctuation g of the network output evolves by
dg/dt = -K_rho (d2 l(f_rho, y) g) (K_rho the neural tangent kernel of rho), so d2 l is the
metric of the fluctuations (constant 1 for the square loss, where CRBV's bound is proved).

Losses (``LOSSES``, ``make_loss``):

- ``square``: l = (f - y)^2 / 2 (the default; the same floating-point operations as before
  losses were general, so square-loss results are unchanged bit for bit);
- ``logistic``: l = log(1 + exp(-y f)) for labels y in {-1, +1}, computed without overflow;
- ``huber``: l = r^2/2 for |r| <= delta, delta (|r| - delta/2) beyond (r = f - y);
- ``smooth_hinge``: the quadratically smoothed hinge of the margin z = y f, labels y in
  {-1, +1}: 1 - z - gamma/2 for z <= 1 - gamma, (1 - z)^2 / (2 gamma) up to z = 1, 0 beyond;
- ``CallableLoss``: any value and derivative from Python (checked against finite
  differences when made).

Values, derivatives and curvatures are elementwise over arrays f, y of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: The loss names of configs ([problem] loss) and ``make_loss``.
LOSSES = ("square", "logistic", "huber", "smooth_hinge")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) without overflow."""
    z = np.asarray(z, dtype=float)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def is_label(y: np.ndarray) -> bool:
    """Whether every target is a label -1 or +1."""
    y = np.asarray(y)
    return bool(y.size) and bool(np.all((y == 1.0) | (y == -1.0)))


class Loss:
    """l(f, y), its derivative in f (``d1``) and its second derivative (``d2``).

    labels: whether the loss is for labels y in {-1, +1} (``check_targets`` refuses others).
    square: whether this is the square loss (the code keeps its old expressions then).
    """

    name: str = "loss"
    labels: bool = False
    square: bool = False

    def value(self, f: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def d1(self, f: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def d2(self, f: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def params(self) -> dict:
        """The loss's settings (summaries, fingerprints)."""
        return {}

    def describe(self) -> str:
        extra = ", ".join(f"{k} = {v:g}" for k, v in self.params().items())
        return self.name + (f" ({extra})" if extra else "")

    def record(self) -> dict:
        """What summary.json says of the loss."""
        return {"name": self.name, **self.params()}

    def check_targets(self, y: np.ndarray) -> None:
        """ValueError (naming problem.loss) when the targets do not suit the loss."""
        if self.labels and not is_label(y):
            bad = np.asarray(y)[(np.asarray(y) != 1.0) & (np.asarray(y) != -1.0)]
            raise ValueError(
                f"loss: {self.name!r} needs labels y in {{-1, +1}} at every data point, got "
                f"{bad.size} other values (e.g. {float(bad[0]):g}); use a label target (e.g. "
                f'expression "sign(...)") or loss = "square"/"huber"')

    def __repr__(self) -> str:
        return f"Loss({self.describe()})"


class SquareLoss(Loss):
    """l = (f - y)^2 / 2."""

    name, square = "square", True

    def value(self, f, y):
        return 0.5 * (np.asarray(f) - y) ** 2

    def d1(self, f, y):
        return np.asarray(f) - y

    def d2(self, f, y):
        return np.ones(np.broadcast(np.asarray(f), np.asarray(y)).shape)


class LogisticLoss(Loss):
    """l = log(1 + exp(-y f)), y in {-1, +1}: d1 = -y sigmoid(-y f), d2 = sigmoid(y f)
    sigmoid(-y f) (y^2 = 1)."""

    name, labels = "logistic", True

    def value(self, f, y):
        return np.logaddexp(0.0, -np.asarray(y) * f)

    def d1(self, f, y):
        y = np.asarray(y, dtype=float)
        return -y * _sigmoid(-y * f)

    def d2(self, f, y):
        z = np.asarray(y, dtype=float) * f
        return _sigmoid(z) * _sigmoid(-z)


@dataclass(repr=False)
class HuberLoss(Loss):
    """l = r^2/2 (|r| <= delta), delta (|r| - delta/2) beyond, r = f - y; d1 = clip(r, -delta,
    delta), d2 = 1 for |r| < delta, 0 beyond (the kinks |r| = delta count as inside)."""

    delta: float = 1.0
    name = "huber"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.delta) and self.delta > 0):
            raise ValueError(f"huber_delta: must be a finite number > 0, got {self.delta}")

    def value(self, f, y):
        a = np.abs(np.asarray(f) - y)
        return np.where(a <= self.delta, 0.5 * a**2, self.delta * (a - 0.5 * self.delta))

    def d1(self, f, y):
        return np.clip(np.asarray(f) - y, -self.delta, self.delta)

    def d2(self, f, y):
        return (np.abs(np.asarray(f) - y) <= self.delta).astype(float)

    def params(self) -> dict:
        return {"delta": float(self.delta)}


@dataclass(repr=False)
class SmoothHingeLoss(Loss):
    """Quadratically smoothed hinge of the margin z = y f, y in {-1, +1}:
    l = 1 - z - gamma/2 (z <= 1 - gamma), (1 - z)^2 / (2 gamma) (1 - gamma < z < 1), 0 (z >= 1);
    d1 = y dl/dz, d2 = 1/gamma on the quadratic piece, 0 elsewhere."""

    gamma: float = 1.0
    name, labels = "smooth_hinge", True

    def __post_init__(self) -> None:
        if not (np.isfinite(self.gamma) and self.gamma > 0):
            raise ValueError(f"smooth_hinge_gamma: must be a finite number > 0, got "
                             f"{self.gamma}")

    def _margin(self, f, y):
        return np.asarray(y, dtype=float) * f

    def value(self, f, y):
        z, g = self._margin(f, y), self.gamma
        return np.where(z <= 1 - g, 1 - z - 0.5 * g,
                        np.where(z < 1, (1 - z) ** 2 / (2 * g), 0.0))

    def d1(self, f, y):
        y = np.asarray(y, dtype=float)
        z, g = y * f, self.gamma
        dz = np.where(z <= 1 - g, -1.0, np.where(z < 1, (z - 1) / g, 0.0))
        return y * dz

    def d2(self, f, y):
        z = self._margin(f, y)
        return np.where((z > 1 - self.gamma) & (z < 1), 1.0 / self.gamma, 0.0)

    def params(self) -> dict:
        return {"gamma": float(self.gamma)}


#: Points (f, y) where a callable loss is checked: f on a spread of values, y on labels and
#: on a few real targets (labels only when ``labels``).
_CHECK_F = np.array([-2.3, -0.7, -0.11, 0.13, 0.6, 1.9])
_CHECK_Y = np.array([-1.0, 1.0, 0.4, -1.7])


class CallableLoss(Loss):
    """A loss from Python: ``value(f, y)`` and ``d1(f, y)`` (and optionally ``d2``), each
    elementwise over numpy arrays. Checked when made: finite values of the right shape and
    d1 (d2) against central differences of value (d1) at a few points, relative error at
    most ``rtol`` (a wrong derivative would train on another loss than the one reported).
    labels: the loss is for labels y in {-1, +1} (targets are checked and checks use them).
    """

    def __init__(self, value: Callable, d1: Callable, d2: Callable | None = None, *,
                 name: str = "custom", labels: bool = False, rtol: float = 1e-5) -> None:
        if not (callable(value) and callable(d1) and (d2 is None or callable(d2))):
            raise ValueError("loss: value, d1 (and d2 if given) must be callables of (f, y)")
        self._value, self._d1, self._d2 = value, d1, d2
        self.name, self.labels = str(name), bool(labels)
        self._check(rtol)

    def _call(self, fn: Callable, what: str, f, y) -> np.ndarray:
        f, y = np.asarray(f, dtype=float), np.asarray(y, dtype=float)
        out = np.asarray(fn(f, y), dtype=float)
        shape = np.broadcast(f, y).shape
        if out.shape != shape:
            raise ValueError(f"loss {self.name!r}: {what}(f, y) returned shape {out.shape}, "
                             f"expected {shape} (elementwise)")
        return out

    def value(self, f, y):
        return self._call(self._value, "value", f, y)

    def d1(self, f, y):
        return self._call(self._d1, "d1", f, y)

    def d2(self, f, y):
        if self._d2 is None:
            raise ValueError(f"loss {self.name!r}: no second derivative d2 was given (the "
                             f"curvature diagnostics need one)")
        return self._call(self._d2, "d2", f, y)

    @property
    def has_d2(self) -> bool:
        return self._d2 is not None

    def _check(self, rtol: float) -> None:
        ys = _CHECK_Y[:2] if self.labels else _CHECK_Y
        f, y = np.meshgrid(_CHECK_F, ys)
        f, y = f.ravel(), y.ravel()
        pairs = [("value", "d1", self.value, self.d1)]
        if self._d2 is not None:
            pairs.append(("d1", "d2", self.d1, self.d2))
        for name, dname, fn, dfn in pairs:
            base = fn(f, y)
            if not np.all(np.isfinite(base)):
                raise ValueError(f"loss {self.name!r}: {name}(f, y) is not finite at every "
                                 f"check point")
            h = 1e-5 * np.maximum(1.0, np.abs(f))
            fd = (fn(f + h, y) - fn(f - h, y)) / (2 * h)
            got = dfn(f, y)
            err = np.abs(got - fd) / np.maximum(1.0, np.abs(fd))
            worst = int(np.argmax(err))
            if not err[worst] <= rtol:
                raise ValueError(
                    f"loss {self.name!r}: {dname} is not the derivative of {name}: at f = "
                    f"{f[worst]:g}, y = {y[worst]:g} it gives {got[worst]:.6g}, central "
                    f"differences {fd[worst]:.6g}")


SQUARE = SquareLoss()
LOGISTIC = LogisticLoss()


def make_loss(name: str, *, huber_delta: float = 1.0, smooth_hinge_gamma: float = 1.0
              ) -> Loss:
    """The named loss of ``LOSSES`` with its parameter."""
    if name == "square":
        return SQUARE
    if name == "logistic":
        return LOGISTIC
    if name == "huber":
        return HuberLoss(huber_delta)
    if name == "smooth_hinge":
        return SmoothHingeLoss(smooth_hinge_gamma)
    raise ValueError(f"loss: got {name!r}; allowed: {', '.join(LOSSES)}")
