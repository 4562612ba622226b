"""What a PDE run leaves in its run directory (rank 0 writes; collectives on all ranks).

    timeseries.h5 / .csv   every step: t, dt, E, loss, mass, min rho, dissipation, dE/dt,
                           boundary outflow; at the output times (h5): f_t(x_m), E, loss, MC
    rho.bp                 density snapshots (VTX; ParaView's ADIOS2 VTX reader)
    checkpoint.h5          the final state (or, after a failure, the last good one)
    energy.png, density.png
    summary.json           written last: the run finished
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from solver.io import RunDirectory
from solver.model.problem import Problem
from solver.pde.checkpoint import write_checkpoint
from solver.pde.output import SnapshotWriter, write_timeseries
from solver.pde.scheme import Diagnostics, Scheme
from solver.plots import plot_energy, plot_snapshots
from solver.settings import PDESettings


class RunWriter:
    """Writes snapshots during the run and the time series, checkpoint and figures after it."""

    def __init__(self, run_dir: RunDirectory | None, scheme: Scheme, problem: Problem,
                 settings: PDESettings):
        self.run_dir, self.scheme, self.problem, self.settings = run_dir, scheme, problem, settings
        self.snapshots = None
        if run_dir is not None and settings.snapshots:
            self.snapshots = SnapshotWriter(run_dir.path / "rho.bp", scheme.rho,
                                            to_theta=problem.domain)

    def snapshot(self, t: float) -> None:
        if self.snapshots is not None:
            self.snapshots.write(t)

    def _attrs(self, status: str) -> dict:
        return {"status": status, "problem": self.problem.name, "settings": self.settings}

    def _checkpoint(self, meta: dict) -> None:
        write_checkpoint(self.run_dir.path / "checkpoint.h5", self.scheme.mesh, self.scheme.rho,
                         {**meta, "settings": asdict(self.settings)})

    def failure(self, rows: dict[str, list[float]], t: float, step: int) -> None:
        """The time series and the state of the last good step (collective)."""
        if self.run_dir is None:
            return
        write_timeseries(self.run_dir, rows, {}, self._attrs(f"failed after step {step}"))
        self._checkpoint({"t": t, "step": step, "status": "last good state before a failure"})

    def close(self) -> None:
        if self.snapshots is not None:
            self.snapshots.close()

    def finish(self, result, first: Diagnostics, last: Diagnostics, t: float, step: int) -> None:
        """Time series, checkpoint, figures, then summary.json (collective)."""
        if self.run_dir is None:
            return
        steps = result.steps
        outputs = {"times": result.times, "f": result.f, "energy": result.energy,
                   "loss": result.loss, "mc": result.mc}
        write_timeseries(self.run_dir, steps, outputs, self._attrs("finished"))
        self._checkpoint({"t": t, "step": step, "dt": steps["dt"][-1], "status": "final"})
        if self.run_dir.writer:
            plot_energy(self.run_dir.path / "energy.png", steps)
            if self.snapshots is not None:
                plot_snapshots(self.run_dir.path / "density.png", self.snapshots.snapshots,
                               type(self.problem.domain).__name__.lower())
        dedt, diss = np.array(steps["dEdt"][1:]), np.array(steps["dissipation"])
        mid = 0.5 * (diss[1:] + diss[:-1])
        self.run_dir.write_json("summary.json", {
            "cells": result.cells,
            "steps": step,
            "t_end": t,
            "stopped": result.stopped,
            "wall_time_s": result.wall_time,
            "settings": asdict(self.settings),
            "energy": {"initial": first.energy, "final": last.energy},
            "mass_drift_max": float(np.max(np.abs(np.array(steps["mass"]) - first.mass))),
            "min_rho": float(np.min(steps["min_rho"])),
            "max_boundary_outflow_rate": float(np.max(steps["boundary_outflow"])),
            "energy_increases": int(np.sum(np.diff(steps["energy"]) > 0)),
            "dissipation_identity_max_rel_defect": float(
                np.max(np.abs(dedt + mid)) / max(np.max(mid), 1e-300)) if len(mid) else 0.0,
        })
