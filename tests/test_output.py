"""Run outputs: time series (HDF5 + CSV), snapshots, gathered cell values, checkpoints, plots."""

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dolfinx", reason="needs DOLFINx")
import h5py
from dolfinx import fem, mesh
from mpi4py import MPI

from solver.io import RunDirectory
from solver.pde.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    write_checkpoint,
)
from solver.pde.output import (
    SnapshotWriter,
    gather_cell_values,
    read_timeseries,
    read_timeseries_csv,
    write_timeseries,
)
from solver.plots import (
    _box_marginal,
    _cylinder_polys,
    _sphere_polys,
    plot_energy,
    plot_snapshots,
)
from solver.settings import PDESettings
from tests.ranks import on_root, shared_dir

GHOST = mesh.GhostMode.shared_facet
PNG = b"\x89PNG\r\n\x1a\n"


def quads(comm, n=(6, 4)):
    return mesh.create_rectangle(comm, [[-1.0, -2.0], [2.0, 1.0]], list(n),
                                 mesh.CellType.quadrilateral, ghost_mode=GHOST)


def interval(comm, n=12):
    return mesh.create_interval(comm, n, [-3.0, 3.0], ghost_mode=GHOST)


def density(msh, degree=0):
    V = fem.functionspace(msh, ("DG", degree))
    rho = fem.Function(V, name="rho")
    if msh.geometry.dim == 1:
        rho.interpolate(lambda x: np.exp(-x[0] ** 2) + 0.1 * x[0] + 0.5)
    else:
        rho.interpolate(lambda x: np.exp(-x[0] ** 2 - 2 * x[1] ** 2) + 0.3 * x[0] * x[1] ** 2)
    return rho


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp" in p.name)


# -- time series ------------------------------------------------------------------------

def _series():
    rng = np.random.default_rng(3)
    n = 9
    steps = {
        "step": [float(i) for i in range(n)],
        "t": np.cumsum(rng.uniform(0.01, 0.1, n)) - 0.01,
        "dt": rng.uniform(0.01, 0.1, n),
        "energy": np.exp(-np.arange(n) / 3) / 7,
        "mass": 1.0 + rng.normal(0, 1e-16, n),
        "min_rho": np.r_[0.0, 1e-300, rng.uniform(0, 1, n - 2)],
        "dissipation": rng.uniform(0, 1, n),
        "dEdt": np.r_[np.nan, -rng.uniform(0, 1, n - 1)],
    }
    outputs = {"times": np.linspace(0, 1, 4), "f": rng.normal(size=(4, 5)),
               "energy": rng.uniform(size=4), "mc": rng.uniform(size=4)}
    attrs = {"problem": "circle rbf", "cells": 576, "wall_time_s": 1.25,
             "settings": PDESettings(cells=(24, 24), max_step=np.inf),
             "domain": {"lower": [-5.0, -np.pi], "upper": [5.0, np.pi]}}
    return steps, outputs, attrs


def test_timeseries_hdf5_and_csv_round_trip(tmp_path):
    steps, outputs, attrs = _series()
    write_timeseries(RunDirectory(tmp_path), steps, outputs, attrs)
    assert leftovers(tmp_path) == []
    got_steps, got_outputs, got_attrs = read_timeseries(tmp_path / "timeseries.h5")
    assert list(got_steps) == list(steps)
    assert got_steps["step"].dtype == np.int64
    for key, value in steps.items():
        np.testing.assert_array_equal(got_steps[key], np.asarray(value))  # bitwise, nan too
    assert list(got_outputs) == list(outputs)
    for key, value in outputs.items():
        np.testing.assert_array_equal(got_outputs[key], value)
    assert got_attrs["problem"] == "circle rbf" and got_attrs["cells"] == 576
    assert got_attrs["settings"] == json.loads(json.dumps(asdict(attrs["settings"])))
    assert got_attrs["settings"]["max_step"] == np.inf
    assert got_attrs["domain"] == attrs["domain"]
    with h5py.File(tmp_path / "timeseries.h5") as h5:
        assert h5["steps/dissipation"].attrs["units"] == "1/t"
        assert "dE/dt" in h5["steps/dissipation"].attrs["description"]
        assert h5["outputs/f"].shape == (4, 5)

    csv = read_timeseries_csv(tmp_path / "timeseries.csv")
    assert list(csv) == list(steps)
    for key, value in steps.items():
        np.testing.assert_array_equal(csv[key], np.asarray(value))
    assert (tmp_path / "timeseries.csv").read_text().splitlines()[2].startswith("1,")


