"""What a run would refuse at its start, checked when the config is read (numpy only).

Each check raises a ConfigError naming the field (or a ValueError whose message names it),
so ``meanfield check`` refuses what ``meanfield pde``/``run`` would refuse only after making
the run directory: the scheme and the noise, the cell counts the mesh builders take, the
reference meshes and mesh files, the checkpoint a run starts from, what the particle
integrators accept.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from solver.errors import ConfigError
from solver.mesh_files import inspect_mesh_file, reference_mesh_path
from solver.model.cell_density import CellDensity
from solver.model.density import Density
from solver.model.domain import Box, Circle, Cylinder, Disc, Domain, Sphere
from solver.model.quadrature import DataQuadrature
from solver.model.targets import Target
from solver.model.units import Unit
from solver.settings import ParticleSettings, PDESettings

#: The finest icosphere level the mesh builder makes (20 * 4^8 cells).
MAX_SPHERE_LEVEL = 8


def _cells_rule(domain: Domain) -> tuple[int, list[int], str]:
    """(how many counts, the least value of each, what they are) of pde.cells."""
    if isinstance(domain, Box):
        return domain.param_dim, [1] * domain.param_dim, "cells per axis, each >= 1"
    if isinstance(domain, Disc):
        return 1, [1], "[rings], >= 1 (6 rings^2 triangles)"
    if isinstance(domain, Circle):
        return 1, [3], "[edges], >= 3"
    if isinstance(domain, Cylinder):
        return 2, [1, 3], "[cells along c >= 1, cells around the angle >= 3]"
    return 1, [0], f"[icosphere level], 0..{MAX_SPHERE_LEVEL} (20 * 4^level triangles)"


def _has_mesh(domain: Domain) -> str:
    """Why the PDE cannot mesh this domain ('' when it can)."""
    if isinstance(domain, Box) and domain.param_dim > 3:
        return (f"the PDE meshes boxes of 1 to 3 parameters, this box has {domain.param_dim}; "
                f"drop [pde] and simulate particles only (particle_check.particles)")
    if isinstance(domain, Sphere) and domain.param_dim != 3:
        return (f"the PDE meshes the sphere S^2 only (k = 3 parameters), this sphere has "
                f"k = {domain.param_dim}; drop [pde] and simulate particles only")
    return ""


def check_mesh_source(v: dict[str, Any], given: set[str], domain: Domain) -> None:
    """[pde]: one mesh source that fits the domain; the scheme's own keys."""
    problems = []
    sources = [key for key in ("cells", "mesh", "mesh_file") if v[key] not in ((), None)]
    if len(sources) != 1:
        problems.append("pde: give exactly one of cells, mesh (with level) or mesh_file"
                        + (f"; got {', '.join(sources)}" if sources else ""))
    if "level" in given and v["mesh"] is None:
        problems.append(f"pde.level: got {v['level']}; a level is for a reference mesh: "
                        f"give pde.mesh too (or drop level)")
    if v["scheme"] == "fv" and v["degree"] != 1:
        problems.append(f'pde.degree: got {v["degree"]}; the degree is for scheme = "dg" (fv '
                        f'is first order): drop degree or set scheme = "dg"')
    if v["scheme"] == "dg" and v["integrator"] in ("implicit", "mprk22"):
        problems.append(f'pde.integrator: "{v["integrator"]}" needs scheme "fv"; use "ssprk3" '
                        'for dg')
    if v["scheme"] == "dg" and v["degree"] not in (1, 2):
        problems.append(f'pde.degree: got {v["degree"]}; dg takes degree 1 or 2 (degree 3..8 '
                        'is for scheme "lagrangian")')
    if (v["scheme"] == "lagrangian") != (v["integrator"] == "dopri5"):
        problems.append(f'pde.integrator: scheme "lagrangian" moves its nodes with integrator '
                        f'"dopri5", and only it does; got scheme "{v["scheme"]}" with '
                        f'"{v["integrator"]}": set both or neither')
    if why := _has_mesh(domain):
        problems.append(f"pde: {why}")
    elif v["cells"]:
        count, least, what = _cells_rule(domain)
        cells = list(v["cells"])
        top = MAX_SPHERE_LEVEL if isinstance(domain, Sphere) else math.inf
        if len(cells) != count or any(not lo <= c <= top for c, lo in zip(cells, least,
                                                                         strict=False)):
            problems.append(f"pde.cells: got {cells}; a mesh of the {domain.describe()} takes "
                            f"{count} number(s): {what}")
    if problems:
        raise ConfigError("\n".join(problems))


