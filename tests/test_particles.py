"""Particles: exact linear-unit solutions (GD, noisy GD), SGD, adaptive steps, the sphere in
R^25, the fused right-hand side, and the ensemble / comparison path."""

import numpy as np
import pytest
from mpi4py import MPI

from particle_check import particles
from particle_check.compare import compare
from particle_check.ensemble import assign_tasks, run_ensemble
from particle_check.particles import simulate
from solver.io import RunDirectory
from solver.model import density, quadrature, targets, units
from solver.model.domain import Box, Sphere
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


# --- the fused right-hand side ---------------------------------------------------------------


def _sphere_rbf_activation(width: float) -> units.Activation:
    """exp((u - 1)/w^2) with an ``f_and_df`` hook (one exp for sigma and sigma')."""
    inv = 1.0 / width**2

    class Fused(units.Activation):
        def f_and_df(self, u):
            s = np.exp((u - 1.0) * inv)
            return s, inv * s

    return Fused("sphere_rbf", lambda u: np.exp((u - 1.0) * inv),
                 lambda u: inv * np.exp((u - 1.0) * inv))


def sphere_problem(d: int = 25, M: int = 64, beta: float = np.inf,
                   unit: units.Unit | None = None) -> Problem:
    """Units with theta on the unit sphere S^{k-1}, data uniform on S^{d-1}, a 3-unit teacher."""
    unit = units.FixedOutputNeuron(d, "tanh") if unit is None else unit
    k = unit.param_dim
    teacher = density.UniformSphere(k).sample(np.random.default_rng(5), 3)
    return Problem(unit, quadrature.monte_carlo("sphere", M, 0, dim=unit.data_dim),
                   targets.TeacherTarget(unit, teacher), Sphere(k), density.UniformSphere(k),
                   beta=beta)


def fused_cases() -> list[Problem]:
    from conftest import circle_problem

    rbf = units.RBFUnit(2, 0.8)
    box = Box((-4, -5, -5), (4, 5, 5))
    neuron = units.NeuronUnit(2, "sigmoid")
    return [
        circle_problem(),
        linear_problem(),
        Problem(rbf, quadrature.gauss_legendre([-2, -2], [2, 2], 5),
                targets.ExpressionTarget("sin(x0) * x1", 2), box,
                density.Gaussian([0.5, 0, 0], [0.5, 1, 1]), lam=0.1, frozen=(1,)),
        Problem(neuron, quadrature.gauss_hermite([0, 0], 1.0, 4),
                targets.ExpressionTarget("tanh(x0 - x1)", 2), Box((-5,) * 4, (5,) * 4),
                density.Gaussian([1, 0, 0, 0], [0.5, 1, 1, 0.5]), lam=0.01),
        sphere_problem(),
        sphere_problem(6, unit=units.FixedOutputNeuron(6, _sphere_rbf_activation(0.7))),
        sphere_problem(4, unit=units.FixedOutputNeuron(4, "softplus", bias=True)),
    ]


@pytest.mark.parametrize("problem", fused_cases(), ids=lambda p: p.unit.name)
@pytest.mark.parametrize(("block_bytes", "max_bytes"),
                         [(2**20, 2**27), (8 * 64 * 7, 2**27), (8 * 64 * 7, 8 * 64 * 30), (1, 0)])
def test_fused_velocity_equals_unfused(problem, block_bytes, max_bytes):
    """One unit evaluation per block (kept or recomputed) gives the two-pass velocity."""
    theta = problem.sample_initial(np.random.default_rng(4), 61)
    v_old, f_old = particles.velocity_unfused(problem, theta)
    v_new, f_new = particles.velocity(problem, theta, max_bytes=max_bytes,
                                      block_bytes=block_bytes)
    assert np.abs(f_new - f_old).max() <= 1e-12 * np.abs(f_old).max()
    assert np.abs(v_new - v_old).max() <= 1e-12 * np.abs(v_old).max()
    if problem.frozen:
        assert np.all(v_new[:, list(problem.frozen)] == 0)


