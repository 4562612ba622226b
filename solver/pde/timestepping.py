"""Explicit strong-stability-preserving time steps for a scheme with a CFL bound.

Each stage is a forward-Euler step rho + dt * rate(rho); a convex combination of
stages keeps the stage's positivity (Shu-Osher form):
    euler:  rho^{n+1} = rho^n + dt L(rho^n)                         (order 1)
    ssprk2: rho^1 = rho^n + dt L(rho^n),
            rho^{n+1} = 1/2 rho^n + 1/2 (rho^1 + dt L(rho^1))        (order 2, Heun)
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Scheme(Protocol):
    def set_density(self, values: np.ndarray) -> None: ...
    def density(self) -> np.ndarray: ...
    def rate(self) -> np.ndarray: ...
    def max_stable_step(self) -> float: ...


def try_step(scheme: Scheme, integrator: str, dt: float) -> bool:
    """Advance the scheme's state by dt; False (state restored) if a stage breaks the CFL bound.

    The caller has checked dt against the bound at the current state.
    """
    rho0 = scheme.density()
    rho1 = rho0 + dt * scheme.rate()
    scheme.set_density(rho1)
    if integrator == "euler":
        return True
    if scheme.max_stable_step() < dt:
        scheme.set_density(rho0)
        return False
    scheme.set_density(0.5 * rho0 + 0.5 * (rho1 + dt * scheme.rate()))
    return True
