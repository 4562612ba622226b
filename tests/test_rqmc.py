"""RQMC estimates of the noiseless limit (solver.reference.rqmc, rules.rqmc_rule): the nodes
are scrambled Sobol' points of rho_0, the intervals cover the exact polar flow, and the
scrambles split over ranks give the serial answer."""

import numpy as np
import pytest
from mpi4py import MPI

from solver.model import density
from solver.model.domain import Circle, Cylinder
from solver.reference.lagrangian import initial_nodes
from solver.reference.polar_flow import PolarFlow, polar_flow_problem
from solver.reference.rqmc import rqmc_estimate, rqmc_ladder
from solver.reference.rules import rqmc_rule


def test_rule_integrates_rho0_at_the_qmc_rate():
    """Mean and variance of N(mean, diag std^2) from 1024 scrambled Sobol' nodes: within
    1.5e-3 std and 1e-2 relative for every scramble tried (Monte Carlo with 1024 samples:
    typically 3e-2 std and 4e-2)."""
    rho = density.Gaussian([0.3, -1.0], [0.5, 2.0])
    for scramble in range(4):
        theta, W = rqmc_rule(rho, 1024, scramble)
        assert theta.shape == (1024, 2) and np.allclose(W, 1 / 1024)
        assert np.max(np.abs(W @ theta - rho.mean) / rho.std) < 1.5e-3
        assert np.max(np.abs(W @ (theta - rho.mean) ** 2 / rho.std**2 - 1)) < 1e-2


def test_rule_on_the_cylinder_sees_the_angle():
    """Gaussian x von Mises: the angle's circular mean E[cos z] = I_1(k)/I_0(k) to 1e-4."""
    from scipy.special import ive

    rho = density.GaussianVonMises([0.0, 0.5], [0.4], 2.0)
    theta, W = rqmc_rule(rho, 2048, scramble=1)
    assert abs(W @ np.cos(theta[:, 1] - 0.5) - ive(1, 2.0) / ive(0, 2.0)) < 1e-4
    assert abs(W @ np.sin(theta[:, 1] - 0.5)) < 1e-4
    uniform = density.GaussianVonMises([0.0, 0.0], [0.4], 0.0)
    z = rqmc_rule(uniform, 256, scramble=1)[0][:, 1]
    assert np.all((z >= -np.pi) & (z < np.pi))


def test_rule_refuses_what_it_cannot_sample():
    with pytest.raises(ValueError, match="power of 2"):
        rqmc_rule(density.Gaussian([0.0], [1.0]), 1000, scramble=0)
    mixture = density.GaussianMixture([density.Gaussian([0.0], [1.0]),
                                       density.Gaussian([1.0], [1.0])], [0.5, 0.5])
    with pytest.raises(NotImplementedError, match="rqmc rule"):
        rqmc_rule(mixture, 64, scramble=0)
    problem = polar_flow_problem(Circle())
    with pytest.raises(ValueError, match="total count"):
        initial_nodes(problem, (8, 8), "rqmc")


def test_scrambles_are_independent_and_reproducible():
    rho = density.Gaussian([0.0], [1.0])
    a, b = rqmc_rule(rho, 64, 1)[0], rqmc_rule(rho, 64, 2)[0]
    assert not np.allclose(a, b)
    assert np.array_equal(a, rqmc_rule(rho, 64, 1)[0])


def test_interval_covers_the_exact_polar_flow():
    """Circle, Y = 1, to t = 10: the ladder 128 -> 512 nodes (8 scrambles) puts the exact E
    and f_t inside their errors; E's is below 5e-3 relative, and the interval shrinks faster
    than n^-1/2."""
    times = np.array([0.0, 2.0, 10.0])
    problem = polar_flow_problem(Circle(), target=1.0, t_final=10.0)
    flow = PolarFlow(Circle(), target=1.0, nodes=2**14)
    exact = flow.energy(times)
    mean_cos = np.array([flow.mean_cos(s) for s in flow.sigma(times)])
    exact_f = mean_cos[:, None] * np.cos(problem.data.points[:, 0])[None, :]
    ladder = rqmc_ladder(problem, times, [128, 512], scrambles=8)
    error = np.abs(ladder.energy - exact)
    assert np.all(error[1:] <= ladder.energy_error[1:])
    assert np.all(np.abs(ladder.f - exact_f)[1:] <= ladder.f_error[1:])
    assert np.all(ladder.energy_error[1:] / exact[1:] < 5e-3)
    coarse, fine = (level.energy_half_width[1:] for level in ladder.levels)
    assert np.all(fine < coarse / 2)  # QMC: ~ n^-1 (Monte Carlo: n^-1/2, a factor 2)
    assert ladder.consistent().all()


