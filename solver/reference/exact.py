"""Exact solutions of the mean-field PDE  d rho/dt = div(rho grad Psi[rho]) + (1/beta) Laplace rho.

1. Linear unit (``LinearTranslation``): s(x; theta) = theta . x, Sigma = E_mu[x x^T] (= I for
   the usual data), y arbitrary with least-squares coefficient m* = Sigma^{-1} E_mu[x y]:

       grad Psi(theta) = Sigma (m(t) - m*) + lam theta,   m(t) = int theta rho_t(dtheta),

   the same for every theta up to the lam term, so every characteristic obeys
   theta(t) = e^{-lam t} theta(0) + b(t) and the mean solves
   m' = -(Sigma + lam) m + Sigma m*:

       m(t) = m_inf + exp(-(Sigma + lam) t) (m(0) - m_inf),   m_inf = (Sigma + lam)^{-1} Sigma m*,
       rho_t(theta) = e^{k lam t} rho_0(e^{lam t} (theta - b(t))),   b(t) = m(t) - e^{-lam t} m(0)

   (a translation when lam = 0). With noise (finite beta) a Gaussian rho_0 = N(mean, diag std^2)
   stays Gaussian with the same mean path and per-direction variance

       v(t) = std^2 e^{-2 lam t} + (1 - e^{-2 lam t}) / (lam beta)  (std^2 + 2 t / beta if lam = 0).

   Loss L = 1/2 (m - m*)^T Sigma (m - m*) + L_res, L_res = 1/2 E_mu[(y - m* . x)^2];
   MC = tr(Sigma Cov_t); energy E = L + lam/2 (|m|^2 + tr Cov_t) (box regulariser |theta|^2/2).
   These are solutions on R^k: the noiseless ones use rho_0 restricted to the domain (its mean and
   covariance by an adaptive quadrature), the noisy ones the unrestricted Gaussian; a PDE on a
   bounded domain agrees only while the mass near the boundary is negligible.

2. Fixed features (``KernelFlow``): theta = (c, z), every axis but the output weight c frozen,
   s(x; c, z) = c phi(x; z). Then c' = -phi(z)^T W (f - y) - lam c per particle, so on the data
   points (W = diag w_m)

       f' = -K W (f - y) - lam f,
       K[m, m'] = k(x_m, x_m') = int phi(x_m; z) phi(x_m'; z) rho_0^z(dz),

   rho_0^z the z-marginal of rho_0 restricted to the domain; for lam = 0
   f_t = y + exp(-t K W)(f_0 - y). It is solved exactly with the eigen-decomposition
   W^{1/2} K W^{1/2} = V diag(lambda) V^T: with a = V^T W^{1/2} f_0, b = V^T W^{1/2} y,
   phi1(x) = (1 - e^{-x}) / x,

       coef(t) = (a - b) e^{-lam t} t phi1(lambda t)
                 - lam b / (lambda + lam) (t phi1(lam t) - e^{-lam t} t phi1(lambda t)),
       h(t) = W^{1/2} V coef(t) = int_0^t e^{-lam (t - s)} W (f_s - y) ds,
       f_t = e^{-lam t} f_0 - K h(t),   c_t = e^{-lam t} c_0 - phi(z)^T h(t),

   which also gives MC(t) and the energy from the c-moments of rho_0 at each z. The z-integrals
   use the adaptive restricted-density rule of ``rules`` (converged to 1e-13), independent of
   any mesh. Characteristics leave a bounded c-range when |phi(z)^T h(t)| is large: the PDE on a
   box then loses mass and the exact solution (on R in c) no longer applies
   (``KernelFlow.max_shift``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solver.model.density import Gaussian
from solver.model.problem import Problem
from solver.reference.rules import RestrictedRule, TensorRule, restricted_rule


def _times(t) -> np.ndarray:
    t = np.atleast_1d(np.asarray(t, dtype=float))
    if t.ndim != 1 or np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError(f"times: need finite t >= 0, got {t}")
    return t


def _phi1(x: np.ndarray) -> np.ndarray:
    """(1 - e^{-x}) / x, 1 at x = 0."""
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < 1e-8
    safe = np.where(small, 1.0, x)
    return np.where(small, 1.0 - 0.5 * x, -np.expm1(-safe) / safe)


def _box_regulariser(problem: Problem, theta: np.ndarray) -> bool:
    """Whether the domain's regulariser is |theta|^2/2 (checked at the given points)."""
    r = problem.domain.regulariser(theta)
    return bool(np.allclose(r, 0.5 * np.sum(theta**2, axis=1), rtol=1e-13, atol=1e-14))


# --- 1. linear unit --------------------------------------------------------------------------


