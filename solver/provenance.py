"""How a result was made: versions, commit, MPI size, host, time."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out + ("-dirty" if dirty else "")


def provenance(mpi_size: int, command: list[str] | None = None) -> dict:
    """A JSON-ready record of the environment of this run."""
    try:
        import dolfinx

        dolfinx_version = dolfinx.__version__
    except ImportError:
        dolfinx_version = None
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command if command is not None else sys.argv,
        "commit": _commit(),
        "python": sys.version.split()[0],
        "versions": {
            "meanfield-flow": _version("meanfield-flow"),
            "dolfinx": dolfinx_version,
            "petsc4py": _version("petsc4py") or _version("dolfinx-solver-real"),
            "numpy": _version("numpy"),
            "scipy": _version("scipy"),
            "mpi4py": _version("mpi4py"),
        },
        "mpi_size": mpi_size,
        "host": platform.node(),
    }
