"""Where the gap's exponent rises from 1/2 to 1: steep steps on the circle (issue 15, item 3).

theta = z, s(x; z) = 2 pi saw_eps(x - z) (a jump smoothed over eps, a linear ramp back), M
lattice points >> n, a target the limit reaches: every Fourier mode of the gap heals at one
O(1) rate, and a finite network cannot fit the data, so the gap goes from the CLT's n^-1/2 to
its own staircase error sqrt(B(n)) / n (``benchmarks/alpha_rise.py`` has the theory). The
limit is its Lagrangian flow (checked against twice the nodes), the particles run the same
right-hand side; numpy only.

Outputs (``runs/alpha_rise``): report.md (alpha(t) with 90% bootstrap intervals over the
widths >= 16 and >= 64, n gap^2 / MC per width, n^2 gap^2 / B(n) and when each width leaves
the n^-1/2 regime, the particle loss against n, the error budget), results.json,
gallery.png, summary.json (last).

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python examples/alpha_rise.py
      (--size full: widths 8..1024, about 3 min; --size wide: 16..8192 with M = 2^20, about
      30 min; --size decades: 64..16384 with M = 2^21; --size small: the seconds-long
      version the tests run). Under ``mpiexec -n N`` the (width, seed) runs are dealt over
      the ranks.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for ``benchmarks``

from _common import finish, open_run, parse_args, run

from benchmarks import alpha_rise as ar


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(__doc__, argv, sizes=("small", "full", "wide", "decades"))
    run_dir = open_run("alpha_rise", args, needs_dolfinx=False)
    start = time.perf_counter()
    study = ar.SIZES[args.size]
    lat = ar.SawtoothLattice(study.setting)
    comm = MPI.COMM_WORLD  # the runs are dealt over the ranks
    lim = ar.limit(lat, np.array(study.times), study.nodes, comm=comm)
    ens = ar.ensemble(lat, study, lim, progress=not args.no_progress, comm=comm)
    res = ar.analyse(lat, study, lim, ens)
    wall = time.perf_counter() - start
    out = run_dir.path
    summary = {"size": args.size, "widths": list(study.widths), "seeds": study.seeds,
               "M": lat.M, "eps": lat.eps, "t_final": study.times[-1], "wall_s": round(wall, 1),
               **{f"{key}_{when}": [res[key][k][j] for k in ("value", "lo", "hi")]
                  for key in ("alpha", "alpha_ge64") if key in res
                  for when, j in (("t0", 0), ("final", -1))},
               "leave_time": res["leave_time"], "loss_exponent": res["loss_final"]["exponent"],
               "gap_over_budget_min": res["budget"]["gap_over_budget_min"]}
    if run_dir.writer:
        run_dir.write_json("results.json", res)
        (out / "report.md").write_text(
            f"# alpha(t) on steep steps ({args.size}): {len(study.widths)} widths x "
            f"{study.seeds} seeds, M = {lat.M}, eps = {lat.eps:g}\n\n" + ar.table(res)
            + f"\n\nWall time {wall:.0f} s (limit {lim.wall:.0f} s).\n\n![](gallery.png)\n")
        ar.figure(res, out / "gallery.png")
    finish(run_dir, summary)
    return res


if __name__ == "__main__":
    sys.exit(run(main))
