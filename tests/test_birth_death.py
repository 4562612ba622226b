"""Birth-death (Wasserstein-Fisher-Rao) dynamics: the numpy reaction operator and its
closed form, the Problem/config key, and the finite-volume scheme (exact mass, the
positivity bound, the dissipation identity with the reaction's gamma int (Psi - <Psi>)^2
rho, the observed order of SSP-RK against the closed form, serial == 2 ranks), and the
particle birth-death process (its law against the closed form, the particles against the
FV PDE, reproducible, resumable and rank-independent)."""

import numpy as np
import pytest

from solver.model import birth_death, density, quadrature, targets, units
from solver.model.domain import Cylinder
from solver.model.problem import Problem


def _problem(gamma=1.0, t_final=1.0, initial=None, **kw) -> Problem:
    return Problem(units.CircleRBFUnit(0.5), quadrature.circle_lattice(16, 0.1),
                   targets.ExpressionTarget("cos(x0) + 0.3 * sin(2 * x0)", 1), Cylinder(-5, 5),
                   initial or density.Gaussian([0.0, 0.0], [0.5, 0.6]), t_final=t_final,
                   birth_death=gamma, **kw)


# -- numpy -------------------------------------------------------------------------------


def test_reaction_conserves_mass_and_dissipates():
    rng = np.random.default_rng(3)
    psi, rho, vol = rng.normal(size=50), rng.random(50), rng.random(50) + 0.1
    mean = birth_death.mean_potential(psi, rho, vol)
    rate = birth_death.reaction_rate(psi, rho, 2.0, mean)
    assert abs(rate @ vol) <= 1e-15 * np.abs(rate) @ vol
    # d/dt int Psi rho = sum Psi R |K| = -gamma sum (Psi - <Psi>)^2 rho |K|
    assert psi @ (rate * vol) == pytest.approx(
        -birth_death.reaction_dissipation(psi, rho, vol, 2.0, mean), rel=1e-12)
    bound = 1 / birth_death.reaction_inverse_step(psi, 2.0, mean).max()
    assert np.all(rho + bound * rate >= -1e-15)


def test_closed_form_solves_the_pure_reaction():
    """rho_t = rho_0 exp(-gamma t Psi) / Z(t): mass kept, and d rho/dt = R(rho_t) (central
    differences); gamma t = 0 gives rho_0."""
    rng = np.random.default_rng(4)
    psi, rho0, vol = rng.normal(size=30), rng.random(30), rng.random(30) + 0.1
    assert np.array_equal(birth_death.pure_reaction(rho0, psi, 1.5, 0.0, vol), rho0)
    t, h = 0.7, 1e-5
    rho = birth_death.pure_reaction(rho0, psi, 1.5, t, vol)
    assert rho @ vol == pytest.approx(rho0 @ vol, rel=1e-14)
    fd = (birth_death.pure_reaction(rho0, psi, 1.5, t + h, vol)
          - birth_death.pure_reaction(rho0, psi, 1.5, t - h, vol)) / (2 * h)
    exact = birth_death.reaction_rate(psi, rho, 1.5, birth_death.mean_potential(psi, rho, vol))
    assert np.max(np.abs(fd - exact)) < 1e-8 * np.max(np.abs(exact))
    # large gamma t: no overflow, the mass moves to argmin Psi
    late = birth_death.pure_reaction(rho0, psi, 1.0, 1e4, vol)
    assert np.all(np.isfinite(late)) and late[np.argmin(psi)] * vol[np.argmin(psi)] == (
        pytest.approx(rho0 @ vol))


def test_problem_key_and_refusals():
    assert _problem(0).birth_death is Problem.__dataclass_fields__["birth_death"].default
    assert _problem(0.5).birth_death == 0.5
    for bad in (-1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="birth_death: must be a finite number >= 0"):
            _problem(bad)
    with pytest.raises(ValueError, match="birth_death: with noise"):
        _problem(1.0, beta=10.0)


