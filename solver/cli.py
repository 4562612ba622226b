"""Command line: ``meanfield {check,pde,run,limit} CONFIG``, ``meanfield sweep ... GRID``.

    meanfield check config.toml      validate the config, print the problem
    meanfield pde config.toml        solve the PDE into <output>/pde
    meanfield run config.toml        PDE + particle ensemble + comparison report
    meanfield limit config.toml      RQMC reference of the noiseless limit into <output>/limit
    meanfield sweep run grid.toml    expand a parameter grid into run directories, run them

Run under MPI as ``mpiexec -n 2 meanfield run config.toml``.

Batch jobs: SIGTERM or SIGUSR1 (Slurm's warnings; mpiexec forwards SIGTERM to every
rank) make ``pde`` and ``run`` write a checkpoint at the next step and exit with 75;
``--resume`` continues from it (and starts afresh when there is none, so a requeued
job can repeat its command line; resuming a finished run does nothing). ``limit`` keeps
every finished scramble: run again (or ``--resume``), only the missing ones run.

Exit codes (solver/errors.py):
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from solver import preemption, sweep
from solver.config import RunConfig, load
from solver.errors import (
    EXIT_CODES,
    EXIT_OK,
    ConfigError,
    MeanfieldError,
    RunExistsError,
    on_rank0,
)
from solver.io import RunDirectory
from solver.lock import RunLock
from solver.resources import check_resources

if TYPE_CHECKING:
    from mpi4py import MPI


def _exit_codes() -> str:
    return "".join(f"  {code:>3}  {text}\n" for code, text in EXIT_CODES.items())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meanfield", description=__doc__.splitlines()[0],
                                     epilog=__doc__[__doc__.index("Batch jobs"):] + _exit_codes(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="validate a config (every error at once), or explain "
                                     "the config keys")
    p.add_argument("config", type=Path, nargs="?")
    p.add_argument("--ranks", type=int, default=1, metavar="N",
                   help="check that the run fits N ranks (memory per rank; default 1)")
    p.add_argument("--explain", metavar="TOPIC", nargs="?", const="",
                   help="the reference of a section or kind, e.g. unit.neuron or pde "
                        "(no TOPIC: the list of topics); docs/config.md has them all")
    for name, text in (("pde", "solve the PDE"), ("run", "PDE + particles + comparison"),
                       ("limit", "RQMC reference of the noiseless limit ([limit])")):
        p = sub.add_parser(name, help=text)
        p.add_argument("config", type=Path)
        p.add_argument("--output", type=Path, help="run directory (overrides the config)")
        again = p.add_mutually_exclusive_group()
        again.add_argument("--force", action="store_true", help="overwrite a finished run")
        again.add_argument("--resume", action="store_true",
                           help="continue from the checkpoints of an interrupted run")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        if name == "limit":
            continue
        p.add_argument("--petsc", action="append", default=[], metavar="KEY=VALUE",
                       help="PETSc option of the implicit solve, e.g. ksp_type=gmres "
                            "(overrides [pde.petsc]; repeatable)")
    p = sub.add_parser("sweep", help="plan, run or collect a parameter grid (solver/sweep.py)",
                       description="Options after GRID that sweep does not know are passed "
                                   "to each `meanfield run` (e.g. --no-progress).")
    p.add_argument("action", choices=("plan", "run", "collect"))
    p.add_argument("grid", type=Path, help="grid file (TOML): base, output, [grid]")
    p.add_argument("--only", type=int, metavar="INDEX",
                   help="run: only run INDEX (a Slurm array task)")
    p.add_argument("--metric", default=sweep.DEFAULT_METRIC,
                   help=f"collect: the summary value to plot (default {sweep.DEFAULT_METRIC})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line; every ``MeanfieldError`` becomes its message and exit code here."""
    code = _main(argv)
    output = sys.modules.get("solver.pde.output")
    if output is not None and output.UNCLOSED:
        # an ADIOS2 writer that a full disk left unable to close aborts the process from
        # its destructor (exit 134): end here, with the code, without destructors
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    try:
        if args.command == "sweep":
            return sweep.main(args.action, args.grid, args.only, args.metric, extra)
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return _command(args)
    except MeanfieldError as err:
        if _is_rank0():
            print(err.report(), file=sys.stderr)
        return err.exit_code


