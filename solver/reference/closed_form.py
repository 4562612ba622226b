"""Closed-form F, K, E for 1-D Gaussian RBF units, Gaussian data and a Gaussian-mixture target.

Units s(x; c, z) = c g(x; z, w), g(x; m, v) = exp(-(x - m)^2 / (2 v^2)), data x ~ N(0, s^2),
target y(x) = sum_j a_j g(x; m_j, v_j). Every expectation is then a Gaussian integral: with

    I(m1, v1; m2, v2) = E_x[g(x; m1, v1) g(x; m2, v2)]
        = E_x[exp(-lam x^2 / 2 + b x - q)],   lam = 1/v1^2 + 1/v2^2,
          b = m1/v1^2 + m2/v2^2,  q = (m1^2/v1^2 + m2^2/v2^2) / 2,
        = (1 + lam s^2)^(-1/2) exp(b^2 s^2 / (2 (1 + lam s^2)) - q)

(complete the square in int exp(-x^2 / (2 s^2) - lam x^2 / 2 + b x) dx / (sqrt(2 pi) s)), and
d/dm2 log I = (b s^2 / (1 + lam s^2) - m2) / v2^2 (b depends on m2 through m2/v2^2, q through
m2^2 / (2 v2^2)). Hence, for theta = (c, z):

    F(theta) = E[y s] = c sum_j a_j I(m_j, v_j; z, w),
    K(theta, theta') = E[s s'] = c c' I(z, w; z', w),
    E_mu[y^2] = sum_jk a_j a_k I(m_j, v_j; m_k, v_k),
    E[rho] = E_mu[y^2] / 2 - int F rho + 1/2 int int K rho rho,
    Psi(theta; rho) = -F(theta) + int K(theta, theta') rho(dtheta'),
    MC[rho] = int K(theta, theta) rho(dtheta) - int int K rho rho,

and grad Psi from d/dc (everything is linear in c) and d/dz log I above. None of it uses a data
quadrature: it checks the solver's M x Q products (Gauss-Hermite in x) independently.
``lagrangian_energy`` moves weighted nodes of rho_0 along d theta/dt = -grad Psi with this
closed-form velocity (RK4), the beta = inf reference E(t) with no data quadrature at all.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from solver.model.ode import rk4_step

Array = np.ndarray


def overlap(m1: Array, v1: Array | float, m2: Array, v2: Array | float, s: float
            ) -> tuple[Array, Array]:
    """(I, d log I / d m2) of I(m1, v1; m2, v2) = E_{x ~ N(0, s^2)}[g(x; m1, v1) g(x; m2, v2)],
    broadcasting over the arguments (module docstring)."""
    lam = 1.0 / np.square(v1) + 1.0 / np.square(v2)
    b = m1 / np.square(v1) + m2 / np.square(v2)
    q = 0.5 * (np.square(m1) / np.square(v1) + np.square(m2) / np.square(v2))
    denom = 1.0 + lam * s**2
    value = np.exp(b**2 * s**2 / (2.0 * denom) - q) / np.sqrt(denom)
    return value, (b * s**2 / denom - m2) / np.square(v2)


@dataclass(frozen=True)
class GaussianMixtureRBF:
    """RBF width w, data std s, target sum_j a_j exp(-(x - m_j)^2 / (2 v_j^2))."""

    width: float
    data_std: float
    amplitudes: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]

    def __post_init__(self) -> None:
        for name in ("width", "data_std"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"GaussianMixtureRBF: {name} must be a finite number > 0, "
                                 f"got {value!r}")
        a, m, v = (np.asarray(getattr(self, k), dtype=float).ravel()
                   for k in ("amplitudes", "means", "stds"))
        if not (a.size == m.size == v.size >= 1) or not np.all(np.isfinite(np.r_[a, m, v])):
            raise ValueError("GaussianMixtureRBF: amplitudes, means and stds need the same "
                             "number (>= 1) of finite entries")
        if np.any(v <= 0):
            raise ValueError(f"GaussianMixtureRBF: stds must be > 0, got {list(v)}")
        for key, arr in (("amplitudes", a), ("means", m), ("stds", v)):
            object.__setattr__(self, key, tuple(arr.tolist()))

    # -- the target ---------------------------------------------------------------------
    def target(self, x: Array) -> Array:
        """y(x) for x (M,) or (M, 1) -> (M,)."""
        x = np.asarray(x, dtype=float).reshape(-1, 1)
        a, m, v = (np.asarray(t) for t in (self.amplitudes, self.means, self.stds))
        return np.exp(-((x - m) ** 2) / (2 * v**2)) @ a

    def expression(self) -> str:
        """y as an expression in x (for solver.model.targets.ExpressionTarget)."""
        return " + ".join(f"({a!r})*exp(-(x - ({m!r}))**2/(2*({v!r})**2))"
                          for a, m, v in zip(self.amplitudes, self.means, self.stds, strict=True))

    def target_second_moment(self) -> float:
        """E_mu[y^2] = sum_jk a_j a_k I(m_j, v_j; m_k, v_k)."""
        a, m, v = (np.asarray(t) for t in (self.amplitudes, self.means, self.stds))
        value, _ = overlap(m[:, None], v[:, None], m[None, :], v[None, :], self.data_std)
        return float(a @ value @ a)

    # -- F and K --------------------------------------------------------------------------
    def _target_overlaps(self, z: Array) -> tuple[Array, Array]:
        """(sum_j a_j I(m_j, v_j; z, w), its z-derivative), each (Q,)."""
        a, m, v = (np.asarray(t) for t in (self.amplitudes, self.means, self.stds))
        value, dlog = overlap(m[None, :], v[None, :], z[:, None], self.width, self.data_std)
        return value @ a, (value * dlog) @ a

    def F(self, theta: Array) -> Array:
        """F(c, z) = E_mu[y s(.; c, z)], theta (Q, 2) -> (Q,)."""
        theta = _pairs(theta)
        return theta[:, 0] * self._target_overlaps(theta[:, 1])[0]

    def K(self, theta: Array, other: Array) -> Array:
        """K(theta_p, other_q) = E_mu[s(.; theta_p) s(.; other_q)] -> (P, Q)."""
        theta, other = _pairs(theta), _pairs(other)
        value, _ = overlap(theta[:, 1, None], self.width, other[None, :, 1], self.width,
                           self.data_std)
        return theta[:, 0, None] * value * other[None, :, 0]

    # -- functionals of rho = sum_q W_q delta(theta_q) --------------------------------------
    def _double_integral(self, theta: Array, W: Array) -> float:
        """sum_pq W_p W_q K(theta_p, theta_q) = m^T I(z_k, w; z_l, w) m over the distinct z
        values z_k, m_k = sum_{q: z_q = z_k} W_q c_q (K = c c' I(z, z'): exact, and small
        for a mesh's points, which share few z values)."""
        zs, index = np.unique(theta[:, 1], return_inverse=True)
        m = np.bincount(index, W * theta[:, 0], len(zs))
        value, _ = overlap(zs[:, None], self.width, zs[None, :], self.width, self.data_std)
        return float(m @ value @ m)

    def energy(self, theta: Array, weights: Array) -> float:
        """E = E_mu[y^2]/2 - sum_q W_q F(theta_q) + 1/2 sum_pq W_p W_q K(theta_p, theta_q)."""
        theta, W = _pairs(theta), np.asarray(weights, dtype=float)
        return float(0.5 * self.target_second_moment() - W @ self.F(theta)
                     + 0.5 * self._double_integral(theta, W))

    def mc(self, theta: Array, weights: Array) -> float:
        """MC = sum_q W_q K(theta_q, theta_q) - sum_pq W_p W_q K(theta_p, theta_q)."""
        theta, W = _pairs(theta), np.asarray(weights, dtype=float)
        diagonal = theta[:, 0] ** 2 * overlap(theta[:, 1], self.width, theta[:, 1], self.width,
                                              self.data_std)[0]
        return float(W @ diagonal - self._double_integral(theta, W))

    def _unit_overlaps(self, z: Array, other: Array) -> tuple[Array, float, float]:
        """(I(z_p, w; z'_q, w) (P, Q), r, A): with D = 1 + 2 s^2 / w^2, r = s^2 / (w^2 D) and
        kappa = r / (2 w^2), I = D^(-1/2) exp(g(z) + g(z') + 2 kappa z z'),
        g(z) = (kappa - 1 / (2 w^2)) z^2: one exp per entry; d/dz log I = (r (z + z') - z) / w^2."""
        w2, s2 = self.width**2, self.data_std**2
        D = 1.0 + 2.0 * s2 / w2
        r = s2 / (w2 * D)
        kappa = r / (2.0 * w2)
        g = kappa - 0.5 / w2
        value = np.outer(2.0 * kappa * z, other)  # in place: one (P, Q) array in all
        value += (g * z**2 - 0.5 * np.log(D))[:, None]
        value += (g * other**2)[None, :]
        return np.exp(value, out=value), r, w2

    def potential_gradient(self, theta: Array, nodes: Array, weights: Array) -> Array:
        """grad Psi(theta_p; rho), rho = sum_q W_q delta(nodes_q), -> (P, 2):
        d/dc Psi = -F/c + sum_q W_q c_q I_pq,
        d/dz Psi = -dF/dz + c sum_q W_q c_q I_pq (r (z_p + z_q) - z_p) / w^2."""
        theta, nodes = _pairs(theta), _pairs(nodes)
        W = np.asarray(weights, dtype=float)
        c, z = theta[:, 0], theta[:, 1]
        t_value, t_dz = self._target_overlaps(z)
        value, r, w2 = self._unit_overlaps(z, nodes[:, 1])
        cw = nodes[:, 0] * W
        k_cw, k_cwz = value @ cw, value @ (cw * nodes[:, 1])
        grad_c = -t_value + k_cw
        grad_z = c * (-t_dz + ((r - 1.0) * z * k_cw + r * k_cwz) / w2)
        return np.column_stack([grad_c, grad_z])


