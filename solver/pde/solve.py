"""A PDE run: the mesh and the scheme, the step (CFL or error control), the time loop
(solver.pde.time_loop, with its monitors) and the result.

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

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from mpi4py import MPI

from solver.errors import SchemeFailure
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
from solver.pde.time_loop import (
    COLUMNS,
    ENERGY_TOLERANCE,
    Checkpoints,
    Outputs,
    Progress,
    StationaryStop,
    TimeLoop,
)
from solver.pde.timestepping import try_step
from solver.restart import fingerprint
from solver.settings import RESULT_NEUTRAL, PDESettings

#: The smallest step, relative to t_final, before a run is declared stuck.
MIN_STEP_FRACTION = 1e-12


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
    if settings.scheme == "lagrangian":
        if np.isfinite(problem.beta):
            raise ValueError('pde.scheme: "lagrangian" is for beta = inf; use "fv"')
        from solver.pde.lagrangian import LagrangianTransport

        return LagrangianTransport(msh, problem, settings.degree)
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


def make_stepper(scheme: Scheme, problem: Problem, settings: PDESettings,
                 next_dt: float | None):
    """The step controller of the scheme: the node integrator of "lagrangian", else CFL or
    the implicit controller."""
    if settings.scheme == "lagrangian":
        from solver.pde.lagrangian import LagrangianStepper

        return LagrangianStepper(scheme, problem, settings, next_dt)
    return _Stepper(scheme, problem, settings, next_dt)


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
    # points of weight 0 (test sets, grids) are evaluated at the output times only
    dynamics, _ = problem.weighted()
    scheme = make_scheme(dynamics, settings, comm)
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
    stepper = make_stepper(scheme, dynamics, settings, None if state is None else state.next_dt)
    outputs = Outputs(scheme, writer, settings.snapshot_indices(),
                      None if dynamics is problem else problem)
    fresh = state is None
    if fresh:
        first = scheme.diagnostics()
        state = RunState(first=first, last=first, rows={k: [] for k in COLUMNS})
    monitors = [Progress(problem.t_final, state.t, comm.rank == 0 and settings.progress),
                StationaryStop(settings.stationary_tolerance), outputs,
                Checkpoints(run_dir, writer, comm, settings.checkpoint_every, start)]
    loop = TimeLoop(scheme, stepper, state, out_times, settings, monitors)
    if fresh:
        loop.record(0, 0.0, 0.0, state.first, -state.first.dissipation)
        outputs.output(loop, 0)
    loop.run()

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
