"""The time loop of a PDE run: one object with monitors, as PETSc's TS is.

``TimeLoop(scheme, stepper, state, output_times, settings, monitors).run()``::

    while an output time is ahead:
        while t < that time and the run is not stopped:
            dt, d = stepper.advance(...)    one accepted step (CFL bound or error control)
            check_step(...)                 finite energy, mass, rho >= 0, no energy rise,
                                            boundary outflow; else SchemeFailure
            record the step; t, step, outflow, last move on; the density is the last good
            monitor.step(loop)              progress, stationary stop, checkpoint/pre-emption
        monitor.output(loop, index)         f_t, E, loss, MC at the output time; snapshots

A failure calls every ``monitor.failed(loop, exc)`` before it propagates (the checkpoint
monitor writes the time series and the last good state), and ``monitor.close()`` always
runs. A discretisation plugs in through the Scheme protocol (solver.pde.scheme) and the
stepper; what happens around the steps is the monitors'.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
from mpi4py import MPI
from tqdm import tqdm

from solver import preemption
from solver.errors import DiskFullError, SchemeFailure
from solver.io import RunDirectory
from solver.model import functionals
from solver.model.problem import Problem
from solver.pde.checkpoint import CheckpointError
from solver.pde.run_writer import CHECKPOINT, RunState, RunWriter
from solver.pde.scheme import Diagnostics, Scheme
from solver.restart import Clock
from solver.settings import PDESettings

#: Relative tolerances of the per-step checks.
MASS_TOLERANCE = 1e-12
#: Round-off the mass may gather per step on top of MASS_TOLERANCE (4.5 eps: the rounding of
#: a few sums per stage); a DG2 run of 17 000 steps drifted by 1.0e-12, a leak is far larger.
MASS_ROUNDOFF_PER_STEP = 1e-15
ENERGY_TOLERANCE = 1e-12
#: Relative tolerance of the implicit solve's mass and positivity (LU: round-off).
IMPLICIT_TOLERANCE = 1e-10

COLUMNS = ("step", "t", "dt", *Diagnostics.__annotations__, "dEdt")


class Monitor:
    """Called by the loop; every hook does nothing unless overridden."""

    def step(self, loop: TimeLoop) -> None:
        """After every accepted (checked and recorded) step."""

    def output(self, loop: TimeLoop, index: int) -> None:
        """At output time ``index`` (the last index when the run stopped early)."""

    def failed(self, loop: TimeLoop, exc: Exception) -> None:
        """A step, a check or a monitor raised ``exc`` (it propagates afterwards)."""

    def close(self) -> None:
        """At the end, whatever happened."""


class TimeLoop:
    """Advances ``scheme`` from ``state`` through ``output_times`` (module docstring)."""

    def __init__(self, scheme: Scheme, stepper, state: RunState, output_times: np.ndarray,
                 settings: PDESettings, monitors: Sequence[Monitor]):
        self.scheme, self.stepper, self.state = scheme, stepper, state
        self.output_times, self.settings, self.monitors = output_times, settings, monitors
        self.mass_tolerance = MASS_TOLERANCE if settings.explicit else IMPLICIT_TOLERANCE
        self.dt = 0.0  # the last step
        self.good = scheme.density()  # the density of the last accepted step

    def record(self, step: int, t: float, dt: float, d: Diagnostics, dedt: float) -> None:
        """One row of the per-step record."""
        for key, value in (("step", step), ("t", t), ("dt", dt), *asdict(d).items(),
                           ("dEdt", dedt)):
            self.state.rows[key].append(float(value))

    def run(self) -> RunState:
        try:
            self._run()
        except Exception as exc:
            for monitor in self.monitors:
                monitor.failed(self, exc)
            raise
        finally:
            for monitor in self.monitors:
                monitor.close()
        return self.state

    def _run(self) -> None:
        state, t_final = self.state, self.output_times[-1]
        while state.index < len(self.output_times):
            target = self.output_times[state.index]
            while state.t < target and state.stopped == "t_final":
                self._step(target, t_final)
            if state.stopped != "t_final" and state.t < target:
                self._output(len(self.output_times) - 1)
                state.index = len(self.output_times)
                break
            self._output(state.index)
            state.index += 1

    def _step(self, target: float, t_final: float) -> None:
        state = self.state
        last = state.last
        where = f"step {state.step + 1}, t={state.t:.6g}"
        dt, d = self.stepper.advance(target - state.t, last, where)
        step = state.step + 1
        t = target if target - (state.t + dt) < 1e-12 * t_final else state.t + dt
        d = d or self.scheme.diagnostics()
        outflow = state.outflow + 0.5 * dt * (d.boundary_outflow + last.boundary_outflow)
        check_step(f"step {step}, t={t:.6g}", d, last, state.first,
                   self.mass_tolerance + step * MASS_ROUNDOFF_PER_STEP, outflow, self.settings)
        self.record(step, t, dt, d, (d.energy - last.energy) / dt)
        state.t, state.step, state.outflow, state.last = t, step, outflow, d
        self.dt, self.good = dt, self.scheme.density()
        for monitor in self.monitors:
            monitor.step(self)

    def _output(self, index: int) -> None:
        for monitor in self.monitors:
            monitor.output(self, index)


def check_step(where: str, d: Diagnostics, last: Diagnostics, first: Diagnostics,
               mass_tol: float, outflow: float, settings: PDESettings) -> None:
    """SchemeFailure naming the step, the time and the quantity when a check breaks."""
    if not np.isfinite(d.energy):
        raise SchemeFailure(f"{where}: energy is {d.energy}: the density or the unit values "
                            "overflowed; check [initial] and [unit], or lower pde.cfl")
    if abs(d.mass - first.mass) > mass_tol * first.mass:
        raise SchemeFailure(f"{where}: mass {d.mass!r} drifted from {first.mass!r}; an "
                            "iterative implicit solve needs a tighter ksp_rtol in [pde.petsc] "
                            "(or drop it for the direct default)")
    floor = 0.0 if settings.explicit else -IMPLICIT_TOLERANCE * first.mass
    if d.min_rho < floor:
        raise SchemeFailure(f"{where}: min rho = {d.min_rho:.3e} < {floor:g}; lower pde.cfl "
                            "(explicit) or tighten the solve in [pde.petsc] (implicit)")
    if d.energy > last.energy + ENERGY_TOLERANCE * abs(first.energy):
        raise SchemeFailure(
            f"{where}: energy increased from {last.energy!r} to {d.energy!r}; lower pde.cfl"
        )
    if not outflow <= settings.max_outflow:  # nan (a broken boundary normal) fails too
        raise SchemeFailure(
            f"{where}: {outflow:.3g} of the mass would have left through the boundary "
            f"(pde.max_outflow = {settings.max_outflow:g}); enlarge [domain] (lower/upper) so "
            "no mass reaches its wall, or raise pde.max_outflow"
        )


# -- the monitors ----------------------------------------------------------------------


class Progress(Monitor):
    """A progress bar in t on rank 0 (tqdm)."""

    def __init__(self, t_final: float, t: float, enabled: bool):
        self.bar = tqdm(total=t_final, initial=t, disable=not enabled, unit="t",
                        bar_format="{l_bar}{bar}| t={n:.3g}/{total:.3g} [{elapsed}<{remaining}]")

    def step(self, loop: TimeLoop) -> None:
        self.bar.update(loop.dt)

    def close(self) -> None:
        self.bar.close()


class StationaryStop(Monitor):
    """Stops the run once int |grad Psi|^2 rho falls below ``tolerance`` (0: never)."""

    def __init__(self, tolerance: float):
        self.tolerance = tolerance

    def step(self, loop: TimeLoop) -> None:
        if loop.state.last.dissipation < self.tolerance:
            loop.state.stopped = "stationary"


class Outputs(Monitor):
    """f_t, E, loss and MC at the output times; the density at the snapshot outputs.

    ``problem``: the run's problem when the scheme steps a ``Problem.weighted()`` copy
    without its zero-weight data points; f_t at those is then evaluated here, at the output
    times only, from the scheme's point measure (the rule its f is computed with); their unit
    values are kept while the points do not move (up to ``MESH_MATRIX_BYTES``)."""

    def __init__(self, scheme: Scheme, writer: RunWriter, snapshot_indices,
                 problem: Problem | None = None):
        self.scheme, self.writer, self.snapshots = scheme, writer, snapshot_indices
        self.problem = problem
        self._theta: np.ndarray | None = None  # the points of the cached unit values _S
        self._S: np.ndarray | None = None
        if problem is not None:
            weighted = problem.data.weights > 0
            self.rows, self.zero = np.flatnonzero(weighted), np.flatnonzero(~weighted)

    def f(self) -> np.ndarray:
        """f_t at every data point of the run's problem."""
        if self.problem is None:
            return self.scheme.f.copy()
        zero, x = self.zero, self.problem.data.points[self.zero]
        theta, weights = self.scheme.point_measure()
        if self._theta is None or not np.array_equal(theta, self._theta):
            # an Eulerian scheme's points never move: their unit values are built once
            self._theta = theta.copy()
            self._S = (self.problem.unit.values(x, theta)
                       if 8 * len(x) * len(theta) <= functionals.MESH_MATRIX_BYTES else None)
        if self._S is not None:
            local = self._S @ weights
        else:
            local = np.zeros(len(zero))
            for cols in functionals.column_blocks(len(x), len(theta), 1,
                                                  functionals.DEFAULT_MAX_BYTES):
                local += self.problem.unit.values(x, theta[cols]) @ weights[cols]
        out = np.empty(self.problem.data.size)
        out[self.rows] = self.scheme.f
        values = np.empty_like(local)
        self.scheme.comm.Allreduce(local, values, MPI.SUM)
        out[zero] = values
        return out

    def output(self, loop: TimeLoop, index: int) -> None:
        state, d = loop.state, loop.state.last
        if index in self.snapshots and self.writer.keeps_snapshots:  # a full disk: no trace
            self.writer.snapshot(state.t)
            state.snapshots.append((state.t, self.scheme.rho.x.array.copy()))
        for key, value in (("times", state.t), ("f", self.f()),
                           ("energy", d.energy), ("loss", d.loss),
                           ("mc", self.scheme.mc_variance())):
            state.outputs[key].append(value)

    def close(self) -> None:
        self.writer.close()


