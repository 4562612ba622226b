"""Why the recorded dissipation D and -dE/dt differ: time step or scheme?

The summary's ``dissipation_identity_max_rel_defect`` is max_n |dE/dt_n + D_n| / D_n with
dE/dt_n = (E_n - E_{n-1}) / dt_n and D_n the trapezoid (D_{n-1} + D_n) / 2 (``run_writer.
dissipation_defects``). It contains two errors, separated here:

- time: the difference quotient and the trapezoid are exact only as dt -> 0; the defect
  falls with the step (cfl, pde.time_tolerance);
- space: D is int |grad Psi|^2 rho of the discrete density, while the scheme's own
  semi-discrete dE/dt (``DGTransport.energy_rate``) differs from -D by the DG scheme's
  O(h^{k+1}) inconsistency; for FV, D is by construction sum |sigma| F_KL (mu_K - mu_L) =
  -dE/dt of the semi-discrete scheme (no space part).

Tables: (1) the flagship (examples/rbf_circle.toml, DG2 48^2, SSP-RK3) at cfl 0.5, 0.25,
0.125; (2) its semi-discrete defect |D + energy_rate| / D at t = 4 on 16^2..64^2; (3) the
noisy Gibbs PDE (examples/noisy_gibbs.py: FV, lagged implicit Euler, beta = 5, lam = 0.1,
32^2, to stationarity 1e-13) at time_tolerance 1e-3 (the example's), 1e-4, 1e-5.
"end-point" is the same defect with D_n at the end of the step (what energy.png draws
against -dE/dt), first order in dt.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.dissipation_identity
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from mpi4py import MPI

from benchmarks.problems import circle_rbf
from solver.config import load
from solver.model.domain import Cylinder
from solver.pde.run_writer import dissipation_defects
from solver.pde.solve import solve
from solver.settings import PDESettings

FLAGSHIP = Path(__file__).resolve().parent.parent / "examples" / "rbf_circle.toml"


def defects(steps: dict) -> str:
    """The summary's two defects, where the pointwise one is largest, and the end-point one."""
    d = dissipation_defects(steps)
    t, dt = np.array(steps["t"][1:]), np.array(steps["dt"][1:])
    diss, dedt = np.array(steps["dissipation"]), np.array(steps["dEdt"][1:])
    end = np.abs(dedt + diss[1:]) / diss[1:]
    return (f"{len(t)} | {dt.max():.3g} | {d['dissipation_identity_max_rel_defect']:.2e} "
            f"| t = {d['dissipation_identity_max_rel_defect_t']:.3g}, dt = "
            f"{dt[np.argmin(np.abs(t - d['dissipation_identity_max_rel_defect_t']))]:.3g} "
            f"| {d['dissipation_identity_integrated_rel_defect']:.2e} | {end.max():.2e}")


def main() -> None:
    comm = MPI.COMM_SELF
    config = load(FLAGSHIP)
    base = replace(config.pde, outputs=1, snapshots=0, progress=False)
    print("(1) flagship DG2 48^2, SSP-RK3: time step\n")
    print("| cfl | steps | max dt | pointwise max | where | integrated | end-point max |")
    print("|---|---|---|---|---|---|---|")
    for cfl in (0.5, 0.25, 0.125):
        result = solve(config.problem, replace(base, cfl=cfl), comm=comm)
        print(f"| {cfl} | {defects(result.steps)} |", flush=True)

    print("\n(2) flagship DG2, semi-discrete |D + dE/dt| / D at t = 4 (no time error)\n")
    print("| cells | D | -dE/dt (energy_rate) | defect |")
    print("|---|---|---|---|")
    for cells in (16, 32, 48, 64):
        scheme = solve(config.problem, replace(base, cells=(cells, cells)), comm=comm).scheme
        diss, rate = scheme.diagnostics().dissipation, scheme.energy_rate()
        print(f"| {cells}^2 | {diss:.10e} | {-rate:.10e} | {abs(diss + rate) / diss:.2e} |",
              flush=True)

    print("\n(3) noisy Gibbs PDE, FV implicit 32^2 to stationarity: time tolerance\n")
    print("| time_tolerance | steps | max dt | pointwise max | where | integrated "
          "| end-point max |")
    print("|---|---|---|---|---|---|---|")
    noisy = circle_rbf(beta=5.0, lam=0.1, t_final=400.0, domain=Cylinder(-5.0, 5.0))
    for tol in (1e-3, 1e-4, 1e-5):
        settings = PDESettings(cells=(32, 32), integrator="implicit", time_tolerance=tol,
                               stationary_tolerance=1e-13, outputs=1, snapshots=0,
                               progress=False)
        print(f"| {tol:g} | {defects(solve(noisy, settings, comm=comm).steps)} |", flush=True)


if __name__ == "__main__":
    main()