def test_fingerprint_omits_gamma_zero():
    from solver.restart import describe

    assert "birth_death" not in describe(_problem(0))
    assert describe(_problem(0.5))["birth_death"] == describe(0.5)


def test_config_key(tmp_path):
    import tomllib

    from solver.config import load
    from solver.sweep import dump_toml
    from tests.conftest import tiny_run_config

    raw = tomllib.loads(tiny_run_config(tmp_path / "a", t_final=0.4))
    path = tmp_path / "a.toml"
    path.write_text(dump_toml(raw))
    assert load(path).problem.birth_death == 0.0
    raw["problem"]["birth_death"] = 2.0
    path.write_text(dump_toml(raw))
    assert load(path).problem.birth_death == 2.0
    from solver.errors import ConfigError

    for section, key, value, match in (
            ("pde", "integrator", "implicit", r"pde\.integrator: 'implicit' does not take"),
            ("particles", "integrator", "adaptive", r"particles\.integrator: birth-death"),
            ("problem", "beta", 10.0, "birth_death: with noise")):
        bad = {**raw, section: {**raw[section], key: value}}
        if key == "beta":
            bad["particles"] = {**raw["particles"], "integrator": "euler"}
        path.write_text(dump_toml(bad))
        with pytest.raises(ConfigError, match=match):
            load(path)


# -- finite volumes ------------------------------------------------------------------------

pde = pytest.importorskip  # the PDE tests below need DOLFINx


def _fv(problem, cells=(12, 12), comm=None):
    pde("dolfinx", reason="needs DOLFINx")
    from mpi4py import MPI

    from solver.pde.finite_volume import FiniteVolume
    from solver.pde.meshes import build_mesh

    return FiniteVolume(build_mesh(comm or MPI.COMM_SELF, problem.domain, cells), problem)


def _settings(**kw):
    from solver.settings import PDESettings

    return PDESettings(**{"cells": (12, 12), "outputs": 4, "snapshots": 0,
                          "max_outflow": 0.01, "progress": False, **kw})


def _fixed_potential_fv(problem):
    """FV with transport switched off and Psi frozen at Psi[rho_0] (a zero-velocity
    construction): the scheme's reaction alone, whose exact solution is the closed form."""
    from solver.pde.finite_volume import FiniteVolume

    class FixedPotential(FiniteVolume):
        fixed = None

        def _evaluate(self):
            super()._evaluate()
            if self.fixed is not None:
                self.psi = self.fixed.copy()
                self.mean_psi = self.mean_potential()

        def coefficients(self):
            zero = np.zeros(len(self.geometry.inner))
            return zero, zero

    base = _fv(problem)
    scheme = FixedPotential(base.mesh, problem)
    scheme.set_density(scheme.initial_density())
    scheme.fixed = scheme.psi.copy()
    return scheme


def test_fv_reaction_converges_to_the_closed_form_at_the_integrators_order():
    """Frozen Psi, no transport: euler/ssprk2/ssprk3 against rho_0 exp(-gamma t Psi)/Z(t) at
    t = 1, gamma = 2, observed orders 1, 2, 3; mass exact to 1e-13 every step."""
    pde("dolfinx", reason="needs DOLFINx")
    from solver.pde.timestepping import try_step

    problem = _problem(gamma=2.0)
    scheme = _fixed_potential_fv(problem)
    n, vol = scheme.n_owned, scheme.geometry.volumes[: scheme.n_owned]
    rho0, psi = scheme.initial_density(), scheme.fixed[:n]
    exact = birth_death.pure_reaction(rho0, psi, 2.0, 1.0, vol)
    orders = {}
    for integrator, expected in (("euler", 1), ("ssprk2", 2), ("ssprk3", 3)):
        errors = []
        for steps in (10, 20, 40):
            scheme.set_density(rho0)
            for _ in range(steps):
                assert scheme.max_stable_step() >= 1.0 / steps
                assert try_step(scheme, integrator, 1.0 / steps)
                rho = scheme.density()
                assert abs(rho @ vol - 1.0) <= 1e-13 and rho.min() >= 0
            errors.append(np.abs(rho - exact) @ vol)
        orders[integrator] = np.log2(np.array(errors[:-1]) / errors[1:])
        assert np.all(np.abs(orders[integrator] - expected) < 0.15), (integrator, errors)


