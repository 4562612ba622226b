"""The noisy steady state: the self-consistent Gibbs measure, independent of any mesh.

For finite beta the stationary solution of d rho/dt = div(rho grad Psi[rho]) + (1/beta) Laplace rho
on a bounded domain (no-flux boundary) is

    rho_inf(theta) = exp(-beta Psi(theta; rho_inf)) / Z,   Z = int_D exp(-beta Psi(theta; rho_inf)),
    Psi(theta; rho) = sum_m w_m (f_rho(x_m) - y_m) s(x_m; theta) + lam r(theta),

the unique minimiser of the (convex) free energy F = E + (1/beta) int rho log rho. Psi depends
on rho only through f = f_rho at the data points, so the unknown is f in R^M and rho is the
Gibbs density G_f = exp(-beta Psi(.; f)) / Z(f). The equation f = S G_f (the network output of
G_f) is solved by Newton's method

    (I + beta C W) delta = S G_f - f,   C[m, m'] = Cov_{G_f}(s(x_m; .), s(x_m'; .)),  W = diag w,

with a backtracking line search on the concave dual function
    D(f) = -sum_m w_m (f_m - y_m) y_m - 1/2 sum_m w_m (f_m - y_m)^2 - (1/beta) log Z(f),
whose gradient is W (S G_f - f) and whose maximiser is the fixed point (F[rho_inf] = D(f_inf)).
Newton steps are ascent directions of D, so the iteration converges from any start.

Theta is discretised by a tensor rule on the domain's box (``rules.box_rule``): composite
Gauss-Legendre per axis, the periodic trapezoid on angle axes (detected through
``Domain.retract``). A domain that is not a box in theta coordinates (disc, sphere) is not
supported. Frozen axes are not supported (the noise acts on every axis).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from solver.model import functionals
from solver.model.problem import Problem
from solver.reference.rules import TensorRule, box_rule, periodic_axes


@dataclass
class GibbsState:
    """The converged Gibbs measure on a tensor rule.

    theta (Q, k), weights (Q,) the rule; density (Q,) the values of rho_inf at theta (so
    sum_q weights_q density_q = 1); f (M,) = f_{rho_inf}(x_m) = sum_q W_q rho_q s(x_m; theta_q);
    log_z = log Z; free_energy F = L + lam int r rho + (1/beta) int rho log rho (quadrature);
    f_potential the f in Psi that gave ``density`` (rho = G_{f_potential}) and ``log_z``;
    residual = max_m |f_m - f_potential_m|, the fixed-point residual;
    density_residual = max_q |rho_q - G_f(theta_q)| / max_q rho_q, rho against the Gibbs density
    of its own output f.
    """

    problem: Problem
    theta: np.ndarray
    weights: np.ndarray
    density: np.ndarray
    f: np.ndarray
    log_z: float
    free_energy: float
    energy: float
    residual: float
    density_residual: float
    iterations: int
    periodic: tuple[int, ...]
    f_potential: np.ndarray

    def density_at(self, theta: np.ndarray) -> np.ndarray:
        """rho_inf(theta) = exp(-beta Psi(theta; f) - log Z) at arbitrary points (0 outside).

        Uses f_potential, so at the rule's nodes it returns ``density`` exactly.
        """
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        psi = functionals.potential(self.problem, theta, self.f_potential)
        out = np.exp(-self.problem.beta * psi - self.log_z)
        return np.where(self.problem.domain.contains(theta), out, 0.0)

    @property
    def loss(self) -> float:
        return functionals.loss(self.problem, self.f)


def free_energy_of(problem: Problem, theta: np.ndarray, weights: np.ndarray,
                   density: np.ndarray) -> float:
    """F = L(f_rho) + lam int r rho + (1/beta) int rho log rho for a density on a rule."""
    W = weights * density
    f = functionals.network_output(problem, theta, W)
    pos = density > 0
    entropy = float(W[pos] @ np.log(density[pos]))
    return functionals.energy(problem, f, theta, W) + entropy / problem.beta


class _Gibbs:
    """Psi, log Z and moments of G_f on a fixed rule (S formed once)."""

    def __init__(self, problem: Problem, theta: np.ndarray, weights: np.ndarray):
        self.problem = problem
        self.S = problem.unit.values(problem.data.points, theta)
        self.reg = problem.lam * problem.domain.regulariser(theta)
        self.log_w = np.log(weights)
        self.w = problem.data.weights
        self.beta = problem.beta

    def log_density(self, f: np.ndarray) -> tuple[np.ndarray, float]:
        """log G_f at the nodes and log Z."""
        psi = (self.w * (f - self.problem.y)) @ self.S + self.reg
        a = -self.beta * psi
        log_z = float(logsumexp(a + self.log_w))
        return a - log_z, log_z

    def dual(self, f: np.ndarray, log_z: float) -> float:
        v = f - self.problem.y
        return float(-self.w @ (v * self.problem.y) - 0.5 * self.w @ v**2 - log_z / self.beta)


def gibbs_state(problem: Problem, nodes: int | Sequence[int] = 64,
                panels: int | Sequence[int] = 1, tol: float = 1e-12, max_iter: int = 100,
                f_start: np.ndarray | None = None) -> GibbsState:
    """Solve rho = exp(-beta Psi(.; rho)) / Z on a tensor rule (module docstring).

    nodes: per panel and axis (Gauss-Legendre) or per axis (trapezoid on angles); panels: GL
    panels per axis. Stops when the fixed-point residual max_m |f - S G_f| < tol; raises
    RuntimeError if max_iter Newton steps do not get there.
    """
    if not np.isfinite(problem.beta):
        raise ValueError("gibbs_state: the Gibbs measure needs finite beta")
    if problem.frozen:
        raise NotImplementedError("gibbs_state: frozen axes are not supported")
    if not problem.loss.square:
        raise NotImplementedError(f"gibbs_state: the Newton solve and its dual function are "
                                  f"for the square loss, not {problem.loss.name!r}")
    periodic = periodic_axes(problem.domain)
    rule: TensorRule = box_rule(problem.domain, nodes, panels, periodic=periodic)
    theta, weights = rule.theta, rule.weights
    g = _Gibbs(problem, theta, weights)
    w, beta = problem.data.weights, problem.beta

    f = np.array(problem.y if f_start is None else f_start, dtype=float)
    log_rho, log_z = g.log_density(f)
    rho = np.exp(log_rho)
    out = g.S @ (weights * rho)
    residual = float(np.max(np.abs(out - f)))
    it = 0
    while residual >= tol:
        if it == max_iter:
            raise RuntimeError(
                f"gibbs_state: no convergence in {max_iter} Newton steps (residual "
                f"{residual:.2e} >= {tol:.1e}); refine nodes or raise max_iter")
        it += 1
        Wr = weights * rho
        C = (g.S * Wr) @ g.S.T - np.outer(out, out)
        J = np.eye(len(f)) + beta * C * w[None, :]
        step = np.linalg.solve(J, out - f)
        slope = float((w * (out - f)) @ step)
        d0 = g.dual(f, log_z)
        alpha = 1.0
        while True:
            trial = f + alpha * step
            t_log_rho, t_log_z = g.log_density(trial)
            t_rho = np.exp(t_log_rho)
            t_out = g.S @ (weights * t_rho)
            t_res = float(np.max(np.abs(t_out - trial)))
            armijo = g.dual(trial, t_log_z) >= d0 + 1e-4 * alpha * slope
            if armijo or t_res < 0.5 * residual or alpha < 1e-10:
                break
            alpha *= 0.5
        f, log_rho, log_z, rho, out, residual = trial, t_log_rho, t_log_z, t_rho, t_out, t_res

    # rho = G_{f_potential}; f = S (W rho) is its own output; the residuals compare the two
    f_potential, f = f, out
    expected = np.exp(g.log_density(f)[0])
    density_residual = float(np.max(np.abs(rho - expected)) / np.max(rho))
    F = free_energy_of(problem, theta, weights, rho)
    E = functionals.energy(problem, f, theta, weights * rho)
    return GibbsState(problem, theta, weights, rho, f, log_z, F, E, residual, density_residual,
                      it, periodic, f_potential)
