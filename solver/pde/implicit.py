"""Linearly implicit (lagged-Psi) backward Euler for the finite-volume scheme, via PETSc KSP.

    |K| (rho_K^{n+1} - rho_K^n)/dt + sum_sigma (a_KL rho_K^{n+1} - a_LK rho_L^{n+1}) = 0,

with the flux coefficients a (Scharfetter-Gummel, upwind when beta = inf) taken at
Psi[rho^n]. The matrix is an M-matrix whose column sums are |K|/dt, so for any dt
the exact solution is >= 0 and has the mass of rho^n; the computed one to the
KSP's tolerance (DEFAULT_PETSC_OPTIONS).

MPRK22 (``solve_mprk22``, integrator "mprk22"; Kopecz and Meister 2018): rho^(1) is the
step above, then the same system with the coefficients 1/2 (a(rho^n) rho^n/rho^(1) +
a(rho^(1))), the Patankar weight taken at the upwind cell of each coefficient: again an
M-matrix with column sums |K|/dt (positive, conservative at any dt), second order. Its
error estimate is sum_K |K| |rho^{n+1} - rho^(1)|, the first stage's local error.

The step is accepted when the free energy does not increase and the local error
estimate (for backward Euler its difference from the trapezoidal rule),

    err = dt/2 sum_K |K| |L(rho^{n+1}) - L(rho^n)|,

is at most ``tolerance``; the next step is dt * q(clip(0.9 sqrt(tolerance/err), 0.2, 2)),
q rounding the factor down onto the grid 2^(j/64) (``step_factor``).

Why the grid: err is a difference of two rates, so the round-off in which runs on
different numbers of ranks differ (the LU factorisation, the order of the reductions;
a relative 1e-16..1e-15 in rho) reaches err amplified by kappa = sum|K||L| / sum|K||dL|,
10^2..10^3 on the test problems, and each factor carries half of it into the next step,
and through t into every later one. Measured on the 8^2 test problem, serial against 2
ranks without the grid: dt differed by up to 3.9e-13 relative after 12 steps (5e-12 on
another processor). On the grid, two runs take the same factor unless their exact factors
straddle a grid point, which their relative difference of ~1e-12 makes happen with
probability about 64 * 1e-12 / ln 2 < 1e-10 per step; the steps then differ only by the
round-off of the first one (the CFL bound, a min over cells).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from petsc4py import PETSc

from solver.errors import ConfigError
from solver.pde.finite_volume import FiniteVolume
from solver.settings import IMPLICIT_ORDER, PDESettings, auto_time_tolerance

#: KSP defaults, used when no PETSc option is given: a direct MUMPS solve (mass to
#: round-off, robust at any step). GMRES with block-Jacobi/ILU(0) (ksp_type=gmres,
#: pc_type=bjacobi, ksp_rtol=1e-13) is 4x faster at 128^2 for moderate steps but broke
#: down near stationarity, where the steps grow large (a failed solve rejects the step).
DEFAULT_PETSC_OPTIONS = {"ksp_type": "preonly", "pc_type": "lu",
                         "pc_factor_mat_solver_type": "mumps"}
OPTIONS_PREFIX = "meanfield_"


#: The prefix under which ``check_petsc_options`` tries the options on a 2 x 2 solve.
CHECK_PREFIX = "meanfield_check_"


def _try_options(options: Mapping[str, str]) -> tuple[str, list[str]]:
    """(PETSc's complaint or "", the options it did not use) of a KSP set from ``options``
    that solves a 2 x 2 diagonal system (type names, values and solver packages are all
    looked at by then). The options are removed from PETSc's database afterwards."""
    database = PETSc.Options()
    added = [key for key in options if not database.hasName(CHECK_PREFIX + key)]
    for key in added:
        database.setValue(CHECK_PREFIX + key, options[key])
    A = PETSc.Mat().createAIJ([2, 2], nnz=1, comm=PETSc.COMM_SELF)
    ksp = PETSc.KSP().create(PETSc.COMM_SELF)
    complaint = ""
    try:
        A.setValue(0, 0, 1.0)
        A.setValue(1, 1, 2.0)
        A.assemble()
        ksp.setOptionsPrefix(CHECK_PREFIX)
        ksp.setOperators(A)
        ksp.setFromOptions()
        b, x = A.createVecLeft(), A.createVecRight()
        b.set(1.0)
        ksp.solve(b, x)
    except PETSc.Error as exc:
        lines = [line.removeprefix("[0] ").strip() for line in str(exc).splitlines()[1:]]
        complaint = "; ".join(line for line in lines if line and "() at " not in line
                              and not line.startswith("See https"))
        complaint = complaint or f"PETSc error code {getattr(exc, 'ierr', '?')}"
    finally:
        unused = [key for key in added if not database.used(CHECK_PREFIX + key)]
        for key in added:
            database.delValue(CHECK_PREFIX + key)
        ksp.destroy()
        A.destroy()
    return complaint, unused


def check_petsc_options(options: Mapping[str, str]) -> None:
    """ConfigError naming the option of [pde.petsc] / --petsc that PETSc rejects (a type it
    does not know, a value it cannot read, a solver package it does not have) or does not
    use (a misspelt name, an option of another solver), before any work. Monitors and
    viewers are not tried (they would print)."""
    tried = {key: str(value) for key, value in options.items()
             if "monitor" not in key and "view" not in key}
    if not tried:
        return
    complaint, unused = _try_options(tried)
    fix = ("fix or drop it (without options the solve is a direct MUMPS LU; an iterative "
           "one: ksp_type=gmres, pc_type=bjacobi, ksp_rtol=1e-13)")
    if complaint:
        culprits = [key for key in tried
                    if not _try_options({k: v for k, v in tried.items() if k != key})[0]]
        named = ", ".join(f"{key}={tried[key]}" for key in culprits) or ", ".join(
            f"{k}={v}" for k, v in tried.items())
        raise ConfigError(f"pde.petsc (or --petsc): PETSc rejects {named}: {complaint}; {fix}")
    if unused:
        raise ConfigError("pde.petsc (or --petsc): PETSc did not use " + ", ".join(
            f"{key}={tried[key]}" for key in unused) + " (a misspelt name, or an option of "
            f"another solver than the one chosen); {fix}")


#: Steps per octave of the grid the step factor is rounded down onto.
FACTOR_GRID = 64


def step_factor(err: float, tolerance: float, upper: float = 2.0) -> float:
    """q(clip(0.9 sqrt(tolerance / err), 0.2, upper)), q(g) = 2^(floor(64 log2 g) / 64):
    the factor of the next step, on a grid that round-off cannot move it across."""
    grow = 0.9 * np.sqrt(tolerance / err) if err > 0 else upper
    grow = float(np.clip(grow, 0.2, upper))
    return 2.0 ** (np.floor(FACTOR_GRID * np.log2(grow)) / FACTOR_GRID)


class ImplicitEuler:
    """Backward Euler with lagged Psi for a FiniteVolume scheme; one KSP reused for all steps."""

    def __init__(self, scheme: FiniteVolume, petsc_options: Mapping[str, str] | None = None):
        if scheme.problem.birth_death:
            raise ConfigError("pde.integrator: the implicit integrators do not take the "
                              f"birth-death reaction yet (problem.birth_death = "
                              f"{scheme.problem.birth_death:g}); use an explicit integrator "
                              '("ssprk2" or "ssprk3")')
        self.scheme = scheme
        g = scheme.geometry
        comm = scheme.comm
        imap = scheme.V.dofmap.index_map
        n, N = imap.size_local, imap.size_global
        to_global = imap.local_to_global(np.arange(len(g.volumes), dtype=np.int32))
        K, L = g.inner[:, 0], g.inner[:, 1]
        self._k_owned, self._l_owned = K < n, L < n
        kk, ll = K[self._k_owned], L[self._l_owned]
        rows = np.concatenate([np.arange(n), kk, kk, ll, ll])
        cols = np.concatenate([np.arange(n), kk, L[self._k_owned], ll, K[self._l_owned]])
        self.A = PETSc.Mat().create(comm)
        self.A.setSizes(((n, N), (n, N)))
        self.A.setType("aij")
        self.A.setPreallocationCOO(to_global[rows].astype(PETSc.IntType),
                                   to_global[cols].astype(PETSc.IntType))
        self.b = self.A.createVecRight()
        self.x = self.A.createVecRight()
        self.ksp = PETSc.KSP().create(comm)
        self.ksp.setOptionsPrefix(OPTIONS_PREFIX)
        self.ksp.setOperators(self.A)
        # the defaults apply only when no solver is named; the options go into PETSc's global
        # database for setFromOptions and are removed again (options already there win)
        if petsc_options:
            check_petsc_options(petsc_options)
        chosen = dict(petsc_options or {}) or dict(DEFAULT_PETSC_OPTIONS)
        options = PETSc.Options()
        added = [key for key in chosen if not options.hasName(OPTIONS_PREFIX + key)]
        for key in added:
            options.setValue(OPTIONS_PREFIX + key, chosen[key])
        try:
            self.ksp.setFromOptions()
        finally:
            for key in added:
                options.delValue(OPTIONS_PREFIX + key)
        self.iterations = 0

    def _assemble(self, dt: float, a_out: np.ndarray | None = None,
                  a_in: np.ndarray | None = None) -> None:
        scheme = self.scheme
        if a_out is None:
            a_out, a_in = scheme.coefficients()
        vol = scheme.geometry.volumes[: scheme.n_owned]
        ko, lo = self._k_owned, self._l_owned
        values = np.concatenate([vol / dt, a_out[ko], -a_in[ko], a_in[lo], -a_out[lo]])
        self.A.setValuesCOO(values, addv=PETSc.InsertMode.INSERT_VALUES)
        self.A.assemble()

    def solve(self, dt: float) -> np.ndarray | None:
        """rho^{n+1} on owned cells from the scheme's current state (which is not changed);
        None if the KSP did not converge."""
        self._assemble(dt)
        return self._linear_solve(dt, self.scheme.density())

    def _linear_solve(self, dt: float, rho: np.ndarray) -> np.ndarray | None:
        """A^{-1} (|K|/dt rho) with the assembled A; None if the KSP did not converge."""
        scheme = self.scheme
        self.b.array[:] = scheme.geometry.volumes[: scheme.n_owned] / dt * rho
        self.x.array[:] = rho
        self.ksp.solve(self.b, self.x)
        self.iterations = self.ksp.getIterationNumber()
        if self.ksp.getConvergedReason() < 0:
            return None
        return self.x.array.copy()

    def solve_mprk22(self, dt: float) -> tuple[np.ndarray, np.ndarray] | None:
        """(rho^(1), rho^{n+1}) of one MPRK22 step from the scheme's current state rho^n:
        rho^(1) is the lagged backward-Euler step (first order), rho^{n+1} the second-order
        Patankar stage (module docstring). The scheme is left at rho^(1) (the caller sets
        the state it keeps). None if a KSP did not converge."""
        scheme = self.scheme
        rho_n, full_n = scheme.density(), scheme.rho.x.array.copy()
        a0_out, a0_in = scheme.coefficients()
        self._assemble(dt, a0_out, a0_in)
        rho_1 = self._linear_solve(dt, rho_n)
        if rho_1 is None:
            return None
        scheme.set_density(rho_1)  # ghosts of rho^(1) and Psi[rho^(1)]
        full_1 = scheme.rho.x.array
        a1_out, a1_in = scheme.coefficients()
        # the Patankar weight rho^n/rho^(1): rho^(1) > 0 wherever rho^n > 0 (an M-matrix
        # solve); 0/0 (an empty cell stays empty) is 0
        ratio = np.zeros_like(full_n)
        np.divide(full_n, full_1, out=ratio, where=full_1 > 0)
        K, L = scheme.geometry.inner[:, 0], scheme.geometry.inner[:, 1]
        self._assemble(dt, 0.5 * (a0_out * ratio[K] + a1_out), 0.5 * (a0_in * ratio[L] + a1_in))
        rho_2 = self._linear_solve(dt, rho_n)
        return None if rho_2 is None else (rho_1, rho_2)

    def l1_difference(self, a: np.ndarray, b: np.ndarray) -> float:
        """sum_K |K| |a_K - b_K| over owned cells (global)."""
        vol = self.scheme.geometry.volumes[: self.scheme.n_owned]
        return self.scheme.comm.allreduce(float(vol @ np.abs(a - b)))

    def error_estimate(self, rate_old: np.ndarray, rate_new: np.ndarray, dt: float) -> float:
        """dt/2 sum_K |K| |L(rho^{n+1}) - L(rho^n)| (global)."""
        vol = self.scheme.geometry.volumes[: self.scheme.n_owned]
        local = 0.5 * dt * float(vol @ np.abs(rate_new - rate_old))
        return self.scheme.comm.allreduce(local)

    def destroy(self) -> None:
        for obj in (self.ksp, self.A, self.b, self.x):
            obj.destroy()


def time_error_summary(settings: PDESettings, h: float | None, tolerance: float | None,
                       accumulated: float, since: float) -> dict:
    """summary.json's "time_error": which error dominates the run.

    Implicit integrators: the global time error of an order-q integrator grows like
    tolerance^(q/2) and the "auto" tolerance is calibrated to a time error of a tenth of the
    space error (docs/verification-time.md), so time/space ~ 0.1 (tolerance/auto)^(q/2):
    "space" up to 0.1, "time" from 1, "comparable" between. ``accumulated_local_error`` is the
    sum of the accepted steps' local error estimates (L1 of the density; for "implicit" a
    measured upper bound of the global L1 time error, for "mprk22" the first-order stage's,
    so an overestimate) since t = ``accumulated_since_t`` (0, or where a resume started).
    Explicit integrators step at cfl x the positivity bound, where the time error is of
    higher order in h than the space error (not estimated)."""
    if settings.explicit:
        return {"integrator": settings.integrator, "dominant_error": "space",
                "why": "explicit SSP Runge-Kutta at cfl x the positivity step: the time "
                       "error is of higher order in h than the space error (not estimated)"}
    order = IMPLICIT_ORDER[settings.integrator]
    auto = auto_time_tolerance(settings.integrator, h)
    ratio = 0.1 * (tolerance / auto) ** (order / 2)
    dominant = "space" if ratio <= 0.1 * (1 + 1e-9) else "time" if ratio >= 1 else "comparable"
    return {"integrator": settings.integrator, "order": order, "h": h,
            "time_tolerance": tolerance, "auto_time_tolerance": auto,
            "time_to_space_error_ratio_estimate": ratio, "dominant_error": dominant,
            "accumulated_local_error": accumulated, "accumulated_since_t": since}