def test_unit_output_and_vjp_equals_values_and_theta_vjp():
    """Every unit's fused method equals values() @ W and theta_vjp(), the default too."""
    rng = np.random.default_rng(0)

    def value(x, th):
        return np.sin(x @ th.T)

    def gradient(x, th):
        return np.cos(x @ th.T)[:, :, None] * x[:, None, :]

    cases = [units.LinearUnit(3), units.RBFUnit(3, 0.9), units.CircleRBFUnit(0.6),
             units.CallableUnit(value, gradient, 3, 3),
             *(units.NeuronUnit(3, a) for a in units.ACTIVATIONS),
             *(units.FixedOutputNeuron(3, a, bias=True) for a in units.ACTIVATIONS),
             units.FixedOutputNeuron(3, _sphere_rbf_activation(0.5))]
    for unit in cases:
        d = 1 if isinstance(unit, units.CircleRBFUnit) else 3
        x, theta = rng.normal(size=(20, d)), rng.normal(size=(9, unit.param_dim))
        w, v = rng.random(9), rng.normal(size=20)
        f, vjp = unit.output_and_vjp(x, theta, w)
        f0, g0 = unit.values(x, theta) @ w, unit.theta_vjp(x, theta, v)
        assert np.abs(f - f0).max() <= 1e-12 * np.abs(f0).max(), unit.name
        assert np.abs(vjp(v) - g0).max() <= 1e-12 * np.abs(g0).max(), unit.name
        with pytest.raises(ValueError, match="weights"):
            unit.output_and_vjp(x, theta, w[:-1])


# --- noise, SGD, adaptive steps ------------------------------------------------------------


def test_noisy_linear_unit_gives_the_noisy_gaussian_translation():
    """theta_i(t) = theta_i(0) + (m(t) - m(0)) + sqrt(2/beta) (W_i - W_bar)(t): the mean follows
    m* + (m(0) - m*) e^{-t} (up to Euler's O(dt) and an O(n^-1/2) noise), the spread around
    it grows by 2t/beta (1 - 1/n) per direction (chi-square spread of the sample variance)."""
    beta, T, dt, n = 2.0, 1.0, 0.01, 4000
    base = linear_problem()
    problem = Problem(base.unit, base.data, base.target, base.domain, base.initial, beta=beta)
    theta0 = problem.sample_initial(np.random.default_rng(3), n)
    run = simulate(problem, theta0, np.array([0.0, T]), dt, "euler",
                   rng=np.random.default_rng(11))
    m_star, m0 = np.array([1.5, -0.5]), theta0.mean(axis=0)
    m_T = run.theta.mean(axis=0)
    euler = abs((1 - dt) ** round(T / dt) - np.exp(-T)) * np.abs(m0 - m_star)
    sd_mean = np.sqrt(2 / beta / n * (1 - np.exp(-2 * T)) / 2)
    assert np.all(np.abs(m_T - (m_star + (m0 - m_star) * np.exp(-T))) <= euler + 5 * sd_mean)
    spread = run.theta - theta0 - (m_T - m0)
    expected = 2 * T / beta * (1 - 1 / n)
    assert np.all(np.abs(spread.var(axis=0, ddof=1) / expected - 1) <= 5 * np.sqrt(2 / (n - 1)))
    assert abs(np.corrcoef(spread.T)[0, 1]) <= 5 / np.sqrt(n)
    # noise=False is plain GD: the exact deterministic translation again
    gd = simulate(problem, theta0, np.array([0.0, T]), dt, "rk4", noise=False)
    np.testing.assert_allclose(gd.theta - theta0, np.broadcast_to(
        (m0 - m_star) * (np.exp(-T) - 1), theta0.shape), atol=1e-9)


