"""The upwind FV PDE: structure (mass, positivity, energy) and serial == MPI."""

import numpy as np
import pytest

pytest.importorskip("dolfinx", reason="needs DOLFINx")
from mpi4py import MPI

from solver.pde.implicit import FACTOR_GRID, step_factor
from solver.pde.solve import SchemeFailure, solve
from solver.settings import PDESettings
from tests.conftest import circle_problem
from tests.ranks import assert_runs_agree

SETTINGS = PDESettings(cells=(24, 24), outputs=5, snapshots=0, progress=False)


def test_mass_positivity_energy_every_step():
    settings = PDESettings(cells=(24, 24), outputs=5, snapshots=0, max_step=0.02,
                           progress=False)
    result = solve(circle_problem(lam=0.05, t_final=1.0), settings, comm=MPI.COMM_SELF)
    steps = {k: np.array(v) for k, v in result.steps.items()}
    assert len(steps["t"]) > 20
    assert np.max(np.abs(steps["mass"] - 1.0)) < 1e-12
    assert steps["min_rho"].min() >= 0
    assert np.all(np.diff(steps["energy"]) <= 0)
    assert result.energy[-1] < 0.97 * result.energy[0]  # it trains (E: 0.0563 -> 0.0536)
    # semi-discrete identity dE/dt = -D, checked to first order in dt along the run
    dEdt = np.diff(steps["energy"]) / np.diff(steps["t"])
    diss = 0.5 * (steps["dissipation"][1:] + steps["dissipation"][:-1])
    np.testing.assert_allclose(-dEdt, diss, rtol=0.05)


def test_cfl_violation_is_caught():
    """cfl > 1 is refused before running; a forced too-large step fails loudly."""
    with pytest.raises(ValueError, match=r"pde\.cfl"):
        PDESettings(cells=(8, 8), cfl=1.5)
    bad = PDESettings(cells=(24, 24), integrator="euler", outputs=1, snapshots=0,
                      progress=False)
    object.__setattr__(bad, "cfl", 40.0)  # bypass validation to exercise the runtime check
    with pytest.raises(SchemeFailure, match=r"step 1, t=.*(min rho|energy)"):
        solve(circle_problem(t_final=4.0), bad, comm=MPI.COMM_SELF)


@pytest.mark.mpi
@pytest.mark.parametrize("integrator, beta", [("ssprk2", np.inf), ("implicit", 50.0)])
def test_serial_equals_parallel_loss_curve(integrator, beta):
    """The same run on COMM_SELF and COMM_WORLD: the same steps and values to round-off."""
    from dataclasses import replace

    problem = replace(circle_problem(lam=0.05, t_final=0.5), beta=beta)
    settings = replace(SETTINGS, integrator=integrator)
    serial = solve(problem, settings, comm=MPI.COMM_SELF)
    parallel = solve(problem, settings, comm=MPI.COMM_WORLD)
    assert_runs_agree(serial, parallel)


def test_linear_translation_loss_converges_at_order_two_in_time():
    """Exact solution L(t) = 1/2 |m(t) - m*|^2: SSP-RK2 error falls ~4x when dt halves."""
    from benchmarks.linear_translation import loss_error

    coarse, _ = loss_error("ssprk2", 0.02, cells=32)
    fine, _ = loss_error("ssprk2", 0.01, cells=32)
    assert fine < 1e-3
    assert 3.0 < coarse / fine < 5.0


def noisy_linear_problem(beta: float = 20.0, lam: float = 0.0, t_final: float = 1.0):
    """s = theta x, x ~ N(0, 1), y = 1.5 x: the mean follows m' = 1.5 - m, the law spreads."""
    from solver.model import density, quadrature, targets, units
    from solver.model.domain import Box
    from solver.model.problem import Problem

    return Problem(units.LinearUnit(1), quadrature.gauss_hermite([0.0], 1.0, 4),
                   targets.ExpressionTarget("1.5*x0", 1), Box((-4.0,), (6.0,)),
                   density.Gaussian([0.3], [0.4]), beta=beta, lam=lam, t_final=t_final)


@pytest.mark.parametrize("integrator", ["ssprk2", "implicit"])
def test_noisy_translation_mean_and_structure(integrator):
    """Scharfetter-Gummel FV, beta = 20: the exact mean m(1) = 1.5 - 1.2/e, mass, rho >= 0,
    free energy non-increasing, explicitly and with the implicit KSP step."""
    settings = PDESettings(cells=(200,), integrator=integrator, outputs=2, snapshots=0,
                           time_tolerance=1e-5, progress=False)
    problem = noisy_linear_problem()
    result = solve(problem, settings, comm=MPI.COMM_SELF)
    mean = result.f[-1] @ (problem.data.weights * problem.data.points[:, 0])
    exact = 1.5 - 1.2 * np.exp(-1.0)
    assert abs(mean - exact) < (2e-5 if integrator == "ssprk2" else 2e-3)
    steps = {k: np.array(v) for k, v in result.steps.items()}
    assert np.ptp(steps["mass"]) < 1e-12
    assert steps["min_rho"].min() >= 0
    assert np.all(np.diff(steps["energy"]) <= 0)


