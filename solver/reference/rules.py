"""Quadrature rules on parameter space for the reference solutions (numpy only).

- Composite Gauss-Legendre on [a, b]: ``panels`` panels of n nodes between breakpoints,
  exact for piecewise polynomials of degree 2n - 1, exponentially accurate for functions
  analytic on each panel.
- The periodic trapezoid rule on [a, a + L), spectrally accurate for smooth L-periodic
  integrands (angles of a circle or cylinder chart).
- Tensor rules on a domain that fills its bounding box in theta coordinates (a Box, or the
  chart of a circle/cylinder), checked through ``Domain.contains``.
- The restricted initial density rho_0^D = 1_D rho_0 / int_D rho_0, integrated as

      int g(theta) rho_0^D(dtheta) ~ sum_q W_q g(theta_q),
      W_q = w_q rho_0(theta_q) / sum_q' w_q' rho_0(theta_q'),

  with composite Gauss-Legendre nodes on the domain's box whose panel counts are doubled, axis
  by axis, until the mass (checked against ``Density.mass_in``), the first and second moments
  and any requested quantities stop changing (relative tolerance ``tol``).
- Native rules of rho_0 itself on R^k: tensor Gauss-Hermite for N(mean, diag std^2) mapped to its
  mean and std, tensor Gauss-Legendre for a Uniform on its box, and for a GaussianMixture the
  union of its components' rules with weights times the component probabilities.
- Randomised quasi-Monte Carlo (RQMC) nodes of rho_0: a scrambled Sobol' sequence u_q in
  [0, 1)^k (Owen scrambling, seed ``scramble``) mapped by rho_0's inverse CDF axis by axis
  (a Gaussian with diagonal covariance, a Uniform, or Gaussian x von Mises), equal weights.
  Each scramble gives an unbiased estimate of int g rho_0 with error O(n^-1 (log n)^k) for g
  of bounded variation (faster for smooth g) instead of Monte Carlo's n^-1/2; independent
  scrambles give a confidence interval.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri
from scipy.stats import qmc, vonmises

from solver.model.density import Density, Gaussian, GaussianMixture, GaussianVonMises, Uniform
from solver.model.domain import Domain

TWO_PI = 2 * np.pi
#: Gauss-Legendre nodes per panel of the adaptive restricted-density rules.
PANEL_NODES = 20
#: Relative agreement required between the quadrature mass and ``Density.mass_in``.
MASS_TOL = 1e-12


def gauss_legendre(a: float, b: float, n: int, panels: int = 1,
                   breakpoints: Sequence[float] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre rule on [a, b]: nodes (N,), weights (N,) summing to b - a.

    The interval is first split at the ``breakpoints`` inside (a, b) (kinks of the integrand),
    then every piece into ``panels`` equal panels of n nodes.
    """
    if not (n >= 1 and panels >= 1 and a < b):
        raise ValueError(f"gauss_legendre: need n, panels >= 1 and a < b, got {n}, {panels}, "
                         f"[{a}, {b}]")
    t, w = np.polynomial.legendre.leggauss(int(n))
    cuts = np.unique(np.concatenate([[a, b], [p for p in breakpoints if a < p < b]]))
    edges = np.concatenate([np.linspace(lo, hi, panels + 1)[:-1]
                            for lo, hi in itertools.pairwise(cuts)] + [[b]])
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[:-1] + edges[1:])
    return (mid[:, None] + half[:, None] * t).ravel(), (half[:, None] * w).ravel()


def periodic_trapezoid(a: float, b: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The trapezoid rule for (b - a)-periodic integrands: n nodes a + (j + 1/2) L / n."""
    L = b - a
    return a + (np.arange(n) + 0.5) * L / n, np.full(n, L / n)


def tensor(nodes: Sequence[np.ndarray], weights: Sequence[np.ndarray]
           ) -> tuple[np.ndarray, np.ndarray]:
    """Tensor product of 1-D rules: points (Q, k) in C order (last axis fastest), weights (Q,)."""
    points = np.stack([g.ravel() for g in np.meshgrid(*nodes, indexing="ij")], axis=1)
    w = np.ones(1)
    for wi in weights:
        w = np.multiply.outer(w, wi).ravel()
    return points, w


def periodic_axes(domain: Domain) -> tuple[int, ...]:
    """Axes along which ``domain.retract`` wraps theta by the bounding box's width (angles)."""
    box = domain.bounding_box()
    lo, hi = np.asarray(box.lower, dtype=float), np.asarray(box.upper, dtype=float)
    centre = 0.5 * (lo + hi)
    out = []
    for i in range(domain.param_dim):
        moved = centre.copy()
        moved[i] += 0.25 * (hi[i] - lo[i])
        shifted = moved.copy()
        shifted[i] += hi[i] - lo[i]
        back = np.asarray(domain.retract(shifted[None, :].copy()), dtype=float)[0]
        if np.allclose(back, moved, rtol=0, atol=1e-12 * (1 + np.abs(hi - lo).max())):
            out.append(i)
    return tuple(out)


@dataclass
class TensorRule:
    """A tensor rule on the domain's box: 1-D nodes/weights per axis and their product."""

    axis_nodes: list[np.ndarray]
    axis_weights: list[np.ndarray]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(n) for n in self.axis_nodes)

    @property
    def theta(self) -> np.ndarray:
        return tensor(self.axis_nodes, self.axis_weights)[0]

    @property
    def weights(self) -> np.ndarray:
        return tensor(self.axis_nodes, self.axis_weights)[1]


