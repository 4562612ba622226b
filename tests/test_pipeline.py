"""Run directories: refuse to overwrite, --force clears stale results, resume keeps tasks."""

import pytest
from mpi4py import MPI

from particle_check.pipeline import RunExists, prepare_run_dir
from solver.config import load
from tests.test_config import EXAMPLE


def test_finished_or_foreign_runs_are_not_overwritten(tmp_path):
    cfg = load(EXAMPLE)
    cfg.output = tmp_path / "run"
    prepare_run_dir(cfg, EXAMPLE, MPI.COMM_SELF, force=False)
    stale = cfg.output / "particles" / "n0000064_seed000.npz"
    stale.parent.mkdir()
    stale.write_bytes(b"x")
    prepare_run_dir(cfg, EXAMPLE, MPI.COMM_SELF, force=False)  # same config: resume
    assert stale.exists()
    other = tmp_path / "other.toml"
    other.write_text(EXAMPLE.read_text().replace("seeds = 8", "seeds = 2"))
    with pytest.raises(RunExists, match="another config"):
        prepare_run_dir(cfg, other, MPI.COMM_SELF, force=False)
    (cfg.output / "summary.json").write_text("{}")
    with pytest.raises(RunExists, match="finished run"):
        prepare_run_dir(cfg, EXAMPLE, MPI.COMM_SELF, force=False)
    prepare_run_dir(cfg, other, MPI.COMM_SELF, force=True)
    assert not stale.exists() and not (cfg.output / "summary.json").exists()