def test_step_factor_lies_on_a_grid_that_round_off_does_not_cross():
    """The implicit controller's factor 0.9 sqrt(tol/err), clipped to [0.2, 2], rounded down
    onto 2^(j/64): a relative 1e-12 change of err (what another rank count makes of it)
    moves none of 20000 factors, while the unrounded factor moves every time."""
    tol = 1e-5
    errs = tol * 10.0 ** np.random.default_rng(3).uniform(-3, 3, 20000)
    factors = np.array([step_factor(e, tol) for e in errs])
    exact = np.clip(0.9 * np.sqrt(tol / errs), 0.2, 2.0)
    grid = FACTOR_GRID * np.log2(factors)
    np.testing.assert_allclose(grid, np.round(grid), rtol=0, atol=1e-9)
    assert np.all(factors <= exact) and np.all(factors > exact * 2.0 ** (-1 / FACTOR_GRID))
    moved = [step_factor(e * (1 + 1e-12), tol) != f for e, f in zip(errs, factors, strict=True)]
    assert not any(moved)
    assert step_factor(0.0, tol) == 2.0 and step_factor(10 * tol, tol, upper=0.5) <= 0.5


def test_implicit_agrees_with_explicit_on_a_nonlinear_run():
    problem = circle_problem(lam=0.05, t_final=1.0)
    explicit = solve(problem, SETTINGS, comm=MPI.COMM_SELF)
    implicit = solve(problem, PDESettings(cells=(24, 24), integrator="implicit",
                                          time_tolerance=1e-4, outputs=5, snapshots=0,
                                          progress=False), comm=MPI.COMM_SELF)
    np.testing.assert_allclose(implicit.energy, explicit.energy, rtol=2e-3)


def test_implicit_steps_past_the_diffusive_cfl_bound():
    """On a fine mesh with noise the explicit bound is O(h^2 beta); the implicit step is not."""
    problem = noisy_linear_problem(beta=20.0)
    runs = {integ: solve(problem, PDESettings(cells=(1000,), integrator=integ, outputs=1,
                                              snapshots=0, time_tolerance=1e-3,
                                              progress=False), comm=MPI.COMM_SELF)
            for integ in ("ssprk2", "implicit")}
    assert len(runs["implicit"].steps["t"]) < len(runs["ssprk2"].steps["t"]) / 5
    np.testing.assert_allclose(runs["implicit"].f[-1], runs["ssprk2"].f[-1], rtol=5e-3)


def test_stationarity_stops_the_run_early():
    """Noise and confinement: the flow reaches its Gibbs state and the run stops there."""
    settings = PDESettings(cells=(100,), integrator="implicit", time_tolerance=1e-4, outputs=4,
                           snapshots=0, stationary_tolerance=1e-10, progress=False)
    result = solve(noisy_linear_problem(beta=5.0, lam=1.0, t_final=200.0), settings,
                   comm=MPI.COMM_SELF)
    assert result.stopped == "stationary"
    assert result.times[-1] < 200.0
    assert result.steps["dissipation"][-1] < 1e-10


def test_compressed_unit_matrix_changes_the_energy_by_less_than_its_tolerance():
    from dataclasses import replace

    from solver.model import quadrature

    problem = replace(circle_problem(lam=0.05, t_final=0.5), data=quadrature.circle_lattice(256))
    settings = replace(SETTINGS, cells=(48, 48))
    dense = solve(problem, settings, comm=MPI.COMM_SELF)
    compressed = solve(problem, replace(settings, compress_rtol=1e-8), comm=MPI.COMM_SELF)
    assert compressed.scheme.S.rank < 40  # numerical rank ~30 at rtol 1e-8
    np.testing.assert_allclose(compressed.energy, dense.energy, rtol=1e-8)
    np.testing.assert_allclose(compressed.f, dense.f, atol=1e-8)


def test_petsc_options_choose_the_implicit_solver():
    """A direct MUMPS solve conserves mass to round-off; a loose GMRES breaks the mass check."""
    from dataclasses import replace

    base = PDESettings(cells=(200,), integrator="implicit", time_tolerance=1e-4, outputs=1,
                       snapshots=0, progress=False)
    problem = noisy_linear_problem()
    direct = (("ksp_type", "preonly"), ("pc_type", "lu"),
              ("pc_factor_mat_solver_type", "mumps"))
    loose = (("ksp_type", "gmres"), ("pc_type", "jacobi"), ("ksp_rtol", "1e-6"))
    result = solve(problem, replace(base, petsc=direct), comm=MPI.COMM_SELF)
    assert np.max(np.abs(np.array(result.steps["mass"]) - 1.0)) < 1e-14
    with pytest.raises(SchemeFailure, match=r"step 1, .*mass"):
        solve(problem, replace(base, petsc=loose), comm=MPI.COMM_SELF)


def test_a_failed_check_leaves_the_last_good_state_on_disk(tmp_path):
    from solver.io import RunDirectory
    from solver.pde.checkpoint import read_checkpoint
    from solver.pde.output import read_timeseries

    bad = PDESettings(cells=(24, 24), integrator="euler", outputs=2, snapshots=0,
                      progress=False)
    object.__setattr__(bad, "cfl", 40.0)  # bypass validation to force a failure at step 1
    with pytest.raises(SchemeFailure):
        solve(circle_problem(t_final=4.0), bad, RunDirectory(tmp_path), comm=MPI.COMM_SELF)
    assert not (tmp_path / "summary.json").exists()
    steps, _, attrs = read_timeseries(tmp_path / "timeseries.h5")
    assert list(steps["step"]) == [0.0] and attrs["status"].startswith("failed")
    scheme = solve(circle_problem(t_final=0.1), replace_outputs(1), comm=MPI.COMM_SELF).scheme
    meta = read_checkpoint(tmp_path / "checkpoint.h5", scheme.mesh, scheme.rho)
    assert meta["status"].startswith("last good") and meta["step"] == 0
    np.testing.assert_allclose(scheme.density(), scheme.initial_density(), rtol=1e-14)


def replace_outputs(outputs: int) -> PDESettings:
    from dataclasses import replace

    return replace(SETTINGS, outputs=outputs)
