"""Explicit strong-stability-preserving time steps for a scheme with a CFL bound.

Each stage is a forward-Euler step rho + dt * rate(rho); a convex combination of
stages keeps the stage's positivity (Shu-Osher form):
    euler:  rho^{n+1} = rho^n + dt L(rho^n)                         (order 1)
    ssprk2: rho^1 = rho^n + dt L(rho^n),
            rho^{n+1} = 1/2 rho^n + 1/2 (rho^1 + dt L(rho^1))        (order 2, Heun)
    ssprk3: rho^1 = rho^n + dt L(rho^n),
            rho^2 = 3/4 rho^n + 1/4 (rho^1 + dt L(rho^1)),
            rho^{n+1} = 1/3 rho^n + 2/3 (rho^2 + dt L(rho^2))       (order 3, Shu-Osher)
A scheme's set_density may apply a positivity limiter to each stage.
"""

from __future__ import annotations

from solver.pde.scheme import Scheme

#: Shu-Osher coefficients (a, b) of each stage after the first:
#: rho^{i} = a rho^n + b (rho^{i-1} + dt L(rho^{i-1})).
STAGES = {"euler": (), "ssprk2": ((0.5, 0.5),), "ssprk3": ((0.75, 0.25), (1 / 3, 2 / 3))}


def try_step(scheme: Scheme, integrator: str, dt: float) -> bool:
    """Advance the scheme's state by dt; False (state restored) if a stage breaks the CFL bound.

    The caller has checked dt against the bound at the current state.
    """
    rho0 = scheme.density()
    scheme.set_density(rho0 + dt * scheme.rate())
    for a, b in STAGES[integrator]:
        if scheme.max_stable_step() < dt:
            scheme.set_density(rho0)
            return False
        scheme.set_density(a * rho0 + b * (scheme.density() + dt * scheme.rate()))
    return True
