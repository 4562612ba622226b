"""Sweeps over widths n and seeds, spread over MPI ranks, each task stored as it finishes.

Task (n, seed) draws theta_0 ~ rho_0 (n exact draws) from its own SeedSequence, so a
result does not depend on the rank that ran it or on the number of ranks. A task
whose file exists is loaded, not recomputed: an interrupted sweep resumes.

A running task saves its state (particles, outputs so far, the generator's state) to
``n*_seed*.partial.npz`` every ``checkpoint_every`` seconds and when pre-empted
(``solver.preemption``); with ``resume`` a task continues from its partial file to the
bit-identical result. A partial file carries the SHA-256 of its contents and the
fingerprint of the task (problem, n, seed, times, step settings): a truncated,
corrupted or foreign one raises CheckpointError naming the file, never loads.

A finished task file ``n*_seed*.npz`` carries the same (``meta``: format and fingerprint,
``sha256`` of the meta and every array): one that is truncated, corrupted, from another
task or written without a checksum (an older version) is named on stderr and recomputed
(tasks are deterministic: the new file equals the lost one bit for bit).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI
from tqdm import tqdm

from particle_check.particles import ParticleRun, ParticleState, simulate
from solver import preemption
from solver.errors import CheckpointError, MeanfieldError
from solver.io import RunDirectory
from solver.model.problem import Problem
from solver.restart import Clock, fingerprint
from solver.settings import ParticleSettings

PARTIAL_FORMAT = "meanfield-particle-partial"
TASK_FORMAT = "meanfield-particle-task"
_PARTIAL_ARRAYS = ("theta", "f", "loss", "energy", "k1")


def task_name(n: int, seed: int) -> str:
    return f"n{n:07d}_seed{seed:03d}.npz"


def partial_name(n: int, seed: int) -> str:
    return f"n{n:07d}_seed{seed:03d}.partial.npz"


def task_fingerprint(problem: Problem, settings: ParticleSettings, times: np.ndarray,
                     n: int, seed: int) -> str:
    """SHA-256 of what a task's result depends on: problem, n, seed, times, step settings."""
    return fingerprint(problem=problem, n=n, seed=seed, times=np.asarray(times, dtype=float),
                       entropy=settings.entropy, dt=settings.dt, integrator=settings.integrator,
                       batch=settings.batch, rtol=settings.rtol)


