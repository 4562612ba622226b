"""Linearly implicit (lagged-Psi) backward Euler for the finite-volume scheme, via PETSc KSP.

    |K| (rho_K^{n+1} - rho_K^n)/dt + sum_sigma (a_KL rho_K^{n+1} - a_LK rho_L^{n+1}) = 0,

with the flux coefficients a (Scharfetter-Gummel, upwind when beta = inf) taken at
Psi[rho^n]. The matrix is an M-matrix whose column sums are |K|/dt, so for any dt
the exact solution is >= 0 and has the mass of rho^n; the computed one to the
KSP's tolerance (DEFAULT_PETSC_OPTIONS).

The step is accepted when the free energy does not increase and the local error
estimate of backward Euler (its difference from the trapezoidal rule),

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

from solver.pde.finite_volume import FiniteVolume

#: KSP defaults, used when no PETSc option is given: a direct MUMPS solve (mass to
#: round-off, robust at any step). GMRES with block-Jacobi/ILU(0) (ksp_type=gmres,
#: pc_type=bjacobi, ksp_rtol=1e-13) is 4x faster at 128^2 for moderate steps but broke
#: down near stationarity, where the steps grow large (a failed solve rejects the step).
DEFAULT_PETSC_OPTIONS = {"ksp_type": "preonly", "pc_type": "lu",
                         "pc_factor_mat_solver_type": "mumps"}
OPTIONS_PREFIX = "meanfield_"


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

    def _assemble(self, dt: float) -> None:
        scheme = self.scheme
        a_out, a_in = scheme.coefficients()
        vol = scheme.geometry.volumes[: scheme.n_owned]
        ko, lo = self._k_owned, self._l_owned
        values = np.concatenate([vol / dt, a_out[ko], -a_in[ko], a_in[lo], -a_out[lo]])
        self.A.setValuesCOO(values, addv=PETSc.InsertMode.INSERT_VALUES)
        self.A.assemble()

    def solve(self, dt: float) -> np.ndarray | None:
        """rho^{n+1} on owned cells from the scheme's current state (which is not changed);
        None if the KSP did not converge."""
        scheme = self.scheme
        self._assemble(dt)
        rho = scheme.density()
        self.b.array[:] = scheme.geometry.volumes[: scheme.n_owned] / dt * rho
        self.x.array[:] = rho
        self.ksp.solve(self.b, self.x)
        self.iterations = self.ksp.getIterationNumber()
        if self.ksp.getConvergedReason() < 0:
            return None
        return self.x.array.copy()

    def error_estimate(self, rate_old: np.ndarray, rate_new: np.ndarray, dt: float) -> float:
        """dt/2 sum_K |K| |L(rho^{n+1}) - L(rho^n)| (global)."""
        vol = self.scheme.geometry.volumes[: self.scheme.n_owned]
        local = 0.5 * dt * float(vol @ np.abs(rate_new - rate_old))
        return self.scheme.comm.allreduce(local)

    def destroy(self) -> None:
        for obj in (self.ksp, self.A, self.b, self.x):
            obj.destroy()
