"""TOML config -> Problem and run settings, validated before any work starts.

Configs are read through one declarative schema (``solver/config_schema.py``: each key's
type, default, constraint and meaning), which also writes the reference: docs/config.md,
``explain(topic)`` (``meanfield check --explain``). ``parse`` reports every problem of a
config at once, one line each naming the field (``section.key``), the value and what is
allowed; a section that depends on another (lists of k numbers on [unit], [pde] on
[domain]) is judged in full once that one is right. Then ``solver.config_checks`` refuses
what a run would refuse at its start (dg with noise, a cell count the mesh builder refuses,
SGD on tabulated targets, ...), so ``check``, ``pde``, ``run`` and ``sweep plan`` share one
validation. The layout (see examples/*.toml and docs/config.md):

    name, output            top level: run name, run directory
    [problem]               t_final, beta (inf = noiseless), lambda, loss (+ its parameter)
    [unit] [data] [target] [domain] [initial]     kind + its keys
    [pde]  [pde.petsc]      mesh, scheme, integrator, outputs; PETSc options
    [particles]             widths, seeds, step, integrator, SGD batch
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from solver import config_checks as checks
from solver.checkpoint_file import load_cell_density
from solver.config_reference import explain, reference_markdown
from solver.config_schema import PETSC, SECTIONS, TOP
from solver.errors import CheckpointError, ConfigError
from solver.model import density, losses, quadrature, reduction, targets, units
from solver.model.domain import Box, Circle, Cylinder, Disc, Domain, Sphere
from solver.model.problem import Problem
from solver.schema import Reader
from solver.settings import LimitSettings, ParticleSettings, PDESettings

__all__ = ["ConfigError", "RunConfig", "explain", "load", "parse", "read_toml",
           "reference_markdown"]


@dataclass
class RunConfig:
    """A validated config: the Problem and the settings of its runs."""

    name: str
    output: Path
    problem: Problem
    pde: PDESettings | None
    particles: ParticleSettings | None
    source: dict[str, Any]
    limit: LimitSettings | None = None

    def require(self, *sections: str) -> None:
        """ConfigError unless the config has these optional sections (``pde``,
        ``particles``, ``limit``), for a command that needs them, e.g. ``require("pde")``."""
        missing = [s for s in sections if getattr(self, s) is None]
        if missing:
            raise ConfigError("; ".join(f"[{s}]: missing section" for s in missing))


def _path(value: str, base: Path) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base / path


# -- one builder per kind: the values read through the schema -> the object ---------------

def _unit(kind: str, v: dict[str, Any]) -> units.Unit:
    if kind == "linear":
        return units.LinearUnit(v["dim"])
    if kind == "rbf":
        return units.RBFUnit(v["dim"], v["width"])
    if kind == "circle_rbf":
        return units.CircleRBFUnit(v["width"])
    if kind == "circle_bump":
        return units.CircleBumpUnit(v["width"], v["amplitude"])
    if kind == "neuron":
        return units.NeuronUnit(v["dim"], v["activation"], output_weight=v["output_weight"])
    if kind == "reduced_ridge" and v["radial_u"]:
        return reduction.TwoRadiiRidgeUnit(v["dim"], v["k"], v["activation"], v["output_weight"])
    if kind == "reduced_ridge":
        if v["table_step"] != 0.05:
            raise ConfigError("unit.table_step: only with radial_u = true")
        return reduction.ReducedRidgeUnit(v["dim"], v["k"], v["activation"], v["output_weight"])
    return units.FixedOutputNeuron(v["dim"], v["activation"], bias=v["bias"])


def _data(kind: str, v: dict[str, Any], base: Path,
          unit: units.Unit | None = None) -> quadrature.DataQuadrature:
    if kind == "reduced":
        return _reduced_data(v, unit)
    if kind == "gauss_legendre":
        return quadrature.gauss_legendre(v["lower"], v["upper"], v["n"])
    if kind == "gauss_hermite":
        return quadrature.gauss_hermite(v["mean"], v["std"], v["n"])
    if kind == "circle_lattice":
        return quadrature.circle_lattice(v["points"], v["offset"])
    if kind == "sphere_product":
        return quadrature.sphere_product(v["n"])
    if kind == "monte_carlo":
        params = {key: v[key] for key in ("lower", "upper", "mean", "std", "dim") if key in v}
        return quadrature.monte_carlo(v["law"], v["points"], v["seed"], **params)
    path = _path(v["path"], base)
    if not path.exists():
        raise ConfigError(f"data.path: file {str(path)!r} does not exist")
    return quadrature.from_file(path)


def _reduced_unit(unit: units.Unit | None, key: str) -> reduction.ReducedRidgeUnit:
    if not isinstance(unit, reduction.ReducedRidgeUnit):
        name = getattr(unit, "name", None)
        raise ConfigError(f'{key}: needs [unit] kind = "reduced_ridge", got unit {name!r}')
    return unit


def _reduced_noiseless(unit: units.Unit, beta: float) -> None:
    if isinstance(unit, reduction.ReducedRidgeUnit) and beta != float("inf"):
        raise ConfigError(f"problem.beta: got {beta:g}; unit 'reduced_ridge' is for noiseless "
                          f"dynamics (beta = inf): the noise of w_perp would add the drift "
                          f"(d - k - 1)/(beta q) in q, not modelled")


def _reduced_data(v: dict[str, Any], unit: units.Unit | None) -> quadrature.DataQuadrature:
    unit = _reduced_unit(unit, 'data.kind: "reduced"')
    radial = isinstance(unit, reduction.TwoRadiiRidgeUnit)
    if v["law"] == "sphere":
        law = reduction.DataLaw(unit.d, unit.k, "sphere", radius=v["radius"], radial_u=radial)
    else:
        law = reduction.DataLaw(unit.d, unit.k, classes=(reduction.GaussianClass(
            1.0, 0.0, v["scale_u"], v["scale_perp"]),), radial_u=radial)
    return reduction.reduced_quadrature(law, v["nodes_u"], v.get("nodes_r", 40))


def _target(kind: str, v: dict[str, Any], unit: units.Unit,
            data: quadrature.DataQuadrature) -> targets.Target:
    if kind == "expression":
        try:
            return targets.ExpressionTarget(v["expression"], data.dim)
        except ValueError as err:
            raise ConfigError(f"target.expression: {err}") from err
    if kind == "teacher":
        return targets.TeacherTarget(unit, v["theta"], v["coefficients"])
    if data.targets is None:
        raise ConfigError("target.kind: 'data' needs a data file with a y column")
    return targets.TabulatedTarget(data.points, data.targets)


def _domain(kind: str, v: dict[str, Any], unit: units.Unit) -> Domain:
    k = unit.param_dim
    domain = {"box": lambda: Box(tuple(v["lower"]), tuple(v["upper"])),
              "disc": lambda: Disc(tuple(v["center"]), v["radius"]),
              "circle": Circle,
              "cylinder": lambda: Cylinder(v["lower"], v["upper"]),
              "sphere": lambda: Sphere(k)}[kind]()
    if domain.param_dim != k:
        raise ConfigError(f"domain.kind: a {kind} has {domain.param_dim} parameters but unit "
                          f"{unit.name!r} has {k} ({', '.join(unit.param_names)})")
    if isinstance(unit, reduction.ReducedRidgeUnit) and (
            kind != "box" or domain.lower[-1] < 0):
        raise ConfigError(f"domain.lower: unit 'reduced_ridge' needs a box with q = |w_perp| "
                          f">= 0 (last lower bound 0), got the {domain.describe()}")
    if isinstance(unit, reduction.TwoRadiiRidgeUnit) and domain.lower[-2] < 0:
        raise ConfigError(f"domain.lower: unit 'reduced_ridge' with radial_u needs a = |P_U w| "
                          f">= 0 (lower bounds of a and q 0), got the {domain.describe()}")
    return domain


def _initial(kind: str, v: dict[str, Any], dim: int, base: Path,
             unit: units.Unit | None = None) -> density.Density:
    if kind == "checkpoint":
        path = _path(v["file"], base)
        try:
            return load_cell_density(path, v["field"])
        except CheckpointError as err:
            raise ConfigError(f"initial.file: {err}") from err
        except ValueError as err:  # names initial.file or initial.field
            raise ConfigError(str(err)) from err
    if kind == "lifted_gaussian":
        red = _reduced_unit(unit, 'initial.kind: "lifted_gaussian"')
        radial = isinstance(red, reduction.TwoRadiiRidgeUnit)
        a_mean = [0.0] * red.k if v["a_mean"] is None else v["a_mean"]
        if len(a_mean) != red.k:
            raise ConfigError(f"initial.a_mean: got {a_mean}; expected k = {red.k} numbers")
        if radial and any(a_mean):
            raise ConfigError(f"initial.a_mean: got {a_mean}; radial_u needs P_U w centred "
                              f"(zeros)")
        w_std = red.d ** -0.5 if v["w_std"] is None else v["w_std"]
        return reduction.LiftedGaussian(red.d, red.k, red.output_weight is None, a_mean,
                                        [w_std] * red.k, w_std, v["c_mean"], v["c_std"],
                                        radial_u=radial)
    if kind == "uniform_sphere":
        return density.UniformSphere(dim)
    if kind == "von_mises_fisher":
        return density.VonMisesFisher(v["mean_direction"], v["kappa"])
    if kind == "gaussian":
        return density.Gaussian(v["mean"], v["std"])
    if kind == "von_mises":
        return density.GaussianVonMises(v["mean"], v["std"], v["kappa"])
    if kind == "uniform":
        bad = [i for i, (lo, hi) in enumerate(zip(v["lower"], v["upper"], strict=False))
               if not float(lo) < float(hi)]
        if bad:
            raise ConfigError(f"initial.lower, initial.upper: got lower {list(v['lower'])}, "
                              f"upper {list(v['upper'])}; expected lower < upper in every "
                              f"coordinate (not in coordinate {', '.join(map(str, bad))})")
        return density.Uniform(v["lower"], v["upper"])
    means, stds, weights = v["means"], v["stds"], v["weights"]
    if len(stds) != len(means):
        raise ConfigError(f"initial.stds: need one std list per mean ({len(means)})")
    if weights is None:
        weights = [1.0 / len(means)] * len(means)
    elif len(weights) != len(means):
        raise ConfigError(f"initial.weights: got {weights}; expected numbers >= 0 summing to 1 "
                          f"(one per mean: {len(means)})")
    return density.GaussianMixture(
        tuple(density.Gaussian(m, s) for m, s in zip(means, stds, strict=True)), weights)


def _loss(v: dict[str, Any], target: targets.Target,
          data: quadrature.DataQuadrature) -> losses.Loss:
    """[problem] loss (+ its parameter), refused when the targets do not suit it."""
    loss = losses.make_loss(v["loss"], huber_delta=v.get("huber_delta", 1.0),
                            smooth_hinge_gamma=v.get("smooth_hinge_gamma", 1.0))
    if loss.labels:
        y = data.targets if data.targets is not None else target(data.points)
        try:
            loss.check_targets(y)
        except ValueError as err:
            raise ConfigError(f"problem.{err}") from None
    return loss


def _pde(v: dict[str, Any], given: set[str], domain: Domain, base: Path) -> PDESettings:
    checks.check_mesh_source(v, given, domain)
    petsc = tuple((key.lstrip("-"), str(value)) for key, value in (v["petsc"] or {}).items())
    settings = {key: value for key, value in v.items() if key != "petsc"}
    if settings["mesh_file"] is not None:
        settings["mesh_file"] = str(_path(settings["mesh_file"], base))
    settings["cells"] = tuple(settings["cells"])
    return checks.mesh_fits(PDESettings(**settings, petsc=petsc), domain)


def _particles(v: dict[str, Any]) -> ParticleSettings:
    checks.check_particle_steps(v)
    return ParticleSettings(**{**v, "n": tuple(v["n"])})


# -- the config ---------------------------------------------------------------------------

class _Sections:
    """The tables of a config, each read through its Section (or its kind's)."""

    def __init__(self, raw: dict[str, Any], reader: Reader):
        self.raw, self.r = raw, reader
        self.tables = {key: reader.table(raw, key, required)
                       for key, (_, required, _) in SECTIONS.items()}

    def read(self, key: str, sizes: dict[str, tuple[int, str]] | None = None
             ) -> tuple[str | None, dict[str, Any]] | None:
        """(kind, values) of section ``key``, or None (problems recorded, or no table)."""
        table = self.tables[key]
        if table is None:
            return None
        spec, _, default = SECTIONS[key]
        if isinstance(spec, dict):
            spec = self.r.kind(table, key, spec, default)
            if spec is None:
                return None
        values = self.r.section(spec, table, key, sizes, also=("kind",) if spec.kind else ())
        if key == "pde" and isinstance(table.get("petsc"), dict):
            if self.r.section(PETSC, table["petsc"], "pde.petsc") is None:
                values = None
        return None if values is None else (spec.kind, values)


def _sizes(unit: units.Unit) -> dict[str, tuple[int, str]]:
    """What the lists of k and d numbers must hold for this unit."""
    sizes = {"k": (unit.param_dim, f"parameter of unit {unit.name!r} "
                                   f"({', '.join(unit.param_names)})")}
    if unit.data_dim is not None:
        sizes["d"] = (unit.data_dim, f"data dimension (d = {unit.data_dim}, the unit's dim)")
    return sizes


def parse(raw: dict[str, Any], base: Path = Path(".")) -> RunConfig:
    """Validate a config dict (as read from TOML) into a RunConfig; one ConfigError lists
    every problem (paths in the config are relative to ``base``)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a table, got {raw!r}")
    r = Reader()
    top = r.section(TOP, raw, "", also=tuple(SECTIONS)) or {}
    name = top.get("name") or "run"
    output = Path(top.get("output") or f"runs/{name}")
    s = _Sections(raw, r)

    scalars = s.read("problem")
    unit_read = s.read("unit")
    unit = unit_read and r.build("unit", lambda: _unit(*unit_read))
    sizes = _sizes(unit) if unit else None
    read = {key: s.read(key, sizes) for key in ("data", "target", "domain", "initial", "pde",
                                                "particles", "limit")}
    data = read["data"] and r.build("data", lambda: _data(*read["data"], base, unit))
    particles = read["particles"] and r.build("", lambda: _particles(read["particles"][1]))
    limit = read["limit"] and LimitSettings(**{**read["limit"][1],
                                                "nodes": tuple(read["limit"][1]["nodes"])})
    if unit is None or data is None:
        r.raise_any()
    r.build("", lambda: checks.data_fits(unit, data))
    r.raise_any()

    target = read["target"] and r.build("target", lambda: _target(*read["target"], unit, data))
    domain = read["domain"] and r.build("domain", lambda: _domain(*read["domain"], unit))
    initial = read["initial"] and r.build(
        "initial", lambda: _initial(*read["initial"], unit.param_dim, base, unit))
    if target is not None:
        r.build("", lambda: checks.target_finite(target, data, read["target"][0]))
    if initial is not None and domain is not None:
        if r.build("", lambda: checks.initial_fits(initial, domain, unit) or True) is None:
            initial = None
    pde = None
    if read["pde"] and domain is not None:
        pde = r.build("", lambda: _pde(read["pde"][1], set(s.tables["pde"]), domain, base))
    if None in (scalars, target, domain, initial):
        r.raise_any()
    if isinstance(unit, reduction.TwoRadiiRidgeUnit) and unit_read[1]["table_step"] > 0:
        # the (alpha, beta) = (a |x_U|, q |x_perp|) the data and the box can meet
        top = np.abs(data.points[:, :2]).max(axis=0) * np.abs(
            np.array([domain.lower[-2:], domain.upper[-2:]])).max(axis=0)
        if top.min() > 0:
            unit.table = tuple(float(v) for v in top)
            unit.table_step = unit_read[1]["table_step"]
    t_final, beta, lam = (scalars[1][key] for key in ("t_final", "beta", "lambda"))
    loss = r.build("", lambda: _loss(scalars[1], target, data))
    r.build("", lambda: _reduced_noiseless(unit, beta))
    if pde is not None:
        r.build("", lambda: checks.pde_fits(pde, beta, initial, scalars[1]["birth_death"]))
    if particles is not None:
        r.build("", lambda: checks.particles_fit(particles, beta, read["target"][0], data,
                                                 scalars[1]["birth_death"]))
    if limit is not None:
        r.build("", lambda: checks.limit_fits(beta, initial, scalars[1]["birth_death"]))
    r.raise_any()
    problem = r.build("", lambda: Problem(unit, data, target, domain, initial, beta=beta,
                                          lam=lam, t_final=t_final, name=name, loss=loss,
                                          birth_death=scalars[1]["birth_death"]))
    r.raise_any()
    return RunConfig(name, output, problem, pde, particles, raw, limit)


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

