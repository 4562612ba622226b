"""Run directories: refuse to overwrite, --force clears stale results, resume keeps tasks."""

import pytest
from mpi4py import MPI

from particle_check.pipeline import RunExistsError, prepare_run_dir
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
    with pytest.raises(RunExistsError, match="another config"):
        prepare_run_dir(cfg, other, MPI.COMM_SELF, force=False)
    (cfg.output / "summary.json").write_text("{}")
    with pytest.raises(RunExistsError, match="finished run"):
        prepare_run_dir(cfg, EXAMPLE, MPI.COMM_SELF, force=False)
    prepare_run_dir(cfg, other, MPI.COMM_SELF, force=True)
    assert not stale.exists() and not (cfg.output / "summary.json").exists()


def test_error_budget_run_is_coarser():
    from particle_check.pipeline import coarse_settings
    from solver.settings import PDESettings

    assert coarse_settings(PDESettings(cells=(128, 64))).cells == (64, 32)
    assert coarse_settings(PDESettings(mesh="sphere", level=2)).level == 1
    dg2 = coarse_settings(PDESettings(mesh_file="m.xdmf", scheme="dg", degree=2))
    assert (dg2.degree, dg2.mesh_file) == (1, "m.xdmf")
    assert coarse_settings(PDESettings(mesh="sphere", level=0)) is None
