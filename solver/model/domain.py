"""Parameter domains D in which theta lives, and how their meshes sit in space.

A domain has k = ``param_dim`` parameters theta and is meshed by a mesh of
topological dimension ``manifold_dim`` whose vertices live in R^``embedding_dim``
(a box is its own mesh; a circle of angles is a polygon in R^2; the sphere is a
surface in R^3). ``from_mesh``/``to_mesh`` convert between mesh coordinates X and
theta; the metric is the embedding's, so grad Psi on the mesh is the tangential
gradient of theta -> Psi(theta) pushed forward by ``tangent_gradient``.
"""

from __future__ import annotations

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
