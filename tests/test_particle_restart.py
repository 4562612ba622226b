"""Checkpoint/restart of the particle tasks (no DOLFINx): a resumed task or ensemble equals
an uninterrupted one, on another number of ranks too; broken or foreign partial files are
refused, never loaded."""

from dataclasses import replace

import numpy as np
import pytest
from mpi4py import MPI

from particle_check import ensemble
from particle_check.ensemble import load_partial, partial_name, run_ensemble, save_partial
from particle_check.particles import simulate
from solver import preemption
from solver.errors import CheckpointError
from solver.io import RunDirectory
from solver.settings import ParticleSettings
from tests.conftest import circle_problem
from tests.ranks import shared_dir


def stop_after(monkeypatch, calls: int) -> None:
    """Pre-empt the next run at its ``calls``-th step (the loop polls once per step)."""
    count = iter(range(1, 10**9))
    monkeypatch.setattr(preemption, "requested", lambda: next(count) >= calls)


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
