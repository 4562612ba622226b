"""Cost per time step of the PDE schemes on the 2-D RBF-on-circle problem (M = 256).

The set-up of the prototype baselines in ../shared/DOLFINX-NOTES.md (DG0 upwind
explicit: 1.6 / 6.5 / 34 ms per step at 64^2 / 128^2 / 256^2; implicit 2.8 / 12 / 54;
DG1 + SSP-RK3 + limiter 18 / 93 / 384). One "step" of an explicit scheme is one
forward-Euler stage with its CFL bound: evaluate f and Psi (two M x Q products and
one allreduce), the fluxes, the rate. Also printed: a full SSP-RK2 step with the
per-step checks, the implicit step (assembly + MUMPS solve), and the dense vs
SVD-compressed unit matrix when ``--compress`` is given.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.pde_step_cost
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from mpi4py import MPI

import solver.pde  # noqa: F401  (dolfinx_solver first)
from benchmarks.problems import circle_rbf
from solver.pde.finite_volume import FiniteVolume
from solver.pde.implicit import ImplicitEuler
from solver.pde.meshes import box_mesh
from solver.pde.timestepping import try_step

BASELINE_MS = {64: (1.6, 2.8, 18.0), 128: (6.5, 12.0, 93.0), 256: (34.0, 54.0, 384.0)}


def per_call_ms(fn, repeats: int) -> float:
    """Median wall time of fn() in ms."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def scheme_costs(n: int, compress_rtol: float | None, repeats: int) -> dict[str, float]:
    problem = circle_rbf(256, t_final=1.0)
    msh = box_mesh(MPI.COMM_SELF, problem.domain, (n, n))
    fv = FiniteVolume(msh, problem, compress_rtol=compress_rtol)
    rho0 = fv.initial_density()
    fv.set_density(rho0)
    dt = 0.5 * fv.max_stable_step()

    def euler_stage():
        fv.max_stable_step()
        fv.set_density(fv.density() + dt * fv.rate())

    def ssprk2_step():
        try_step(fv, "ssprk2", dt)
        fv.diagnostics()

    implicit = ImplicitEuler(fv)

    def implicit_step():
        fv.set_density(implicit.solve(10 * dt))
        fv.rate()
        fv.diagnostics()

    out = {"euler stage": per_call_ms(euler_stage, repeats),
           "ssprk2 step + checks": per_call_ms(ssprk2_step, repeats),
           "implicit step + checks": per_call_ms(implicit_step, max(3, repeats // 4))}
    implicit.destroy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--compress", type=float, default=None, help="SVD rtol")
    args = parser.parse_args()
    print(f"{'cells':>7} {'scheme':>24} {'ms/step':>9} {'prototype':>10} {'ratio':>6}")
    for n in args.cells:
        costs = scheme_costs(n, args.compress, args.repeats)
        base = BASELINE_MS.get(n, (np.nan,) * 3)
        for (name, ms), ref in zip(costs.items(), (base[0], np.nan, base[1]), strict=True):
            ratio = ms / ref if np.isfinite(ref) else np.nan
            print(f"{n:>5}^2 {name:>24} {ms:9.2f} {ref:10.1f} {ratio:6.2f}")


if __name__ == "__main__":
    main()
