"""Every config example (examples/*.toml) passes `meanfield check` (DOLFINx or not) and runs
end to end at a small size, so none can rot: the PDE, the error-budget run, the particle
ensemble and the report."""

import json
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from particle_check.pipeline import prepare_run_dir, run_comparison
from solver.cli import main as meanfield
from solver.config import parse

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.toml"))


def small(raw: dict, output: Path) -> dict:
    """The same problem on a coarse mesh, over a short time, with few small networks."""
    raw = {**raw, "output": str(output)}
    raw["problem"] = {**raw["problem"], "t_final": 0.1 * raw["problem"]["t_final"] ** 0.5}
    raw["pde"] = {**raw["pde"], "cells": [max(4, c // 6) for c in raw["pde"]["cells"]],
                  "outputs": 2, "snapshots": 0}
    raw["particles"] = {**raw["particles"], "n": [16, 64], "seeds": 3}
    return raw


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_config_example_passes_check(example, capsys):
    assert meanfield(["check", str(example)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith(tomllib.loads(example.read_text())["name"])


@pytest.mark.mpi
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_config_example_runs_at_a_small_size(example, tmp_path):
    pytest.importorskip("dolfinx", reason="needs DOLFINx")
    comm = MPI.COMM_WORLD
    output = Path(comm.bcast(str(tmp_path) if comm.rank == 0 else None, root=0)) / "run"
    cfg = parse(small(tomllib.loads(example.read_text()), output), example.parent)
    cfg.pde = replace(cfg.pde, progress=False)
    run_dir = prepare_run_dir(cfg, None, comm, force=False)
    summary = run_comparison(cfg, run_dir, comm)
    if comm.rank != 0:
        return
    on_disk = json.loads((output / "summary.json").read_text())
    assert on_disk["n"] == [16, 64] and on_disk["seeds"] == 3
    assert summary["error_budget"]["pde_error_given"]
    first = summary["alpha"][0]
    assert np.isfinite(first["alpha"]) and first["lo"] <= first["alpha"] <= first["hi"]
    assert (output / "report.md").exists() and (output / "comparison.png").exists()
