"""Numerical settings of PDE and particle runs (numpy only, so configs validate without DOLFINx)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCHEMES = ("fv", "dg", "lagrangian")
INTEGRATORS = ("euler", "ssprk2", "ssprk3", "implicit", "mprk22", "dopri5")
#: The error-controlled integrators (fv only), with their order in time.
IMPLICIT_ORDER = {"implicit": 1, "mprk22": 2}
#: time_tolerance = "auto": C * h^(2 * spatial order / time order) per implicit integrator
#: (h the largest centroid distance of the mesh, spatial order 2 of FV on these meshes),
#: calibrated so that the time error of the loss stays below a tenth of the spatial one
#: (docs/verification-time.md; benchmarks/verification.py vi).
AUTO_TOLERANCE = {"implicit": 3e-5, "mprk22": 0.2}
SPACE_ORDER = 2
#: The smallest "auto" tolerance: the local error estimate's round-off level.
AUTO_FLOOR = 1e-11
#: The lagrangian scheme's "auto" tolerance: the RMS local error of the node positions per
#: Dormand-Prince step (benchmarks/long_time.py: the time error of E then stays below the
#: quadrature error of the finest node sets used there).
LAGRANGIAN_TOLERANCE = 1e-10
#: Nodes per cell axis of the lagrangian scheme: degree + 1 (the Gauss rule of degree
#: 2 degree + 1 on each cell, as DG_degree's).
LAGRANGIAN_DEGREES = range(1, 9)


def auto_time_tolerance(integrator: str, h: float) -> float:
    """The per-step tolerance "auto" gives an implicit integrator on a mesh of size h:
    the global time error of an order-q integrator is ~ tolerance^(q/2) and the FV
    space error ~ h^2, so tolerance ~ h^(4/q)."""
    tolerance = AUTO_TOLERANCE[integrator] * h ** (2 * SPACE_ORDER / IMPLICIT_ORDER[integrator])
    return max(tolerance, AUTO_FLOOR)


@dataclass(frozen=True)
class PDESettings:
    """How to discretise: mesh, scheme, time integrator, stopping and outputs.

    The mesh is ``cells`` per direction of the domain (built on the fly), or a named
    mesh ``mesh`` at refinement ``level`` from meshes/, or a file ``mesh_file``.
    scheme: "fv" (two-point Scharfetter-Gummel/upwind finite volumes, first order) or
    "dg" (discontinuous Galerkin of ``degree`` 1 or 2 with a positivity limiter) or
    "lagrangian" (beta = inf: the Gauss nodes of rho_0 on every cell, rule of degree
    2 ``degree`` + 1, moved along the characteristics; integrator "dopri5").
    integrator: explicit SSP Runge-Kutta at ``cfl`` times the positivity bound, or
    "implicit" (fv only: lagged backward Euler, first order, any step, error
    ``time_tolerance``) or "mprk22" (fv only: the second-order modified Patankar-Runge-Kutta
    scheme, positive and conservative at any step, same controller). time_tolerance "auto"
    (the default): a tolerance that follows the mesh (``auto_time_tolerance``), so that the
    time error stays below the space error.
    stationary_tolerance > 0 stops once int |grad Psi|^2 rho falls below it.
    max_outflow: the largest mass the no-flux wall may hold back (integrated outflow rate).
    outputs: number of equal output intervals on [0, t_final] (f_t, MC and snapshots).
    snapshots: how many of the outputs also write the density (first and last included).
    petsc: PETSc options (without the "meanfield_" prefix) for the implicit KSP.
    compress_rtol: truncated-SVD tolerance for the unit matrix (None: dense products).
    checkpoint_every: seconds of wall time between checkpoints of the whole state
    (inf: only at the end, after a failure and when pre-empted). Wall time, not steps:
    it bounds the work a killed job loses whatever the mesh, scheme and step size.
    """

    cells: tuple[int, ...] = ()
    mesh: str | None = None
    level: int = 0
    mesh_file: str | None = None
    scheme: str = "fv"
    degree: int = 1
    integrator: str = "ssprk2"
    cfl: float = 0.5
    time_tolerance: float | str = "auto"
    stationary_tolerance: float = 0.0
    max_outflow: float = 1e-6
    outputs: int = 50
    snapshots: int = 6
    max_step: float = np.inf
    petsc: tuple[tuple[str, str], ...] = ()
    compress_rtol: float | None = None
    checkpoint_every: float = 600.0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"pde.scheme: {self.scheme!r} is not one of {SCHEMES}")
        if self.integrator not in INTEGRATORS:
            raise ValueError(f"pde.integrator: {self.integrator!r} is not one of {INTEGRATORS}")
        if self.scheme == "dg" and self.integrator in IMPLICIT_ORDER:
            raise ValueError(f'pde.integrator: "{self.integrator}" needs scheme "fv"; use '
                             '"ssprk3" for dg')
        if self.scheme == "dg" and self.degree not in (1, 2):
            raise ValueError(f"pde.degree: dg supports degree 1 or 2, got {self.degree}")
        if (self.scheme == "lagrangian") != (self.integrator == "dopri5"):
            raise ValueError('pde.integrator: scheme "lagrangian" moves its nodes with '
                             f'integrator "dopri5" (and only it does); got scheme '
                             f'{self.scheme!r} with {self.integrator!r}')
        if self.scheme == "lagrangian" and self.degree not in LAGRANGIAN_DEGREES:
            raise ValueError(f"pde.degree: lagrangian takes degree 1..8 (degree + 1 Gauss "
                             f"nodes per cell axis), got {self.degree}")
        sources = sum((bool(self.cells), self.mesh is not None, self.mesh_file is not None))
        if sources != 1:
            raise ValueError("pde: give exactly one of cells, mesh (with level) or mesh_file")
        if not 0 < self.cfl <= 1:
            raise ValueError(f"pde.cfl: must be in (0, 1] for positivity, got {self.cfl}")
        if self.time_tolerance != "auto" and not (
                isinstance(self.time_tolerance, int | float) and self.time_tolerance > 0):
            raise ValueError(f'pde.time_tolerance: must be > 0 or "auto", '
                             f"got {self.time_tolerance!r}")
        if not self.max_outflow > 0:
            raise ValueError(f"pde.max_outflow: must be > 0, got {self.max_outflow}")
        if not self.stationary_tolerance >= 0:
            raise ValueError(f"pde.stationary_tolerance: must be >= 0 (0 = off), "
                             f"got {self.stationary_tolerance}")
        if self.outputs < 1:
            raise ValueError(f"pde.outputs: must be >= 1, got {self.outputs}")
        if self.snapshots < 0:
            raise ValueError(f"pde.snapshots: must be >= 0, got {self.snapshots}")
        if not self.max_step > 0:
            raise ValueError(f"pde.max_step: must be > 0, got {self.max_step}")
        if any(int(c) != c or c < 0 for c in self.cells):  # 0: the icosphere's level 0
            raise ValueError(f"pde.cells: need integers >= 0, got {list(self.cells)}")
        if self.level < 0:
            raise ValueError(f"pde.level: must be >= 0, got {self.level}")
        if self.compress_rtol is not None and not 0 < self.compress_rtol < 1:
            raise ValueError(f"pde.compress_rtol: must be in (0, 1), got {self.compress_rtol}")
        _check_checkpoint_every("pde", self.checkpoint_every)

    @property
    def explicit(self) -> bool:
        return self.integrator not in IMPLICIT_ORDER

    def resolved_time_tolerance(self, h: float) -> float:
        """The error-controlled integrators' per-step tolerance on a mesh of size h."""
        if self.time_tolerance == "auto":
            if self.integrator == "dopri5":
                return LAGRANGIAN_TOLERANCE
            return auto_time_tolerance(self.integrator, h)
        return float(self.time_tolerance)

    def output_times(self, t_final: float) -> np.ndarray:
        return np.linspace(0.0, t_final, self.outputs + 1)

    def snapshot_indices(self) -> set[int]:
        if self.snapshots == 0:
            return set()
        count = min(self.snapshots, self.outputs + 1)
        return {int(i) for i in np.round(np.linspace(0, self.outputs, count))}


