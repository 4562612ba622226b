"""Run outputs of the PDE: time series (HDF5 + CSV), density snapshots, gathered cell values.

Three things leave the time loop:

- ``write_timeseries``: the per-step checks (step, t, dt, energy, loss, mass, min_rho,
  dissipation, ...) and the values at the output times (times, f_t(x_m), E, loss, MC)
  as ``timeseries.h5`` (groups ``steps/`` and ``outputs/``, with units and descriptions
  as attributes and the run settings as JSON) and the per-step columns as
  ``timeseries.csv``. Both are written by the writer rank only, atomically.
- ``SnapshotWriter``: density snapshots for ParaView. The default is a VTX (ADIOS2 BP)
  directory ``rho.bp``: it takes DG0 as cell data and DG1/DG2 as point data on the
  discontinuous mesh, on intervals, quads, hexes and surface meshes, in parallel.
  ``rho.xdmf`` (XDMF + HDF5) is the alternative; XDMF holds only DG0 (cell data) or
  the mesh's own P1 layout, so a higher-order density is written as cell averages.
- ``gather_cell_values``: every cell's vertices in theta coordinates and the cell
  average of a function, gathered to rank 0 in the mesh's original cell order (for
  the figures of ``solver.plots``).

A file appears under its final name only once it is complete: it is written under a
temporary name in the same directory, flushed to disk and renamed.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path

import h5py
import numpy as np
import ufl
from dolfinx import cpp, fem, la
from dolfinx import io as dio
from dolfinx import mesh as dmesh
from mpi4py import MPI

from solver.errors import DiskFullError
from solver.io import (
    atomic_h5,
    atomic_path,
    remove_path,
    replace_into_place,
    temporary_name,
    write_bytes_atomic,
)
from solver.resources import disk_error, is_disk_error, require_space

#: Maps mesh coordinates X (N, gdim) to theta (N, k); a Domain (its ``from_mesh``) also works.
ThetaMap = Callable[[np.ndarray], np.ndarray]

#: Units and descriptions of the known per-step columns ("1": dimensionless, "t": the
#: time of the gradient flow, "theta": a unit of parameter space).
STEP_COLUMNS: dict[str, tuple[str, str]] = {
    "step": ("1", "time-step index, 0 = the initial state"),
    "t": ("t", "training time of the gradient flow after the step"),
    "dt": ("t", "accepted step size"),
    "energy": ("1", "free energy E = loss + lam int r rho (+ (1/beta) int rho log rho)"),
    "loss": ("1", "loss 1/2 sum_m w_m (f(x_m) - y_m)^2"),
    "mass": ("1", "total mass int rho dtheta (1 at t = 0)"),
    "min_rho": ("1/theta^k", "minimum of the density where the scheme keeps it >= 0: FV the "
                "cell values, DG the limiter points (Gauss points of every cell and facet)"),
    "dissipation": ("1/t", "discrete int |grad Psi|^2 rho, -dE/dt of the semi-discrete scheme"),
    "dEdt": ("1/t", "finite difference (E_n - E_{n-1}) / dt_n over the step"),
    "boundary_outflow": ("1/t", "int_boundary rho (-grad Psi . n)^+ ds, the flux the wall stops"),
}

#: Units and descriptions of the known values at the output times.
OUTPUT_NAMES: dict[str, tuple[str, str]] = {
    "times": ("t", "output times"),
    "f": ("1", "network output f_t(x_m) at the data points, shape (n_out, M)"),
    "energy": ("1", "free energy E at the output times"),
    "loss": ("1", "loss at the output times"),
    "mc": ("1", "Monte Carlo variance MC(t) = sum_m w_m (int s^2 rho - f^2)"),
    "x": ("x", "data points x_m, shape (M, d)"),
    "w": ("1", "data quadrature weights w_m, shape (M,)"),
    "y": ("1", "targets y_m = y(x_m), shape (M,)"),
}

TIMESERIES_FORMAT = "meanfield-timeseries"
TIMESERIES_VERSION = 1


# -- JSON of settings --------------------------------------------------------------------

def _json_default(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot store a {type(value).__name__} as JSON: {value!r}")


def to_json(value: object) -> str:
    """JSON text of settings: dataclasses, numpy values and paths become plain values.

    Non-finite floats are kept as Infinity/NaN (Python's json reads them back).
    """
    return json.dumps(value, default=_json_default, sort_keys=True)


# -- time series -------------------------------------------------------------------------

def _writer_path(run_dir: object, name: str) -> Path | None:
    """The file ``name`` in the run directory, or None on ranks that do not write."""
    if hasattr(run_dir, "writer") and hasattr(run_dir, "path"):  # a solver.io.RunDirectory
        return Path(run_dir.path) / name if run_dir.writer else None
    return Path(run_dir) / name


def _column(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"timeseries: column {name!r} is not numeric (dtype {arr.dtype})")
    if name == "step" and arr.size and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    return arr


def _csv_text(columns: Mapping[str, np.ndarray]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(columns))
    cols = []
    for arr in columns.values():
        if arr.dtype.kind in "biu":
            cols.append([str(int(v)) for v in arr])
        else:  # repr round-trips every float64 exactly
            cols.append([repr(float(v)) for v in arr])
    writer.writerows(zip(*cols, strict=True))
    return buf.getvalue()


def _set_attr(attrs: h5py.AttributeManager, key: str, value: object,
              json_keys: list[str]) -> None:
    if isinstance(value, str | bool | int | float | np.integer | np.floating | np.bool_):
        attrs[key] = value
    else:
        attrs[key] = to_json(value)
        json_keys.append(key)


def write_timeseries(run_dir: object, steps: Mapping[str, Sequence[float] | np.ndarray],
                     outputs: Mapping[str, np.ndarray], attrs: Mapping[str, object]) -> None:
    """Write ``timeseries.h5`` and ``timeseries.csv`` into ``run_dir``, each atomically.

    run_dir: a ``solver.io.RunDirectory`` (only its writer rank writes; the call is
    not collective) or a plain path (written unconditionally).
    steps: per-step columns of equal length, e.g. step, t, dt, energy, loss, mass,
    min_rho, dissipation, dEdt, boundary_outflow -> ``steps/<column>`` and the CSV.
    outputs: arrays at the output times, e.g. times (n_out,), f (n_out, M), energy,
    loss, mc -> ``outputs/<name>``.
    attrs: run metadata stored on the root group; strings and numbers as they are,
    anything else (settings dicts, dataclasses, lists) as JSON text, its name listed in
    the root attribute ``json_attributes``. ``read_timeseries`` decodes them.
    Known columns get ``units`` and ``description`` attributes (``STEP_COLUMNS``,
    ``OUTPUT_NAMES``).
    """
    h5_path = _writer_path(run_dir, "timeseries.h5")
    if h5_path is None:
        return
    columns = {str(k): _column(str(k), v) for k, v in steps.items()}
    lengths = {k: v.shape for k, v in columns.items()}
    if any(v.ndim != 1 for v in columns.values()) or len({s[0] for s in lengths.values()}) > 1:
        raise ValueError(f"timeseries: step columns must be 1-D and of equal length, {lengths}")
    arrays = {str(k): np.asarray(v) for k, v in outputs.items()}

    with atomic_h5(h5_path) as h5:
        h5.attrs["format"] = TIMESERIES_FORMAT
        h5.attrs["format_version"] = TIMESERIES_VERSION
        json_keys: list[str] = []
        for key, value in attrs.items():
            if key in ("format", "format_version", "json_attributes"):
                raise ValueError(f"timeseries: attribute name {key!r} is reserved")
            _set_attr(h5.attrs, str(key), value, json_keys)
        h5.attrs["json_attributes"] = to_json(json_keys)
        for group_name, data, known in (("steps", columns, STEP_COLUMNS),
                                        ("outputs", arrays, OUTPUT_NAMES)):
            group = h5.create_group(group_name)
            group.attrs["columns"] = to_json(list(data))
            for name, arr in data.items():
                dset = group.create_dataset(name, data=arr)
                units, description = known.get(name, ("", ""))
                if units:
                    dset.attrs["units"] = units
                    dset.attrs["description"] = description

    write_bytes_atomic(h5_path.with_name("timeseries.csv"), _csv_text(columns).encode())


def read_timeseries(path: str | os.PathLike) -> tuple[dict[str, np.ndarray],
                                                      dict[str, np.ndarray], dict[str, object]]:
    """(steps, outputs, attrs) of a ``timeseries.h5`` (JSON attributes decoded)."""
    with h5py.File(path, "r") as h5:
        if h5.attrs.get("format") != TIMESERIES_FORMAT:
            raise ValueError(f"{path}: not a {TIMESERIES_FORMAT} file")
        json_keys = set(json.loads(h5.attrs["json_attributes"]))
        attrs: dict[str, object] = {}
        for key, value in h5.attrs.items():
            if key == "json_attributes":
                continue
            if isinstance(value, bytes):
                value = value.decode()
            attrs[key] = json.loads(value) if key in json_keys else _plain_attr(value)
        groups = []
        for name in ("steps", "outputs"):
            group = h5[name]
            order = json.loads(group.attrs["columns"])
            groups.append({k: group[k][()] for k in order})
    return groups[0], groups[1], attrs


def _plain_attr(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def read_timeseries_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The columns of ``timeseries.csv`` (``step`` as integers, the rest as float64)."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    out = {}
    for j, name in enumerate(header):
        values = [row[j] for row in body]
        out[name] = (np.array([int(v) for v in values], dtype=np.int64) if name == "step"
                     else np.array([float(v) for v in values]))
    return out


# -- gathered cell values ----------------------------------------------------------------

#: Vertex order that walks round the boundary of a cell (DOLFINx numbers quads as a
#: tensor product: 0 (0,0), 1 (1,0), 2 (0,1), 3 (1,1)).
_POLYGON_ORDER = {dmesh.CellType.quadrilateral: [0, 1, 3, 2]}


def _theta_map(to_theta: ThetaMap | object | None) -> ThetaMap | None:
    if to_theta is None:
        return None
    return getattr(to_theta, "from_mesh", to_theta)


class CellGatherer:
    """Gathers cell polygons (once) and cell averages of one function to rank 0.

    Collective: every rank of the mesh's communicator must call ``averages``/``gather``.
    """

    def __init__(self, fn: fem.Function, to_theta: ThetaMap | object | None = None):
        V = fn.function_space
        if V.dofmap.bs != 1 or V.value_size != 1:
            raise ValueError(f"gather_cell_values: {fn.name!r} is not scalar-valued")
        self.fn = fn
        msh = V.mesh
        self.comm = msh.comm
        tdim = msh.topology.dim
        self.n_owned = msh.topology.index_map(tdim).size_local
        self.num_cells = msh.topology.index_map(tdim).size_global
        self.original = np.asarray(msh.topology.original_cell_index[: self.n_owned],
                                   dtype=np.int64)
        cell_type = msh.topology.cell_type
        nv = cpp.mesh.cell_num_vertices(cell_type)
        nodes = msh.geometry.dofmaps[0][: self.n_owned, :nv]  # vertices come first
        nodes = nodes[:, _POLYGON_ORDER.get(cell_type, slice(None))]
        X = msh.geometry.x[nodes][..., : msh.geometry.dim]
        theta_map = _theta_map(to_theta)
        if theta_map is not None and X.size:
            X = np.asarray(theta_map(X.reshape(-1, X.shape[-1]))).reshape(*X.shape[:2], -1)
        elif theta_map is not None:  # a rank with no cells still needs theta's width
            k = np.asarray(theta_map(np.ones((1, X.shape[-1])))).shape[-1]
            X = np.zeros((0, nv, k))
        originals = self.comm.gather(self.original, root=0)
        self._order = (np.argsort(np.concatenate(originals), kind="stable")
                       if self.comm.rank == 0 else None)
        self.polygons = self._gather(np.ascontiguousarray(X, dtype=float))

        self._dg0 = V.dofmap.list.shape[1] == 1  # one value per cell
        if self._dg0:
            self._dofs = V.dofmap.list[: self.n_owned, 0]
        else:  # cell average = int_K fn / |K|, from two DG0 assemblies
            self._W = fem.functionspace(msh, ("DG", 0))
            w = ufl.TestFunction(self._W)
            self._int_form = fem.form(fn * w * ufl.dx)
            self._volume = self._assemble(fem.form(w * ufl.dx))
        self.average_fn: fem.Function | None = None  # a DG0 copy, made on demand

    def _assemble(self, form: fem.Form) -> np.ndarray:
        vec = la.vector(self._W.dofmap.index_map)
        vec.array[:] = 0.0
        fem.assemble_vector(vec.array, form)
        vec.scatter_reverse(la.InsertMode.add)
        vec.scatter_forward()
        return vec.array.copy()

    def averages(self) -> np.ndarray:
        """Cell averages of the owned cells, ordered like ``polygons`` (local cell order)."""
        if self._dg0:
            return self.fn.x.array[self._dofs].copy()
        values = self._assemble(self._int_form) / self._volume
        return values[self._W.dofmap.list[: self.n_owned, 0]]

    def dg0_function(self) -> fem.Function:
        """A DG0 function (same name) holding the current cell averages of ``fn``."""
        if self._dg0:
            return self.fn
        if self.average_fn is None:
            self.average_fn = fem.Function(self._W, name=self.fn.name)
        self.average_fn.x.array[:] = self._assemble(self._int_form) / self._volume
        return self.average_fn

    def _gather(self, local: np.ndarray) -> np.ndarray | None:
        """Owned-cell rows of every rank on rank 0, in original cell order; None elsewhere."""
        parts = self.comm.gather(local, root=0)
        if self.comm.rank != 0:
            return None
        return np.concatenate(parts)[self._order]

    def gather(self) -> np.ndarray | None:
        """Cell averages in original cell order on rank 0 (None elsewhere). Collective."""
        return self._gather(self.averages())


def gather_cell_values(fn: fem.Function, to_theta: ThetaMap | object | None = None
                       ) -> tuple[np.ndarray, np.ndarray] | None:
    """Every cell's vertices and the cell average of ``fn``, on rank 0. Collective.

    Returns ``(polygons, values)`` on rank 0 and None on the other ranks:
    polygons (n_cells, n_vertices, d) are the cell vertices in order round the cell
    (intervals, triangles, quads; tetrahedra and hexes in DOLFINx's vertex order), in
    theta coordinates when ``to_theta``
    (a Domain, or a map X (N, gdim) -> theta (N, k)) is given and in mesh coordinates
    (d = gdim) otherwise; values (n_cells,) are the cell averages int_K fn / |K| (the
    dof itself for DG0). Rows are ordered by the mesh's original input cell index, so
    the result does not depend on the number of ranks.
    """
    gatherer = CellGatherer(fn, to_theta)
    values = gatherer.gather()
    if gatherer.comm.rank != 0:
        return None
    return gatherer.polygons, values


# -- snapshots --------------------------------------------------------------------------

SNAPSHOT_FORMATS = {".bp": "vtx", ".xdmf": "xdmf"}
#: Writers that failed to close after a full disk (see ``SnapshotWriter.abandon``).
UNCLOSED: list[object] = []


class SnapshotWriter:
    """Density snapshots ParaView opens, plus rank-0 copies for the figures.

    ``path`` ending in ``.bp`` (the default choice) writes VTX through ADIOS2: DG0
    as cell data, DG1/DG2 as point data on the discontinuous mesh (ParaView's
    ADIOS2VTXReader, "Open" on the .bp directory). ``.xdmf`` writes XDMF + HDF5
    (ParaView's XDMF3 reader) with DG0 cell data; a higher-order density is written
    as its cell averages there.

    The files are written under a hidden temporary name and renamed to ``path`` by
    ``close`` (also on an error in the time loop: what was written is complete), so an
    interrupted run leaves no file that looks finished.

    Every method is collective over the mesh's communicator. On rank 0,
    ``snapshots`` is a list of ``(t, polygons, values)`` with the gathered cell
    averages (see ``gather_cell_values``), ready for ``solver.plots.plot_snapshots``;
    it stays empty on the other ranks and when ``keep`` is False.
    """

    def __init__(self, path: str | os.PathLike, fn: fem.Function, *,
                 to_theta: ThetaMap | object | None = None, keep: bool = True):
        msh = fn.function_space.mesh
        self.comm = msh.comm
        self.fn = fn
        # the name must agree on every rank: rank 0's is the one
        self.path = Path(self.comm.bcast(os.fspath(path) if self.comm.rank == 0 else None,
                                         root=0))
        self.format = SNAPSHOT_FORMATS.get(self.path.suffix)
        if self.format is None:
            raise ValueError(f"snapshots: {self.path.name!r} must end in .bp (VTX) or .xdmf")
        self.keep = keep
        self.snapshots: list[tuple[float, np.ndarray, np.ndarray]] = []
        #: The smallest value written, what a reader sees (``written`` says which values:
        #: a limited DG density is >= 0 at its quadrature points, not at every node).
        self.min_written = np.inf
        dg0 = fn.function_space.dofmap.list.shape[1] == 1
        self.written = ("cell values" if dg0 else
                        "nodal values of the DG element (point data)" if self.format == "vtx"
                        else "cell averages")
        self._gatherer = CellGatherer(fn, to_theta) if keep or self.format == "xdmf" else None
        pid = self.comm.bcast(os.getpid() if self.comm.rank == 0 else None, root=0)
        imap = fn.function_space.dofmap.index_map
        self._global_dofs = imap.size_global * fn.function_space.dofmap.index_map_bs
        self._writes = 0
        if self.format == "vtx":
            self._tmp = temporary_name(self.path, str(pid))
            if self.comm.rank == 0:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                remove_path(self._tmp)
            self.comm.barrier()
            self._writer: dio.VTXWriter | dio.XDMFFile | None = dio.VTXWriter(
                self.comm, str(self._tmp), [fn], engine="BP5")
        else:
            # XDMFFile names its heavy-data file after the .xdmf (stem + .h5)
            self._tmp = self.path.with_name(f".tmp-{pid}-{self.path.name}")
            if self.comm.rank == 0:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.comm.barrier()
            self._writer = dio.XDMFFile(self.comm, str(self._tmp), "w")
            self._writer.write_mesh(msh)

    def write(self, t: float) -> None:
        """Write the function's current values at time t. Collective.

        First checks that the snapshot fits the free space (``require_space``); a full disk
        then, or in the writer (ADIOS2/HDF5), drops the files written so far (``abandon``)
        and raises ``DiskFullError`` naming the file on every rank."""
        if self._writer is None:
            raise RuntimeError(f"snapshots: {self.path.name} is closed")
        message = None
        if self.comm.rank == 0:
            try:
                require_space(self._tmp, self._bytes_per_write(), f"the snapshot at t = {t:.6g} "
                              "into")
            except DiskFullError as exc:
                message = str(exc).replace(str(self._tmp), str(self.path))
        message = self.comm.bcast(message, root=0)
        if message is not None:
            self.abandon()
            raise DiskFullError(message)
        failure = None
        try:
            if self.format == "vtx":
                self._writer.write(float(t))
                written = self.fn.x.array[: self.fn.function_space.dofmap.index_map.size_local
                                          * self.fn.function_space.dofmap.index_map_bs]
            else:
                cells = self._gatherer.dg0_function()
                self._writer.write_function(cells, float(t))
                written = cells.x.array
        except RuntimeError as exc:
            if not is_disk_error(exc):
                raise
            failure, written = exc, np.zeros(0)
        failed = self.comm.allgather(None if failure is None else str(failure))
        if any(f is not None for f in failed):
            self.abandon()
            raise disk_error(self.path, failure or RuntimeError(next(f for f in failed if f)))
        self._writes += 1
        local = float(written.min()) if written.size else np.inf
        self.min_written = min(self.min_written, self.comm.allreduce(local, op=MPI.MIN))
        if self.keep:
            values = self._gatherer.gather()
            if self.comm.rank == 0:
                self.snapshots.append((float(t), self._gatherer.polygons, values))

    def _bytes_per_write(self) -> float:
        """An estimate of what one write adds: 8 bytes per dof, and the mesh (points of 3
        coordinates, connectivity) with the first one; 64 kB of metadata."""
        return 8.0 * self._global_dofs * (1 if self._writes else 6) + 65536

    def _temporary(self) -> list[Path]:
        """The files being written: the hidden .bp directory, or the .xdmf and its .h5."""
        return [self._tmp] if self.format == "vtx" else [self._tmp, self._tmp.with_suffix(".h5")]

    def abandon(self) -> None:
        """Drop what was written (after a full disk): the temporary files are truncated
        (the space ADIOS2 needs to close), the writer closed and the files removed; the
        previous ``path`` stays. A writer that cannot close even then is kept referenced
        (``UNCLOSED``) so that it is never destroyed: ``meanfield`` then ends with
        ``os._exit`` (ADIOS2 aborts the process from its destructor). Collective."""
        if self._writer is None:
            return
        temporary = self._temporary()
        self.comm.barrier()
        if self.comm.rank == 0:
            for path in temporary:
                for file in ([p for p in path.rglob("*") if p.is_file()] if path.is_dir()
                             else [path] if path.exists() else []):
                    with contextlib.suppress(OSError):
                        os.truncate(file, 0)
        self.comm.barrier()
        try:
            self._writer.close()
        except RuntimeError:
            UNCLOSED.append(self._writer)
        self._writer = None
        self.comm.barrier()
        if self.comm.rank == 0:
            for path in temporary:
                remove_path(path)
        self.comm.barrier()

    def close(self) -> None:
        """Close the writer and move the files to their final names. Collective."""
        if self._writer is None:
            return
        failure = None
        try:
            self._writer.close()
        except RuntimeError as exc:
            if not is_disk_error(exc):
                raise
            failure = exc
            UNCLOSED.append(self._writer)
        self._writer = None
        failed = self.comm.allgather(None if failure is None else str(failure))
        if any(f is not None for f in failed):
            if self.comm.rank == 0:
                for path in self._temporary():
                    remove_path(path)
            self.comm.barrier()
            raise disk_error(self.path, failure or RuntimeError(next(f for f in failed if f)))
        if self.comm.rank == 0:
            if self.format == "vtx":
                replace_into_place(self._tmp, self.path)
            else:
                self._finish_xdmf()
        self.comm.barrier()

    def _finish_xdmf(self) -> None:
        tmp_h5, final_h5 = self._tmp.with_suffix(".h5"), self.path.with_suffix(".h5")
        text = self._tmp.read_text().replace(tmp_h5.name, final_h5.name)
        replace_into_place(tmp_h5, final_h5)
        with atomic_path(self.path) as tmp:
            tmp.write_text(text)
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
