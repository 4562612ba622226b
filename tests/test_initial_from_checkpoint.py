"""Starting a run from a density given on a mesh: the checkpoint of an earlier PDE run.

The PDE starts from exactly the stored field; particles draw it cell by cell (cells by
mass, points uniform in a cell); bad files, dimensions, domains and meshes are refused
with errors naming initial.file (and [pde])."""

import shutil
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

pytest.importorskip("dolfinx", reason="needs DOLFINx")
import h5py
from mpi4py import MPI

from solver.checkpoint_file import CELL_VERTICES, load_cell_density
from solver.config import ConfigError, parse
from solver.io import RunDirectory
from solver.model.cell_density import CellDensity
from solver.model.domain import Box
from solver.pde.checkpoint import load_checkpoint, write_checkpoint
from solver.pde.solve import make_scheme, solve
from tests.ranks import assert_ranks_agree, assert_runs_agree, on_root, shared_dir

P_FLOOR = 1e-4  # a correct sampler fails the chi-square test with probability 1e-4
FIRST = """
name = "first"
[problem]
t_final = 0.2
[unit]
kind = "circle_rbf"
width = 0.5
[data]
kind = "circle_lattice"
points = 32
[target]
kind = "teacher"
theta = [[2.0, -1.0], [-1.5, 0.3], [1.5, 1.2]]
[domain]
kind = "box"
lower = [-5.0, -3.141592653589793]
upper = [5.0, 3.141592653589793]
[initial]
kind = "gaussian"
mean = [0.0, 0.0]
std = [0.5, 0.6]
[pde]
cells = [8, 8]
outputs = 2
snapshots = 2
max_step = 0.02
"""


@pytest.fixture(autouse=True)
def no_figures(monkeypatch):
    """The figures are tested in test_output.py: a stub file instead (seconds saved)."""
    def stub(path, *args, **kwargs):
        path.write_bytes(b"figure")
        return path

    monkeypatch.setattr("solver.pde.run_writer.plot_energy", stub)
    monkeypatch.setattr("solver.pde.run_writer.plot_snapshots", stub)


def config(base: Path, initial: dict | None = None, tables: dict | None = None, **sections):
    """FIRST with [initial] and ``tables`` replaced and sections updated (key: {k: v}),
    read relative to ``base``; (problem, pde settings with the progress bar off)."""
    raw = tomllib.loads(FIRST)
    raw.update(tables or {})
    if initial is not None:
        raw["initial"] = initial
    for key, values in sections.items():
        raw[key] = {**raw.get(key, {}), **values}
    cfg = parse(raw, base)
    return cfg.problem, replace(cfg.pde, progress=False)


def first_run(directory: Path, comm=MPI.COMM_SELF, **sections):
    """The first run (FIRST with sections updated), written to directory/first."""
    problem, settings = config(directory, **sections)
    run = solve(problem, settings, RunDirectory(directory / "first", writer=comm.rank == 0),
                comm=comm)
    return run, problem, settings


FROM_FIRST = {"kind": "checkpoint", "file": "first/checkpoint.h5"}


@pytest.mark.parametrize("pde", [{}, {"scheme": "dg", "degree": 2, "integrator": "ssprk3"}],
                         ids=["fv", "dg2"])
def test_second_run_starts_where_the_first_ended(tmp_path, pde):
    """[initial] kind = "checkpoint": the second run's E, f, MC and mass at t = 0 are the
    first run's at t_final, and with field = "snapshot0" the first run's at t = 0."""
    first, _, _ = first_run(tmp_path, pde=pde)
    problem, settings = config(tmp_path, FROM_FIRST, pde=pde)
    assert isinstance(problem.initial, CellDensity) and problem.initial.dim == 2
    second = solve(problem, settings, comm=MPI.COMM_SELF)
    for key in ("energy", "loss", "mc", "f"):
        np.testing.assert_allclose(getattr(second, key)[0], getattr(first, key)[-1],
                                   rtol=1e-13, atol=1e-16, err_msg=key)
    assert second.steps["mass"][0] == pytest.approx(first.steps["mass"][-1], rel=1e-14)
    assert second.energy[-1] < second.energy[0]  # and it moves on from there

    problem, settings = config(tmp_path, {**FROM_FIRST, "field": "snapshot0"}, pde=pde)
    again = solve(problem, settings, comm=MPI.COMM_SELF)
    np.testing.assert_allclose(again.f[0], first.f[0], rtol=1e-13, atol=1e-16)
    assert again.energy[0] == pytest.approx(first.energy[0], rel=1e-13)