class Checkpoints(Monitor):
    """checkpoint.h5: every ``checkpoint_every`` seconds and when pre-empted (one small
    collective per step: the ranks agree), and after a failure the last good state.

    On a pre-emption signal the time series and a checkpoint are written and Preempted is
    raised on every rank. After a SchemeFailure (or RuntimeError) the density goes back to
    the last good step, whose state is saved; after a full disk the snapshots' temporary
    files go and the state is saved if it still fits (else the previous checkpoint stays).
    """

    def __init__(self, run_dir: RunDirectory | None, writer: RunWriter, comm: MPI.Comm,
                 every: float, start: float):
        self.run_dir, self.writer, self.comm, self.start = run_dir, writer, comm, start
        self.clock = Clock(every)
        self.disk_full = False  # the checkpoint itself met a full disk: not tried again

    def save(self, loop: TimeLoop, status: str) -> None:
        state = loop.state
        state.next_dt = loop.stepper.controller_state
        try:
            self.writer.checkpoint(state, status,
                                   state.wall_time + time.perf_counter() - self.start)
        except DiskFullError:
            self.disk_full = True
            raise

    def step(self, loop: TimeLoop) -> None:
        if self.run_dir is None:
            return
        flags = np.array([self.clock.due(), preemption.requested()], dtype=np.int32)
        self.comm.Allreduce(MPI.IN_PLACE, flags, MPI.MAX)
        state = loop.state
        where = f"step {state.step}, t={state.t:.6g}"
        if flags[1]:
            status = f"pre-empted ({preemption.reason() or 'another rank'}) at {where}"
            self.writer.timeseries(state, status)
            self.save(loop, status)
            raise preemption.Preempted(f"{status}; checkpoint {self.run_dir.path / CHECKPOINT}")
        if flags[0]:
            self.save(loop, f"running, {where}")
            self.clock.reset()

    def failed(self, loop: TimeLoop, exc: Exception) -> None:
        state = loop.state
        if isinstance(exc, preemption.Preempted | CheckpointError):
            return
        if isinstance(exc, DiskFullError):
            self.writer.abandon()
            if not self.disk_full:
                with contextlib.suppress(DiskFullError):
                    self.writer.timeseries(state, f"disk full after step {state.step}")
                    self.save(loop, f"disk full after step {state.step}")
        elif isinstance(exc, SchemeFailure | RuntimeError):
            loop.scheme.set_density(loop.good)
            self.writer.timeseries(state, f"failed after step {state.step}")
            self.save(loop, f"last good state before a failure after step {state.step}")
