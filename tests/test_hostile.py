"""Hostile machines and hostile inputs beyond the config battery (issue 13): a full disk, a
damaged finished particle file, two runs in one directory, options PETSc rejects, an
unwritable output, a pre-emption during a long setup, bad command lines and bad resume
directories. Each case asserts the exit code, that the message names the file or the
setting, that it fails within seconds, and that nothing that looks finished is left
(no summary.json, no temporary file).

With ``tests/test_bad_configs.py`` the battery holds >= 100 cases
(``test_the_battery_has_at_least_100_cases``)."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from solver import preemption
from solver.cli import main
from solver.errors import (
    CheckpointError,
    ConfigError,
    DiskFullError,
    Preempted,
    RunExistsError,
    RunLockedError,
)
from solver.sweep import dump_toml
from tests.conftest import tiny_run_config

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
#: Seconds a refused case may take: in this process / in a fresh one (imports ~3 s).
FAST, FAST_PROCESS = 10.0, 40.0


def needs_dolfinx():
    pytest.importorskip("dolfinx", reason="needs DOLFINx")


def write_config(tmp_path: Path, name: str = "tiny.toml", **changes) -> Path:
    """The tiny run of conftest with ``changes`` ({"pde": {...}, "particles": {...},
    "problem.t_final": ...}) into tmp_path/name; its output is tmp_path/run."""
    raw = tomllib.loads(tiny_run_config(tmp_path / "run"))
    for key, value in changes.items():
        *tables, last = key.split(".")
        table = raw
        for t in tables:
            table = table.setdefault(t, {})
        if isinstance(value, dict) and isinstance(table.get(last), dict):
            table[last].update(value)
        else:
            table[last] = value
    path = tmp_path / name
    path.write_text(dump_toml(raw))
    return path


def cli(capsys, *args: object) -> tuple[int, str, float]:
    """`meanfield ARGS --no-progress` in this process: (exit code, output, seconds)."""
    start = time.monotonic()
    code = main([*map(str, args), "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err, time.monotonic() - start


def process(*args: object, limit: int | None = None) -> subprocess.Popen:
    """`meanfield ARGS --no-progress` in a new process; ``limit``: RLIMIT_FSIZE in bytes
    (SIGXFSZ ignored: a write past it fails with EFBIG, like a full disk), set once MPI
    is up (its shared-memory files are larger)."""
    code = ("import resource, signal, sys\n"
            "import solver.pde\n"
            "from mpi4py import MPI\n"
            f"limit = {limit!r}\n"
            "if limit is not None:\n"
            "    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))\n"
            "from solver.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args), "--no-progress"],
                            cwd=ROOT, env=ENV, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def finish(*args: object, limit: int | None = None) -> tuple[int, str, float]:
    start = time.monotonic()
    proc = process(*args, limit=limit)
    out, err = proc.communicate(timeout=240)
    return proc.returncode, out + err, time.monotonic() - start


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp-" in p.name]


def assert_nothing_finished(run: Path, pde_finished: bool = False) -> None:
    """No summary.json that claims the run (or the PDE) finished, no temporary file."""
    assert not (run / "summary.json").exists()
    if not pde_finished:
        assert not (run / "pde" / "summary.json").exists()
    assert temporaries(run) == [] if run.exists() else True


def assert_named_error(code: int, text: str, seconds: float, error: type, *named: str,
                       limit: float = FAST) -> None:
    assert code == error.exit_code, text
    assert f"meanfield: {error.label}: " in text, text
    for name in named:
        assert name in text, (name, text)
    assert "Traceback" not in text and "np.float64" not in text, text
    assert seconds < limit, seconds


#: Every hostile case of this file, counted for the battery (ids of parametrized cases).
CASES: list[str] = []


def case(*ids: str):
    CASES.extend(ids)
    return lambda test: test


# -- 1. a full disk ---------------------------------------------------------------------

@case("disk-full-adios2-first-snapshot")
@pytest.mark.slow
def test_a_full_disk_in_the_snapshot_writer_is_named_and_leaves_no_temporary(tmp_path):
    """ADIOS2 meets EFBIG in rho.bp (it aborted the process with a growing .rho.bp.tmp-PID):
    exit 6 naming rho.bp, its temporary directory removed."""
    needs_dolfinx()
    config = write_config(tmp_path, pde={"snapshots": 3})
    code, text, seconds = finish("pde", config, limit=3000)
    assert_named_error(code, text, seconds, DiskFullError, "rho.bp", "File too large",
                       limit=FAST_PROCESS)
    assert_nothing_finished(tmp_path / "run")
    assert not (tmp_path / "run" / "pde" / "rho.bp").exists()


@case("disk-full-checkpoint-mid-run", "disk-full-then-resume")
@pytest.mark.slow
def test_a_full_disk_keeps_the_last_good_checkpoint_and_resume_finishes(tmp_path, capsys):
    """Checkpoints grow with the time series; past 35 kB the next one fails (EFBIG): exit 6
    naming checkpoint.h5, the previous checkpoint intact and readable, no temporary file,
    no summary; with the space back, --resume finishes from that checkpoint."""
    needs_dolfinx()
    from solver.checkpoint_file import read_checkpoint_file

    config = write_config(tmp_path, **{"problem.t_final": 0.3},
                          pde={"max_step": 0.001, "checkpoint_every": 0.02, "snapshots": 2})
    code, text, seconds = finish("pde", config, limit=35000)
    assert_named_error(code, text, seconds, DiskFullError, "checkpoint.h5", "File too large",
                       "--resume", limit=FAST_PROCESS)
    run = tmp_path / "run"
    assert_nothing_finished(run)
    kept = read_checkpoint_file(run / "pde" / "checkpoint.h5")  # verified (SHA-256)
    assert 0 < kept.meta["step"] < 300 and kept.meta["status"].startswith("running")
    code, text, _ = cli(capsys, "pde", config, "--resume")
    assert code == 0, text
    assert f"resumed from the checkpoint at t = {kept.meta['t']:.6g}" in text
    assert (run / "pde" / "summary.json").exists() and temporaries(run) == []


@case("disk-full-figure-after-the-loop")
@pytest.mark.slow
def test_a_full_disk_at_the_figures_leaves_the_final_checkpoint_and_no_summary(tmp_path):
    """energy.png (150 kB) does not fit a 100 kB limit: exit 6 naming it, after the final
    checkpoint; no pde/summary.json (the PDE did not finish), no temporary file."""
    needs_dolfinx()
    from solver.checkpoint_file import read_checkpoint_file

    config = write_config(tmp_path, pde={"snapshots": 3})
    code, text, seconds = finish("run", config, limit=100_000)
    assert_named_error(code, text, seconds, DiskFullError, "energy.png", limit=FAST_PROCESS)
    assert_nothing_finished(tmp_path / "run")
    assert read_checkpoint_file(tmp_path / "run" / "pde" / "checkpoint.h5").meta["status"] \
        == "final"


def _free(monkeypatch, rule):
    """The free space every write checks: ``rule(path)`` bytes."""
    import solver.resources

    monkeypatch.setattr(solver.resources, "free_disk", rule)


@case("free-space-check-before-the-checkpoint")
def test_the_free_space_is_checked_before_a_checkpoint_is_written(tmp_path, capsys,
                                                                  monkeypatch):
    """The checkpoint needs ~24 kB, the disk has 20 kB beyond the reserve: refused before a
    byte is written, naming the file, its size and the free space."""
    needs_dolfinx()
    from solver.resources import RESERVE

    config = write_config(tmp_path)
    _free(monkeypatch, lambda path: RESERVE + 20_000)
    code, text, seconds = cli(capsys, "pde", config)
    assert_named_error(code, text, seconds, DiskFullError, "checkpoint.h5", "needs about",
                       "nothing was written")
    assert_nothing_finished(tmp_path / "run")
    assert not (tmp_path / "run" / "pde" / "checkpoint.h5").exists()


@case("free-space-check-before-the-first-snapshot")
def test_the_free_space_is_checked_before_a_snapshot(tmp_path, capsys, monkeypatch):
    needs_dolfinx()
    from solver.resources import RESERVE

    config = write_config(tmp_path, pde={"snapshots": 3})
    _free(monkeypatch, lambda path: RESERVE + 2_000)
    code, text, seconds = cli(capsys, "pde", config)
    assert_named_error(code, text, seconds, DiskFullError, "rho.bp", "the snapshot at t = 0")
    assert_nothing_finished(tmp_path / "run")
    assert list((tmp_path / "run" / "pde").iterdir()) == []


@case("disk-full-particle-task-files")
def test_a_full_disk_for_the_particle_files_keeps_the_pde_and_names_the_task(tmp_path, capsys,
                                                                           monkeypatch):
    needs_dolfinx()
    config = write_config(tmp_path)
    _free(monkeypatch, lambda path: 1000 if "particles" in str(path) else 10**12)
    code, text, seconds = cli(capsys, "run", config)
    assert_named_error(code, text, seconds, DiskFullError, "particles/n00000", ".npz")
    run = tmp_path / "run"
    assert_nothing_finished(run, pde_finished=True)
    assert (run / "pde" / "summary.json").exists() and not list(run.glob("particles/*.npz"))


@case("disk-full-writes-unit", "disk-errors-recognised")
def test_atomic_writes_on_a_full_disk_remove_the_temporary_and_keep_the_old_file(tmp_path,
                                                                               monkeypatch):
    """A write that fails with ENOSPC mid-way: DiskFullError naming the file, the previous
    version kept, no temporary; h5py's and ADIOS2's messages are recognised too."""
    import errno

    from solver.io import atomic_path, write_bytes_atomic
    from solver.resources import is_disk_error

    target = tmp_path / "checkpoint.h5"
    target.write_bytes(b"the last good one")
    with pytest.raises(DiskFullError, match=r"checkpoint\.h5 failed: No space left"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert target.read_bytes() == b"the last good one" and temporaries(tmp_path) == []
    _free(monkeypatch, lambda path: 10)
    with pytest.raises(DiskFullError, match="needs about 5 B"):
        write_bytes_atomic(target, b"12345")
    assert target.read_bytes() == b"the last good one" and temporaries(tmp_path) == []
    for text in ("couldn't write to file x/data.0 : errno = 28: No space left on device",
                 "Unable to extend file properly, errno = 27, error message = 'file too large'",
                 "Disk quota exceeded"):
        assert is_disk_error(RuntimeError(text)), text
    assert not is_disk_error(RuntimeError("KSP did not converge"))
    assert is_disk_error(OSError(errno.EFBIG, "File too large"))


# -- 2. a damaged finished particle file -------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny run (its directory is copied by each case)."""
    pytest.importorskip("dolfinx", reason="needs DOLFINx")
    folder = tmp_path_factory.mktemp("finished")
    config = write_config(folder)
    assert main(["run", str(config), "--no-progress"]) == 0
    return folder


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "bit-flip":  # inside the stored f array: the zip is fine, the checksum not
        import zipfile

        with zipfile.ZipFile(path) as z:
            offset = z.getinfo("f.npy").header_offset + 30 + len("f.npy") + 200
        path.write_bytes(data[:offset] + bytes([data[offset] ^ 0x10]) + data[offset + 1:])
    elif how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "no-checksum":  # as written before task files carried one
        with np.load(path) as saved:
            arrays = {k: saved[k] for k in saved.files if k not in ("meta", "sha256")}
        np.savez(path.with_suffix(".tmp.npz"), **arrays)
        path.with_suffix(".tmp.npz").replace(path)
    elif how == "another-task":
        shutil.copyfile(path.with_name("n0000016_seed001.npz"), path)


