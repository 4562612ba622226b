"""TOML config -> Problem and run settings, validated before any work starts.

Every error is a ConfigError naming the field (``section.key``), the value given
and what is allowed; ``parse`` reports the errors of all sections at once. Every key of
every kind: docs/config.md, generated from ``solver/config_reference.py`` (a test keeps it
and this reader in step). The layout (see examples/*.toml):

    name, output            top level: run name, run directory
    [problem]               t_final, beta (inf = noiseless), lambda
    [unit]                  kind + its parameters
    [data]                  kind + its parameters (a data quadrature)
    [target]                kind = expression | teacher | data
    [domain]                kind = box (lower, upper) | disc (center, radius) | circle |
                            cylinder (lower, upper of c) | sphere
    [initial]               kind = gaussian | uniform | mixture | uniform_sphere |
                            von_mises_fisher | checkpoint (file, field: a density on a
                            mesh, the state of an earlier PDE run), e.g.
                              kind = "checkpoint"
                              file = "runs/x/pde/checkpoint.h5"  # field = "snapshot2"
    [pde]                   cells | mesh + level | mesh_file; scheme (fv | dg), degree,
                            integrator (euler | ssprk2 | ssprk3 | implicit), cfl,
                            time_tolerance, stationary_tolerance, max_outflow, outputs,
                            snapshots, max_step, compress_rtol, checkpoint_every
    [pde.petsc]             PETSc options of the implicit solve (ksp_type = "gmres", ...)
    [particles]             n, seeds, dt, integrator (rk4 | euler | adaptive), rtol, batch,
                            entropy, checkpoint_every
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from solver.checkpoint_file import load_cell_density
from solver.errors import CheckpointError, ConfigError
from solver.mesh_files import inspect_mesh_file, reference_mesh_path
from solver.model import density, quadrature, targets, units
from solver.model.cell_density import CellDensity
from solver.model.domain import Box, Circle, Cylinder, Disc, Domain, Sphere
from solver.model.problem import Problem
from solver.settings import (
    INTEGRATORS,
    PARTICLE_INTEGRATORS,
    SCHEMES,
    ParticleSettings,
    PDESettings,
)


@dataclass
class RunConfig:
    """A validated config: the Problem and the settings of its runs."""

    name: str
    output: Path
    problem: Problem
    pde: PDESettings | None
    particles: ParticleSettings | None
    source: dict[str, Any]


class _Table:
    """A TOML table read key by key; unknown keys are an error at ``done()``."""

    def __init__(self, data: Any, path: str):
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a table, got {data!r}")
        self.data, self.path, self.used = data, path, set()

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, kind: str, default: Any = ..., *, check: Callable[[Any], bool]
            | None = None, allowed: str = "") -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise ConfigError(f"{self.field(key)}: missing; expected {kind}")
            return default
        value = _coerce(self.data[key], kind)
        if value is None or (check is not None and not check(value)):
            raise ConfigError(
                f"{self.field(key)}: got {self.data[key]!r}; expected {allowed or kind}"
            )
        return value

    def choice(self, key: str, options: list[str] | tuple[str, ...], default: Any = ...) -> str:
        value = self.get(key, "a string", default)
        if value not in options:
            raise ConfigError(
                f"{self.field(key)}: got {value!r}; allowed: {', '.join(options)}"
            )
        return value

    def table(self, key: str, required: bool = True) -> _Table | None:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(f"[{self.field(key)}]: missing section")
            return None
        return _Table(self.data[key], self.field(key))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(
                f"{self.field(unknown[0])}: unknown key; allowed here: "
                f"{', '.join(sorted(self.used)) or 'none'}"
            )


_LIST_ITEM = {
    "a list of numbers": "a number",
    "a list of integers": "an integer",
    "a list of lists of numbers": "a list of numbers",
}


def _coerce(value: Any, kind: str) -> Any:
    """value as kind ('a number', 'an integer', 'a string', 'a boolean', a list kind), or None."""
    if kind in _LIST_ITEM:
        if not isinstance(value, list) or not value:
            return None
        items = [_coerce(v, _LIST_ITEM[kind]) for v in value]
        return None if any(v is None for v in items) else items
    if kind == "a number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok and not math.isnan(value) else None
    if kind == "an integer":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if kind == "a string":
        return value if isinstance(value, str) else None
    if kind == "a boolean":
        return value if isinstance(value, bool) else None
    raise AssertionError(kind)


def _plain_name(name: str) -> bool:
    """A name that stays inside runs/ as runs/<name>: no separators, not . or .."""
    return bool(name) and name not in (".", "..") and all(
        c.isalnum() or c in "-_." for c in name)


def _finite(v: Any) -> bool:
    return all(math.isfinite(x) for x in (v if isinstance(v, list) else [v]))


def _positive(v: Any) -> bool:
    return all(x > 0 for x in (v if isinstance(v, list) else [v]))


def _build(section: _Table, make: Callable[[], Any]) -> Any:
    """Run a constructor; its ValueError becomes a ConfigError naming the section."""
    try:
        return make()
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"[{section.path}]: {err}") from err


UNIT_KINDS = ("linear", "rbf", "circle_rbf", "circle_bump", "neuron", "fixed_output_neuron")


def _unit(t: _Table) -> units.Unit:
    kind = t.choice("kind", UNIT_KINDS)
    pos = {"check": _positive, "allowed": "a positive integer"}
    if kind == "circle_rbf":
        width = t.get("width", "a number", check=lambda w: w > 0, allowed="a number > 0")
        return _build(t, lambda: units.CircleRBFUnit(width))
    if kind == "circle_bump":
        width = t.get("width", "a number", check=lambda w: w > 0, allowed="a number > 0")
        a = t.get("amplitude", "a number", 1.0, check=lambda v: _finite(v) and v != 0,
                  allowed="a finite nonzero number")
        return _build(t, lambda: units.CircleBumpUnit(width, a))
    d = t.get("dim", "an integer", **pos)
    if kind == "linear":
        return _build(t, lambda: units.LinearUnit(d))
    if kind == "rbf":
        width = t.get("width", "a number", check=lambda w: w > 0, allowed="a number > 0")
        return _build(t, lambda: units.RBFUnit(d, width))
    activation = t.choice("activation", tuple(units.ACTIVATIONS))
    if kind == "neuron":
        c = t.get("output_weight", "a number", None, check=_finite, allowed="a finite number")
        return _build(t, lambda: units.NeuronUnit(d, activation, output_weight=c))
    bias = t.get("bias", "a boolean", False)
    return _build(t, lambda: units.FixedOutputNeuron(d, activation, bias=bias))


def _data(t: _Table, base: Path) -> quadrature.DataQuadrature:
    kind = t.choice("kind", tuple(quadrature.QUADRATURES))
    nums = "a list of numbers"
    pos_int = {"check": _positive, "allowed": "a positive integer"}
    if kind == "gauss_legendre":
        lo, hi = t.get("lower", nums), t.get("upper", nums)
        n = t.get("n", "an integer", **pos_int)
        return _build(t, lambda: quadrature.gauss_legendre(lo, hi, n))
    if kind == "gauss_hermite":
        mean = t.get("mean", nums)
        std = t.get("std", "a number", check=_positive, allowed="a number > 0")
        n = t.get("n", "an integer", **pos_int)
        return _build(t, lambda: quadrature.gauss_hermite(mean, std, n))
    if kind == "circle_lattice":
        m = t.get("points", "an integer", **pos_int)
        return _build(t, lambda: quadrature.circle_lattice(m, t.get("offset", "a number", 0.0)))
    if kind == "sphere_product":
        n = t.get("n", "an integer", **pos_int)
        return _build(t, lambda: quadrature.sphere_product(n))
    if kind == "monte_carlo":
        law = t.choice("law", ("uniform_box", "gaussian", "sphere"))
        m = t.get("points", "an integer", **pos_int)
        seed = t.get("seed", "an integer", 0)
        params = {
            "uniform_box": lambda: {"lower": t.get("lower", nums), "upper": t.get("upper", nums)},
            "gaussian": lambda: {"mean": t.get("mean", nums),
                                 "std": t.get("std", "a number", check=_positive)},
            "sphere": lambda: {"dim": t.get("dim", "an integer", **pos_int)},
        }[law]()
        return _build(t, lambda: quadrature.monte_carlo(law, m, seed, **params))
    path = Path(t.get("path", "a string"))
    path = path if path.is_absolute() else base / path
    if not path.exists():
        raise ConfigError(f"{t.field('path')}: file {str(path)!r} does not exist")
    return _build(t, lambda: quadrature.from_file(path))


def _target(t: _Table, unit: units.Unit, data: quadrature.DataQuadrature) -> targets.Target:
    kind = t.choice("kind", ("expression", "teacher", "data"))
    if kind == "expression":
        expr = t.get("expression", "a string")
        try:
            return targets.ExpressionTarget(expr, data.dim)
        except ValueError as err:
            raise ConfigError(f"{t.field('expression')}: {err}") from err
    if kind == "teacher":
        theta = t.get("theta", "a list of lists of numbers")
        coeffs = t.get("coefficients", "a list of numbers", None)
        return _build(t, lambda: targets.TeacherTarget(unit, theta, coeffs))
    if data.targets is None:
        raise ConfigError(f"{t.field('kind')}: 'data' needs a data file with a y column")
    return targets.TabulatedTarget(data.points, data.targets)


def _domain(t: _Table, unit: units.Unit) -> Domain:
    kind = t.choice("kind", ("box", "disc", "circle", "cylinder", "sphere"), "box")
    k = unit.param_dim
    if kind == "box":
        lo = t.get("lower", "a list of numbers", check=_finite, allowed="finite numbers")
        hi = t.get("upper", "a list of numbers", check=_finite, allowed="finite numbers")
        if len(lo) != k or len(hi) != k:
            raise ConfigError(
                f"{t.field('lower')}/upper: got {len(lo)} and {len(hi)} entries; unit "
                f"{unit.name!r} has {k} parameters"
            )
        domain = _build(t, lambda: Box(tuple(lo), tuple(hi)))
    elif kind == "disc":
        center = t.get("center", "a list of numbers", check=_finite, allowed="finite numbers")
        radius = t.get("radius", "a number", check=_positive, allowed="a number > 0")
        domain = _build(t, lambda: Disc(tuple(center), radius))
    elif kind == "circle":
        domain = Circle()
    elif kind == "cylinder":
        lo = t.get("lower", "a number", check=_finite, allowed="a finite number")
        hi = t.get("upper", "a number", check=_finite, allowed="a finite number")
        domain = _build(t, lambda: Cylinder(lo, hi))
    else:
        domain = _build(t, lambda: Sphere(k))
    if domain.param_dim != k:
        raise ConfigError(
            f"{t.field('kind')}: a {kind} has {domain.param_dim} parameters but unit "
            f"{unit.name!r} has {k}"
        )
    return domain


def _initial(t: _Table, dim: int, base: Path) -> density.Density:
    kind = t.choice("kind", ("gaussian", "uniform", "mixture", "uniform_sphere",
                             "von_mises_fisher", "checkpoint"))
    nums = "a list of numbers"
    if kind == "checkpoint":
        path = Path(t.get("file", "a string"))
        path = path if path.is_absolute() else base / path
        field = t.get("field", "a string", None)
        try:
            return load_cell_density(path, field)
        except CheckpointError as err:
            raise ConfigError(f"{t.field('file')}: {err}") from err
        except ValueError as err:  # names initial.file or initial.field
            raise ConfigError(str(err)) from err
    if kind == "uniform_sphere":
        return _build(t, lambda: density.UniformSphere(dim))
    if kind == "von_mises_fisher":
        mu = t.get("mean_direction", nums, check=_finite, allowed="finite numbers")
        kappa = t.get("kappa", "a number", check=lambda v: _finite(v) and v >= 0,
                      allowed="a finite number >= 0")
        return _build(t, lambda: density.VonMisesFisher(mu, kappa))
    if kind == "gaussian":
        mean = t.get("mean", nums, check=_finite, allowed="finite numbers")
        std = t.get("std", nums, check=_positive, allowed="positive numbers")
        return _build(t, lambda: density.Gaussian(mean, std))
    if kind == "uniform":
        lo, hi = t.get("lower", nums), t.get("upper", nums)
        return _build(t, lambda: density.Uniform(lo, hi))
    means = t.get("means", "a list of lists of numbers")
    stds = t.get("stds", "a list of lists of numbers", check=lambda s: all(map(_positive, s)),
                 allowed="positive numbers")
    probs = t.get("weights", nums, [1.0 / len(means)] * len(means),
                  check=lambda w: all(v >= 0 for v in w) and abs(sum(w) - 1) <= 1e-9,
                  allowed="numbers >= 0 summing to 1 (one per mean)")
    if len(stds) != len(means):
        raise ConfigError(f"{t.field('stds')}: need one std list per mean ({len(means)})")
    return _build(t, lambda: density.GaussianMixture(
        tuple(density.Gaussian(m, s) for m, s in zip(means, stds, strict=True)), probs))


def _petsc(t: _Table | None) -> tuple[tuple[str, str], ...]:
    """[pde.petsc]: PETSc options without the prefix, e.g. ksp_type = "gmres"."""
    if t is None:
        return ()
    options = []
    for key in sorted(t.data):
        value = t.data[key]
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str | int | float):
            raise ConfigError(f"{t.field(key)}: got {value!r}; expected a string or number")
        t.used.add(key)
        options.append((key.lstrip("-"), str(value)))
    return tuple(options)


def _checkpoint_every(t: _Table) -> float:
    return t.get("checkpoint_every", "a number", 600.0, check=_positive,
                 allowed="seconds of wall time between checkpoints, a number > 0 "
                         "(inf: only when pre-empted and at the end)")


def _pde(t: _Table, domain: Domain) -> PDESettings:
    cells = t.get("cells", "a list of integers", (), check=_positive, allowed="positive integers")
    counts = {Box: domain.param_dim, Disc: 1, Circle: 1, Cylinder: 2, Sphere: 1}
    need = counts[type(domain)]
    if cells and len(cells) != need:
        raise ConfigError(
            f"{t.field('cells')}: got {cells}; a mesh of the {domain.describe()} takes {need} "
            f"number(s) (box: cells per axis; disc: rings; circle: edges; cylinder: cells in "
            f"c and z; sphere: icosphere refinement level)"
        )
    petsc = t.table("petsc", required=False)
    settings = _build(t, lambda: PDESettings(
        cells=tuple(cells),
        mesh=t.get("mesh", "a string", None),
        level=t.get("level", "an integer", 0, check=lambda v: v >= 0, allowed="an integer >= 0"),
        mesh_file=t.get("mesh_file", "a string", None),
        scheme=t.choice("scheme", SCHEMES, "fv"),
        degree=t.get("degree", "an integer", 1, check=lambda v: v in (1, 2), allowed="1 or 2"),
        integrator=t.choice("integrator", INTEGRATORS, "ssprk2"),
        cfl=t.get("cfl", "a number", 0.5, check=lambda c: 0 < c <= 1, allowed="0 < cfl <= 1"),
        time_tolerance=t.get("time_tolerance", "a number", 1e-4, check=_positive,
                             allowed="a number > 0"),
        stationary_tolerance=t.get("stationary_tolerance", "a number", 0.0,
                                   check=lambda v: _finite(v) and v >= 0,
                                   allowed="a number >= 0 (0: run to t_final)"),
        max_outflow=t.get("max_outflow", "a number", 1e-6, check=_positive,
                          allowed="a number > 0"),
        outputs=t.get("outputs", "an integer", 50, check=_positive, allowed="an integer >= 1"),
        snapshots=t.get("snapshots", "an integer", 6, check=lambda s: s >= 0,
                        allowed="an integer >= 0"),
        max_step=t.get("max_step", "a number", math.inf, check=_positive, allowed="a number > 0"),
        petsc=_petsc(petsc),
        compress_rtol=t.get("compress_rtol", "a number", None, check=lambda v: 0 < v < 1,
                            allowed="a number in (0, 1)"),
        checkpoint_every=_checkpoint_every(t),
    ))
    if petsc is not None:
        petsc.done()
    return settings


def _particles(t: _Table) -> ParticleSettings:
    return _build(t, lambda: ParticleSettings(
        n=tuple(t.get("n", "a list of integers", check=_positive, allowed="positive integers")),
        seeds=t.get("seeds", "an integer", 4, check=_positive, allowed="an integer >= 1"),
        dt=t.get("dt", "a number", 0.01, check=lambda v: _finite(v) and v > 0,
                 allowed="a finite number > 0"),
        integrator=t.choice("integrator", PARTICLE_INTEGRATORS, "rk4"),
        entropy=t.get("entropy", "an integer", 0, check=lambda v: v >= 0,
                      allowed="an integer >= 0"),
        batch=t.get("batch", "an integer", None, check=_positive, allowed="an integer >= 1"),
        rtol=t.get("rtol", "a number", 1e-6, check=lambda v: 0 < v < 1,
                   allowed="a number in (0, 1)"),
        checkpoint_every=_checkpoint_every(t),
    ))


class _Errors:
    """Collects the ConfigErrors of independent sections, to report them all at once."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def read(self, reader: Callable[[], Any]) -> Any:
        """reader(), or None after recording its ConfigError."""
        try:
            return reader()
        except ConfigError as err:
            self.messages.extend(str(err).splitlines())
            return None

    def raise_any(self) -> None:
        if len(self.messages) == 1:
            raise ConfigError(self.messages[0])
        if self.messages:
            raise ConfigError(f"{len(self.messages)} problems:\n  " + "\n  ".join(self.messages))