def test_timeseries_only_the_writer_writes_and_failures_keep_the_old_file(tmp_path):
    steps, outputs, attrs = _series()
    write_timeseries(RunDirectory(tmp_path, writer=False), steps, outputs, attrs)
    assert not (tmp_path / "timeseries.h5").exists()

    write_timeseries(tmp_path, steps, outputs, attrs)
    before = (tmp_path / "timeseries.h5").read_bytes()
    bad = dict(outputs, f=np.array([{"not": "numeric"}], dtype=object))
    with pytest.raises(TypeError):
        write_timeseries(tmp_path, dict(steps, t=steps["t"] * 2), bad, attrs)
    with pytest.raises(ValueError, match="equal length"):
        write_timeseries(tmp_path, dict(steps, t=steps["t"][:-1]), outputs, attrs)
    assert (tmp_path / "timeseries.h5").read_bytes() == before
    assert leftovers(tmp_path) == []


# -- gathered values and snapshots --------------------------------------------------------

def test_gather_cell_values_polygons_and_dg2_cell_averages():
    msh = quads(MPI.COMM_SELF, (3, 2))
    V = fem.functionspace(msh, ("DG", 2))
    fn = fem.Function(V, name="rho")
    fn.interpolate(lambda x: x[0] ** 2 + x[1])  # exact in DG2
    polygons, values = gather_cell_values(fn, to_theta=lambda X: 2.0 * X)
    assert polygons.shape == (6, 4, 2)
    X = polygons / 2.0
    lo, hi = X.min(axis=1), X.max(axis=1)
    exact = (hi[:, 0] ** 3 - lo[:, 0] ** 3) / (3 * (hi[:, 0] - lo[:, 0])) \
        + (lo[:, 1] + hi[:, 1]) / 2
    np.testing.assert_allclose(values, exact, rtol=1e-12)
    # vertices go round each cell: consecutive vertices differ in one coordinate only
    steps = np.diff(np.concatenate([X, X[:, :1]], axis=1), axis=1)
    assert np.all(np.sum(np.abs(steps) > 1e-12, axis=2) == 1)
    np.testing.assert_allclose(np.prod(hi - lo, axis=1), 1.0 * 1.5)


@pytest.mark.mpi
def test_gather_is_independent_of_the_partition():
    comm = MPI.COMM_WORLD
    parallel = gather_cell_values(density(quads(comm)))
    if comm.rank == 0:
        serial = gather_cell_values(density(quads(MPI.COMM_SELF)))
        np.testing.assert_array_equal(parallel[0], serial[0])
        np.testing.assert_array_equal(parallel[1], serial[1])
    else:
        assert parallel is None


def _absent(*paths: Path) -> None:
    assert not any(p.exists() for p in paths)


