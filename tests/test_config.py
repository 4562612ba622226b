"""TOML configs: the flagship example loads; malformed ones are rejected naming the field."""

import copy
import math
import tomllib
from pathlib import Path

import pytest

from solver.config import ConfigError, load, parse

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "rbf_circle.toml"
BASE = tomllib.loads(EXAMPLE.read_text())


def test_flagship_example_loads():
    cfg = load(EXAMPLE)
    assert cfg.problem.param_dim == 2
    assert cfg.pde.cells == (48, 48) and cfg.pde.scheme == "dg"
    assert cfg.particles.n == (64, 256, 1024, 4096)
    assert math.isinf(cfg.problem.beta)


def _set(path: str, value):
    raw = copy.deepcopy(BASE)
    *parents, key = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[key]
    else:
        node[key] = value
    return raw


_DELETE = object()

MALFORMED = [
    ("unit.kind", "sigmoid_rbf", "unit.kind"),
    ("unit.width", -0.5, "unit.width"),
    ("unit.widht", 0.5, "unit.widht"),                     # typo: unknown key
    ("problem.t_final", _DELETE, "problem.t_final"),
    ("problem.t_final", "5", "problem.t_final"),
    ("problem.lambda", -1.0, "problem.lambda"),
    ("problem.beta", 0.0, "problem.beta"),
    ("initial.std", [0.5, -0.6], "initial.std"),
    ("initial.mean", [0.0, math.nan], "initial.mean"),
    ("initial.mean", [0.0, 0.0, 0.0], "initial"),           # wrong dimension
    ("domain.lower", [-5.0], "domain.lower"),               # does not match k = 2
    ("domain.upper", -6.0, "domain"),                       # upper < lower
    ("domain.kind", "torus", "domain.kind"),
    ("pde.cells", [64, 64, 64], "pde.cells"),               # mesh dim != parameter dim
    ("pde.cfl", 1.5, "pde.cfl"),                            # CFL-violating step
    ("pde.integrator", "rk9", "pde.integrator"),
    ("pde.scheme", "upwind", "pde.scheme"),
    ("pde.degree", 3, "pde.degree"),
    ("pde.time_tolerance", 0.0, "pde.time_tolerance"),
    ("pde.stationary_tolerance", -1.0, "pde.stationary_tolerance"),
    ("pde.mesh", "rectangle", "pde"),                       # cells and a mesh: which one?
    ("pde.petsc", {"ksp_type": ["gmres"]}, "pde.petsc.ksp_type"),
    ("pde.checkpoint_every", 0.0, "pde.checkpoint_every"),
    ("pde.checkpoint_every", "10 min", "pde.checkpoint_every"),
    ("particles.n", [64, 0], "particles.n"),
    ("particles.checkpoint_every", -1.0, "particles.checkpoint_every"),
    ("particles.dt", math.inf, "particles.dt"),
    ("particles.batch", 0, "particles.batch"),
    ("particles.integrator", "rk45", "particles.integrator"),
    ("data.points", 0, "data.points"),
    ("data.kind", "lattice", "data.kind"),
    ("target.theta", [[1.0, 2.0, 3.0]], "target"),          # teacher rows of the wrong length
    ("target.kind", "expression", "target.expression"),     # missing expression
]


@pytest.mark.parametrize(("path", "value", "field"), MALFORMED,
                         ids=[f"{p}={v!r}" for p, v, _ in MALFORMED])
def test_malformed_config_names_the_field(path, value, field):
    with pytest.raises(ConfigError) as err:
        parse(_set(path, value))
    assert field in str(err.value)


def test_checkpoint_period_is_seconds_of_wall_time():
    cfg = parse(_set("pde.checkpoint_every", math.inf))
    assert math.isinf(cfg.pde.checkpoint_every) and cfg.particles.checkpoint_every == 600.0
    assert parse(_set("particles.checkpoint_every", 30)).particles.checkpoint_every == 30.0
    with pytest.raises(ConfigError, match=r"pde\.checkpoint_every: got 0.*seconds of wall time"):
        parse(_set("pde.checkpoint_every", 0))


def test_domain_too_small_for_initial_density():
    raw = _set("domain.upper", 0.5)
    with pytest.raises(ConfigError, match=r"domain.*outside.*enlarge"):
        parse(raw)


def test_invalid_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[unit\nkind = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml")


def test_unsafe_expression_rejected():
    raw = _set("target", {"kind": "expression", "expression": "__import__('os').system('x')"})
    with pytest.raises(ConfigError, match="target"):
        parse(raw)


def test_petsc_options_from_config_and_command_line(tmp_path):
    raw = _set("pde.petsc", {"ksp_type": "gmres", "ksp_rtol": 1e-12})
    cfg = parse(raw)
    assert dict(cfg.pde.petsc) == {"ksp_type": "gmres", "ksp_rtol": "1e-12"}
    implicit = _set("pde.integrator", "implicit")
    implicit["pde"]["scheme"] = "fv"
    del implicit["pde"]["degree"]  # a dg key: with fv it is an error, not ignored
    assert parse(implicit).pde.integrator == "implicit"
    with pytest.raises(ConfigError, match=r"implicit.*fv"):
        parse(_set("pde.integrator", "implicit"))  # the flagship's scheme is dg


def test_cli_petsc_option_must_be_key_value(tmp_path):
    """--petsc KEY=VALUE is for pde and run (refused before any work); check has no use
    for run options and refuses them."""
    import pytest

    from solver.cli import main

    out = tmp_path / "run"
    assert main(["pde", str(EXAMPLE), "--output", str(out), "--petsc", "ksp_type"]) == 2
    assert not out.exists()
    for option in (["--petsc", "ksp_type=gmres"], ["--force"], ["--output", str(out)]):
        with pytest.raises(SystemExit) as exit_:
            main(["check", str(EXAMPLE), *option])
        assert exit_.value.code == 2


def test_interpolating_example_target_is_the_closed_form_of_its_von_mises_mixture():
    """examples/bump_circle.toml: y = f_{rho*} for rho* a von Mises mixture (I0 closed form)."""
    import numpy as np

    cfg = load(EXAMPLE.with_name("bump_circle.toml"))
    problem = cfg.problem
    assert problem.unit.name == "circle_bump" and problem.param_dim == 1
    z = np.linspace(-np.pi, np.pi, 4096, endpoint=False)
    rho = sum(0.5 * np.exp(k * np.cos(z - mu)) / (2 * np.pi * np.i0(k))
              for mu, k in ((1.0, 1.5), (-2.0, 2.0)))
    f_star = problem.unit.values(problem.data.points, z[:, None]) @ rho * (2 * np.pi / len(z))
    np.testing.assert_allclose(problem.y, f_star, rtol=1e-13)


def test_circle_bump_amplitude_must_be_nonzero():
    raw = _set("unit", {"kind": "circle_bump", "width": 0.5, "amplitude": 0.0})
    with pytest.raises(ConfigError, match=r"unit\.amplitude"):
        parse(raw)
