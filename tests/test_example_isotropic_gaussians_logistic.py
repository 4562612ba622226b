"""examples/isotropic_gaussians_logistic.py at --size small: MMN's isotropic Gaussians on the
logistic loss, the 1-D PDE for |w| against SGD in d = 40."""

import json
from pathlib import Path

import pytest

pytest.importorskip("dolfinx", reason="needs DOLFINx (the example solves a PDE)")
from mpi4py import MPI

from tests.conftest import load_example


@pytest.mark.mpi
def test_isotropic_gaussians_logistic_small(tmp_path):
    comm = MPI.COMM_WORLD
    out = Path(comm.bcast(str(tmp_path / "x"), root=0))
    load_example("isotropic_gaussians_logistic").main(["--size", "small", "--output", str(out),
                                                       "--no-progress"])
    s = json.loads((out / "summary.json").read_text())
    for name in ("gallery.png", "report.md", "loss.csv"):
        assert (out / name).is_file(), name
    assert s["loss"] == {"name": "logistic"} and s["wall_velocity"] == 0.0
    assert s["pde_energy_monotone"]
    # measured: PDE loss 0.4025 -> 0.1927 by t = 3, SGD 0.4018 -> 0.1920 (test set of 2000),
    # largest gap 1.9e-3; classification error 0.28 -> 1.3e-6 (PDE), 0 of 2000 (SGD)
    assert s["pde_loss_final"] < 0.5 * s["pde_loss_initial"]
    assert abs(s["sgd_loss_initial"] - s["pde_loss_initial"]) < 0.01
    assert s["max_loss_gap"] < 0.01
    assert s["pde_error_initial"] > 0.2 and s["pde_error_final"] < 1e-4
    assert s["sgd_error_final"] < 5e-3 and s["sgd_accuracy_final"] > 0.995
    # |w_i| follows the PDE law of r: KS distance (measured <= 0.039) below 2 / sqrt(n)
    assert all(v < 2.0 * s["ks_scale"] for v in s["ks_distance"].values())