def mesh_fits(settings: PDESettings, domain: Domain) -> PDESettings:
    """The reference mesh exists at its level and fits the domain; a mesh file exists, is
    XDMF or gmsh (the gmsh module installed) and is well formed. Returns the settings."""
    if settings.mesh is not None:
        reference_mesh_path(domain, settings.mesh, settings.level)
    if settings.mesh_file is not None:
        path = Path(settings.mesh_file)
        vertices = inspect_mesh_file(path)
        if vertices is not None:
            _spans_domain(vertices, domain, path)
        if path.suffix.lower() == ".msh" and importlib.util.find_spec("gmsh") is None:
            raise ConfigError(f"pde.mesh_file: reading the gmsh file {path} needs the gmsh "
                              f"Python module: pip install gmsh (or write the mesh as XDMF)")
    return settings


#: How far the vertices of an inscribed polygon may stay inside a curved boundary, relative
#: to its radius (1 - cos(pi/5) for a pentagon); flat boundaries: 1e-9 of the extent.
CURVED_SLACK = 0.3


def _bounds(domain: Domain) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower, upper, slack) of the domain in mesh coordinates."""
    if isinstance(domain, Box):
        lo, hi = np.array(domain.lower, float), np.array(domain.upper, float)
        return lo, hi, 1e-9 * (hi - lo)
    if isinstance(domain, Disc):
        c = np.array(domain.center, float)
        return c - domain.radius, c + domain.radius, np.full(2, CURVED_SLACK * domain.radius)
    if isinstance(domain, Cylinder):
        span = domain.upper - domain.lower
        return (np.array([domain.lower, -1, -1.0]), np.array([domain.upper, 1, 1.0]),
                np.array([1e-9 * span, CURVED_SLACK, CURVED_SLACK]))
    n = domain.embedding_dim  # circle, sphere: the unit circle or sphere
    return -np.ones(n), np.ones(n), np.full(n, CURVED_SLACK)


def _spans_domain(vertices: np.ndarray, domain: Domain, path: Path) -> None:
    """A mesh file is used as it is (a reference mesh is mapped onto the domain): its
    vertices must span the domain's extent, coordinate by coordinate."""
    want = domain.embedding_dim
    extra = vertices[:, want:]
    if vertices.shape[1] < want or (extra.size and np.abs(extra).max() > 0):
        raise ConfigError(f"pde.mesh_file: {path} has vertices in R^{vertices.shape[1]}, the "
                          f"{domain.describe()} is meshed in R^{want}")
    lo, hi, slack = _bounds(domain)
    got_lo, got_hi = vertices[:, :want].min(axis=0), vertices[:, :want].max(axis=0)
    if np.any(np.abs(got_lo - lo) > slack) or np.any(np.abs(got_hi - hi) > slack):
        def box(a, b):
            return " x ".join(f"[{x:.4g}, {y:.4g}]" for x, y in zip(a, b, strict=True))
        raise ConfigError(f"pde.mesh_file: {path} spans {box(got_lo, got_hi)}, but the "
                          f"{domain.describe()} spans {box(lo, hi)} in mesh coordinates; a "
                          f"mesh file is used as it is (pde.mesh is mapped onto the domain): "
                          f"mesh the domain itself")


def check_particle_steps(v: dict[str, Any]) -> None:
    """[particles]: online SGD takes fixed steps."""
    if v["batch"] is not None and v["integrator"] == "adaptive":
        raise ConfigError('particles.batch: SGD takes fixed steps; use integrator "euler" or '
                          '"rk4", not "adaptive"')


def data_fits(unit: Unit, data: DataQuadrature) -> None:
    if unit.data_dim is not None and data.dim != unit.data_dim:
        raise ConfigError(f"data: points have dimension {data.dim} but unit {unit.name!r} takes "
                          f"{unit.data_dim}-dimensional x; match unit.dim to the data")


def target_finite(target: Target, data: DataQuadrature, kind: str) -> None:
    """The target gives finite values at the data points (named by its kind's key)."""
    key = {"expression": "expression", "teacher": "theta"}.get(kind, "kind")
    try:
        target(data.points)
    except ValueError as err:
        raise ConfigError(f"target.{key}: {err}") from err


