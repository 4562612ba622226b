"""Verification of the symmetry reduction with a known answer: the quadratic activation.

sigma(z) = z^2, fixed output weight 1, x ~ N(0, I_d), y = x_1^2 (single index, k = 1). Then
f_rho(x) = x^T M x with M = E_rho[w w^T], and with D = M - e_1 e_1^T,

    Psi(w) = 2 w^T D w + tr(D) |w|^2,   grad Psi = A w,  A = 4 D + 2 tr(D) I,
    E = 1/2 E[(x^T D x)^2] = tr(D^2) + tr(D)^2 / 2.

For an invariant rho, M = diag(m_a, m_p I_(d-1)) (m_a = E a^2, m_p = E q^2 / (d - 1)), so
every unit moves linearly, a' = -A_11 a, q' = -A_22 q, and the moments close:

    m_a' = -2 A_11 m_a,  m_p' = -2 A_22 m_p,  A_11 = 4 (m_a - 1) + 2 T,  A_22 = 4 m_p + 2 T,
    T = tr D = m_a - 1 + (d - 1) m_p,

an ODE solved to 1e-13. The reduced PDE (unit E_t[(a x_1 + q r t)^2] = a^2 x_1^2 + q^2 r^2 /
(d - 1), reduced Gauss data, box (a, q) in [-4, 4] x [0, 2.5], or q in [-2.5, 2.5] with
rho_0 even in q: ``ridge_problem(symmetric=True)``) must reproduce E(t) with its observed
order of convergence. Table: max over the output times of |E_pde - E_ode|, and the mass the
no-flux walls held back (the discrete velocity at q = 0 is not 0).

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.reduction_quadratic
"""

from __future__ import annotations

import time

import numpy as np
from scipy.integrate import solve_ivp

from solver.model import reduction, units

A_MEAN, S = 0.5, 1.0  # a(0) ~ N(A_MEAN, S^2 / d), w_perp(0) ~ N(0, S^2 / d I)


def _square(z: np.ndarray) -> np.ndarray:
    return z * z


def _square_prime(z: np.ndarray) -> np.ndarray:
    return 2.0 * z


SQUARE = units.Activation("square", _square, _square_prime)


def problem(d: int, t_final: float, symmetric: bool = True) -> reduction.Reduction:
    return reduction.ridge_problem(
        SQUARE, d, 1, target="x0**2", output=1.0, a_mean=A_MEAN, w_std=S / np.sqrt(d),
        a_min=-4.0, a_max=4.0, q_max=2.5, nodes_u=8, nodes_r=8, test_points=10,
        t_final=t_final, symmetric=symmetric, name=f"quadratic-d{d}")


def reference_energy(d: int, times: np.ndarray) -> np.ndarray:
    """E(t) of the moment ODE at ``times``."""
    def rhs(_t, m):
        ma, mp = m
        T = ma - 1.0 + (d - 1) * mp
        return [-2.0 * (4.0 * (ma - 1.0) + 2.0 * T) * ma, -2.0 * (4.0 * mp + 2.0 * T) * mp]

    m0 = [A_MEAN**2 + S**2 / d, S**2 / d]
    sol = solve_ivp(rhs, (0.0, float(times[-1])), m0, method="DOP853", t_eval=times,
                    rtol=1e-13, atol=1e-15)
    ma, mp = sol.y
    da, dp = ma - 1.0, mp
    return da**2 + (d - 1) * dp**2 + 0.5 * (da + (d - 1) * dp) ** 2


def energy_errors(d: int, cells: list[int], degree: int, t_final: float = 1.0,
                  outputs: int = 10, symmetric: bool = True
                  ) -> list[tuple[int, float, float, float]]:
    """(cells, max_t |E_pde - E_ode|, wall time, mass held back by the walls) per mesh
    (cells x cells, DG degree); symmetric: q in [-2.5, 2.5], else [0, 2.5] with the wall."""
    from mpi4py import MPI

    from solver.pde.solve import solve
    from solver.settings import PDESettings

    red = problem(d, t_final, symmetric)
    out = []
    for n in cells:
        start = time.perf_counter()
        result = solve(red.reduced, PDESettings(cells=(n, n), scheme="dg", degree=degree,
                                                integrator="ssprk3", outputs=outputs,
                                                snapshots=0, progress=False,
                                                max_outflow=1e-2),
                       comm=MPI.COMM_SELF)
        wall = time.perf_counter() - start
        ref = reference_energy(d, result.times)
        out.append((n, float(np.max(np.abs(result.energy - ref))), wall,
                    float(np.max(result.steps["boundary_outflow"]))))
    return out


def main() -> None:
    for d in (10, 200):
        e0, e1 = reference_energy(d, np.array([0.0, 1.0]))
        print(f"d = {d}: E(0) = {e0:.6f}, E(1) = {e1:.6f}")
        for symmetric, degree in ((False, 1), (False, 2), (True, 1), (True, 2)):
            rows = energy_errors(d, [16, 32, 64], degree, symmetric=symmetric)
            where = "q in [-2.5, 2.5] (even)" if symmetric else "q in [0, 2.5] (wall)"
            print(f"  DG{degree}, {where}:")
            for i, (n, err, wall, held) in enumerate(rows):
                order = "" if i == 0 else f"  order {np.log2(rows[i - 1][1] / err):.2f}"
                print(f"    {n:3d}^2 cells: max |E - E_ode| = {err:.2e}, held back at the "
                      f"walls {held:.1e}  ({wall:.1f} s){order}")


if __name__ == "__main__":
    main()
