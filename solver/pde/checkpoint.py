"""Checkpoints of the density: restartable on any number of ranks, verified on reading.

The dofs of a function are stored per cell, keyed by the mesh's original input cell
index (``msh.topology.original_cell_index``) and the local dof number in the cell,
which do not depend on how the mesh is partitioned. Layout of the HDF5 file:

    /values            (n_cells, dofs_per_cell * bs) float64, row = original cell index
    /dof_coordinates   (n_cells, dofs_per_cell, gdim) float64, where each dof sits
    attributes         format, format_version, element, cell_type, gdim, n_cells,
                       dofs_per_cell, block_size, function_name, meta (JSON: t, step,
                       dt, settings, ...) and sha256

``sha256`` is the SHA-256 of a canonical header (every other attribute) followed by
the bytes of both datasets, so a flipped byte in the data or the metadata, a
truncated file, another element or another mesh (dof coordinates that do not match)
all raise ``CheckpointError`` instead of loading. Rank 0 gathers and writes (to a
temporary name, fsynced, renamed); reading scatters the rows back to whatever ranks
hold the cells now.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np
from dolfinx import fem
from dolfinx import mesh as dmesh
from mpi4py import MPI

from solver.io import atomic_path
from solver.pde.output import to_json

CHECKPOINT_FORMAT = "meanfield-checkpoint"
CHECKPOINT_VERSION = 1
#: Header attributes covered by the checksum, in this order.
_HEADER_KEYS = ("format", "format_version", "element", "cell_type", "gdim", "n_cells",
                "dofs_per_cell", "block_size", "function_name", "meta")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be trusted: missing, truncated, corrupted or mismatched."""


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


def _cell_data(msh: dmesh.Mesh, fn: fem.Function, n: int) -> tuple[np.ndarray, ...]:
    """(original index, values, dof coordinates) of the first n local cells."""
    V = fn.function_space
    bs = V.dofmap.bs
    dofs = V.dofmap.list[:n]
    original = np.asarray(msh.topology.original_cell_index[:n], dtype=np.int64)
    values = fn.x.array.reshape(-1, bs)[dofs].reshape(n, dofs.shape[1] * bs)
    coords = V.tabulate_dof_coordinates()[dofs][..., : msh.geometry.dim]
    return original, np.ascontiguousarray(values, dtype=np.float64), coords


def _checksum(header: dict[str, object], values: np.ndarray, coords: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([[k, header[k]] for k in _HEADER_KEYS]).encode())
    for arr in (values, coords):
        digest.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
    return digest.hexdigest()


def _raise_together(comm: MPI.Comm, message: str | None) -> None:
    """Rank 0's error (or None) raised as CheckpointError on every rank."""
    message = comm.bcast(message, root=0)
    if message is not None:
        raise CheckpointError(message)


def write_checkpoint(path: str | os.PathLike, msh: dmesh.Mesh, fn: fem.Function,
                     meta: dict) -> None:
    """Write ``fn`` (any DG/Lagrange function on ``msh``) and ``meta`` to ``path``.

    Collective over ``msh.comm``; rank 0 gathers and writes atomically. meta: JSON-able
    run state, e.g. ``{"t": ..., "step": ..., "dt": ..., "settings": asdict(settings)}``
    (dataclasses, numpy values and paths are converted; inf/nan are kept).
    """
    comm = msh.comm
    layout = _layout(msh, fn)
    n_owned = msh.topology.index_map(msh.topology.dim).size_local
    parts = comm.gather(_cell_data(msh, fn, n_owned), root=0)
    message = None
    if comm.rank == 0:
        try:
            original = np.concatenate([p[0] for p in parts])
            order = np.argsort(original)
            if not np.array_equal(original[order], np.arange(layout["n_cells"])):
                raise CheckpointError("original cell indices are not 0..n_cells-1")
            values = np.concatenate([p[1] for p in parts])[order]
            coords = np.concatenate([p[2] for p in parts])[order]
            header = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                      **layout, "function_name": fn.name, "meta": to_json(meta)}
            with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
                for key in _HEADER_KEYS:
                    h5.attrs[key] = header[key]
                h5.attrs["sha256"] = _checksum(header, values, coords)
                h5.create_dataset("values", data=values)
                h5.create_dataset("dof_coordinates", data=coords)
        except Exception as exc:  # every rank must learn of it
            message = f"{path}: writing the checkpoint failed: {exc}"
    _raise_together(comm, message)