def test_fv_dissipation_is_minus_the_energy_rate_with_birth_death():
    """Semi-discrete: D = transport + gamma sum (Psi_K - <Psi>)^2 rho_K |K| is -dE/dt along
    the rate (central differences), and the reaction adds to D."""
    problem = _problem(gamma=1.5, lam=0.05)
    scheme = _fv(problem)
    rho = scheme.initial_density()
    scheme.set_density(rho)
    rate, dissipation = scheme.rate(), scheme.dissipation()
    assert abs(rate @ scheme.geometry.volumes[: scheme.n_owned]) < 1e-14
    eps = 1e-5
    energies = []
    for sign in (1, -1):
        scheme.set_density(rho + sign * eps * rate)
        energies.append(scheme.diagnostics().energy)
    dEdt = (energies[0] - energies[1]) / (2 * eps)
    assert abs(dEdt + dissipation) < 1e-7 * dissipation
    no_reaction = _fv(_problem(gamma=0.0, lam=0.05))
    no_reaction.set_density(rho)
    assert dissipation > no_reaction.dissipation() * 1.01


def test_fv_run_keeps_mass_and_the_energy_identity():
    """A run with gamma = 1: mass within 1e-12, rho >= 0, the per-step identity, and birth-
    death lowers the loss faster than gamma = 0 (same problem, same mesh)."""
    pde("dolfinx", reason="needs DOLFINx")
    from mpi4py import MPI

    from solver.pde.run_writer import dissipation_defects
    from solver.pde.solve import solve

    runs = {(g, cfl): solve(_problem(gamma=g, t_final=2.0), _settings(cfl=cfl),
                            comm=MPI.COMM_SELF)
            for g, cfl in ((0.0, 0.5), (1.0, 0.5), (1.0, 0.25))}
    defects = []
    for cfl in (0.5, 0.25):
        steps = runs[1.0, cfl].steps
        mass = np.asarray(steps["mass"])
        # measured 4.4e-16
        assert np.max(np.abs(mass - mass[0])) <= 1e-12 and np.min(steps["min_rho"]) >= 0
        assert np.all(np.diff(steps["energy"]) < 0)
        defects.append(dissipation_defects(steps))
    # the defect is the SSP-RK2 step's O(dt^2): measured 1.04e-3 (cfl 0.5, 13 steps) and
    # 2.6e-4 (cfl 0.25, 25 steps) per step; 7.6e-4 and 2.1e-4 integrated
    key = "dissipation_identity_max_rel_defect"
    assert defects[1][key] < 5e-4 and defects[0][key] / defects[1][key] > 3.5
    assert defects[1]["dissipation_identity_integrated_rel_defect"] < 5e-4
    # loss at t = 2: 0.2275 (gamma = 0), 0.2153 (gamma = 1)
    assert runs[1.0, 0.5].loss[-1] < runs[0.0, 0.5].loss[-1] - 0.01


def test_implicit_refuses_birth_death():
    pde("dolfinx", reason="needs DOLFINx")
    from mpi4py import MPI

    from solver.errors import ConfigError
    from solver.pde.solve import solve

    for integrator in ("implicit", "mprk22"):
        with pytest.raises(ConfigError, match=r"pde\.integrator"):
            solve(_problem(gamma=1.0), _settings(integrator=integrator), comm=MPI.COMM_SELF)


# -- DG -------------------------------------------------------------------------------------


