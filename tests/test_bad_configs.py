"""A battery of malformed configs: each ends in `meanfield check` and `meanfield pde` with exit
code 2 before any work, one line per problem naming the field, and no run directory.
Then the other side: configs `check` accepts start (first PDE steps and particle steps)."""

import copy
import tomllib
from pathlib import Path

import pytest

from solver.cli import main
from solver.errors import ConfigError
from solver.sweep import dump_toml
from tests.conftest import tiny_run_config

BASE = tomllib.loads(tiny_run_config("OUT"))


def _set(raw, dotted, value):
    *tables, key = dotted.split(".")
    for t in tables:
        raw = raw.setdefault(t, {})
    if value is DELETE:
        raw.pop(key, None)
    else:
        raw[key] = value


DELETE = object()
CYLINDER_MESH = Path(__file__).resolve().parent.parent / "meshes" / "cylinder_0.xdmf"
SPHERE = {"unit": {"kind": "fixed_output_neuron", "dim": 3, "activation": "relu"},
          "data": {"kind": "sphere_product", "n": 3},
          "target": {"kind": "expression", "expression": "x0"},
          "domain": {"kind": "sphere"}, "initial": {"kind": "uniform_sphere"}}
CIRCLE = {"unit": {"kind": "circle_bump", "width": 0.5}, "target": {"kind": "teacher",
                                                                    "theta": [[0.5]]},
          "domain": {"kind": "circle"}, "initial": {"kind": "gaussian", "mean": [0.0],
                                                    "std": [0.5]}}

