"""Command line: ``meanfield {check,pde,run} CONFIG``.

    meanfield check config.toml      validate the config, print the problem
    meanfield pde config.toml        solve the PDE into <output>/pde
    meanfield run config.toml        PDE + particle ensemble + comparison report

Run under MPI as ``mpiexec -n 2 meanfield run config.toml``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from solver.config import ConfigError, load


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meanfield", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("check", "validate a config"), ("pde", "solve the PDE"),
                       ("run", "PDE + particles + comparison")):
        p = sub.add_parser(name, help=text)
        p.add_argument("config", type=Path)
        p.add_argument("--output", type=Path, help="run directory (overrides the config)")
        p.add_argument("--force", action="store_true", help="overwrite a finished run")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument("--petsc", action="append", default=[], metavar="KEY=VALUE",
                       help="PETSc option of the implicit solve, e.g. ksp_type=gmres "
                            "(overrides [pde.petsc]; repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = load(args.config)
    except ConfigError as err:
        print(f"meanfield: config error: {err}", file=sys.stderr)
        return 2
    if args.output is not None:
        cfg.output = args.output
    if cfg.pde is not None:
        from dataclasses import replace

        try:
            extra = dict(option.lstrip("-").split("=", 1) for option in args.petsc)
        except ValueError:
            print(f"meanfield: --petsc takes KEY=VALUE, got {args.petsc}", file=sys.stderr)
            return 2
        cfg.pde = replace(cfg.pde, progress=cfg.pde.progress and not args.no_progress,
                          petsc=tuple({**dict(cfg.pde.petsc), **extra}.items()))
    p = cfg.problem
    if args.command == "check":
        print(f"{cfg.name}: unit {p.unit.name} (k={p.param_dim}), {p.data.size} data points "
              f"({p.data.name}), {p.domain.describe()}, t_final {p.t_final}")
        return 0

    from mpi4py import MPI

    from particle_check.pipeline import RunExists, prepare_run_dir, run_comparison, run_pde

    comm = MPI.COMM_WORLD
    try:
        run_dir = prepare_run_dir(cfg, args.config, comm, args.force)
    except RunExists as err:
        if comm.rank == 0:
            print(f"meanfield: {err}", file=sys.stderr)
        return 3
    if args.command == "pde":
        result = run_pde(cfg, run_dir, comm)
        if comm.rank == 0:
            print(f"PDE: {result.cells} cells, E {result.energy[0]:.6g} -> "
                  f"{result.energy[-1]:.6g}, {result.wall_time:.1f} s; output in {cfg.output}")
        return 0
    summary = run_comparison(cfg, run_dir, comm)
    if comm.rank == 0:
        print(json.dumps(summary, indent=2, default=str))
        print(f"outputs in {cfg.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