def test_needs_two_scrambles_and_two_levels():
    problem = polar_flow_problem(Circle())
    with pytest.raises(ValueError, match="scrambles"):
        rqmc_estimate(problem, [0.0, 1.0], 64, scrambles=1)
    with pytest.raises(ValueError, match="increasing"):
        rqmc_ladder(problem, [0.0, 1.0], [64])


@pytest.mark.mpi
def test_ranks_split_the_scrambles():
    """Scrambles spread over the ranks: the same estimate as one rank, bitwise."""
    comm = MPI.COMM_WORLD
    problem = polar_flow_problem(Cylinder(-3.0, 3.0), target=1.0, t_final=2.0)
    times = [0.0, 1.0, 2.0]
    split = rqmc_estimate(problem, times, 64, scrambles=3, comm=comm)
    alone = rqmc_estimate(problem, times, 64, scrambles=3)
    assert np.array_equal(split.energy, alone.energy)
    assert np.array_equal(split.f, alone.f)


def test_store_resumes_finished_scrambles(tmp_path, monkeypatch):
    """Scrambles kept in the store are read back, not recomputed (bitwise the same), and a
    store made for other times is refused with the fix named."""
    import solver.reference.rqmc as rqmc

    problem = polar_flow_problem(Circle(), target=1.0, t_final=2.0)
    first = rqmc_estimate(problem, [0.0, 1.0, 2.0], 64, scrambles=3, store=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"rqmc-64-{s}.npz" for s in range(3)]
    (tmp_path / "rqmc-64-1.npz").unlink()  # as if killed before scramble 1 was written
    calls = []
    real = rqmc.lagrangian_flow
    monkeypatch.setattr(rqmc, "lagrangian_flow", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = rqmc_estimate(problem, [0.0, 1.0, 2.0], 64, scrambles=3, store=tmp_path)
    assert len(calls) == 1
    assert np.array_equal(first.energy, again.energy) and np.array_equal(first.f, again.f)
    with pytest.raises(ValueError, match=r"another run.*empty store"):
        rqmc_estimate(problem, [0.0, 2.0], 64, scrambles=3, store=tmp_path)


def test_energy_rise_stops_the_run(monkeypatch):
    """The node flow dissipates E at every step (checked, tolerance 0 passes); run uphill
    (the velocity reversed) it is stopped at the first step, naming rtol."""
    import solver.reference.lagrangian as lagrangian

    problem = polar_flow_problem(Circle(), target=1.0, t_final=2.0)
    lagrangian.lagrangian_flow(problem, [0.0, 1.0], 64, rule="rqmc", integrator="dop853",
                               energy_rise_tol=0.0)
    real = lagrangian.velocity
    monkeypatch.setattr(lagrangian, "velocity",
                        lambda p, th, W: (lambda v, f: (-v, f))(*real(p, th, W)))
    with pytest.raises(lagrangian.EnergyRise, match=r"E rose.*lower rtol"):
        rqmc_estimate(problem, [0.0, 1.0, 2.0], 64, scrambles=2)


@pytest.mark.mpi
def test_a_failing_rank_stops_every_rank(monkeypatch):
    """A scramble that fails on one rank raises on all (no rank left waiting in a gather)."""
    import solver.reference.rqmc as rqmc

    comm = MPI.COMM_WORLD
    real = rqmc.lagrangian_flow

    def fail_on_last(*args, **kwargs):
        if comm.rank == comm.size - 1:
            raise FloatingPointError("non-finite nodes")
        return real(*args, **kwargs)

    monkeypatch.setattr(rqmc, "lagrangian_flow", fail_on_last)
    problem = polar_flow_problem(Circle(), target=1.0, t_final=1.0)
    with pytest.raises((FloatingPointError, RuntimeError), match="non-finite"):
        rqmc_estimate(problem, [0.0, 1.0], 64, scrambles=2, comm=comm)
