"""Particle GD on the exact linear-unit solution, and the ensemble / comparison path."""

import numpy as np
import pytest
from mpi4py import MPI

from particle_check.compare import compare
from particle_check.ensemble import assign_tasks, run_ensemble
from particle_check.particles import simulate
from solver.io import RunDirectory
from solver.model import density, quadrature, targets, units
from solver.model.domain import Box
from solver.model.problem import Problem
from solver.settings import ParticleSettings


def linear_problem() -> Problem:
    """s = theta . x, x ~ N(0, I_2) (E x x^T = I exactly by Gauss-Hermite), y = m* . x."""
    data = quadrature.gauss_hermite([0.0, 0.0], 1.0, 4)
    return Problem(units.LinearUnit(2), data, targets.ExpressionTarget("1.5*x0 - 0.5*x1", 2),
                   Box((-6, -6), (6, 6)), density.Gaussian([0.3, 0.2], [0.4, 0.4]),
                   t_final=2.0)


def test_linear_unit_translation_is_exact():
    """grad Psi = m(t) - m*: every particle moves by (m(0) - m*)(e^{-t} - 1)."""
    problem = linear_problem()
    theta0 = problem.sample_initial(np.random.default_rng(3), 50)
    times = np.linspace(0, 2, 5)
    run = simulate(problem, theta0, times, dt=0.02)
    m_star, m0 = np.array([1.5, -0.5]), theta0.mean(axis=0)
    shift = (m0 - m_star) * (np.exp(-2.0) - 1.0)
    np.testing.assert_allclose(run.theta, theta0 + shift, atol=1e-9)
    m_t = m_star + np.outer(np.exp(-times), m0 - m_star)
    np.testing.assert_allclose(run.loss, 0.5 * np.sum((m_t - m_star) ** 2, axis=1), rtol=1e-8)


def test_ensemble_is_reproducible_resumes_and_compares(tmp_path):
    problem = linear_problem()
    settings = ParticleSettings(n=(16, 64), seeds=3, dt=0.05)
    times = np.linspace(0, 1, 3)
    run_dir = RunDirectory(tmp_path)
    first = run_ensemble(problem, settings, times, run_dir, MPI.COMM_SELF)
    assert len(list(tmp_path.glob("*.npz"))) == 6
    again = run_ensemble(problem, settings, times, run_dir, MPI.COMM_SELF)  # loaded, not rerun
    for key in first:
        np.testing.assert_array_equal(first[key].f, again[key].f)
    exact_f = np.zeros((3, problem.data.size))  # compare against any reference works
    cmp = compare(problem.data.weights, times, exact_f, np.zeros(3), np.zeros(3), first)
    assert cmp.gap.shape == (2, 3) and np.all(cmp.gap > 0)


def test_tasks_balanced_over_ranks():
    plan = assign_tasks(ParticleSettings(n=(64, 256, 1024), seeds=4), 2)
    loads = [sum(n for n, _ in tasks) for tasks in plan]
    assert sorted(t for tasks in plan for t in tasks) == sorted(
        (n, s) for n in (64, 256, 1024) for s in range(4))
    assert abs(loads[0] - loads[1]) <= 64


@pytest.mark.mpi
def test_ensemble_over_ranks_equals_serial():
    problem = linear_problem()
    settings = ParticleSettings(n=(16, 32, 64), seeds=2, dt=0.05)
    times = np.linspace(0, 1, 3)
    serial = run_ensemble(problem, settings, times, None, MPI.COMM_SELF)
    spread = run_ensemble(problem, settings, times, None, MPI.COMM_WORLD)
    if MPI.COMM_WORLD.rank == 0:
        assert set(spread) == set(serial)
        for key in serial:
            np.testing.assert_array_equal(spread[key].f, serial[key].f)
    else:
        assert spread is None