def test_sgd_approaches_gd_as_the_batch_grows():
    """||f_SGD(T) - f_GD(T)||_L2(mu) over seeds falls like P^-1/2 (same dt, same theta_0)."""
    problem = linear_problem()
    theta0 = problem.sample_initial(np.random.default_rng(0), 8)
    times, dt = np.array([0.0, 1.0]), 0.01
    gd = simulate(problem, theta0, times, dt, "euler")

    def rms_gap(P: int) -> float:
        gaps = [simulate(problem, theta0, times, dt, "euler", rng=np.random.default_rng(s),
                         batch=P).f[-1] - gd.f[-1] for s in range(8)]
        return float(np.sqrt(np.mean([problem.data.weights @ g**2 for g in gaps])))

    small, medium, large = rms_gap(4), rms_gap(64), rms_gap(1024)
    norm = float(np.sqrt(problem.data.weights @ gd.f[-1] ** 2))
    assert large < 0.01 * norm
    assert 2.0 < small / medium < 8.0 and 2.0 < medium / large < 8.0  # sqrt(16) = 4
    # RK4 with one batch per step is SGD too
    rk4 = simulate(problem, theta0, times, dt, "rk4", rng=np.random.default_rng(0), batch=1024)
    assert np.sqrt(problem.data.weights @ (rk4.f[-1] - gd.f[-1]) ** 2) < 0.02 * norm


def test_sgd_batch_targets_come_from_the_target_and_are_reproducible():
    problem = linear_problem()
    batch = particles.draw_batch(problem, np.random.default_rng(1), 50)
    np.testing.assert_allclose(batch.y, batch.points @ [1.5, -0.5])
    np.testing.assert_allclose(batch.weights.sum(), 1.0)
    theta0 = problem.sample_initial(np.random.default_rng(0), 8)
    a, b = (simulate(problem, theta0, [0, 0.2], 0.05, "euler", rng=np.random.default_rng(7),
                     batch=5) for _ in range(2))
    np.testing.assert_array_equal(a.theta, b.theta)


