"""The config reference, rendered from the schema (``solver/config_schema.py``) that also
reads configs: ``explain(topic)`` for ``meanfield check --explain`` and
``reference_markdown()``, which is docs/config.md (a test keeps the file in step).

A topic is a section (``problem``, ``pde``, ``pde.petsc``, ``particles``, the top level
``config``), a kinded section (``unit``: all its kinds) or one kind (``unit.neuron``).
"""

from __future__ import annotations

from solver.config_schema import all_sections
from solver.errors import ConfigError
from solver.schema import Key, Section

#: How lists are sized, and n versus points (in the docs and explain(None)).
RULES = """\
Dimensions. k is the number of parameters of the unit (theta = (...) below, e.g. k = 3 for
neurons in d = 1: theta = (c, a, b)); d is the data dimension (unit.dim; 1 for the circle
units, whose x is an angle). A key typed "a list of numbers (k of them)" takes exactly k
numbers, one per parameter in the order of theta; "(d of them)" one per data dimension.
In theta, a_1..a_d is a alone when d = 1 (neuron, d = 1: theta = (c, a, b)).
Where a key wants a list (initial.std), a scalar is an error, and where it wants a scalar
(data.gauss_hermite std, data.monte_carlo std: one std for every axis) a list is one.
n versus points: n is the number of nodes per axis of a tensor rule (M = n^d data points);
points is the total number M of data points (circle_lattice, monte_carlo).
Paths (data.path, initial.file, pde.mesh_file) are relative to the config file."""

#: A complete config of tanh neurons in d = 1 (theta = (c, a, b)), tested to validate.
NEURON_EXAMPLE = '''name = "tanh-neurons"

[problem]
t_final = 2.0              # beta = inf (noiseless) and lambda = 0 by default

[unit]
kind = "neuron"            # s(x; c, a, b) = c tanh(a x + b)
dim = 1                    # d = 1, so theta = (c, a, b): k = 3 parameters
activation = "tanh"

[data]
kind = "gauss_legendre"    # the uniform law on [-2, 2], n = 32 nodes per axis (M = 32)
lower = [-2.0]             # lists of d = 1 numbers
upper = [2.0]
n = 32

[target]
kind = "expression"
expression = "sin(2 * x)"  # x = x0 when d = 1

[domain]
kind = "box"               # one interval per parameter, in the order c, a, b
lower = [-4.0, -4.0, -4.0] # lists of k = 3 numbers
upper = [4.0, 4.0, 4.0]

[initial]
kind = "gaussian"
mean = [0.0, 0.0, 0.0]
std = [0.5, 0.5, 0.5]      # a list of k numbers, not a scalar

[pde]
cells = [12, 12, 12]       # a box: cells per axis (k = 3 numbers)
scheme = "fv"
outputs = 20

[particles]
n = [64, 256]              # widths of the networks
seeds = 4
'''


def _sections() -> dict[str, Section]:
    return {s.topic: s for s in all_sections()}


def theta_text(section: Section) -> str:
    """theta = (...) of a unit kind, with the variants its options make."""
    base, *variants = section.theta
    return "theta = (" + base[1] + ")" + "".join(
        f"; with {option}: ({names})" for option, names in variants)


def _heading(section: Section) -> str:
    if section.topic == "config":
        return "top level"
    if section.kind:
        return f"[{section.table}] kind = \"{section.kind}\""
    return f"[{section.table}]"


def _keys(section: Section) -> list[Key]:
    kind = [Key("kind", "a string", "", choices=(section.kind,))] if section.kind else []
    return kind + list(section.keys)


def _summary(section: Section) -> str:
    theta = f" {theta_text(section)}." if section.theta else ""
    return section.summary + theta


def _explain_one(section: Section) -> str:
    keys = _keys(section)
    width = max([len(k.name) for k in keys] + [4])
    lines = [_heading(section), f"  {_summary(section)}"]
    for key in keys:
        when = f" (only with {key.when[0]} = \"{key.when[1]}\")" if key.when else ""
        lines.append(f"  {key.name:{width}s}  {key.constraint()}; default: "
                     f"{key.default_text()}{when}" + (f"; {key.meaning}" if key.meaning else ""))
    return "\n".join(lines)


def explain(topic: str | None = None) -> str:
    """The reference of a topic, or (None) the list of topics and the dimension rules."""
    sections = _sections()
    if not topic:
        return ("topics (meanfield check --explain TOPIC):\n" + "\n".join(
            f"  {name:26s} {s.summary[:72]}" for name, s in sections.items())
            + "\n\n" + RULES)
    if topic in sections:
        return _explain_one(sections[topic])
    kinds = [s for name, s in sections.items() if name.startswith(topic + ".") and s.kind]
    if kinds:
        return "\n\n".join(_explain_one(s) for s in kinds)
    tables = sorted({s.table.split(".")[0] for s in sections.values()})
    raise ConfigError(f"--explain {topic!r}: no such topic; sections: {', '.join(tables)}; "
                      f"or a kind such as unit.neuron (meanfield check --explain lists all)")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;") or " "


def reference_markdown() -> str:
    """docs/config.md."""
    out = ["# Config reference", "",
           "Generated from the schema that reads configs (`solver/config_schema.py`, by "
           "`solver.config.reference_markdown()`); a test keeps this file in step. "
           "`meanfield check --explain TOPIC` prints one topic, `meanfield check CONFIG` "
           "lists every problem of a config at once.", "", "## Rules", "", RULES, ""]
    for section in all_sections():
        out += [f"## `{section.topic}`", "", f"`{_heading(section)}`: {_summary(section)}", ""]
        keys = _keys(section)
        if keys:
            out += ["| key | type and constraint | default | meaning |", "|---|---|---|---|"]
            for key in keys:
                when = f" ({key.when[0]} = `{key.when[1]}` only)" if key.when else ""
                out.append(f"| `{key.name}` | {_cell(key.constraint())} | "
                           f"{_cell(key.default_text())} | {_cell(key.meaning + when)} |")
            out.append("")
    out += ["## A complete example: tanh neurons", "", "```toml", NEURON_EXAMPLE.rstrip(),
            "```", ""]
    return "\n".join(out)