def _xdmf_cell_values(h5_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(cell centroids, last step's cell values) of a DOLFINx XDMF/HDF5 file."""
    with h5py.File(h5_path) as h5:
        x = h5["Mesh/mesh/geometry"][()]
        cells = h5["Mesh/mesh/topology"][()]
        steps = h5["Function/rho"]
        last = sorted(steps, key=float)[-1]
        return x[cells].mean(axis=1), steps[last][()].ravel()


def _match(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Index into reference of each point (nearest; they coincide here)."""
    d = np.linalg.norm(points[:, None, :] - reference[None, :, :], axis=2)
    assert np.all(d.min(axis=1) < 1e-12)
    return d.argmin(axis=1)


@pytest.mark.mpi
@pytest.mark.parametrize("degree", [0, 2])
def test_snapshots_vtx_and_xdmf(tmp_path, degree):
    comm = MPI.COMM_WORLD
    out = shared_dir(comm, tmp_path)
    rho = density(quads(comm), degree)
    with SnapshotWriter(out / "rho.bp", rho) as vtx, SnapshotWriter(out / "rho.xdmf", rho) as xd:
        for t in (0.0, 0.5):
            # nothing looks finished while the run goes on
            on_root(comm, lambda: _absent(out / "rho.bp", out / "rho.xdmf"))
            vtx.write(t)
            xd.write(t)
            rho.x.array[:] *= 2.0
    comm.barrier()
    if comm.rank != 0:
        assert vtx.snapshots == []
        return
    assert leftovers(out) == []
    bp = out / "rho.bp"
    assert (bp / "md.idx").is_file() and (bp / "data.0").is_file()
    schema = (bp / "md.0").read_bytes()
    where = b"<CellData>" if degree == 0 else b"<PointData>"
    assert where in schema and b'Name="rho"' in schema[schema.index(where):]

    assert [s[0] for s in vtx.snapshots] == [0.0, 0.5]
    polygons, values = vtx.snapshots[-1][1:]
    np.testing.assert_allclose(vtx.snapshots[-1][2], 2.0 * vtx.snapshots[0][2], rtol=1e-14)
    assert "rho.h5" in (out / "rho.xdmf").read_text()
    centroids, stored = _xdmf_cell_values(out / "rho.h5")
    index = _match(polygons.mean(axis=1), centroids[:, :2])
    np.testing.assert_allclose(stored[index], values, rtol=1e-13)
    serial = gather_cell_values(density(quads(MPI.COMM_SELF), degree))
    np.testing.assert_allclose(values, 2.0 * serial[1], rtol=1e-13)


# -- checkpoints ------------------------------------------------------------------------

META = {"t": 0.75, "step": 123, "dt": 1e-3, "settings": PDESettings(cells=(6, 4)),
        "note": "final"}


@pytest.mark.parametrize("degree", [0, 1, 2])
def test_checkpoint_round_trip_serial(tmp_path, degree):
    msh = quads(MPI.COMM_SELF)
    rho = density(msh, degree)
    write_checkpoint(tmp_path / "state.h5", msh, rho, META)
    assert leftovers(tmp_path) == []
    back = fem.Function(rho.function_space)
    meta = read_checkpoint(tmp_path / "state.h5", msh, back)
    np.testing.assert_array_equal(back.x.array, rho.x.array)
    assert meta == json.loads(json.dumps({**META, "settings": asdict(META["settings"])}))
    assert meta["settings"]["max_step"] == np.inf


def test_checkpoint_with_fields_and_arrays(tmp_path):
    """More functions of the same space and global arrays ride along, checksummed; the
    meta the caller expects (a run's fingerprint) is checked."""
    msh = quads(MPI.COMM_SELF)
    rho = density(msh, 1)
    earlier = 3.0 * rho.x.array
    arrays = {"rows.t": np.linspace(0, 1, 7), "outputs.f": np.arange(12.0).reshape(3, 4)}
    write_checkpoint(tmp_path / "state.h5", msh, rho, {**META, "fingerprint": "abc"},
                     fields={"snapshot0": earlier}, arrays=arrays)
    back = fem.Function(rho.function_space)
    ckpt = load_checkpoint(tmp_path / "state.h5", msh, back, expect={"fingerprint": "abc"})
    np.testing.assert_array_equal(back.x.array, rho.x.array)
    np.testing.assert_array_equal(ckpt.fields["snapshot0"], earlier)
    assert list(ckpt.arrays) == list(arrays)
    for key, value in arrays.items():
        np.testing.assert_array_equal(ckpt.arrays[key], value)
    with pytest.raises(CheckpointError, match="another run: its fingerprint is 'abc'"):
        load_checkpoint(tmp_path / "state.h5", msh, back, expect={"fingerprint": "xyz"})
    with h5py.File(tmp_path / "state.h5") as h5:
        offsets = [h5[name].id.get_offset() + 13 for name in ("fields/snapshot0",
                                                               "arrays/outputs.f")]
    for offset in offsets:
        copy = tmp_path / f"flipped-{offset}.h5"
        copy.write_bytes((tmp_path / "state.h5").read_bytes())
        _flip(copy, offset)
        with pytest.raises(CheckpointError, match="checksum"):
            load_checkpoint(copy, msh, back)


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x10]))


def test_checkpoint_truncated_or_corrupted_raises(tmp_path):
    msh = interval(MPI.COMM_SELF)
    rho = density(msh, 1)
    good = tmp_path / "state.h5"
    write_checkpoint(good, msh, rho, META)
    data = good.read_bytes()
    with h5py.File(good) as h5:
        value_offset = h5["values"].id.get_offset() + 8 * 5 + 3
        coord_offset = h5["dof_coordinates"].id.get_offset() + 8

    target = fem.Function(rho.function_space)
    target.x.array[:] = -7.0

    def check(path: Path, match: str) -> None:
        with pytest.raises(CheckpointError, match=match):
            read_checkpoint(path, msh, target)
        assert np.all(target.x.array == -7.0)  # nothing loaded

    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 2])
    check(truncated, "truncated|unreadable")
    for name, offset in (("value", value_offset), ("coordinate", coord_offset),
                         ("meta", data.index(b'"step": 123') + 9)):
        flipped = tmp_path / f"flipped-{name}.h5"
        flipped.write_bytes(data)
        _flip(flipped, offset)
        check(flipped, "checksum")
    (tmp_path / "empty.h5").write_bytes(b"")
    check(tmp_path / "empty.h5", "unreadable")
    check(tmp_path / "missing.h5", "no such checkpoint")

    other = fem.Function(fem.functionspace(msh, ("DG", 2)))
    with pytest.raises(CheckpointError, match="element"):
        read_checkpoint(good, msh, other)
    finer = interval(MPI.COMM_SELF, 13)
    with pytest.raises(CheckpointError, match="n_cells"):
        read_checkpoint(good, finer, fem.Function(fem.functionspace(finer, ("DG", 1))))
    shifted = mesh.create_interval(MPI.COMM_SELF, 12, [-2.0, 4.0], ghost_mode=GHOST)
    with pytest.raises(CheckpointError, match="another mesh"):
        read_checkpoint(good, shifted, fem.Function(fem.functionspace(shifted, ("DG", 1))))
    read_checkpoint(good, msh, target)  # the original still loads
    np.testing.assert_array_equal(target.x.array, rho.x.array)


