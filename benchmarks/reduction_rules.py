"""The rules of the symmetry reduction (solver/model/reduction.py): how many Gauss nodes in
t each range of q r needs for 1e-13 (tanh), and how the data rule converges.

(i) Nodes of the t-rule per range (BIN0 2^(j-1), BIN0 2^j] of beta = q r, for d - k = 2, 9,
49, 199, 999 (tanh, 1e-13 against the next rung of the node ladder).
(ii) The reduced data rule of N(0, I_d), k = 1, d = 10 and 200: E[y s_red] for y = tanh(x_1)
and four reduced tanh units, against nodes_u (Gauss-Hermite in x_1: for the tanh poles at
Im x = pi/2 it converges like exp(-c sqrt(n))) and nodes_r (Laguerre in r^2/2: fast).

(iii) MC(0) of the full units (E_t s^2, what the reduced PDE's MC reports since the reduced
unit has values_squared) against that of the reduced units ((E_t s)^2, what n particles of
the reduced system fluctuate by): the CRBV check of full-d particles needs the former. The
full one both by ReducedRidgeUnit.values_squared and by the reduced unit of tanh^2.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.reduction_rules
"""

from __future__ import annotations

import numpy as np

from solver.model import reduction


def main() -> None:
    print("(i) t-rule nodes per range of q r (tanh, tol 1e-13)")
    edges = [reduction.ReducedRidgeUnit.BIN0 * 2.0**j for j in range(9)]
    print("  d - k | " + " ".join(f"{e:>6g}" for e in edges))
    for m in (2, 9, 49, 199, 999):
        unit = reduction.ReducedRidgeUnit(m + 1, 1, "tanh", 1.0)
        unit._ensure_bins(len(edges) - 1)
        print(f"  {m:5d} | " + " ".join(f"{len(t):6d}" for t, _ in unit.bins))
    print("(ii) data rule, k = 1, y = tanh(x_1): max over 4 units (a, q) of the change in "
          "E[y s_red] against nodes_u = 200, nodes_r = 80")
    theta = np.array([[0.7, 0.4], [1.5, 1.0], [-0.3, 0.2], [0.1, 0.5]])
    for d in (10, 200):
        law = reduction.DataLaw(d, 1)
        unit = reduction.ReducedRidgeUnit(d, 1, "tanh", 1.0)

        def value(nu: int, nr: int, law=law, unit=unit) -> np.ndarray:
            rule = reduction.reduced_quadrature(law, nu, nr)
            y = np.tanh(rule.points[:, 0])
            return rule.integrate(unit.values(rule.points, theta) * y[:, None])

        ref = value(200, 80)
        us = " ".join(f"{nu}: {np.abs(value(nu, 80) - ref).max():.1e}" for nu in (24, 40, 60, 80))
        rs = " ".join(f"{nr}: {np.abs(value(200, nr) - ref).max():.1e}" for nr in (8, 12, 16))
        print(f"  d = {d}: nodes_u {us}; nodes_r {rs}")
    law = reduction.DataLaw(10, 1)
    rule = reduction.reduced_quadrature(law, 20, 20)
    moment = rule.integrate(rule.points[:, 0] ** 4 * rule.points[:, 1] ** 4)
    print(f"  E[x_1^4 r^4], d = 10, 20 x 20 nodes: {moment:.13f} (exact 297)")
    full, red, library = mc_at_t0()
    print(f"(iii) MC(0), d = 5, tanh, w ~ N(0, 0.25 I), fixed output: full units (E_t s^2) "
          f"{full:.4f} (values_squared: {library:.4f}), reduced units ((E_t s)^2) {red:.4f}")


def _tanh2(z: np.ndarray) -> np.ndarray:
    return np.tanh(z) ** 2


def _tanh2_prime(z: np.ndarray) -> np.ndarray:
    return 2.0 * np.tanh(z) * (1.0 - np.tanh(z) ** 2)


def mc_at_t0(d: int = 5, w_std: float = 0.5) -> tuple[float, float, float]:
    """(MC of the full units, MC of the reduced units, the former by the library's
    functionals.mc_variance) at t = 0 for tanh units w ~ N(0, w_std^2 I_d), fixed output 1,
    k = 1: E_x[int E_t[s^2] rho - f^2] against E_x[int (E_t s)^2 rho - f^2], rho_0 by a
    30 x 20 Gauss rule in (a, q)."""
    from scipy.special import roots_genlaguerre

    from solver.model import units

    law = reduction.DataLaw(d, 1)
    rule = reduction.reduced_quadrature(law, 40, 16)
    s1 = reduction.ReducedRidgeUnit(d, 1, "tanh", 1.0)
    s2 = reduction.ReducedRidgeUnit(d, 1, units.Activation("tanh2", _tanh2, _tanh2_prime), 1.0)
    h, wh = np.polynomial.hermite_e.hermegauss(30)
    g, wg = roots_genlaguerre(20, 0.5 * (d - 1) - 1)
    A, Q = np.meshgrid(w_std * h, w_std * np.sqrt(2 * g), indexing="ij")
    theta = np.column_stack([A.ravel(), Q.ravel()])
    W = np.outer(wh / wh.sum(), wg / wg.sum()).ravel()
    S = s1.values(rule.points, theta)
    f = S @ W
    full = rule.integrate(s2.values(rule.points, theta) @ W - f**2)
    reduced = rule.integrate((S * S) @ W - f**2)
    from solver.model import functionals

    p = reduction.ridge_problem("tanh", d, 1, target="tanh(x0)", output=1.0, w_std=w_std,
                                nodes_u=40, nodes_r=16, test_points=1).reduced
    S = functionals.UnitMatrix(p, theta)
    library = functionals.mc_variance(p, S.forward(W), S.forward_squared(W))
    return float(full), float(reduced), float(library)


if __name__ == "__main__":
    main()
