"""Initial parameter densities rho_0: evaluation, exact sampling and mass in a domain.

Euclidean densities (``Gaussian``, ``Uniform``, ``GaussianMixture``) live on R^k and
are used on flat charts: boxes, discs, and the (c, z) / z charts of cylinders and
circles (an angle's density is the one on R restricted to (-pi, pi]). Sphere
densities (``UniformSphere``, ``VonMisesFisher``) are densities with respect to the
surface measure of S^{d-1} and go with a ``Sphere`` domain only.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from scipy import integrate
from scipy.special import ive, ndtr

from solver.model.domain import Box, Circle, Cylinder, Disc, Domain, Sphere

_EUCLIDEAN_KINDS = "gaussian, uniform or mixture"
_SPHERE_KINDS = "a sphere density (UniformSphere, VonMisesFisher)"


class Density(ABC):
    """A probability density on R^k (flat domains)."""

    dim: int

    @abstractmethod
    def pdf(self, theta: np.ndarray) -> np.ndarray:
        """rho_0(theta_q) for theta (Q, k) -> (Q,)."""

    @abstractmethod
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n independent draws, (n, k)."""

    def _mass_in_box(self, box: Box) -> float:
        """integral of rho_0 over a box (exact)."""
        raise NotImplementedError(f"initial: {type(self).__name__} has no mass in a box")

    def check_domain(self, domain: Domain) -> None:
        """Raise a ValueError naming ``initial`` if rho_0 cannot live on the domain."""
        if isinstance(domain, Sphere):
            raise ValueError(
                f"initial: {type(self).__name__} is a density on R^{self.dim}, but the domain "
                f"is the {domain.describe()}; use {_SPHERE_KINDS} for a sphere domain"
            )
        if domain.param_dim != self.dim:
            raise ValueError(
                f"initial: density has dimension {self.dim} but the domain ({domain.describe()}) "
                f"has {domain.param_dim} parameters"
            )

    def mass_in(self, domain: Domain) -> float:
        """integral of rho_0 over the domain (in theta coordinates).

        Exact for boxes, and for cylinders and circles through their theta box
        [lower, upper] x (-pi, pi]; for a disc an adaptive quadrature of the
        exact one-dimensional reduction (``_mass_in_disc``).
        """
        self.check_domain(domain)
        if isinstance(domain, Box | Circle | Cylinder):
            return self._mass_in_box(domain.bounding_box())
        if isinstance(domain, Disc):
            return self._mass_in_disc(domain)
        raise ValueError(f"initial: no mass computation for the domain {domain.describe()}")

    def _mass_in_disc(self, disc: Disc, tol: float = 1e-11) -> float:
        """integral of rho_0 over the disc by a polar product rule refined until it settles.

        Composite 8-point Gauss-Legendre panels in r (weight r) times the
        trapezoidal rule in the angle (spectral for the periodic integrand);
        panels double until two estimates agree to ``tol``.
        """
        gx, gw = np.polynomial.legendre.leggauss(8)
        cx, cy = disc.center
        previous = None
        for panels in (4, 8, 16, 32, 64, 128):
            edges = np.linspace(0.0, disc.radius, panels + 1)
            h = np.diff(edges)[:, None]
            r = (edges[:-1, None] + h * (gx + 1) / 2).ravel()
            wr = (h * gw / 2).ravel() * r
            n_phi = 16 * panels
            phi = 2 * np.pi * np.arange(n_phi) / n_phi
            pts = np.column_stack([
                (cx + np.outer(r, np.cos(phi))).ravel(), (cy + np.outer(r, np.sin(phi))).ravel()
            ])
            vals = self.pdf(pts).reshape(r.size, n_phi)
            mass = float(wr @ vals.sum(axis=1) * 2 * np.pi / n_phi)
            if previous is not None and abs(mass - previous) <= tol * max(1.0, abs(mass)):
                return mass
            previous = mass
        return mass

    def sample_in(self, rng: np.random.Generator, n: int, domain: Domain) -> np.ndarray:
        """n exact draws from rho_0 restricted to the domain (rejection from rho_0)."""
        accept = self.mass_in(domain)
        if not accept > 0:
            raise ValueError(f"initial: the density has no mass in the {domain.describe()}")
        out = np.empty((0, self.dim))
        while len(out) < n:
            need = n - len(out)
            draw = self.sample(rng, min(int(need / accept * 1.1) + 16, 10**6))
            out = np.vstack([out, draw[domain.contains(draw)][:need]])
        return out