@pytest.mark.mpi
@pytest.mark.parametrize("degree", [0, 2])
def test_checkpoint_restart_on_another_rank_count(tmp_path, degree):
    """Written on all ranks, read on one (and the reverse): the same values per cell."""
    comm = MPI.COMM_WORLD
    out = shared_dir(comm, tmp_path)
    msh = quads(comm)
    rho = density(msh, degree)
    write_checkpoint(out / "parallel.h5", msh, rho, META, fields={"twice": 2 * rho.x.array})

    def serial_side():
        serial_mesh = quads(MPI.COMM_SELF)
        serial = fem.Function(fem.functionspace(serial_mesh, ("DG", degree)), name="rho")
        ckpt = load_checkpoint(out / "parallel.h5", serial_mesh, serial)
        assert ckpt.meta["step"] == 123
        np.testing.assert_allclose(serial.x.array, density(serial_mesh, degree).x.array,
                                   rtol=0, atol=1e-14)
        np.testing.assert_array_equal(ckpt.fields["twice"], 2 * serial.x.array)
        write_checkpoint(out / "serial.h5", serial_mesh, serial, META,
                         fields={"twice": ckpt.fields["twice"]})
        with h5py.File(out / "parallel.h5") as a, h5py.File(out / "serial.h5") as b:
            np.testing.assert_array_equal(a["values"][()], b["values"][()])
            assert a.attrs["sha256"] == b.attrs["sha256"]

    on_root(comm, serial_side)

    back = fem.Function(rho.function_space)
    ckpt = load_checkpoint(out / "serial.h5", msh, back)
    np.testing.assert_array_equal(back.x.array, rho.x.array)  # ghosts included
    np.testing.assert_array_equal(ckpt.fields["twice"], 2 * rho.x.array)

    def corrupt():
        with h5py.File(out / "serial.h5") as h5:
            offset = h5["values"].id.get_offset() + 11
        _flip(out / "serial.h5", offset)

    on_root(comm, corrupt)
    with pytest.raises(CheckpointError, match="checksum"):  # raised on every rank
        read_checkpoint(out / "serial.h5", msh, back)


# -- plots -----------------------------------------------------------------------------

def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG and path.stat().st_size > 5000


@pytest.mark.parametrize("make", [interval, quads], ids=["1d", "2d"])
def test_snapshot_plots_write_png(tmp_path, make):
    rho = density(make(MPI.COMM_SELF), 0)
    polygons, values = gather_cell_values(rho)
    snaps = [(0.0, polygons, values), (0.5, polygons, 2 * values), (1.0, polygons, values**2)]
    if polygons.shape[2] == 1:
        assert _is_png(plot_snapshots(tmp_path / "rho.png", snaps, "interval"))
    else:
        assert _is_png(plot_snapshots(tmp_path / "rho.png", snaps, "rectangle", log=True))
    assert leftovers(tmp_path) == []