def _per_axis(value: int | Sequence[int], k: int, what: str) -> list[int]:
    values = [value] * k if np.ndim(value) == 0 else list(value)
    if len(values) != k or any(int(v) != v or v < 1 for v in values):
        raise ValueError(f"{what}: expected a positive integer or {k} of them, got {value!r}")
    return [int(v) for v in values]


def box_rule(domain: Domain, n: int | Sequence[int], panels: int | Sequence[int] = 1,
             breakpoints: Sequence[Sequence[float]] | None = None,
             periodic: Sequence[int] | None = None) -> TensorRule:
    """Tensor rule on the bounding box of ``domain``: composite Gauss-Legendre per axis
    (n nodes per panel), the periodic trapezoid (n nodes) on the ``periodic`` axes.

    Raises NotImplementedError if a node lies outside the domain (a domain that does not fill
    its bounding box in theta coordinates, e.g. a disc or a sphere, needs another rule).
    """
    k = domain.param_dim
    ns, ps = _per_axis(n, k, "nodes"), _per_axis(panels, k, "panels")
    periodic = () if periodic is None else tuple(periodic)
    box = domain.bounding_box()
    nodes, weights = [], []
    for i in range(k):
        a, b = float(box.lower[i]), float(box.upper[i])
        if i in periodic:
            t, w = periodic_trapezoid(a, b, ns[i] * ps[i])
        else:
            t, w = gauss_legendre(a, b, ns[i], ps[i], () if breakpoints is None
                                  else breakpoints[i])
        nodes.append(t)
        weights.append(w)
    rule = TensorRule(nodes, weights)
    inside = domain.contains(rule.theta)
    if not np.all(inside):
        raise NotImplementedError(
            f"reference quadrature: {np.count_nonzero(~inside)} of {inside.size} tensor nodes of "
            f"the bounding box lie outside the domain {type(domain).__name__}; the reference "
            f"solutions need a domain that is a box in theta coordinates"
        )
    return rule


def density_breakpoints(density: Density, axis: int) -> list[float]:
    """Coordinates along ``axis`` where rho_0 has a kink or jump (edges of a Uniform)."""
    if isinstance(density, Uniform):
        return [float(density.lower[axis]), float(density.upper[axis])]
    if isinstance(density, GaussianMixture):
        return sorted({p for c in density.components for p in density_breakpoints(c, axis)})
    return []


@dataclass
class RestrictedRule:
    """Weights W_q (summing to 1) of rho_0 restricted to the domain on a tensor rule.

    ``mass`` is the quadrature's int_D rho_0, ``mass_exact`` that of ``Density.mass_in``,
    ``change`` the largest relative change of the checked quantities under the last panel
    doubling of each axis (an error estimate).
    """

    rule: TensorRule
    density_weights: np.ndarray
    mass: float
    mass_exact: float
    panels: tuple[int, ...]
    change: float

    @property
    def theta(self) -> np.ndarray:
        return self.rule.theta

    @property
    def grid_weights(self) -> np.ndarray:
        """W_q reshaped to the tensor grid, shape rule.shape."""
        return self.density_weights.reshape(self.rule.shape)


def _restricted(domain: Domain, density: Density, panels: Sequence[int], n: int
                ) -> tuple[TensorRule, np.ndarray, float]:
    k = domain.param_dim
    rule = box_rule(domain, n, panels, [density_breakpoints(density, i) for i in range(k)])
    theta = rule.theta
    raw = rule.weights * density.pdf(theta)
    mass = float(raw.sum())
    return rule, raw / mass, mass