DAMAGE = ["truncated", "bit-flip", "garbage", "empty", "no-checksum", "another-task"]


@case(*(f"finished-task-file-{how}" for how in DAMAGE))
@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_finished_task_file_is_named_and_recomputed_bit_for_bit(
        finished_run, tmp_path, capsys, how):
    """--resume of a run whose finished task file n0000016_seed000.npz was damaged (it died
    with zipfile.BadZipFile): the file is named on stderr, recomputed, and equals the lost
    one byte for byte; the other task files are read, not recomputed."""
    run = tmp_path / "run"
    shutil.copytree(finished_run / "run", run)
    config = tmp_path / "tiny.toml"
    shutil.copyfile(finished_run / "tiny.toml", config)
    config.write_text(config.read_text().replace(str(finished_run), str(tmp_path)))
    (run / "config.toml").write_bytes(config.read_bytes())
    (run / "summary.json").unlink()  # an unfinished run, so that --resume runs
    bad = run / "particles" / "n0000016_seed000.npz"
    original = bad.read_bytes()
    others = {p: p.stat().st_mtime_ns for p in run.glob("particles/*.npz") if p != bad}
    _damage(bad, how)
    code, text, _ = cli(capsys, "run", config, "--resume")
    assert code == 0, text
    assert f"meanfield: warning: {bad}: " in text and "recomputing the task" in text, text
    assert bad.read_bytes() == original
    assert {p: p.stat().st_mtime_ns for p in others} == others
    assert (run / "summary.json").exists() and temporaries(run) == []


