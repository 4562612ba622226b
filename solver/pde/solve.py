"""The PDE time loop: adaptive steps, structural checks every step, outputs at fixed times.

Explicit integrators take dt = cfl * (the scheme's positivity bound); the implicit
one takes the step its error controller allows. Every accepted step records
(t, dt, E, loss, mass, min rho, dissipation, dE/dt, boundary outflow); a broken
check raises SchemeFailure naming the step, the time and the quantity, after the
time series and the last good state are written.

Restart: the whole loop state (``RunState``) is checkpointed every
``checkpoint_every`` seconds and on SIGTERM/SIGUSR1 (``solver.preemption``: the ranks
agree with one small allreduce per step, write the checkpoint and raise Preempted);
``solve(..., resume=True)`` continues from it. The steps are deterministic functions
of the stored state, so on the same number of ranks a resumed run is bit-identical to
an uninterrupted one; on another rank count, to the round-off of the reductions.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from mpi4py import MPI
from tqdm import tqdm

from solver import preemption
from solver.errors import DiskFullError, SchemeFailure
from solver.io import RunDirectory, remove_path
from solver.model.cell_density import CellDensity
from solver.model.density import Density
from solver.model.problem import Problem
from solver.pde.checkpoint import CheckpointError, load_checkpoint
from solver.pde.finite_volume import FiniteVolume
from solver.pde.implicit import ImplicitEuler, step_factor, time_error_summary
from solver.pde.meshes import build_mesh, load_mesh, read_mesh
from solver.pde.output import read_timeseries
from solver.pde.run_writer import CHECKPOINT, RunState, RunWriter
from solver.pde.scheme import Diagnostics, Scheme
from solver.pde.timestepping import try_step
from solver.restart import Clock, fingerprint
from solver.settings import RESULT_NEUTRAL, PDESettings

#: Relative tolerances of the per-step checks.
MASS_TOLERANCE = 1e-12
#: Round-off the mass may gather per step on top of MASS_TOLERANCE (4.5 eps: the rounding of
#: a few sums per stage); a DG2 run of 17 000 steps drifted by 1.0e-12, a leak is far larger.
MASS_ROUNDOFF_PER_STEP = 1e-15
ENERGY_TOLERANCE = 1e-12
MIN_STEP_FRACTION = 1e-12
#: Relative tolerance of the implicit solve's mass and positivity (LU: round-off).
IMPLICIT_TOLERANCE = 1e-10

COLUMNS = ("step", "t", "dt", *Diagnostics.__annotations__, "dEdt")


@dataclass
class PDEResult:
    """Outputs at the output times, plus the per-step record of the checks."""

    times: np.ndarray
    f: np.ndarray  # (n_out, M): f_t(x_m)
    energy: np.ndarray
    loss: np.ndarray
    mc: np.ndarray
    steps: dict[str, list[float]] = field(default_factory=dict)
    wall_time: float = 0.0
    cells: int = 0
    stopped: str = "t_final"
    resumed_from: float | None = None  # t of the checkpoint a resumed run started from
    time_error: dict = field(default_factory=dict)  # summary.json's "time_error"
    scheme: Scheme | None = field(default=None, repr=False)  # holds the final density


def make_mesh(comm: MPI.Comm, problem: Problem, settings: PDESettings):
    """The mesh of the problem's domain the settings name (cells, mesh + level, or a file)."""
    if settings.mesh is not None:
        return load_mesh(comm, problem.domain, settings.mesh, settings.level)
    if settings.mesh_file is not None:
        return read_mesh(comm, settings.mesh_file, problem.domain)
    return build_mesh(comm, problem.domain, settings.cells)


def make_scheme(problem: Problem, settings: PDESettings, comm: MPI.Comm) -> Scheme:
    """The mesh and the spatial discretisation the settings ask for."""
    msh = make_mesh(comm, problem, settings)
    if settings.scheme == "dg":
        if np.isfinite(problem.beta):
            raise ValueError('pde.scheme: "dg" is for beta = inf; use "fv" (Scharfetter-Gummel)')
        from solver.pde.dg_transport import DGTransport

        return DGTransport(msh, problem, settings.degree, compress_rtol=settings.compress_rtol)
    return FiniteVolume(msh, problem, compress_rtol=settings.compress_rtol)


