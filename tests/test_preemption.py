"""Pre-emption by real signals: a running `meanfield` checkpoints and exits 75 on
SIGTERM/SIGUSR1, `--resume` finishes with the uninterrupted result; SIGKILL mid-write
leaves the previous checkpoint usable; finished runs are kept."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from solver import preemption
from solver.errors import ConfigError, Preempted, RunExistsError
from tests.conftest import tiny_run_config

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}

def write_config(tmp_path: Path, t_final: float = 0.5, every: float = 0.05) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_run_config(
        tmp_path / "run", t_final=t_final, pde={"max_step": 0.001, "checkpoint_every": every},
        particles={"n": [16, 24, 32], "dt": 0.001, "checkpoint_every": every}))
    return path


def meanfield(*args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "solver.cli", *map(str, args),
                             "--no-progress"], cwd=ROOT, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(*args: object) -> tuple[int, str]:
    proc = meanfield(*args)
    out, err = proc.communicate(timeout=240)
    return proc.returncode, out + err


def cli(capsys, *args: object) -> tuple[int, str]:
    """`meanfield ARGS` in this process: (exit code, what it printed)."""
    from solver.cli import main

    code = main([*map(str, args), "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def wait_for(proc: subprocess.Popen, pattern: str, folder: Path) -> None:
    """Poll until a file matching ``pattern`` appears in ``folder``; fail if the run ends."""
    deadline = time.monotonic() + 120
    while not list(folder.glob(pattern)):
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before {pattern} appeared:"
                        f"\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {pattern} in {folder} after 120 s")
        time.sleep(0.002)


def test_signals_set_the_flag_and_the_handlers_are_restored():
    before = {s: signal.getsignal(s) for s in preemption.SIGNALS}
    for signum in preemption.SIGNALS:
        with preemption.handle_signals():
            assert not preemption.requested()
            os.kill(os.getpid(), signum)  # the handler runs before the next bytecode
            assert preemption.requested() and preemption.reason() == signum.name
        assert not preemption.requested()
        assert {s: signal.getsignal(s) for s in preemption.SIGNALS} == before


def test_help_documents_the_exit_codes(capsys):
    from solver.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("0 done", "2 config or option error", "3 the run directory holds a finished",
                  "4 a checkpoint cannot be used", "75 pre-empted", "SIGUSR1"):
        assert words in text


def _uninterrupted_pde(config: Path):
    from mpi4py import MPI

    from solver.config import load
    from solver.pde.solve import solve

    cfg = load(config)
    return solve(cfg.problem, cfg.pde, comm=MPI.COMM_SELF)


def _assert_pde_run_equals(run: Path, whole) -> None:
    from solver.pde.output import read_timeseries

    steps, outputs, attrs = read_timeseries(run / "pde" / "timeseries.h5")
    assert attrs["status"] == "finished"
    assert list(steps) == list(whole.steps)
    for key, value in whole.steps.items():
        np.testing.assert_array_equal(steps[key], np.array(value), key)  # bit for bit
    for key in ("times", "f", "energy", "loss", "mc"):
        np.testing.assert_array_equal(outputs[key], getattr(whole, key), key)


def test_sigterm_checkpoints_exits_75_and_resume_finishes_the_run(tmp_path, capsys):
    pytest.importorskip("dolfinx", reason="needs DOLFINx")
    config = write_config(tmp_path)
    run = tmp_path / "run"
    proc = meanfield("pde", config)
    wait_for(proc, "pde/checkpoint.h5", run)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == Preempted.exit_code, out + err
    assert "pre-empted (SIGTERM) at step" in err and "--resume" in err
    assert not (run / "pde" / "summary.json").exists()

    code, text = finish("pde", config, "--resume")
    assert code == 0, text
    assert "resumed from the checkpoint at t =" in text
    _assert_pde_run_equals(run, _uninterrupted_pde(config))

    code, text = cli(capsys, "pde", config, "--resume")
    assert code == 0 and "holds a finished run; nothing to resume" in text
    code, text = cli(capsys, "pde", config)
    assert code == RunExistsError.exit_code and "pass --force to overwrite it" in text


def test_sigkill_mid_write_leaves_the_previous_checkpoint_usable(tmp_path):
    """Checkpoints every step (most of the run's time is spent writing them): killed the
    moment a new checkpoint is being written, the previous one resumes to the result."""
    pytest.importorskip("dolfinx", reason="needs DOLFINx")
    config = write_config(tmp_path, t_final=0.1, every=1e-9)
    folder = tmp_path / "run" / "pde"
    for _ in range(3):  # until the kill lands inside a write (nearly always the first time)
        proc = meanfield("pde", config)
        wait_for(proc, "checkpoint.h5", folder)
        wait_for(proc, ".checkpoint.h5.tmp-*", folder)  # the next one is being written
        proc.kill()
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        if list(folder.glob(".checkpoint.h5.tmp-*")):  # what the killed writer left
            break
    else:
        pytest.fail("three SIGKILLs all landed between two checkpoint writes")
    code, text = finish("pde", config, "--resume")
    assert code == 0, text
    assert "resumed from the checkpoint at t =" in text
    assert not list(folder.glob(".*tmp*"))
    _assert_pde_run_equals(tmp_path / "run", _uninterrupted_pde(config))


def test_sigusr1_in_the_particle_ensemble_then_resume(tmp_path, capsys):
    """`meanfield run`, signalled while a particle task runs: the task's state is saved,
    exit 75; --resume reads back the finished PDE and finishes every task bit for bit;
    a finished run is neither overwritten (exit 3) nor resumed (a no-op)."""
    pytest.importorskip("dolfinx", reason="needs DOLFINx")
    from particle_check.particles import simulate
    from solver.config import load

    config = write_config(tmp_path, t_final=0.3, every=0.01)
    run = tmp_path / "run"
    proc = meanfield("run", config)
    wait_for(proc, "particles/*.partial.npz", run)
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == Preempted.exit_code, out + err
    assert "particle ensemble pre-empted" in err
    assert list((run / "particles").glob("*.partial.npz"))
    assert not (run / "summary.json").exists()

    code, text = finish("run", config, "--resume")
    assert code == 0, text
    assert (run / "summary.json").exists() and (run / "comparison.csv").exists()
    assert not list((run / "particles").glob("*.partial.npz"))
    cfg = load(config)
    settings, times = cfg.particles, np.linspace(0.0, 0.3, 5)
    for n in settings.n:
        for seed in range(settings.seeds):
            rng = settings.rng(n, seed)
            whole = simulate(cfg.problem, cfg.problem.sample_initial(rng, n), times,
                             settings.dt, settings.integrator, rng=rng)
            with np.load(run / "particles" / f"n{n:07d}_seed{seed:03d}.npz") as saved:
                for key, value in vars(whole).items():
                    np.testing.assert_array_equal(saved[key], value, key)

    code, text = cli(capsys, "run", config)
    assert code == RunExistsError.exit_code and "holds a finished run" in text
    code, text = cli(capsys, "run", config, "--resume")
    assert code == 0 and "nothing to resume" in text
    with pytest.raises(SystemExit) as info:
        cli(capsys, "run", config, "--resume", "--force")
    assert info.value.code == ConfigError.exit_code
    assert "not allowed with" in capsys.readouterr().err


def test_mpiexec_forwards_sigterm_and_two_ranks_resume_on_one(tmp_path):
    """SIGTERM to `mpiexec -n 2`: both ranks agree on the step, checkpoint and exit 75;
    resumed on one rank, the serial result to round-off."""
    pytest.importorskip("dolfinx", reason="needs DOLFINx")
    mpiexec = Path(sys.executable).with_name("mpiexec")
    if not mpiexec.exists():
        pytest.skip("no mpiexec beside the python")
    config = write_config(tmp_path)
    run = tmp_path / "run"
    proc = subprocess.Popen([mpiexec, "-n", "2", sys.executable, "-m", "solver.cli", "pde",
                             config, "--no-progress"], cwd=ROOT, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(proc, "pde/checkpoint.h5", run)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == Preempted.exit_code, out + err
    assert err.count("pre-empted (SIGTERM)") == 1  # rank 0 reports, once
    code, text = finish("pde", config, "--resume")
    assert code == 0 and "resumed from the checkpoint" in text, text

    from solver.pde.output import read_timeseries

    whole = _uninterrupted_pde(config)
    steps, outputs, _ = read_timeseries(run / "pde" / "timeseries.h5")
    np.testing.assert_array_equal(steps["step"], whole.steps["step"])
    for key in ("energy", "loss", "mass", "dissipation"):
        np.testing.assert_allclose(steps[key], whole.steps[key], rtol=1e-12, err_msg=key)
    scale = np.max(np.abs(whole.f))
    np.testing.assert_allclose(outputs["f"], whole.f, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(outputs["mc"], whole.mc, rtol=1e-12)
