"""Checkpoint/restart: a resumed run equals an uninterrupted one (PDE and particles), on
another number of ranks too; broken or foreign checkpoints are refused, never loaded."""

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("dolfinx", reason="needs DOLFINx")
import h5py
from mpi4py import MPI

from particle_check import ensemble
from particle_check.ensemble import load_partial, partial_name, run_ensemble, save_partial
from particle_check.particles import simulate
from solver import preemption
from solver.io import RunDirectory
from solver.pde.checkpoint import CheckpointError, read_checkpoint
from solver.pde.output import read_timeseries
from solver.pde.solve import solve
from solver.settings import ParticleSettings, PDESettings
from tests.conftest import circle_problem
from tests.ranks import RANKS_RTOL, assert_runs_agree
from tests.test_output import on_root, shared_dir

#: t_final 0.3, outputs at 0.1, 0.2, 0.3: steps of 0.02 land on an output at step 5.
BASE = PDESettings(cells=(8, 8), outputs=3, snapshots=2, max_step=0.02, progress=False)
#: settings, beta, the step that ends on the first output time
CASES = {
    "fv-ssprk2": (BASE, np.inf, 5),
    "dg2-ssprk3": (replace(BASE, scheme="dg", degree=2, integrator="ssprk3"), np.inf, 5),
    "fv-implicit": (replace(BASE, integrator="implicit", time_tolerance=2e-5,
                            max_step=np.inf), 50.0, 3),
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


def stop_after(monkeypatch, calls: int) -> None:
    """Pre-empt the next run at its ``calls``-th step (the loop polls once per step)."""
    count = iter(range(1, 10**9))
    monkeypatch.setattr(preemption, "requested", lambda: next(count) >= calls)


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
    for name in ("timeseries.h5", "summary.json", "rho.bp", "density.png"):
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
@pytest.mark.parametrize("case", ["fv-ssprk2", "dg2-ssprk3", "fv-implicit"])
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


# -- particles ---------------------------------------------------------------------------

class _StopAt:
    """Saves the state at the ``at``-th accepted step through the partial file, then stops."""

    def __init__(self, path, at: int):
        self.path, self.at, self.calls = path, at, 0

    def due(self) -> bool:
        self.calls += 1
        return self.calls == self.at

    def save(self, state) -> None:
        save_partial(self.path, state, "task")
        raise preemption.Preempted("stop")


@pytest.mark.parametrize("integrator, beta, batch", [
    ("rk4", np.inf, None), ("euler", 20.0, None), ("adaptive", np.inf, None),
    ("euler", np.inf, 16)], ids=["rk4", "noisy-euler", "adaptive", "sgd"])
def test_particle_task_resumed_equals_uninterrupted(tmp_path, integrator, beta, batch):
    """Positions, outputs, counts and the generator (noise, SGD batches) restored from the
    partial file: the bit-identical run."""
    problem = replace(circle_problem(t_final=0.5), beta=beta)
    times = np.linspace(0.0, 0.5, 6)

    def start():
        rng = np.random.default_rng(11)
        return problem.sample_initial(rng, 48), rng

    kwargs = {"batch": batch, "rtol": 1e-8}
    theta0, rng = start()
    whole = simulate(problem, theta0, times, 0.02, integrator, rng=rng, **kwargs)
    theta0, rng = start()
    path = tmp_path / "task.partial.npz"
    with pytest.raises(preemption.Preempted):
        simulate(problem, theta0, times, 0.02, integrator, rng=rng,
                 checkpoint=_StopAt(path, 3 if integrator == "adaptive" else 7), **kwargs)
    state = load_partial(path, "task")
    assert state.interval == 1 and len(state.f) == 2
    resumed = simulate(problem, None, times, 0.02, integrator, rng=np.random.default_rng(0),
                       resume=state, **kwargs)
    for key, value in vars(whole).items():
        np.testing.assert_array_equal(getattr(resumed, key), value, key)


def test_ensemble_preempted_and_resumed_equals_uninterrupted(tmp_path, monkeypatch):
    problem = circle_problem(t_final=0.4)
    settings = ParticleSettings(n=(16, 32), seeds=2, dt=0.01)
    times = np.linspace(0.0, 0.4, 5)
    whole = run_ensemble(problem, settings, times, comm=MPI.COMM_SELF)
    run_dir = RunDirectory(tmp_path)
    stop_after(monkeypatch, 50)  # during the second task (40 steps each)
    with pytest.raises(preemption.Preempted, match="particle ensemble pre-empted"):
        run_ensemble(problem, settings, times, run_dir, comm=MPI.COMM_SELF)
    monkeypatch.undo()
    assert len(list(tmp_path.glob("*_seed*[0-9].npz"))) == 1
    assert len(list(tmp_path.glob("*.partial.npz"))) == 1
    resumed = run_ensemble(problem, settings, times, run_dir, comm=MPI.COMM_SELF,
                           resume=True)
    assert list(tmp_path.glob("*.partial.npz")) == []
    assert sorted(resumed) == sorted(whole)
    for key, run in whole.items():
        for name, value in vars(run).items():
            np.testing.assert_array_equal(getattr(resumed[key], name), value, name)


def test_broken_or_foreign_particle_checkpoints_are_refused(tmp_path, monkeypatch):
    problem = circle_problem(t_final=0.4)
    settings = ParticleSettings(n=(16,), seeds=1, dt=0.01)
    times = np.linspace(0.0, 0.4, 5)
    run_dir = RunDirectory(tmp_path)
    stop_after(monkeypatch, 10)
    with pytest.raises(preemption.Preempted):
        run_ensemble(problem, settings, times, run_dir, comm=MPI.COMM_SELF)
    monkeypatch.undo()
    path = tmp_path / partial_name(16, 0)
    good = path.read_bytes()

    def refused(match, other=settings):
        with pytest.raises(CheckpointError, match=match) as info:
            run_ensemble(problem, other, times, run_dir, comm=MPI.COMM_SELF, resume=True)
        assert str(path) in str(info.value) and "delete it" in str(info.value)

    path.write_bytes(good[: len(good) - 200])
    refused("unreadable or truncated")
    path.write_bytes(good)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    start = good.index(arrays["theta"].tobytes()[:16])
    flipped = bytearray(good)
    flipped[start + 3] ^= 0x01  # one stored bit of theta: the zip CRC catches it
    path.write_bytes(bytes(flipped))
    refused("unreadable")
    arrays["theta"][0, 0] += 1e-9  # a valid zip with other numbers: the SHA-256 does
    np.savez(path, **arrays)
    refused("SHA-256 checksum mismatch")
    path.write_bytes(good)
    refused("another task", replace(settings, dt=0.02))
    run_ensemble(problem, settings, times, run_dir, comm=MPI.COMM_SELF, resume=True)
    assert not path.exists()


@pytest.mark.mpi
def test_ensemble_preempted_on_all_ranks_resumes_to_the_serial_result(tmp_path, monkeypatch):
    """Every rank saves its running task and all raise Preempted; a broken partial file on
    one rank is refused on every rank; resumed, the serial ensemble bit for bit."""
    comm = MPI.COMM_WORLD
    problem = circle_problem(t_final=0.4)
    settings = ParticleSettings(n=(16, 24, 32), seeds=2, dt=0.01)
    times = np.linspace(0.0, 0.4, 5)
    out = shared_dir(comm, tmp_path)
    run_dir = RunDirectory(out)  # every rank writes its own tasks' files
    whole = run_ensemble(problem, settings, times, comm=MPI.COMM_SELF)
    stop_after(monkeypatch, 50)
    with pytest.raises(preemption.Preempted):
        run_ensemble(problem, settings, times, run_dir, comm=comm)
    monkeypatch.undo()
    comm.barrier()
    partials = sorted(out.glob("*.partial.npz"))
    assert len(partials) == comm.size  # one running task per rank
    last = out / partial_name(*ensemble.assign_tasks(settings, comm.size)[-1][1])
    assert last in partials
    good = last.read_bytes()
    comm.barrier()
    if comm.rank == 0:
        last.write_bytes(good[:100])
    comm.barrier()
    with pytest.raises(CheckpointError, match="truncated"):
        run_ensemble(problem, settings, times, run_dir, comm=comm, resume=True)
    comm.barrier()
    if comm.rank == 0:
        last.write_bytes(good)
    comm.barrier()
    resumed = run_ensemble(problem, settings, times, run_dir, comm=comm, resume=True)
    if comm.rank == 0:
        assert sorted(resumed) == sorted(whole)
        for key, run in whole.items():
            for name, value in vars(run).items():
                np.testing.assert_array_equal(getattr(resumed[key], name), value, name)