def _load(path: Path, layout: dict[str, object]) -> tuple[dict, np.ndarray, np.ndarray]:
    """Rank 0: read and verify the file; (meta, values, coordinates) or CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        with h5py.File(path, "r") as h5:
            attrs = {k: h5.attrs[k] for k in h5.attrs}
            values = h5["values"][()]
            coords = h5["dof_coordinates"][()]
    except Exception as exc:  # h5py raises OSError/KeyError/... for broken files
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({exc})") from exc
    missing = [k for k in (*_HEADER_KEYS, "sha256") if k not in attrs]
    if missing:
        raise CheckpointError(f"{path}: not a checkpoint, missing attributes {missing}")
    header = {k: (v.decode() if isinstance(v, bytes) else
                  v.item() if isinstance(v, np.generic) else v) for k, v in attrs.items()}
    if header["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: format {header['format']!r}, not {CHECKPOINT_FORMAT}")
    if header["format_version"] != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: format version {header['format_version']} is not "
                              f"the supported {CHECKPOINT_VERSION}")
    if values.dtype != np.float64 or coords.dtype != np.float64:
        raise CheckpointError(f"{path}: data types {values.dtype}, {coords.dtype}")
    if _checksum(header, values, coords) != header["sha256"]:
        raise CheckpointError(f"{path}: SHA-256 checksum mismatch: the file is corrupted")
    for key, expected in layout.items():
        if header[key] != expected:
            raise CheckpointError(f"{path}: {key} is {header[key]!r} in the checkpoint but "
                                  f"{expected!r} for the function being restored")
    n, ndofs, bs, gdim = (layout[k] for k in ("n_cells", "dofs_per_cell", "block_size",
                                              "gdim"))
    if values.shape != (n, ndofs * bs) or coords.shape != (n, ndofs, gdim):
        raise CheckpointError(f"{path}: dataset shapes {values.shape}, {coords.shape} do not "
                              f"match {n} cells x {ndofs} dofs x block size {bs}")
    try:
        meta = json.loads(header["meta"])
    except ValueError as exc:
        raise CheckpointError(f"{path}: meta is not JSON ({exc})") from exc
    return meta, values, coords


def read_checkpoint(path: str | os.PathLike, msh: dmesh.Mesh, fn: fem.Function) -> dict:
    """Fill ``fn`` from a checkpoint written by ``write_checkpoint``; return its meta.

    Collective over ``msh.comm``; works for any number of ranks (the rows are matched
    by original cell index). The mesh must be the same input mesh (same cells in the
    same order) and ``fn`` the same element: the dof coordinates are compared. Raises
    ``CheckpointError`` on every rank for a missing, truncated, corrupted or mismatched
    file; ``fn`` is then left unchanged.
    """
    comm = msh.comm
    layout = _layout(msh, fn)
    n_local = msh.topology.index_map(msh.topology.dim).size_local + \
        msh.topology.index_map(msh.topology.dim).num_ghosts
    original, _, my_coords = _cell_data(msh, fn, n_local)
    wanted = comm.gather(original, root=0)
    message, meta, rows = None, None, None
    if comm.rank == 0:
        try:
            meta, values, coords = _load(Path(path), layout)
            rows = [(values[w], coords[w]) for w in wanted]
        except CheckpointError as exc:
            message = str(exc)
    _raise_together(comm, message)
    values, coords = comm.scatter(rows, root=0)
    meta = comm.bcast(meta, root=0)

    scale = 1.0 + float(np.max(np.abs(my_coords), initial=0.0))
    bad = int(not np.allclose(coords, my_coords, rtol=0.0, atol=1e-9 * scale))
    if comm.allreduce(bad, MPI.MAX):
        raise CheckpointError(f"{path}: the dof coordinates differ from this mesh's: "
                              "the checkpoint was written on another mesh")
    V = fn.function_space
    bs = V.dofmap.bs
    array = fn.x.array.reshape(-1, bs)
    dofs = V.dofmap.list[:n_local]
    array[dofs] = values.reshape(*dofs.shape, bs)
    fn.x.scatter_forward()
    return meta