def _partial_digest(meta: str, arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256(meta.encode())
    for name in _PARTIAL_ARRAYS:
        arr = np.ascontiguousarray(arrays[name], dtype="<f8")
        digest.update(json.dumps([name, list(arr.shape)]).encode() + arr.tobytes())
    return digest.hexdigest()


def save_partial(path: Path, state: ParticleState, task_id: str) -> None:
    """Write a task's state atomically (npz: arrays, JSON meta, SHA-256 of both)."""
    adaptive = dict(state.adaptive or {})
    k1 = adaptive.pop("k1", None)
    meta = json.dumps({"format": PARTIAL_FORMAT, "fingerprint": task_id,
                       "interval": state.interval, "substep": state.substep, "t": state.t,
                       "steps": state.steps, "evaluations": state.evaluations,
                       "rng_state": state.rng_state,
                       "adaptive": adaptive if state.adaptive is not None else None,
                       "has_k1": k1 is not None}, sort_keys=True)
    arrays = {"theta": state.theta, "f": state.f, "loss": state.loss,
              "energy": state.energy, "k1": np.zeros((0,)) if k1 is None else k1}
    RunDirectory(path.parent).write_npz(path.name, meta=np.array(meta),
                                        sha256=np.array(_partial_digest(meta, arrays)),
                                        **arrays)


def load_partial(path: Path, task_id: str) -> ParticleState:
    """The state in a partial file; CheckpointError (naming the file and what to do) if it
    is truncated, corrupted or from another task."""
    fix = "delete it to rerun the task from t = 0"
    try:
        with np.load(path) as data:
            meta_text, stored = str(data["meta"][()]), str(data["sha256"][()])
            arrays = {name: data[name] for name in _PARTIAL_ARRAYS}
    except Exception as exc:  # zipfile, numpy and OS errors of a broken file
        raise CheckpointError(f"{path}: unreadable or truncated particle checkpoint "
                              f"({type(exc).__name__}: {exc}); {fix}") from exc
    if _partial_digest(meta_text, arrays) != stored:
        raise CheckpointError(f"{path}: SHA-256 checksum mismatch, the particle checkpoint "
                              f"is corrupted; {fix}")
    meta = json.loads(meta_text)
    if meta.get("format") != PARTIAL_FORMAT or meta.get("fingerprint") != task_id:
        raise CheckpointError(f"{path}: written by another task, problem or settings; {fix} "
                              "(or resume with the config that wrote it)")
    adaptive = meta["adaptive"]
    if adaptive is not None:
        adaptive["k1"] = arrays["k1"] if meta["has_k1"] else None
    return ParticleState(meta["interval"], meta["substep"], meta["t"], arrays["theta"],
                         arrays["f"], arrays["loss"], arrays["energy"], meta["steps"],
                         meta["evaluations"], meta["rng_state"], adaptive)


def _task_digest(meta: str, arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256(meta.encode())
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        digest.update(json.dumps([name, arr.dtype.str, list(arr.shape)]).encode() + arr.tobytes())
    return digest.hexdigest()


def save_task(run_dir: RunDirectory, n: int, seed: int, run: ParticleRun, task_id: str) -> None:
    """A finished task's result, atomically: its arrays, a JSON meta (format, fingerprint)
    and the SHA-256 of both."""
    arrays = {k: np.asarray(v) for k, v in vars(run).items()}
    meta = json.dumps({"format": TASK_FORMAT, "fingerprint": task_id}, sort_keys=True)
    run_dir.write_npz(task_name(n, seed), meta=np.array(meta),
                      sha256=np.array(_task_digest(meta, arrays)), **arrays)


def load_task(path: Path, task_id: str) -> ParticleRun | None:
    """The result in a finished task file, or None (and why, on stderr, naming the file)
    when it must be recomputed: unreadable, truncated, corrupted (checksum), another task's
    or written without a checksum."""
    def redo(reason: str) -> None:
        print(f"meanfield: warning: {path}: {reason}; recomputing the task", file=sys.stderr,
              flush=True)

    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # zipfile, numpy and OS errors of a broken file
        return redo(f"unreadable or truncated task file ({type(exc).__name__}: {exc})")
    meta, stored = arrays.pop("meta", None), arrays.pop("sha256", None)
    if meta is None or stored is None:
        return redo("no checksum (written by an older version)")
    meta = str(meta[()])
    if _task_digest(meta, arrays) != str(stored[()]):
        return redo("SHA-256 checksum mismatch: the file is corrupted")
    try:
        info = json.loads(meta)
    except ValueError:
        return redo("its meta is not JSON")
    if info.get("format") != TASK_FORMAT or info.get("fingerprint") != task_id:
        return redo("written by another task, problem or settings")
    try:
        return ParticleRun(**arrays)
    except TypeError as exc:
        return redo(f"not a task file ({exc})")


class _TaskCheckpointer:
    """Saves a running task every ``every`` seconds; when pre-empted, saves and stops."""

    def __init__(self, path: Path, task_id: str, every: float, where: str):
        self.path, self.task_id, self.where = path, task_id, where
        self.clock = Clock(every)

    def due(self) -> bool:
        return preemption.requested() or self.clock.due()

    def save(self, state: ParticleState) -> None:
        save_partial(self.path, state, self.task_id)
        self.clock.reset()
        if preemption.requested():
            raise preemption.Preempted(f"pre-empted ({preemption.reason()}) in {self.where}; "
                                       f"state saved to {self.path}")


def assign_tasks(settings: ParticleSettings, size: int) -> list[list[tuple[int, int]]]:
    """Tasks per rank: largest n first, each to the least-loaded rank (cost ~ n)."""
    tasks = sorted(((n, s) for n in settings.n for s in range(settings.seeds)), reverse=True)
    loads, plan = [0] * size, [[] for _ in range(size)]
    for n, s in tasks:
        r = int(np.argmin(loads))
        plan[r].append((n, s))
        loads[r] += n
    return plan


#: Last spawn-key entry of a task's birth-death stream (its other draws use (n, seed)).
BIRTH_DEATH_STREAM = 0xB1D


def birth_death_seed(settings: ParticleSettings, n: int, seed: int) -> np.random.SeedSequence:
    """The birth-death stream of task (n, seed): its own, independent of the rank."""
    return np.random.SeedSequence(settings.entropy, spawn_key=(n, seed, BIRTH_DEATH_STREAM))


def _run_task(problem: Problem, settings: ParticleSettings, times: np.ndarray,
              run_dir: RunDirectory | None, n: int, seed: int, resume: bool) -> ParticleRun:
    """One task: its stored result, or a run (from its partial file when resuming)."""
    if run_dir is None:
        rng = settings.rng(n, seed)
        return simulate(problem, problem.sample_initial(rng, n), times, settings.dt,
                        settings.integrator, rng=rng, batch=settings.batch, rtol=settings.rtol,
                        birth_death_seed=birth_death_seed(settings, n, seed))
    path = run_dir / task_name(n, seed)
    task_id = task_fingerprint(problem, settings, times, n, seed)
    if path.exists():
        done = load_task(path, task_id)
        if done is not None:
            return done
    partial = run_dir / partial_name(n, seed)
    for stale in run_dir.path.glob(f".{partial.name}.tmp-*"):  # a killed writer's
        stale.unlink()
    for stale in run_dir.path.glob(f".{path.name}.tmp-*"):
        stale.unlink()
    state = load_partial(partial, task_id) if resume and partial.exists() else None
    rng = settings.rng(n, seed)
    if state is None:
        with preemption.immediately(f"drawing the initial particles of task n={n}, "
                                    f"seed={seed}"):
            theta0 = problem.sample_initial(rng, n)
    else:
        theta0 = state.theta
    saver = _TaskCheckpointer(partial, task_id, settings.checkpoint_every,
                              f"particle task n={n}, seed={seed}")
    run = simulate(problem, theta0, times, settings.dt, settings.integrator, rng=rng,
                   batch=settings.batch, rtol=settings.rtol, checkpoint=saver, resume=state,
                   birth_death_seed=birth_death_seed(settings, n, seed))
    save_task(RunDirectory(run_dir.path), n, seed, run, task_id)
    partial.unlink(missing_ok=True)
    return run


def run_ensemble(problem: Problem, settings: ParticleSettings, times: np.ndarray,
                 run_dir: RunDirectory | None = None, comm: MPI.Comm = MPI.COMM_WORLD,
                 progress: bool = False, resume: bool = False
                 ) -> dict[tuple[int, int], ParticleRun] | None:
    """Run every (n, seed) task; rank 0 returns all results, other ranks None.

    progress: a bar on rank 0 over its own tasks. With a run directory, running tasks
    are checkpointed (see the module docstring) and ``resume`` continues them. When
    pre-empted, each rank saves its current task and starts no other; the ranks then
    agree and every rank raises Preempted. An error in one rank's task is raised on
    every rank (as CheckpointError if it was one), so no rank waits forever.
    """
    mine: dict[tuple[int, int], ParticleRun] = {}
    tasks = assign_tasks(settings, comm.size)[comm.rank]
    preempted, error = False, None
    for n, seed in tqdm(tasks, desc="particles", disable=not (progress and comm.rank == 0)):
        if run_dir is not None and preemption.requested():
            preempted = True
            break
        try:
            mine[(n, seed)] = _run_task(problem, settings, times, run_dir, n, seed, resume)
        except preemption.Preempted:
            preempted = True
            break
        except Exception as exc:  # raised on every rank below
            error = exc
            break
    outcomes = comm.allgather((preempted, None if error is None else (
        type(error) if isinstance(error, MeanfieldError) else None,
        f"{type(error).__name__}: {error}")))
    failed = [(rank, out[1]) for rank, out in enumerate(outcomes) if out[1] is not None]
    if error is not None:
        raise error
    if failed:  # a named error keeps its class (and exit code) on every rank
        rank, (kind, message) = failed[0]
        raise (kind or RuntimeError)(f"a particle task on rank {rank} failed: {message}")
    if any(out[0] for out in outcomes):
        raise preemption.Preempted(f"particle ensemble pre-empted; finished tasks and the "
                                   f"running tasks' states are in {run_dir.path}")
    gathered = comm.gather(mine, root=0)
    if comm.rank != 0:
        return None
    return {key: run for part in gathered for key, run in part.items()}