def _section(top: _Table, key: str, reader: Callable[[_Table], Any], required: bool = True
             ) -> Any:
    """Read section ``key`` with reader, then refuse its unknown keys."""
    table = top.table(key, required)
    if table is None:
        return None
    value = reader(table)
    table.done()
    return value


def parse(raw: dict[str, Any], base: Path = Path(".")) -> RunConfig:
    """Validate a config dict (as read from TOML) into a RunConfig.

    Every section is read; the errors of all sections are reported together (a section
    that depends on a broken one, e.g. [domain] on [unit], is judged once that one is
    right), then the checks across sections: those a run would otherwise fail at its start.
    """
    errors = _Errors()
    top = _Table(raw, "")
    name = errors.read(lambda: top.get(
        "name", "a string", "run", check=lambda v: _plain_name(v),
        allowed="a run name of letters, digits, '-', '_', '.' (no path: set output for "
                "that)")) or "run"
    output = Path(errors.read(lambda: top.get("output", "a string", f"runs/{name}"))
                  or f"runs/{name}")

    def problem_section(prob: _Table) -> tuple[float, float, float]:
        return (prob.get("t_final", "a number", check=lambda v: _finite(v) and v > 0,
                         allowed="a finite number > 0"),
                prob.get("beta", "a number", math.inf, check=_positive,
                         allowed="a number > 0 or inf"),
                prob.get("lambda", "a number", 0.0, check=lambda v: _finite(v) and v >= 0,
                         allowed="a finite number >= 0"))

    scalars = errors.read(lambda: _section(top, "problem", problem_section))
    unit = errors.read(lambda: _section(top, "unit", _unit))
    data = errors.read(lambda: _section(top, "data", lambda t: _data(t, base)))
    pde_table = errors.read(lambda: top.table("pde", required=False))
    particles = errors.read(lambda: _section(top, "particles", _particles, required=False))
    for key in ("target", "domain", "initial"):  # read below: they need [unit] and [data]
        if isinstance(raw, dict) and key not in raw:
            errors.read(lambda key=key: top.table(key))
        top.used.add(key)
    errors.read(lambda: top.done())
    if unit is None or data is None:
        errors.raise_any()
    if unit.data_dim is not None and data.dim != unit.data_dim:
        errors.messages.append(
            f"data: points have dimension {data.dim} but unit {unit.name!r} takes "
            f"{unit.data_dim}-dimensional x; match unit.dim to the data")
        errors.raise_any()
    target = errors.read(lambda: _section(top, "target", lambda t: _target(t, unit, data)))
    domain = errors.read(lambda: _section(top, "domain", lambda t: _domain(t, unit)))
    initial = errors.read(lambda: _section(
        top, "initial", lambda t: _initial(t, unit.param_dim, base)))
    if target is not None:
        errors.read(lambda: _check_target(target, data, raw["target"]))
    if isinstance(initial, CellDensity) and domain is not None:
        if errors.read(lambda: _wrap(lambda: initial.check_domain(domain)) or True) is None:
            initial = None
    if initial is not None and initial.dim != unit.param_dim:
        errors.messages.append(
            f"initial: density has dimension {initial.dim}; unit {unit.name!r} has "
            f"{unit.param_dim} parameters")
        initial = None
    pde = None
    if pde_table is not None and domain is not None:
        pde = errors.read(lambda: _read_pde(pde_table, domain, base))
    if None in (scalars, target, domain, initial):
        errors.raise_any()
    t_final, beta, lam = scalars
    if pde is not None:
        errors.read(lambda: _check_pde_fits(pde, domain, beta, initial))
    if particles is not None:
        errors.read(lambda: _check_particles_fit(particles, beta))
    errors.raise_any()
    problem = _build(_Table({}, "problem"), lambda: Problem(
        unit, data, target, domain, initial, beta=beta, lam=lam, t_final=t_final, name=name))
    return RunConfig(name, output, problem, pde, particles, raw)


