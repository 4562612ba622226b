"""Lagrangian (characteristics) solution of the noiseless mean-field PDE, beta = inf.

    d rho/dt = div(rho grad Psi[rho])   is solved by   rho_t = sum_q W_q delta(theta_q(t)),

    d theta_q/dt = -P grad Psi(theta_q; rho_t),
    Psi(theta; rho) = sum_m w_m d1 l(f_rho(x_m), y_m) s(x_m; theta) + lam r(theta),
    f_rho(x_m) = sum_q W_q s(x_m; theta_q),

(P = ``domain.project_velocity``; frozen axes get zero velocity) starting from weighted
quadrature nodes (theta_q(0), W_q) of rho_0. Every functional that is an integral of a smooth
function against rho_t (f_t, E, L, MC, the dissipation int |grad Psi|^2 rho) is then a quadrature
of rho_0 pulled back by the flow map, so the error is that of the rule applied to
g o Phi_t plus the time integrator's: spectrally small while the flow map Phi_t stays smooth,
degrading when characteristics concentrate (a shock-like, near-singular rho_t) or leave the
domain (``mass_outside``; the PDE on a bounded domain then loses mass through the boundary,
the Lagrangian solution does not).

Initial rules (``rule``):
- "native": tensor Gauss-Hermite for a Gaussian (mapped to its mean and std), Gauss-Legendre
  for a Uniform, the union of the components' rules for a GaussianMixture, ``nodes`` per axis.
  Nodes outside the domain are dropped and the rest renormalised; the dropped weight is
  always reported (``initial_mass_dropped``) and warned about above ``DROP_WARNING``. The
  rule represents rho_0 on R^k, whereas the PDE uses rho_0 restricted to the domain: they
  differ by ``1 - mass_in(domain)`` (``initial_mass_cut``).
- "domain": rho_0 restricted to the domain exactly (``rules.restricted_rule``, composite
  Gauss-Legendre on the domain's box, converged to 1e-13; ``nodes`` is ignored).
- "grid": rho_0 restricted to the domain on a composite Gauss-Legendre grid of the domain's
  box with ``nodes`` panels of 4 nodes per axis (the periodic trapezoid on angles), weights
  rho_0(theta_q) w_q normalised: refinable without bound, for checking the other rules.
- "sphere": for a sphere domain (unit vectors in R^2 or R^3) and a density on it, the product
  rule (composite Gauss-Legendre in cos(polar angle) x trapezoid in azimuth, about the north
  pole) weighted by the density, ``nodes`` = Gauss-Legendre nodes in the polar direction.
- "rqmc": ``nodes`` (a power of 2) equal-weight scrambled Sobol' nodes of rho_0 (seed
  ``scramble``; ``rules.rqmc_rule``), those outside the domain dropped as for "native". One
  scramble is one randomised estimate; ``solver.reference.rqmc`` averages independent ones
  into an estimate with a confidence interval.

Integrators: "rk4" classical Runge-Kutta with a fixed step <= dt, retracting onto the domain's
chart (``domain.retract``) after each step; "dop853" scipy's adaptive 8th-order Dormand-Prince
with tolerances rtol, atol (retracting only at the output times).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.integrate import solve_ivp

from solver.model import functionals
from solver.model.ode import rk4_step
from solver.model.problem import Problem
from solver.reference.rules import (
    box_rule,
    gauss_legendre,
    native_rule,
    periodic_axes,
    periodic_trapezoid,
    restricted_rule,
    rqmc_rule,
    tensor,
)

#: Dropped initial weight above which ``initial_nodes`` warns (it is always recorded).
DROP_WARNING = 1e-13


@dataclass
class LagrangianResult:
    """Outputs at ``times``: f (T, M) at the data points, energy E = L + lam int r rho, loss L
    (of ``problem.loss``), MC resampling variance, dissipation int |P grad Psi|^2 rho = -dE/dt,
    and the weight of the nodes outside the domain; the final nodes ``theta`` with their
    weights; ``mc_curvature`` MC_H(t), the resampling variance in the loss's curvature norm
    (``functionals.mc_curvature``; = MC for the square loss; nan without d2)."""

    times: np.ndarray
    f: np.ndarray
    energy: np.ndarray
    loss: np.ndarray
    mc: np.ndarray
    dissipation: np.ndarray
    mass_outside: np.ndarray
    theta: np.ndarray
    weights: np.ndarray
    nodes: int | tuple[int, ...]
    rule: str
    integrator: str
    dt: float | None
    steps: int
    initial_mass_dropped: float
    initial_mass_cut: float
    mc_curvature: np.ndarray | None = None


def _sphere_rule(problem: Problem, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted nodes of a density on the unit sphere in R^2 or R^3 (module docstring)."""
    d = problem.param_dim
    if d == 2:
        phi, w = periodic_trapezoid(-np.pi, np.pi, 2 * n)
        theta = np.column_stack([np.cos(phi), np.sin(phi)])
    elif d == 3:
        z, wz = gauss_legendre(-1.0, 1.0, n, panels=4)
        phi, wphi = periodic_trapezoid(0.0, 2 * np.pi, 2 * n)
        points, w = tensor([z, phi], [wz, wphi])
        zz, pp = points[:, 0], points[:, 1]
        r = np.sqrt(np.clip(1.0 - zz**2, 0.0, None))
        theta = np.column_stack([r * np.cos(pp), r * np.sin(pp), zz])
    else:
        raise NotImplementedError(f"sphere rule: ambient dimension {d} not supported")
    W = w * problem.initial.pdf(theta)
    return theta, W / W.sum()