@pytest.fixture(scope="module")
def fine(tmp_path_factory):
    """A 48 x 48 finite-volume run to t = 0.05, and a second config starting from it."""
    directory = tmp_path_factory.mktemp("fine")
    first_run(directory, problem={"t_final": 0.05}, pde={"cells": [48, 48]})
    problem, settings = config(directory, FROM_FIRST, problem={"t_final": 0.02},
                               pde={"cells": [48, 48]})
    return directory, problem, settings


def cells_of(theta: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """The cell of each point, for a structured mesh of axis-aligned rectangles."""
    lo, hi = vertices.min(axis=1), vertices.max(axis=1)
    edges = [np.unique(lo[:, j]) for j in range(2)]
    grid = np.full([len(e) for e in edges], -1)
    grid[np.searchsorted(edges[0], lo[:, 0]), np.searchsorted(edges[1], lo[:, 1])] = \
        np.arange(len(lo))
    where = [np.clip(np.searchsorted(e, theta[:, j], side="right") - 1, 0, len(e) - 1)
             for j, e in enumerate(edges)]
    cells = grid[where[0], where[1]]
    assert np.all(cells >= 0) and np.all((theta >= lo[cells]) & (theta <= hi[cells]))
    return cells


def chi_square_pvalue(counts: np.ndarray, masses: np.ndarray) -> float:
    """p-value of cell counts against the multinomial with these masses; the cells
    expecting fewer than 5 draws are pooled into one bin (the chi-square needs >= 5)."""
    expected = counts.sum() * masses / masses.sum()
    small = expected < 5
    if expected[small].sum() == 0:  # cells without mass: no draw may land there
        return float(stats.chisquare(counts[~small], expected[~small]).pvalue
                     if counts[small].sum() == 0 else 0.0)
    return float(stats.chisquare(np.append(counts[~small], counts[small].sum()),
                                 np.append(expected[~small], expected[small].sum())).pvalue)


def test_particles_draw_the_cell_masses(fine):
    """Cell frequencies of 40000 draws against the stored masses: chi-square p > 1e-4."""
    _, problem, _ = fine
    rho = problem.initial
    theta = problem.sample_initial(np.random.default_rng(0), 40_000)
    counts = np.bincount(cells_of(theta, rho.vertices), minlength=len(rho.masses))
    assert chi_square_pvalue(counts, rho.masses) > P_FLOOR
    # the same draws with the masses ignored (uniform over the cells with mass) fail
    assert chi_square_pvalue(counts, (rho.masses > 1e-6).astype(float)) < 1e-20


def gauss_in_rectangles(vertices: np.ndarray, order: int = 6):
    """Points (C, q, 2) and weights (C, q) of a tensor Gauss rule in each rectangle."""
    x, w = np.polynomial.legendre.leggauss(order)
    lo, hi = vertices.min(axis=1), vertices.max(axis=1)
    u = np.stack(np.meshgrid((x + 1) / 2, (x + 1) / 2, indexing="ij"), axis=-1).reshape(-1, 2)
    weights = np.outer(w / 2, w / 2).ravel()
    return lo[:, None] + u[None] * (hi - lo)[:, None], np.broadcast_to(weights, (len(lo),
                                                                                  len(weights)))


def test_f_n_at_t0_converges_to_the_pde_at_the_monte_carlo_rate(fine):
    """n ||f_n(0) - f_0||^2 over R = 300 draws of n i.i.d. particles, n = 64 and 1024.

    For i.i.d. draws E[n gap^2] = V + n |b|^2 exactly, with V = sum_m w_m Var s(x_m; .)
    and b = E f_n - f_0 under the sampled (piecewise-constant) measure, both computed
    with a 6 x 6 Gauss rule per cell; the mean of R draws lies within 4 standard errors
    of it (the t-statistic of 300 draws, beyond 4 with probability < 1e-4). V + n |b|^2
    is the PDE's MC(0) up to the mesh's O(h^2): the sampled measure spreads each cell's
    mass over the cell, the PDE's centroid rule keeps it at the centroid (measured: +5.8%
    on 24 x 24 cells, +1.45% on 48 x 48); here within 2%."""
    _, problem, settings = fine
    pde = solve(problem, settings, comm=MPI.COMM_SELF)
    f0, mc0 = pde.f[0], pde.mc[0]
    rho, unit, data = problem.initial, problem.unit, problem.data
    points, weights = gauss_in_rectangles(rho.vertices)
    cell_weights = (weights * (rho.masses / weights.sum(axis=1))[:, None]).ravel()
    s = unit.values(data.points, points.reshape(-1, 2))  # (M, C q)
    mean, second = s @ cell_weights, s**2 @ cell_weights
    variance = data.weights @ (second - mean**2)
    bias2 = data.weights @ (mean - f0) ** 2
    rng = np.random.default_rng(1)
    R = 300
    for n in (64, 1024):
        theta = problem.sample_initial(rng, R * n)
        fn = unit.values(data.points, theta).reshape(len(data.points), R, n).mean(axis=2)
        scaled = n * (data.weights @ (fn - f0[:, None]) ** 2)  # (R,)
        expected = variance + n * bias2
        error = scaled.std(ddof=1) / np.sqrt(R)
        assert abs(scaled.mean() - expected) < 4 * error, (n, scaled.mean(), expected, error)
        assert expected == pytest.approx(mc0, rel=0.02), (n, expected, mc0)


# -- refused ---------------------------------------------------------------------------------


def test_bad_files_are_refused_with_errors_naming_initial_file(fine, tmp_path):
    directory, _, _ = fine
    good = directory / "first" / "checkpoint.h5"
    corrupted = tmp_path / "corrupted.h5"
    shutil.copy(good, corrupted)
    with h5py.File(corrupted, "r+") as h5:
        h5["values"][3] = h5["values"][3] * (1 + 1e-12)
    with pytest.raises(ConfigError, match=r"initial\.file: .*corrupted.h5.*checksum"):
        config(tmp_path, {"kind": "checkpoint", "file": "corrupted.h5"})
    with pytest.raises(ConfigError, match=r"initial\.file: .*nope.h5: no such checkpoint"):
        config(tmp_path, {"kind": "checkpoint", "file": "nope.h5"})
    with pytest.raises(ConfigError, match=r"initial\.field: 'snapshot9' is not in .*"
                                          r"stored fields: snapshot0, snapshot1"):
        config(directory, {**FROM_FIRST, "field": "snapshot9"})
    with pytest.raises(ConfigError, match=r"initial\.bogus: unknown key"):
        config(directory, {**FROM_FIRST, "bogus": 1})


def test_old_checkpoints_resume_but_are_no_initial_density(tmp_path):
    """A format-2 checkpoint without the mesh arrays still loads for a restart; as an
    initial density it is refused, naming what is missing and the fix."""
    problem, settings = config(tmp_path)
    scheme = make_scheme(problem, settings, MPI.COMM_SELF)
    scheme.set_density(scheme.initial_density())
    old = tmp_path / "old.h5"
    write_checkpoint(old, scheme.mesh, scheme.rho, {"t": 0.0})
    assert load_checkpoint(old, scheme.mesh, scheme.rho.copy()).meta == {"t": 0.0}
    with pytest.raises(ConfigError, match=r"initial\.file: .*old.h5: this checkpoint has no "
                                          r"/arrays/mesh.cell_vertices.*meta.domain.*rerun"):
        config(tmp_path, {"kind": "checkpoint", "file": "old.h5"})


def test_mismatched_dimension_domain_and_mesh_are_refused(fine):
    directory, problem, settings = fine
    with pytest.raises(ConfigError, match=r"initial\.file: .* holds a density of 2 parameters "
                                          r".* this problem has 1 .*start from a checkpoint"):
        config(directory, FROM_FIRST, tables={
            "unit": {"kind": "circle_bump", "width": 0.5}, "domain": {"kind": "circle"},
            "target": {"kind": "expression", "expression": "cos(x)"}})
    with pytest.raises(ConfigError, match=r"initial\.file: .* holds a density on the box .*"
                                          r"use the \[domain\] of the run that wrote it"):
        config(directory, FROM_FIRST, domain={"lower": [-6.0, -3.141592653589793]})
    with pytest.raises(ConfigError, match=r"\[pde\]: cells = \[16, 16\], but initial\.file .* "
                                          r"written with cells = \[48, 48\]"):
        config(directory, FROM_FIRST, pde={"cells": [16, 16]})
    with pytest.raises(ConfigError, match=r"\[pde\]: scheme = 'dg', .*scheme = 'fv'"):
        config(directory, FROM_FIRST, pde={"cells": [48, 48], "scheme": "dg",
                                           "integrator": "ssprk3"})
    # past the config (settings built by hand): solve refuses too, before any work
    with pytest.raises(ValueError, match=r"\[pde\]: cells = \[12, 12\]"):
        solve(problem, replace(settings, cells=(12, 12)), comm=MPI.COMM_SELF)
    # and the file's own mesh check (dof coordinates) backs the settings check up
    stored = problem.initial.settings
    moved = replace(problem.initial, settings={**stored, "cells": [12, 12]})
    with pytest.raises(ValueError, match=r"initial\.file: .*n_cells is 2304 in the checkpoint "
                                         r"but 144.*\[pde\] mesh"):
        solve(replace(problem, initial=moved), replace(settings, cells=(12, 12)),
              comm=MPI.COMM_SELF)


def test_negative_nonfinite_and_massless_densities_are_refused(fine):
    directory, _, _ = fine
    rho = load_cell_density(directory / "first" / "checkpoint.h5")
    box = Box((0.0, 0.0), (1.0, 1.0))
    verts = rho.vertices[:2]

    def make(masses):
        return CellDensity(box, verts, "quadrilateral", np.array(masses), np.ones(2), "x.h5")

    with pytest.raises(ValueError, match=r"initial\.file: x.h5: the density is negative"):
        make([1.0, -1e-3])
    with pytest.raises(ValueError, match=r"initial\.file: x.h5: the density is not finite"):
        make([1.0, np.nan])
    with pytest.raises(ValueError, match=r"initial\.file: x.h5: the density has no mass"):
        make([0.0, 0.0])
    np.testing.assert_array_equal(make([1.0, -1e-13]).masses, [1.0, 0.0])  # round-off
    with pytest.raises(NotImplementedError, match=r"initial\.file: .*no pointwise pdf"):
        rho.pdf(np.zeros((1, 2)))
    assert rho.vertices.shape == (2304, 4, 2) and CELL_VERTICES == "mesh.cell_vertices"
    assert rho.masses.sum() == pytest.approx(1.0, rel=1e-14)


@pytest.mark.mpi
@pytest.mark.parametrize("pde", [{}, {"scheme": "dg", "degree": 1, "integrator": "ssprk3"}],
                         ids=["fv", "dg1"])
def test_start_from_a_checkpoint_on_two_ranks_gives_the_serial_answer(tmp_path, pde):
    """The first run on all ranks writes the checkpoint; the second run from it on all
    ranks equals the second run on one rank (to the round-off of the reductions)."""
    comm = MPI.COMM_WORLD
    out = shared_dir(comm, tmp_path)
    first, _, _ = first_run(out, comm, pde=pde)
    problem, settings = config(out, FROM_FIRST, pde=pde)
    parallel = solve(problem, settings, comm=comm)

    def serial_side():
        serial = solve(problem, settings, comm=MPI.COMM_SELF)
        assert_runs_agree(serial, parallel)
        assert_ranks_agree(serial.f[0], first.f[-1], "f at the start")

    on_root(comm, serial_side)
