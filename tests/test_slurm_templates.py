"""The Slurm templates stay valid: bash syntax, the pre-emption settings, and every
``meanfield ...`` command they contain (comments included) parses with the real CLI."""

import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from solver.cli import _parser

SLURM = Path(__file__).resolve().parent.parent / "slurm"
TEMPLATES = sorted(SLURM.glob("*.sbatch"))
SHELL_END = {";", "&&", "||", "|", "&", ")", "#"}


def meanfield_commands(text: str) -> list[tuple[int, list[str]]]:
    """(line number, argv after 'meanfield') of every meanfield command in a script (and
    of comment lines that are such a command); shell variables become a placeholder."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line.startswith("#"):
            line = line.lstrip("# ")
            if not line.startswith("meanfield "):
                continue
        words = shlex.split(line, comments=False, posix=True)
        for i, word in enumerate(words):
            if word != "meanfield":
                continue
            argv = []
            for arg in words[i + 1:]:
                if arg in SHELL_END:
                    break
                argv.append("VALUE" if "$" in arg else arg)
            found.append((number, argv))
    return found


def test_there_are_the_three_templates():
    assert [p.name for p in TEMPLATES] == ["array.sbatch", "ensemble.sbatch", "pde.sbatch"]


@pytest.mark.parametrize("path", [*TEMPLATES, SLURM / "lib.sh"], ids=lambda p: p.name)
def test_bash_syntax(path):
    bash = shutil.which("bash")
    assert bash is not None
    result = subprocess.run([bash, "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_preemption_settings(path):
    text = path.read_text()
    sbatch = re.findall(r"^#SBATCH (\S+)", text, flags=re.M)
    assert "--requeue" in sbatch
    assert any(re.fullmatch(r"--signal=B:(USR1|TERM)@\d+", s) for s in sbatch)
    assert "source slurm/lib.sh" in text and "finish $?" in text
    assert "--account=CHANGE_ME" in sbatch and "--partition=CHANGE_ME" in sbatch


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_meanfield_commands_parse(path):
    commands = meanfield_commands(path.read_text())
    assert any("--resume" in argv for _, argv in commands)  # a requeued job resumes
    for number, argv in commands:
        try:
            _parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{path.name}:{number}: `meanfield {' '.join(argv)}` does not parse")


def test_the_check_catches_a_bad_option():
    (_, argv), = meanfield_commands("srun meanfield run $CONFIG --no-progess # typo\n")
    assert argv == ["run", "VALUE", "--no-progess"]
    with pytest.raises(SystemExit):
        _parser().parse_args(argv)


def test_lib_forwards_the_warning_signal_and_requeues(tmp_path):
    """launch passes the batch shell's SIGUSR1 to the job step; its exit code 75 makes
    finish requeue the job (scontrol replaced by a stub) and exit 0."""
    script = tmp_path / "job.sh"
    script.write_text(
        f"source {SLURM / 'lib.sh'}\n"
        'scontrol() { echo "scontrol $*"; }\n'
        "launch bash -c 'trap \"exit 75\" USR1; touch started; while :; do sleep 0.05; done'\n"
        "finish $?\n")
    job = subprocess.Popen(["bash", str(script)], cwd=tmp_path, stdout=subprocess.PIPE,
                           text=True, env={"PATH": "/usr/bin:/bin", "SLURM_JOB_ID": "123"})
    deadline = time.monotonic() + 10
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    job.send_signal(signal.SIGUSR1)
    out, _ = job.communicate(timeout=10)
    assert job.returncode == 0
    assert "scontrol requeue 123" in out
    assert not resuming(tmp_path, {})
    assert resuming(tmp_path, {"SLURM_RESTART_COUNT": "1"})
    assert resuming(tmp_path, {"RESUME": "1"})


def resuming(folder, env: dict[str, str]) -> bool:
    """Whether lib.sh's `resuming` is true in a job with this environment."""
    result = subprocess.run(["bash", "-c", f"source {SLURM / 'lib.sh'}; resuming"],
                            cwd=folder, env={"PATH": "/usr/bin:/bin", **env})
    return result.returncode == 0
