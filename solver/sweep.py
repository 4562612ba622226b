"""Parameter sweeps: a grid file expands a base config into run directories (``plan``),
runs them through ``meanfield run`` (``run``) and gathers their summaries (``collect``).

Grid file (TOML)::

    base = "rbf_circle.toml"          # the base config, relative to the grid file
    output = "runs/sweep-width"       # the sweep directory (relative to the working directory)
    [grid]
    "unit.width" = [0.3, 0.5, 0.7]    # a dotted key of the config -> its values
    "particles.seeds" = [4, 8]

The runs are the Cartesian product of the axes (the last axis varies fastest), index
i = 0, 1, ...; run i is ``<output>/<iii>-<key=value,...>/`` holding ``config.toml``: the
base config with the grid values set, ``output`` set to that directory and relative
file paths (data.path, pde.mesh_file, initial.file) made absolute. Every merged config is
validated before anything is written.
``<output>/jobs.txt`` lists the config paths (line i + 1 is run i: a Slurm array task
``$SLURM_ARRAY_TASK_ID`` runs line ``$SLURM_ARRAY_TASK_ID + 1``), ``<output>/grid.json``
the plan; ``collect`` writes ``<output>/sweep.csv`` and ``<output>/sweep.png``.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solver.config import parse, read_toml
from solver.errors import ConfigError, Preempted, on_rank0
from solver.io import RunDirectory

#: The summary metric ``collect`` plots by default: the exponent alpha at the final time.
DEFAULT_METRIC = "alpha_final"


class SweepError(ConfigError):
    """A grid file or sweep directory that cannot be used; says what to fix."""

    label = "sweep error"


@dataclass(frozen=True)
class Run:
    """One point of the grid: its index, its values (grid key -> value) and directory."""

    index: int
    values: dict[str, Any]
    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / "config.toml"


@dataclass(frozen=True)
class Sweep:
    """An expanded grid: the axes (in file order), the merged configs and the runs."""

    grid_file: Path
    base: Path
    output: Path
    axes: dict[str, list[Any]]
    runs: list[Run]
    configs: list[dict[str, Any]]


# -- the grid ------------------------------------------------------------------------------

def _label(value: Any) -> str:
    """A value as it appears in a directory name: 0.5, 48x48, dg."""
    if isinstance(value, list):
        return "x".join(_label(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return re.sub(r"[^A-Za-z0-9.+-]", "_", str(value))


def _set(raw: dict[str, Any], key: str, value: Any) -> None:
    """raw[a][b][c] = value for key "a.b.c" (missing tables are created)."""
    *tables, last = key.split(".")
    node = raw
    for i, part in enumerate(tables):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SweepError(f"grid key {key!r}: {'.'.join(tables[: i + 1])} is a value in the "
                             f"base config, not a table; name a key inside a section")
    node[last] = value


def _culprit(err: ConfigError, keys: list[str]) -> str | None:
    """The grid key a config error is about (its field is, or lies in, that key)."""
    field = re.match(r"\[?([A-Za-z0-9_.]+)", str(err))
    name = field.group(1) if field else ""
    for key in sorted(keys, key=len, reverse=True):
        if name == key or name.startswith(key + ".") or key.startswith(name + "."):
            return key
    return None


def read_grid(path: str | Path) -> tuple[Path, Path, dict[str, list[Any]]]:
    """(base config, output directory, axes) of a grid file, checked."""
    path = Path(path)
    try:
        raw = read_toml(path, "grid file")
    except ConfigError as err:
        raise SweepError(str(err)) from None
    unknown = sorted(set(raw) - {"base", "output", "grid"})
    if unknown:
        raise SweepError(f"{path}: unknown key {unknown[0]!r}; a grid file has base, output "
                         f"and [grid]")
    for key in ("base", "output"):
        if not isinstance(raw.get(key), str):
            raise SweepError(f"{path}: {key}: missing or not a string; e.g. "
                             f'{key} = "{"rbf_circle.toml" if key == "base" else "runs/sweep"}"')
    axes = raw.get("grid")
    if not isinstance(axes, dict) or not axes:
        raise SweepError(f'{path}: [grid]: missing or empty; add e.g. "unit.width" = [0.3, 0.5]')
    for key, values in axes.items():
        if isinstance(values, dict):
            raise SweepError(f'{path}: [grid] {key}: a table; quote dotted keys, e.g. '
                             f'"{key}.{next(iter(values), "x")}" = [...]')
        if not isinstance(values, list) or not values:
            raise SweepError(f"{path}: [grid] {key!r}: got {values!r}; expected a non-empty "
                             f"list of values")
        if key in ("output", "name"):
            raise SweepError(f"{path}: [grid] {key!r}: set by the sweep for each run; grid "
                             f"over config fields such as \"unit.width\"")
        if len({json.dumps(v) for v in values}) != len(values):
            raise SweepError(f"{path}: [grid] {key!r}: repeated values in {values!r}")
    return (path.parent / raw["base"]), Path(raw["output"]), axes


def expand(grid_file: str | Path) -> Sweep:
    """Expand and validate a grid file (no file is written).

    Every merged config goes through solver.config.parse; a ConfigError becomes a
    SweepError naming the run, the grid key and the value to fix.
    """
    grid_file = Path(grid_file)
    base, output, axes = read_grid(grid_file)
    try:
        base_raw = read_toml(base)
    except ConfigError as err:
        raise SweepError(f"{grid_file}: base: {err} (the path is relative to the grid "
                         "file)") from None
    keys = list(axes)
    runs, configs = [], []
    for index, combo in enumerate(itertools.product(*axes.values())):
        values = dict(zip(keys, combo, strict=True))
        name = f"{index:03d}-" + ",".join(f"{k}={_label(v)}" for k, v in values.items())
        directory = output / name
        raw = copy.deepcopy(base_raw)
        for key, value in values.items():
            _set(raw, key, value)
        raw["name"] = f"{base_raw.get('name', 'run')}-{index:03d}"
        raw["output"] = str(directory.resolve())
        for table, key in (("data", "path"), ("pde", "mesh_file"), ("initial", "file")):
            section = raw.get(table)
            if isinstance(section, dict) and isinstance(section.get(key), str):
                section[key] = str((base.parent / section[key]).resolve())
        try:
            cfg = parse(raw, base.parent)
        except ConfigError as err:
            key = _culprit(err, keys)
            where = (f"grid key {key!r} = {values[key]!r}" if key is not None
                     else f"the base config {base} with {values}")
            raise SweepError(f"run {index} ({name}): {where}: {err}; fix the value in [grid] "
                             f"of {grid_file} or the base config") from err
        if cfg.particles is None:
            raise SweepError(f"{base}: [particles]: missing; a sweep runs `meanfield run` "
                             f"(PDE + particles)")
        runs.append(Run(index, values, directory))
        configs.append(raw)
    return Sweep(grid_file, base, output, axes, runs, configs)


# -- TOML output ---------------------------------------------------------------------------

def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise SweepError(f"cannot write {value!r} ({type(value).__name__}) to TOML")


def dump_toml(data: dict[str, Any], prefix: str = "") -> str:
    """TOML text of plain data (tables, arrays, strings, numbers, booleans):
    tomllib.loads(dump_toml(d)) == d."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items()
             if not isinstance(v, dict)]
    for key, value in data.items():
        if isinstance(value, dict):
            name = f"{prefix}{_toml_key(key)}"
            lines += ["", f"[{name}]", dump_toml(value, name + ".").rstrip("\n")]
    return "\n".join(lines) + "\n"


