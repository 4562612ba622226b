"""meanfield sweep: grid expansion, validation before writing, run/skip, collect, MPI."""

import csv
import json
import tomllib

import pytest
from mpi4py import MPI

from solver import sweep
from solver.cli import main as meanfield
from solver.config import parse
from tests.conftest import tiny_run_config
from tests.ranks import on_root, shared_dir
from tests.test_config import EXAMPLE

TINY = tiny_run_config("runs/tiny")


def write_grid(folder, grid: str, output: str = "out"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.toml").write_text(TINY)
    path = folder / "grid.toml"
    path.write_text(f'base = "tiny.toml"\noutput = "{output}"\n[grid]\n{grid}\n')
    return path


def test_dump_toml_round_trips_the_flagship_config():
    raw = tomllib.loads(EXAMPLE.read_text())
    raw["pde"]["petsc"] = {"ksp_type": "gmres", "ksp_rtol": 1e-13}
    raw["problem"]["beta"] = float("inf")
    assert tomllib.loads(sweep.dump_toml(raw)) == raw


def test_plan_expands_the_product_into_validated_run_directories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # output is relative to the working directory
    grid = write_grid(tmp_path / "grids", '"unit.width" = [0.3, 0.7]\n"particles.seeds" = [2, 3]')
    assert meanfield(["sweep", "plan", str(grid)]) == 0
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert names == ["000-unit.width=0.3,particles.seeds=2", "001-unit.width=0.3,particles.seeds=3",
                     "002-unit.width=0.7,particles.seeds=2", "003-unit.width=0.7,particles.seeds=3"]
    jobs = (out / "jobs.txt").read_text().splitlines()
    assert jobs == [str(out / name / "config.toml") for name in names]
    cfg = parse(tomllib.loads((out / names[2] / "config.toml").read_text()))
    assert (cfg.problem.unit.width, cfg.particles.seeds) == (0.7, 2)
    assert cfg.output == out / names[2] and cfg.name == "tiny-002"
    assert cfg.problem.t_final == 0.2  # the rest is the base config
    plan = json.loads((out / "grid.json").read_text())
    assert plan["axes"] == {"unit.width": [0.3, 0.7], "particles.seeds": [2, 3]}
    assert plan["runs"][3] == {"index": 3, "directory": names[3],
                               "values": {"unit.width": 0.7, "particles.seeds": 3}}
    assert meanfield(["sweep", "plan", str(grid)]) == 0  # the same grid again: no change
    (grid.parent / "tiny.toml").write_text(TINY.replace("t_final = 0.2", "t_final = 0.3"))
    with pytest.raises(sweep.SweepError, match="holds a run of another config"):
        sweep.plan(sweep.expand(grid))


@pytest.mark.parametrize(("grid", "message"), [
    ('"unit.width" = [0.5, -1.0]', r"grid key 'unit.width' = -1.0: unit.width: got -1.0"),
    ('"unit.widht" = [0.5]', r"grid key 'unit.widht' = 0.5: unit.widht: unknown key"),
    ('"particles.seeds" = [2, 0]', r"grid key 'particles.seeds' = 0: particles.seeds: got 0"),
    ('"pde.integrator" = ["rk9"]', r"grid key 'pde.integrator' = 'rk9'.*allowed: euler"),
    ('"unit.width" = 0.5', r"\[grid\] 'unit.width': got 0.5; expected a non-empty list"),
    ('"output" = ["a"]', r"'output': set by the sweep"),
    ('"problem.t_final.x" = [1]', r"problem.t_final is a value in the base config"),
])
def test_bad_grid_names_the_key_and_writes_nothing(tmp_path, grid, message, capsys):
    path = write_grid(tmp_path, grid, output=str(tmp_path / "out"))
    with pytest.raises(sweep.SweepError, match=message):
        sweep.expand(path)
    assert meanfield(["sweep", "plan", str(path)]) == 2
    assert "meanfield: sweep error:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_missing_base_and_unknown_metric(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('base = "nope.toml"\noutput = "out"\n[grid]\n"unit.width" = [1.0]\n')
    with pytest.raises(sweep.SweepError, match="relative to the grid file"):
        sweep.expand(path)
    path.write_text('output = "out"\n[grid]\n"unit.width" = [1.0]\n')
    with pytest.raises(sweep.SweepError, match="base: missing"):
        sweep.expand(path)


def test_run_one_skip_finished_and_collect_lists_unfinished(tmp_path, capsys):
    pytest.importorskip("dolfinx", reason="needs DOLFINx")
    grid = write_grid(tmp_path, '"unit.width" = [0.4, 0.6]', output=str(tmp_path / "out"))
    assert meanfield(["sweep", "run", str(grid), "--only", "0"]) == 2  # not planned yet
    assert "sweep plan" in capsys.readouterr().err
    assert meanfield(["sweep", "plan", str(grid)]) == 0
    assert meanfield(["sweep", "run", str(grid), "--only", "0", "--no-progress"]) == 0
    run0 = tmp_path / "out" / "000-unit.width=0.4"
    assert (run0 / "summary.json").exists()
    prov = json.loads((run0 / "provenance.json").read_text())
    assert set(prov["timings_s"]) == {"pde", "error_budget", "ensemble", "report", "total"}
    capsys.readouterr()
    assert meanfield(["sweep", "run", str(grid), "--only", "0"]) == 0
    assert "finished; skipped" in capsys.readouterr().out
    assert meanfield(["sweep", "run", str(grid), "--only", "5"]) == 2
    assert meanfield(["sweep", "collect", str(grid), "--metric", "nonsense"]) == 2
    assert "choose one of: " in capsys.readouterr().err
    assert meanfield(["sweep", "collect", str(grid), "--metric", "pde_loss_final"]) == 0
    assert "not started: 001" in capsys.readouterr().out
    with open(tmp_path / "out" / "sweep.csv") as fh:
        rows = list(csv.DictReader(fh))
    summary = json.loads((run0 / "summary.json").read_text())
    assert [r["status"] for r in rows] == ["finished", "not started"]
    assert [r["unit.width"] for r in rows] == ["0.4", "0.6"]
    assert float(rows[0]["pde_loss_final"]) == summary["pde_loss_final"]
    assert rows[1]["pde_loss_final"] == ""
    assert float(rows[0]["time_s.total"]) == prov["timings_s"]["total"]
    assert (tmp_path / "out" / "sweep.png").stat().st_size > 0
    # a finished run whose summary has no value of the metric: a warning naming it
    summary["pde_loss_final"] = None
    (run0 / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    assert meanfield(["sweep", "collect", str(grid), "--metric", "pde_loss_final"]) == 0
    assert ("run 0 (000-unit.width=0.4) is finished but its summary has no value of "
            "'pde_loss_final'") in capsys.readouterr().err


def test_collect_warns_for_a_finished_run_without_the_metric(tmp_path, capsys):
    """Fabricated summaries (no DOLFINx): a finished run lacking the metric, or holding null,
    is named with the metric on stderr; the others are still collected and plotted."""
    grid = write_grid(tmp_path, '"unit.width" = [0.3, 0.5, 0.7, 0.9]',
                      output=str(tmp_path / "out"))
    plan = sweep.expand(grid)
    sweep.plan(plan)
    summaries = [{"pde_loss_final": 0.25, "seeds": 2}, {"seeds": 2},
                 {"pde_loss_final": None, "seeds": 2}, None]   # run 3 started, not finished
    for run, summary in zip(plan.runs, summaries, strict=True):
        (run.directory / "provenance.json").write_text(json.dumps({"timings_s": {"total": 1}}))
        if summary is not None:
            (run.directory / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    rows, unfinished = sweep.collect(plan, "pde_loss_final")
    err = capsys.readouterr().err.splitlines()
    assert [r.index for r in unfinished] == [3]
    assert [r.get("pde_loss_final", "absent") for r in rows] == [0.25, "absent", None, "absent"]
    assert err == [
        "sweep collect: warning: run 1 (001-unit.width=0.5) is finished but its summary has no "
        "value of 'pde_loss_final' (the key is missing from summary.json); the point is "
        "missing from sweep.png",
        "sweep collect: warning: run 2 (002-unit.width=0.7) is finished but its summary has no "
        "value of 'pde_loss_final' (it is None); the point is missing from sweep.png"]
    assert (tmp_path / "out" / "sweep.png").stat().st_size > 0
    capsys.readouterr()
    sweep.collect(plan, "seeds")   # every finished run has it: no warning
    assert capsys.readouterr().err == ""


def test_flatten_takes_the_final_exponent():
    flat = sweep.flatten({"alpha": [{"t": 0.0, "alpha": 0.5, "lo": 0.4, "hi": 0.6},
                                    {"t": 4.0, "alpha": 0.8, "lo": 0.7, "hi": 0.9}],
                          "loss": {"pde_loss_final": 0.1}, "n": [1, 2]})
    assert flat == {"loss.pde_loss_final": 0.1, "alpha_final": 0.8, "alpha_final_lo": 0.7,
                    "alpha_final_hi": 0.9, "alpha_final_t": 4.0}


@pytest.mark.mpi
def test_plan_and_collect_under_mpi(tmp_path):
    comm = MPI.COMM_WORLD
    folder = shared_dir(comm, tmp_path)
    grid = folder / "grid.toml"
    if comm.rank == 0:
        write_grid(folder, '"unit.width" = [0.4, 0.6]', output=str(folder / "out"))
    comm.barrier()
    assert sweep.main("plan", grid) == 0
    assert sweep.main("collect", grid, metric="bogus") == 0  # no finished run: nothing to check

    def check():
        assert len((folder / "out" / "jobs.txt").read_text().splitlines()) == 2
        with open(folder / "out" / "sweep.csv") as fh:
            assert [r["status"] for r in csv.DictReader(fh)] == ["not started"] * 2

    on_root(comm, check)


def test_run_stops_on_preemption_and_survives_a_failed_run(tmp_path, monkeypatch):
    """Exit code 75 (pre-empted) stops the sweep with 75; a run that raises is reported
    and the next one still runs (exit code 1)."""
    import solver.cli

    grid = write_grid(tmp_path, '"unit.width" = [0.4, 0.5, 0.6]', output=str(tmp_path / "out"))
    calls = []

    def fake(outcomes):
        def run(argv):
            calls.append(argv)
            return outcomes[len(calls) - 1]
        return run

    monkeypatch.setattr(solver.cli, "main", fake([0, 75, 0]))
    assert sweep.main("run", grid, run_options=["--resume"]) == 75
    assert len(calls) == 2 and calls[1][2:] == ["--resume"]
    assert calls[1][1].endswith("001-unit.width=0.5/config.toml")
    calls.clear()
    monkeypatch.setattr(solver.cli, "main", fake([5, 0, 0]))  # a SchemeFailure in run 0
    assert sweep.main("run", grid) == 1
    assert len(calls) == 3