# -- 3. two runs in one directory ---------------------------------------------------------

def _hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that holds folder/.lock (as a running meanfield would)."""
    folder.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(folder / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.write(fd, b'pid %d (the holder)' % os.getpid())\n"
         "print('locked', flush=True)\n"
         "time.sleep(120)\n"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


@case("locked-pde", "locked-run", "locked-force-deletes-nothing")
@pytest.mark.parametrize("command, options", [("pde", []), ("run", []), ("run", ["--force"])],
                         ids=["pde", "run", "force"])
def test_a_run_directory_in_use_by_another_process_is_refused(tmp_path, capsys, command,
                                                              options):
    needs_dolfinx()
    config = write_config(tmp_path)
    run = tmp_path / "run"
    (run / "pde").mkdir(parents=True)
    (run / "pde" / "timeseries.csv").write_text("the other run's\n")
    holder = _hold_lock(run)
    try:
        code, text, seconds = cli(capsys, command, config, *options)
        assert_named_error(code, text, seconds, RunLockedError, str(run),
                           f"pid {holder.pid} (the holder)", "--output DIR")
        assert code == RunExistsError.exit_code == 3
        assert (run / "pde" / "timeseries.csv").read_text() == "the other run's\n"
        assert_nothing_finished(run)
    finally:
        holder.kill()
        holder.wait()


@case("lock-released-by-a-killed-holder")
def test_the_lock_dies_with_its_process(tmp_path, capsys):
    """A holder killed with SIGKILL leaves the lock file, not the lock: the next run runs."""
    needs_dolfinx()
    config = write_config(tmp_path, particles={"n": [8], "seeds": 1})
    holder = _hold_lock(tmp_path / "run")
    holder.kill()
    holder.wait()
    code, text, _ = cli(capsys, "run", config)
    assert code == 0, text
    assert (tmp_path / "run" / ".lock").read_text().startswith(f"pid {os.getpid()} on ")
    fd = os.open(tmp_path / "run" / ".lock", os.O_RDWR)  # and meanfield released it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


@case("two-meanfield-processes")
@pytest.mark.slow
def test_two_meanfield_runs_into_one_directory_at_once(tmp_path, capsys):
    """The first runs, the second (another process) is refused at once with exit 3; the
    first is not disturbed: pre-empted, it exits 75, and its --resume finishes."""
    needs_dolfinx()
    config = write_config(tmp_path, **{"problem.t_final": 5.0},  # 10000 steps, ~15 s
                          pde={"max_step": 0.0005, "checkpoint_every": 0.05})
    first = process("pde", config)
    deadline = time.monotonic() + 60
    while not (tmp_path / "run" / "pde" / "checkpoint.h5").exists():
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    code, text, seconds = finish("pde", config)
    assert_named_error(code, text, seconds, RunLockedError, f"pid {first.pid} on ",
                       limit=FAST_PROCESS)
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=60)
    assert first.returncode == Preempted.exit_code, out + err
    code, text, _ = cli(capsys, "pde", config, "--resume")
    assert code == 0, text


# -- 4. options PETSc rejects, unwritable outputs, messages --------------------------------

PETSC = [("ksp_type=nonsense", "ksp_type=nonsense", "Unable to find requested KSP type"),
         ("pc_type=nonsense", "pc_type=nonsense", "PC type"),
         ("ksp_rtol=abc", "ksp_rtol=abc", "has no numeric value"),
         ("ksp_typo=gmres", "ksp_typo=gmres", "did not use"),
         ("pc_factor_mat_solver_type=nonsense", "pc_factor_mat_solver_type=nonsense",
          "Could not locate solver type")]


@case(*(f"petsc-{p[0]}" for p in PETSC))
@pytest.mark.parametrize("option, named, text", PETSC, ids=[p[0] for p in PETSC])
def test_an_option_petsc_rejects_is_a_named_config_error_before_any_work(
        tmp_path, capsys, option, named, text):
    needs_dolfinx()
    config = write_config(tmp_path, pde={"integrator": "implicit"})
    extra = ["--petsc", "pc_type=lu", "--petsc", "ksp_type=preonly"] \
        if option.startswith("pc_factor") else []
    code, out, seconds = cli(capsys, "pde", config, *extra, "--petsc", option)
    assert_named_error(code, out, seconds, ConfigError, "pde.petsc (or --petsc)", named, text,
                       "fix or drop it")
    assert not (tmp_path / "run").exists()


@case("petsc-in-the-config", "petsc-without-value")
def test_a_rejected_petsc_table_and_a_malformed_petsc_option(tmp_path, capsys):
    needs_dolfinx()
    config = write_config(tmp_path, pde={"integrator": "implicit",
                                         "petsc": {"ksp_type": "cg", "pc_type": "nope"}})
    code, out, seconds = cli(capsys, "pde", config)
    assert_named_error(code, out, seconds, ConfigError, "pc_type=nope")
    code, out, seconds = cli(capsys, "pde", write_config(tmp_path, "ok.toml"),
                             "--petsc", "ksp_type")
    assert_named_error(code, out, seconds, ConfigError, "--petsc takes KEY=VALUE")
    assert not (tmp_path / "run").exists()


@case("good-petsc-options-still-run")
def test_petsc_options_petsc_accepts_still_run(tmp_path, capsys):
    needs_dolfinx()
    config = write_config(tmp_path, pde={"integrator": "implicit"})
    code, out, _ = cli(capsys, "pde", config, "--petsc", "ksp_type=gmres", "--petsc",
                       "pc_type=bjacobi", "--petsc", "ksp_rtol=1e-13")
    assert code == 0, out


@case("output-on-a-pseudo-file-system", "output-read-only")
@pytest.mark.parametrize("where", ["sys", "chmod"])
def test_an_unwritable_output_is_a_named_config_error(tmp_path, capsys, where):
    """/sys/fs (read-only even for root) and a directory without write permission: exit 2
    naming output and the directory (not a resource error for the 0 B /sys has)."""
    needs_dolfinx()
    if where == "sys":
        output = Path("/sys/fs/meanfield-hostile-test")
        if not Path("/sys/fs").is_dir() or output.exists():
            pytest.skip("no /sys/fs here")
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into a read-only directory")
        locked = tmp_path / "readonly"
        locked.mkdir()
        locked.chmod(0o500)
        output = locked / "run"
    config = write_config(tmp_path)
    code, out, seconds = cli(capsys, "pde", config, "--output", output)
    assert_named_error(code, out, seconds, ConfigError, "output: cannot write the run "
                       f"directory {output}", "--output DIR")
    assert not output.exists()


MESSAGES = [
    ("mean-of-3-entries", {"initial.mean": [0.0, 0.0, 0.0]},
     "initial.mean: got [0.0, 0.0, 0.0]; expected 2 numbers, one per parameter of unit "
     "'circle_rbf' (c, z)"),
    ("std-of-3-entries", {"initial.std": [0.5, 0.5, 0.5]}, "initial.std: got [0.5, 0.5, 0.5]; "
     "expected 2 numbers"),
    ("string-expression", {"target": {"kind": "expression", "expression": "'abc'"}},
     "target.expression: expression \"'abc'\": the constant 'abc' is not a real number"),
    ("inverted-uniform-box", {"initial": {"kind": "uniform", "lower": [1.0, 1.0],
                                          "upper": [-1.0, 2.0]}},
     "initial.lower, initial.upper: got lower [1.0, 1.0], upper [-1.0, 2.0]; expected lower "
     "< upper in every coordinate (not in coordinate 0)"),
    ("width-1e-300", {"unit.width": 1e-300}, "width must be >= 1e-150"),
    ("expression-power-tower", {"target": {"kind": "expression",
                                           "expression": "sin(x) + 9**9**9"}},
     "target.expression"),
]


@case(*(m[0] for m in MESSAGES))
@pytest.mark.parametrize("changes, text", [m[1:] for m in MESSAGES], ids=[m[0] for m in MESSAGES])
def test_messages_name_the_field_and_what_it_expects(tmp_path, capsys, changes, text):
    """check and pde: exit 2, the field and what it expects, no numpy reprs, no traceback."""
    raw = tomllib.loads(tiny_run_config(tmp_path / "run"))
    for key, value in changes.items():
        *tables, last = key.split(".")
        table = raw
        for t in tables:
            table = table[t]
        table[last] = value
    config = tmp_path / "bad.toml"
    config.write_text(dump_toml(raw))
    for command in ("check", "pde"):
        code, out, seconds = cli(capsys, command, config) if command == "pde" else (
            main(["check", str(config)]), "".join(capsys.readouterr()), 0.0)
        assert_named_error(code, out, seconds, ConfigError, text)
    assert not (tmp_path / "run").exists()


# -- 5. a pre-emption during a long setup ---------------------------------------------------

@case("sigterm-inside-immediately")
def test_a_signal_during_work_with_nothing_to_save_stops_at_once():
    with preemption.handle_signals():
        with pytest.raises(Preempted, match="during drawing 10 particles"):
            with preemption.immediately("drawing 10 particles"):
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(10**7):  # the handler runs at the next bytecode
                    pass
        with pytest.raises(Preempted):  # a signal that came before raises on entry
            with preemption.immediately("the next task"):
                pass
    with preemption.immediately("no handlers: nothing changes"):
        pass


@case("sigterm-mid-particle-step-rolls-back", "sigterm-mid-sgd-step-rolls-back-the-batch")
@pytest.mark.parametrize("integrator, beta, batch, at", [
    ("rk4", np.inf, None, 26), ("euler", 20.0, None, 9), ("euler", np.inf, 16, 9)],
    ids=["rk4", "noisy-euler", "sgd"])
def test_a_signal_inside_a_particle_step_saves_its_start_and_resume_is_bitwise(
        tmp_path, monkeypatch, integrator, beta, batch, at):
    """SIGTERM arrives inside a step's right-hand side (the ``at``-th): the step is
    abandoned, the state at its start saved (generator, with the SGD batch already drawn,
    and counts rolled back), Preempted; the resumed run equals the uninterrupted one bit
    for bit."""
    from dataclasses import replace

    from particle_check import particles
    from particle_check.ensemble import _TaskCheckpointer, load_partial
    from tests.conftest import circle_problem

    problem = replace(circle_problem(t_final=0.3), beta=beta)
    times = np.linspace(0.0, 0.3, 4)

    def start():
        rng = np.random.default_rng(5)
        return problem.sample_initial(rng, 40), rng

    theta0, rng = start()
    whole = particles.simulate(problem, theta0, times, 0.02, integrator, rng=rng, batch=batch)
    calls, real = iter(range(10**6)), particles.velocity

    def velocity(*args, **kwargs):
        if next(calls) == at:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(particles, "velocity", velocity)
    path = tmp_path / "task.partial.npz"
    theta0, rng = start()
    with preemption.handle_signals(), pytest.raises(Preempted, match="state saved"):
        particles.simulate(problem, theta0, times, 0.02, integrator, rng=rng, batch=batch,
                           checkpoint=_TaskCheckpointer(path, "task", 1e9, "the test task"))
    monkeypatch.undo()
    state = load_partial(path, "task")
    assert state.steps == (6 if integrator == "rk4" else at)
    resumed = particles.simulate(problem, None, times, 0.02, integrator, batch=batch,
                                 rng=np.random.default_rng(0), resume=state)
    for key, value in vars(whole).items():
        np.testing.assert_array_equal(getattr(resumed, key), value, key)


@case("sigterm-while-drawing-a-large-ensemble")
@pytest.mark.slow
def test_sigterm_while_a_large_particle_task_is_set_up_exits_75_promptly(tmp_path, capsys):
    """n = 2e7: drawing the particles takes ~5 s and one RK4 step ~20 s; SIGTERM then was
    acted on only after the first step. Now: exit 75 within 3 s, nothing finished."""
    needs_dolfinx()
    config = write_config(tmp_path, particles={"n": [20_000_000], "seeds": 1})
    proc = process("run", config)
    deadline = time.monotonic() + 60
    while not (tmp_path / "run" / "particles").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    waited = time.monotonic() - sent
    assert proc.returncode == Preempted.exit_code, out + err
    assert waited < 3.0, waited
    assert "particle" in err and "Traceback" not in err, err
    assert_nothing_finished(tmp_path / "run", pde_finished=True)


# -- 6. bad command lines and bad resume directories ---------------------------------------

@case("cli-unknown-option", "cli-resume-and-force", "cli-no-config", "cli-unknown-command")
@pytest.mark.parametrize("argv", [["pde", "c.toml", "--frobnicate"],
                                  ["run", "c.toml", "--resume", "--force"],
                                  ["pde"], ["solve", "c.toml"]],
                         ids=["unknown-option", "resume-and-force", "no-config",
                              "unknown-command"])
def test_a_bad_command_line_is_exit_2_with_usage(capsys, argv):
    start = time.monotonic()
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == ConfigError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("usage: meanfield") and "Traceback" not in err
    assert time.monotonic() - start < FAST


@case("resume-truncated-checkpoint", "resume-garbage-checkpoint",
      "resume-checkpoint-of-another-run")
@pytest.mark.parametrize("how", ["truncated", "garbage", "another"])
def test_resuming_from_a_damaged_or_foreign_checkpoint_is_exit_4(tmp_path, capsys, how):
    needs_dolfinx()
    config = write_config(tmp_path, particles={"n": [8], "seeds": 1})
    code, out, _ = cli(capsys, "pde", config)
    assert code == 0, out
    pde = tmp_path / "run" / "pde"
    (pde / "summary.json").unlink()
    checkpoint = pde / "checkpoint.h5"
    data = checkpoint.read_bytes()
    if how == "truncated":
        checkpoint.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        checkpoint.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(len(data) - 8))
    else:  # the same run but another t_final: another fingerprint
        config.write_text(config.read_text().replace("t_final = 0.2", "t_final = 0.3"))
        (tmp_path / "run" / "config.toml").write_bytes(config.read_bytes())
    code, out, seconds = cli(capsys, "pde", config, "--resume")
    assert_named_error(code, out, seconds, CheckpointError, str(checkpoint))
    assert not (pde / "summary.json").exists() and temporaries(tmp_path / "run") == []


@case("resume-into-another-configs-run")
def test_resuming_another_configs_run_is_refused(tmp_path, capsys):
    needs_dolfinx()
    config = write_config(tmp_path, particles={"n": [8], "seeds": 1})
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text("name = 'another'\n")
    code, out, seconds = cli(capsys, "run", config, "--resume")
    assert_named_error(code, out, seconds, RunExistsError, "another config", "--force")
    assert (run / "config.toml").read_text() == "name = 'another'\n"


@case("initial-density-truncated-checkpoint", "initial-density-directory",
      "initial-density-not-hdf5")
@pytest.mark.parametrize("how", ["truncated", "directory", "text"])
def test_a_broken_checkpoint_as_initial_density_is_a_named_config_error(tmp_path, capsys, how):
    source = tmp_path / "start.h5"
    if how == "truncated":
        needs_dolfinx()
        first = write_config(tmp_path, "first.toml", particles={"n": [8], "seeds": 1})
        code, out, _ = cli(capsys, "pde", first)
        assert code == 0, out
        data = (tmp_path / "run" / "pde" / "checkpoint.h5").read_bytes()
        source.write_bytes(data[: len(data) - 1000])
    elif how == "directory":
        source.mkdir()
    else:
        source.write_text("not a checkpoint\n")
    config = write_config(tmp_path, "second.toml")
    raw = tomllib.loads(config.read_text())
    raw["initial"] = {"kind": "checkpoint", "file": str(source)}
    raw["output"] = str(tmp_path / "second")
    config.write_text(dump_toml(raw))
    for command in ("check", "pde"):
        start = time.monotonic()
        code = main([command, str(config)])
        out = "".join(capsys.readouterr())
        assert_named_error(code, out, time.monotonic() - start, ConfigError, "initial.file",
                           str(source))
    assert not (tmp_path / "second").exists()


@case("pde-without-pde-section", "run-without-particles-section")
@pytest.mark.parametrize("command, section", [("pde", "pde"), ("run", "particles")])
def test_a_command_without_its_section_is_refused_before_the_run_directory(
        tmp_path, capsys, command, section):
    """`meanfield pde` on a config without [pde] (a ValueError traceback after the run
    directory was made) and `run` without [particles]: exit 2 naming the section, no
    directory."""
    raw = tomllib.loads(tiny_run_config(tmp_path / "run"))
    del raw[section]
    config = tmp_path / "partial.toml"
    config.write_text(dump_toml(raw))
    code, text, seconds = cli(capsys, command, config)
    assert_named_error(code, text, seconds, ConfigError, f"[{section}]: missing section")
    assert not (tmp_path / "run").exists()


# -- the battery -------------------------------------------------------------------------

def test_the_battery_has_at_least_100_cases():
    """The malformed configs of test_bad_configs plus the hostile cases here."""
    from tests.test_bad_configs import BAD

    assert len(set(CASES)) == len(CASES)
    assert len(BAD) + len(CASES) >= 100, (len(BAD), len(CASES))
