"""Explicit steps for the characteristic ODEs d theta/dt = v(theta) (numpy only)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def rk4_step(rhs: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, dt: float
             ) -> np.ndarray:
    """One classical Runge-Kutta step: theta + dt/6 (k1 + 2 k2 + 2 k3 + k4)."""
    k1 = rhs(theta)
    k2 = rhs(theta + 0.5 * dt * k1)
    k3 = rhs(theta + 0.5 * dt * k2)
    k4 = rhs(theta + dt * k3)
    return theta + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


# Dormand-Prince 5(4): nodes, stage coefficients, 5th-order weights, error weights (5th - 4th).
DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0)
DP_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
DP_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)
DP_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)


def combine(theta: np.ndarray, h: float, coeffs, ks) -> np.ndarray:
    """theta + h sum_i coeffs_i ks_i (zero coefficients skipped)."""
    out = theta.copy()
    for a, k in zip(coeffs, ks, strict=False):
        if a:
            out += (h * a) * k
    return out


def dp54_trial(rhs: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, h: float,
               k1: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Dormand-Prince 5(4) trial step: (5th-order theta(t + h), the embedded error
    estimate 5th - 4th order, the slope at the new point (FSAL)). ``k1``: rhs(theta) if known."""
    ks = [rhs(theta) if k1 is None else k1]
    for a in DP_A[1:]:
        ks.append(rhs(combine(theta, h, a, ks)))
    new = combine(theta, h, DP_B, ks)
    ks.append(rhs(new))
    return new, combine(np.zeros_like(theta), h, DP_E, ks), ks[-1]
