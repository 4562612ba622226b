"""Long times: a limit that concentrates without bound, fixed-mesh DG against moving nodes.

The exact polar flow (solver.reference.polar_flow) on the circle or the sphere with target
Y = 1: the target is the point mass at the pole, which the flow approaches only as t -> inf
(sigma ~ log t, q = e^{-sigma}: rho_t has a peak of width ~ q; on the circle 5e-3 at
t = 200), from rho_0 uniform in the angle (on the sphere: uniform). The errors at t = 10, 50, 200 of

- E(t) (relative) and f_t (max over the data points, relative to max |f_t|),

for fixed-mesh DG1/DG2 (SSP-RK3, cfl 0.5) on refined meshes, for the reference Lagrangian
discretisation (solver.reference.lagrangian: weighted nodes of the periodic trapezoid rule
of rho_0 moving with the flow, RK4) and for the solver's "lagrangian" scheme (Gauss nodes of
the mesh cells, Dormand-Prince 5(4)), with their wall times; one rank. "cylinder": the same
flow on the cylinder [-3, 3] x S^1 (c carried along).

"flagship": the circle-RBF problem on the cylinder [-5, 5] x S^1 (benchmarks.problems), whose
limit concentrates onto the teacher's three atoms; no exact solution: E(t) at t = 4, 10, 50,
200 from DG2 on 32^2 ... 96^2 cells and from the lagrangian scheme at several node sets,
and their errors in E and f_t against the RQMC reference (solver.reference.rqmc: 4096,
16384, 65536 scrambled Sobol' nodes x 8 scrambles, error = the finest level's 90 % interval
half-width + its shift from the level before; each scramble kept in the directory
--reference, default runs/flagship-rqmc, and read back on later runs; scrambles split over
the ranks under mpiexec).

"sensitivity": how much E(10), E(50) of the flagship move when rho_0's std moves by 1e-4.

"rqmc": the RQMC ladder (8 scrambles per level) on the exact polar flows of the circle (256,
1024, 4096 nodes) and the cylinder (1024, 4096, 16384): its relative errors in E and the
error it reports (does the reported error cover the actual one?).

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.long_time
          [circle|sphere|cylinder|flagship|sensitivity|rqmc] [--quick] [--reference DIR]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
from mpi4py import MPI

from solver.model.domain import Circle, Cylinder, Sphere
from solver.reference.lagrangian import lagrangian_flow
from solver.reference.polar_flow import PolarFlow, polar_flow_problem
from solver.reference.rqmc import RQMCLadder, rqmc_estimate

TIMES = np.array([0.0, 10.0, 50.0, 200.0])
TARGET = 1.0


def errors(energy: np.ndarray, f: np.ndarray, exact_e: np.ndarray, exact_f: np.ndarray
           ) -> list[tuple[float, float]]:
    """(relative E error, relative f error) at each time but 0."""
    out = []
    for i in range(1, len(TIMES)):
        scale = np.max(np.abs(exact_f[i]))
        out.append((abs(energy[i] / exact_e[i] - 1), np.max(np.abs(f[i] - exact_f[i])) / scale))
    return out


def dg_run(problem, degree: int, cells: int) -> tuple[np.ndarray, np.ndarray, float, int]:
    """(E, f) at TIMES from a fixed-mesh DG run, its wall time and steps."""
    from benchmarks.dg_translation import march
    from solver.pde.solve import make_scheme
    from solver.settings import PDESettings

    settings = PDESettings(cells=tuple(np.ravel(cells).tolist()), scheme="dg", degree=degree,
                           progress=False)
    s = make_scheme(problem, settings, MPI.COMM_SELF)
    s.set_density(s.initial_density())
    return march(s, TIMES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("domain", nargs="?", default="circle",
                        choices=("circle", "sphere", "cylinder", "flagship", "sensitivity",
                                 "rqmc"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reference", default="runs/flagship-rqmc",
                        help="flagship: the directory that keeps the RQMC reference's runs")
    args = parser.parse_args()
    if args.domain == "sensitivity":
        sensitivity()
        return
    if args.domain == "rqmc":
        rqmc_exact()
        return
    if args.domain == "flagship":
        flagship([32] if args.quick else [32, 48, 64, 96],
                 [(2, (16, 16)), (2, (32, 32))] if args.quick else
                 [(2, (16, 16)), (2, (32, 32)), (3, (32, 32)), (2, (64, 64))],
                 args.reference)
        return
    sphere = args.domain == "sphere"
    domain = {"sphere": Sphere(3), "circle": Circle(), "cylinder": Cylinder(-3.0, 3.0)}[
        args.domain]
    problem = polar_flow_problem(domain, target=TARGET, t_final=float(TIMES[-1]))
    exact = PolarFlow(domain, target=TARGET, nodes=2**16)
    sigma = exact.sigma(TIMES)
    m = np.array([exact.mean_cos(s) for s in sigma])
    exact_e = exact.energy(TIMES)
    x = problem.data.points
    exact_f = m[:, None] * (x[:, 2] if sphere else np.cos(x[:, 0]))[None, :]
    print(f"polar flow on the {args.domain}, Y = {TARGET}: q = e^-sigma at t = 10, 50, 200: "
          + ", ".join(f"{np.exp(-s):.2e}" for s in sigma[1:]))
    print(f"{'method':>24} {'wall s':>8} {'steps':>7}  "
          + "  ".join(f"{'E err t=' + str(int(t)):>13} {'f err':>9}" for t in TIMES[1:]))

    def row(label, energy, f, wall, steps):
        cols = "  ".join(f"{e:13.2e} {g:9.2e}" for e, g in errors(energy, f, exact_e, exact_f))
        print(f"{label:>24} {wall:8.2f} {steps:7d}  {cols}", flush=True)

    if args.domain == "cylinder":  # c is carried along: (16, n) cells, n around the angle
        for cells in [(16, 256)] if args.quick else [(16, 256), (16, 1024)]:
            row(f"DG2 cells {cells[0]}x{cells[1]}", *dg_run(problem, 2, cells))
        for degree, cells in LAGRANGIAN_SCHEME["cylinder"][args.quick]:
            row(f"scheme L{degree} {cells[0]}x{cells[1]}",
                *scheme_run(problem, degree, cells))
        return
    if sphere:  # icosphere levels; nodes in cos(polar angle) of the product rule
        levels, node_counts, rule, unit = [3, 4] if args.quick else [3, 4, 5], [32, 128], \
            "sphere", "level"
    else:
        levels, node_counts, rule, unit = ([256, 1024] if args.quick else [256, 1024, 4096],
                                           [64, 256] if args.quick else [64, 256, 1024], "grid",
                                           "cells")
    for degree in (1, 2):
        for cells in levels:
            row(f"DG{degree} {unit} {cells}", *dg_run(problem, degree, cells))
    for nodes in node_counts:
        start = time.perf_counter()
        lag = lagrangian_flow(problem, TIMES, nodes=nodes, dt=0.05, rule=rule)
        row(f"Lagrangian {lag.theta.shape[0]} nodes", lag.energy, lag.f,
            time.perf_counter() - start, lag.steps)
    for degree, cells in LAGRANGIAN_SCHEME[args.domain][args.quick]:
        row(f"scheme L{degree} {unit} {cells}", *scheme_run(problem, degree, (cells,)))


#: (degree, cells) of the solver's "lagrangian" scheme per domain, (full, quick)
LAGRANGIAN_SCHEME = {
    "circle": {False: [(2, 256), (2, 1024), (2, 4096), (4, 1024), (4, 4096)],
               True: [(2, 256), (4, 1024)]},
    "sphere": {False: [(2, 3), (2, 4), (2, 5)], True: [(2, 3), (2, 4)]},
    "cylinder": {False: [(2, (16, 256)), (2, (16, 1024)), (4, (16, 1024)), (4, (32, 4096))],
                 True: [(2, (16, 256)), (4, (16, 1024))]},
}


def scheme_run(problem, degree: int, cells: tuple, times: np.ndarray = TIMES
               ) -> tuple[np.ndarray, np.ndarray, float, int]:
    """(E, f) at ``times`` from the solver's lagrangian scheme (solver.pde.solve, one rank,
    dopri5 at the "auto" tolerance), its wall time and steps."""
    from solver.pde.solve import solve
    from solver.settings import PDESettings

    settings = PDESettings(cells=tuple(np.ravel(cells).tolist()), scheme="lagrangian",
                           degree=degree, integrator="dopri5", progress=False, snapshots=0,
                           outputs=len(times) - 1)
    start = time.perf_counter()
    r = solve(replace(problem, t_final=float(times[-1])), _at(settings, times),
              comm=MPI.COMM_SELF)
    keep = np.searchsorted(r.times, times)
    return r.energy[keep], r.f[keep], time.perf_counter() - start, len(r.steps["t"]) - 1


def _at(settings, times: np.ndarray):
    """Settings whose output times include ``times`` (equal outputs of their gcd)."""
    step = np.gcd.reduce(times[1:].astype(int))
    return replace(settings, outputs=int(times[-1] // step))


FLAGSHIP_TIMES = np.array([0.0, 4.0, 10.0, 50.0, 200.0])
#: the RQMC reference's node counts (x 4 each) and scrambles
REFERENCE_NODES, REFERENCE_SCRAMBLES = (4096, 16384, 65536), 8


def flagship_reference(store: str) -> RQMCLadder:
    """The flagship's RQMC ladder at FLAGSHIP_TIMES (scrambles over MPI.COMM_WORLD), each
    scramble kept in (and, when there, read from) the directory ``store``."""
    from benchmarks.problems import circle_rbf

    comm = MPI.COMM_WORLD
    problem = circle_rbf(t_final=200.0, domain=Cylinder(-5.0, 5.0))
    levels = []
    for n in REFERENCE_NODES:
        start = time.perf_counter()
        levels.append(rqmc_estimate(problem, FLAGSHIP_TIMES, n, REFERENCE_SCRAMBLES, comm=comm,
                                    store=store))
        if comm.rank == 0:
            est, wall = levels[-1], time.perf_counter() - start
            bars = ", ".join(f"{e:.8e} +- {h:.1e}" for e, h in zip(
                est.energy_mean[1:], est.energy_half_width[1:], strict=True))
            print(f"RQMC {n:6d} nodes x {REFERENCE_SCRAMBLES}: {wall:7.1f} s, E(t) +- 90 %: "
                  + bars, flush=True)
    return RQMCLadder(levels)


def flagship(levels, lagrangian, reference: str) -> None:
    """E(t) of the flagship problem at t = 4, 10, 50, 200 from DG2 on each mesh and from the
    lagrangian scheme at each (degree, cells); their errors in E and f_t (max over the data,
    relative to max |f_t|) against the RQMC reference."""
    from benchmarks.dg_translation import march
    from benchmarks.problems import circle_rbf
    from solver.pde.solve import make_scheme
    from solver.settings import PDESettings

    times = FLAGSHIP_TIMES
    ref = flagship_reference(reference)
    scale = np.max(np.abs(ref.f), axis=1)
    print("RQMC reference (relative error bars):")
    print("  " + ", ".join(f"E({t:g}) = {e:.6e} +- {u / e:.1e}, f +- {np.max(g) / s:.1e}"
                           for t, e, u, g, s in zip(times[2:], ref.energy[2:],
                                                    ref.energy_error[2:], ref.f_error[2:],
                                                    scale[2:], strict=True))
          + f"; consecutive levels consistent: {bool(ref.consistent()[1:].all())}")
    problem = circle_rbf(t_final=200.0, domain=Cylinder(-5.0, 5.0))
    print(f"{'method':>16} {'wall s':>8} {'steps':>6} "
          + " ".join(f"{'E(' + str(int(t)) + ')':>14} {'E err':>8} {'f err':>8}"
                     for t in times[2:]))

    def row(label, energy, f, wall, steps):
        cols = " ".join(f"{energy[i]:14.8e} {abs(energy[i] / ref.energy[i] - 1):8.1e} "
                        f"{np.max(np.abs(f[i] - ref.f[i])) / scale[i]:8.1e}"
                        for i in range(2, len(times)))
        print(f"{label:>16} {wall:8.1f} {steps:6d} {cols}", flush=True)

    for n in levels:
        s = make_scheme(problem, PDESettings(cells=(n, n), scheme="dg", degree=2,
                                             progress=False), MPI.COMM_SELF)
        s.set_density(s.initial_density())
        row(f"DG2 {n}^2", *march(s, times))
    for degree, cells in lagrangian:
        row(f"L{degree} {cells[0]}x{cells[1]}", *scheme_run(problem, degree, cells, times))


def rqmc_exact() -> None:
    """The RQMC ladder against the exact polar flows (module docstring)."""
    from solver.reference.rqmc import rqmc_ladder

    for domain, nodes in ((Circle(), (256, 1024, 4096)), (Cylinder(-3.0, 3.0),
                                                         (1024, 4096, 16384))):
        problem = polar_flow_problem(domain, target=TARGET, t_final=float(TIMES[-1]))
        exact = PolarFlow(domain, target=TARGET, nodes=2**16).energy(TIMES)
        start = time.perf_counter()
        ladder = rqmc_ladder(problem, TIMES, nodes, scrambles=8)
        wall = time.perf_counter() - start
        actual = np.abs(ladder.energy / exact - 1)[1:]
        reported = (ladder.energy_error / exact)[1:]
        print(f"{domain.kind} {nodes}: {wall:.1f} s; relative error of E at t = 10, 50, 200: "
              + ", ".join(f"{a:.2e}" for a in actual) + "; reported: "
              + ", ".join(f"{r:.2e}" for r in reported)
              + f"; covered: {bool(np.all(actual <= reported))}", flush=True)
        for level in ladder.levels:
            print(f"  {level.nodes:6d} nodes: relative error of E "
                  + ", ".join(f"{a:.2e}" for a in np.abs(level.energy_mean / exact - 1)[1:])
                  + "; 90 % half-width "
                  + ", ".join(f"{h:.2e}" for h in (level.energy_half_width / exact)[1:]),
                  flush=True)


def sensitivity() -> None:
    """How much E(10), E(50) of the flagship move when rho_0's std moves by 1e-4 (relative
    2e-4; lagrangian p = 2 on 16^2 cells): the condition of the long-time energy."""
    from benchmarks.problems import circle_rbf

    times = np.array([0.0, 10.0, 50.0])
    base = None
    for std in ((0.5, 0.6), (0.5001, 0.6), (0.5, 0.6001)):
        problem = circle_rbf(t_final=50.0, domain=Cylinder(-5.0, 5.0), std=std)
        energy = scheme_run(problem, 2, (16, 16), times)[0]
        base = energy if base is None else base
        print(f"std {std}: E(10) {energy[1]:.9e}, E(50) {energy[2]:.9e}; relative change / "
              f"relative change of std (2e-4): "
              + ", ".join(f"{(e / b - 1) / 2e-4:.2f}" for e, b in zip(energy[1:], base[1:],
                                                                     strict=True)), flush=True)


if __name__ == "__main__":
    main()