def initial_fits(initial: Density, domain: Domain, unit: Unit) -> None:
    """rho_0 has the unit's k parameters; a checkpoint density lives on this domain."""
    if isinstance(initial, CellDensity):
        initial.check_domain(domain)
    if initial.dim != unit.param_dim:
        raise ConfigError(f"initial: density has dimension {initial.dim}; unit {unit.name!r} "
                          f"has {unit.param_dim} parameters")


def pde_fits(pde: PDESettings, beta: float, initial: Density,
             birth_death: float = 0.0) -> None:
    """dg needs beta = inf; a checkpoint density needs the mesh it was written on; birth-death
    needs an explicit integrator."""
    if birth_death and not pde.explicit:
        raise ConfigError(f"pde.integrator: {pde.integrator!r} does not take the birth-death "
                          f"reaction yet (problem.birth_death = {birth_death:g}); use "
                          '"ssprk2" or "ssprk3"')
    if pde.scheme in ("dg", "lagrangian") and math.isfinite(beta):
        raise ConfigError(f'pde.scheme: "{pde.scheme}" is for noiseless dynamics (problem.beta '
                          f'= inf), got beta = {beta:g}; use scheme = "fv" (Scharfetter-Gummel)')
    if pde.scheme == "lagrangian" and birth_death:
        raise ConfigError(f'pde.scheme: "lagrangian" keeps the node weights fixed and has no '
                          f'birth-death reaction (problem.birth_death = {birth_death:g}); use '
                          '"fv" or "dg"')
    if pde.scheme == "lagrangian" and isinstance(initial, CellDensity):
        raise ConfigError('initial: a checkpoint density lives on its mesh; scheme '
                          '"lagrangian" starts from an analytic density (use "fv" or "dg")')
    if isinstance(initial, CellDensity):
        initial.check_mesh_settings(asdict(pde))


def particles_fit(particles: ParticleSettings, beta: float, target_kind: str,
                  data: DataQuadrature, birth_death: float = 0.0) -> None:
    """What the particle simulator would refuse at its start: noise needs Euler-Maruyama;
    online SGD samples the data law and evaluates the target at the samples; birth-death
    needs fixed-step full-data GD."""
    problems = []
    if birth_death and (particles.integrator == "adaptive" or particles.batch is not None):
        problems.append(f"particles.integrator: birth-death (problem.birth_death = "
                        f"{birth_death:g}) needs fixed-step full-data GD for now: integrator "
                        f'"euler" or "rk4" and no batch')
    if math.isfinite(beta) and particles.integrator != "euler":
        problems.append(f"particles.integrator: noisy dynamics (problem.beta = {beta:g}) are "
                        f"integrated by Euler-Maruyama; got {particles.integrator!r}, set "
                        f'integrator = "euler"')
    if particles.batch is not None and target_kind == "data":
        problems.append('particles.batch: online SGD needs y at fresh samples, but target kind '
                        '"data" knows y only at the data points; drop batch (full-data GD) '
                        'or give an expression or teacher target')
    if particles.batch is not None and not callable(getattr(data, "sampler", None)):
        problems.append(f"particles.batch: online SGD draws fresh samples, but the data "
                        f"{data.name!r} has no law to sample; drop batch")
    if problems:
        raise ConfigError("\n".join(problems))


def limit_fits(beta: float, initial: Density, birth_death: float = 0.0) -> None:
    """The RQMC reference follows noiseless characteristics with fixed equal weights from
    an initial density it can map Sobol' points through."""
    from solver.model.density import Gaussian, GaussianVonMises, Uniform

    problems = []
    if math.isfinite(beta):
        problems.append(f"[limit]: the RQMC reference follows the noiseless characteristics "
                        f"(problem.beta = inf), got beta = {beta:g}; drop [limit] or the noise")
    if birth_death:
        problems.append(f"[limit]: the RQMC nodes keep equal weights and have no birth-death "
                        f"(problem.birth_death = {birth_death:g}); drop [limit] or set 0")
    if not isinstance(initial, Gaussian | Uniform | GaussianVonMises):
        problems.append(f"[limit]: the RQMC nodes need an initial density with independent "
                        f"axes (gaussian, uniform, gaussian_von_mises), got "
                        f"{type(initial).__name__}; drop [limit]")
    if problems:
        raise ConfigError("\n".join(problems))
