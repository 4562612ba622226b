"""An initial density given on a mesh of the domain, e.g. the state of an earlier PDE run.

rho_0 is known through its cells K (vertex coordinates in mesh coordinates) and the
masses m_K = int_K rho_0 (sum 1). Particles draw it exactly cell by cell
(``solver.model.sampling``): a cell with probability m_K, then a point uniform in K,
mapped to theta by ``domain.from_mesh``. That is rho_0 itself for a piecewise-constant
(DG0, finite-volume) density; for a DG1/DG2 density it is its piecewise-constant
projection (the cell averages m_K / |K|: the cells' masses are exact, the variation
inside a cell is not sampled). The PDE starts from the stored field itself
(``solver.pde.solve``), which needs the mesh it was written on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from solver.model.density import DomainDensity
from solver.model.domain import Box, Circle, Cylinder, Disc, Domain, Sphere
from solver.model.sampling import sample_cells

#: Cell averages above -ROUND_OFF (mass 1) count as 0: the PDE's implicit solve keeps
#: rho >= -1e-10 only (``solver.pde.solve.IMPLICIT_TOLERANCE``); below it is an error.
ROUND_OFF = 1e-10
#: The [pde] settings that decide the mesh and the space of the stored field.
MESH_SETTINGS = ("cells", "mesh", "level", "mesh_file", "scheme", "degree")
_DOMAINS = {cls.__name__: cls for cls in (Box, Circle, Cylinder, Disc, Sphere)}


def domain_record(domain: Domain) -> dict[str, object]:
    """The domain as JSON-able data: {"type": class name, its fields...}."""
    return {"type": type(domain).__name__, **asdict(domain)}


def domain_from_record(record: Mapping[str, object]) -> Domain:
    """The inverse of ``domain_record`` (lists back to tuples)."""
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items()
              if k != "type"}
    return _DOMAINS[str(record["type"])](**fields)


@dataclass(frozen=True, eq=False)
class CellDensity(DomainDensity):
    """rho_0 with cell masses ``masses`` (C,) on the cells ``vertices`` (C, V, gdim) of a
    ``cell_type`` mesh of ``domain``; read from ``file`` (``field``: a stored snapshot,
    None: the checkpoint's density). ``volumes`` (C,): |K|; ``settings``: the [pde]
    settings of the run that wrote it; ``sha256``: the file's checksum."""

    domain: Domain
    vertices: np.ndarray
    cell_type: str
    masses: np.ndarray
    volumes: np.ndarray
    file: Path
    field: str | None = None
    settings: Mapping[str, object] | None = None
    sha256: str = ""

    def __post_init__(self) -> None:
        where = f"initial.file: {self.file}" + (f" (field {self.field!r})" if self.field else "")
        masses = np.asarray(self.masses, dtype=float)
        volumes = np.asarray(self.volumes, dtype=float)
        if masses.ndim != 1 or volumes.shape != masses.shape or \
                np.shape(self.vertices)[:1] != masses.shape:
            raise ValueError(f"{where}: {np.shape(self.vertices)[:1]} cells, "
                             f"{masses.shape} masses, {volumes.shape} volumes do not match")
        if not np.all(np.isfinite(masses)):
            bad = np.flatnonzero(~np.isfinite(masses))
            raise ValueError(f"{where}: the density is not finite on {bad.size} cells "
                             f"(cell {bad[0]}); start from a checkpoint of a good run")
        if not np.all(np.isfinite(volumes) & (volumes > 0)):
            raise ValueError(f"{where}: cell volumes must be finite and > 0")
        total = masses.sum()
        if not total > 0:
            raise ValueError(f"{where}: the density has no mass (sum of cell masses "
                             f"{total:g}); start from a checkpoint with mass")
        average = masses / volumes / total
        low = int(np.argmin(average))
        if average[low] < -ROUND_OFF:
            raise ValueError(f"{where}: the density is negative (cell average "
                             f"{average[low]:.3g} on cell {low}, below -{ROUND_OFF:g}); start "
                             f"from a checkpoint of a run that kept rho >= 0")
        masses = np.clip(masses, 0.0, None)
        object.__setattr__(self, "masses", masses / masses.sum())
        object.__setattr__(self, "volumes", volumes)
        object.__setattr__(self, "vertices", np.asarray(self.vertices, dtype=float))
        object.__setattr__(self, "file", Path(self.file))

    @property
    def dim(self) -> int:
        return self.domain.param_dim

    def pdf(self, theta: np.ndarray) -> np.ndarray:
        raise NotImplementedError(
            f"initial.file: {self.file}: a density given on a mesh has no pointwise pdf; "
            "the PDE starts from the stored field (solver.pde.solve) and particles draw it "
            "cell by cell (sample_in)")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n exact draws: cells by mass, points uniform in a cell, theta = from_mesh."""
        return sample_cells(rng, n, self.vertices, self.masses, self.domain, self.cell_type)

    def check_domain(self, domain: Domain) -> None:
        """A ValueError naming initial.file unless ``domain`` is the one meshed in the file."""
        if domain == self.domain:
            return
        if domain.param_dim != self.dim:
            raise ValueError(
                f"initial.file: {self.file} holds a density of {self.dim} parameters (on the "
                f"{self.domain.describe()}), this problem has {domain.param_dim} (the "
                f"{domain.describe()}); start from a checkpoint of a run of this unit and domain")
        raise ValueError(
            f"initial.file: {self.file} holds a density on the {self.domain.describe()}, this "
            f"problem's domain is the {domain.describe()}; use the [domain] of the run that "
            "wrote it")

    def check_mesh_settings(self, settings: Mapping[str, object]) -> None:
        """A ValueError naming [pde] and initial.file unless ``settings`` (a run's [pde]
        settings as a dict) build the mesh and space the field was written on."""
        mine = dict(self.settings or {})
        keys = [k for k in MESH_SETTINGS if not (k == "degree" and settings["scheme"] != "dg")]
        differ = [k for k in keys if _plain(mine.get(k)) != _plain(settings[k])]
        if differ:
            got = ", ".join(f"{k} = {_plain(settings[k])!r}" for k in differ)
            want = ", ".join(f"{k} = {_plain(mine.get(k))!r}" for k in differ)
            raise ValueError(
                f"[pde]: {got}, but initial.file {self.file} was written with {want}; the PDE "
                f"starts from the stored field on the same mesh and space: use the [pde] "
                f"{'/'.join(MESH_SETTINGS)} of the run that wrote it")


def _plain(value: object) -> object:
    """Tuples as lists (JSON round trip of the settings)."""
    return list(value) if isinstance(value, tuple) else value