def _pairs(theta: Array) -> Array:
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    if theta.ndim != 2 or theta.shape[1] != 2:
        raise ValueError(f"theta must have shape (Q, 2) (rows c, z), got {theta.shape}")
    return theta


def lagrangian_energy(model: GaussianMixtureRBF, theta0: Array, weights: Array,
                      times: Sequence[float], dt: float = 0.01) -> tuple[Array, Array, Array]:
    """E(t) and MC(t) at ``times`` (from 0) of rho_t = sum_q W_q delta(theta_q(t)),
    d theta_q/dt = -grad Psi(theta_q; rho_t) with the closed-form gradient (RK4, steps <= dt);
    returns (energy, mc, final nodes)."""
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or times[0] != 0 or np.any(np.diff(times) <= 0):
        raise ValueError("times: need increasing output times starting at 0")
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt: need a finite step > 0, got {dt}")
    theta, W = _pairs(theta0).copy(), np.asarray(weights, dtype=float)

    def rhs(th: Array) -> Array:
        return -model.potential_gradient(th, th, W)

    energy, mc = [model.energy(theta, W)], [model.mc(theta, W)]
    for t0, t1 in itertools.pairwise(times):
        n = max(1, int(np.ceil((t1 - t0) / dt - 1e-9)))
        h = (t1 - t0) / n
        for _ in range(n):
            theta = rk4_step(rhs, theta, h)
        energy.append(model.energy(theta, W))
        mc.append(model.mc(theta, W))
    return np.array(energy), np.array(mc), theta
