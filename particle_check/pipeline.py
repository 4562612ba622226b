"""The whole path for one config: PDE -> particle ensemble -> comparison -> report.

Run directory layout::

    <output>/config.toml, provenance.json
    <output>/pde/         timeseries.h5/.csv, rho.bp, checkpoint.h5, figures, summary.json
    <output>/particles/   one npz per (n, seed) task
    <output>/             comparison.csv, report.md, gap_vs_n.png, alpha.png, loss.png,
                          crbv.png, comparison.png, summary.json (written last)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from mpi4py import MPI

from particle_check.compare import Comparison, compare
from particle_check.ensemble import run_ensemble
from particle_check.report import classification_summary, write_report
from solver.config import RunConfig
from solver.errors import MeanfieldError, RunExistsError
from solver.io import RunDirectory
from solver.provenance import PhaseTimer, finish_provenance, provenance
from solver.settings import PDESettings

if TYPE_CHECKING:
    from solver.pde.solve import PDEResult


def prepare_run_dir(cfg: RunConfig, config_path: Path | None, comm: MPI.Comm,
                    force: bool) -> RunDirectory:
    """Create the run directory (rank 0).

    A finished run, or an unfinished one made from a different config, is refused
    unless force, which clears it; an unfinished run of the same config resumes
    (finished particle tasks are kept).
    """
    rank0 = comm.rank == 0
    problem = None
    if rank0:
        old_config = cfg.output / "config.toml"
        same = (config_path is not None and old_config.exists()
                and old_config.read_bytes() == config_path.read_bytes())
        if (cfg.output / "summary.json").exists():
            problem = f"{cfg.output} holds a finished run; pass --force to overwrite it"
        elif old_config.exists() and not same:
            problem = (f"{cfg.output} holds an unfinished run of another config; "
                       f"pass --force to overwrite it")
        if problem is not None and force:
            problem = None
            for sub in ("pde", "particles", "limit"):
                shutil.rmtree(cfg.output / sub, ignore_errors=True)
            (cfg.output / "summary.json").unlink(missing_ok=True)
    problem = comm.bcast(problem, root=0)
    if problem is not None:
        raise RunExistsError(problem)
    run_dir = RunDirectory(cfg.output, writer=rank0)
    copy = cfg.output / "config.toml"
    if rank0 and config_path is not None and not (copy.exists() and copy.samefile(config_path)):
        run_dir.write_bytes("config.toml", config_path.read_bytes())
    run_dir.write_json("provenance.json", provenance(comm.size, particles=cfg.particles))
    comm.barrier()
    return run_dir


def run_pde(cfg: RunConfig, run_dir: RunDirectory, comm: MPI.Comm, resume: bool = False):
    """Solve the PDE of the config into <run>/pde; resume: continue from its checkpoint
    (a finished PDE is read back, not solved again)."""
    from solver.pde.solve import load_result, solve  # DOLFINx only when the PDE runs

    if cfg.pde is None:
        raise ValueError("[pde]: this config has no pde section")
    pde_dir = RunDirectory(run_dir / "pde", writer=run_dir.writer)
    if resume and comm.bcast((pde_dir.path / "summary.json").exists(), root=0):
        return load_result(pde_dir.path, comm)
    return solve(cfg.problem, cfg.pde, pde_dir, comm, resume=resume)


def coarse_settings(settings: PDESettings) -> PDESettings | None:
    """The settings of the error-budget run: half the cells per direction (one level less
    for a named mesh or an icosphere), or degree 1 for DG2 on a mesh file; None if neither."""
    if settings.scheme == "dg" and settings.degree == 2:
        return replace(settings, degree=1, snapshots=0, progress=False)
    if settings.mesh is not None and settings.level > 0:
        return replace(settings, level=settings.level - 1, snapshots=0, progress=False)
    if settings.cells and all(c >= 2 for c in settings.cells):
        cells = tuple(max(1, c // 2) for c in settings.cells)
        return replace(settings, cells=cells, snapshots=0, progress=False)
    return None


#: The floor of the PDE error estimate, relative to max_t ||f_t|| (and MC): below it the
#: difference of the two runs is round-off (2e-17 at t = 0 on the flagship, where both
#: start from the same density), which must not make gap / PDE error look meaningful.
ROUND_OFF = 1000 * np.finfo(float).eps


@dataclass(frozen=True)
class ErrorBudget:
    """The PDE's own error at the output times, from a coarser run: f_error =
    ||f_t(fine) - f_t(coarse)||_{L2(mu)}, mc_error = |MC_fine(t) - MC_coarse(t)| (None, with
    the reason in ``missing``, when there is no estimate)."""

    f_error: np.ndarray | None = None
    mc_error: np.ndarray | None = None
    missing: str = ""


def pde_error(cfg: RunConfig, fine: PDEResult, comm: MPI.Comm) -> ErrorBudget:
    """The error budget: the coarse run's error, an upper estimate of the fine run's own,
    floored at ``ROUND_OFF`` (2.2e-13) of the largest ||f_t||.
    A coarse run that cannot be made or fails (e.g. mass leaving the coarser mesh) gives no
    estimate and the reason, never an error: the fine run is good. Collective."""
    from solver.pde.solve import solve

    coarse = coarse_settings(cfg.pde)
    if coarse is None:
        return ErrorBudget(missing="no coarser discretisation of this mesh to compare with")
    try:
        other = solve(cfg.problem, coarse, None, comm)
    except (MeanfieldError, ValueError) as err:  # e.g. too few cells, outflow when coarser
        return ErrorBudget(missing=f"the coarser run ({_describe(coarse)}) failed: {err}")
    weights = cfg.problem.data.weights
    size = np.sqrt((fine.f**2) @ weights).max()  # round-off is relative to the run's f, not
    error = np.sqrt(((fine.f - other.f) ** 2) @ weights)  # to an f_t that is ~0 (t = 0)
    return ErrorBudget(np.maximum(error, ROUND_OFF * size),
                       np.maximum(np.abs(fine.mc - other.mc), ROUND_OFF * np.abs(fine.mc).max()))


def _describe(settings: PDESettings) -> str:
    mesh = (f"cells {list(settings.cells)}" if settings.cells else
            f"mesh {settings.mesh} level {settings.level}" if settings.mesh else
            f"mesh_file {settings.mesh_file}")
    return f"{settings.scheme}{settings.degree if settings.scheme != 'fv' else ''}, {mesh}"


def pde_and_particles(cfg: RunConfig, run_dir: RunDirectory, comm: MPI.Comm,
                      resume: bool = False, timer: PhaseTimer | None = None
                      ) -> tuple[PDEResult, Comparison | None, dict | None]:
    """The PDE (<run>/pde), its error budget, the particle ensemble at the PDE's output
    times (<run>/particles) and the comparison report in <run>; returns (PDE result,
    Comparison, report summary), the last two on rank 0 (None elsewhere). Collective.
    resume: continue the PDE and the particle tasks from their checkpoints."""
    if cfg.particles is None:
        raise ValueError("[particles]: this config has no particles section")
    timer = PhaseTimer() if timer is None else timer
    with timer("pde"):
        pde = run_pde(cfg, run_dir, comm, resume)
    part_dir = RunDirectory(run_dir / "particles", writer=True)
    with timer("error_budget"):
        budget = pde_error(cfg, pde, comm)
    with timer("ensemble"):
        runs = run_ensemble(cfg.problem, cfg.particles, pde.times, part_dir, comm,
                            cfg.pde.progress, resume)
    if comm.rank != 0:
        return pde, None, None
    with timer("report"):
        cmp = compare(cfg.problem.data.weights, pde.times, pde.f, pde.loss, pde.mc, runs,
                      pde_error=budget.f_error, pde_mc_error=budget.mc_error,
                      pde_error_missing=budget.missing, targets=cfg.problem.y)
        labels = classification_summary(cfg.problem.data.weights, cfg.problem.y, pde.times,
                                        pde.f, runs)
        summary = write_report(cmp, run_dir, f"{cfg.name}: PDE ({pde.cells} cells) vs particles",
                               loss=cfg.problem.loss, classification=labels,
                               birth_death=cfg.problem.birth_death)
    return pde, cmp, summary


def run_comparison(cfg: RunConfig, run_dir: RunDirectory, comm: MPI.Comm,
                   resume: bool = False) -> dict | None:
    """``pde_and_particles``, then provenance timings and summary.json (written last, rank 0)."""
    timer = PhaseTimer()
    pde, _, summary = pde_and_particles(cfg, run_dir, comm, resume, timer)
    if comm.rank != 0:
        return None
    finish_provenance(run_dir, timer.seconds)
    summary["pde_wall_time_s"] = pde.wall_time
    summary["pde_energy_monotone"] = bool(np.all(np.diff(pde.steps["energy"]) <= 0))
    run_dir.write_json("summary.json", summary)
    return summary