def _dg(problem, cells, degree):
    pde("dolfinx", reason="needs DOLFINx")
    from mpi4py import MPI

    from solver.pde.dg_transport import DGTransport
    from solver.pde.meshes import build_mesh

    return DGTransport(build_mesh(MPI.COMM_SELF, problem.domain, cells), problem, degree=degree)


def _fixed_potential_dg(problem, cells, degree):
    """DG with transport switched off and Psi frozen at Psi[rho_0] at the Gauss points."""
    from solver.pde.dg_transport import DGTransport

    class FixedPotential(DGTransport):
        fixed = None

        def set_density(self, values):
            super().set_density(values)
            if self.fixed is not None:
                self._psi_q = self.fixed
                w = self._weights()
                self.mean_psi = float(self.fixed.reshape(-1) @ w / w.sum())

        def _kinematics(self):
            kin = dict(super()._kinematics())
            kin["a"] = np.zeros_like(kin["a"])
            kin["U"] = [np.zeros_like(u) for u in kin["U"]]
            return kin

    base = _dg(problem, cells, degree)
    scheme = FixedPotential(base.mesh, problem, degree=degree)
    scheme.set_density(scheme.initial_density())
    scheme.fixed = scheme._psi_q.copy()
    return scheme


@pytest.mark.parametrize("degree", [1, 2])
def test_dg_reaction_converges_to_the_closed_form(degree):
    """Frozen Psi, no transport, SSP-RK3 on 12 x 12 cells, rho_0 bounded away from 0 (where
    rho_0 touches 0 the limiter acts every stage and the time error is first order): mass
    exact, rho >= 0, the time error falls at order 3 (against dt/8), and the solution at
    the Gauss points is rho_0 exp(-gamma t Psi)/Z (W-weighted L1) to the space error."""
    pde("dolfinx", reason="needs DOLFINx")
    from solver.pde.timestepping import try_step

    scheme = _fixed_potential_dg(
        _problem(gamma=2.0, initial=density.Gaussian([0.0, 0.0], [1.4, 0.8])), (12, 12), degree)
    rho0 = scheme.initial_density()
    scheme.set_density(rho0)
    points0 = scheme._points[:, : scheme._nq].copy()
    finals = {}
    for steps in (10, 20, 160):
        scheme.set_density(rho0)
        for _ in range(steps):
            assert try_step(scheme, "ssprk3", 1.0 / steps)
            d = scheme.diagnostics()
            assert abs(d.mass - 1.0) <= 1e-13 and d.min_rho >= 0
        finals[steps] = scheme._points[:, : scheme._nq].copy()
    w = scheme.W.reshape(-1)
    errs = [float(np.abs(finals[k] - finals[160]).reshape(-1) @ w) for k in (10, 20)]
    # measured orders 2.92 (DG1), 2.97 (DG2)
    assert np.log2(errs[0] / errs[1]) > 2.7, errs
    exact = birth_death.pure_reaction(points0, scheme.fixed, 2.0, 1.0, scheme.W)
    # measured 1.4e-5 (DG1), 1.2e-7 (DG2)
    assert float(np.abs(finals[160] - exact).reshape(-1) @ w) < [3e-5, 1e-6][degree - 1]


