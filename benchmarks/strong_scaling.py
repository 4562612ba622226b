"""Strong scaling of the flagship (examples/rbf_circle.toml) on 1, 2 and 4 MPI ranks.

The parent process runs this module under ``mpiexec -n p`` for p = 1, 2, 4 (4 is
oversubscribed on a 2-core machine: a correctness check, not a timing) and prints:

- the explicit PDE step (DG2 on the 48^2 cylinder, SSP-RK3, M = 64, as in the flagship)
  split into the local M x Q unit-matrix products (S.forward / S.adjoint on this rank's
  columns), the length-M allreduce of f, the scalar allreduces of the checks, the wait for
  the slowest rank (a barrier before each allreduce) and the rest (fluxes, limiter, mass
  solve, checks);
- the FV implicit step on the same problem (128^2 cells): the PETSc solve (assembly +
  MUMPS LU) against the rest of the step;
- the flagship particle ensemble (n = 64..4096, 8 seeds, RK4, t = 4) wall time;
- the latency of one allreduce of a length-M float64 vector (the best of 20 batches of
  back-to-back calls);
- the 1 -> 2 rank speed-up and parallel efficiency (timings only where ranks <= cores),
  and the largest relative difference of E(t), f_t(x_m) (PDE to t = 1) and of the
  ensemble's f_n(t) at 2 and 4 ranks from 1 rank.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.strong_scaling
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STEPS, WARMUP, REPEATS = 40, 5, 20
RANKS = (1, 2, 4)


# -- worker (under mpiexec) ---------------------------------------------------------------

class _Clock:
    """Seconds and calls accumulated per category."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def add(self, key: str, start: float) -> float:
        now = time.perf_counter()
        self.seconds[key] = self.seconds.get(key, 0.0) + now - start
        self.calls[key] = self.calls.get(key, 0) + 1
        return now


class _TimedMatrix:
    """The unit matrix with its products timed as "local M x Q"."""

    def __init__(self, inner, clock: _Clock):
        self._inner, self._clock = inner, clock

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)
        if name not in ("forward", "adjoint", "forward_squared"):
            return attr

        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = attr(*args, **kwargs)
            self._clock.add("local M x Q", start)
            return out

        return timed


class _TimedComm:
    """The communicator with each buffer Allreduce split into the wait for the slowest
    rank (a barrier) and the allreduce itself."""

    def __init__(self, inner, clock: _Clock):
        self._inner, self._clock = inner, clock

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def Allreduce(self, *args, **kwargs):  # mpi4py's name
        start = time.perf_counter()
        self._inner.Barrier()
        start = self._clock.add("wait (imbalance)", start)
        self._inner.Allreduce(*args, **kwargs)
        self._clock.add("allreduce (length M)", start)

    def allreduce(self, *args, **kwargs):
        start = time.perf_counter()
        self._inner.Barrier()
        start = self._clock.add("wait (imbalance)", start)
        out = self._inner.allreduce(*args, **kwargs)
        self._clock.add("scalar allreduces", start)
        return out


def _flagship(t_final: float):
    from benchmarks.problems import circle_rbf
    from solver.model.domain import Cylinder

    return circle_rbf(64, t_final=t_final, domain=Cylinder(-5.0, 5.0))


def explicit_step(comm) -> dict:
    """Per-step seconds of the flagship DG2 + SSP-RK3 step, split by category (medians
    over the steps: the machine is shared, a descheduled rank stalls a step)."""
    from solver.pde.solve import make_scheme
    from solver.pde.timestepping import try_step
    from solver.settings import PDESettings

    settings = PDESettings(cells=(48, 48), scheme="dg", degree=2, integrator="ssprk3",
                           cfl=0.5, progress=False)
    scheme = make_scheme(_flagship(4.0), settings, comm)
    scheme.set_density(scheme.initial_density())
    clock = _Clock()
    columns = {name: len(getattr(scheme, name).theta) for name in ("S", "S_psi")}
    for name in columns:  # f at the Gauss points (S), Psi at the CG nodes (S_psi)
        setattr(scheme, name, _TimedMatrix(getattr(scheme, name), clock))
    scheme.comm = _TimedComm(scheme.comm, clock)

    def step():
        dt = settings.cfl * scheme.max_stable_step()
        assert try_step(scheme, "ssprk3", dt)
        scheme.diagnostics()

    for _ in range(WARMUP):
        step()
    records = []
    for _ in range(STEPS):
        clock.seconds.clear()
        clock.calls.clear()
        comm.Barrier()
        start = time.perf_counter()
        step()
        records.append({**clock.seconds, "step": time.perf_counter() - start})
    for r in records:
        r["rest"] = r["step"] - sum(v for k, v in r.items() if k != "step")
    out = {k: float(np.median([r.get(k, 0.0) for r in records])) for k in records[0]}
    out["columns"] = comm.gather(columns, root=0)
    out["calls per step"] = dict(clock.calls)
    return out


