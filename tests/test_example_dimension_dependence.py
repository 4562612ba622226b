"""examples/dimension_dependence.py at --size small: the reduced 2-D PDE for d = 10, 30 on one
mesh against particles in R^d (single-index teacher), with the cost table."""

import json
from pathlib import Path

import pytest

pytest.importorskip("dolfinx", reason="needs DOLFINx (the example solves a PDE)")
from mpi4py import MPI

from tests.conftest import load_example


def test_deal_longest_first():
    deal = load_example("dimension_dependence").deal
    tasks = [("pde", 10), ("particles", 10), ("pde", 1000), ("particles", 1000)]
    # the d = 1000 particle run (cost 10) alone on one rank, the other three on the other
    owner = deal(tasks, 2)
    assert owner[3] != owner[0] and owner[0] == owner[1] == owner[2]
    assert deal(tasks, 1) == [0, 0, 0, 0]


@pytest.mark.mpi
def test_dimension_dependence_small(tmp_path):
    comm = MPI.COMM_WORLD
    out = Path(comm.bcast(str(tmp_path / "x"), root=0))
    load_example("dimension_dependence").main(["--size", "small", "--output", str(out),
                                               "--no-progress"])
    s = json.loads((out / "summary.json").read_text())
    for name in ("gallery.png", "report.md", "risk.csv"):
        assert (out / name).is_file(), name
    assert s["dims"] == [10, 30] and set(s["per_d"]) == {"10", "30"}
    for v in s["per_d"].values():
        # the PDE trains (risk 0.376 -> 0.127 by t = 1 at d = 10, measured) on the same mesh,
        # in about as many (CFL-limited) steps for every d (23 and 22, measured)
        assert v["pde_risk"] < 0.5 * v["risk_initial"]
        assert abs(v["pde_steps"] - s["per_d"]["10"]["pde_steps"]) <= 3
        # the particles (n = 256) follow it: the gap at the test points is of the size
        # sqrt(MC/n) (measured 0.6x at d = 10) and the risks agree within 2 gap sqrt(risk)
        assert 0.2 < v["gap"] / v["gap_expected"] < 2.0
        assert abs(v["particle_risk"] - v["pde_risk"]) < 0.01
        assert v["pde_wall"] > 0 and v["particle_wall"] > 0
        assert v["ratio"] == pytest.approx(v["pde_wall"] / v["particle_wall"])
    assert set(s["slopes"]) == {"pde_wall", "particle_wall", "particle_wall_large_d"}
    assert "| 30 |" in (out / "report.md").read_text()
