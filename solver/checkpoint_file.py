"""The checkpoint file: its format, its checksum and verified reading (numpy and h5py only),
and the density it holds as an initial density (``load_cell_density``).

Layout (written by ``solver.pde.checkpoint.write_checkpoint``):

    /values            (n_cells, dofs_per_cell * bs) float64, row = original cell index
    /dof_coordinates   (n_cells, dofs_per_cell, gdim) float64, where each dof sits
    /fields/<name>     more functions of the same space, laid out like /values
                       (e.g. the density at the snapshot times)
    /arrays/<name>     float64 arrays: global ones (the time series so far) and cell-wise
                       ones ordered by original cell index, e.g. the mesh a particle
                       sampler needs without DOLFINx (``CELL_VERTICES``, ``DOF_INTEGRALS``)
    attributes         format, format_version, element, cell_type, gdim, n_cells,
                       dofs_per_cell, block_size, function_name, fields, arrays (JSON
                       lists of names), meta (JSON: t, step, dt, settings, domain, ...)
                       and sha256

``sha256`` is the SHA-256 of a canonical header (every other attribute) followed by the
shape and bytes of every dataset; ``read_checkpoint_file`` refuses a file whose
checksum, format or data types do not match (``CheckpointError``). Checkpoints written
before the mesh arrays and meta.domain existed are still version 2: they restart their
run, but ``load_cell_density`` refuses them with the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from solver.errors import CheckpointError
from solver.model.cell_density import CellDensity, domain_from_record

FORMAT = "meanfield-checkpoint"
VERSION = 2
#: Header attributes covered by the checksum, in this order.
HEADER_KEYS = ("format", "format_version", "element", "cell_type", "gdim", "n_cells",
               "dofs_per_cell", "block_size", "function_name", "fields", "arrays", "meta")
#: (n_cells, vertices per cell, gdim): cell vertices in mesh coordinates, DOLFINx order.
CELL_VERTICES = "mesh.cell_vertices"
#: (n_cells, dofs_per_cell): int_K phi_i, so a field's cell masses are rows . integrals.
DOF_INTEGRALS = "mesh.dof_integrals"
#: The meta entry with the parameter domain the mesh is of (``domain_record``).
DOMAIN = "domain"


def checksum(header: dict[str, object], datasets: list[np.ndarray]) -> str:
    """SHA-256 (hex) of the header's ``HEADER_KEYS`` and each dataset's shape and bytes."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[k, header[k]] for k in HEADER_KEYS]).encode())
    for arr in datasets:
        digest.update(json.dumps(list(np.shape(arr))).encode())
        digest.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
    return digest.hexdigest()


@dataclass
class CheckpointFile:
    """A verified checkpoint file: header attributes, the JSON meta and every dataset."""

    path: Path
    header: dict[str, object]
    meta: dict
    values: np.ndarray
    dof_coordinates: np.ndarray
    fields: dict[str, np.ndarray]
    arrays: dict[str, np.ndarray]


def read_checkpoint_file(path: str | os.PathLike) -> CheckpointFile:
    """Read ``path`` and verify its format, version, data types and checksum.

    Raises ``CheckpointError`` naming the file for a missing, truncated, corrupted or
    foreign file. Layout checks against a mesh are the caller's.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        with h5py.File(path, "r") as h5:
            attrs = {k: h5.attrs[k] for k in h5.attrs}
            missing = [k for k in (*HEADER_KEYS, "sha256") if k not in attrs]
            if missing:
                raise CheckpointError(f"{path}: not a checkpoint, missing attributes {missing}")
            names = {key: json.loads(attrs[key]) for key in ("fields", "arrays")}
            cellwise = [h5["values"][()], h5["dof_coordinates"][()],
                        *(h5[f"fields/{name}"][()] for name in names["fields"])]
            globals_ = [h5[f"arrays/{name}"][()] for name in names["arrays"]]
    except CheckpointError:
        raise
    except Exception as exc:  # h5py raises OSError/KeyError/... for broken files
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({exc})") from exc
    header = {k: (v.decode() if isinstance(v, bytes) else
                  v.item() if isinstance(v, np.generic) else v) for k, v in attrs.items()}
    if header["format"] != FORMAT:
        raise CheckpointError(f"{path}: format {header['format']!r}, not {FORMAT}")
    if header["format_version"] != VERSION:
        raise CheckpointError(f"{path}: format version {header['format_version']} is not "
                              f"the supported {VERSION}")
    if any(a.dtype != np.float64 for a in cellwise + globals_):
        raise CheckpointError(f"{path}: data types {[a.dtype for a in cellwise + globals_]} "
                              "are not all float64")
    if checksum(header, cellwise + globals_) != header["sha256"]:
        raise CheckpointError(f"{path}: SHA-256 checksum mismatch: the file is corrupted")
    try:
        meta = json.loads(header["meta"])
    except ValueError as exc:
        raise CheckpointError(f"{path}: meta is not JSON ({exc})") from exc
    return CheckpointFile(path, header, meta, cellwise[0], cellwise[1],
                          dict(zip(names["fields"], cellwise[2:], strict=True)),
                          dict(zip(names["arrays"], globals_, strict=True)))


def load_cell_density(path: str | os.PathLike, field: str | None = None) -> CellDensity:
    """The density in a verified checkpoint as a ``CellDensity``: the checkpoint's density
    (``field`` None) or the stored field ``field`` (e.g. "snapshot2"); cell masses
    m_K = sum_i values[K, i] int_K phi_i.

    CheckpointError naming the file for a broken file or one written before checkpoints
    carried the mesh (it still resumes its own run); ValueError naming initial.field for
    a field the file does not hold, naming initial.file for a negative or massless density.
    """
    stored = read_checkpoint_file(path)
    missing = [*(f"/arrays/{k}" for k in (CELL_VERTICES, DOF_INTEGRALS)
                 if k not in stored.arrays), *([] if DOMAIN in stored.meta else ["meta.domain"])]
    if missing:
        raise CheckpointError(
            f"{path}: this checkpoint has no {', '.join(missing)} (written before checkpoints "
            "carried the mesh), so it cannot be an initial density; rerun the PDE run that "
            "wrote it with this version (meanfield pde --force, or --resume if it was "
            "interrupted) to write a checkpoint that carries them")
    if field is not None and field not in stored.fields:
        raise ValueError(f"initial.field: {field!r} is not in {path}; stored fields: "
                         f"{', '.join(stored.fields) or 'none'} (snapshot<i> is the density "
                         f"at t = {stored.meta.get('snapshot_times')}[i])")
    values = stored.values if field is None else stored.fields[field]
    integrals = stored.arrays[DOF_INTEGRALS]
    if stored.header["block_size"] != 1 or integrals.shape != values.shape:
        raise CheckpointError(f"{path}: cell integrals {integrals.shape} do not fit the "
                              f"values {values.shape} (block size {stored.header['block_size']})")
    return CellDensity(domain_from_record(stored.meta[DOMAIN]), stored.arrays[CELL_VERTICES],
                       str(stored.header["cell_type"]), np.sum(values * integrals, axis=1),
                       integrals.sum(axis=1), Path(path), field, stored.meta.get("settings"),
                       str(stored.header["sha256"]))
