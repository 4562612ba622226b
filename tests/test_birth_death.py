"""Birth-death (Wasserstein-Fisher-Rao) dynamics: the numpy reaction operator and its
closed form, the Problem/config key."""

import numpy as np
import pytest

from solver.model import birth_death, density, quadrature, targets, units
from solver.model.domain import Cylinder
from solver.model.problem import Problem


def _problem(gamma=1.0, t_final=1.0, **kw) -> Problem:
    return Problem(units.CircleRBFUnit(0.5), quadrature.circle_lattice(16, 0.1),
                   targets.ExpressionTarget("cos(x0) + 0.3 * sin(2 * x0)", 1), Cylinder(-5, 5),
                   density.Gaussian([0.0, 0.0], [0.5, 0.6]), t_final=t_final,
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
