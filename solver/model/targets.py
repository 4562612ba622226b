"""Targets y(x): an expression of x, a teacher network, or tabulated values."""

from __future__ import annotations

import ast
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from solver.model.units import Unit

_FUNCTIONS = {
    name: getattr(np, name)
    for name in (
        "sin", "cos", "tan", "exp", "log", "sqrt", "abs", "tanh", "sinh", "cosh",
        "arctan", "arcsin", "arccos", "sign", "maximum", "minimum", "where",
        "i0",  # modified Bessel I_0: closed forms of von Mises averages
    )
}
_CONSTANTS = {"pi": np.pi, "e": np.e}
_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load, ast.Constant,
    ast.Compare, ast.Subscript, ast.Slice,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd, ast.Mod,
    ast.Lt, ast.Gt, ast.LtE, ast.GtE,
)


class Target(ABC):
    """A target y: R^d -> R."""

    @abstractmethod
    def __call__(self, x: np.ndarray) -> np.ndarray:
        """y(x_m) for x (M, d) -> (M,)."""


@dataclass(frozen=True)
class ExpressionTarget(Target):
    """y(x) from a numpy expression in x0, x1, ... (x = x0 when d = 1, r = |x|).

    Only arithmetic, comparisons, the functions in ``_FUNCTIONS`` and real number
    constants are allowed. Every constant is read as a float, so nothing is computed in
    Python's unbounded integers or on strings (``9**9**9`` is inf, not an hour of
    arithmetic; ``'a'*10**10`` is refused); a non-finite y is refused where it is used.
    """

    expression: str
    dim: int

    def __post_init__(self) -> None:
        try:
            tree = ast.parse(self.expression, mode="eval")
        except SyntaxError as err:
            raise ValueError(f"expression {self.expression!r} is not valid: {err.msg}") from err
        allowed = set(_FUNCTIONS) | set(_CONSTANTS) | {"x", "r"}
        allowed |= {f"x{i}" for i in range(self.dim)}
        indices = {id(c) for sub in ast.walk(tree) if isinstance(sub, ast.Subscript)
                   for c in ast.walk(sub.slice) if isinstance(c, ast.Constant)}
        for node in ast.walk(tree):
            if not isinstance(node, _NODES):
                raise ValueError(
                    f"expression {self.expression!r}: {type(node).__name__} is not allowed"
                )
            if isinstance(node, ast.Name) and node.id not in allowed:
                raise ValueError(
                    f"expression {self.expression!r}: unknown name {node.id!r}; "
                    f"allowed: {', '.join(sorted(allowed))}"
                )
            if isinstance(node, ast.Constant):
                _number_constant(node, self.expression, index=id(node) in indices)
        object.__setattr__(self, "_code", compile(tree, "<target>", "eval"))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        names = {f"x{i}": x[:, i] for i in range(x.shape[1])}
        names["x"] = x[:, 0] if x.shape[1] == 1 else x.T
        names["r"] = np.linalg.norm(x, axis=1)
        try:
            with np.errstate(all="ignore"):
                y = eval(self._code, {"__builtins__": {}, **_FUNCTIONS, **_CONSTANTS}, names)
            y = np.broadcast_to(np.asarray(y, dtype=float), (x.shape[0],)).copy()
        except OverflowError:
            raise ValueError(f"expression {self.expression!r} overflows a float (beyond "
                             f"1.8e308) at the data points") from None
        except (ArithmeticError, TypeError, ValueError) as err:
            raise ValueError(f"expression {self.expression!r} cannot be evaluated at the data "
                             f"points: {err}") from None
        if not np.all(np.isfinite(y)):
            bad = int(np.argmin(np.isfinite(y)))
            raise ValueError(f"expression {self.expression!r} is {y[bad]} at x = "
                             f"{x[bad].tolist()}; y must be finite at every data point")
        return y


def _number_constant(node: ast.Constant, expression: str, index: bool) -> None:
    """Make a number constant a float in place (an index of x[...]: a small int); refuse
    strings, bytes, booleans, complex numbers."""
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expression {expression!r}: the constant {value!r} is not a real "
                         f"number; only numbers, x, r and functions of them are allowed")
    if index:
        if not (isinstance(value, int) and abs(value) < 2**31):
            raise ValueError(f"expression {expression!r}: the index {value!r} of x[...] must "
                             f"be an integer")
        return
    try:
        node.value = float(value)
    except OverflowError:
        raise ValueError(f"expression {expression!r}: the constant {value} is too large "
                         f"for a float") from None


@dataclass(frozen=True, eq=False)
class TeacherTarget(Target):
    """y(x) = sum_j a_j s(x; theta_j), a teacher network (a_j = 1/n_teacher by default)."""

    unit: Unit
    theta: np.ndarray
    coefficients: np.ndarray | None = None

    def __post_init__(self) -> None:
        theta = np.atleast_2d(np.asarray(self.theta, dtype=float))
        if theta.shape[1] != self.unit.param_dim or not np.all(np.isfinite(theta)):
            raise ValueError(
                f"teacher theta: expected finite rows of length {self.unit.param_dim}, "
                f"got shape {theta.shape}"
            )
        a = (
            np.full(len(theta), 1.0 / len(theta))
            if self.coefficients is None
            else np.asarray(self.coefficients, dtype=float)
        )
        if a.shape != (len(theta),):
            raise ValueError(f"teacher coefficients: expected {len(theta)} numbers")
        object.__setattr__(self, "theta", theta)
        object.__setattr__(self, "coefficients", a)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.unit.values(x, self.theta) @ self.coefficients


@dataclass(frozen=True, eq=False)
class TabulatedTarget(Target):
    """y given at points (read from a file): exact look-up of those points only."""

    points: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tree", cKDTree(self.points))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        dist, idx = self._tree.query(x)
        if np.any(dist > 1e-12 * (1 + np.abs(x).max())):
            raise ValueError("tabulated target: asked for y at a point not in the data file")
        return self.values[idx]


@dataclass(frozen=True, eq=False)
class CubicFormTarget(Target):
    """y(x) = scale sum_{ijk} a_ijk x_i x_j x_k for a coefficient array a of shape (d, d, d)
    (the Hamiltonian of the spherical 3-spin model when a is i.i.d. Gaussian and x on a sphere).
    """

    coefficients: np.ndarray
    scale: float = 1.0

    def __post_init__(self) -> None:
        a = np.asarray(self.coefficients, dtype=float)
        if a.ndim != 3 or len(set(a.shape)) != 1 or not np.all(np.isfinite(a)):
            raise ValueError(f"cubic target: coefficients must be a finite (d, d, d) array, "
                             f"got shape {a.shape}")
        if not np.isfinite(self.scale):
            raise ValueError(f"cubic target: scale must be finite, got {self.scale!r}")
        object.__setattr__(self, "coefficients", a)
        object.__setattr__(self, "scale", float(self.scale))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        d = self.coefficients.shape[0]
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"cubic target: x must have shape (M, {d}), got {x.shape}")
        quadratic = (x @ self.coefficients.reshape(d, d * d)).reshape(-1, d, d)  # sum_i x_i a_ijk
        return self.scale * np.einsum("mjk,mj,mk->m", quadratic, x, x)