def _check_checkpoint_every(section: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{section}.checkpoint_every: seconds of wall time between "
                         f"checkpoints, must be > 0 (inf: never), got {value}")


#: The settings that do not change a run's result (left out of its fingerprint).
RESULT_NEUTRAL = ("checkpoint_every", "progress")

PARTICLE_INTEGRATORS = ("euler", "rk4", "adaptive")


@dataclass(frozen=True)
class ParticleSettings:
    """Widths n, seeds per width, step dt and integrator of the particle runs.

    integrator: "rk4" or "euler" at the fixed step dt, or "adaptive" (Dormand-Prince 5(4)
    to the tolerance rtol); with noise (finite beta) only "euler" (Euler-Maruyama).
    batch: online SGD with P fresh data samples per step (None: the full quadrature).
    checkpoint_every: seconds of wall time between checkpoints of a running task
    (positions, outputs so far, generator state; inf: only when pre-empted).
    """

    n: tuple[int, ...]
    seeds: int = 4
    dt: float = 0.01
    integrator: str = "rk4"
    entropy: int = 0
    batch: int | None = None
    rtol: float = 1e-6
    checkpoint_every: float = 600.0

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
        if self.batch is not None and (int(self.batch) != self.batch or self.batch < 1):
            raise ValueError(f"particles.batch: need a positive integer, got {self.batch}")
        if self.batch is not None and self.integrator == "adaptive":
            raise ValueError('particles.batch: SGD takes fixed steps; use integrator "euler" '
                             'or "rk4"')
        if not 0 < self.rtol < 1:
            raise ValueError(f"particles.rtol: must be in (0, 1), got {self.rtol}")
        _check_checkpoint_every("particles", self.checkpoint_every)

    def rng(self, n: int, seed: int) -> np.random.Generator:
        """The reproducible generator of task (n, seed), independent of the rank that runs it."""
        return np.random.default_rng(np.random.SeedSequence(self.entropy, spawn_key=(n, seed)))


@dataclass(frozen=True)
class LimitSettings:
    """The RQMC reference of the noiseless limit (``meanfield limit``;
    solver.reference.rqmc): the ladder's node counts (powers of 2, increasing; the error
    compares the last two levels), scrambles per level, the DOP853 tolerance and the number
    of equal output intervals on [0, t_final]."""

    nodes: tuple[int, ...] = (4096, 16384)
    scrambles: int = 8
    rtol: float = 1e-9
    outputs: int = 20
