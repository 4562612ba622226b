"""examples/regularised.py at --size small: the penalty lowers the fluctuation bound MC(t)."""

import json
from pathlib import Path

import pytest

pytest.importorskip("dolfinx", reason="needs DOLFINx (the example solves a PDE)")
from mpi4py import MPI

from tests.conftest import load_example


@pytest.mark.mpi
def test_regularised_small(tmp_path):
    comm = MPI.COMM_WORLD
    out = Path(comm.bcast(str(tmp_path / "x"), root=0))
    load_example("regularised").main(["--size", "small", "--output", str(out), "--no-progress"])
    s = json.loads((out / "summary.json").read_text())
    assert (out / "gallery.png").is_file() and (out / "lambda_0.2" / "report.md").is_file()
    rows = [s["by_lambda"][key] for key in ("0", "0.05", "0.2")]
    # same rho_0: same MC(0); MC(T) falls with lambda (measured 0.0361, 0.0327, 0.0243)
    # and the loss rises (3.856e-2, 3.868e-2, 3.901e-2)
    assert rows[0]["mc_initial"] == pytest.approx(rows[2]["mc_initial"], rel=1e-12)
    mc = [r["mc_final"] for r in rows]
    loss = [r["loss_final"] for r in rows]
    assert mc[0] > mc[1] > mc[2] and mc[2] < 0.8 * mc[0]
    assert loss[0] < loss[1] < loss[2]
    # the measured n gap^2 at the largest n is consistent with MC(T) (interval reaches it)
    for r in rows:
        assert r["energy_monotone"]
        assert r["n_gap2_final_interval"][0][-1] <= r["mc_final"]
