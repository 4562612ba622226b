"""``meanfield limit``: the RQMC reference of a config's limit, from the command line (numpy
only: it runs in the particle-only install too)."""

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from solver.cli import main
from solver.errors import ConfigError, RunExistsError
from solver.sweep import dump_toml

FLAGSHIP = Path(__file__).resolve().parents[1] / "examples" / "rbf_circle.toml"
#: E(4) of the flagship: DG2 64^2 and 96^2 and the lagrangian scheme agree to 1e-8
#: (docs/verification.md, "Long times")
FLAGSHIP_E4 = 3.2167677e-2


def write_config(tmp_path: Path, **limit) -> Path:
    raw = tomllib.loads(FLAGSHIP.read_text())
    raw["output"] = str(tmp_path / "run")
    raw["limit"] = {"nodes": [256, 1024], "scrambles": 4, "outputs": 4, **limit}
    path = tmp_path / "c.toml"
    path.write_text(dump_toml(raw))
    return path


def test_limit_writes_a_certified_energy(tmp_path, capsys):
    """The flagship to t = 4 (256 -> 1024 nodes x 4 scrambles): E(4) within the reported
    error (1.4e-3 relative here) of the value DG2 and the nodes agree on, E non-increasing,
    every file written."""
    config = write_config(tmp_path)
    assert main(["limit", str(config), "--no-progress"]) == 0, capsys.readouterr().err
    out = tmp_path / "run" / "limit"
    for name in ("timeseries.csv", "f.npz", "energy.png", "summary.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert abs(summary["E_final"] - FLAGSHIP_E4) <= summary["E_final_error"]
    assert summary["E_final_error"] / FLAGSHIP_E4 < 3e-3 and summary["levels_agree"]
    rows = np.genfromtxt(out / "timeseries.csv", delimiter=",", names=True)
    assert np.all(np.diff(rows["E"]) < 0) and np.all(rows["E_error"][1:] > 0)
    assert len(list((out / "scrambles").iterdir())) == 8
    assert "limit: E(t_final = 4)" in capsys.readouterr().out


def test_limit_reruns_only_missing_scrambles(tmp_path, monkeypatch):
    """A finished run is refused without --force; a run killed after some scrambles reruns
    only the missing ones, to the same numbers; --force starts afresh."""
    import solver.reference.rqmc as rqmc

    config = write_config(tmp_path)
    assert main(["limit", str(config), "--no-progress"]) == 0
    out = tmp_path / "run" / "limit"
    first = (out / "timeseries.csv").read_text()
    assert main(["limit", str(config), "--no-progress"]) == RunExistsError.exit_code
    (out / "summary.json").unlink()  # as if killed before the end ...
    (out / "scrambles" / "rqmc-1024-2.npz").unlink()  # ... with one scramble unfinished
    calls = []
    real = rqmc.lagrangian_flow
    monkeypatch.setattr(rqmc, "lagrangian_flow", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert main(["limit", str(config), "--no-progress", "--resume"]) == 0
    assert len(calls) == 1 and (out / "timeseries.csv").read_text() == first
    assert main(["limit", str(config), "--no-progress", "--force"]) == 0
    assert len(calls) == 9


@pytest.mark.parametrize(("limit", "problem", "message"), [
    ({"nodes": [1000, 4096]}, {}, "limit.nodes: got [1000, 4096]"),
    ({"nodes": [4096]}, {}, "at least two increasing powers of 2"),
    ({"scrambles": 1}, {}, "limit.scrambles: got 1"),
    ({}, {"beta": 100.0}, "[limit]: the RQMC reference follows the noiseless"),
])
def test_bad_limit_sections_are_named(tmp_path, capsys, limit, problem, message):
    config = write_config(tmp_path, **limit)
    raw = tomllib.loads(config.read_text())
    raw["problem"].update(problem)
    if problem:
        raw.pop("pde"), raw.pop("particles")
    config.write_text(dump_toml(raw))
    assert main(["limit", str(config)]) == ConfigError.exit_code
    assert message in capsys.readouterr().err


def test_limit_needs_its_section(tmp_path, capsys):
    raw = tomllib.loads(FLAGSHIP.read_text())
    config = tmp_path / "c.toml"
    config.write_text(dump_toml({**raw, "output": str(tmp_path / "run")}))
    assert main(["limit", str(config)]) == ConfigError.exit_code
    assert "[limit]: missing section" in capsys.readouterr().err


def test_limit_stops_when_preempted_and_keeps_its_scrambles(tmp_path, monkeypatch):
    """SIGTERM during the first scramble: the run stops before the next (exit 75) with that
    scramble kept; the same command again finishes with the other seven."""
    import solver.reference.rqmc as rqmc
    from solver import preemption
    from solver.errors import Preempted

    config = write_config(tmp_path)
    real = rqmc.lagrangian_flow
    calls = []

    def signalled(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            preemption.request()
        return real(*args, **kwargs)

    monkeypatch.setattr(rqmc, "lagrangian_flow", signalled)
    assert main(["limit", str(config), "--no-progress"]) == Preempted.exit_code
    kept = list((tmp_path / "run" / "limit" / "scrambles").iterdir())
    assert len(kept) == 1 and not (tmp_path / "run" / "limit" / "summary.json").exists()
    assert main(["limit", str(config), "--no-progress"]) == 0
    assert len(calls) == 8
