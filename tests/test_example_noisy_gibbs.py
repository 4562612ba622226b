"""examples/noisy_gibbs.py at --size small: noisy training converges to the Gibbs state."""

import json
from pathlib import Path

import pytest

pytest.importorskip("dolfinx", reason="needs DOLFINx (the example solves a PDE)")
from mpi4py import MPI

from tests.conftest import load_example


@pytest.mark.mpi
def test_noisy_gibbs_small(tmp_path):
    comm = MPI.COMM_WORLD
    out = Path(comm.bcast(str(tmp_path / "x"), root=0))
    load_example("noisy_gibbs").main(["--size", "small", "--output", str(out), "--no-progress"])
    s = json.loads((out / "summary.json").read_text())
    assert (out / "gallery.png").is_file() and (out / "report.md").is_file()
    assert s["gibbs"]["newton_residual"] < 1e-12
    # the free energy never increases; every run reaches stationarity
    assert s["free_energy_monotone"]
    coarse, fine = s["pde"]
    assert all(r["stopped"] == "stationary" and r["mass_drift"] < 1e-10 for r in s["pde"])
    # L1 error against the Newton fixed point: 2.5e-2 (8^2), 6.4e-3 (16^2), order 1.99
    assert fine["l1_error"] < 1e-2 and 1.7 < fine["order"] < 2.3
    assert 0 < fine["free_energy_error"] < coarse["free_energy_error"]
    # noisy GD: ||f_n - f_inf||^2 ~ 1/n (measured slope -0.99, n gap^2 ~ 0.21)
    q = s["particles"]
    assert -1.4 < q["gap2_slope_in_n"] < -0.6
    assert all(0.05 < v < 1.0 for v in q["n_gap2"].values())
