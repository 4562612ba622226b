"""What every example script shares: its command line, its run directory, its summary.

Each example is run as ``python examples/<name>.py [--size small|default] [--output DIR]
[--force] [--no-progress]``, writes everything to its own run directory
(``runs/<name>`` by default) and ends by writing ``summary.json`` there (last, so a run
without it did not finish) and ``gallery.png``, the figure the README's gallery shows.
An example that needs DOLFINx stops at once, with a config error, in an install without it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
from pathlib import Path

from mpi4py import MPI

from solver.errors import ConfigError, MeanfieldError, RunExistsError
from solver.io import RunDirectory
from solver.provenance import provenance

#: Where examples write by default (relative to the working directory).
RUNS = Path("runs")


def parse_args(doc: str, argv: list[str] | None = None,
               sizes: tuple[str, ...] = ("small", "default")) -> argparse.Namespace:
    """The common options; ``doc`` is the example's module docstring, ``sizes`` the names of
    the small size, the default one and any others."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--size", choices=sizes, default=sizes[1],
                        help=f"{sizes[0]}: the seconds-long size the tests run")
    parser.add_argument("--output", type=Path, default=None, help="run directory")
    parser.add_argument("--force", action="store_true", help="overwrite a finished run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def save_figure(fig, path, title: str) -> None:
    """The figure with its title, laid out, into ``path`` (PNG, 110 dpi), then closed."""
    import matplotlib.pyplot as plt

    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def dolfinx_available() -> bool:
    """Whether DOLFINx is installed (the wheel's or one's own; docs/install.md)."""
    import solver.pde  # noqa: F401 (the DOLFINx wheel's MPI first, when it is installed)

    return importlib.util.find_spec("dolfinx") is not None


def open_run(name: str, args: argparse.Namespace, comm: MPI.Comm = MPI.COMM_WORLD, *,
             needs_dolfinx: bool = True) -> RunDirectory:
    """The example's run directory, with provenance.json; a finished run (one with a
    summary.json) is refused unless --force, which clears a previous run directory (one
    holding a provenance.json), so that no earlier particle task is reused. An example
    that ``needs_dolfinx`` raises ConfigError without it, before any work."""
    if needs_dolfinx and not dolfinx_available():
        raise ConfigError(f"{name} solves a PDE and needs DOLFINx; install it (pip install "
                          "'.[dolfinx]', or conda/spack: docs/install.md)")
    path = args.output if args.output is not None else RUNS / name
    summary = path / "summary.json"
    finished = comm.bcast(summary.exists() if comm.rank == 0 else None, root=0)
    if finished and not args.force:
        raise RunExistsError(f"{path} holds a finished run; pass --force to overwrite it")
    # every rank: provenance() imports dolfinx, whose PETSc initialisation is collective
    record = provenance(comm.size)
    if comm.rank == 0:
        if args.force and (path / "provenance.json").exists():
            shutil.rmtree(path)
        summary.unlink(missing_ok=True)
        run_dir = RunDirectory(path)
        record["example"] = {"name": name, "size": args.size}
        run_dir.write_json("provenance.json", record)
    comm.barrier()
    return RunDirectory(path, writer=comm.rank == 0)


def finish(run_dir: RunDirectory, summary: dict, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Write summary.json (rank 0, last) and print it."""
    if comm.rank == 0:
        run_dir.write_json("summary.json", summary)
        print(json.dumps(summary, indent=2, default=str))
        print(f"outputs in {run_dir.path}")
    comm.barrier()


def run(main, argv: list[str] | None = None) -> int:
    """Call an example's ``main(argv)``; a ``MeanfieldError`` (a refused run directory, a
    scheme failure, ...) becomes its message and exit code, as in ``meanfield``."""
    try:
        main(argv)
    except MeanfieldError as err:
        if MPI.COMM_WORLD.rank == 0:
            print(f"{Path(sys.argv[0]).name}: {err.report()}", file=sys.stderr)
        return err.exit_code
    return 0
