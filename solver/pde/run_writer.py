"""What a PDE run leaves in its run directory (rank 0 writes; collectives on all ranks).

    timeseries.h5 / .csv   every step: t, dt, E, loss, mass, min rho, dissipation, dE/dt,
                           boundary outflow; at the output times (h5): f_t(x_m), E, loss, MC
    rho.bp                 density snapshots (VTX; ParaView's ADIOS2 VTX reader)
    nodes.xdmf/.h5         scheme "lagrangian": the moving nodes as point clouds (rho, W)
    checkpoint.h5          the whole state of the time loop (``RunState``): written every
                           ``checkpoint_every`` seconds, when pre-empted, after a failure
                           (the last good state) and at the end; ``--resume`` continues
                           from it to the result of an uninterrupted run. It also carries
                           the mesh (cell vertices, int_K phi_i) and the domain, so that
                           another run can start from it (``[initial] kind = "checkpoint"``)
    energy.png, density.png
    summary.json           written last: the run finished
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import ufl
from dolfinx import fem, la
from dolfinx import mesh as dmesh
from dolfinx.cpp import mesh as cpp_mesh

from solver.checkpoint_file import CELL_VERTICES, DOF_INTEGRALS, DOMAIN
from solver.io import RunDirectory
from solver.model import functionals
from solver.model.cell_density import domain_record
from solver.model.problem import Problem
from solver.pde.checkpoint import Checkpoint, write_checkpoint
from solver.pde.node_output import NodeSnapshotWriter
from solver.pde.output import SnapshotWriter, write_timeseries
from solver.pde.scheme import Diagnostics, Scheme
from solver.plots import plot_energy, plot_snapshots
from solver.settings import PDESettings

CHECKPOINT = "checkpoint.h5"
OUTPUT_KEYS = ("times", "f", "energy", "loss", "mc")


@dataclass
class RunState:
    """Where the time loop is: with the density, everything a resumed run needs to reach
    the result of an uninterrupted one.

    index: the output time the loop is heading for (len(output times): done);
    outflow: the integrated boundary outflow; next_dt: the implicit controller's next
    step (its stored rate L(rho) is recomputed from the density, bit for bit);
    first/last: the diagnostics of step 0 and of the last step (the checks compare with
    them); rows/outputs: the per-step record and the values at the output times so far;
    snapshots: (t, local density array) at the snapshot outputs (to rewrite rho.bp);
    wall_time: seconds spent before this session.
    """

    first: Diagnostics
    last: Diagnostics
    rows: dict[str, list[float]]
    t: float = 0.0
    step: int = 0
    index: int = 1
    outflow: float = 0.0
    stopped: str = "t_final"
    next_dt: float | None = None
    wall_time: float = 0.0
    outputs: dict[str, list] = field(default_factory=lambda: {k: [] for k in OUTPUT_KEYS})
    snapshots: list[tuple[float, np.ndarray]] = field(default_factory=list)

    def meta(self, wall_time: float) -> dict:
        """The scalars, with the wall time spent so far (this session included)."""
        return {"t": self.t, "step": self.step, "index": self.index, "outflow": self.outflow,
                "stopped": self.stopped, "next_dt": self.next_dt, "wall_time": wall_time,
                "first": asdict(self.first), "last": asdict(self.last),
                "dt": self.rows["dt"][-1], "snapshot_times": [t for t, _ in self.snapshots]}

    def arrays(self) -> dict[str, np.ndarray]:
        return {**{f"rows.{k}": np.array(v, dtype=float) for k, v in self.rows.items()},
                **{f"outputs.{k}": np.array(v, dtype=float) for k, v in self.outputs.items()}}

    def fields(self) -> dict[str, np.ndarray]:
        return {f"snapshot{i}": values for i, (_, values) in enumerate(self.snapshots)}

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> RunState:
        """The state stored by ``RunWriter.checkpoint`` (floats round-trip exactly)."""
        m, a = ckpt.meta, ckpt.arrays
        rows = {k[5:]: v.tolist() for k, v in a.items() if k.startswith("rows.")}
        outputs = {k: a[f"outputs.{k}"].tolist() for k in OUTPUT_KEYS}
        outputs["f"] = [row.copy() for row in a["outputs.f"]]
        return cls(first=Diagnostics(**m["first"]), last=Diagnostics(**m["last"]), rows=rows,
                   t=m["t"], step=m["step"], index=m["index"], outflow=m["outflow"],
                   stopped=m["stopped"], next_dt=m["next_dt"], wall_time=m["wall_time"],
                   outputs=outputs,
                   snapshots=[(t, ckpt.fields[f"snapshot{i}"])
                              for i, t in enumerate(m["snapshot_times"])])


def mesh_arrays(msh: dmesh.Mesh, fn: fem.Function) -> dict[str, np.ndarray]:
    """Per owned cell: its vertices in mesh coordinates, DOLFINx reference order
    (C, V, gdim), and int_K phi_i of the basis functions of ``fn``'s space (C, dofs) —
    what particles need to draw a stored density cell by cell without DOLFINx.
    Collective (the integrals are assembled)."""
    n = msh.topology.index_map(msh.topology.dim).size_local
    nv = cpp_mesh.cell_num_vertices(msh.topology.cell_type)
    vertices = msh.geometry.x[msh.geometry.dofmaps[0][:n, :nv], : msh.geometry.dim]
    V = fn.function_space
    integrals = fem.assemble_vector(fem.form(ufl.TestFunction(V) * ufl.dx))
    integrals.scatter_reverse(la.InsertMode.add)
    return {CELL_VERTICES: vertices, DOF_INTEGRALS: integrals.array[V.dofmap.list[:n]]}


class RunWriter:
    """Writes snapshots and checkpoints during the run, the time series and figures after."""

    def __init__(self, run_dir: RunDirectory | None, scheme: Scheme, problem: Problem,
                 settings: PDESettings, fingerprint: str):
        self.run_dir, self.scheme, self.problem, self.settings = run_dir, scheme, problem, settings
        self.fingerprint = fingerprint
        nodes = settings.scheme == "lagrangian"  # the state is node positions, not a density
        self.mesh = None if run_dir is None or nodes else mesh_arrays(scheme.mesh, scheme.rho)
        self.snapshots = None
        if run_dir is not None and settings.snapshots:
            self.snapshots = (NodeSnapshotWriter(run_dir.path / "nodes.xdmf", scheme) if nodes
                              else SnapshotWriter(run_dir.path / "rho.bp", scheme.rho,
                                                  to_theta=problem.domain))

    @property
    def keeps_snapshots(self) -> bool:
        return self.snapshots is not None

    def snapshot(self, t: float) -> None:
        if self.snapshots is not None:
            self.snapshots.write(t)

    def _attrs(self, status: str) -> dict:
        return {"status": status, "problem": self.problem.name, "settings": self.settings}

    def checkpoint(self, state: RunState, status: str, wall_time: float) -> None:
        """The whole state and the current density into checkpoint.h5 (collective)."""
        if self.run_dir is None:
            return
        write_checkpoint(self.run_dir.path / CHECKPOINT, self.scheme.mesh, self.scheme.rho,
                         {**state.meta(wall_time), "status": status,
                          "fingerprint": self.fingerprint, "settings": asdict(self.settings),
                          DOMAIN: domain_record(self.problem.domain)},
                         fields=state.fields(), arrays=state.arrays(), cell_arrays=self.mesh)

    def timeseries(self, state: RunState, status: str) -> None:
        """The per-step record so far (after a failure or a pre-emption; rank 0)."""
        if self.run_dir is not None:
            write_timeseries(self.run_dir, state.rows, {}, self._attrs(status))

    def close(self) -> None:
        if self.snapshots is not None:
            self.snapshots.close()

    def abandon(self) -> None:
        """After a full disk: drop the snapshots' temporary files (rho.bp keeps its previous
        version, if any; the snapshots are in the checkpoint). Collective."""
        if self.snapshots is not None:
            self.snapshots.abandon()

    def finish(self, result, state: RunState) -> None:
        """Time series, checkpoint, figures, then summary.json (collective)."""
        if self.run_dir is None:
            return
        steps, first = result.steps, state.first
        data = self.problem.data
        outputs = {"times": result.times, "f": result.f, "energy": result.energy,
                   "loss": result.loss, "mc": result.mc, "x": data.points,
                   "w": data.weights, "y": self.problem.y}
        write_timeseries(self.run_dir, steps, outputs, self._attrs("finished"))
        self.checkpoint(state, "final", result.wall_time)
        if self.run_dir.writer:
            plot_energy(self.run_dir.path / "energy.png", steps)
            if self.snapshots is not None:
                plot_snapshots(self.run_dir.path / "density.png", self.snapshots.snapshots,
                               type(self.problem.domain).__name__.lower(),
                               axis_labels=self.problem.unit.param_names)
        defect = dissipation_defects(steps)
        # |D + dE/dt| / D of the semi-discrete scheme at the final state (no time error):
        # DG's space inconsistency; FV's D is its -dE/dt by construction (0, not computed)
        energy_rate = getattr(self.scheme, "energy_rate", None)
        semidiscrete = None
        if energy_rate is not None and state.last.dissipation > 0:
            semidiscrete = abs(state.last.dissipation + energy_rate()) / state.last.dissipation
        self.run_dir.write_json("summary.json", {
            "cells": result.cells,
            "steps": state.step,
            "t_end": state.t,
            "stopped": result.stopped,
            "wall_time_s": result.wall_time,
            "settings": asdict(self.settings),
            "energy": {"initial": first.energy, "final": state.last.energy},
            "loss": self.problem.loss.record(),
            # classification accuracy on the data at the output times (labels -1/+1 only)
            "accuracy": _listed(functionals.accuracy(self.problem, result.f)),
            "mass_drift_max": float(np.max(np.abs(np.array(steps["mass"]) - first.mass))),
            "min_rho": float(np.min(steps["min_rho"])),
            "min_rho_where": self._min_rho_where(),
            "min_rho_written": (None if self.snapshots is None
                                else float(self.snapshots.min_written)),
            "min_rho_written_where": (None if self.snapshots is None else
                                      f"{self.snapshots.path.name}: {self.snapshots.written}"),
            "max_boundary_outflow_rate": float(np.max(steps["boundary_outflow"])),
            "energy_increases": int(np.sum(np.diff(steps["energy"]) > 0)),
            **defect,
            "dissipation_identity_semidiscrete_rel_defect": semidiscrete,
            "time_error": result.time_error,
        })

    def _min_rho_where(self) -> str:
        if self.settings.scheme == "lagrangian":
            return "the node weights W_q (the measure sum_q W_q delta(theta_q))"
        if self.settings.scheme == "dg":
            return ("the limiter points: the Gauss points of every cell and facet, the only "
                    "values f, the mass and the fluxes use (not the DG nodes)")
        return "the cell values (the whole density)"


def dissipation_defects(steps: dict) -> dict[str, float | None]:
    """How well dE/dt = -D holds over the run, D the recorded dissipation:

    - ``dissipation_identity_max_rel_defect``: max over steps of |dE/dt_n + D_n| / D_n,
      dE/dt_n = (E_n - E_{n-1}) / dt_n and D_n the trapezoid (D_{n-1} + D_n) / 2, over steps
      with D_n above 1e-12 of the largest (below, both are round-off), and
      ``dissipation_identity_max_rel_defect_t``, the end time of that step;
    - ``dissipation_identity_integrated_rel_defect``: |(E_N - E_0) + sum_n D_n dt_n| /
      |E_N - E_0|, the energy the identity does not account for over the run.

    Both contain the time-discretisation error of the difference quotient and the trapezoid
    (O(dt^2) for an explicit SSP-RK step, O(dt) for the lagged implicit Euler step) besides
    the scheme's inconsistency between D and its energy (none for FV; O(h^{k+1}) for DG_k).
    ``benchmarks/dissipation_identity.py`` separates the two (docs/verification.md)."""
    none = dict.fromkeys(("dissipation_identity_max_rel_defect",
                          "dissipation_identity_max_rel_defect_t",
                          "dissipation_identity_integrated_rel_defect"))
    dedt, diss = np.array(steps["dEdt"][1:]), np.array(steps["dissipation"])
    dt, energy = np.array(steps["dt"][1:]), np.array(steps["energy"])
    if len(dedt) == 0:
        return none
    mid = 0.5 * (diss[1:] + diss[:-1])
    judged = np.flatnonzero(mid > 1e-12 * mid.max())
    drop = energy[-1] - energy[0]
    out = {**none, "dissipation_identity_integrated_rel_defect": (
        float(abs(drop + mid @ dt) / abs(drop)) if drop != 0 else None)}
    if len(judged):
        pointwise = np.abs(dedt + mid)[judged] / mid[judged]
        worst = judged[np.argmax(pointwise)]
        out["dissipation_identity_max_rel_defect"] = float(pointwise.max())
        out["dissipation_identity_max_rel_defect_t"] = float(np.asarray(steps["t"])[worst + 1])
    return out


def _listed(values) -> list[float] | float | None:
    """numpy values as JSON (a list for an array)."""
    return None if values is None else np.asarray(values, dtype=float).tolist()