def _is_rank0() -> bool:
    """Rank 0 of COMM_WORLD when MPI is already running, else True (no MPI import here)."""
    mpi = sys.modules.get("mpi4py.MPI")
    return mpi is None or mpi.COMM_WORLD.rank == 0


def _command(args: argparse.Namespace) -> int:
    """check, pde or run."""
    if args.command == "check":
        return _check(args)
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    # SIGTERM/SIGUSR1 from here on: during the setup of a serial run they stop it at once
    # (exit 75, nothing to save yet); under MPI the ranks agree at the next poll
    with preemption.handle_signals():
        lock = RunLock()  # taken in _setup (rank 0), released whatever happens
        try:
            with (preemption.immediately("the setup of the run") if comm.size == 1
                  else contextlib.nullcontext()):
                setup = _setup(args, comm, lock)
            if isinstance(setup, int):
                return setup
            cfg, run_dir = setup
            preemption.poll(comm, "the setup of the run")
            return _run(args, cfg, run_dir, comm)
        finally:
            lock.release()


def _setup(args: argparse.Namespace, comm: MPI.Comm, lock: RunLock
           ) -> tuple[RunConfig, RunDirectory] | int:
    """Read and check the config, take the run directory's lock (into ``lock``), prepare
    the directory: (config, run directory), or the exit code when there is nothing to do."""
    cfg = load(args.config)
    cfg.require(*{"pde": ("pde",), "run": ("pde", "particles"), "limit": ("limit",)}[
        args.command])
    if args.output is not None:
        cfg.output = args.output
    if cfg.pde is not None and args.command != "limit":
        from dataclasses import replace

        try:
            extra = dict(option.lstrip("-").split("=", 1) for option in args.petsc)
        except ValueError:
            raise ConfigError(f"--petsc takes KEY=VALUE, got {args.petsc}") from None
        progress = cfg.pde.progress and not args.no_progress and sys.stderr.isatty()
        cfg.pde = replace(cfg.pde, progress=progress,
                          petsc=tuple({**dict(cfg.pde.petsc), **extra}.items()))

    from particle_check.pipeline import prepare_run_dir

    if args.command != "limit":  # the RQMC reference is numpy: no DOLFINx, no PDE memory
        on_rank0(comm, lambda: check_resources(cfg, comm.size))
        _need_dolfinx(args.command)
    if cfg.pde is not None and cfg.pde.petsc and args.command != "limit":
        from solver.pde.implicit import check_petsc_options

        check_petsc_options(dict(cfg.pde.petsc))  # every rank: nothing collective
    on_rank0(comm, lambda: _check_output(cfg.output))
    on_rank0(comm, lambda: lock.acquire(cfg.output))
    sub = {"pde": "pde", "limit": "limit"}.get(args.command, "")
    done = cfg.output / sub / "summary.json"
    finished = comm.bcast(done.exists(), root=0)
    if finished and args.resume:
        if comm.rank == 0:
            print(f"meanfield: {done.parent} holds a finished run; nothing to resume")
        return EXIT_OK
    if finished and sub and not args.force:
        raise RunExistsError(f"{done.parent} holds a finished run; pass --force to "
                             "overwrite it")
    return cfg, prepare_run_dir(cfg, args.config, comm, args.force)


def _need_dolfinx(command: str) -> None:
    """Import DOLFINx (after the wheel's MPI when installed), or a ConfigError saying how."""
    try:
        import solver.pde.meshes  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"meanfield {command} solves the PDE and needs DOLFINx ({err}); "
                          "install it (pip install '.[dolfinx]', or conda/spack: "
                          "docs/install.md); particles alone run from Python "
                          "(particle_check.particles.simulate)") from None
    preemption.reinstall()  # PETSc, initialised by that import, took SIGTERM over


def _check_output(output: Path) -> None:
    """The run directory can be made and written (output / --output)."""
    if output.exists() and not output.is_dir():
        raise ConfigError(f"output: {output} is a file, not a directory; give a directory "
                          f"(--output DIR)")
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"output: cannot write the run directory {output}: {err.strerror}; "
                          f"give a writable directory (--output DIR)") from None