# -- plan, run, collect --------------------------------------------------------------------

def plan(sweep: Sweep) -> None:
    """Write every run's config.toml, jobs.txt and grid.json (call on one rank).

    A run directory whose config.toml differs from the new one (another grid or base) is
    refused: nothing is written then.
    """
    texts = [dump_toml(raw) for raw in sweep.configs]
    for run, text in zip(sweep.runs, texts, strict=True):
        if run.config.exists() and run.config.read_text() != text:
            raise SweepError(f"{run.directory} holds a run of another config; delete it or set "
                             f"another output in {sweep.grid_file}")
    for run, text in zip(sweep.runs, texts, strict=True):
        if not run.config.exists():
            RunDirectory(run.directory).write_text("config.toml", text)
    out = RunDirectory(sweep.output)
    out.write_text("jobs.txt", "".join(f"{run.config.resolve()}\n" for run in sweep.runs))
    out.write_json("grid.json", {
        "grid_file": str(sweep.grid_file.resolve()), "base": str(sweep.base.resolve()),
        "axes": sweep.axes,
        "runs": [{"index": r.index, "directory": r.directory.name, "values": r.values}
                 for r in sweep.runs],
    })


def flatten(summary: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalars of a run summary by dotted key; the final-time exponent as ``alpha_final``
    (with ``alpha_final_lo``/``_hi``, its bootstrap interval); lists are left out."""
    flat: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif value is None or isinstance(value, str | int | float):
            flat[f"{prefix}{key}"] = value
    if not prefix and summary.get("alpha"):
        last = summary["alpha"][-1]
        flat.update(alpha_final=last["alpha"], alpha_final_lo=last["lo"],
                    alpha_final_hi=last["hi"], alpha_final_t=last["t"])
    return flat


def run_status(run: Run) -> str:
    """finished (summary.json), unfinished (started, no summary) or not started."""
    if (run.directory / "summary.json").exists():
        return "finished"
    if (run.directory / "provenance.json").exists():
        return "unfinished"
    return "not started"


def collect(sweep: Sweep, metric: str = DEFAULT_METRIC) -> tuple[list[dict], list[Run]]:
    """Write sweep.csv (one row per run: index, directory, status, the grid values, every
    summary scalar and the phase timings) and sweep.png (``metric`` against the first
    axis, one line per combination of the others). Returns (rows, unfinished runs)."""
    rows, unfinished = [], []
    for run in sweep.runs:
        row: dict[str, Any] = {"index": run.index, "directory": run.directory.name,
                               "status": run_status(run), **run.values}
        if row["status"] == "finished":
            row.update(flatten(json.loads((run.directory / "summary.json").read_text())))
            prov = json.loads((run.directory / "provenance.json").read_text())
            row.update({f"time_s.{k}": v for k, v in prov.get("timings_s", {}).items()})
        else:
            unfinished.append(run)
        rows.append(row)
    finished = [r for r in rows if r["status"] == "finished"]
    if finished and not any(metric in r for r in finished):
        numeric = sorted({k for r in finished for k, v in r.items() if k not in sweep.axes
                          and isinstance(v, int | float) and not isinstance(v, bool)})
        raise SweepError(f"--metric {metric!r}: not in the run summaries; choose one of: "
                         f"{', '.join(k for k in numeric if k != 'index')}")
    for row in finished:
        if not isinstance(row.get(metric), int | float):
            why = (f"it is {row[metric]!r}" if metric in row
                   else "the key is missing from summary.json")
            print(f"sweep collect: warning: run {row['index']} ({row['directory']}) is finished "
                  f"but its summary has no value of {metric!r} ({why}); the point is missing "
                  f"from sweep.png", file=sys.stderr)
    head = ["index", "directory", "status", *sweep.axes, metric]
    columns = list(dict.fromkeys([*head, *(k for r in rows for k in r)]))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()})
    RunDirectory(sweep.output).write_text("sweep.csv", buf.getvalue())
    _figure(sweep, rows, metric, unfinished)
    return rows, unfinished


def _figure(sweep: Sweep, rows: list[dict], metric: str, unfinished: list[Run]) -> None:
    from solver.plots import _save, plt

    first, *others = sweep.axes
    xs = sweep.axes[first]
    numeric_x = all(isinstance(v, int | float) and not isinstance(v, bool) for v in xs)
    position = {json.dumps(v): (v if numeric_x else i) for i, v in enumerate(xs)}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    groups: dict[str, list[dict]] = {}
    for row in rows:
        label = ", ".join(f"{k}={_label(row[k])}" for k in others) or metric
        groups.setdefault(label, []).append(row)
    for label, members in groups.items():
        pts = [(position[json.dumps(r[first])], r[metric]) for r in members
               if r["status"] == "finished" and isinstance(r.get(metric), int | float)]
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", label=label)
    if not numeric_x:
        ax.set_xticks(range(len(xs)), [_label(v) for v in xs])
    ax.set_xlabel(first)
    ax.set_ylabel(metric)
    title = f"{sweep.output.name}: {len(rows) - len(unfinished)} of {len(rows)} runs finished"
    if unfinished:
        title += "\nmissing: " + ", ".join(f"{r.index:03d}" for r in unfinished[:12])
        title += " ..." if len(unfinished) > 12 else ""
    ax.set_title(title, fontsize=9)
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, sweep.output / "sweep.png")


def run_sweep(sweep: Sweep, only: int | None, run_options: list[str]) -> int:
    """Run the planned runs in turn (or run ``only``) through ``meanfield run CONFIG
    *run_options``, skipping finished ones. Collective. Returns 0; the first nonzero exit
    code of a pre-empted run (75) stops the sweep and is returned; a run that fails
    otherwise is reported and the others still run (exit code 1 at the end)."""
    from mpi4py import MPI

    from solver.cli import main as meanfield

    comm = MPI.COMM_WORLD
    rank0 = comm.rank == 0
    if only is not None and not 0 <= only < len(sweep.runs):
        raise SweepError(f"--only {only}: the sweep has runs 0 .. {len(sweep.runs) - 1}")
    chosen = sweep.runs if only is None else [sweep.runs[only]]
    failed = []
    for run in chosen:
        status = comm.bcast(run_status(run) if rank0 else None, root=0)
        missing = comm.bcast(not run.config.exists() if rank0 else None, root=0)
        if missing:
            raise SweepError(f"{run.config} does not exist; run `meanfield sweep plan "
                             f"{sweep.grid_file}` first")
        if status == "finished":
            if rank0:
                print(f"sweep: run {run.index} ({run.directory.name}) finished; skipped")
            continue
        if rank0:
            print(f"sweep: run {run.index} ({run.directory.name})", flush=True)
        code = meanfield(["run", str(run.config), *run_options])
        if code == Preempted.exit_code:
            return code
        if code != 0:  # a failed run (e.g. SchemeFailure) must not stop the rest
            if rank0:
                print(f"sweep: run {run.index} failed (exit code {code})", file=sys.stderr)
            failed.append(run.index)
    if failed and rank0:
        print(f"sweep: failed runs: {failed}", file=sys.stderr)
    return 1 if failed else 0


def _collect_and_print(sweep: Sweep, metric: str) -> None:
    rows, unfinished = collect(sweep, metric)
    print(f"sweep: {len(rows) - len(unfinished)} of {len(rows)} runs finished; "
          f"{sweep.output / 'sweep.csv'}, {sweep.output / 'sweep.png'}")
    for run in unfinished:
        print(f"  {run_status(run)}: {run.index:03d} {run.directory}")


def _plan_and_print(sweep: Sweep) -> None:
    plan(sweep)
    print(f"sweep: {len(sweep.runs)} runs planned in {sweep.output} "
          f"(jobs.txt: one config per line)")


def main(action: str, grid: Path, only: int | None = None, metric: str = DEFAULT_METRIC,
         run_options: list[str] | None = None) -> int:
    """``meanfield sweep {plan,run,collect} GRID``: MPI-safe (rank 0 writes). ``run`` plans
    first (idempotent) unless ``only`` names one planned run (a Slurm array task)."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    run_options = run_options or []
    if run_options and action != "run":
        raise ConfigError(f"meanfield sweep {action}: unrecognised options {run_options}; "
                          "only `sweep run` passes options on to `meanfield run`")
    sweep = expand(grid)
    if action == "collect":
        on_rank0(comm, lambda: _collect_and_print(sweep, metric))
        return 0
    if action == "plan" or only is None:
        on_rank0(comm, lambda: _plan_and_print(sweep))
    return run_sweep(sweep, only, run_options) if action == "run" else 0