def implicit_step(comm) -> dict:
    """Per-step seconds of the FV implicit step (128^2): the PETSc solve and the rest."""
    from solver.pde.implicit import ImplicitEuler
    from solver.pde.solve import make_scheme
    from solver.settings import PDESettings

    settings = PDESettings(cells=(128, 128), integrator="implicit", progress=False)
    scheme = make_scheme(_flagship(4.0), settings, comm)
    scheme.set_density(scheme.initial_density())
    implicit = ImplicitEuler(scheme)
    dt = 10 * scheme.max_stable_step()
    times = []
    for _ in range(WARMUP + 15):
        comm.Barrier()
        t0 = time.perf_counter()
        new = implicit.solve(dt)
        t1 = time.perf_counter()
        scheme.set_density(new)
        scheme.rate()
        scheme.diagnostics()
        times.append((t1 - t0, time.perf_counter() - t1))
    implicit.destroy()
    solve_s, rest_s = np.median(times[WARMUP:], axis=0)
    return {"PETSc solve (assembly + MUMPS LU)": solve_s, "rest": rest_s,
            "step": float(np.median(np.sum(times[WARMUP:], axis=1)))}


def correctness(comm) -> dict:
    """E(t) and f_t(x_m) of the flagship PDE to t = 1 (rank 0)."""
    from solver.pde.solve import solve
    from solver.settings import PDESettings

    settings = PDESettings(cells=(48, 48), scheme="dg", degree=2, integrator="ssprk3",
                           cfl=0.5, outputs=4, snapshots=0, progress=False)
    result = solve(_flagship(1.0), settings, None, comm)
    return {"energy": result.energy.tolist(), "f": result.f.tolist()}


def ensemble(comm) -> dict:
    """Wall time of the flagship particle ensemble and its f_n(t) (rank 0)."""
    from particle_check.ensemble import run_ensemble
    from solver.settings import ParticleSettings

    settings = ParticleSettings(n=(64, 256, 1024, 4096), seeds=8, dt=0.01, integrator="rk4")
    times = np.linspace(0.0, 4.0, 41)
    comm.Barrier()
    start = time.perf_counter()
    runs = run_ensemble(_flagship(4.0), settings, times, None, comm)
    wall = time.perf_counter() - start
    if runs is None:
        return {"wall": wall}
    f = np.stack([runs[key].f for key in sorted(runs)])
    return {"wall": wall, "f": f.tolist()}


def allreduce_latency(comm, size: int = 64) -> float:
    """Seconds per Allreduce of a length-``size`` float64 vector: the best of 200 batches
    of 20 calls (the latency when no rank is descheduled by other load)."""
    from mpi4py import MPI

    local, out = np.ones(size), np.empty(size)
    batches = []
    for _ in range(200):
        comm.Barrier()
        start = time.perf_counter()
        for _ in range(REPEATS):
            comm.Allreduce(local, out, MPI.SUM)
        batches.append((time.perf_counter() - start) / REPEATS)
    return float(np.min(batches))


def unit_matrix_rate(Q: int = 20736, M: int = 64) -> float:
    """Seconds per entry of one dense M x Q product (forward + adjoint, the flagship's
    circle-RBF unit matrix), measured on one rank."""
    rng = np.random.default_rng(0)
    S = rng.standard_normal((M, Q))
    w, v = rng.standard_normal(Q), rng.standard_normal(M)
    start = time.perf_counter()
    for _ in range(200):
        S @ w
        S.T @ v
    return (time.perf_counter() - start) / (200 * 2 * M * Q)


def worker(out: Path, timings: bool) -> None:
    from mpi4py import MPI

    import solver.pde  # noqa: F401  (dolfinx_solver before dolfinx)

    comm = MPI.COMM_WORLD
    record = {"ranks": comm.size, "load": os.getloadavg()[0],
              "correctness": correctness(comm), "ensemble": ensemble(comm)}
    if timings:
        record.update(explicit=explicit_step(comm), implicit=implicit_step(comm),
                      allreduce_64=allreduce_latency(comm, 64),
                      allreduce_4096=allreduce_latency(comm, 4096))
    if comm.size == 1:
        record["dense_product_s_per_entry"] = unit_matrix_rate()
    if comm.rank == 0:
        out.write_text(json.dumps(record))


