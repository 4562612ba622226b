"""The PDE time loop: adaptive steps, structural checks every step, outputs at fixed times.

Explicit integrators take dt = cfl * (the scheme's positivity bound); the implicit
one takes the step its error controller allows. Every accepted step records
(t, dt, E, loss, mass, min rho, dissipation, dE/dt, boundary outflow); a broken
check raises SchemeFailure naming the step, the time and the quantity, after the
time series and the last good state are written.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
from mpi4py import MPI
from tqdm import tqdm

from solver.io import RunDirectory
from solver.model.problem import Problem
from solver.pde.finite_volume import FiniteVolume
from solver.pde.meshes import build_mesh, load_mesh, read_mesh
from solver.pde.run_writer import RunWriter
from solver.pde.scheme import Diagnostics, Scheme
from solver.pde.timestepping import try_step
from solver.settings import PDESettings

#: Relative tolerances of the per-step checks.
MASS_TOLERANCE = 1e-12
ENERGY_TOLERANCE = 1e-12
MIN_STEP_FRACTION = 1e-12
#: Relative tolerance of the implicit solve's mass and positivity (LU: round-off).
IMPLICIT_TOLERANCE = 1e-10

COLUMNS = ("step", "t", "dt", *Diagnostics.__annotations__, "dEdt")


class SchemeFailure(RuntimeError):
    """A structural check broke: names the step, the time and the quantity."""


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
    """Advances a scheme by one accepted step; chooses dt (CFL or error control)."""

    def __init__(self, scheme: Scheme, problem: Problem, settings: PDESettings):
        self.scheme, self.problem, self.settings = scheme, problem, settings
        self.implicit = None
        if not settings.explicit:
            from solver.pde.implicit import ImplicitEuler

            self.implicit = ImplicitEuler(scheme, dict(settings.petsc))
            self.next_dt = settings.cfl * scheme.max_stable_step()
            self.rate = scheme.rate()

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
                    raise SchemeFailure(f"{where}: time step collapsed below {min_dt:.3g}")
            return dt, None
        dt = min(self.next_dt, s.max_step, remaining)
        rho = self.scheme.density()
        while True:
            new = self.implicit.solve(dt)
            if new is None:  # the KSP failed: a smaller step is better conditioned
                dt *= 0.5
                if dt < min_dt:
                    raise SchemeFailure(f"{where}: the implicit solve (pde.petsc) failed down "
                                        f"to dt = {dt:.3g}")
                continue
            self.scheme.set_density(new)
            rate = self.scheme.rate()
            err = self.implicit.error_estimate(self.rate, rate, dt)
            grow = 0.9 * np.sqrt(s.time_tolerance / err) if err > 0 else 2.0
            diagnostics = self.scheme.diagnostics()
            if err <= s.time_tolerance and diagnostics.energy <= last.energy + (
                    ENERGY_TOLERANCE * abs(last.energy)):
                self.rate, self.next_dt = rate, dt * float(np.clip(grow, 0.2, 2.0))
                return dt, diagnostics
            self.scheme.set_density(rho)
            dt *= float(np.clip(grow, 0.2, 0.5))
            if dt < min_dt:
                raise SchemeFailure(f"{where}: implicit step collapsed below {min_dt:.3g}")


def solve(problem: Problem, settings: PDESettings, run_dir: RunDirectory | None = None,
          comm: MPI.Comm = MPI.COMM_WORLD) -> PDEResult:
    """Solve d rho/dt = div(rho grad Psi[rho]) + (1/beta) Laplace rho and write the run."""
    start = time.perf_counter()
    scheme = make_scheme(problem, settings, comm)
    scheme.set_density(scheme.initial_density())
    stepper = _Stepper(scheme, problem, settings)
    writer = RunWriter(run_dir, scheme, problem, settings)
    out_times = settings.output_times(problem.t_final)
    snaps = settings.snapshot_indices()
    mass_tol = MASS_TOLERANCE if settings.explicit else IMPLICIT_TOLERANCE

    rows: dict[str, list[float]] = {k: [] for k in COLUMNS}
    outputs: dict[str, list] = {"times": [], "f": [], "energy": [], "loss": [], "mc": []}
    first = last = scheme.diagnostics()

    def record(step: int, t: float, dt: float, d: Diagnostics, dedt: float) -> None:
        for key, value in (("step", step), ("t", t), ("dt", dt), *asdict(d).items(),
                           ("dEdt", dedt)):
            rows[key].append(float(value))

    def output(index: int, t: float, d: Diagnostics) -> None:
        for key, value in (("times", t), ("f", scheme.f.copy()), ("energy", d.energy),
                           ("loss", d.loss), ("mc", scheme.mc_variance())):
            outputs[key].append(value)
        if index in snaps:
            writer.snapshot(t)

    record(0, 0.0, 0.0, first, -first.dissipation)
    output(0, 0.0, first)
    t, step, outflow, stopped = 0.0, 0, 0.0, "t_final"
    bar = tqdm(total=problem.t_final, disable=not (comm.rank == 0 and settings.progress),
               unit="t", bar_format="{l_bar}{bar}| t={n:.3g}/{total:.3g} [{elapsed}<{remaining}]")
    good = scheme.density()
    try:
        for index in range(1, len(out_times)):
            target = out_times[index]
            while t < target and stopped == "t_final":
                where = f"step {step + 1}, t={t:.6g}"
                dt, d = stepper.advance(target - t, last, where)
                step += 1
                t = target if target - (t + dt) < 1e-12 * problem.t_final else t + dt
                d = d or scheme.diagnostics()
                outflow += 0.5 * dt * (d.boundary_outflow + last.boundary_outflow)
                _check(f"step {step}, t={t:.6g}", d, last, first, mass_tol, outflow, settings)
                record(step, t, dt, d, (d.energy - last.energy) / dt)
                last, good = d, scheme.density()
                bar.update(dt)
                if d.dissipation < settings.stationary_tolerance:
                    stopped = "stationary"
            if stopped != "t_final" and t < target:
                output(len(out_times) - 1, t, last)
                break
            output(index, t, last)
    except (SchemeFailure, RuntimeError):
        scheme.set_density(good)
        writer.failure(rows, rows["t"][-1], int(rows["step"][-1]))
        raise
    finally:
        bar.close()
        writer.close()

    result = PDEResult(
        times=np.array(outputs["times"]),
        f=np.array(outputs["f"]),
        energy=np.array(outputs["energy"]),
        loss=np.array(outputs["loss"]),
        mc=np.array(outputs["mc"]),
        steps=rows,
        wall_time=comm.allreduce(time.perf_counter() - start, MPI.MAX),
        cells=scheme.mesh.topology.index_map(scheme.mesh.topology.dim).size_global,
        stopped=stopped,
        scheme=scheme,
    )
    writer.finish(result, first, last, t, step)
    return result


def _check(where: str, d: Diagnostics, last: Diagnostics, first: Diagnostics, mass_tol: float,
           outflow: float, settings: PDESettings) -> None:
    if not np.isfinite(d.energy):
        raise SchemeFailure(f"{where}: energy is {d.energy}")
    if abs(d.mass - first.mass) > mass_tol * first.mass:
        raise SchemeFailure(f"{where}: mass {d.mass!r} drifted from {first.mass!r}")
    floor = 0.0 if settings.explicit else -IMPLICIT_TOLERANCE * first.mass
    if d.min_rho < floor:
        raise SchemeFailure(f"{where}: min rho = {d.min_rho:.3e} < {floor:g}")
    if d.energy > last.energy + ENERGY_TOLERANCE * abs(first.energy):
        raise SchemeFailure(
            f"{where}: energy increased from {last.energy!r} to {d.energy!r}; lower pde.cfl"
        )
    if outflow > settings.max_outflow:
        raise SchemeFailure(
            f"{where}: {outflow:.3g} of the mass would have left through the boundary "
            f"(pde.max_outflow = {settings.max_outflow:g}); enlarge the domain"
        )