def _check(args: argparse.Namespace) -> int:
    """``meanfield check CONFIG`` or ``meanfield check --explain [TOPIC]``."""
    if args.explain is not None:
        from solver.config_reference import explain

        print(explain(args.explain or None))
        return EXIT_OK
    if args.config is None:
        raise ConfigError("check: give a CONFIG to validate, or --explain [TOPIC]")
    cfg = load(args.config)
    check_resources(cfg, max(args.ranks, 1))
    p = cfg.problem
    print(f"{cfg.name}: unit {p.unit.name}, theta = ({', '.join(p.unit.param_names)}), "
          f"{p.data.size} data points ({p.data.name}), {p.domain.describe()}, "
          f"t_final {p.t_final}")
    return EXIT_OK


def _run(args: argparse.Namespace, cfg: RunConfig, run_dir: RunDirectory, comm: MPI.Comm
         ) -> int:
    """``pde``, ``run`` or ``limit`` into the prepared run directory."""
    from particle_check.pipeline import run_comparison, run_pde
    from solver.provenance import finish_provenance

    command, resume = args.command, args.resume
    if command == "limit":
        return _limit(cfg, run_dir, comm, args.force)

    if command == "pde":
        result = run_pde(cfg, run_dir, comm, resume)
        if comm.rank == 0 and result.resumed_from is not None:
            print(f"PDE: resumed from the checkpoint at t = {result.resumed_from:.6g}")
        finish_provenance(run_dir, {"pde": result.wall_time})
        if comm.rank == 0:
            print(f"PDE: {result.cells} cells, E {result.energy[0]:.6g} -> "
                  f"{result.energy[-1]:.6g}, {result.wall_time:.1f} s; output in {cfg.output}")
        return 0
    summary = run_comparison(cfg, run_dir, comm, resume)
    if comm.rank == 0:
        print(result_lines(summary, cfg.output))
    return 0


def _limit(cfg: RunConfig, run_dir: RunDirectory, comm: MPI.Comm, force: bool) -> int:
    """``meanfield limit``: --force starts afresh (the kept scrambles are removed)."""
    import shutil

    from solver.provenance import finish_provenance
    from solver.reference.limit_run import run_limit

    if force and comm.rank == 0:
        shutil.rmtree(cfg.output / "limit", ignore_errors=True)
    comm.barrier()
    summary = run_limit(cfg, run_dir, comm)
    finish_provenance(run_dir, {"limit": summary["wall_s"]})
    if comm.rank == 0:
        print(f"limit: E(t_final = {summary['t_final']:g}) = {summary['E_final']:.8e} +- "
              f"{summary['E_final_error']:.2e} (relative error <= "
              f"{summary['E_relative_error_max']:.1e} at every output; levels agree: "
              f"{summary['levels_agree']}); output in {cfg.output / 'limit'}")
    return 0


def result_lines(summary: dict, output: Path) -> str:
    """The few lines ``meanfield run`` prints: alpha at the first and last time, the
    verdicts, where everything is (the whole summary is in summary.json)."""
    def alpha(row: dict) -> str:
        value = row["alpha"]
        return ("n/a" if value is None else
                f"{value:.3f} [{row['lo']:.3f}, {row['hi']:.3f}]" if row["lo"] is not None
                else f"{value:.3f}")

    first, last = summary["alpha"][0], summary["alpha"][-1]
    budget = summary["error_budget"]
    lines = [
        f"gap ~ n^-alpha, widths {summary['n'][0]}..{summary['n'][-1]} x {summary['seeds']} "
        f"seeds ({summary['level']:.0%} intervals):",
        f"  alpha(t = {first['t']:.4g}) = {alpha(first)}",
        f"  alpha(t = {last['t']:.4g}) = {alpha(last)}",
        f"CRBV (n gap^2 <= MC(t)): {summary['crbv']['verdict']}",
        ("PDE error budget: max {:.3g}, {} of {} points resolved".format(
            budget["max_pde_error"], budget["points"] - budget["unresolved_points"],
            budget["points"]) if budget["pde_error_given"]
         else f"PDE error budget: none ({budget['no_estimate_reason']})"),
        f"outputs in {output}: report.md, summary.json, comparison.csv, *.png",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
