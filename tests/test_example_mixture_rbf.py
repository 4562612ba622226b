"""examples/mixture_rbf.py at --size small: the PDE's energy against the closed forms."""

import json
from pathlib import Path

import pytest

pytest.importorskip("dolfinx", reason="needs DOLFINx (the example solves a PDE)")
from mpi4py import MPI

from tests.conftest import load_example


@pytest.mark.mpi
def test_mixture_rbf_small(tmp_path):
    comm = MPI.COMM_WORLD
    out = Path(comm.bcast(str(tmp_path / "x"), root=0))
    load_example("mixture_rbf").main(["--size", "small", "--output", str(out), "--no-progress"])
    s = json.loads((out / "summary.json").read_text())
    assert (out / "gallery.png").is_file() and (out / "energy.csv").is_file()
    # the closed-form energy of the PDE's own density equals the PDE's energy up to the
    # Gauss-Hermite error of M = 120 nodes (measured 1.6e-8), which falls with M
    # (measured 2.7e-3, 5.4e-6, 2.2e-11, 2.3e-15 at M = 40, 80, 160, 240)
    assert abs(s["cf_vs_pde_final"]) < 1e-7
    q = [abs(s["quadrature_error"][str(m)]) for m in (40, 80, 160, 240)]
    assert q[0] > 1e-3 and q[2] < 1e-9 and q[3] < 1e-13
    # E(t) against the closed-form Lagrangian reference: errors 1.8e-2, 1.9e-3 on 8^2, 16^2
    # (order 3.3), far above the reference's own error (2.1e-6)
    fine = s["meshes"][-1]
    assert fine["energy_error"] < 4e-3 and fine["order"] > 2.0
    assert s["reference"]["error"] < 0.01 * fine["energy_error"]
    assert all(m["energy_monotone"] and m["mass_drift"] < 1e-12 for m in s["meshes"])
    assert s["energy_final"] < s["energy_initial"]
    # a second run into the finished directory is refused (exit 3) without --force
    if comm.size == 1:
        again = ["--size", "small", "--output", str(out), "--no-progress"]
        assert load_example("_common").run(load_example("mixture_rbf").main, again) == 3
