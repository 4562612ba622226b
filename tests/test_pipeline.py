"""Run directories: refuse to overwrite, --force clears stale results, resume keeps tasks."""

import tomllib

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


def test_a_failing_error_budget_run_does_not_fail_the_run(tmp_path, capsys):
    """On [-2, 2] x S^1 with max_outflow 1e-4 the 8 x 8 run keeps its mass and the 4 x 4
    error-budget run loses too much through the wall: the run still finishes (exit 0) and
    says why it has no PDE error estimate, in report.md and summary.json."""
    import json

    pytest.importorskip("dolfinx", reason="needs DOLFINx")
    from solver.cli import main
    from solver.sweep import dump_toml
    from tests.conftest import tiny_run_config

    raw = tomllib.loads(tiny_run_config(tmp_path / "run", pde={"max_outflow": 1e-4}))
    raw["domain"].update(lower=-2.0, upper=2.0)
    config = tmp_path / "c.toml"
    config.write_text(dump_toml(raw))
    assert main(["run", str(config), "--no-progress"]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) <= 10 and printed[1].startswith("  alpha(t = 0) = ")
    assert printed[-2].startswith("PDE error budget: none (the coarser run (fv, cells [4, 4])")
    budget = json.loads((tmp_path / "run" / "summary.json").read_text())["error_budget"]
    assert not budget["pde_error_given"]
    assert budget["no_estimate_reason"].startswith("the coarser run (fv, cells [4, 4]) failed")
    assert "outflow" in budget["no_estimate_reason"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "no PDE error estimate (the coarser run (fv, cells [4, 4]) failed" in report


def test_the_error_budget_is_floored_at_round_off(monkeypatch):
    """Two runs that agree to round-off (at t = 0 they start from the same density) give a
    PDE error of ROUND_OFF max_t ||f_t||, not 1e-17, so gap / PDE error stays meaningful."""
    import numpy as np

    pytest.importorskip("dolfinx", reason="needs DOLFINx")
    from particle_check import pipeline
    from solver.config import load
    from solver.pde.solve import PDEResult

    cfg = load(EXAMPLE)
    f = np.ones((2, cfg.problem.data.size)) * np.array([[1e-3], [1.0]])  # f_0 small
    fine = PDEResult(np.array([0.0, 1.0]), f, *(np.ones(2),) * 3)
    coarse = PDEResult(fine.times, f + np.array([[1e-17], [1e-3]]), *(np.ones(2),) * 3)
    monkeypatch.setattr("solver.pde.solve.solve", lambda *a, **k: coarse)
    budget = pipeline.pde_error(cfg, fine, MPI.COMM_SELF)
    np.testing.assert_allclose(budget.f_error, [pipeline.ROUND_OFF, 1e-3])
