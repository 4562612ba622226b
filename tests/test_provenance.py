"""provenance.json: versions, commit + dirty flag, MPI size, host, start, seeds, timings."""

import json
import re
import shutil
import subprocess
from datetime import datetime

import pytest
from mpi4py import MPI

from solver.cli import main as meanfield
from solver.io import RunDirectory
from solver.provenance import PhaseTimer, finish_provenance, git_state, provenance
from solver.settings import ParticleSettings
from tests.ranks import on_root, shared_dir
from tests.test_sweep import TINY


def test_record_names_versions_commit_host_and_seeds():
    record = provenance(4, ["meanfield", "run", "x.toml"],
                        ParticleSettings(n=(16, 32), seeds=3, entropy=7))
    assert set(record["versions"]) == {"meanfield-flow", "dolfinx", "petsc4py", "numpy",
                                       "scipy", "mpi4py"}
    assert record["versions"]["numpy"] and record["python"].count(".") == 2
    assert record["mpi_size"] == 4 and record["host"]
    assert record["command"] == ["meanfield", "run", "x.toml"]
    assert datetime.fromisoformat(record["started"]).tzinfo is not None
    assert record["seeds"]["entropy"] == 7 and record["seeds"]["seeds_per_width"] == 3
    assert record["seeds"]["n"] == [16, 32]
    commit, dirty = record["commit"], record["dirty"]
    assert (commit is None and dirty is None) or (re.fullmatch(r"[0-9a-f]{40}", commit)
                                                  and isinstance(dirty, bool))
    assert provenance(1)["seeds"] is None


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_state_reports_the_dirty_flag(tmp_path):
    assert git_state(tmp_path) == (None, None)  # not a checkout
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.txt").write_text("1")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert git_state(tmp_path) == (head, False)
    (tmp_path / "untracked.txt").write_text("ignored")
    assert git_state(tmp_path) == (head, False)
    (tmp_path / "a.txt").write_text("2")
    assert git_state(tmp_path) == (head, True)


def test_finish_adds_timings_and_keeps_the_record(tmp_path):
    run_dir = RunDirectory(tmp_path)
    run_dir.write_json("provenance.json", provenance(1))
    timer = PhaseTimer()
    for phase in ("pde", "ensemble", "pde"):
        with timer(phase):
            pass
    with pytest.raises(KeyError), timer("report"):
        raise KeyError  # a failing phase is still timed
    assert list(timer.seconds) == ["pde", "ensemble", "report"]
    finish_provenance(run_dir, timer.seconds)
    record = json.loads((tmp_path / "provenance.json").read_text())
    assert record["timings_s"]["total"] == pytest.approx(sum(timer.seconds.values()))
    assert record["timings_s"]["pde"] == timer.seconds["pde"]
    assert record["versions"] == provenance(1)["versions"] and "finished" in record
    assert not list(tmp_path.glob(".*tmp*"))  # written through a temporary file
    finish_provenance(RunDirectory(tmp_path / "other", writer=False), {"pde": 1.0})
    assert not (tmp_path / "other").exists()


@pytest.mark.mpi
def test_run_directory_records_how_it_was_made(tmp_path):
    """meanfield run (any number of ranks): config copy, provenance with the MPI size,
    the seeds and the wall time of each phase."""
    pytest.importorskip("dolfinx", reason="needs DOLFINx")
    comm = MPI.COMM_WORLD
    folder = shared_dir(comm, tmp_path)
    config = folder / "tiny.toml"
    if comm.rank == 0:
        config.write_text(TINY.replace('output = "runs/tiny"', f'output = "{folder / "run"}"'))
    comm.barrier()
    assert meanfield(["run", str(config), "--no-progress"]) == 0

    def check():
        run = folder / "run"
        assert (run / "config.toml").read_text() == config.read_text()
        record = json.loads((run / "provenance.json").read_text())
        assert record["mpi_size"] == comm.size
        assert record["seeds"] == {"entropy": 0, "seeds_per_width": 2, "n": [16, 32],
                                   "seed_sequence": "SeedSequence(entropy, spawn_key=(n, seed))"}
        timings = record["timings_s"]
        assert set(timings) == {"pde", "error_budget", "ensemble", "report", "total"}
        assert all(v > 0 for v in timings.values())
        assert record["started"] <= record["finished"]

    on_root(comm, check)