def _has_curvature(problem: Problem) -> bool:
    """Whether the loss has a second derivative (a CallableLoss may not)."""
    return getattr(problem.loss, "has_d2", True)


def initial_nodes(problem: Problem, nodes: int | Sequence[int] = 32, rule: str = "native",
                  scramble: int = 0) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(theta (Q, k), W (Q,) summing to 1, weight dropped outside the domain, mass cut).

    See the module docstring for the rules. Warns (RuntimeWarning) when nodes are dropped.
    """
    cut = 1.0 - float(problem.initial.mass_in(problem.domain))
    if rule == "domain":
        rr = restricted_rule(problem.domain, problem.initial)
        return rr.theta, rr.density_weights, 0.0, 0.0
    if rule == "grid":
        grid = box_rule(problem.domain, 4, nodes, periodic=periodic_axes(problem.domain))
        W = grid.weights * problem.initial.pdf(grid.theta)
        keep = W > 0
        return grid.theta[keep], W[keep] / W.sum(), 0.0, 0.0
    if rule == "sphere":
        if problem.domain.manifold_dim != problem.param_dim - 1:
            raise ValueError("rule 'sphere': the domain is not a sphere")
        theta, W = _sphere_rule(problem, int(np.max(nodes)))
        return theta, W, 0.0, 0.0
    if rule == "rqmc":
        if np.ndim(nodes) != 0:
            raise ValueError(f"rule 'rqmc': nodes is the total count (a power of 2), got {nodes}")
        theta, W = rqmc_rule(problem.initial, int(nodes), scramble)
    elif rule == "native":
        theta, W = native_rule(problem.initial, nodes)
    else:
        raise ValueError(f"rule: expected 'native', 'domain', 'grid', 'sphere' or 'rqmc', got "
                         f"{rule!r}")
    inside = problem.domain.contains(theta)
    dropped = float(W[~inside].sum())
    if dropped > DROP_WARNING:
        warnings.warn(
            f"Lagrangian initial rule: {np.count_nonzero(~inside)} of {len(W)} nodes "
            f"(weight {dropped:.3e}) lie outside the domain and are dropped; rho_0 has mass "
            f"{cut:.3e} outside the domain", RuntimeWarning, stacklevel=2)
    theta, W = theta[inside], W[inside]
    return theta, W / W.sum(), dropped, cut


def velocity(problem: Problem, theta: np.ndarray, W: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """(-P grad Psi(theta_q; rho), f_rho) for rho = sum_q W_q delta(theta_q)."""
    f = functionals.network_output(problem, theta, W)
    v = -functionals.potential_gradient(problem, theta, f)
    return problem.domain.project_velocity(theta, v), f


@dataclass
class _Recorder:
    problem: Problem
    W: np.ndarray
    rows: dict = field(default_factory=lambda: {k: [] for k in (
        "f", "energy", "loss", "mc", "mc_curvature", "dissipation", "mass_outside")})

    def __call__(self, theta: np.ndarray) -> None:
        p, W = self.problem, self.W
        S = functionals.UnitMatrix(p, theta)
        f = S.forward(W)
        v, _ = velocity(p, theta, W)
        self.rows["f"].append(f)
        self.rows["loss"].append(functionals.loss(p, f))
        self.rows["energy"].append(functionals.energy(p, f, theta, W))
        f2 = S.forward_squared(W)
        self.rows["mc"].append(functionals.mc_variance(p, f, f2))
        self.rows["mc_curvature"].append(
            functionals.mc_curvature(p, f, f2) if _has_curvature(p) else np.nan)
        self.rows["dissipation"].append(float(W @ np.sum(v**2, axis=1)))
        self.rows["mass_outside"].append(float(W[~p.domain.contains(theta)].sum()))


class EnergyRise(RuntimeError):
    """The node flow's E rose over a step (it is the gradient flow of E on the nodes)."""