#: (id, {dotted key: value}, text the message must hold)
BAD = [
    ("dg-with-noise", {"problem.beta": 5.0, "pde.scheme": "dg", "pde.integrator": "ssprk3"},
     'pde.scheme: "dg" is for noiseless'),
    ("noisy-rk4", {"problem.beta": 5.0}, "particles.integrator: noisy dynamics"),
    ("sgd-adaptive", {"particles.batch": 8, "particles.integrator": "adaptive"},
     "particles.batch: SGD takes fixed steps"),
    ("t_final-negative", {"problem.t_final": -1.0}, "problem.t_final: got -1.0"),
    ("t_final-string", {"problem.t_final": "1"}, "problem.t_final: got '1'"),
    ("t_final-inf", {"problem.t_final": float("inf")}, "problem.t_final"),
    ("t_final-nan", {"problem.t_final": float("nan")}, "problem.t_final"),
    ("t_final-missing", {"problem.t_final": DELETE}, "problem.t_final: missing"),
    ("beta-zero", {"problem.beta": 0.0}, "problem.beta: got 0.0"),
    ("lambda-negative", {"problem.lambda": -0.1}, "problem.lambda"),
    ("problem-unknown-key", {"problem.gamma": 1.0}, "problem.gamma: unknown key"),
    ("top-unknown-key", {"nmae": "x"}, "nmae: unknown key"),
    ("unit-kind", {"unit.kind": "relu"}, "unit.kind: got 'relu'; allowed"),
    ("unit-width-zero", {"unit.width": 0.0}, "unit.width: got 0.0"),
    ("unit-width-bool", {"unit.width": True}, "unit.width: got True"),
    ("unit-unknown-key", {"unit.widht": 0.5}, "unit.widht: unknown key"),
    ("data-kind", {"data.kind": "grid"}, "data.kind: got 'grid'"),
    ("data-points-zero", {"data.points": 0}, "data.points: got 0"),
    ("data-points-float", {"data.points": 16.5}, "data.points: got 16.5"),
    ("target-kind", {"target.kind": "oracle"}, "target.kind: got 'oracle'"),
    ("target-expression-missing", {"target.kind": "expression"}, "target.expression: missing"),
    ("target-expression-string", {"target.kind": "expression", "target.theta": DELETE,
                                  "target.expression": "'a' * 10**10"}, "target.expression"),
    ("target-expression-nan", {"target.kind": "expression", "target.theta": DELETE,
                               "target.expression": "log(x - 10)"},
     "target.expression: expression 'log(x - 10)' is nan"),
    ("target-expression-unknown-name", {"target.kind": "expression", "target.theta": DELETE,
                                        "target.expression": "y + 1"}, "unknown name 'y'"),
    ("teacher-wrong-length", {"target.theta": [[1.0, 2.0, 3.0]]},
     "target.theta: got [[1.0, 2.0, 3.0]]; expected rows of 2 numbers, one per parameter"),
    ("domain-kind", {"domain.kind": "torus"}, "domain.kind: got 'torus'"),
    ("domain-inverted", {"domain.lower": 5.0, "domain.upper": -5.0}, "[domain]"),
    ("domain-wrong-dimension", {"domain": {"kind": "circle"}}, "domain.kind: a circle"),
    ("initial-kind", {"initial.kind": "cauchy"}, "initial.kind: got 'cauchy'"),
    ("initial-std-negative", {"initial.std": [-0.5, 0.6]}, "initial.std"),
    ("initial-std-scalar", {"initial.std": 0.5}, "initial.std: got 0.5"),
    ("initial-mean-length", {"initial.mean": [0.0, 0.0, 0.0]},
     "initial.mean: got [0.0, 0.0, 0.0]; expected 2 numbers, one per parameter of unit "
     "'circle_rbf' (c, z)"),
    ("initial-checkpoint-missing", {"initial.kind": "checkpoint", "initial.mean": DELETE,
                                    "initial.std": DELETE, "initial.file": "no.h5"},
     "initial.file"),
    ("pde-cells-length", {"pde.cells": [8, 8, 8]}, "pde.cells: got [8, 8, 8]"),
    ("pde-cells-zero", {"pde.cells": [0, 8]}, "pde.cells: got [0, 8]"),
    ("pde-scheme", {"pde.scheme": "fem"}, "pde.scheme: got 'fem'"),
    ("pde-degree", {"pde.scheme": "dg", "pde.degree": 3}, "pde.degree: got 3"),
    ("pde-dg-implicit", {"pde.scheme": "dg", "pde.integrator": "implicit"}, "pde.integrator"),
    ("pde-cfl", {"pde.cfl": 1.5}, "pde.cfl: got 1.5"),
    ("pde-two-meshes", {"pde.mesh": "cylinder"}, "pde: give exactly one of cells"),
    ("pde-mesh-name", {"pde.cells": DELETE, "pde.mesh": "torus"}, "pde.mesh: mesh 'torus'"),
    ("pde-mesh-level", {"pde.cells": DELETE, "pde.mesh": "cylinder", "pde.level": 42},
     "pde.mesh: no level 42"),
    ("pde-mesh-file-missing", {"pde.cells": DELETE, "pde.mesh_file": "nothing.xdmf"},
     "pde.mesh_file: no file"),
    ("pde-mesh-file-garbage", {"pde.cells": DELETE, "pde.mesh_file": "garbage.xdmf"},
     "pde.mesh_file: "),
    ("pde-outputs-zero", {"pde.outputs": 0}, "pde.outputs: got 0"),
    ("pde-unknown-key", {"pde.cell": [8, 8]}, "pde.cell: unknown key"),
    ("particles-n-empty", {"particles.n": []}, "particles.n: got []"),
    ("particles-n-negative", {"particles.n": [16, -2]}, "particles.n: got [16, -2]"),
    ("particles-seeds-zero", {"particles.seeds": 0}, "particles.seeds: got 0"),
    ("particles-dt-inf", {"particles.dt": float("inf")}, "particles.dt"),
    ("particles-integrator", {"particles.integrator": "leapfrog"}, "particles.integrator"),
    ("name-escapes-runs", {"name": "../../..", "output": DELETE}, "name: got '../../..'"),
    ("mixture-weights-sum", {"initial": {"kind": "mixture", "means": [[0, 0], [1, 1]],
                                         "stds": [[0.5, 0.5], [0.5, 0.5]],
                                         "weights": [0.5, 0.7]}},
     "initial.weights: got [0.5, 0.7]; expected numbers >= 0 summing to 1"),
    ("width-underflows", {"unit.width": 1e-300}, "width must be >= 1e-150"),
    ("missing-unit", {"unit": DELETE}, "[unit]: missing section"),
    ("missing-domain", {"domain": DELETE}, "[domain]: missing section"),
    ("section-not-table", {"unit": 3}, "unit: expected a table"),
    ("unit-kind-missing", {"unit.kind": DELETE}, "unit.kind: missing; expected a string"),
    ("neuron-activation", {"unit": {"kind": "neuron", "dim": 1, "activation": "gelu"}},
     "unit.activation: got 'gelu'; allowed: tanh, relu"),
    ("initial-mean-nan", {"initial.mean": [float("nan"), 0.0]}, "initial.mean: got [nan, 0.0]"),
    ("pde-cfl-nan", {"pde.cfl": float("nan")}, "pde.cfl: got nan; expected 0 < cfl <= 1"),
    ("domain-bound-inf", {"domain.lower": float("-inf")},
     "domain.lower: got -inf; expected a finite number"),
    ("particles-batch-float", {"particles.batch": 2.5}, "particles.batch: got 2.5"),
    ("data-key-of-another-law", {"data": {"kind": "monte_carlo", "law": "gaussian", "points": 8,
                                          "mean": [0.0], "std": 1.0, "lower": [0.0]}},
     "data.lower: unknown key; allowed here: kind, law, mean, points, seed, std"),
    ("data-wrong-dimension", {"data": {"kind": "gauss_legendre", "lower": [0.0, 0.0],
                                       "upper": [1.0, 1.0], "n": 4}},
     "data.lower: got [0.0, 0.0]; expected 1 numbers, one per data dimension"),
    ("pde-cylinder-around-2", {"pde.cells": [8, 2]},
     "pde.cells: got [8, 2]; a mesh of the cylinder"),
    ("pde-degree-with-fv", {"pde.degree": 2}, 'pde.degree: got 2; the degree is for scheme = "dg"'),
    ("pde-level-without-mesh", {"pde.level": 1}, "pde.level: got 1; a level is for a reference"),
    ("pde-mesh-file-wrong-extent", {"pde.cells": DELETE, "pde.mesh_file": str(CYLINDER_MESH)},
     "pde.mesh_file: " + str(CYLINDER_MESH) + " spans [0, 1] x [-1, 1] x [-1, 1], but the "
     "cylinder c in [-5.0, 5.0]"),
    ("pde-mesh-file-not-a-mesh-format", {"pde.cells": DELETE, "pde.mesh_file": "bad.toml"},
     "pde.mesh_file: "),
    ("pde-petsc-not-a-table", {"pde.petsc": "gmres"}, "pde.petsc: got 'gmres'; expected a table"),
    ("pde-box-of-4-parameters", {
        "unit": {"kind": "neuron", "dim": 2, "activation": "tanh"},
        "data": {"kind": "gauss_legendre", "lower": [-1.0, -1.0], "upper": [1.0, 1.0], "n": 3},
        "target": {"kind": "expression", "expression": "x0 * x1"},
        "domain": {"kind": "box", "lower": [-3.0] * 4, "upper": [3.0] * 4},
        "initial": {"kind": "gaussian", "mean": [0.0] * 4, "std": [0.5] * 4},
        "pde.cells": [2, 2, 2, 2]}, "pde: the PDE meshes boxes of 1 to 3 parameters"),
    ("pde-sphere-level-9", {**SPHERE, "pde.cells": [9]}, "pde.cells: got [9]; a mesh of the"),
    ("pde-circle-2-edges", {**CIRCLE, "pde.cells": [2]}, "pde.cells: got [2]; a mesh of the"),
    ("sgd-on-tabulated-data", {"data": {"kind": "file", "path": "data.csv"},
                               "target": {"kind": "data"}, "particles.batch": 4},
     "particles.batch: online SGD needs y at fresh samples"),
    ("teacher-coefficients-nan", {"target.coefficients": [float("nan"), 1.0]},
     "target.coefficients: got [nan, 1.0]"),
]