class _Stepper:
    """Advances a scheme by one accepted step; chooses dt (CFL or error control).

    The implicit controller's state is the next step ``next_dt`` (given when resuming)
    and the rate L(rho) of the current density (recomputed here, bit for bit)."""

    def __init__(self, scheme: Scheme, problem: Problem, settings: PDESettings,
                 next_dt: float | None = None):
        self.scheme, self.problem, self.settings = scheme, problem, settings
        self.implicit = None
        self.time_error = 0.0  # the accepted steps' local error estimates, summed
        if not settings.explicit:
            self.implicit = ImplicitEuler(scheme, dict(settings.petsc))
            self.h = scheme.comm.allreduce(float(np.max(scheme.geometry.inner_distance,
                                                        initial=0.0)), MPI.MAX)
            self.tolerance = settings.resolved_time_tolerance(self.h)
            self.next_dt = (settings.cfl * scheme.max_stable_step() if next_dt is None
                            else next_dt)
            self.rate = scheme.rate()

    def time_error_summary(self, since: float) -> dict:
        """What summary.json says of the time error (docs/verification-time.md)."""
        return time_error_summary(self.settings, None if self.implicit is None else self.h,
                                  None if self.implicit is None else self.tolerance,
                                  self.time_error, since)

    @property
    def controller_state(self) -> float | None:
        """What a checkpoint keeps of the controller: the next implicit step (or None)."""
        return None if self.implicit is None else self.next_dt

    def advance(self, remaining: float, last: Diagnostics, where: str
                ) -> tuple[float, Diagnostics | None]:
        """Take one step of at most ``remaining``; return its dt and, when the step's
        acceptance needed them, the new diagnostics."""
        s, min_dt = self.settings, MIN_STEP_FRACTION * self.problem.t_final
        if self.implicit is None:
            dt = min(s.cfl * self.scheme.max_stable_step(), s.max_step, remaining)
            while not try_step(self.scheme, s.integrator, dt):
                dt /= 2
                if dt < min_dt:
                    raise SchemeFailure(f"{where}: time step collapsed below {min_dt:.3g}: every "
                                        "step broke positivity or the energy; lower pde.cfl "
                                        "or, with scheme fv, use integrator = \"implicit\"")
            return dt, None
        dt = min(self.next_dt, s.max_step, remaining)
        rho = self.scheme.density()
        second_order = s.integrator == "mprk22"
        while True:
            if second_order:
                stages = self.implicit.solve_mprk22(dt)
                new = None if stages is None else stages[1]
            else:
                new = self.implicit.solve(dt)
            if new is None:  # the KSP failed: a smaller step is better conditioned
                dt *= 0.5
                if dt < min_dt:
                    raise SchemeFailure(f"{where}: the implicit solve failed down to dt = "
                                        f"{dt:.3g}; drop the ksp options of [pde.petsc] "
                                        "(the default is a direct MUMPS solve) or choose "
                                        "a stronger preconditioner")
                continue
            self.scheme.set_density(new)
            if second_order:  # the first-order stage's local error (embedded pair)
                rate, err = None, self.implicit.l1_difference(stages[0], new)
            else:
                rate = self.scheme.rate()
                err = self.implicit.error_estimate(self.rate, rate, dt)
            diagnostics = self.scheme.diagnostics()
            if err <= self.tolerance and diagnostics.energy <= last.energy + (
                    ENERGY_TOLERANCE * abs(last.energy)):
                self.rate, self.next_dt = rate, dt * step_factor(err, self.tolerance)
                self.time_error += err
                return dt, diagnostics
            self.scheme.set_density(rho)
            dt *= step_factor(err, self.tolerance, upper=0.5)
            if dt < min_dt:
                raise SchemeFailure(f"{where}: implicit step collapsed below {min_dt:.3g}: the "
                                    "error estimate or the energy rejected every step; raise "
                                    "pde.time_tolerance or refine the mesh")


def initial_state(scheme: Scheme, initial: Density) -> np.ndarray:
    """rho_0 on the scheme's owned dofs: the scheme's discretisation of an analytic
    density, or for a ``CellDensity`` the stored field itself, loaded onto this run's
    mesh (which must be the one it was written on). Collective."""
    if not isinstance(initial, CellDensity):
        return scheme.initial_density()
    try:
        ckpt = load_checkpoint(initial.file, scheme.mesh, scheme.rho)
    except CheckpointError as exc:
        raise ValueError(f"initial.file: {exc}; start from a checkpoint written with this "
                         "run's [pde] mesh and scheme") from exc
    if ckpt.sha256 != initial.sha256:
        raise ValueError(f"initial.file: {initial.file} changed since the config was read; "
                         "load the config again")
    values = scheme.rho.x.array if initial.field is None else ckpt.fields[initial.field]
    return values[: scheme.rho.function_space.dofmap.index_map.size_local].copy()


