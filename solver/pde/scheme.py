"""What every spatial discretisation of the mean-field PDE provides to the time loop.

    d rho/dt = div(rho grad Psi[rho]) + (1/beta) Laplace rho

A scheme owns its DOLFINx function space, holds the current density and the
network output f(x_m) it implies, and reports the structural checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from dolfinx import fem


@dataclass(frozen=True)
class Diagnostics:
    """The checks recorded at one time.

    energy = loss + lam int r rho + (1/beta) int rho log rho (the free energy);
    dissipation = int |grad Psi|^2 rho (+ the entropy production when beta < inf), the
    discrete -dE/dt of the scheme; boundary_outflow = int_boundary rho (v . n)^+ ds, the
    mass flux the no-flux wall stops.
    """

    energy: float
    loss: float
    mass: float
    min_rho: float
    dissipation: float
    boundary_outflow: float


class Scheme(Protocol):
    """A semi-discretisation d rho/dt = L(rho) on owned degrees of freedom."""

    rho: fem.Function  # the density, written to snapshots
    f: np.ndarray  # f(x_m) at the current density, identical on every rank

    def initial_density(self) -> np.ndarray: ...  # rho_0 on owned dofs, mass exactly 1
    def set_density(self, values: np.ndarray) -> None: ...  # set owned dofs, evaluate f, Psi
    def density(self) -> np.ndarray: ...  # owned dofs (a copy)
    def rate(self) -> np.ndarray: ...  # L(rho) on owned dofs
    def max_stable_step(self) -> float: ...  # forward-Euler positivity bound (global min)
    def diagnostics(self) -> Diagnostics: ...
    def mc_variance(self) -> float: ...
    def point_measure(self) -> tuple[np.ndarray, np.ndarray]: ...  # owned (theta_q, W_q)