# -- parent: launch, compare, print ------------------------------------------------------

def _launch(ranks: int, out: Path, timings: bool) -> None:
    mpiexec = Path(sys.executable).with_name("mpiexec")
    cmd = [str(mpiexec), "-n", str(ranks), sys.executable, "-m", "benchmarks.strong_scaling",
           "--worker", str(out), *(["--timings"] if timings else [])]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env)


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _report(records: dict[int, dict]) -> None:
    one, two = records[1], records[2]
    timed = [p for p, r in records.items() if "explicit" in r]
    print("Per step (ms, median of 40 steps), flagship DG2 48^2 cylinder, SSP-RK3, M = 64:")
    keys = ["local M x Q", "allreduce (length M)", "scalar allreduces", "wait (imbalance)",
            "rest", "step"]
    print(f"{'':24}" + "".join(f"{f'{p} rank(s)':>12}" for p in timed))
    for key in keys:
        print(f"{key:24}" + "".join(f"{1e3 * records[p]['explicit'].get(key, 0.0):12.3f}"
                                    for p in timed))
    print("columns per rank (S: f at Gauss points, S_psi: Psi at CG3 nodes): "
          + "; ".join(f"{p}: {records[p]['explicit']['columns']}" for p in timed))
    print(f"calls per step: {one['explicit']['calls per step']}")
    print("\nFV implicit step (ms, median of 15), 128^2 cells:")
    for key in one["implicit"]:
        print(f"{key:36}" + "".join(f"{1e3 * records[p]['implicit'][key]:12.2f}"
                                    for p in timed))
    print("\n1 -> 2 ranks:            time 1     time 2   speed-up  efficiency")
    rows = [("PDE explicit step (ms)", 1e3 * one["explicit"]["step"],
             1e3 * two["explicit"]["step"]),
            ("  local M x Q (ms)", 1e3 * one["explicit"]["local M x Q"],
             1e3 * two["explicit"]["local M x Q"]),
            ("FV implicit step (ms)", 1e3 * one["implicit"]["step"],
             1e3 * two["implicit"]["step"]),
            ("particle ensemble (s)", one["ensemble"]["wall"], two["ensemble"]["wall"])]
    for name, t1, t2 in rows:
        print(f"{name:24}{t1:9.3f}  {t2:9.3f}  {t1 / t2:9.2f}  {t1 / t2 / 2:10.2f}")
    print(f"\nallreduce at 2 ranks (best of 200 x 20): 64 float64 "
          f"{1e6 * two['allreduce_64']:.2f} us, 4096 float64 {1e6 * two['allreduce_4096']:.2f} us")
    print(f"dense M x Q product (forward + adjoint) on one rank: "
          f"{1e9 * one['dense_product_s_per_entry']:.3f} ns per entry")
    print("load average (1 min) at the start of each run: "
          + ", ".join(f"{p} ranks {r['load']:.1f}" for p, r in records.items()))
    print("\nlargest relative difference from 1 rank:")
    worst = 0.0
    for p, r in records.items():
        if p == 1:
            continue
        c, c1 = r["correctness"], one["correctness"]
        diffs = (_rel(c["energy"], c1["energy"]), _rel(c["f"], c1["f"]),
                 _rel(r["ensemble"]["f"], one["ensemble"]["f"]))
        worst = max(worst, *diffs)
        print(f"  {p} ranks: PDE E(t) {diffs[0]:.2e}, f_t {diffs[1]:.2e}; particles f_n "
              f"{diffs[2]:.2e}")
    print(f"  {'PASS' if worst <= 1e-10 else 'FAIL'}: all within 1e-10 relative "
          f"(worst {worst:.2e})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--timings", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ranks", type=int, nargs="+", default=list(RANKS),
                        help="rank counts; those above the core count only check correctness")
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.timings)
        return
    if not {1, 2} <= set(args.ranks):
        parser.error("--ranks must include 1 and 2 (the speed-up is 1 -> 2)")
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        records = {}
        for p in sorted(args.ranks):
            out = Path(tmp) / f"ranks{p}.json"
            _launch(p, out, timings=p <= max(2, cores))
            records[p] = json.loads(out.read_text())
    _report(records)


if __name__ == "__main__":
    main()