def lagrangian_flow(problem: Problem, times: Sequence[float], nodes: int | Sequence[int] = 32,
                    dt: float = 0.01, rule: str = "native", integrator: str = "rk4",
                    rtol: float = 1e-10, atol: float = 1e-12, scramble: int = 0,
                    energy_rise_tol: float | None = None) -> LagrangianResult:
    """Move the weighted nodes of rho_0 along the characteristics (module docstring).

    times: increasing output times starting at 0. With integrator "rk4" each output interval
    is split into equal steps no longer than dt; "dop853" uses rtol/atol instead.
    scramble: the seed of rule "rqmc". energy_rise_tol: check E after every (accepted) step
    and raise ``EnergyRise`` when it exceeds the previous step's by more than this fraction
    of E(0) (None: no check).
    """
    if np.isfinite(problem.beta):
        raise ValueError("lagrangian_flow: noiseless problems only (beta = inf)")
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or times[0] != 0 or np.any(np.diff(times) <= 0):
        raise ValueError("times: need increasing output times starting at 0")
    theta, W, dropped, cut = initial_nodes(problem, nodes, rule, scramble)
    Q, k = theta.shape
    theta = problem.domain.retract(theta.copy())
    record = _Recorder(problem, W)
    record(theta)
    steps = 0

    def rhs(th: np.ndarray) -> np.ndarray:
        return velocity(problem, th, W)[0]

    last_energy = [record.rows["energy"][0]]

    def check_energy(th: np.ndarray, t: float) -> None:
        if energy_rise_tol is None:
            return
        e = functionals.energy(problem, functionals.network_output(problem, th, W), th, W)
        if e - last_energy[0] > energy_rise_tol * record.rows["energy"][0]:
            raise EnergyRise(f"lagrangian_flow: E rose from {last_energy[0]:.10e} to "
                             f"{e:.10e} over the step to t = {t:.6g}: lower rtol or dt")
        last_energy[0] = e

    if integrator == "rk4":
        for t0, t1 in itertools.pairwise(times):
            n = max(1, int(np.ceil((t1 - t0) / dt - 1e-9)))
            h = (t1 - t0) / n
            for i in range(n):
                theta = problem.domain.retract(rk4_step(rhs, theta, h))
                check_energy(theta, t0 + (i + 1) * h)
            steps += n
            if not np.all(np.isfinite(theta)):
                raise FloatingPointError(f"lagrangian_flow: non-finite nodes by t={t1:.6g}")
            record(theta)
        step_size: float | None = dt
    elif integrator == "dop853":
        for t0, t1 in itertools.pairwise(times):
            sol = solve_ivp(lambda _t, y: rhs(y.reshape(Q, k)).ravel(), (t0, t1),
                            theta.ravel(), method="DOP853", rtol=rtol, atol=atol)
            if not sol.success:
                raise RuntimeError(f"lagrangian_flow: DOP853 failed on [{t0}, {t1}]: "
                                   f"{sol.message}")
            steps += len(sol.t) - 1
            for j in range(1, len(sol.t)):
                check_energy(sol.y[:, j].reshape(Q, k), sol.t[j])
            theta = problem.domain.retract(sol.y[:, -1].reshape(Q, k))
            record(theta)
        step_size = None
    else:
        raise ValueError(f"integrator: expected 'rk4' or 'dop853', got {integrator!r}")
    rows = {key: np.array(val) for key, val in record.rows.items()}
    return LagrangianResult(times, rows["f"], rows["energy"], rows["loss"], rows["mc"],
                            rows["dissipation"], rows["mass_outside"], theta, W,
                            nodes if np.ndim(nodes) == 0 else tuple(nodes), rule, integrator,
                            step_size, steps, dropped, cut, rows["mc_curvature"])


@dataclass
class LagrangianConvergence:
    """Three runs (base; nodes per axis doubled; dt halved) and error estimates of the base
    run's E(t): node_error = max_t |E_2n - E_n|, time_error = max_t |E_dt/2 - E_dt|,
    error = their sum (an estimate, not a bound, valid while the flow map is smooth)."""

    base: LagrangianResult
    finer_nodes: LagrangianResult
    finer_dt: LagrangianResult
    node_error: float
    time_error: float
    error: float

    def summary(self) -> str:
        return (f"Lagrangian E(t): nodes {self.base.nodes} -> {self.finer_nodes.nodes}: "
                f"{self.node_error:.2e}; dt {self.base.dt} -> {self.finer_dt.dt}: "
                f"{self.time_error:.2e}; estimated error of E {self.error:.2e}")


def lagrangian_convergence(problem: Problem, times: Sequence[float],
                           nodes: int | Sequence[int] = 16, dt: float = 0.02,
                           rule: str = "native") -> LagrangianConvergence:
    """Self-consistency check of ``lagrangian_flow`` with RK4 (nodes doubled, dt halved).

    Needs a rule with a node count ("native" or "sphere"); "domain" has none to double.
    """
    if rule == "domain":
        raise ValueError("lagrangian_convergence: rule 'domain' has no node count to refine")
    finer = 2 * nodes if np.ndim(nodes) == 0 else tuple(2 * int(n) for n in nodes)
    base = lagrangian_flow(problem, times, nodes, dt, rule)
    fine_n = lagrangian_flow(problem, times, finer, dt, rule)
    fine_t = lagrangian_flow(problem, times, nodes, dt / 2, rule)
    node_error = float(np.max(np.abs(fine_n.energy - base.energy)))
    time_error = float(np.max(np.abs(fine_t.energy - base.energy)))
    return LagrangianConvergence(base, fine_n, fine_t, node_error, time_error,
                                 node_error + time_error)