@dataclass
class LinearTranslation:
    """The exact linear-unit solution (module docstring, part 1)."""

    problem: Problem
    sigma: np.ndarray
    m_star: np.ndarray
    loss_floor: float
    m0: np.ndarray
    cov0: np.ndarray
    mass0: float

    @classmethod
    def from_problem(cls, problem: Problem, tol: float = 1e-13) -> LinearTranslation:
        unit, x, w = problem.unit, problem.data.points, problem.data.weights
        k = problem.param_dim
        if x.shape[1] != k or not np.allclose(unit.values(x, np.eye(k)), x, rtol=0,
                                              atol=1e-14 * (1 + np.abs(x).max())):
            raise ValueError("LinearTranslation: needs the linear unit s(x; theta) = theta . x")
        if not problem.loss.square:
            raise NotImplementedError(f"LinearTranslation: exact for the square loss only, not "
                                      f"{problem.loss.name!r} (grad Psi is then not constant)")
        if problem.frozen:
            raise NotImplementedError("LinearTranslation: frozen axes are not supported")
        sigma = (x * w[:, None]).T @ x
        m_star = np.linalg.solve(sigma, (w * problem.y) @ x)
        floor = 0.5 * float(w @ (problem.y - x @ m_star) ** 2)
        if np.isfinite(problem.beta):
            if not isinstance(problem.initial, Gaussian):
                raise NotImplementedError(
                    "LinearTranslation: with noise (finite beta) rho_0 must be a Gaussian")
            m0 = problem.initial.mean.copy()
            cov0 = np.diag(problem.initial.std**2)
            mass0 = 1.0
        else:
            rr: RestrictedRule = restricted_rule(problem.domain, problem.initial, tol=tol)
            theta, W = rr.theta, rr.density_weights
            m0 = W @ theta
            cov0 = (theta - m0).T @ ((theta - m0) * W[:, None])
            mass0 = rr.mass
        return cls(problem, sigma, m_star, floor, m0, cov0, mass0)

    @property
    def lam(self) -> float:
        return self.problem.lam

    @property
    def m_inf(self) -> np.ndarray:
        k = len(self.m0)
        return np.linalg.solve(self.sigma + self.lam * np.eye(k), self.sigma @ self.m_star)

    def mean(self, t) -> np.ndarray:
        """m(t), shape (T, k)."""
        t = _times(t)
        evals, evecs = np.linalg.eigh(self.sigma)
        d0 = evecs.T @ (self.m0 - self.m_inf)
        decay = np.exp(-np.outer(t, evals + self.lam))
        return self.m_inf + (decay * d0) @ evecs.T

    def shift(self, t) -> np.ndarray:
        """b(t) = m(t) - e^{-lam t} m(0): theta(t) = e^{-lam t} theta(0) + b(t), (T, k)."""
        t = _times(t)
        return self.mean(t) - np.exp(-self.lam * t)[:, None] * self.m0

    def variance(self, t) -> np.ndarray:
        """Per-direction variance growth v(t) - std^2 e^{-2 lam t} of the noise, (T,)."""
        t = _times(t)
        beta = self.problem.beta
        if not np.isfinite(beta):
            return np.zeros_like(t)
        if self.lam == 0:
            return 2.0 * t / beta
        return -np.expm1(-2.0 * self.lam * t) / (self.lam * beta)

    def covariance(self, t) -> np.ndarray:
        """Cov_t = e^{-2 lam t} Cov_0 + v_noise(t) I, (T, k, k)."""
        t = _times(t)
        k = len(self.m0)
        scale = np.exp(-2.0 * self.lam * t)[:, None, None]
        return scale * self.cov0 + self.variance(t)[:, None, None] * np.eye(k)

    def density(self, theta: np.ndarray, t: float) -> np.ndarray:
        """rho_t(theta) for theta (Q, k)."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        (t,) = _times(t)
        mean = self.mean(t)[0]
        if np.isfinite(self.problem.beta):
            var = np.diag(self.covariance(t)[0])
            z = (theta - mean) / np.sqrt(var)
            return np.exp(-0.5 * np.sum(z**2, axis=1)) / np.sqrt(np.prod(2 * np.pi * var))
        k = theta.shape[1]
        back = np.exp(self.lam * t) * (theta - self.shift(t)[0])
        inside = self.problem.domain.contains(back)
        return np.exp(k * self.lam * t) * self.problem.initial.pdf(back) * inside / self.mass0

    def f(self, t) -> np.ndarray:
        """f_t(x_m) = m(t) . x_m, (T, M)."""
        return self.mean(t) @ self.problem.data.points.T

    def loss(self, t) -> np.ndarray:
        """L(t) = 1/2 (m - m*)^T Sigma (m - m*) + L_res, (T,)."""
        d = self.mean(t) - self.m_star
        return 0.5 * np.einsum("ti,ij,tj->t", d, self.sigma, d) + self.loss_floor

    def mc(self, t) -> np.ndarray:
        """MC(t) = tr(Sigma Cov_t), (T,)."""
        return np.einsum("ij,tji->t", self.sigma, self.covariance(t))

    def energy(self, t) -> np.ndarray:
        """E(t) = L + lam/2 (|m|^2 + tr Cov_t) (box regulariser), without the entropy, (T,)."""
        t = _times(t)
        if self.lam == 0:
            return self.loss(t)
        if not _box_regulariser(self.problem, np.vstack([self.m0, self.m0 + 1.0])):
            raise NotImplementedError("LinearTranslation.energy: needs r = |theta|^2/2")
        m = self.mean(t)
        second = np.sum(m**2, axis=1) + np.trace(self.covariance(t), axis1=1, axis2=2)
        return self.loss(t) + 0.5 * self.lam * second

    def free_energy(self, t) -> np.ndarray:
        """E(t) + (1/beta) int rho log rho for the noisy Gaussian solution, (T,)."""
        t = _times(t)
        beta = self.problem.beta
        if not np.isfinite(beta):
            raise ValueError("free_energy: only for finite beta (the entropy of a density)")
        k = len(self.m0)
        logdet = np.linalg.slogdet(self.covariance(t))[1]
        entropy = -0.5 * (k * (1.0 + np.log(2 * np.pi)) + logdet)
        return self.energy(t) + entropy / beta

    def gibbs_mean(self) -> np.ndarray:
        """Mean of the noisy steady state N(m_inf, I / (lam beta)) (lam > 0)."""
        if not self.lam > 0:
            raise ValueError("gibbs_mean: no steady state without confinement (lam = 0)")
        return self.m_inf

    def gibbs_density(self, theta: np.ndarray) -> np.ndarray:
        """rho_inf(theta) = N(m_inf, I / (lam beta)), the t -> inf limit of the noisy solution."""
        if not (self.lam > 0 and np.isfinite(self.problem.beta)):
            raise ValueError("gibbs_density: needs lam > 0 and finite beta")
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        var = 1.0 / (self.lam * self.problem.beta)
        k = theta.shape[1]
        d2 = np.sum((theta - self.m_inf) ** 2, axis=1)
        return np.exp(-0.5 * d2 / var) / (2 * np.pi * var) ** (k / 2)


# --- 2. fixed features ------------------------------------------------------------------------


@dataclass
class KernelFlow:
    """The exact fixed-feature (kernel) flow (module docstring, part 2).

    z_nodes (J, k) are the rule's nodes with c = 1; m0, m1, m2 (J,) the c-moments
    int c^p rho_0^D(dc, z_j) of the restricted density at each z node (quadrature weights
    included); phi (M, J) = s(x_m; c = 1, z_j); kernel (M, M); f0 (M,).
    """

    problem: Problem
    free_axis: int
    z_nodes: np.ndarray
    m0: np.ndarray
    m1: np.ndarray
    m2: np.ndarray
    r_z: np.ndarray
    phi: np.ndarray
    kernel: np.ndarray
    f0: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    quadrature_change: float

    @classmethod
    def from_problem(cls, problem: Problem, tol: float = 1e-13) -> KernelFlow:
        if np.isfinite(problem.beta):
            raise NotImplementedError("KernelFlow: noiseless problems only (beta = inf)")
        if not problem.loss.square:
            raise NotImplementedError(f"KernelFlow: the linear kernel flow is the square loss's, "
                                      f"not {problem.loss.name!r}'s")
        k = problem.param_dim
        free = [i for i in range(k) if i not in problem.frozen]
        if len(free) != 1:
            raise NotImplementedError(
                f"KernelFlow: needs exactly one free axis (the output weight), got {free}")
        (ci,) = free
        x = problem.data.points
        sqrt_w = np.sqrt(problem.data.weights)

        def collapse(theta: np.ndarray, W: np.ndarray, shape: tuple[int, ...]):
            grid = W.reshape(shape)
            c = theta[:, ci].reshape(shape)
            moments = [np.sum(grid * c**p, axis=ci).ravel() for p in range(3)]
            z = np.moveaxis(theta.reshape(*shape, k), ci, 0)[0].reshape(-1, k).copy()
            z[:, ci] = 1.0
            return z, moments

        def kernel_quantities(rule: TensorRule, W: np.ndarray) -> np.ndarray:
            z, (m0, m1, _) = collapse(rule.theta, W, rule.shape)
            phi = problem.unit.values(x, z)
            return np.concatenate([((phi * m0) @ phi.T).ravel(), phi @ m1])

        rr = restricted_rule(problem.domain, problem.initial, kernel_quantities, tol=tol)
        shape = rr.rule.shape
        z, (m0, m1, m2) = collapse(rr.theta, rr.density_weights, shape)
        phi = problem.unit.values(x, z)
        # s must be linear in c: s(c) = c s(1)
        for c in (0.0, -1.7):
            probe = z.copy()
            probe[:, ci] = c
            if not np.allclose(problem.unit.values(x, probe), c * phi, rtol=1e-13,
                               atol=1e-14 * (1 + np.abs(phi).max())):
                raise ValueError(
                    f"KernelFlow: the unit {problem.unit.name!r} is not linear in the free "
                    f"axis {ci}")
        # regulariser r = c^2/2 + r_z(z) along the free axis (checked where lam matters)
        zc0 = z.copy()
        zc0[:, ci] = 0.0
        r_z = problem.domain.regulariser(zc0)
        if problem.lam > 0:
            probe = z.copy()
            probe[:, ci] = 1.3
            grad = problem.domain.regulariser_gradient(probe)[:, ci]
            if not (np.allclose(problem.domain.regulariser(probe), r_z + 0.5 * 1.3**2,
                                rtol=1e-13, atol=1e-14) and np.allclose(grad, 1.3, rtol=1e-13)):
                raise NotImplementedError(
                    "KernelFlow: with lam > 0 the regulariser must be c^2/2 + r(z)")
        kernel = (phi * m0) @ phi.T
        kernel = 0.5 * (kernel + kernel.T)
        f0 = phi @ m1
        A = sqrt_w[:, None] * kernel * sqrt_w[None, :]
        lam_k, V = np.linalg.eigh(0.5 * (A + A.T))
        return cls(problem, ci, z, m0, m1, m2, r_z, phi, kernel, f0,
                   np.clip(lam_k, 0.0, None), V, rr.change)

    @property
    def lam(self) -> float:
        return self.problem.lam

    def _h(self, t: np.ndarray) -> np.ndarray:
        """h(t) = int_0^t e^{-lam (t - s)} W (f_s - y) ds, (T, M)."""
        sqrt_w = np.sqrt(self.problem.data.weights)
        V, lk, lam = self.eigenvectors, self.eigenvalues, self.lam
        a = V.T @ (sqrt_w * self.f0)
        b = V.T @ (sqrt_w * self.problem.y)
        decay = np.exp(-lam * t)[:, None]
        tphi = t[:, None] * _phi1(np.outer(t, lk))
        coef = (a - b) * decay * tphi
        if lam > 0:
            coef -= lam * b / (lk + lam) * (t[:, None] * _phi1(lam * t)[:, None] - decay * tphi)
        return (coef @ V.T) * sqrt_w

    def f(self, t) -> np.ndarray:
        """f_t(x_m), (T, M)."""
        t = _times(t)
        return np.exp(-self.lam * t)[:, None] * self.f0 - self._h(t) @ self.kernel

    def loss(self, t) -> np.ndarray:
        """L(t) = 1/2 sum_m w_m (f_t(x_m) - y_m)^2, (T,)."""
        r = self.f(t) - self.problem.y
        return 0.5 * (r**2) @ self.problem.data.weights

    def shift(self, t) -> np.ndarray:
        """g_t(z_j) = phi(z_j)^T h(t): c_t = e^{-lam t} c_0 - g_t(z), (T, J)."""
        return self._h(_times(t)) @ self.phi

    def max_shift(self, t) -> np.ndarray:
        """max over the z nodes carrying mass of |g_t(z)|, (T,): how far c moves."""
        g = self.shift(t)
        carry = self.m0 > 1e-14 * self.m0.max()
        return np.abs(g[:, carry]).max(axis=1)

    def _c_second_moment(self, t: np.ndarray) -> np.ndarray:
        """int c_t^2 rho at each z node: e^{-2 lam t} m2 - 2 e^{-lam t} m1 g + m0 g^2, (T, J)."""
        g = self.shift(t)
        e = np.exp(-self.lam * t)[:, None]
        return e**2 * self.m2 - 2.0 * e * self.m1 * g + self.m0 * g**2

    def mc(self, t) -> np.ndarray:
        """MC(t) = sum_m w_m (int s^2 rho_t - f_t^2), (T,)."""
        t = _times(t)
        second = self._c_second_moment(t) @ (self.phi**2).T
        return (second - self.f(t) ** 2) @ self.problem.data.weights

    def energy(self, t) -> np.ndarray:
        """E(t) = L + lam int (c^2/2 + r_z(z)) rho_t, (T,)."""
        t = _times(t)
        if self.lam == 0:
            return self.loss(t)
        pen = 0.5 * self._c_second_moment(t).sum(axis=1) + self.m0 @ self.r_z
        return self.loss(t) + self.lam * pen