def run_fingerprint(problem: Problem, settings: PDESettings) -> str:
    """SHA-256 of the problem and the settings that change the result (not progress or
    checkpoint_every): a checkpoint only resumes the run that wrote it."""
    kept = {k: v for k, v in asdict(settings).items() if k not in RESULT_NEUTRAL}
    return fingerprint(problem=problem, pde_settings=kept)


def _resume_state(scheme: Scheme, run_dir: RunDirectory | None, fingerprint_: str,
                  comm: MPI.Comm) -> RunState | None:
    """The state in checkpoint.h5 (the density goes into ``scheme.rho``; the caller sets
    it), or None if there is no checkpoint. CheckpointError (naming the file) for an
    unusable one."""
    path = None if run_dir is None else run_dir.path / CHECKPOINT
    if comm.rank == 0 and path is not None:  # what a killed run was writing
        for stale in path.parent.glob(".*.tmp-*"):
            remove_path(stale)
    if not comm.bcast(path is not None and path.is_file(), root=0):
        return None
    try:
        ckpt = load_checkpoint(path, scheme.mesh, scheme.rho,
                               expect={"fingerprint": fingerprint_})
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}. This checkpoint cannot be resumed: resume with the "
                              "config and settings that wrote it, or start afresh with "
                              "--force (which deletes it)") from exc
    return RunState.from_checkpoint(ckpt)