def restricted_rule(domain: Domain, density: Density,
                    quantities: Callable[[TensorRule, np.ndarray], np.ndarray] | None = None,
                    tol: float = 1e-13, n: int = PANEL_NODES, max_nodes: int = 2_000_000
                    ) -> RestrictedRule:
    """Adaptive tensor rule for rho_0^D (see the module docstring).

    quantities(rule, W (Q,)) -> array: extra integrals that must converge (e.g. the kernel
    matrix). The panels of an axis are doubled while that changes the checked integrals by
    more than tol (relative); once none does, the mass must agree with ``Density.mass_in`` to
    ``MASS_TOL`` (else every axis is refined again: a narrow rho_0 missed by coarse nodes).
    Raises RuntimeError when this would need more than ``max_nodes`` tensor nodes.
    """
    k = domain.param_dim
    mass_exact = float(density.mass_in(domain))
    if not mass_exact > 0:
        raise ValueError("reference quadrature: rho_0 has no mass in the domain")

    def measure(panels: list[int]) -> tuple[np.ndarray, tuple]:
        rule, W, mass = _restricted(domain, density, panels, n)
        theta = rule.theta
        q = [np.array([mass]), W @ theta, W @ theta**2]
        if quantities is not None:
            q.append(np.ravel(quantities(rule, W)))
        return np.concatenate(q), (rule, W, mass)

    def rel(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), np.finfo(float).tiny))

    def too_big(panels: list[int], why: str) -> RuntimeError:
        return RuntimeError(
            f"reference quadrature: rho_0 on the domain not resolved ({why}) within "
            f"{max_nodes} nodes (panels {panels} of {n} Gauss-Legendre nodes)")

    panels = [1] * k
    q, built = measure(panels)
    changes = [np.inf] * k
    while True:
        refined = False
        for i in range(k):
            trial = list(panels)
            trial[i] *= 2
            if np.prod(trial) * n**k > max_nodes:
                raise too_big(panels, f"change {changes[i]:.2e} on axis {i} > tol {tol:g}")
            q_new, built_new = measure(trial)
            changes[i] = rel(q_new, q)
            if changes[i] > tol:
                panels, q, built = trial, q_new, built_new
                refined = True
        if refined:
            continue
        mass = built[2]
        if abs(mass - mass_exact) <= MASS_TOL * mass_exact:
            break
        trial = [2 * p for p in panels]
        if np.prod(trial) * n**k > max_nodes:
            raise too_big(panels, f"quadrature mass {mass:.15g} != mass_in {mass_exact:.15g}")
        panels = trial
        q, built = measure(panels)
    rule, W, mass = built
    return RestrictedRule(rule, W, mass, mass_exact, tuple(panels), float(max(changes)))


def native_rule(density: Density, n: int | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (Q, k) and weights (Q,) summing to 1 of rho_0 itself on R^k (module docstring)."""
    k = density.dim
    ns = _per_axis(n, k, "nodes")
    if isinstance(density, Gaussian):
        rules = [np.polynomial.hermite_e.hermegauss(m) for m in ns]
        nodes = [mu + sd * t for (t, _), mu, sd in zip(rules, density.mean, density.std,
                                                        strict=True)]
        theta, w = tensor(nodes, [w for _, w in rules])
        return theta, w / w.sum()
    if isinstance(density, Uniform):
        parts = [gauss_legendre(a, b, m) for a, b, m in zip(density.lower, density.upper, ns,
                                                           strict=True)]
        theta, w = tensor([p[0] for p in parts], [p[1] for p in parts])
        return theta, w / w.sum()
    if isinstance(density, GaussianMixture):
        thetas, weights = [], []
        for p, component in zip(density.probabilities, density.components, strict=True):
            theta, w = native_rule(component, ns)
            thetas.append(theta)
            weights.append(p * w)
        return np.vstack(thetas), np.concatenate(weights)
    raise NotImplementedError(
        f"native rule: no Gauss rule for {type(density).__name__}; use rule='domain'"
    )


def rqmc_rule(density: Density, n: int, scramble: int) -> tuple[np.ndarray, np.ndarray]:
    """n = 2^m equal-weight RQMC nodes (n, k) of rho_0 (module docstring): theta_q =
    F^-1(u_q) axis by axis, u_q the scrambled Sobol' points of seed ``scramble``."""
    if n < 2 or n & (n - 1):
        raise ValueError(f"rqmc rule: nodes must be a power of 2 (Sobol' balance), got {n}")
    u = qmc.Sobol(density.dim, scramble=True, seed=np.random.default_rng(scramble)).random(n)
    if isinstance(density, Gaussian):
        theta = density.mean + density.std * ndtri(u)
    elif isinstance(density, Uniform):
        theta = density.lower + (density.upper - density.lower) * u
    elif isinstance(density, GaussianVonMises):
        flat = density.mean[:-1] + density.std * ndtri(u[:, :-1])
        z = (density.mean[-1] + TWO_PI * (u[:, -1] - 0.5) if density.kappa == 0 else
             vonmises.ppf(u[:, -1], density.kappa, loc=density.mean[-1]))
        theta = np.column_stack([flat, z])
    else:
        raise NotImplementedError(
            f"rqmc rule: needs rho_0 with independent axes (gaussian, uniform or "
            f"gaussian_von_mises), got "
            f"{type(density).__name__}; use rule='native' or 'domain'")
    return theta, np.full(n, 1.0 / n)