def _wrap(action: Callable[[], Any]) -> Any:
    """action(); its ValueError (whose message names the field) as a ConfigError."""
    try:
        return action()
    except ValueError as err:
        raise ConfigError(str(err)) from err


def _read_pde(t: _Table, domain: Domain, base: Path) -> PDESettings:
    settings = _pde(t, domain)
    t.done()
    if settings.mesh_file is not None:
        path = Path(settings.mesh_file)
        path = path if path.is_absolute() else base / path
        _wrap(lambda: inspect_mesh_file(path))
        settings = replace(settings, mesh_file=str(path))
    if settings.mesh is not None:
        _wrap(lambda: reference_mesh_path(domain, settings.mesh, settings.level))
    return settings


def _check_target(target: targets.Target, data: quadrature.DataQuadrature,
                  table: dict[str, Any]) -> None:
    """The target must give finite values at the data points (named by its kind's key)."""
    key = {"expression": "expression", "teacher": "theta"}.get(table.get("kind"), "kind")
    try:
        target(data.points)
    except ValueError as err:
        raise ConfigError(f"target.{key}: {err}") from err


def _check_pde_fits(pde: PDESettings, domain: Domain, beta: float,
                    initial: density.Density) -> None:
    """What the PDE would refuse at its start: dg needs beta = inf; a checkpoint density
    needs the mesh it was written on."""
    if pde.scheme == "dg" and math.isfinite(beta):
        raise ConfigError(f'pde.scheme: "dg" is for noiseless dynamics (problem.beta = inf), '
                          f'got beta = {beta:g}; use scheme = "fv" (Scharfetter-Gummel)')
    if isinstance(initial, CellDensity):
        _wrap(lambda: initial.check_mesh_settings(asdict(pde)))


def _check_particles_fit(particles: ParticleSettings, beta: float) -> None:
    """What the particle simulator would refuse at its start."""
    if math.isfinite(beta) and particles.integrator != "euler":
        raise ConfigError(f"particles.integrator: noisy dynamics (problem.beta = {beta:g}) are "
                          f"integrated by Euler-Maruyama; got {particles.integrator!r}, set "
                          f'integrator = "euler"')
    if particles.batch is not None and particles.integrator == "adaptive":
        raise ConfigError('particles.integrator: online SGD (particles.batch) needs fixed '
                          'steps; use "euler" or "rk4", not "adaptive"')


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The TOML table in ``path``; a ConfigError naming the file when it is missing or
    not valid TOML (``what``: how the message calls the file)."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {str(path)!r} is a directory; give the TOML file") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{what} {str(path)!r} is not UTF-8 text (byte {err.start}); a config "
                          f"is a TOML text file") from None
    except OSError as err:
        raise ConfigError(f"{what} {str(path)!r} cannot be read: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err


def load(path: str | Path) -> RunConfig:
    """Read and validate a TOML config file."""
    return parse(read_toml(path), Path(path).parent)
