"""Checkpoints of a function (the density) and a run's state: restartable on any number
of ranks, verified on reading.

The dofs of a function are stored per cell, keyed by the mesh's original input cell
index (``msh.topology.original_cell_index``) and the local dof number in the cell,
which do not depend on how the mesh is partitioned. The file layout, its SHA-256 and
its verified reading are in ``solver.checkpoint_file`` (no DOLFINx needed); a flipped
byte in the data or the metadata, a truncated file, another element or another mesh
(dof coordinates that do not match) all raise ``CheckpointError`` instead of loading.
Rank 0 gathers and writes (built in memory, checked against the free space, written
to a temporary name, fsynced, renamed: the previous checkpoint stays valid until the new
one is in place; a full disk is a ``DiskFullError`` on every rank); reading scatters the rows back
to whatever ranks hold the cells now.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from dolfinx import fem
from dolfinx import mesh as dmesh
from mpi4py import MPI

from solver.checkpoint_file import (
    FORMAT,
    HEADER_KEYS,
    VERSION,
    CheckpointFile,
    checksum,
    read_checkpoint_file,
)
from solver.errors import CheckpointError, DiskFullError
from solver.io import atomic_h5
from solver.pde.output import to_json

__all__ = ["Checkpoint", "CheckpointError", "load_checkpoint", "read_checkpoint",
           "write_checkpoint"]



@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns besides filling the function.

    meta: the JSON run state; fields: each stored field as a local array like
    ``fn.x.array`` (owned and ghost cells filled); arrays: the global arrays, on every rank;
    sha256: the file's checksum (which version of the file was read).
    """

    meta: dict
    fields: dict[str, np.ndarray]
    arrays: dict[str, np.ndarray]
    sha256: str = ""


def _layout(msh: dmesh.Mesh, fn: fem.Function) -> dict[str, object]:
    V = fn.function_space
    if V.mesh is not msh and V.mesh._cpp_object is not msh._cpp_object:
        raise ValueError("checkpoint: the function does not live on the given mesh")
    return {
        "element": str(V.ufl_element()),
        "cell_type": msh.topology.cell_type.name,
        "gdim": int(msh.geometry.dim),
        "n_cells": int(msh.topology.index_map(msh.topology.dim).size_global),
        "dofs_per_cell": int(V.dofmap.list.shape[1]),
        "block_size": int(V.dofmap.bs),
    }


def _cell_rows(fn: fem.Function, array: np.ndarray, n: int) -> np.ndarray:
    """The values of a local array laid out like ``fn.x.array``, one row per local cell."""
    V = fn.function_space
    bs = V.dofmap.bs
    dofs = V.dofmap.list[:n]
    rows = np.asarray(array).reshape(-1, bs)[dofs].reshape(n, dofs.shape[1] * bs)
    return np.ascontiguousarray(rows, dtype=np.float64)


def _cell_data(msh: dmesh.Mesh, fn: fem.Function, n: int) -> tuple[np.ndarray, ...]:
    """(original index, values, dof coordinates) of the first n local cells."""
    V = fn.function_space
    dofs = V.dofmap.list[:n]
    original = np.asarray(msh.topology.original_cell_index[:n], dtype=np.int64)
    coords = V.tabulate_dof_coordinates()[dofs][..., : msh.geometry.dim]
    return original, _cell_rows(fn, fn.x.array, n), coords


def _raise_together(comm: MPI.Comm, message: str | tuple[type, str] | None) -> None:
    """Rank 0's error (or None) raised on every rank: a message as CheckpointError, an
    (error class, message) pair as that class."""
    message = comm.bcast(message, root=0)
    if isinstance(message, tuple):
        raise message[0](message[1])
    if message is not None:
        raise CheckpointError(message)


def write_checkpoint(path: str | os.PathLike, msh: dmesh.Mesh, fn: fem.Function,
                     meta: dict, *, fields: Mapping[str, np.ndarray] | None = None,
                     arrays: Mapping[str, np.ndarray] | None = None,
                     cell_arrays: Mapping[str, np.ndarray] | None = None) -> None:
    """Write ``fn`` (any DG/Lagrange function on ``msh``) and ``meta`` to ``path``.

    Collective over ``msh.comm``; rank 0 gathers and writes atomically. meta: JSON-able
    run state, e.g. ``{"t": ..., "step": ..., "dt": ..., "settings": asdict(settings)}``
    (dataclasses, numpy values and paths are converted; inf/nan are kept).
    fields: more local arrays laid out like ``fn.x.array`` (same space; e.g. earlier
    densities); arrays: global arrays, taken from rank 0, stored as float64;
    cell_arrays: local arrays with one row per owned cell, stored as /arrays/<name>
    with the rows ordered by original cell index.
    """
    comm = msh.comm
    layout = _layout(msh, fn)
    fields, arrays, cell_arrays = dict(fields or {}), dict(arrays or {}), dict(cell_arrays or {})
    n_owned = msh.topology.index_map(msh.topology.dim).size_local
    local = (*_cell_data(msh, fn, n_owned),
             *(_cell_rows(fn, array, n_owned) for array in fields.values()),
             *(np.asarray(a, dtype=np.float64)[:n_owned] for a in cell_arrays.values()))
    parts = comm.gather(local, root=0)
    message = None
    if comm.rank == 0:
        try:
            original = np.concatenate([p[0] for p in parts])
            order = np.argsort(original)
            if not np.array_equal(original[order], np.arange(layout["n_cells"])):
                raise CheckpointError("original cell indices are not 0..n_cells-1")
            cellwise = [np.concatenate([p[j] for p in parts])[order]
                        for j in range(1, len(local))]
            cellwise, per_cell = cellwise[:2 + len(fields)], cellwise[2 + len(fields):]
            names = [*arrays, *cell_arrays]
            globals_ = [*(np.asarray(a, dtype=np.float64) for a in arrays.values()), *per_cell]
            header = {"format": FORMAT, "format_version": VERSION,
                      **layout, "function_name": fn.name, "fields": json.dumps(list(fields)),
                      "arrays": json.dumps(names), "meta": to_json(meta)}
            with atomic_h5(path) as h5:
                for key in HEADER_KEYS:
                    h5.attrs[key] = header[key]
                h5.attrs["sha256"] = checksum(header, cellwise + globals_)
                h5.create_dataset("values", data=cellwise[0])
                h5.create_dataset("dof_coordinates", data=cellwise[1])
                for name, data in zip(fields, cellwise[2:], strict=True):
                    h5.create_dataset(f"fields/{name}", data=data)
                for name, data in zip(names, globals_, strict=True):
                    h5.create_dataset(f"arrays/{name}", data=data)
        except DiskFullError as exc:  # the previous checkpoint stays; every rank learns it
            message = (DiskFullError, str(exc))
        except Exception as exc:  # every rank must learn of it
            message = f"{path}: writing the checkpoint failed: {exc}"
    _raise_together(comm, message)


