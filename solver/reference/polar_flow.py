"""Exact solution on curved domains: the flow towards a pole under a first-harmonic potential.

Three problems share one solution (``polar_flow_problem``):

- circle, theta = z: s(x; z) = cos(x - z), data the circle lattice (M >= 3 angles,
  sum_m w_m cos x_m cos(x_m - z) = cos(z) / 2), y = Y cos x;
- cylinder, theta = (c, z): the same unit (c is carried along, its velocity is 0), so
  rho_t(c, z) = N(c; 0, std^2) rho_t^z(z);
- sphere S^2, theta a unit vector: s(x; theta) = theta . x, data the product rule of the
  uniform sphere (sum_m w_m x_m x_m^T = I/3), y = Y x_3.

With rho_0 even in the angle z (circle, cylinder) or symmetric about the axis e_3 (sphere)
the potential is Psi = (m - Y) cos(phi) / D, phi the angle from the pole (z, or the polar
angle), m(t) = int cos(phi) rho_t and D = 2 (circle) or 3 (sphere). Every point moves by
phi' = -(Y - m) sin(phi) / D, so tan(phi_t / 2) = q tan(phi_0 / 2) with q = e^{-sigma},

    sigma' = (Y - m(sigma)) / D,   m(sigma) = int (C - q^2 S) / (C + q^2 S) rho_0,
    C = cos^2(phi_0 / 2), S = sin^2(phi_0 / 2),

one scalar ODE (DOP853 at rtol 1e-13) with m(sigma) a fixed quadrature of rho_0 (the
periodic trapezoid in z, Gauss-Legendre in cos(phi_0); both spectrally accurate for these
smooth integrands, converged to round-off at the default nodes). Then

    E(t) = (m - Y)^2 / (2 D),
    rho_t(phi) = rho_0(phi_0) q / (q^2 cos^2(phi/2) + sin^2(phi/2))     (circle, in z),
    rho_t(theta) = rho_0(theta_0) 4 q^2 / B^2,  B = q^2 (1 + x) + (1 - x)  (sphere, x = cos phi),

the Jacobians of phi_0 -> phi (in z) and of cos(phi_0) -> cos(phi) (the azimuth is kept).
For Y < 1 the density concentrates about the pole towards a smooth limit (q -> a constant),
for every rho_0 that charges the whole angle: the flow sees the period of the angle and the
curvature of the sphere, the two things polygonal meshes get wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.integrate import solve_ivp
from scipy.special import roots_legendre

from solver.model import density, quadrature, targets, units
from solver.model.domain import Circle, Cylinder, Domain, Sphere
from solver.model.problem import Problem


def _cos_unit(param_dim: int) -> units.CallableUnit:
    """s(x; theta) = cos(x - z), z = theta[-1] (a cylinder's c is carried along)."""

    def value(x, theta):
        return np.cos(x[:, :1] - theta[None, :, -1])

    def gradient(x, theta):
        out = np.zeros((len(x), len(theta), param_dim))
        out[:, :, -1] = np.sin(x[:, :1] - theta[None, :, -1])
        return out

    return units.CallableUnit(value, gradient, param_dim, 1, name="cos")


def polar_flow_problem(domain: Domain, target: float = 0.8, kappa: float = 0.0,
                       std: float = 0.5, t_final: float = 2.0, points: int = 16) -> Problem:
    """The problem of the module docstring on a Circle, Cylinder or Sphere(3) domain;
    rho_0 von Mises with concentration ``kappa`` about the pole (0: uniform in the angle)."""
    if isinstance(domain, Sphere):
        initial = (density.UniformSphere(3) if kappa == 0
                   else density.VonMisesFisher([0.0, 0.0, 1.0], kappa))
        return Problem(units.LinearUnit(3), quadrature.sphere_product(points // 4 or 1),
                       targets.ExpressionTarget(f"{target!r} * x2", 3), domain, initial,
                       t_final=t_final, name="polar flow on the sphere")
    if isinstance(domain, Circle | Cylinder):
        k = domain.param_dim
        initial = density.GaussianVonMises([0.0] * k, [std] * (k - 1), kappa)
        return Problem(_cos_unit(k), quadrature.circle_lattice(points),
                       targets.ExpressionTarget(f"{target!r} * cos(x)", 1), domain, initial,
                       t_final=t_final, name=f"polar flow on the {domain.kind}")
    raise ValueError(f"polar flow: no exact solution on the {domain.describe()}")


@dataclass(frozen=True)
class PolarFlow:
    """The exact solution of ``polar_flow_problem(domain, target, kappa, std)``."""

    domain: Domain
    target: float = 0.8
    kappa: float = 0.0
    std: float = 0.5
    nodes: int = 4096

    @property
    def _sphere(self) -> bool:
        return isinstance(self.domain, Sphere)

    @property
    def dim_factor(self) -> float:
        """D: 2 on the circle (sum w cos^2 = 1/2), 3 on the sphere (E x_3^2 = 1/3)."""
        return 3.0 if self._sphere else 2.0

    @cached_property
    def _angle_rule(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """C, S at the nodes of phi_0 and the weights of the law of phi_0 (summing to 1)."""
        if self._sphere:
            x0, w = roots_legendre(self.nodes)
            w = w * np.exp(self.kappa * (x0 - 1))
            return (1 + x0) / 2, (1 - x0) / 2, w / w.sum()
        z0 = -np.pi + 2 * np.pi * (np.arange(self.nodes) + 0.5) / self.nodes
        w = np.exp(self.kappa * (np.cos(z0) - 1))
        return np.cos(z0 / 2) ** 2, np.sin(z0 / 2) ** 2, w / w.sum()

    def mean_cos(self, sigma: float) -> float:
        """m(sigma) = E cos(phi_t) when tan(phi_t/2) = e^{-sigma} tan(phi_0/2)."""
        c, s, w = self._angle_rule
        q2 = np.exp(-2 * sigma)
        return float(w @ ((c - q2 * s) / (c + q2 * s)))

    def sigma(self, times) -> np.ndarray:
        """sigma(t) at the given times (increasing, starting at or after 0)."""
        times = np.atleast_1d(np.asarray(times, dtype=float))
        rate = 1.0 / self.dim_factor
        sol = solve_ivp(lambda t, s: [(self.target - self.mean_cos(s[0])) * rate],
                        (0.0, float(times.max(initial=0.0))), [0.0], method="DOP853",
                        t_eval=times, rtol=1e-13, atol=1e-15)
        return sol.y[0]

    def energy(self, times) -> np.ndarray:
        """E(t) = (m(t) - Y)^2 / (2 D)."""
        m = np.array([self.mean_cos(s) for s in self.sigma(times)])
        return (m - self.target) ** 2 / (2 * self.dim_factor)

    def density(self, theta: np.ndarray, t: float) -> np.ndarray:
        """rho_t at the points theta (Q, k) of the domain's chart."""
        theta = np.asarray(theta, dtype=float)
        q = float(np.exp(-self.sigma([t])[0])) if t > 0 else 1.0
        if self._sphere:
            x = theta[:, 2] / np.linalg.norm(theta, axis=1)
            b = q**2 * (1 + x) + (1 - x)
            x0 = (q**2 * (1 + x) - (1 - x)) / b
            rho0 = (density.UniformSphere(3).pdf(theta) if self.kappa == 0 else
                    density.VonMisesFisher([0.0, 0.0, 1.0], self.kappa).pdf(
                        np.column_stack([np.sqrt(1 - x0**2), np.zeros_like(x0), x0])))
            return rho0 * 4 * q**2 / b**2
        z = theta[:, -1]
        z0 = 2 * np.arctan2(np.sin(z / 2), q * np.cos(z / 2))
        k = self.domain.param_dim
        rho0 = density.GaussianVonMises([0.0] * k, [self.std] * (k - 1), self.kappa).pdf(
            np.column_stack([theta[:, :-1], z0]))
        return rho0 * q / (q**2 * np.cos(z / 2) ** 2 + np.sin(z / 2) ** 2)
