"""The implicit integrators' time error against the space error (docs/verification-time.md):
time_tolerance "auto" follows the mesh, mprk22 is second order, summary.json says which
error dominates."""

import json

import numpy as np
import pytest

from solver.settings import AUTO_FLOOR, PDESettings, auto_time_tolerance


def test_auto_tolerance_shrinks_with_h_at_the_rate_that_keeps_time_below_space():
    # global time error ~ tol^(q/2), space error ~ h^2: tol ~ h^2 (mprk22), h^4 (implicit)
    assert auto_time_tolerance("mprk22", 0.05) == pytest.approx(auto_time_tolerance(
        "mprk22", 0.1) / 4, rel=1e-12)
    assert auto_time_tolerance("implicit", 0.5) == pytest.approx(auto_time_tolerance(
        "implicit", 1.0) / 16, rel=1e-12)
    assert auto_time_tolerance("implicit", 1e-3) == AUTO_FLOOR  # the estimate's round-off


def test_time_tolerance_is_auto_by_default_and_a_number_still_works():
    base = dict(cells=(8,), integrator="mprk22")
    assert PDESettings(**base).time_tolerance == "auto"
    assert PDESettings(**base).resolved_time_tolerance(0.1) == pytest.approx(0.2 * 0.01)
    assert PDESettings(**base, time_tolerance=1e-4).resolved_time_tolerance(0.1) == 1e-4
    for bad in (0.0, -1.0, "fast"):
        with pytest.raises(ValueError, match=r"pde\.time_tolerance"):
            PDESettings(**base, time_tolerance=bad)
    with pytest.raises(ValueError, match='"mprk22" needs scheme "fv"'):
        PDESettings(cells=(8,), scheme="dg", integrator="mprk22")


@pytest.mark.parametrize("value, expected", [("auto", "auto"), (1e-5, 1e-5), (1, 1.0)])
def test_config_reads_time_tolerance(value, expected):
    from solver.config import parse
    from tests.test_config import _set

    raw = _set("pde.time_tolerance", value)
    raw["pde"].update(scheme="fv", integrator="mprk22")
    del raw["pde"]["degree"]
    assert parse(raw).pde.time_tolerance == expected


@pytest.mark.parametrize("value", ["fast", 0, float("nan"), True])
def test_config_refuses_a_bad_time_tolerance(value):
    from solver.config import ConfigError, parse
    from tests.test_config import _set

    with pytest.raises(ConfigError, match=r'pde\.time_tolerance: .*"auto"'):
        parse(_set("pde.time_tolerance", value))


# -- runs (DOLFINx) ----------------------------------------------------------------------

def _solve(cells, run_dir=None, **kw):
    pytest.importorskip("dolfinx", reason="needs DOLFINx")
    from mpi4py import MPI

    from benchmarks.verification import noisy_circle
    from solver.pde.solve import solve

    settings = PDESettings(cells=(cells,), outputs=10, snapshots=0, progress=False, **kw)
    return solve(noisy_circle(), settings, run_dir, comm=MPI.COMM_SELF)


def _rel(a, b):
    return float(np.max(np.abs(a / b - 1)))


@pytest.fixture(scope="module")
def explicit():
    """The explicit loss curves on 32, 64 and 256 cells at cfl 0.05 (time error
    O(cfl^2 h^4), 1e-8 of the loss on 64 cells)."""
    return {cells: _solve(cells, cfl=0.05).loss for cells in (32, 64, 256)}


@pytest.mark.parametrize("integrator, cells", [("mprk22", 64), ("implicit", 32)])
def test_auto_tolerance_keeps_the_time_error_below_the_space_error(explicit, integrator, cells):
    fine = explicit[256]
    space = _rel(explicit[cells], fine)  # minus the 256-cell error, order 2: a lower bound
    result = _solve(cells, integrator=integrator)
    time = _rel(result.loss, explicit[cells])
    assert time < 0.1 * space, (time, space)
    assert result.time_error["dominant_error"] == "space"
    # at the former default 1e-4 the backward-Euler time error dominates already on 64 cells
    if integrator == "implicit":
        old = _solve(64, integrator="implicit", time_tolerance=1e-4)
        assert _rel(old.loss, explicit[64]) > 0.1 * _rel(explicit[64], fine)
        assert old.time_error["dominant_error"] != "space"


def test_mprk22_time_error_falls_like_the_tolerance(explicit):
    """Second order: error ~ dt^2 ~ tol (backward Euler: ~ tol^(1/2))."""
    errors = [_rel(_solve(64, integrator="mprk22", time_tolerance=tol).loss, explicit[64])
              for tol in (1e-5, 1e-6)]
    assert 5 < errors[0] / errors[1] < 40, errors  # backward Euler: 3.2


def test_summary_says_which_error_dominates(tmp_path):
    from solver.io import RunDirectory

    _solve(32, RunDirectory(tmp_path / "auto"), integrator="mprk22")
    _solve(32, RunDirectory(tmp_path / "loose"), integrator="implicit", time_tolerance=1e-2)
    _solve(32, RunDirectory(tmp_path / "explicit"))
    auto, loose, expl = (json.loads((tmp_path / name / "summary.json").read_text())["time_error"]
                         for name in ("auto", "loose", "explicit"))
    assert auto["dominant_error"] == "space" and auto["time_tolerance"] == pytest.approx(
        auto["auto_time_tolerance"]) == pytest.approx(0.2 * auto["h"] ** 2)
    assert auto["time_to_space_error_ratio_estimate"] == pytest.approx(0.1)
    assert 0 < auto["accumulated_local_error"] and auto["accumulated_since_t"] == 0
    assert loose["dominant_error"] == "time" and loose["time_tolerance"] == 1e-2
    assert expl["dominant_error"] == "space" and expl["integrator"] == "ssprk2"
