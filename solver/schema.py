"""A declarative schema of TOML tables: each key's type, default, constraint and meaning.

One ``Section`` per table (or per kind of a kinded table, e.g. ``unit.neuron``) declares its
``Key``s; ``Reader.section`` reads a table through it and ``solver.config_reference``
documents it, so what is read and what is documented are the same declaration. The reader
collects every problem (one line each, ``section.key: got VALUE; expected ALLOWED``) instead
of stopping at the first: ``Reader.raise_any`` raises them as one ConfigError.

Why not pydantic or attrs/cattrs: their errors would have to be re-worded into the messages
users and tests know (``field: got X; expected Y``), list lengths depend on other sections
(k, d), and the particle-only install would gain a dependency; the table is ~100 lines.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from solver.errors import ConfigError

#: The default of a key that must be given.
REQUIRED = object()

_ITEM = {"a list of numbers": "a number", "a list of integers": "an integer",
         "a list of lists of numbers": "a list of numbers"}
TYPES = ("a number", "a number or \"auto\"", "an integer", "a string", "a boolean",
         "a table", *_ITEM)


@dataclass(frozen=True)
class Key:
    """One key of a table.

    type: one of TYPES (TOML integers are numbers too; booleans are no numbers).
    check/allowed: the constraint on a value of that type and its text (messages, docs).
    choices: the allowed strings. size: "k" or "d", a list of that many entries (each row,
    for a list of lists), checked when the reader knows k and d. when: (key, value), read
    only when that key of the table has that value (else it is an unknown key).
    shown: the default as the docs show it, when the value itself says little.
    """

    name: str
    type: str
    meaning: str
    default: Any = REQUIRED
    check: Callable[[Any], bool] | None = None
    allowed: str = ""
    choices: tuple[str, ...] = ()
    size: str = ""
    when: tuple[str, str] | None = None
    shown: str = ""

    def __post_init__(self) -> None:
        assert self.type in TYPES, self.type

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def constraint(self) -> str:
        """What is allowed, as a message and the docs say it."""
        if self.choices:
            return " | ".join(f'"{c}"' for c in self.choices)
        text = self.allowed or self.type
        if self.allowed and self.type.startswith("a list"):
            text = f"a list of {self.allowed}"
        if self.size:
            text += f" ({self.size} of them)" if "list of lists" not in self.type else (
                f" (rows of {self.size})")
        return text

    def default_text(self) -> str:
        if self.required:
            return "required"
        if self.shown:
            return self.shown
        if self.default is None:
            return "none"
        if isinstance(self.default, str):
            return f'"{self.default}"'
        if isinstance(self.default, bool):
            return str(self.default).lower()
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)


@dataclass(frozen=True)
class Section:
    """A table (topic ``section``) or one kind of a kinded table (topic ``section.kind``).

    theta: for unit kinds, the order of the parameters: (option, "c, a_1..a_d, b") pairs, the
    names with no option ("") and with the named key set (tested against unit.param_names;
    x_1..x_d is x alone when d = 1)."""

    topic: str
    summary: str
    keys: tuple[Key, ...] = ()
    theta: tuple[tuple[str, str], ...] = ()
    free: bool = False  # any key (pde.petsc): values are strings, numbers or booleans

    @property
    def table(self) -> str:
        return self.topic.split(".")[0] if self.topic != "pde.petsc" else self.topic

    @property
    def kind(self) -> str | None:
        return self.topic.split(".", 1)[1] if "." in self.topic and not self.free else None


def coerce(value: Any, kind: str) -> Any:
    """value as ``kind`` (one of TYPES), or None when it is not one (NaN is no number)."""
    if kind in _ITEM:
        if not isinstance(value, list) or not value:
            return None
        items = [coerce(v, _ITEM[kind]) for v in value]
        return None if any(v is None for v in items) else items
    if kind == 'a number or "auto"':
        return value if value == "auto" else coerce(value, "a number")
    if kind == "a number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok and not math.isnan(value) else None
    if kind == "an integer":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if kind == "a string":
        return value if isinstance(value, str) else None
    if kind == "a boolean":
        return value if isinstance(value, bool) else None
    return value if isinstance(value, dict) else None  # a table


def field(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Reader:
    """Reads tables through Sections and keeps every problem found, one line each."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, message: str) -> None:
        self.problems.extend(message.splitlines())

    def table(self, parent: Mapping[str, Any], key: str, required: bool = True
              ) -> dict[str, Any] | None:
        """parent[key] if it is a table; None (a problem if required) when absent."""
        if key not in parent:
            if required:
                self.problem(f"[{key}]: missing section")
            return None
        if not isinstance(parent[key], dict):
            self.problem(f"{key}: expected a table, got {parent[key]!r}")
            return None
        return parent[key]

    def kind(self, data: Mapping[str, Any], path: str, kinds: Mapping[str, Section],
             default: str | None = None) -> Section | None:
        """The Section of the table's ``kind`` (default if absent), or None after a problem."""
        if "kind" not in data and default is None:
            self.problem(f"{field(path, 'kind')}: missing; expected a string")
            return None
        value = data.get("kind", default)
        if value not in kinds:
            self.problem(f"{field(path, 'kind')}: got {value!r}; allowed: {', '.join(kinds)}")
            return None
        return kinds[value]

    def section(self, spec: Section, data: Mapping[str, Any], path: str,
                sizes: Mapping[str, tuple[int, str]] | None = None,
                also: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """The values of the table ``data`` (at ``path``) read through ``spec``: defaults
        filled in, every key checked; None if any key has a problem (each one recorded).
        sizes: {"k": (k, what k is), "d": (d, what d is)} for the keys with a size.
        also: further keys allowed here (kind, the sections of the top level)."""
        before = len(self.problems)
        if spec.free:
            values = {}
            for key, value in sorted(data.items()):
                if isinstance(value, bool):
                    value = "true" if value else "false"
                if isinstance(value, str | int | float):
                    values[key] = value
                else:
                    self.problem(f"{field(path, key)}: got {value!r}; expected a string or "
                                 f"number")
            return values if len(self.problems) == before else None
        values: dict[str, Any] = {}
        read = set(also)
        for key in spec.keys:
            if key.when is not None and data.get(key.when[0]) != key.when[1]:
                continue
            read.add(key.name)
            name = field(path, key.name)
            if key.name not in data:
                if key.required:
                    self.problem(f"{name}: missing; expected {key.type}")
                values[key.name] = None if key.required else key.default
                continue
            raw = data[key.name]
            value = coerce(raw, key.type)
            if key.choices and value is not None and value not in key.choices:
                self.problem(f"{name}: got {value!r}; allowed: {', '.join(key.choices)}")
            elif value is None or (key.check is not None and not key.check(value)):
                self.problem(f"{name}: got {raw!r}; expected {key.allowed or key.type}")
            elif key.size and sizes and key.size in sizes:
                n, what = sizes[key.size]
                nested = key.type == "a list of lists of numbers"
                if any(len(row) != n for row in (value if nested else [value])):
                    self.problem(f"{name}: got {raw!r}; expected {'rows of ' if nested else ''}"
                                 f"{n} numbers, one per {what}")
            values[key.name] = value
        unknown = sorted(set(data) - read)
        for key in unknown:
            self.problem(f"{field(path, key)}: unknown key; allowed here: "
                         f"{', '.join(sorted(read)) or 'none'}")
        return values if len(self.problems) == before else None

    def build(self, where: str, make: Callable[[], Any]) -> Any:
        """make(), or None after recording its ConfigError, or its ValueError as
        ``[where]: message`` (``where`` empty: the message names the field itself)."""
        try:
            return make()
        except ConfigError as err:
            self.problem(str(err))
        except ValueError as err:
            self.problem(f"[{where}]: {err}" if where else str(err))
        return None

    def raise_any(self) -> None:
        """Raise the problems found so far as one ConfigError (nothing if there are none)."""
        if len(self.problems) == 1:
            raise ConfigError(self.problems[0])
        if self.problems:
            raise ConfigError(f"{len(self.problems)} problems:\n  "
                              + "\n  ".join(self.problems))