def test_energy_plot_writes_png(tmp_path):
    steps, _, _ = _series()
    steps["loss"] = steps["energy"] * 0.9
    steps["boundary_outflow"] = np.zeros(len(steps["t"]))
    assert _is_png(plot_energy(tmp_path / "energy.png", steps))
    del steps["dEdt"], steps["mass"]  # -dE/dt from E itself; a missing panel is marked
    assert _is_png(plot_energy(tmp_path / "energy2.png", steps))
    assert leftovers(tmp_path) == []


def test_periodic_cells_are_cut_at_the_angle_seam(tmp_path):
    """A cylinder cell across z = +-pi is drawn twice, each copy no wider than the cell."""
    h = 0.2
    z = np.array([np.pi - h, -np.pi + h, -np.pi + h, np.pi - h])
    polys = np.stack([np.array([0.0, 0.0, 1.0, 1.0]), z], axis=-1)[None]
    cells, vals = _cylinder_polys(polys, np.array([3.0]))
    assert len(cells) == 2 and list(vals) == [3.0, 3.0]
    for cell in cells:
        assert np.ptp(cell[:, 1]) == pytest.approx(2 * h)
        assert cell[:, 1].min() < np.pi and cell[:, 1].max() > -np.pi
    # the same cell as mesh points (c, cos z, sin z)
    X = np.stack([polys[0, :, 0], np.cos(z), np.sin(z)], axis=-1)[None]
    assert np.allclose(_cylinder_polys(X, np.array([3.0]))[0][0], cells[0])

    # a sphere triangle at the north pole across the date line
    lon = np.radians([170.0, -170.0])
    lat = np.radians(80.0)
    pts = np.array([[0.0, 0.0, 1.0], *[[np.cos(a) * np.cos(lat), np.sin(a) * np.cos(lat),
                                        np.sin(lat)] for a in lon]])
    cells, vals = _sphere_polys(pts[None], np.array([1.0]))
    assert len(cells) == 2
    for cell in cells:
        assert np.ptp(cell[:, 0]) == pytest.approx(20.0)
        assert cell[:, 1].max() == pytest.approx(90.0)

    # and both draw
    pts_many = np.repeat(pts[None], 3, axis=0)
    path = plot_snapshots(tmp_path / "sphere.png", [(0.0, pts_many, np.ones(3))], "sphere S^2")
    assert path.read_bytes()[:8] == PNG
    assert (plot_snapshots(tmp_path / "cyl.png", [(0.0, polys, np.ones(1))], "cylinder")
            .read_bytes()[:8] == PNG)


def test_checkpoint_files_are_never_half_written(tmp_path, monkeypatch):
    """A failure while writing leaves the previous checkpoint and no temporary file."""
    msh = interval(MPI.COMM_SELF)
    rho = density(msh)
    write_checkpoint(tmp_path / "state.h5", msh, rho, META)
    before = (tmp_path / "state.h5").read_bytes()
    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr("solver.pde.checkpoint.checksum", broken)  # mid-way through the file
    with pytest.raises(CheckpointError, match=r"writing.*disk full"):
        write_checkpoint(tmp_path / "state.h5", msh, rho, META)
    assert (tmp_path / "state.h5").read_bytes() == before
    assert leftovers(tmp_path) == [] and os.listdir(tmp_path) == ["state.h5"]


@pytest.mark.parametrize("cell", [mesh.CellType.hexahedron, mesh.CellType.tetrahedron])
def test_3d_snapshots_show_the_marginal(tmp_path, cell):
    """rho = 1 + x + y on [0,1] x [0,2] x [0,0.5]: the theta_3 marginal is (1 + x + y) / 2."""
    msh = mesh.create_box(MPI.COMM_SELF, [[0, 0, 0], [1, 2, 0.5]], [3, 3, 3], cell)
    rho = fem.Function(fem.functionspace(msh, ("DG", 0)), name="rho")
    rho.interpolate(lambda x: 1 + x[0] + x[1])
    polygons, values = gather_cell_values(rho)
    rects, marginal = _box_marginal(polygons, values)
    centre = np.array([r.mean(axis=0) for r in rects])
    assert len(rects) == 9
    np.testing.assert_allclose(marginal, 0.5 * (1 + centre[:, 0] + centre[:, 1]), rtol=1e-12)
    path = plot_snapshots(tmp_path / "rho.png", [(0.0, polygons, values)], "box")
    assert path.read_bytes()[:8] == PNG


