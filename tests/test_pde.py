"""The upwind FV PDE: structure (mass, positivity, energy) and serial == MPI."""

import numpy as np
import pytest

pytest.importorskip("dolfinx_solver", reason="needs DOLFINx")
from mpi4py import MPI

from solver.pde.solve import SchemeFailure, solve
from solver.settings import PDESettings
from tests.conftest import circle_problem

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
def test_serial_equals_parallel_loss_curve():
    """The same run on COMM_SELF and COMM_WORLD gives the same loss curve to 1e-10."""
    problem = circle_problem(lam=0.05, t_final=0.5)
    serial = solve(problem, SETTINGS, comm=MPI.COMM_SELF)
    parallel = solve(problem, SETTINGS, comm=MPI.COMM_WORLD)
    np.testing.assert_allclose(parallel.energy, serial.energy, rtol=1e-10)
    np.testing.assert_allclose(parallel.f, serial.f, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(parallel.mc, serial.mc, rtol=1e-10)
    np.testing.assert_allclose(parallel.steps["dissipation"], serial.steps["dissipation"],
                               rtol=1e-9)


def test_linear_translation_loss_converges_at_order_two_in_time():
    """Exact solution L(t) = 1/2 |m(t) - m*|^2: SSP-RK2 error falls ~4x when dt halves."""
    from benchmarks.linear_translation import loss_error

    coarse, _ = loss_error("ssprk2", 0.02, cells=32)
    fine, _ = loss_error("ssprk2", 0.01, cells=32)
    assert fine < 1e-3
    assert 3.0 < coarse / fine < 5.0
