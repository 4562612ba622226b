"""Cost of the reduced PDE against the particles in R^d (issue 16): the single-index setting of
``examples/single_index.py`` (y = tanh(x_1), x ~ N(0, I_d), f = mean tanh(w_i . x), output
weight 1, w(0) ~ N(0, 0.25 I/d), 1000 Monte Carlo test points, t in [0, 3]) for
d = 10, 50, 200, 1000.

- PDE: the 2-D reduced problem of ``reduction.ridge_problem`` at the example's accurate
  resolution: DG1 112 x 56 cells on (a, q) in [-0.6, 1.6] x [0, 1.4], SSP-RK3, 15 outputs
  (f_t at the test points, which are zero-weight points of the reduced rule);
- particles: one run of n = 4096 units in R^d by ``particle_check.particles.simulate``, the
  example's integrator: online SGD, rk4, dt = 0.02, one fresh batch of 1024 draws of the law
  per step, from the full Gaussian rho_0 (the example's seeding).

Both report the risk E(f - y)^2 on the same test points; the gap ||f_n - f_t|| there against
sqrt(MC(t) / n) (MC from the PDE) shows both computed the same flow. Printed: a table per d
and the ratio PDE wall / particle wall (issue 16: <= 1 at d = 200). Wall times are of one
process; run it on an otherwise idle machine, or read the ratios (both measured in one run).

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.reduction_cost [--dims 10 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import single_index as ex  # (the setting, its PDE settings, its particle runs)

from solver.model import reduction

DIMS = (10, 50, 200, 1000)
N = 4096
#: the example's accurate run: DG1 112 x 56, t in [0, 3], 15 outputs, SGD rk4 dt 0.02, P 1024
SIZE = ex.SIZES["default"]


def pde_run(red: reduction.Reduction, size: ex.Size) -> dict:
    """The reduced PDE on this process at ``size.cells``: wall time, steps, f_t at the test
    points, the risk there and over the law (the reduced Gauss rule), MC(t) and the largest
    t rule the reduced unit used."""
    from solver.pde.solve import solve

    start = time.perf_counter()
    result = solve(red.reduced, ex.pde_settings(size, size.cells), comm=MPI.COMM_SELF)
    wall = time.perf_counter() - start
    f = np.asarray(result.f)[:, red.test]
    return {"wall": wall, "steps": len(result.steps["t"]) - 1, "times": result.times, "f": f,
            "risk": ((f - red.full.y) ** 2) @ red.full.data.weights,
            "population_risk": 2 * np.asarray(result.loss),
            "mc": np.asarray(result.mc), "nodes": red.unit.nodes,
            "outflow": float(np.max(result.steps["boundary_outflow"]))}


def particle_run(red: reduction.Reduction, size: ex.Size, times: np.ndarray, n: int, d: int,
                 seed: int = 0) -> dict:
    """One particle run of width n in R^d (the example's ``run_particles``): wall time, f_n at
    the test points, the risk there."""
    run, _, wall = ex.run_particles(red, size, times, n, seed, d)
    return {"wall": wall, "f": run.f, "risk": 2 * np.asarray(run.loss), "steps": run.steps}


def compare(d: int, pde: dict, particles: dict, n: int, weights: np.ndarray) -> dict:
    """One row: walls, their ratio, the risks at the last output, the gap at the test points
    (``weights``) against sqrt(MC / n)."""
    gap = np.sqrt(((particles["f"] - pde["f"]) ** 2) @ weights)
    return {"d": d, "n": n, "pde_wall": pde["wall"], "pde_steps": pde["steps"],
            "t_rule_nodes": pde["nodes"], "particle_wall": particles["wall"],
            "particle_steps": particles["steps"], "ratio": pde["wall"] / particles["wall"],
            "pde_risk": float(pde["risk"][-1]), "particle_risk": float(particles["risk"][-1]),
            "risk_initial": float(pde["risk"][0]),
            "population_risk": float(pde["population_risk"][-1]), "gap": float(gap[-1]),
            "gap_expected": float(np.sqrt(pde["mc"][-1] / n)), "pde_outflow": pde["outflow"]}


def measure(d: int, size: ex.Size = SIZE, n: int = N, seed: int = 0) -> dict:
    """The PDE and one particle run of width n in dimension d, one after the other on this
    process."""
    red = ex.setting(d, size)
    pde = pde_run(red, size)
    return compare(d, pde, particle_run(red, size, pde["times"], n, d, seed), n,
                   red.full.data.weights)


def table(rows: list[dict], highlight: int = 200) -> str:
    """The markdown table of ``measure`` rows (the ``highlight`` dimension in bold)."""
    lines = ["| d | PDE wall s (steps) | particles wall s (n) | PDE / particles | risk t=0 | "
             "risk t_f PDE | risk t_f particles | gap t_f | sqrt(MC/n) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['ratio']:.2f}"
        if r["d"] == highlight:
            ratio = f"**{ratio}**"
        lines.append(f"| {r['d']} | {r['pde_wall']:.1f} ({r['pde_steps']}) | "
                     f"{r['particle_wall']:.1f} ({r['n']}) | {ratio} | {r['risk_initial']:.4f} | "
                     f"{r['pde_risk']:.5f} | {r['particle_risk']:.5f} | {r['gap']:.4f} | "
                     f"{r['gap_expected']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=list(DIMS))
    parser.add_argument("--n", type=int, default=N)
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args(argv)
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average, {os.cpu_count()} cores)")
    start, rows = time.perf_counter(), []
    for d in args.dims:
        rows.append(measure(d, n=args.n))
        r = rows[-1]
        print(f"d = {d:4d}: PDE {r['pde_wall']:.1f} s, particles {r['particle_wall']:.1f} s, "
              f"ratio {r['ratio']:.2f}; risk {r['pde_risk']:.5f} / {r['particle_risk']:.5f}",
              flush=True)
    print(table(rows))
    for r in rows:
        if r["d"] == 200:
            verdict = "holds" if r["ratio"] <= 1 else "FAILS"
            print(f"issue 16 cost criterion at d = 200 (PDE wall <= particle wall at "
                  f"n = {r['n']}): ratio {r['ratio']:.2f}, {verdict}")
    print(f"total {time.perf_counter() - start:.0f} s; load after: {os.getloadavg()[0]:.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