def _product_mass_in_disc(disc: Disc, pdf_x, cdf_y, x_breaks, y_breaks) -> float:
    """integral over the disc of p(x) q(y) for a product density with marginal pdf_x, cdf_y.

    With x = cx + R sin t, the y-integral is exact and the rest is smooth in t:
    mass = int_{-pi/2}^{pi/2} R cos t pdf_x(x) [F_y(cy + R cos t) - F_y(cy - R cos t)] dt,
    integrated adaptively with break points where the marginals change fast.
    """
    cx, cy = disc.center
    R = disc.radius

    def integrand(t: float) -> float:
        h = R * np.cos(t)
        return h * float(pdf_x(cx + R * np.sin(t))) * float(cdf_y(cy + h) - cdf_y(cy - h))

    points = [np.arcsin(np.clip((x - cx) / R, -1, 1)) for x in x_breaks]
    for y in y_breaks:
        c = abs(y - cy) / R
        if c < 1:
            points += [np.arccos(c), -np.arccos(c)]
    points = sorted({float(p) for p in points if -np.pi / 2 < p < np.pi / 2})
    edges = [-np.pi / 2, *points, np.pi / 2]
    total = 0.0
    for a, b in itertools.pairwise(edges):
        if b > a:
            total += integrate.quad(integrand, a, b, epsabs=1e-14, epsrel=1e-12, limit=200)[0]
    return float(total)


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

    def _mass_in_box(self, box: Box) -> float:
        lo = ndtr((np.asarray(box.lower) - self.mean) / self.std)
        hi = ndtr((np.asarray(box.upper) - self.mean) / self.std)
        return float(np.prod(hi - lo))

    def _mass_in_disc(self, disc: Disc, tol: float = 1e-11) -> float:
        (mx, my), (sx, sy) = self.mean, self.std
        return _product_mass_in_disc(
            disc,
            lambda x: np.exp(-0.5 * ((x - mx) / sx) ** 2) / (sx * np.sqrt(2 * np.pi)),
            lambda y: ndtr((y - my) / sy),
            [mx + j * sx for j in (-6, -3, -1, 0, 1, 3, 6)],
            [my + j * sy for j in (-6, -3, 0, 3, 6)],
        )


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

    def _mass_in_box(self, box: Box) -> float:
        lo = np.maximum(self.lower, box.lower)
        hi = np.minimum(self.upper, box.upper)
        return float(np.prod(np.clip(hi - lo, 0, None)) / np.prod(self.upper - self.lower))

    def _mass_in_disc(self, disc: Disc, tol: float = 1e-11) -> float:
        (lx, ly), (hx, hy) = self.lower, self.upper
        return _product_mass_in_disc(
            disc,
            lambda x: float(lx <= x <= hx) / (hx - lx),
            lambda y: np.clip((y - ly) / (hy - ly), 0.0, 1.0),
            [lx, hx],
            [ly, hy],
        )


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

    def mass_in(self, domain: Domain) -> float:
        masses = [c.mass_in(domain) for c in self.components]
        return float(np.dot(self.probabilities, masses))


@dataclass(frozen=True, eq=False)
class GaussianVonMises(Density):
    """rho_0(c, z) = N(c; mean[:-1], diag(std^2)) exp(kappa cos(z - mean[-1])) / (2 pi I_0(kappa))
    on a cylinder (c, z) or a circle (z only, ``std`` empty): Gaussian in the flat
    coordinates, von Mises in the angle (kappa = 0: uniform in the angle). Smooth and
    periodic in z, so it sees the period of the angle."""

    mean: np.ndarray
    std: np.ndarray
    kappa: float

    def __post_init__(self) -> None:
        mean = _as_vector("mean", self.mean)
        std = np.asarray(self.std, dtype=float).reshape(-1)
        if std.size != mean.size - 1 or np.any(~np.isfinite(std)) or np.any(std <= 0):
            raise ValueError(f"std: need {mean.size - 1} positive numbers (one per flat "
                             f"coordinate, none for the angle), got {std.tolist()}")
        kappa = float(self.kappa)
        if not (np.isfinite(kappa) and kappa >= 0):
            raise ValueError(f"kappa: must be a finite number >= 0, got {self.kappa}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "kappa", kappa)

    @property
    def dim(self) -> int:
        return self.mean.size

    def check_domain(self, domain: Domain) -> None:
        super().check_domain(domain)
        if not isinstance(domain, Circle | Cylinder):
            raise ValueError(f"initial: a von Mises density needs an angle (a circle or "
                             f"cylinder domain), but the domain is the {domain.describe()}")

    def pdf(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=float)
        c = (theta[:, :-1] - self.mean[:-1]) / self.std
        gauss = np.exp(-0.5 * np.sum(c**2, axis=1)) / (
            np.prod(self.std) * (2 * np.pi) ** (c.shape[1] / 2))
        k = self.kappa  # exp(k cos) / (2 pi I_0(k)) = exp(k (cos - 1)) / (2 pi ive(0, k))
        return gauss * np.exp(k * (np.cos(theta[:, -1] - self.mean[-1]) - 1)) / (
            2 * np.pi * ive(0, k))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        flat = self.mean[:-1] + self.std * rng.standard_normal((n, self.dim - 1))
        z = rng.vonmises(self.mean[-1], self.kappa, size=n)
        return np.column_stack([flat, z])

    def _mass_in_box(self, box: Box) -> float:
        """Mass in [lower, upper] x (-pi, pi] (the angle's whole period)."""
        lo = ndtr((np.asarray(box.lower)[:-1] - self.mean[:-1]) / self.std)
        hi = ndtr((np.asarray(box.upper)[:-1] - self.mean[:-1]) / self.std)
        return float(np.prod(hi - lo))


class DomainDensity(Density):
    """A density defined on exactly the domain ``check_domain`` accepts: all its mass is in
    that domain, and its draws need no restriction."""

    def mass_in(self, domain: Domain) -> float:
        self.check_domain(domain)
        return 1.0

    def sample_in(self, rng: np.random.Generator, n: int, domain: Domain) -> np.ndarray:
        self.check_domain(domain)
        return self.sample(rng, n)


class SphereDensity(DomainDensity):
    """A probability density on the unit sphere S^{d-1} in R^d (w.r.t. surface measure)."""

    def check_domain(self, domain: Domain) -> None:
        if not isinstance(domain, Sphere):
            raise ValueError(
                f"initial: {type(self).__name__} is a density on the unit sphere "
                f"S^{self.dim - 1} in R^{self.dim}, but the domain is a {domain.describe()}; "
                f"use a Sphere(ambient_dim={self.dim}) domain, or a {_EUCLIDEAN_KINDS} "
                f"initial density on this domain"
            )
        if domain.ambient_dim != self.dim:
            raise ValueError(
                f"initial: density lives in R^{self.dim} but the domain is the "
                f"{domain.describe()}; use a direction with {domain.ambient_dim} entries"
            )


def _sphere_area(d: int) -> float:
    return Sphere(d).measure


@dataclass(frozen=True, eq=False)
class UniformSphere(SphereDensity):
    """The uniform density 1/|S^{d-1}| on the unit sphere in R^dim."""

    dim: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.dim, bool) or int(self.dim) != self.dim or self.dim < 2:
            raise ValueError(f"initial: sphere dimension must be an integer >= 2, got {self.dim}")
        object.__setattr__(self, "dim", int(self.dim))

    def pdf(self, theta: np.ndarray) -> np.ndarray:
        return np.full(len(theta), 1.0 / _sphere_area(self.dim))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        g = rng.standard_normal((n, self.dim))
        return g / np.linalg.norm(g, axis=1, keepdims=True)


