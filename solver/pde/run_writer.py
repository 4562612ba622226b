"""What a PDE run leaves in its run directory, written by rank 0 (collectives on all ranks).

    timeseries.csv   every step: t, dt, E, loss, mass, min rho, dissipation, dE/dt, outflow
    outputs.npz      at the output times: f_t(x_m), E, loss, MC
    rho.xdmf         density snapshots (ParaView)
    summary.json     written last: the run finished
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
from dolfinx import io

from solver.io import RunDirectory
from solver.model.problem import Problem
from solver.pde.scheme import Diagnostics, Scheme
from solver.settings import PDESettings


class RunWriter:
    """Writes snapshots during the run and the time series and summary at its end."""

    def __init__(self, run_dir: RunDirectory | None, scheme: Scheme, problem: Problem,
                 settings: PDESettings):
        self.run_dir, self.scheme, self.settings = run_dir, scheme, settings
        self.xdmf = None
        if run_dir is not None and settings.snapshots:
            comm = scheme.mesh.comm
            path = comm.bcast(str(run_dir / "rho.xdmf") if comm.rank == 0 else None, root=0)
            self.xdmf = io.XDMFFile(comm, path, "w")
            self.xdmf.write_mesh(scheme.mesh)

    def snapshot(self, t: float) -> None:
        if self.xdmf is not None:
            self.xdmf.write_function(self.scheme.rho, t)

    def _write_steps(self, rows: dict[str, list[float]]) -> None:
        if self.run_dir is not None:
            self.run_dir.write_csv("timeseries.csv", list(rows), zip(*rows.values(), strict=True))

    def failure(self, rows: dict[str, list[float]], t: float, step: int) -> None:
        """The time series up to the last good step."""
        self._write_steps(rows)

    def close(self) -> None:
        if self.xdmf is not None:
            self.xdmf.close()
            self.xdmf = None

    def finish(self, result, first: Diagnostics, last: Diagnostics, t: float, step: int) -> None:
        if self.run_dir is None:
            return
        steps = result.steps
        self._write_steps(steps)
        self.run_dir.write_npz("outputs.npz", times=result.times, f=result.f,
                               energy=result.energy, loss=result.loss, mc=result.mc)
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
