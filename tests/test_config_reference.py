"""The config schema (solver/config_schema.py) reads configs and writes their reference
(docs/config.md, check --explain): the docs are the generated text, the documented theta
order is the units' param_names, every default passes its own constraint, and the worked
neuron example of the docs is a valid config."""

import tomllib
from pathlib import Path

import pytest

from solver import config
from solver.config_reference import NEURON_EXAMPLE, RULES, theta_text
from solver.config_schema import UNIT, all_sections
from solver.errors import ConfigError
from solver.model import reduction, units
from solver.schema import coerce

DOCS = Path(__file__).resolve().parent.parent / "docs" / "config.md"


def test_docs_config_md_is_the_generated_reference():
    assert DOCS.read_text() == config.reference_markdown(), (
        "docs/config.md is stale: python -c 'from solver.config import "
        "reference_markdown as r; open(\"docs/config.md\", \"w\").write(r())'")


def test_the_neuron_example_of_the_docs_is_a_valid_config():
    assert "```toml\n" + NEURON_EXAMPLE in config.reference_markdown()
    cfg = config.parse(tomllib.loads(NEURON_EXAMPLE))
    assert cfg.problem.unit.param_names == ("c", "a", "b")
    assert cfg.pde.cells == (12, 12, 12) and cfg.particles.n == (64, 256)
    assert cfg.problem.data.size == 32


def _expand(names: str, d: int) -> tuple[str, ...]:
    """'c, a_1..a_d, b' for d -> ('c', 'a_1', ..., 'a_d', 'b'); x_1..x_d is x when d = 1."""
    out = []
    for part in names.split(", "):
        if "_1.." in part:
            symbol = part.split("_1..")[0]
            out += [symbol] if d == 1 else [f"{symbol}_{j}" for j in range(1, d + 1)]
        else:
            out.append(part)
    return tuple(out)


OPTIONS = {"output_weight": {"output_weight": 1.0}, "bias": {"bias": True}, "": {}}
BUILD = {
    "linear": lambda d, o: units.LinearUnit(d),
    "rbf": lambda d, o: units.RBFUnit(d, 0.5),
    "circle_rbf": lambda d, o: units.CircleRBFUnit(0.5),
    "circle_bump": lambda d, o: units.CircleBumpUnit(0.5),
    "neuron": lambda d, o: units.NeuronUnit(d, "tanh", **o),
    "fixed_output_neuron": lambda d, o: units.FixedOutputNeuron(d, "relu", **o),
    "reduced_ridge": lambda d, o: reduction.ReducedRidgeUnit(5, min(d, 2), "tanh", **o),
}


@pytest.mark.parametrize("kind", list(UNIT))
def test_the_documented_theta_order_is_the_units_param_names(kind):
    assert set(BUILD) == set(UNIT)
    section = UNIT[kind]
    assert section.theta, f"unit.{kind} documents no theta"
    for d in (1, 2, 3):
        for option, names in section.theta:
            unit = BUILD[kind](d, OPTIONS[option])
            if unit.data_dim != d and d > 1:
                continue  # circle units: d = 1 only
            assert _expand(names, d) == unit.param_names, (kind, option, d)
    assert theta_text(section) in config.explain(f"unit.{kind}")


def test_every_key_is_documented_and_its_default_passes_its_own_constraint():
    topics = [s.topic for s in all_sections()]
    assert len(topics) == len(set(topics)) == 36
    for section in all_sections():
        for key in section.keys:
            assert key.meaning, f"{section.topic}.{key.name} has no meaning"
            if key.required or key.default is None or key.type == "a table":
                continue
            value = coerce(key.default if not isinstance(key.default, tuple)
                           else list(key.default) or [1], key.type)
            assert value is not None, (section.topic, key.name)
            assert key.check is None or key.check(value), (section.topic, key.name)
            assert not key.choices or value in key.choices, (section.topic, key.name)


def test_explain_a_topic_a_section_or_the_list():
    assert config.explain("unit.neuron").startswith('[unit] kind = "neuron"')
    assert "output_weight" in config.explain("unit") and "bias" in config.explain("unit")
    assert "ksp_type" in config.explain("pde.petsc")
    listing = config.explain(None)
    assert all(f"  {s.topic} " in listing for s in all_sections()) and RULES in listing
    with pytest.raises(ConfigError, match="no such topic; sections: config, data, domain, initial, "
                                          "limit, particles, pde, problem, target, unit"):
        config.explain("units")


def test_explain_shows_the_conditional_keys_of_a_law():
    text = config.explain("data.monte_carlo")
    assert 'std     a finite number > 0; default: required (only with law = "gaussian")' in text
