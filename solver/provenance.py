"""How a result was made: versions, commit (+ dirty flag), MPI size, host, start time, seeds,
and the wall time of each phase.

``provenance.json`` is written when a run starts (``provenance``) and rewritten atomically
when it ends (``finish_provenance``), adding ``timings_s`` (seconds per phase, rank 0's
clock; every phase is collective, so it is the job's wall time) and ``finished``.
"""

from __future__ import annotations

import contextlib
import json
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from solver.io import RunDirectory
from solver.settings import ParticleSettings


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def git_state(root: Path | None = None) -> tuple[str | None, bool | None]:
    """(HEAD commit, whether tracked files differ from it) of the project's checkout;
    (None, None) outside a git checkout."""
    root = root or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=5,
                                check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                                capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, bool(status.strip())


def seeds_record(settings: ParticleSettings | None) -> dict | None:
    """The seeds of a particle ensemble: task (n, seed) draws from
    SeedSequence(entropy, spawn_key=(n, seed)), seed = 0 .. seeds - 1."""
    if settings is None:
        return None
    return {"entropy": settings.entropy, "seeds_per_width": settings.seeds,
            "n": list(settings.n), "seed_sequence": "SeedSequence(entropy, spawn_key=(n, seed))"}


def provenance(mpi_size: int, command: list[str] | None = None,
               particles: ParticleSettings | None = None) -> dict:
    """A JSON-ready record of the environment of this run (and its seeds, if particles)."""
    try:
        import dolfinx

        dolfinx_version = dolfinx.__version__
    except ImportError:
        dolfinx_version = None
    commit, dirty = git_state()
    return {
        "started": _now(),
        "command": command if command is not None else sys.argv,
        "commit": commit,
        "dirty": dirty,
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
        "seeds": seeds_record(particles),
    }


class PhaseTimer:
    """Wall time per named phase: ``with timer("pde"): ...``; ``timer.seconds`` maps
    phase -> seconds (a phase entered twice adds up)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[phase] = self.seconds.get(phase, 0.0) + elapsed


def finish_provenance(run_dir: RunDirectory, timings: Mapping[str, float]) -> None:
    """Add ``timings_s`` (each phase and their total) and ``finished`` to
    <run>/provenance.json, rewritten atomically (writer rank only)."""
    if not run_dir.writer:
        return
    path = run_dir / "provenance.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    record["timings_s"] = {**timings, "total": sum(timings.values())}
    record["finished"] = _now()
    run_dir.write_json("provenance.json", record)
