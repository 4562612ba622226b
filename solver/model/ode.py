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
