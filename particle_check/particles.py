"""Gradient descent of n particles in the mean-field time scaling (numpy).

    d theta_i/dt = -grad Psi(theta_i; rho_n),   rho_n = (1/n) sum_i delta(theta_i),

so each particle moves at O(1) speed and n -> infinity gives the PDE. One right-hand
side costs two O(n M) passes through the unit matrix (f_n, then grad Psi), in
column blocks so memory stays bounded.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from solver.model import functionals
from solver.model.memory import reuse_freed_memory
from solver.model.problem import Problem


@dataclass
class ParticleRun:
    """f_n(t)(x_m), loss and energy at the output times, and the final particles."""

    times: np.ndarray
    f: np.ndarray
    loss: np.ndarray
    energy: np.ndarray
    theta: np.ndarray


def velocity(problem: Problem, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(-grad Psi(theta_i; rho_n), f_n) for the particle cloud theta (n, k).

    On a curved domain (the sphere) the velocity is projected on the tangent space.
    """
    weights = np.full(len(theta), 1.0 / len(theta))
    f = functionals.network_output(problem, theta, weights)
    v = -functionals.potential_gradient(problem, theta, f)
    return problem.domain.project_velocity(theta, v), f


def _rk4(rhs: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, dt: float) -> np.ndarray:
    k1 = rhs(theta)
    k2 = rhs(theta + 0.5 * dt * k1)
    k3 = rhs(theta + 0.5 * dt * k2)
    k4 = rhs(theta + dt * k3)
    return theta + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def simulate(problem: Problem, theta0: np.ndarray, times: np.ndarray, dt: float,
             integrator: str = "rk4") -> ParticleRun:
    """Integrate the particles from theta0, recording at ``times`` (times[0] = 0).

    Each output interval is split into equal steps no longer than dt; after each step the
    domain retracts the points to its chart (wraps angles, normalises on the sphere).
    """
    reuse_freed_memory()

    def rhs(theta: np.ndarray) -> np.ndarray:
        return velocity(problem, theta)[0]

    theta = np.array(theta0, dtype=float)
    weights = np.full(len(theta), 1.0 / len(theta))
    fs, losses, energies = [], [], []

    def record() -> None:
        f = functionals.network_output(problem, theta, weights)
        fs.append(f)
        losses.append(functionals.loss(problem, f))
        energies.append(functionals.energy(problem, f, theta, weights))

    record()
    for t0, t1 in itertools.pairwise(times):
        steps = max(1, int(np.ceil((t1 - t0) / dt - 1e-9)))
        h = (t1 - t0) / steps
        for _ in range(steps):
            theta = _rk4(rhs, theta, h) if integrator == "rk4" else theta + h * rhs(theta)
            theta = problem.domain.retract(theta)
        if not np.all(np.isfinite(theta)):
            raise FloatingPointError(f"particles: non-finite parameters by t={t1:.6g}; lower dt")
        record()
    return ParticleRun(np.asarray(times), np.array(fs), np.array(losses), np.array(energies),
                       theta)