def _load(path: Path, layout: dict[str, object], expect: Mapping[str, object]
          ) -> CheckpointFile:
    """Rank 0: read and verify the file, check it against the run and the function's
    layout; CheckpointError if it does not fit."""
    stored = read_checkpoint_file(path)
    header, meta = stored.header, stored.meta
    for key, wanted in expect.items():
        if meta.get(key) != wanted:
            raise CheckpointError(f"{path}: written by another run: its {key} is "
                                  f"{meta.get(key)!r}, this run's is {wanted!r}")
    for key, expected in layout.items():
        if header[key] != expected:
            raise CheckpointError(f"{path}: {key} is {header[key]!r} in the checkpoint but "
                                  f"{expected!r} for the function being restored")
    n, ndofs, bs, gdim = (layout[k] for k in ("n_cells", "dofs_per_cell", "block_size",
                                              "gdim"))
    rows = [stored.values, *stored.fields.values()]
    if any(a.shape != (n, ndofs * bs) for a in rows) or \
            stored.dof_coordinates.shape != (n, ndofs, gdim):
        shapes = [a.shape for a in (stored.values, stored.dof_coordinates,
                                    *stored.fields.values())]
        raise CheckpointError(f"{path}: dataset shapes {shapes} do not match {n} cells x "
                              f"{ndofs} dofs x block size {bs}")
    return stored


def load_checkpoint(path: str | os.PathLike, msh: dmesh.Mesh, fn: fem.Function, *,
                    expect: Mapping[str, object] | None = None) -> Checkpoint:
    """Fill ``fn`` from a checkpoint written by ``write_checkpoint``; return the rest.

    Collective over ``msh.comm``; works for any number of ranks (the rows are matched
    by original cell index). The mesh must be the same input mesh (same cells in the
    same order) and ``fn`` the same element: the dof coordinates are compared.
    expect: meta entries the checkpoint must have (e.g. the fingerprint of the run).
    Raises ``CheckpointError`` on every rank for a missing, truncated, corrupted or
    mismatched file; ``fn`` is then left unchanged.
    """
    comm = msh.comm
    layout = _layout(msh, fn)
    n_local = msh.topology.index_map(msh.topology.dim).size_local + \
        msh.topology.index_map(msh.topology.dim).num_ghosts
    original, _, my_coords = _cell_data(msh, fn, n_local)
    wanted = comm.gather(original, root=0)
    message, meta, rows, arrays, sha256 = None, None, None, None, None
    if comm.rank == 0:
        try:
            stored = _load(Path(path), layout, expect or {})
            meta, arrays, sha256 = stored.meta, stored.arrays, stored.header["sha256"]
            rows = [(stored.values[w], stored.dof_coordinates[w],
                     {k: v[w] for k, v in stored.fields.items()}) for w in wanted]
        except CheckpointError as exc:
            message = str(exc)
    _raise_together(comm, message)
    values, coords, field_rows = comm.scatter(rows, root=0)
    meta, arrays, sha256 = comm.bcast((meta, arrays, sha256), root=0)

    scale = 1.0 + float(np.max(np.abs(my_coords), initial=0.0))
    bad = int(not np.allclose(coords, my_coords, rtol=0.0, atol=1e-9 * scale))
    if comm.allreduce(bad, MPI.MAX):
        raise CheckpointError(f"{path}: the dof coordinates differ from this mesh's: "
                              "the checkpoint was written on another mesh")
    V = fn.function_space
    bs = V.dofmap.bs
    dofs = V.dofmap.list[:n_local]

    def local_array(cell_values: np.ndarray) -> np.ndarray:
        array = np.zeros_like(fn.x.array).reshape(-1, bs)
        array[dofs] = cell_values.reshape(*dofs.shape, bs)
        return array.reshape(-1)

    fn.x.array[:] = local_array(values)
    fn.x.scatter_forward()
    return Checkpoint(meta, {k: local_array(v) for k, v in field_rows.items()}, arrays,
                      sha256)


def read_checkpoint(path: str | os.PathLike, msh: dmesh.Mesh, fn: fem.Function) -> dict:
    """Fill ``fn`` from a checkpoint (see ``load_checkpoint``); return its meta."""
    return load_checkpoint(path, msh, fn).meta
