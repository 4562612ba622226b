"""Birth-death (Wasserstein-Fisher-Rao) reaction of the mean-field PDE (numpy only).

    d rho/dt = div(rho grad Psi) - gamma (Psi - <Psi>_rho) rho,   <Psi>_rho = int Psi rho / int rho

[Rotskoff, Jelassi, Bruna, Vanden-Eijnden, ICML 2019]. On a weighted point set (cells K
with volumes |K|, quadrature points with weights, particles with weights 1/n) the
reaction is R_K = -gamma (Psi_K - <Psi>) rho_K with <Psi> = sum_K Psi_K rho_K |K| /
sum_K rho_K |K| taken with the same weights, so sum_K R_K |K| = 0: mass is conserved up
to round-off. It adds gamma int (Psi - <Psi>)^2 rho to the dissipation -dE/dt. A
forward-Euler step of the reaction alone keeps rho >= 0 when
dt * gamma (Psi_K - <Psi>) <= 1 for every K.

With Psi fixed (independent of rho and t) the pure reaction has the closed form
rho_t = rho_0 exp(-gamma t Psi) / Z(t), Z(t) = int rho_0 exp(-gamma t Psi).
"""

from __future__ import annotations

import numpy as np


def check_rate(gamma: float) -> float:
    """gamma as a float; ValueError unless a finite number >= 0."""
    gamma = float(gamma)
    if not (np.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"birth_death: must be a finite number >= 0, got {gamma}")
    return gamma


def mean_potential(psi: np.ndarray, rho: np.ndarray, volumes: np.ndarray | float = 1.0
                   ) -> float:
    """<Psi> = sum Psi rho |K| / sum rho |K| (serial; schemes reduce the two sums over ranks)."""
    w = np.asarray(rho, float) * volumes
    return float(np.asarray(psi, float) @ w / np.sum(w))


def reaction_rate(psi: np.ndarray, rho: np.ndarray, gamma: float, mean: float) -> np.ndarray:
    """R = -gamma (Psi - <Psi>) rho (mean = <Psi> from the same weights as the mass)."""
    return -gamma * (np.asarray(psi, float) - mean) * rho


def reaction_dissipation(psi: np.ndarray, rho: np.ndarray, volumes: np.ndarray | float,
                         gamma: float, mean: float) -> float:
    """gamma sum (Psi - <Psi>)^2 rho |K|, the reaction's part of -dE/dt (local sum)."""
    return gamma * float(((np.asarray(psi, float) - mean) ** 2) @ (np.asarray(rho, float)
                                                                  * volumes))


def reaction_inverse_step(psi: np.ndarray, gamma: float, mean: float) -> np.ndarray:
    """gamma (Psi - <Psi>)^+ per point: a forward-Euler step keeps rho >= 0 while
    dt * (outflow rate + this) <= 1 at every point."""
    return gamma * np.maximum(np.asarray(psi, float) - mean, 0.0)


def pure_reaction(rho0: np.ndarray, psi: np.ndarray, gamma: float, t: float,
                  volumes: np.ndarray | float = 1.0) -> np.ndarray:
    """The exact solution rho_0 exp(-gamma t Psi) / Z(t) of d rho/dt = -gamma (Psi - <Psi>) rho
    with Psi fixed, normalised with the same weights: sum rho_t |K| = sum rho_0 |K|."""
    psi = np.asarray(psi, float)
    rho0 = np.asarray(rho0, float)
    g = rho0 * np.exp(-gamma * t * (psi - psi.min()))  # shifted: no overflow
    return g * (np.sum(rho0 * volumes) / np.sum(g * volumes))
