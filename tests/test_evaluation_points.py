"""Data points of weight 0 (test sets, plotting grids) are evaluated at the output times only:
the scheme steps ``Problem.weighted()``, the outputs still hold f_t at every point."""

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("dolfinx", reason="needs DOLFINx")
from mpi4py import MPI

from solver.model.quadrature import DataQuadrature
from solver.pde.solve import make_scheme, solve
from solver.settings import PDESettings
from tests.conftest import circle_problem

SETTINGS = {
    "dg2": PDESettings(cells=(8, 8), scheme="dg", degree=2, integrator="ssprk3", outputs=3,
                       snapshots=0, progress=False),
    "fv": PDESettings(cells=(8, 8), outputs=3, snapshots=0, progress=False),
    "lagrangian": PDESettings(cells=(6, 6), scheme="lagrangian", degree=2,
                              integrator="dopri5", outputs=3, snapshots=0, progress=False),
}


def with_test_points(problem, count: int = 40):
    """The problem's data plus ``count`` points of weight 0, interleaved."""
    data = problem.data
    x = np.linspace(-np.pi, np.pi, count, endpoint=False)[:, None] + 0.05
    points = np.insert(data.points, np.arange(count) % data.size, x, axis=0)
    weights = np.insert(data.weights, np.arange(count) % data.size, 0.0)
    return replace(problem, data=DataQuadrature("lattice + test", points, weights,
                                                data.sampler))


@pytest.mark.parametrize("scheme", SETTINGS)
def test_zero_weight_points_do_not_change_the_run(scheme):
    """The weighted points' f_t, E and the steps equal the run without the test points; f_t
    at the test points equals what a scheme stepping all points computes at the same state."""
    settings = SETTINGS[scheme]
    base = circle_problem(t_final=0.3)
    extended = with_test_points(base)
    plain = solve(base, settings, comm=MPI.COMM_SELF)
    run = solve(extended, settings, comm=MPI.COMM_SELF)
    weighted = extended.data.weights > 0
    np.testing.assert_allclose(run.f[:, weighted], plain.f, rtol=0, atol=1e-14)
    np.testing.assert_allclose(run.energy, plain.energy, rtol=1e-13)
    assert run.f.shape == (4, extended.data.size) and len(run.steps["t"]) == len(plain.steps["t"])
    full = make_scheme(extended, settings, MPI.COMM_SELF)  # the old way: every point stepped
    full.set_density(run.scheme.density())
    np.testing.assert_allclose(run.f[-1], full.f, rtol=0, atol=1e-13)
    assert np.ptp(run.f[-1, ~weighted]) > 1e-3  # the test points do see the network


@pytest.mark.mpi
def test_two_ranks_evaluate_the_test_points_like_one():
    extended = with_test_points(circle_problem(t_final=0.3))
    serial = solve(extended, SETTINGS["dg2"], comm=MPI.COMM_SELF)
    parallel = solve(extended, SETTINGS["dg2"], comm=MPI.COMM_WORLD)
    np.testing.assert_allclose(parallel.f, serial.f, rtol=0, atol=1e-13)
