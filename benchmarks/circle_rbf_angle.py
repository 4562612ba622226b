"""Time to accuracy on the flagship class with a density that sees the angle's period.

The circle-RBF problem (benchmarks.problems.circle_rbf: s = c exp((cos(x - z) - 1)/w^2), 64
lattice points, a 3-unit teacher) on the cylinder [-5, 5] x S^1 with rho_0 = N(0, 0.5^2) in c
times the uniform law in the angle z, t in [0, 5]. Each run: ``solve`` (mesh, set-up, the
time loop) with SSP-RK3 at cfl 0.5, wall time the max over ranks, and the max relative error
of E(t) at 11 output times against the Lagrangian cross-check (solver.reference.lagrangian,
composite Gauss-Legendre x periodic trapezoid grid of rho_0, RK4), computed on rank 0
after the timed runs. The reference's own error is printed: the change of E(t) when its grid
is halved and when its step is doubled.

``--plot PATH`` draws the time-to-accuracy curves (error against wall time, one line per scheme).

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.circle_rbf_angle [--quick] [--plot F]
      OPENBLAS_NUM_THREADS=1 .venv/bin/mpiexec -n 2 .venv/bin/python -m benchmarks.circle_rbf_angle
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
from mpi4py import MPI

from benchmarks.problems import circle_rbf
from solver.model import density
from solver.model.domain import Cylinder
from solver.model.problem import Problem
from solver.pde.solve import solve
from solver.reference.lagrangian import lagrangian_flow
from solver.settings import PDESettings

T_FINAL = 5.0
TARGET = 1e-8
RUNS = {"FV": ("fv", 1, [64, 128, 256]), "DG1": ("dg", 1, [32, 64, 128, 192]),
        "DG2": ("dg", 2, [24, 32, 48, 64])}
QUICK = {"FV": ("fv", 1, [32, 64]), "DG1": ("dg", 1, [32, 64]), "DG2": ("dg", 2, [24, 48])}


def problem() -> Problem:
    base = circle_rbf(t_final=T_FINAL, domain=Cylinder(-5.0, 5.0))
    return dataclasses.replace(base, initial=density.GaussianVonMises([0.0, 0.0], [0.5], 0.0),
                               name="circle_rbf, rho_0 uniform in the angle")


def reference(panels: int, dt: float) -> np.ndarray:
    times = np.linspace(0.0, T_FINAL, 11)
    return lagrangian_flow(problem(), times, nodes=panels, dt=dt, rule="grid").energy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two meshes per scheme")
    parser.add_argument("--plot", metavar="PATH", help="write the error-vs-wall-time figure")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    runs = []
    for label, (scheme, degree, levels) in (QUICK if args.quick else RUNS).items():
        for cells in levels:
            settings = PDESettings(cells=(cells, cells), scheme=scheme, degree=degree,
                                   integrator="ssprk3", cfl=0.5, outputs=10, snapshots=0,
                                   progress=False)
            comm.barrier()
            start = time.perf_counter()
            result = solve(problem(), settings, comm=comm)
            wall = comm.allreduce(time.perf_counter() - start, MPI.MAX)
            runs.append((label, cells, wall, result.energy))
    if comm.rank != 0:
        return
    ref = reference(64, 0.01)
    own_grid = np.max(np.abs(reference(32, 0.01) / ref - 1))
    own_dt = np.max(np.abs(reference(16, 0.02) / reference(16, 0.01) - 1))
    print(f"{problem().name}, cylinder [-5, 5] x S^1, t in [0, {T_FINAL}], {comm.size} rank(s)")
    print(f"Lagrangian reference (256 x 256 nodes, RK4 dt 0.01): E(5) = {ref[-1]:.12f}; its own "
          f"error: {own_grid:.1e} (grid halved), {own_dt:.1e} (step doubled)")
    print(f"{'scheme':>6} {'cells':>8} {'wall s':>8} {'max rel E(t) err':>17}")
    best = {}
    for label, cells, wall, energy in runs:
        err = float(np.max(np.abs(energy / ref - 1)))
        print(f"{label:>6} {cells:>5}^2 {wall:8.2f} {err:17.2e}")
        if err <= TARGET and (label not in best or wall < best[label][1]):
            best[label] = (cells, wall)
    for label, (cells, wall) in best.items():
        print(f"{label} reaches {TARGET:g} on {cells}^2 cells in {wall:.1f} s")
    if not best:
        print(f"no run reaches {TARGET:g}")
    if args.plot:
        plot(args.plot, [(label, cells, wall, float(np.max(np.abs(energy / ref - 1))))
                         for label, cells, wall, energy in runs], comm.size)


def plot(path: str, rows: list[tuple[str, int, float, float]], ranks: int) -> None:
    """Error against wall time, one line per scheme, each point labelled with its mesh."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label in dict.fromkeys(r[0] for r in rows):
        pts = [(wall, err, cells) for name, cells, wall, err in rows if name == label]
        ax.loglog([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
        for wall, err, cells in pts:
            ax.annotate(f"{cells}$^2$", (wall, err), textcoords="offset points", xytext=(4, 4),
                        fontsize=7)
    ax.axhline(TARGET, color="0.5", ls="--", lw=0.8, label=f"target {TARGET:g}")
    ax.set(xlabel=f"wall time [s], {ranks} rank(s)", ylabel="max relative error of E(t), t <= 5",
           title="circle-RBF, rho_0 uniform in the angle: time to accuracy")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    main()
