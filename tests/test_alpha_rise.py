"""benchmarks/alpha_rise.py: the sparse sawtooth right-hand side against the dense generic
tools, and a tiny study in which the gap's exponent rises from 1/2 to the predicted 1."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from benchmarks import alpha_rise as ar
from particle_check.particles import velocity

SETTING = ar.Setting(M=2048, eps=4e-3)


def test_sparse_matches_dense_tools():
    lat = ar.SawtoothLattice(SETTING)
    rng = np.random.default_rng(3)
    z = rng.uniform(0, ar.TWO_PI, 41)
    W = np.full(len(z), 1 / len(z))
    v, f = lat.velocity(z, W)
    problem = lat.dense_problem()
    # central differences with step ~6e-6 against a step of width 4e-3: truncation ~1e-5
    problem.unit.check_gradient(problem.data.points[::16], z[:6, None], rtol=1e-4)
    v_dense, f_dense = velocity(problem, z[:, None])
    assert np.abs(f - f_dense).max() < 1e-12
    assert np.abs(v - v_dense[:, 0]).max() < 1e-12
    S = problem.unit.values(problem.data.points, z[:, None])
    assert abs(lat.mc(f) - (np.mean(S**2 @ W) - np.mean(f**2))) < 1e-10
    # y is f_{rho*}: a fine quadrature of rho* reproduces it
    u = ar.TWO_PI * (np.arange(20000) + 0.5) / 20000
    Wq = lat.rho_star(u) / lat.rho_star(u).sum()
    assert np.abs(lat.output(u, Wq)[0] - lat.y).max() < 1e-10


def test_alpha_rises_to_one():
    study = ar.Study(SETTING, widths=(8, 16, 32), seeds=6, times=(0.0, 1.0, 3.0, 8.0),
                     nodes=2048, fit_min=8)
    lat = ar.SawtoothLattice(study.setting)
    lim = ar.limit(lat, np.array(study.times), study.nodes)
    ens = ar.ensemble(lat, study, lim)
    res = ar.analyse(lat, study, lim, ens)
    alpha = np.array(res["alpha"]["value"])
    assert alpha[0] < 0.8 and alpha[-1] > 0.9
    assert np.all(np.diff(alpha) > -0.05)
    # n gap^2 / MC ~ 1 at t = 0 (the CLT), n^2 gap^2 -> B(n) at the end (the staircase)
    assert np.all(np.abs(np.log(np.array(res["n_g2_over_mc"])[:, 0])) < np.log(2.5))
    assert np.all(np.abs(np.array(res["n2_g2_over_b"])[:, -1] - 1) < 0.05)
    # the limit reaches the target; its error and the integrator's are far below every gap
    assert res["limit"]["loss"][-1] < 1e-2 * min(res["budget"]["smallest_gap"]) ** 2
    assert res["budget"]["gap_over_budget_min"] > 100


def test_the_example_at_small_size(tmp_path):
    """examples/alpha_rise.py --size small: the run directory, and alpha from ~1/2 to ~1."""
    import json

    from tests.conftest import load_example

    out = tmp_path / "run"
    load_example("alpha_rise").main(["--size", "small", "--output", str(out), "--no-progress"])
    for name in ("gallery.png", "report.md", "results.json", "provenance.json"):
        assert (out / name).is_file(), name
    s = json.loads((out / "summary.json").read_text())
    assert s["alpha_t0"][0] < 0.8 and s["alpha_final"][0] > 0.95
    assert s["gap_over_budget_min"] > 100


@pytest.mark.mpi
def test_ranks_share_the_runs():
    """The (width, seed) runs and the limit's node sets dealt over the ranks: the same
    ensemble and limit as one rank, bitwise."""
    comm = MPI.COMM_WORLD
    study = ar.Study(SETTING, widths=(8, 16), seeds=3, times=(0.0, 1.0, 2.0), nodes=512,
                     fit_min=8)
    lat = ar.SawtoothLattice(study.setting)
    times = np.array(study.times)
    lim, lim1 = ar.limit(lat, times, study.nodes, comm=comm), ar.limit(lat, times, study.nodes)
    assert np.array_equal(lim.f, lim1.f) and np.array_equal(lim.error, lim1.error)
    ens, ens1 = ar.ensemble(lat, study, lim, comm=comm), ar.ensemble(lat, study, lim)
    for a, b in zip(ens.sq + ens.loss, ens1.sq + ens1.loss, strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(ens.integrator_error, ens1.integrator_error)
