"""The config reference (solver/config_reference.py, docs/config.md, check --explain) and the
config reader cannot drift: configs of every kind are read, and in each section the keys the
reader takes are exactly the documented ones."""

import copy
import tomllib
from pathlib import Path

import pytest

from solver import config
from solver.config_reference import NEURON_EXAMPLE, TOPICS, explain, reference_markdown
from solver.errors import ConfigError
from tests.conftest import tiny_run_config

DOCS = Path(__file__).resolve().parent.parent / "docs" / "config.md"
BASE = tomllib.loads(tiny_run_config("OUT"))
SECTIONS = {"problem", "unit", "data", "target", "domain", "initial", "pde", "particles"}


def _variant(**sections):
    raw = copy.deepcopy(BASE)
    raw.update(sections)
    return raw


def _box(k):
    return {"kind": "box", "lower": [-3.0] * k, "upper": [3.0] * k}


def _gauss(k):
    return {"kind": "gaussian", "mean": [0.0] * k, "std": [0.5] * k}


def _legendre(d):
    return {"kind": "gauss_legendre", "lower": [-1.0] * d, "upper": [1.0] * d, "n": 4}


EXPR = {"kind": "expression", "expression": "x0"}
VARIANTS = [
    BASE,
    _variant(unit={"kind": "linear", "dim": 2}, data=_legendre(2), target=EXPR,
             domain=_box(2), pde={"cells": [4, 4]}),
    _variant(unit={"kind": "rbf", "dim": 1, "width": 0.5}, data=_legendre(1), target=EXPR,
             domain=_box(2), initial={"kind": "uniform", "lower": [-1, -1], "upper": [1, 1]},
             pde={"cells": [4, 4]}),
    _variant(unit={"kind": "circle_bump", "width": 0.5, "amplitude": 1.0},
             target={"kind": "teacher", "theta": [[0.5]], "coefficients": [1.0]},
             domain={"kind": "circle"}, initial=_gauss(1), pde={"cells": [16]}),
    _variant(unit={"kind": "neuron", "dim": 1, "activation": "tanh", "output_weight": 1.0},
             data={"kind": "gauss_hermite", "mean": [0.0], "std": 1.0, "n": 8}, target=EXPR,
             domain=_box(2), initial={"kind": "mixture", "means": [[0, 0], [1, 1]],
                                      "stds": [[0.5, 0.5], [0.5, 0.5]], "weights": [0.5, 0.5]},
             pde={"mesh": "rectangle", "level": 0, "petsc": {"ksp_type": "gmres"}}),
    _variant(unit={"kind": "fixed_output_neuron", "dim": 3, "activation": "relu", "bias": False},
             data={"kind": "sphere_product", "n": 4}, target=EXPR,
             domain={"kind": "sphere"}, initial={"kind": "uniform_sphere"}, pde={"cells": [1]}),
    _variant(unit={"kind": "fixed_output_neuron", "dim": 3, "activation": "relu"},
             data={"kind": "monte_carlo", "law": "sphere", "points": 8, "dim": 3, "seed": 1},
             target=EXPR, domain={"kind": "sphere"},
             initial={"kind": "von_mises_fisher", "mean_direction": [0, 0, 1], "kappa": 2.0},
             pde={"cells": [1]}),
    _variant(unit={"kind": "linear", "dim": 2}, target=EXPR, domain=_box(2),
             data={"kind": "monte_carlo", "law": "uniform_box", "points": 8,
                   "lower": [0, 0], "upper": [1, 1]}, pde={"cells": [4, 4]}),
    _variant(unit={"kind": "linear", "dim": 2}, target=EXPR, domain=_box(2),
             data={"kind": "monte_carlo", "law": "gaussian", "points": 8,
                   "mean": [0, 0], "std": 1.0}, pde={"cells": [4, 4]}),
    _variant(unit={"kind": "linear", "dim": 2}, target={"kind": "data"}, domain=_box(2),
             data={"kind": "file", "path": "data.csv"}, pde={"cells": [4, 4]}),
    _variant(domain={"kind": "disc", "center": [0.0, 0.0], "radius": 3.0},
             pde={"cells": [4]}),
]


def _topic(path: str, data: dict) -> str | None:
    if path == "":
        return "config"
    if path in ("problem", "pde", "pde.petsc", "particles"):
        return path
    return f"{path}.{data.get('kind', 'box')}"


def test_the_reader_takes_exactly_the_documented_keys(tmp_path, monkeypatch):
    (tmp_path / "data.csv").write_text("x0,x1,y\n0.1,0.2,1.0\n0.3,0.4,2.0\n")
    seen: dict[str, set[str]] = {}
    done = config._Table.done

    def record(table):
        topic = _topic(table.path, table.data)
        keys = set(table.used) - (SECTIONS if topic == "config" else set())
        if topic != "pde.petsc":
            assert keys <= set(TOPICS[topic][1]), (topic, keys - set(TOPICS[topic][1]))
        seen.setdefault(topic, set()).update(keys)
        return done(table)

    monkeypatch.setattr(config._Table, "done", record)
    for raw in VARIANTS:
        config.parse(raw, tmp_path)
    for topic, (_, keys) in TOPICS.items():
        if topic == "initial.checkpoint":  # needs a checkpoint file: tests/test_initial_...
            continue
        assert seen.get(topic, set()) >= set(keys) - {"kind"} or topic == "pde.petsc", (
            topic, set(keys) - seen.get(topic, set()))


def test_docs_config_md_is_the_generated_reference():
    assert DOCS.read_text() == reference_markdown(), (
        "docs/config.md is stale: python -c 'from solver.config_reference import "
        "reference_markdown as r; open(\"docs/config.md\", \"w\").write(r())'")


def test_the_neuron_example_of_the_docs_is_a_valid_config():
    cfg = config.parse(tomllib.loads(NEURON_EXAMPLE))
    assert cfg.problem.unit.param_names == ("c", "a", "b")
    assert "neuron" in explain("unit.neuron") and "output_weight" in explain("unit")
    with pytest.raises(ConfigError, match="no such topic"):
        explain("units")
