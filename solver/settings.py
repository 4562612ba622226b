"""Numerical settings of PDE and particle runs (numpy only, so configs validate without DOLFINx)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCHEMES = ("upwind_fv",)
INTEGRATORS = ("euler", "ssprk2", "ssprk3")


@dataclass(frozen=True)
class PDESettings:
    """How to discretise: mesh cells per direction, scheme, time integrator and outputs.

    cfl in (0, 1]: the step is cfl times the positivity bound of the scheme.
    outputs: number of equal output intervals on [0, t_final] (f_t, MC and snapshots).
    snapshots: how many of the outputs also write the density (first and last included).
    """

    cells: tuple[int, ...]
    scheme: str = "upwind_fv"
    integrator: str = "ssprk2"
    cfl: float = 0.5
    outputs: int = 50
    snapshots: int = 6
    max_step: float = np.inf
    progress: bool = True

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"pde.scheme: {self.scheme!r} is not one of {SCHEMES}")
        if self.integrator not in INTEGRATORS:
            raise ValueError(f"pde.integrator: {self.integrator!r} is not one of {INTEGRATORS}")
        if not 0 < self.cfl <= 1:
            raise ValueError(f"pde.cfl: must be in (0, 1] for positivity, got {self.cfl}")
        if self.outputs < 1:
            raise ValueError(f"pde.outputs: must be >= 1, got {self.outputs}")
        if self.snapshots < 0:
            raise ValueError(f"pde.snapshots: must be >= 0, got {self.snapshots}")
        if not self.max_step > 0:
            raise ValueError(f"pde.max_step: must be > 0, got {self.max_step}")
        if any(int(c) != c or c < 1 for c in self.cells):
            raise ValueError(f"pde.cells: need positive integers, got {list(self.cells)}")

    def output_times(self, t_final: float) -> np.ndarray:
        return np.linspace(0.0, t_final, self.outputs + 1)

    def snapshot_indices(self) -> set[int]:
        if self.snapshots == 0:
            return set()
        count = min(self.snapshots, self.outputs + 1)
        return {int(i) for i in np.round(np.linspace(0, self.outputs, count))}


PARTICLE_INTEGRATORS = ("euler", "rk4")


@dataclass(frozen=True)
class ParticleSettings:
    """Widths n, seeds per width, fixed step dt and integrator of the particle runs."""

    n: tuple[int, ...]
    seeds: int = 4
    dt: float = 0.01
    integrator: str = "rk4"
    entropy: int = 0

    def __post_init__(self) -> None:
        if not self.n or any(int(v) != v or v < 1 for v in self.n):
            raise ValueError(f"particles.n: need a list of positive integers, got {self.n}")
        if int(self.seeds) != self.seeds or self.seeds < 1:
            raise ValueError(f"particles.seeds: need a positive integer, got {self.seeds}")
        if not (np.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"particles.dt: need a finite step > 0, got {self.dt}")
        if self.integrator not in PARTICLE_INTEGRATORS:
            raise ValueError(
                f"particles.integrator: {self.integrator!r} not in {PARTICLE_INTEGRATORS}"
            )
        if int(self.entropy) != self.entropy or self.entropy < 0:
            raise ValueError(f"particles.entropy: need an integer >= 0, got {self.entropy}")

    def rng(self, n: int, seed: int) -> np.random.Generator:
        """The reproducible generator of task (n, seed), independent of the rank that runs it."""
        return np.random.default_rng(np.random.SeedSequence(self.entropy, spawn_key=(n, seed)))