def _write(tmp_path, changes) -> str:
    raw = copy.deepcopy(BASE)
    raw["output"] = str(tmp_path / "run")
    for key, value in changes.items():
        _set(raw, key, value)
    (tmp_path / "garbage.xdmf").write_bytes(b"\x00\xff not xml")
    (tmp_path / "data.csv").write_text("x0,y\n0.1,1.0\n0.3,2.0\n")
    path = tmp_path / "bad.toml"
    path.write_text(dump_toml(raw))
    return str(path)


@pytest.mark.parametrize("changes, text", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_malformed_config_is_a_named_error_before_any_work(tmp_path, capsys, changes, text):
    config = _write(tmp_path, changes)
    for command in ("check", "pde"):
        assert main([command, config]) == ConfigError.exit_code, command
        err = capsys.readouterr().err
        assert err.startswith("meanfield: config error: ") and text in err, err
        assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_every_problem_of_a_config_is_reported_at_once(tmp_path, capsys):
    config = _write(tmp_path, {"problem.t_final": -1.0, "initial.std": [-1.0, 1.0],
                               "pde.cfl": 2.0, "particles.seeds": 0})
    assert main(["check", config]) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert "4 problems:" in err
    for field in ("problem.t_final", "initial.std", "pde.cfl", "particles.seeds"):
        assert f"\n  {field}: " in err


def test_problems_of_sections_that_depend_on_a_broken_one_are_reported_too(tmp_path, capsys):
    """A broken [unit] leaves k unknown: the other sections' own keys are still judged."""
    config = _write(tmp_path, {"unit.kind": "resnet", "initial.std": "wide", "pde.cfl": 2.0,
                               "domain.lower": "low", "particles.n": [0], "pde.cell": [4]})
    assert main(["check", config]) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert "6 problems:" in err, err
    for text in ("unit.kind: got 'resnet'", "initial.std: got 'wide'", "pde.cfl: got 2.0",
                 "domain.lower: got 'low'", "particles.n: got [0]", "pde.cell: unknown key"):
        assert f"\n  {text}" in err, (text, err)


def test_the_battery_is_large_enough():
    assert len(BAD) >= 35 and len({b[0] for b in BAD}) == len(BAD)


#: Configs that `check` accepts, one per scheme, integrator, mesh source and dynamics.
GOOD = [
    ("fv-euler", {"pde.integrator": "euler"}),
    ("fv-ssprk3", {"pde.integrator": "ssprk3"}),
    ("fv-implicit-noisy", {"problem.beta": 20.0, "pde.integrator": "implicit",
                           "particles.integrator": "euler"}),
    ("dg1", {"pde.scheme": "dg", "pde.degree": 1, "pde.integrator": "ssprk3"}),
    ("dg2", {"pde.scheme": "dg", "pde.degree": 2, "pde.integrator": "ssprk3"}),
    ("named-mesh-dg", {"pde.cells": DELETE, "pde.mesh": "cylinder", "pde.level": 0,
                       "pde.scheme": "dg", "pde.integrator": "ssprk3"}),
    ("sgd", {"particles.batch": 8, "particles.integrator": "euler"}),
    ("adaptive", {"particles.integrator": "adaptive"}),
    ("expression-uniform", {"target": {"kind": "expression", "expression": "sin(x) + 0.5"},
                            "initial": {"kind": "uniform", "lower": [-1.0, -3.0],
                                        "upper": [1.0, 3.0]}}),
]


@pytest.mark.parametrize("changes", [g[1] for g in GOOD], ids=[g[0] for g in GOOD])
def test_a_config_check_accepts_runs(tmp_path, capsys, changes):
    """What `check` accepts starts: the PDE, its error budget, particles and the report."""
    pytest.importorskip("dolfinx", reason="needs DOLFINx")
    config = _write(tmp_path, {"problem.t_final": 0.02, "pde.outputs": 2,
                               "particles.n": [8, 16], **changes})
    assert main(["check", config]) == 0, capsys.readouterr().err
    assert main(["run", config, "--no-progress"]) == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "summary.json").is_file()


@pytest.mark.parametrize("what, text", [
    ("binary", "is not UTF-8 text"), ("directory", "is a directory; give the TOML file"),
    ("missing", "does not exist"), ("not toml", "not valid TOML")])
def test_a_config_file_that_is_not_a_toml_text_is_a_named_error(tmp_path, capsys, what, text):
    path = tmp_path / "c.toml"
    if what == "binary":
        path.write_bytes(b"\xff\xfe\x00 not text")
    elif what == "directory":
        path.mkdir()
    elif what == "not toml":
        path.write_text("[unit\nkind = ")
    for command in ("check", "pde"):
        assert main([command, str(path)]) == ConfigError.exit_code
        assert text in capsys.readouterr().err


def test_an_output_that_is_a_file_is_a_named_error(tmp_path, capsys):
    pytest.importorskip("dolfinx", reason="needs DOLFINx (checked before the output)")
    config = _write(tmp_path, {})
    output = tmp_path / "taken"
    output.write_text("not a directory")
    assert main(["pde", config, "--output", str(output)]) == ConfigError.exit_code
    assert "output: " in capsys.readouterr().err and output.read_text() == "not a directory"
