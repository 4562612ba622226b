"""Particles vs the PDE limit: gaps in L2(mu), loss curves and fitted exponents.

    gap(n, t) = ( mean over seeds of sum_m w_m (f_n(t)(x_m) - f_t(x_m))^2 )^(1/2)

and n gap^2 against the resampling variance MC(t) of the PDE solution [CRBV].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from particle_check.particles import ParticleRun


@dataclass
class Comparison:
    """Per width n (rows, increasing) and output time (columns)."""

    times: np.ndarray
    n: np.ndarray
    gap: np.ndarray          # (len(n), len(times))
    loss_mean: np.ndarray    # particle loss, mean over seeds
    loss_std: np.ndarray
    pde_loss: np.ndarray
    pde_mc: np.ndarray
    seeds: int

    def exponent(self) -> np.ndarray:
        """alpha(t) from the least-squares fit log gap = c - alpha log n (nan if < 2 widths)."""
        if len(self.n) < 2:
            return np.full(len(self.times), np.nan)
        slope = np.polyfit(np.log(self.n), np.log(self.gap), 1)[0]
        return -np.asarray(slope)

    def rows(self) -> list[list[float]]:
        """CSV rows: t, n, gap, n gap^2, MC, particle loss mean/std, PDE loss."""
        return [
            [t, int(n), self.gap[i, j], n * self.gap[i, j] ** 2, self.pde_mc[j],
             self.loss_mean[i, j], self.loss_std[i, j], self.pde_loss[j]]
            for i, n in enumerate(self.n) for j, t in enumerate(self.times)
        ]

    header = ("t", "n", "gap", "n_gap2", "mc", "loss_mean", "loss_std", "pde_loss")


def compare(weights: np.ndarray, pde_times: np.ndarray, pde_f: np.ndarray,
            pde_loss: np.ndarray, pde_mc: np.ndarray,
            runs: dict[tuple[int, int], ParticleRun]) -> Comparison:
    """Gaps and loss statistics of the particle runs against the PDE outputs."""
    widths = sorted({n for n, _ in runs})
    seeds = sorted({s for _, s in runs})
    gap = np.empty((len(widths), len(pde_times)))
    loss_mean, loss_std = np.empty_like(gap), np.empty_like(gap)
    for i, n in enumerate(widths):
        group = [runs[(n, s)] for s in seeds if (n, s) in runs]
        for run in group:
            if not np.allclose(run.times, pde_times, rtol=0, atol=1e-12):
                raise ValueError("particle and PDE runs have different output times")
        sq = np.array([(r.f - pde_f) ** 2 @ weights for r in group])
        gap[i] = np.sqrt(sq.mean(axis=0))
        losses = np.array([r.loss for r in group])
        loss_mean[i], loss_std[i] = losses.mean(axis=0), losses.std(axis=0)
    return Comparison(np.asarray(pde_times), np.array(widths), gap, loss_mean, loss_std,
                      np.asarray(pde_loss), np.asarray(pde_mc), len(seeds))
