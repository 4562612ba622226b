"""Checkpoint/restart of the PDE: a resumed run equals an uninterrupted one, on another
number of ranks too; broken or foreign checkpoints are refused, never loaded (particles:
test_particle_restart.py)."""

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("dolfinx", reason="needs DOLFINx")
import h5py
from mpi4py import MPI

from solver import preemption
from solver.io import RunDirectory
from solver.pde.checkpoint import CheckpointError, read_checkpoint
from solver.pde.output import read_timeseries
from solver.pde.solve import solve
from solver.settings import PDESettings
from tests.conftest import circle_problem
from tests.ranks import RANKS_RTOL, assert_runs_agree, on_root, shared_dir
from tests.test_particle_restart import stop_after

#: t_final 0.3, outputs at 0.1, 0.2, 0.3: steps of 0.02 land on an output at step 5.
BASE = PDESettings(cells=(8, 8), outputs=3, snapshots=2, max_step=0.02, progress=False)
#: settings, beta, the step that ends on the first output time
CASES = {
    "fv-ssprk2": (BASE, np.inf, 5),
    "dg2-ssprk3": (replace(BASE, scheme="dg", degree=2, integrator="ssprk3"), np.inf, 5),
    "fv-implicit": (replace(BASE, integrator="implicit", time_tolerance=2e-5,
                            max_step=np.inf), 50.0, 3),
    "lagrangian": (replace(BASE, scheme="lagrangian", degree=2, integrator="dopri5"),
                   np.inf, 8),
}


@pytest.fixture(autouse=True)
def no_figures():
    """The figures (tested in test_output.py) take seconds to draw: a stub file instead."""
    def stub(path, *args, **kwargs):
        path.write_bytes(b"figure")
        return path

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("solver.pde.run_writer.plot_energy", stub)
        patch.setattr("solver.pde.run_writer.plot_snapshots", stub)
        yield


def _problem(beta: float = np.inf):
    return replace(circle_problem(lam=0.05, t_final=0.3), beta=beta)


def run_to(monkeypatch, problem, settings, run_dir, calls, resume, comm=MPI.COMM_SELF):
    """A run (resumed or not) pre-empted at its ``calls``-th step."""
    stop_after(monkeypatch, calls)
    with pytest.raises(preemption.Preempted, match=r"pre-empted .* at step \d+"):
        solve(problem, settings, run_dir, comm=comm, resume=resume)
    monkeypatch.undo()


def checkpoint_datasets(path) -> dict[str, np.ndarray]:
    out = {}

    def keep(name, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[()]

    with h5py.File(path) as h5:
        h5.visititems(keep)
    return out


def assert_same_run(a, b) -> None:
    """Bitwise: every step column, every output, the final density."""
    assert list(a.steps) == list(b.steps)
    for key in a.steps:
        np.testing.assert_array_equal(np.array(a.steps[key]), np.array(b.steps[key]), key)
    for key in ("times", "f", "energy", "loss", "mc"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), key)
    np.testing.assert_array_equal(a.scheme.density(), b.scheme.density())


@pytest.mark.parametrize("case", CASES)
def test_pde_resumed_twice_equals_uninterrupted(tmp_path, monkeypatch, case):
    """Pre-empted on the first output time (before that output is recorded) and again 6
    steps later, resumed: the same steps, outputs, density and snapshots, bit for bit."""
    settings, beta, on_output = CASES[case]
    problem = _problem(beta)
    whole = solve(problem, settings, RunDirectory(tmp_path / "whole"), comm=MPI.COMM_SELF)
    t1 = settings.output_times(problem.t_final)[1]
    assert len(whole.steps["t"]) > on_output + 7 and whole.steps["t"][on_output] == t1
    parts = RunDirectory(tmp_path / "parts")
    run_to(monkeypatch, problem, settings, parts, on_output, resume=False)
    steps, _, attrs = read_timeseries(parts.path / "timeseries.h5")
    assert attrs["status"].startswith("pre-empted") and steps["step"][-1] == on_output
    meta = read_checkpoint(parts.path / "checkpoint.h5", whole.scheme.mesh,
                           whole.scheme.rho.copy())
    assert (meta["step"], meta["index"], meta["t"]) == (on_output, 1, t1)
    assert not (parts.path / "summary.json").exists()
    run_to(monkeypatch, problem, settings, parts, 6, resume=True)
    resumed = solve(problem, settings, parts, comm=MPI.COMM_SELF, resume=True)
    assert resumed.resumed_from == whole.steps["t"][on_output + 6]
    assert_same_run(whole, resumed)

    a, b = (checkpoint_datasets(p / "checkpoint.h5") for p in (tmp_path / "whole", parts.path))
    assert sorted(a) == sorted(b) and any(k.startswith("fields/snapshot") for k in a)
    for key in a:  # the state, the time series and the snapshot densities
        np.testing.assert_array_equal(a[key], b[key], key)
    snapshots = "nodes.xdmf" if settings.scheme == "lagrangian" else "rho.bp"
    for name in ("timeseries.h5", "summary.json", snapshots, "density.png"):
        assert (parts.path / name).exists()
    assert not list(parts.path.glob(".*tmp*"))