def test_dissipation_defects_are_relative_to_the_local_dissipation():
    """dE/dt = -D exactly on E = exp(-t) sampled finely; a 17% error in D late in the run
    (where D is small) shows as 0.17 / 1.17 pointwise, not diluted by the largest D."""
    from solver.pde.run_writer import dissipation_defects

    t = np.linspace(0.0, 5.0, 2001)
    energy = np.exp(-t)
    diss = np.exp(-t)
    steps = {"t": t, "dt": np.r_[0.0, np.diff(t)], "energy": energy, "dissipation": diss,
             "dEdt": np.r_[0.0, np.diff(energy) / np.diff(t)]}
    exact = dissipation_defects(steps)
    assert exact["dissipation_identity_max_rel_defect"] < 1e-5
    assert exact["dissipation_identity_integrated_rel_defect"] < 1e-5
    steps["dissipation"] = np.where(t > 4.0, 1.17 * diss, diss)
    wrong = dissipation_defects(steps)
    assert wrong["dissipation_identity_max_rel_defect"] == pytest.approx(0.17 / 1.17, rel=1e-3)
    assert wrong["dissipation_identity_max_rel_defect_t"] > 4.0  # where it happened
    assert 1e-3 < wrong["dissipation_identity_integrated_rel_defect"] < 0.01


def test_a_run_stores_its_data_and_the_smallest_value_a_reader_sees(tmp_path, monkeypatch):
    """timeseries.h5 holds x_m, w_m, y_m: f_t is plotted and its loss recomputed from the file
    alone. The summary's min_rho_written is the smallest nodal value of the DG snapshots
    (read back from the checkpoint's copies of them; negative here), while min_rho, at the
    limiter points it names, is >= 0; the semi-discrete dissipation defect is reported."""
    from solver.checkpoint_file import read_checkpoint_file
    from solver.pde.solve import solve
    from tests.conftest import circle_problem

    for name in ("plot_energy", "plot_snapshots"):
        monkeypatch.setattr(f"solver.pde.run_writer.{name}",
                            lambda path, *a, **k: path.write_bytes(b"figure"))
    problem = circle_problem(t_final=0.2)
    settings = PDESettings(cells=(6, 6), scheme="dg", degree=2, integrator="ssprk3",
                           outputs=2, snapshots=2, progress=False)
    solve(problem, settings, RunDirectory(tmp_path), comm=MPI.COMM_SELF)
    _, outputs, _ = read_timeseries(tmp_path / "timeseries.h5")
    np.testing.assert_array_equal(outputs["x"], problem.data.points)
    np.testing.assert_array_equal(outputs["w"], problem.data.weights)
    np.testing.assert_array_equal(outputs["y"], problem.y)
    loss = 0.5 * ((outputs["f"] - outputs["y"]) ** 2 @ outputs["w"])
    np.testing.assert_allclose(loss, outputs["loss"], rtol=1e-13)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot(outputs["x"][:, 0], outputs["y"], "k.")
    ax.plot(outputs["x"][:, 0], outputs["f"][-1])
    fig.savefig(tmp_path / "f_t.png")
    plt.close(fig)
    assert (tmp_path / "f_t.png").read_bytes()[:8] == PNG

    summary = json.loads((tmp_path / "summary.json").read_text())
    fields = read_checkpoint_file(tmp_path / "checkpoint.h5").fields
    snapshots = [fields[k] for k in fields if k.startswith("snapshot")]
    assert len(snapshots) == 2
    assert summary["min_rho_written"] == min(v.min() for v in snapshots) < 0
    assert summary["min_rho_written_where"] == "rho.bp: nodal values of the DG element (point data)"
    assert summary["min_rho"] >= 0
    assert summary["min_rho_where"].startswith("the limiter points")
    assert summary["dissipation_identity_max_rel_defect"] < 1e-2
    assert 0 < summary["dissipation_identity_semidiscrete_rel_defect"] < 1e-2
