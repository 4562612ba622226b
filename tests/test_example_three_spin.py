"""examples/three_spin.py at --size small: loss vs n in d = 25 and the circle PDE check;
without DOLFINx, Part A alone."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from tests.conftest import load_example


@pytest.mark.mpi
def test_three_spin_small(tmp_path):
    pytest.importorskip("dolfinx", reason="needs DOLFINx")
    comm = MPI.COMM_WORLD
    out = Path(comm.bcast(str(tmp_path / "x"), root=0))
    load_example("three_spin").main(["--size", "small", "--output", str(out), "--no-progress"])
    s = json.loads((out / "summary.json").read_text())
    for name in ("gallery.png", "report.md", "loss_vs_n.csv", "circle/report.md"):
        assert (out / name).is_file(), name
    a = s["part_a"]
    # the long-time training loss falls with n: measured 0.43, 0.31, 0.20 at n = 8, 16, 32,
    # alpha = 0.55 [0.52, 0.58]
    assert np.all(np.diff(a["train_loss_final_mean"]) < 0)
    assert 0.3 < a["alpha"] < 0.9 and a["alpha_lo"] > 0.2 and a["alpha_lo"] < a["alpha_hi"]
    b = s["part_b"]
    # at a finite time the PDE-particle gap is the CLT's n^-1/2 (measured 0.58 [0.32, 0.99])
    assert b["alpha_final_lo"] < 0.5 < b["alpha_final_hi"]
    assert b["crbv"].startswith("consistent")


def test_without_dolfinx_part_a_runs_and_part_b_says_it_was_skipped(tmp_path, monkeypatch,
                                                                      capsys):
    """A particle-only install (``pip install .``) runs Part A; the outputs name the skip."""
    example = load_example("three_spin")
    monkeypatch.setattr(sys.modules["_common"], "dolfinx_available", lambda: False)
    out = tmp_path / "x"
    example.main(["--size", "small", "--output", str(out), "--no-progress"])
    assert "Part B (the PDE on the circle) skipped: needs DOLFINx" in capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert s["part_b"] == {"skipped": "needs DOLFINx"}
    assert not (out / "circle").exists() and (out / "gallery.png").is_file()
    assert "Skipped: needs DOLFINx" in (out / "report.md").read_text()
    assert np.all(np.diff(s["part_a"]["train_loss_final_mean"]) < 0)
