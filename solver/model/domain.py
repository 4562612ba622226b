"""Parameter domains D in which theta lives, and how their meshes sit in space.

A domain has k = ``param_dim`` parameters theta and is meshed by a mesh of
topological dimension ``manifold_dim`` whose vertices live in R^``embedding_dim``
(a box is its own mesh; a circle of angles is a polygon in R^2; the sphere is a
surface in R^3). ``from_mesh``/``to_mesh`` convert between mesh coordinates X and
theta; the metric is the embedding's, so grad Psi on the mesh is the tangential
gradient of theta -> Psi(theta) pushed forward by ``tangent_gradient``.

Domains: ``Box`` (interval, rectangle, box), ``Disc`` (flat, k = 2), ``Circle``
(an angle, meshed as a polygon in R^2), ``Cylinder`` (theta = (c, z), meshed as a
surface in R^3) and ``Sphere`` (unit vectors in R^d; meshed for d = 3 only).
Periodic angles are periodic through the embedded mesh, never through constraints.

The meshes of curved domains are flat-faced (an inscribed polygon or polyhedron). The map
Phi from a mesh point to the exact surface projects the ``radial_axes`` coordinates onto
the unit circle or sphere (``from_mesh`` is Phi followed by the chart); its Jacobian
``chart_jacobian`` lets a scheme use the exact metric of the surface on the flat cells.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


class Domain(ABC):
    """A parameter domain: dimensions, the mesh <-> theta maps and the regulariser r."""

    @property
    @abstractmethod
    def param_dim(self) -> int:
        """k, the length of theta."""

    @property
    def manifold_dim(self) -> int:
        """Topological dimension of a mesh of the domain."""
        return self.param_dim

    @property
    def embedding_dim(self) -> int:
        """Geometric dimension of a mesh of the domain."""
        return self.param_dim

    @property
    def dim(self) -> int:
        return self.param_dim

    @abstractmethod
    def bounding_box(self) -> Box:
        """A box in theta coordinates that contains the domain (for sampling and mass checks)."""

    @abstractmethod
    def contains(self, theta: np.ndarray) -> np.ndarray:
        """Boolean mask of the rows of theta (Q, k) inside the closed domain."""

    def from_mesh(self, X: np.ndarray) -> np.ndarray:
        """theta of mesh points X (N, gdim) -> (N, k); points slightly off a curved mesh project."""
        return np.asarray(X, dtype=float)[:, : self.param_dim].copy()

    def to_mesh(self, theta: np.ndarray) -> np.ndarray:
        """Mesh coordinates of theta (N, k) -> (N, gdim)."""
        return np.asarray(theta, dtype=float).copy()

    @property
    def radial_axes(self) -> tuple[int, ...]:
        """Mesh coordinates that Phi projects radially onto the unit sphere (none: flat)."""
        return ()

    def chart_jacobian(self, X: np.ndarray) -> np.ndarray:
        """dPhi at mesh points X (N, gdim) -> (N, gdim, gdim), Phi the projection of the
        ``radial_axes`` coordinates y onto the unit sphere: dPhi = (I - y y^T/|y|^2)/|y|
        on those axes, the identity on the others."""
        X = np.asarray(X, dtype=float)
        n, gdim = X.shape
        out = np.broadcast_to(np.eye(gdim), (n, gdim, gdim)).copy()
        axes = list(self.radial_axes)
        if axes:
            y = X[:, axes]
            r = np.linalg.norm(y, axis=1)
            yhat = y / r[:, None]
            block = (np.eye(len(axes)) - yhat[:, :, None] * yhat[:, None, :]) / r[:, None, None]
            out[:, axes[0]:axes[-1] + 1, axes[0]:axes[-1] + 1] = block
        return out

    def tangent_gradient(self, theta: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Riemannian gradient, in mesh coordinates (N, gdim), of a function with
        theta-gradient ``grad`` (N, k)."""
        return np.asarray(grad, dtype=float).copy()

    def project_velocity(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        """A theta-velocity (N, k) made tangent to the domain (identity for flat charts)."""
        return v

    def retract(self, theta: np.ndarray) -> np.ndarray:
        """Bring moved points back to the canonical chart (wrap angles, normalise)."""
        return theta

    def regulariser(self, theta: np.ndarray) -> np.ndarray:
        """r(theta) = |theta|^2 / 2 of the flat coordinates, (N,)."""
        return 0.5 * np.sum(np.asarray(theta) ** 2, axis=1)

    def regulariser_gradient(self, theta: np.ndarray) -> np.ndarray:
        """grad_theta r, (N, k)."""
        return np.asarray(theta, dtype=float)

    @property
    def kind(self) -> str:
        """Short name of the domain type ("box", "disc", "circle", "cylinder", "sphere")."""
        return type(self).__name__.lower()

    @property
    def measure(self) -> float:
        """Length, area or volume of the domain in the mesh metric."""
        raise NotImplementedError(f"domain: no measure for {self.describe()}")

    @property
    def mesh_names(self) -> tuple[str, ...]:
        """Names of the reference meshes in ``meshes/`` that fit this domain."""
        return ()

    def describe(self) -> str:
        """A one-line description for messages."""
        return repr(self)


@dataclass(frozen=True)
class Box(Domain):
    """The box D = prod_i [lower_i, upper_i] in R^k (interval, rectangle or box)."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]

    def __post_init__(self) -> None:
        lo = np.asarray(self.lower, dtype=float)
        hi = np.asarray(self.upper, dtype=float)
        if lo.ndim != 1 or lo.shape != hi.shape or lo.size == 0:
            raise ValueError(
                f"domain: lower {self.lower} and upper {self.upper} must be equal-length lists"
            )
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
            raise ValueError(
                f"domain: need finite lower < upper in every coordinate, got "
                f"lower={self.lower}, upper={self.upper}"
            )
        object.__setattr__(self, "lower", tuple(float(v) for v in lo))
        object.__setattr__(self, "upper", tuple(float(v) for v in hi))

    @property
    def param_dim(self) -> int:
        return len(self.lower)

    @property
    def volume(self) -> float:
        return float(np.prod(np.subtract(self.upper, self.lower)))

    def bounding_box(self) -> Box:
        return self

    def contains(self, theta: np.ndarray) -> np.ndarray:
        return np.all((theta >= self.lower) & (theta <= self.upper), axis=1)

    @property
    def kind(self) -> str:
        return "box"

    @property
    def measure(self) -> float:
        return self.volume

    @property
    def mesh_names(self) -> tuple[str, ...]:
        return {1: ("interval",), 2: ("rectangle",), 3: ("box",)}.get(self.param_dim, ())

    def describe(self) -> str:
        return f"box lower={list(self.lower)}, upper={list(self.upper)}"


def wrap_angle(z: np.ndarray) -> np.ndarray:
    """Angles mapped to (-pi, pi]."""
    z = np.asarray(z, dtype=float)
    return z - 2 * np.pi * np.ceil((z - np.pi) / (2 * np.pi))


def _finite_pair(name: str, lower: float, upper: float) -> tuple[float, float]:
    lo, hi = float(lower), float(upper)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"domain: {name} needs finite lower < upper, got lower={lower}, "
                         f"upper={upper}")
    return lo, hi


@dataclass(frozen=True)
class Disc(Domain):
    """The closed disc |theta - center| <= radius in R^2 (flat; meshed by triangles)."""

    center: tuple[float, float]
    radius: float

    def __post_init__(self) -> None:
        c = np.asarray(self.center, dtype=float)
        if c.shape != (2,) or not np.all(np.isfinite(c)):
            raise ValueError(f"domain: disc center must be 2 finite numbers, got {self.center}")
        r = float(self.radius)
        if not (np.isfinite(r) and r > 0):
            raise ValueError(f"domain: disc radius must be a finite number > 0, got {self.radius}")
        object.__setattr__(self, "center", (float(c[0]), float(c[1])))
        object.__setattr__(self, "radius", r)

    @property
    def param_dim(self) -> int:
        return 2

    @property
    def measure(self) -> float:
        return float(np.pi * self.radius**2)

    @property
    def mesh_names(self) -> tuple[str, ...]:
        return ("disc",)

    def bounding_box(self) -> Box:
        cx, cy = self.center
        r = self.radius
        return Box((cx - r, cy - r), (cx + r, cy + r))

    def contains(self, theta: np.ndarray) -> np.ndarray:
        d2 = np.sum((np.asarray(theta, dtype=float) - self.center) ** 2, axis=1)
        return d2 <= self.radius**2 * (1 + 1e-12)

    def describe(self) -> str:
        return f"disc center={list(self.center)}, radius={self.radius}"


@dataclass(frozen=True)
class Circle(Domain):
    """theta = (z,), an angle in (-pi, pi]; meshed as a unit-radius polygon in R^2.

    Mesh points X = (cos z, sin z); ``from_mesh`` is atan2, so points slightly
    inside the polygon (cell midpoints) project radially. No regulariser.
    """

    @property
    def param_dim(self) -> int:
        return 1

    @property
    def embedding_dim(self) -> int:
        return 2

    @property
    def measure(self) -> float:
        return 2 * np.pi

    @property
    def mesh_names(self) -> tuple[str, ...]:
        return ("circle",)

    def bounding_box(self) -> Box:
        return Box((-np.pi,), (np.pi,))

    def contains(self, theta: np.ndarray) -> np.ndarray:
        z = np.asarray(theta, dtype=float)[:, 0]
        return (z >= -np.pi) & (z <= np.pi)

    @property
    def radial_axes(self) -> tuple[int, ...]:
        return (0, 1)

    def from_mesh(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        return wrap_angle(np.arctan2(X[:, 1], X[:, 0]))[:, None]

    def to_mesh(self, theta: np.ndarray) -> np.ndarray:
        z = np.asarray(theta, dtype=float)[:, 0]
        return np.column_stack([np.cos(z), np.sin(z)])

    def tangent_gradient(self, theta: np.ndarray, grad: np.ndarray) -> np.ndarray:
        z = np.asarray(theta, dtype=float)[:, 0]
        g = np.asarray(grad, dtype=float)[:, 0]
        return np.column_stack([-g * np.sin(z), g * np.cos(z)])

    def retract(self, theta: np.ndarray) -> np.ndarray:
        return wrap_angle(theta)

    def regulariser(self, theta: np.ndarray) -> np.ndarray:
        return np.zeros(len(theta))

    def regulariser_gradient(self, theta: np.ndarray) -> np.ndarray:
        return np.zeros((len(theta), 1))

    def describe(self) -> str:
        return "circle of angles (-pi, pi]"


@dataclass(frozen=True)
class Cylinder(Domain):
    """theta = (c, z): c in [lower, upper], z an angle in (-pi, pi].

    Meshed as the surface X = (c, cos z, sin z) in R^3 (unit radius, so the
    metric is dc^2 + dz^2). Regulariser r = c^2/2 (the angle needs none).
    """

    lower: float
    upper: float

    def __post_init__(self) -> None:
        lo, hi = _finite_pair("cylinder", self.lower, self.upper)
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    @property
    def param_dim(self) -> int:
        return 2

    @property
    def embedding_dim(self) -> int:
        return 3

    @property
    def measure(self) -> float:
        return 2 * np.pi * (self.upper - self.lower)

    @property
    def mesh_names(self) -> tuple[str, ...]:
        return ("cylinder",)

    def bounding_box(self) -> Box:
        return Box((self.lower, -np.pi), (self.upper, np.pi))

    def contains(self, theta: np.ndarray) -> np.ndarray:
        return self.bounding_box().contains(np.asarray(theta, dtype=float))

    @property
    def radial_axes(self) -> tuple[int, ...]:
        return (1, 2)

    def from_mesh(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        return np.column_stack([X[:, 0], wrap_angle(np.arctan2(X[:, 2], X[:, 1]))])

    def to_mesh(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=float)
        z = theta[:, 1]
        return np.column_stack([theta[:, 0], np.cos(z), np.sin(z)])

    def tangent_gradient(self, theta: np.ndarray, grad: np.ndarray) -> np.ndarray:
        z = np.asarray(theta, dtype=float)[:, 1]
        g = np.asarray(grad, dtype=float)
        return np.column_stack([g[:, 0], -g[:, 1] * np.sin(z), g[:, 1] * np.cos(z)])

    def retract(self, theta: np.ndarray) -> np.ndarray:
        out = np.array(theta, dtype=float)
        out[:, 1] = wrap_angle(out[:, 1])
        return out

    def regulariser(self, theta: np.ndarray) -> np.ndarray:
        return 0.5 * np.asarray(theta, dtype=float)[:, 0] ** 2

    def regulariser_gradient(self, theta: np.ndarray) -> np.ndarray:
        out = np.zeros((len(theta), 2))
        out[:, 0] = np.asarray(theta, dtype=float)[:, 0]
        return out

    def describe(self) -> str:
        return f"cylinder c in [{self.lower}, {self.upper}] x angle (-pi, pi]"


@dataclass(frozen=True)
class Sphere(Domain):
    """theta a unit vector in R^d, the sphere S^{d-1} (d = ``ambient_dim`` >= 2).

    param_dim d, manifold_dim d - 1, embedding_dim d. A mesh exists only for d = 3
    (an icosphere). Velocities are projected on the tangent space, moved points
    normalised; no regulariser.
    """

    ambient_dim: int = 3

    def __post_init__(self) -> None:
        d = self.ambient_dim
        if isinstance(d, bool) or int(d) != d or d < 2:
            raise ValueError(f"domain: sphere ambient_dim must be an integer >= 2, got {d!r}")
        object.__setattr__(self, "ambient_dim", int(d))

    @property
    def param_dim(self) -> int:
        return self.ambient_dim

    @property
    def manifold_dim(self) -> int:
        return self.ambient_dim - 1

    @property
    def embedding_dim(self) -> int:
        return self.ambient_dim

    @property
    def measure(self) -> float:
        d = self.ambient_dim
        return float(2 * np.pi ** (d / 2) / math.gamma(d / 2))

    @property
    def mesh_names(self) -> tuple[str, ...]:
        return ("sphere",) if self.ambient_dim == 3 else ()

    def bounding_box(self) -> Box:
        d = self.ambient_dim
        return Box((-1.0,) * d, (1.0,) * d)

    def contains(self, theta: np.ndarray) -> np.ndarray:
        return np.abs(np.linalg.norm(np.asarray(theta, dtype=float), axis=1) - 1) <= 1e-9

    @property
    def radial_axes(self) -> tuple[int, ...]:
        return tuple(range(self.ambient_dim))

    def from_mesh(self, X: np.ndarray) -> np.ndarray:
        return self.retract(X)

    def to_mesh(self, theta: np.ndarray) -> np.ndarray:
        return np.asarray(theta, dtype=float).copy()

    def tangent_gradient(self, theta: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return self.project_velocity(theta, grad)

    def project_velocity(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        t = self.retract(theta)
        v = np.asarray(v, dtype=float)
        return v - np.sum(v * t, axis=1, keepdims=True) * t

    def retract(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=float)
        return theta / np.linalg.norm(theta, axis=1, keepdims=True)

    def regulariser(self, theta: np.ndarray) -> np.ndarray:
        return np.zeros(len(theta))

    def regulariser_gradient(self, theta: np.ndarray) -> np.ndarray:
        return np.zeros((len(theta), self.ambient_dim))

    def describe(self) -> str:
        return f"unit sphere S^{self.ambient_dim - 1} in R^{self.ambient_dim}"