@pytest.mark.parametrize("degree", [1, 2])
def test_dg_run_with_birth_death(degree):
    """DG_k run at gamma = 1: mass, positivity, the identity dE/dt = -D (to the scheme's
    space error), and the loss of the FV run on a fine mesh."""
    pde("dolfinx", reason="needs DOLFINx")
    from mpi4py import MPI

    from solver.pde.run_writer import dissipation_defects
    from solver.pde.solve import solve

    problem = _problem(gamma=1.0, t_final=1.0)
    cells = 48 // (degree + 1)
    dg = solve(problem, _settings(scheme="dg", degree=degree, cells=(cells, cells),
                                  integrator="ssprk3"), comm=MPI.COMM_SELF)
    steps = dg.steps
    mass = np.asarray(steps["mass"])
    assert np.max(np.abs(mass - mass[0])) <= 1e-12 and np.min(steps["min_rho"]) >= 0
    assert np.all(np.diff(steps["energy"]) < 0)
    # measured 3.7e-3 (DG1, 24 x 24; 16 x 16: 2.3e-2, 32 x 32: 6.7e-4, as at gamma = 0) and
    # 2.1e-4 (DG2, 16 x 16): the DG transport's space inconsistency, not the reaction's
    assert dissipation_defects(steps)["dissipation_identity_max_rel_defect"] < 5e-3
    # loss(t = 1): DG 0.24308, FV 64 x 64 0.24285 (FV's first-order error); gamma = 0: 0.2480
    fv = solve(problem, _settings(cells=(64, 64)), comm=MPI.COMM_SELF)
    assert abs(dg.loss[-1] - fv.loss[-1]) < 2e-3 * fv.loss[-1]


@pytest.mark.mpi
def test_fv_birth_death_serial_equals_parallel():
    pde("dolfinx", reason="needs DOLFINx")
    from mpi4py import MPI

    from solver.pde.solve import solve
    from tests.ranks import assert_runs_agree

    problem = _problem(gamma=1.0, lam=0.05, t_final=1.0)
    for settings in (_settings(), _settings(scheme="dg", degree=2, cells=(8, 8),
                                            integrator="ssprk3")):
        serial = solve(problem, settings, comm=MPI.COMM_SELF)
        parallel = solve(problem, settings, comm=MPI.COMM_WORLD)
        assert_runs_agree(serial, parallel)


# -- particles ---------------------------------------------------------------------------


def test_particle_birth_death_step_follows_the_closed_form():
    """Units on 5 atoms with a fixed Psi per atom: after 100 steps h = 0.01 (gamma = 1) the
    atom frequencies are rho_0 exp(-gamma t Psi) / Z to sampling + O(h) error; n is kept
    and every unit is a copy of an initial atom."""
    from particle_check.particles import birth_death_step

    atoms, psi_atom = np.arange(5.0), np.array([0.0, 0.8, -0.5, 0.3, -1.0])
    p0 = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    rng = np.random.default_rng(7)
    n = 40000
    theta = atoms[rng.choice(5, size=n, p=p0)][:, None]
    for _ in range(100):
        idx = theta[:, 0].astype(int)
        theta = birth_death_step(theta, psi_atom[idx], 0.01, 1.0, rng)
    assert theta.shape == (n, 1) and set(np.unique(theta)) <= set(atoms)
    freq = np.bincount(theta[:, 0].astype(int), minlength=5) / n
    exact = birth_death.pure_reaction(p0, psi_atom, 1.0, 1.0)
    # sd of a frequency ~ sqrt(p/n) ~ 2.5e-3 at t = 0 (the process adds about as much)
    assert np.max(np.abs(freq - exact)) < 0.015, (freq, exact)
    assert np.max(np.abs(p0 - exact)) > 0.1  # the reaction moved the law


def test_particles_follow_the_fv_pde_under_birth_death():
    """gamma = 3, n = 4000 (2 seeds): the particles' f_n stays near the FV f (48 x 48), far
    closer than the gamma = 0 flow is to it."""
    pde("dolfinx", reason="needs DOLFINx")
    from mpi4py import MPI

    from particle_check.particles import simulate
    from solver.pde.solve import solve

    times = np.linspace(0, 1, 3)
    pdes = {g: solve(_problem(gamma=g), _settings(cells=(48, 48), outputs=2),
                     comm=MPI.COMM_SELF) for g in (0.0, 3.0)}
    w = pdes[0.0].scheme.problem.data.weights
    problem = _problem(gamma=3.0)
    gaps = []
    for seed in range(2):
        rng = np.random.default_rng(seed)
        run = simulate(problem, problem.sample_initial(rng, 4000), times, 0.02, "rk4",
                       birth_death_seed=np.random.SeedSequence(seed))
        gaps.append(np.sqrt(w @ (run.f[-1] - pdes[3.0].f[-1]) ** 2))
    effect = np.sqrt(w @ (pdes[3.0].f[-1] - pdes[0.0].f[-1]) ** 2)
    assert max(gaps) < 0.2 * effect, (gaps, effect)