def solve(problem: Problem, settings: PDESettings, run_dir: RunDirectory | None = None,
          comm: MPI.Comm = MPI.COMM_WORLD, resume: bool = False) -> PDEResult:
    """Solve d rho/dt = div(rho grad Psi[rho]) + (1/beta) Laplace rho and write the run.

    With a run directory, the whole state goes to checkpoint.h5 every
    ``settings.checkpoint_every`` seconds, and when ``solver.preemption`` reports a
    signal (then ``Preempted`` is raised on every rank); ``resume`` continues from
    checkpoint.h5 when there is one (on any number of ranks) to the result of an
    uninterrupted run, and refuses the checkpoint of another problem or settings.
    """
    start = time.perf_counter()
    if isinstance(problem.initial, CellDensity):
        problem.initial.check_mesh_settings(asdict(settings))
    scheme = make_scheme(problem, settings, comm)
    scheme.set_density(initial_state(scheme, problem.initial))
    run_id = run_fingerprint(problem, settings)
    state = _resume_state(scheme, run_dir, run_id, comm) if resume else None
    writer = RunWriter(run_dir, scheme, problem, settings, run_id)
    if state is not None:  # rewrite rho.bp (and the figure's snapshots) up to now
        density = scheme.density()
        for t, values in state.snapshots:
            scheme.rho.x.array[:] = values
            writer.snapshot(t)
        scheme.set_density(density)
    resumed_from = None if state is None else state.t
    out_times = settings.output_times(problem.t_final)
    snaps = settings.snapshot_indices()
    mass_tol = MASS_TOLERANCE if settings.explicit else IMPLICIT_TOLERANCE
    stepper = _Stepper(scheme, problem, settings, None if state is None else state.next_dt)

    def record(step: int, t: float, dt: float, d: Diagnostics, dedt: float) -> None:
        for key, value in (("step", step), ("t", t), ("dt", dt), *asdict(d).items(),
                           ("dEdt", dedt)):
            state.rows[key].append(float(value))

    def output(index: int, t: float, d: Diagnostics) -> None:
        if index in snaps and writer.keeps_snapshots:  # first: a full disk leaves no trace
            writer.snapshot(t)
            state.snapshots.append((t, scheme.rho.x.array.copy()))
        for key, value in (("times", t), ("f", scheme.f.copy()), ("energy", d.energy),
                           ("loss", d.loss), ("mc", scheme.mc_variance())):
            state.outputs[key].append(value)

    if state is None:
        first = scheme.diagnostics()
        state = RunState(first=first, last=first, rows={k: [] for k in COLUMNS})
        record(0, 0.0, 0.0, first, -first.dissipation)
        output(0, 0.0, first)
    bar = tqdm(total=problem.t_final, initial=state.t,
               disable=not (comm.rank == 0 and settings.progress), unit="t",
               bar_format="{l_bar}{bar}| t={n:.3g}/{total:.3g} [{elapsed}<{remaining}]")
    clock = Clock(settings.checkpoint_every)
    good = scheme.density()

    checkpoint_full = []  # a DiskFullError of the checkpoint itself: not tried again

    def save(status: str) -> None:
        state.next_dt = stepper.controller_state
        try:
            writer.checkpoint(state, status, state.wall_time + time.perf_counter() - start)
        except DiskFullError:
            checkpoint_full.append(True)
            raise

    def checkpoint_or_stop() -> None:
        """One small collective per step: a checkpoint when due on any rank; when any
        rank was signalled, a checkpoint and Preempted everywhere."""
        if run_dir is None:
            return
        flags = np.array([clock.due(), preemption.requested()], dtype=np.int32)
        comm.Allreduce(MPI.IN_PLACE, flags, MPI.MAX)
        where = f"step {state.step}, t={state.t:.6g}"
        if flags[1]:
            status = f"pre-empted ({preemption.reason() or 'another rank'}) at {where}"
            writer.timeseries(state, status)
            save(status)
            raise preemption.Preempted(f"{status}; checkpoint {run_dir.path / CHECKPOINT}")
        if flags[0]:
            save(f"running, {where}")
            clock.reset()

    try:
        while state.index < len(out_times):
            target = out_times[state.index]
            while state.t < target and state.stopped == "t_final":
                last = state.last
                dt, d = stepper.advance(target - state.t, last, f"step {state.step + 1}, "
                                                                f"t={state.t:.6g}")
                step = state.step + 1
                t = target if target - (state.t + dt) < 1e-12 * problem.t_final else state.t + dt
                d = d or scheme.diagnostics()
                outflow = state.outflow + 0.5 * dt * (d.boundary_outflow + last.boundary_outflow)
                _check(f"step {step}, t={t:.6g}", d, last, state.first,
                       mass_tol + step * MASS_ROUNDOFF_PER_STEP, outflow, settings)
                record(step, t, dt, d, (d.energy - last.energy) / dt)
                state.t, state.step, state.outflow, state.last = t, step, outflow, d
                good = scheme.density()
                bar.update(dt)
                if d.dissipation < settings.stationary_tolerance:
                    state.stopped = "stationary"
                checkpoint_or_stop()
            if state.stopped != "t_final" and state.t < target:
                output(len(out_times) - 1, state.t, state.last)
                state.index = len(out_times)
                break
            output(state.index, state.t, state.last)
            state.index += 1
    except (preemption.Preempted, CheckpointError):
        raise
    except DiskFullError:
        # rho.bp's temporary files go; the time series and the state at the last step
        # are written if they still fit (else the previous checkpoint stays)
        writer.abandon()
        if not checkpoint_full:
            with contextlib.suppress(DiskFullError):
                writer.timeseries(state, f"disk full after step {state.step}")
                save(f"disk full after step {state.step}")
        raise
    except (SchemeFailure, RuntimeError):
        scheme.set_density(good)
        writer.timeseries(state, f"failed after step {state.step}")
        save(f"last good state before a failure after step {state.step}")
        raise
    finally:
        bar.close()
        writer.close()

    state.next_dt = stepper.controller_state
    state.wall_time += comm.allreduce(time.perf_counter() - start, MPI.MAX)
    result = PDEResult(
        times=np.array(state.outputs["times"]),
        f=np.array(state.outputs["f"]),
        energy=np.array(state.outputs["energy"]),
        loss=np.array(state.outputs["loss"]),
        mc=np.array(state.outputs["mc"]),
        steps=state.rows,
        wall_time=state.wall_time,
        cells=scheme.mesh.topology.index_map(scheme.mesh.topology.dim).size_global,
        stopped=state.stopped,
        resumed_from=resumed_from,
        time_error=stepper.time_error_summary(resumed_from or 0.0),
        scheme=scheme,
    )
    writer.finish(result, state)
    return result


def load_result(pde_dir: Path, comm: MPI.Comm = MPI.COMM_WORLD) -> PDEResult:
    """The result of a finished run read back from its timeseries.h5 and summary.json (no
    density: ``scheme`` is None). Collective: rank 0 reads, every rank gets it."""
    data = None
    if comm.rank == 0:
        steps, outputs, _ = read_timeseries(pde_dir / "timeseries.h5")
        summary = json.loads((pde_dir / "summary.json").read_text())
        data = (steps, outputs, summary)
    steps, outputs, summary = comm.bcast(data, root=0)
    return PDEResult(times=outputs["times"], f=outputs["f"], energy=outputs["energy"],
                     loss=outputs["loss"], mc=outputs["mc"],
                     steps={k: v.tolist() for k, v in steps.items()},
                     wall_time=summary["wall_time_s"], cells=summary["cells"],
                     stopped=summary["stopped"])


def _check(where: str, d: Diagnostics, last: Diagnostics, first: Diagnostics, mass_tol: float,
           outflow: float, settings: PDESettings) -> None:
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