def test_periodic_checkpoint_of_a_running_pde(tmp_path, monkeypatch):
    """checkpoint_every = tiny: a checkpoint at every step; a copy taken mid-run resumes
    to the uninterrupted result."""
    problem, settings = _problem(), replace(BASE, checkpoint_every=1e-9)
    whole = solve(problem, BASE, comm=MPI.COMM_SELF)
    run_to(monkeypatch, problem, settings, RunDirectory(tmp_path), 8, resume=False)
    resumed = solve(problem, settings, RunDirectory(tmp_path), comm=MPI.COMM_SELF,
                    resume=True)
    assert_same_run(whole, resumed)


def test_resume_without_a_checkpoint_starts_afresh(tmp_path):
    problem = _problem()
    result = solve(problem, BASE, RunDirectory(tmp_path), comm=MPI.COMM_SELF, resume=True)
    assert result.resumed_from is None and (tmp_path / "summary.json").exists()


def test_broken_or_foreign_pde_checkpoints_are_refused(tmp_path, monkeypatch):
    problem = _problem()
    run_to(monkeypatch, problem, BASE, RunDirectory(tmp_path), 4, resume=False)
    path = tmp_path / "checkpoint.h5"
    good = path.read_bytes()

    def refused(match, settings=BASE):
        with pytest.raises(CheckpointError, match=match) as info:
            solve(problem, settings, RunDirectory(tmp_path), comm=MPI.COMM_SELF, resume=True)
        assert str(path) in str(info.value) and "--force" in str(info.value)

    path.write_bytes(good[: len(good) // 2])
    refused("unreadable or truncated")
    path.write_bytes(good)
    with h5py.File(path) as h5:
        offset = h5["arrays/rows.energy"].id.get_offset() + 8 * 2 + 5
    corrupted = bytearray(good)
    corrupted[offset] ^= 0x04  # one bit of the recorded energy at step 2
    path.write_bytes(bytes(corrupted))
    refused("SHA-256 checksum mismatch")
    path.write_bytes(good)
    refused("written by another run: its fingerprint", replace(BASE, cfl=0.4))
    refused("written by another run", replace(BASE, cells=(8, 6)))
    # progress and the checkpoint period do not change the result: accepted
    solve(problem, replace(BASE, checkpoint_every=5.0), RunDirectory(tmp_path),
          comm=MPI.COMM_SELF, resume=True)


def test_a_killed_writers_temporary_file_is_ignored_and_removed(tmp_path, monkeypatch):
    """What SIGKILL mid-write leaves: a half-written temporary beside the previous
    checkpoint. The checkpoint still resumes; the temporary is removed."""
    problem = _problem()
    whole = solve(problem, BASE, comm=MPI.COMM_SELF)
    run_to(monkeypatch, problem, BASE, RunDirectory(tmp_path), 7, resume=False)
    stale = tmp_path / ".checkpoint.h5.tmp-99999"
    stale.write_bytes((tmp_path / "checkpoint.h5").read_bytes()[:1000])
    resumed = solve(problem, BASE, RunDirectory(tmp_path), comm=MPI.COMM_SELF, resume=True)
    assert_same_run(whole, resumed)
    assert not stale.exists()


@pytest.mark.mpi
@pytest.mark.parametrize("case", ["fv-ssprk2", "dg2-ssprk3", "fv-implicit", "lagrangian"])
def test_resume_on_another_number_of_ranks(tmp_path, monkeypatch, case):
    """Pre-empted on one rank and resumed on all, and the reverse: the uninterrupted
    serial run to round-off."""
    comm = MPI.COMM_WORLD
    settings, beta, _ = CASES[case]
    problem = _problem(beta)
    out = shared_dir(comm, tmp_path)
    serial = solve(problem, settings, comm=MPI.COMM_SELF)
    rank0 = comm.rank == 0

    on_root(comm, lambda: run_to(monkeypatch, problem, settings, RunDirectory(out / "a"), 6,
                                 resume=False))
    resumed = solve(problem, settings, RunDirectory(out / "a", writer=rank0), comm=comm,
                    resume=True)
    assert resumed.resumed_from == serial.steps["t"][6]
    assert_runs_agree(serial, resumed)

    run_to(monkeypatch, problem, settings, RunDirectory(out / "b", writer=rank0), 6,
           resume=False, comm=comm)

    def serial_side():
        back = solve(problem, settings, RunDirectory(out / "b"), comm=MPI.COMM_SELF,
                     resume=True)
        assert back.resumed_from == pytest.approx(serial.steps["t"][6],
                                                  abs=RANKS_RTOL * serial.steps["t"][-1])
        assert_runs_agree(serial, back)

    on_root(comm, serial_side)