class _KeepAt:
    """A checkpointer that keeps the state after ``step`` accepted steps."""

    def __init__(self, step):
        self.step, self.count, self.state = step, 0, None

    def due(self):
        self.count += 1
        return self.count == self.step

    def save(self, state):
        self.state = state


def test_particle_birth_death_is_reproducible_and_resumes_bitwise():
    from particle_check.particles import simulate

    problem = _problem(gamma=2.0)
    theta0 = problem.sample_initial(np.random.default_rng(1), 200)
    times = np.linspace(0, 1, 3)
    seed = np.random.SeedSequence(5, spawn_key=(200, 0, 7))
    keep = _KeepAt(17)
    a = simulate(problem, theta0, times, 0.02, "euler", birth_death_seed=seed, checkpoint=keep)
    b = simulate(problem, theta0, times, 0.02, "euler", birth_death_seed=seed)
    assert keep.state is not None and keep.state.steps == 17
    c = simulate(problem, theta0, times, 0.02, "euler", birth_death_seed=seed,
                 resume=keep.state)
    for other in (b, c):
        assert np.array_equal(a.theta, other.theta) and np.array_equal(a.f, other.f)
    plain = simulate(_problem(gamma=0.0), theta0, times, 0.02, "euler")
    assert not np.array_equal(a.f, plain.f)
    with pytest.raises(ValueError, match="birth_death_seed"):
        simulate(problem, theta0, times, 0.02, "euler")
    with pytest.raises(ValueError, match="fixed-step full-data GD"):
        simulate(problem, theta0, times, 0.02, "adaptive", birth_death_seed=seed)


@pytest.mark.mpi
def test_particle_birth_death_ensemble_over_ranks_equals_serial():
    from mpi4py import MPI

    from particle_check.ensemble import run_ensemble
    from solver.settings import ParticleSettings

    problem = _problem(gamma=2.0)
    settings = ParticleSettings(n=(16, 32, 64), seeds=2, dt=0.05)
    times = np.linspace(0, 1, 3)
    serial = run_ensemble(problem, settings, times, None, MPI.COMM_SELF)
    spread = run_ensemble(problem, settings, times, None, MPI.COMM_WORLD)
    if MPI.COMM_WORLD.rank == 0:
        assert set(spread) == set(serial)
        for key in serial:
            np.testing.assert_array_equal(spread[key].f, serial[key].f)


def test_a_birth_death_run_marks_the_crbv_check_a_diagnostic(tmp_path, capsys):
    """meanfield run with birth_death = 2 (FV + rk4 particles): it runs, and summary.json
    says the CRBV bound is not a theorem with birth-death."""
    pde("dolfinx", reason="needs DOLFINx")
    import json
    import tomllib

    from solver.cli import main
    from solver.sweep import dump_toml
    from tests.conftest import tiny_run_config

    raw = tomllib.loads(tiny_run_config(tmp_path / "out", t_final=0.5))
    raw["problem"]["birth_death"] = 2.0
    config = tmp_path / "bd.toml"
    config.write_text(dump_toml(raw))
    assert main(["run", str(config), "--no-progress"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["crbv"]["applies"] is False and s["crbv"]["birth_death"] == 2.0
    assert "diagnostic only, not a theorem with birth-death (gamma = 2)" in out
    assert "not a theorem with birth-death" in (tmp_path / "out" / "report.md").read_text()