@dataclass(frozen=True, eq=False)
class VonMisesFisher(SphereDensity):
    """rho_0(x) = C_d(kappa) exp(kappa mu . x) on S^{d-1}, mu = mean_direction / |.|.

    C_d(kappa) = kappa^{d/2-1} / ((2 pi)^{d/2} I_{d/2-1}(kappa)) makes it a
    probability density w.r.t. surface measure. Sampling is exact (Wood 1994).
    """

    mean_direction: np.ndarray
    kappa: float

    def __post_init__(self) -> None:
        mu = _as_vector("initial.mean_direction", self.mean_direction)
        norm = np.linalg.norm(mu)
        if mu.size < 2 or not norm > 0:
            raise ValueError(
                f"initial.mean_direction: need a nonzero vector with >= 2 entries, "
                f"got {np.asarray(self.mean_direction).tolist()}"
            )
        kappa = float(self.kappa)
        if not (np.isfinite(kappa) and kappa >= 0):
            raise ValueError(f"initial.kappa: must be a finite number >= 0, got {self.kappa}")
        object.__setattr__(self, "mean_direction", mu / norm)
        object.__setattr__(self, "kappa", kappa)

    @property
    def dim(self) -> int:
        return self.mean_direction.size

    @property
    def log_normaliser(self) -> float:
        """log C_d(kappa)."""
        d, k = self.dim, self.kappa
        if k < 1e-10:
            return -float(np.log(_sphere_area(d)))
        nu = d / 2 - 1
        return float(nu * np.log(k) - d / 2 * np.log(2 * np.pi) - np.log(ive(nu, k)) - k)

    @property
    def mean_resultant_length(self) -> float:
        """E[mu . x] = I_{d/2}(kappa) / I_{d/2-1}(kappa)."""
        d = self.dim
        return float(ive(d / 2, self.kappa) / ive(d / 2 - 1, self.kappa))

    def pdf(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=float)
        x = theta / np.linalg.norm(theta, axis=1, keepdims=True)
        return np.exp(self.log_normaliser + self.kappa * (x @ self.mean_direction))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        d, k, mu = self.dim, self.kappa, self.mean_direction
        m = d - 1
        b = m / (2 * k + np.sqrt(4 * k**2 + m**2))
        x0 = (1 - b) / (1 + b)
        c = k * x0 + m * np.log(1 - x0**2)
        w = np.empty(0)
        while w.size < n:
            need = n - w.size
            z = rng.beta(m / 2, m / 2, size=need + 16)
            cand = (1 - (1 + b) * z) / (1 - (1 - b) * z)
            u = rng.uniform(size=need + 16)
            ok = k * cand + m * np.log(1 - x0 * cand) - c >= np.log(u)
            w = np.concatenate([w, cand[ok][:need]])
        v = rng.standard_normal((n, d))
        v -= np.outer(v @ mu, mu)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        x = w[:, None] * mu + np.sqrt(np.clip(1 - w**2, 0, None))[:, None] * v
        return x / np.linalg.norm(x, axis=1, keepdims=True)