def test_adaptive_matches_rk4_at_tight_tolerance():
    from conftest import circle_problem

    problem = circle_problem(lam=0.05)
    theta0 = problem.sample_initial(np.random.default_rng(2), 32)
    times = np.linspace(0, 4.0, 3)
    rk4 = simulate(problem, theta0, times, 1e-3)
    assert np.abs(rk4.theta - theta0).max() > 0.1
    tight = simulate(problem, theta0, times, 0.05, "adaptive", rtol=1e-10, atol=1e-12)
    loose = simulate(problem, theta0, times, 0.05, "adaptive", rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(tight.theta, rk4.theta, rtol=0, atol=1e-9)
    np.testing.assert_allclose(tight.f, rk4.f, rtol=0, atol=1e-10)
    np.testing.assert_allclose(tight.energy, rk4.energy, rtol=1e-10)
    assert np.abs(loose.theta - rk4.theta).max() > 10 * np.abs(tight.theta - rk4.theta).max()
    assert np.abs(loose.theta - rk4.theta).max() < 1e-3
    assert loose.steps < tight.steps < rk4.steps
    assert np.all(np.diff(tight.energy) < 0)


def test_particles_stay_on_the_sphere_in_25_dimensions():
    """GD (RK4, adaptive) and noisy GD on S^24: every particle keeps |theta| = 1."""
    problem = sphere_problem(25)
    theta0 = problem.sample_initial(np.random.default_rng(1), 128)
    times = np.linspace(0, 1.0, 3)
    for run in (simulate(problem, theta0, times, 0.05),
                simulate(problem, theta0, times, 0.05, "adaptive", rtol=1e-6)):
        np.testing.assert_allclose(np.linalg.norm(run.theta, axis=1), 1.0, atol=1e-12)
        assert run.loss[-1] < run.loss[0] and np.all(np.diff(run.energy) < 0)
    noisy = sphere_problem(25, beta=20.0)
    run = simulate(noisy, theta0, times, 0.01, "euler", rng=np.random.default_rng(2))
    np.testing.assert_allclose(np.linalg.norm(run.theta, axis=1), 1.0, atol=1e-12)


def test_noise_on_the_sphere_is_spherical_brownian_motion():
    """Without drift (y = 0, f_n = O(n^-1/2)), E[theta_t . theta_0] = exp(-(d - 1) t / beta) on
    S^{d-1}: the first spherical harmonics decay at rate (d - 1)/beta under (1/beta) Laplace."""
    d, beta, T, n = 25, 20.0, 0.5, 4000
    problem = Problem(units.LinearUnit(d), quadrature.monte_carlo("sphere", 64, 0, dim=d),
                      targets.ExpressionTarget("0 * x0", d), Sphere(d), density.UniformSphere(d),
                      beta=beta)
    theta0 = problem.sample_initial(np.random.default_rng(0), n)
    run = simulate(problem, theta0, [0, T], 0.005, "euler", rng=np.random.default_rng(1))
    cos = np.sum(run.theta * theta0, axis=1)
    np.testing.assert_allclose(np.linalg.norm(run.theta, axis=1), 1.0, atol=1e-12)
    assert abs(cos.mean() - np.exp(-(d - 1) * T / beta)) <= 5 * cos.std() / np.sqrt(n) + 0.005


def test_noisy_particles_are_reflected_into_a_box():
    base = linear_problem()
    problem = Problem(base.unit, base.data, base.target, Box((-1, -1), (1, 1)),
                      density.Uniform([-1, -1], [1, 1]), beta=0.5)
    theta0 = problem.sample_initial(np.random.default_rng(0), 500)
    run = simulate(problem, theta0, [0, 1.0], 0.01, "euler", rng=np.random.default_rng(1))
    assert np.all(problem.domain.contains(run.theta))
    np.testing.assert_allclose(particles._fold(np.array([1.5, -1.2, 3.5, 0.3]), -1.0, 1.0),
                               [0.5, -0.8, -0.5, 0.3])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"integrator": "rk4"}, "Euler-Maruyama"),
        ({"integrator": "adaptive"}, "Euler-Maruyama"),
        ({"integrator": "euler"}, "rng"),
        ({"integrator": "midpoint", "noise": False}, "integrator"),
        ({"integrator": "adaptive", "noise": False, "batch": 8,
          "rng": np.random.default_rng(0)}, "fixed steps"),
        ({"integrator": "euler", "noise": False, "batch": 0,
          "rng": np.random.default_rng(0)}, "batch"),
    ],
)
def test_simulate_refuses_bad_options(kwargs, match):
    base = linear_problem()
    noisy = Problem(base.unit, base.data, base.target, base.domain, base.initial, beta=5.0)
    theta0 = noisy.sample_initial(np.random.default_rng(0), 4)
    with pytest.raises(ValueError, match=match):
        simulate(noisy, theta0, [0, 0.1], 0.05, **kwargs)
    with pytest.raises(ValueError, match="finite beta"):
        simulate(base, theta0, [0, 0.1], 0.05, "euler", noise=True,
                 rng=np.random.default_rng(0))


def test_sgd_without_a_sampler_is_a_clear_error():
    problem = linear_problem()
    object.__setattr__(problem.data, "sampler", None)  # e.g. data read from a file
    theta0 = problem.sample_initial(np.random.default_rng(0), 4)
    with pytest.raises(ValueError, match="no sampler"):
        simulate(problem, theta0, [0, 0.1], 0.05, "euler", batch=4,
                 rng=np.random.default_rng(0))


def test_frozen_axes_get_neither_drift_nor_noise():
    rbf = units.RBFUnit(2, 0.8)
    problem = Problem(rbf, quadrature.gauss_legendre([-2, -2], [2, 2], 5),
                      targets.ExpressionTarget("sin(x0) * x1", 2), Box((-4, -5, -5), (4, 5, 5)),
                      density.Gaussian([0.5, 0, 0], [0.5, 1, 1]), beta=10.0, frozen=(1,))
    theta0 = problem.sample_initial(np.random.default_rng(0), 50)
    run = simulate(problem, theta0, [0, 0.5], 0.05, "euler", rng=np.random.default_rng(1))
    np.testing.assert_array_equal(run.theta[:, 1], theta0[:, 1])
    assert np.all(np.abs(run.theta[:, [0, 2]] - theta0[:, [0, 2]]).max(axis=0) > 0.1)
