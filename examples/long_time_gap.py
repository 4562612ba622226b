"""The long-time gap of the interpolating companion, mode by mode (issue 15, items 2-3).

``examples/bump_circle.toml`` (bumps s(x; z) = 2 exp((cos(x - z) - 1) / 0.25) on the circle,
64 lattice points, a target the limit reaches) run to t = 3000 (full) with widths 8..16384:
the limit along its characteristics (Lagrangian, checked against twice the nodes), particle
ensembles, and the gap split into Fourier modes and into eigenmodes of the limit's tangent
kernel (``benchmarks/healing_modes.py`` has the definitions). It measures whether the
O(n^-1/2) gap heals to O(n^-1) over the widths >= 64, and which modes carry what is left.

Outputs in the run directory (``runs/long_time_gap``): report.md (the tables), results.json
(every number), gallery.png (alpha(t); n gap^2 / MC per width; n |g_k|^2 per Fourier mode
against the kernel's prediction; the particle loss against n), raw.npz (f_n - f_rho of every
task), summary.json (written last). No DOLFINx needed.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python examples/long_time_gap.py --size full
      (--size small: the seconds-long version the tests run; --output DIR, --force)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for ``benchmarks``

from _common import open_run, parse_args, run

from benchmarks import healing_modes as hm

NAME = "long_time_gap"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(__doc__, argv, sizes=("small", "full"))
    run_dir = open_run(NAME, args, needs_dolfinx=False)
    start = time.perf_counter()
    study = hm.SIZES[args.size]
    problem = hm.bump_problem()
    lim = hm.limit(problem, np.array(study.times), study.nodes, study.fine_times)
    ens = hm.ensemble(problem, study, lim, progress=not args.no_progress)
    res = hm.analyse(problem, lim, ens)
    wall = time.perf_counter() - start
    res["wall_s"] = wall
    out = run_dir.path
    np.savez_compressed(out / "raw.npz", times=lim.times, f_limit=lim.f,
                        **{f"d_n{n}": d for n, d in zip(ens.widths, ens.d, strict=True)},
                        **{f"loss_n{n}": x for n, x in zip(ens.widths, ens.loss, strict=True)})
    run_dir.write_json("results.json", res)
    (out / "report.md").write_text(
        f"# The long-time gap of bump_circle ({args.size}): "
        f"{len(study.widths)} widths x {study.seeds} seeds, t <= {study.times[-1]:g}\n\n"
        + hm.table(res) + f"\n\nWall time {wall:.0f} s (limit {lim.wall:.0f} s).\n"
        "![](gallery.png)\n")
    hm.figure(res, out / "gallery.png")
    j = -1
    summary = {
        "size": args.size, "widths": list(study.widths), "seeds": study.seeds,
        "t_final": study.times[-1], "wall_s": round(wall, 1),
        "alpha_final": [res["alpha"][k][j] for k in ("value", "lo", "hi")],
        "alpha_max": float(np.nanmax(res["alpha"]["value"])),
        "alpha_healed_eig_final": [res["alpha_healed_eig"][k][j] for k in ("value", "lo", "hi")],
        "n_g2_over_mc_final": [row[j] for row in res["n_g2_over_mc"]],
        "mode0_max": res["mode0_max"],
        "healing_time": res["healing_time"],
        "loss_exponent": res["loss_final"]["exponent"],
        "leave_time": res["leave_time"],
        "gap_over_budget_min": res["budget"]["gap_over_budget_min"],
    }
    if run_dir.writer:
        run_dir.write_json("summary.json", summary)
        print(hm.table(res))
        print(json.dumps({k: summary[k] for k in ("alpha_final", "wall_s")}))
        print(f"outputs in {out}")
    return summary


if __name__ == "__main__":
    sys.exit(run(main))
