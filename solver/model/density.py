"""Initial parameter densities rho_0: evaluation, exact sampling and mass in a box."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from solver.model.domain import Box


class Density(ABC):
    """A probability density on R^k."""

    dim: int

    @abstractmethod
    def pdf(self, theta: np.ndarray) -> np.ndarray:
        """rho_0(theta_q) for theta (Q, k) -> (Q,)."""

    @abstractmethod
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n independent draws, (n, k)."""

    @abstractmethod
    def mass_in(self, box: Box) -> float:
        """integral of rho_0 over the box."""

    def sample_in(self, rng: np.random.Generator, n: int, box: Box) -> np.ndarray:
        """n exact draws from rho_0 restricted to the box (rejection from rho_0)."""
        accept = self.mass_in(box)
        out = np.empty((0, self.dim))
        while len(out) < n:
            need = n - len(out)
            draw = self.sample(rng, int(need / accept * 1.1) + 16)
            out = np.vstack([out, draw[box.contains(draw)][:need]])
        return out


def _as_vector(name: str, value, dim: int | None = None) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected a list of finite numbers, got {value!r}")
    if dim is not None and arr.size != dim:
        raise ValueError(f"{name}: expected {dim} numbers, got {arr.size}")
    return arr


@dataclass(frozen=True, eq=False)
class Gaussian(Density):
    """rho_0 = N(mean, diag(std^2))."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        mean = _as_vector("mean", self.mean)
        std = _as_vector("std", self.std, mean.size)
        if np.any(std <= 0):
            raise ValueError(f"std: must be positive, got {std.tolist()}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @property
    def dim(self) -> int:
        return self.mean.size

    def pdf(self, theta: np.ndarray) -> np.ndarray:
        z = (theta - self.mean) / self.std
        norm = np.prod(self.std) * (2 * np.pi) ** (self.dim / 2)
        return np.exp(-0.5 * np.sum(z**2, axis=1)) / norm

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.mean + self.std * rng.standard_normal((n, self.dim))

    def mass_in(self, box: Box) -> float:
        lo = ndtr((np.asarray(box.lower) - self.mean) / self.std)
        hi = ndtr((np.asarray(box.upper) - self.mean) / self.std)
        return float(np.prod(hi - lo))


@dataclass(frozen=True, eq=False)
class Uniform(Density):
    """rho_0 = 1/|B| on the box B = prod [lower_i, upper_i]."""

    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self) -> None:
        box = Box(tuple(_as_vector("lower", self.lower)), tuple(_as_vector("upper", self.upper)))
        object.__setattr__(self, "lower", np.asarray(box.lower))
        object.__setattr__(self, "upper", np.asarray(box.upper))

    @property
    def dim(self) -> int:
        return self.lower.size

    def pdf(self, theta: np.ndarray) -> np.ndarray:
        inside = np.all((theta >= self.lower) & (theta <= self.upper), axis=1)
        return inside / np.prod(self.upper - self.lower)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.lower, self.upper, size=(n, self.dim))

    def mass_in(self, box: Box) -> float:
        lo = np.maximum(self.lower, box.lower)
        hi = np.minimum(self.upper, box.upper)
        return float(np.prod(np.clip(hi - lo, 0, None)) / np.prod(self.upper - self.lower))


@dataclass(frozen=True, eq=False)
class GaussianMixture(Density):
    """rho_0 = sum_j p_j N(mean_j, diag(std_j^2)), p_j >= 0 summing to 1."""

    components: tuple[Gaussian, ...]
    probabilities: np.ndarray

    def __post_init__(self) -> None:
        p = _as_vector("probabilities", self.probabilities, len(self.components))
        if np.any(p < 0) or p.sum() <= 0:
            raise ValueError(f"probabilities: need >= 0 with positive sum, got {p.tolist()}")
        if len({c.dim for c in self.components}) != 1:
            raise ValueError("components: all means must have the same length")
        object.__setattr__(self, "probabilities", p / p.sum())

    @property
    def dim(self) -> int:
        return self.components[0].dim

    def pdf(self, theta: np.ndarray) -> np.ndarray:
        pairs = zip(self.probabilities, self.components, strict=True)
        return sum(p * c.pdf(theta) for p, c in pairs)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        counts = rng.multinomial(n, self.probabilities)
        draws = np.vstack([c.sample(rng, k) for c, k in zip(self.components, counts, strict=True)])
        return draws[rng.permutation(n)]

    def mass_in(self, box: Box) -> float:
        masses = [c.mass_in(box) for c in self.components]
        return float(np.dot(self.probabilities, masses))
