"""Runs that cannot fit this machine are refused before any work (exit 6), naming the setting."""

import re
from pathlib import Path

import pytest

from solver.cli import main
from solver.errors import ResourceError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "rbf_circle.toml"

HUGE = {
    "pde.cells": (r"cells = \[48, 48\]", "cells = [100000, 100000]"),
    "particles.n": (r"\nn = \[.*\]", "\nn = [1000000000000]"),
    "particles.seeds": (r"seeds = 8", "seeds = 4611686018427387904"),
    "pde.outputs": (r"\noutputs = \d+", "\noutputs = 1000000000"),
}


@pytest.mark.parametrize("field", HUGE)
@pytest.mark.parametrize("command", ["check", "pde", "run"])
def test_a_run_that_cannot_fit_is_refused_naming_the_setting(tmp_path, capsys, field, command):
    pattern, value = HUGE[field]
    text, count = re.subn(pattern, value, EXAMPLE.read_text())
    assert count == 1
    config = tmp_path / "huge.toml"
    config.write_text(text)
    out = tmp_path / "run"
    options = [] if command == "check" else ["--output", str(out)]
    assert main([command, str(config), *options]) == ResourceError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("meanfield: resource error: this run cannot fit this machine")
    assert f"{field} = " in err
    assert not out.exists()


def test_the_flagship_fits_and_more_ranks_share_the_mesh(tmp_path, monkeypatch):
    """On a node with 24 GB available, DG2 on 1500^2 cells (>= 27 GB) needs >= 2 ranks."""
    monkeypatch.setattr("solver.resources.available_memory", lambda: 24 * 10**9)
    assert main(["check", str(EXAMPLE)]) == 0
    config = tmp_path / "big.toml"
    config.write_text(EXAMPLE.read_text().replace("cells = [48, 48]", "cells = [1500, 1500]"))
    assert main(["check", str(config)]) == ResourceError.exit_code
    assert main(["check", str(config), "--ranks", "2"]) == 0
