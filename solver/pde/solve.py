"""The PDE time loop: adaptive CFL steps, checks every step, outputs at fixed times."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
from dolfinx import io
from mpi4py import MPI
from tqdm import tqdm

from solver.io import RunDirectory
from solver.model.problem import Problem
from solver.pde.meshes import box_mesh
from solver.pde.scheme import Diagnostics
from solver.pde.timestepping import try_step
from solver.pde.upwind_fv import UpwindFV
from solver.settings import PDESettings

#: Relative tolerances of the per-step checks.
MASS_TOLERANCE = 1e-12
ENERGY_TOLERANCE = 1e-12
MIN_STEP_FRACTION = 1e-12


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


def solve(problem: Problem, settings: PDESettings, run_dir: RunDirectory | None = None,
          comm: MPI.Comm = MPI.COMM_WORLD) -> PDEResult:
    """Solve d rho/dt = div(rho grad Psi[rho]) on [0, t_final] and write the run directory."""
    if np.isfinite(problem.beta):
        raise NotImplementedError("beta < inf: the upwind scheme is noiseless (beta = inf) only")
    start = time.perf_counter()
    msh = box_mesh(comm, problem.domain, settings.cells)
    scheme = UpwindFV(msh, problem)
    scheme.set_density(scheme.initial_density())
    rank0 = comm.rank == 0
    out_times = settings.output_times(problem.t_final)
    snaps = settings.snapshot_indices()
    xdmf = _open_xdmf(run_dir, comm, msh) if snaps else None

    columns = ("step", "t", "dt", *Diagnostics.__annotations__)
    rows: dict[str, list[float]] = {k: [] for k in columns}
    outputs: dict[str, list] = {"f": [], "energy": [], "loss": [], "mc": []}
    diag0 = scheme.diagnostics()
    last = diag0

    def record(step: int, t: float, dt: float, d: Diagnostics) -> None:
        for key, value in (("step", step), ("t", t), ("dt", dt), *asdict(d).items()):
            rows[key].append(float(value))

    def output(index: int, t: float, d: Diagnostics) -> None:
        outputs["f"].append(scheme.f.copy())
        outputs["energy"].append(d.energy)
        outputs["loss"].append(d.loss)
        outputs["mc"].append(scheme.mc_variance())
        if xdmf is not None and index in snaps:
            xdmf.write_function(scheme.rho, t)

    record(0, 0.0, 0.0, diag0)
    output(0, 0.0, diag0)
    t, step = 0.0, 0
    bar = tqdm(total=problem.t_final, disable=not (rank0 and settings.progress), unit="t",
               bar_format="{l_bar}{bar}| t={n:.3g}/{total:.3g} [{elapsed}<{remaining}]")
    try:
        for index in range(1, len(out_times)):
            target = out_times[index]
            while t < target:
                dt = min(settings.cfl * scheme.max_stable_step(), settings.max_step, target - t)
                while not try_step(scheme, settings.integrator, dt):
                    dt /= 2
                    if dt < MIN_STEP_FRACTION * problem.t_final:
                        raise SchemeFailure(f"step {step + 1}, t={t:.6g}: time step collapsed")
                step += 1
                t = target if target - (t + dt) < 1e-12 * problem.t_final else t + dt
                d = scheme.diagnostics()
                _check(step, t, d, last, diag0)
                record(step, t, dt, d)
                last = d
                bar.update(dt)
            output(index, t, last)
    except SchemeFailure:
        _write_steps(run_dir, rows)
        raise
    finally:
        bar.close()
        if xdmf is not None:
            xdmf.close()

    result = PDEResult(
        times=out_times,
        f=np.array(outputs["f"]),
        energy=np.array(outputs["energy"]),
        loss=np.array(outputs["loss"]),
        mc=np.array(outputs["mc"]),
        steps=rows,
        wall_time=comm.allreduce(time.perf_counter() - start, MPI.MAX),
        cells=msh.topology.index_map(msh.topology.dim).size_global,
    )
    if run_dir is not None:
        _write_result(run_dir, result, settings, diag0, last)
    return result


def _check(step: int, t: float, d: Diagnostics, last: Diagnostics, first: Diagnostics) -> None:
    where = f"step {step}, t={t:.6g}"
    if not np.isfinite(d.energy):
        raise SchemeFailure(f"{where}: energy is {d.energy}")
    if abs(d.mass - first.mass) > MASS_TOLERANCE * first.mass:
        raise SchemeFailure(f"{where}: mass {d.mass!r} drifted from {first.mass!r}")
    if d.min_rho < 0:
        raise SchemeFailure(f"{where}: min rho = {d.min_rho:.3e} < 0")
    if d.energy > last.energy + ENERGY_TOLERANCE * first.energy:
        raise SchemeFailure(
            f"{where}: energy increased from {last.energy!r} to {d.energy!r}; lower pde.cfl"
        )


def _open_xdmf(run_dir: RunDirectory | None, comm: MPI.Comm, msh) -> io.XDMFFile | None:
    if run_dir is None:
        return None
    path = comm.bcast(str(run_dir / "rho.xdmf") if comm.rank == 0 else None, root=0)
    xdmf = io.XDMFFile(comm, path, "w")
    xdmf.write_mesh(msh)
    return xdmf


def _write_steps(run_dir: RunDirectory | None, rows: dict[str, list[float]]) -> None:
    if run_dir is not None:
        run_dir.write_csv("timeseries.csv", list(rows), zip(*rows.values(), strict=True))


def _write_result(run_dir: RunDirectory, result: PDEResult, settings: PDESettings,
                  first: Diagnostics, last: Diagnostics) -> None:
    _write_steps(run_dir, result.steps)
    run_dir.write_npz("outputs.npz", times=result.times, f=result.f, energy=result.energy,
                      loss=result.loss, mc=result.mc)
    steps = result.steps
    run_dir.write_json("summary.json", {
        "cells": result.cells,
        "steps": int(steps["step"][-1]),
        "wall_time_s": result.wall_time,
        "settings": asdict(settings),
        "energy": {"initial": first.energy, "final": last.energy},
        "mass_drift_max": float(np.max(np.abs(np.array(steps["mass"]) - first.mass))),
        "min_rho": float(np.min(steps["min_rho"])),
        "max_boundary_outflow_rate": float(np.max(steps["boundary_outflow"])),
        "energy_increases": int(np.sum(np.diff(steps["energy"]) > 0)),
    })
