"""Cost of one particle right-hand side (f_n, then grad Psi) against dense products.

For n = 2^6 .. 2^16 particles and three problems
  - circle-RBF unit (flagship), M = 64 and M = 256 lattice points, k = 2;
  - RBF unit on the sphere S^24 in R^25, s(x; z) = exp((x.z - 1) / w^2) = exp(-|x - z|^2/(2w^2))
    for unit vectors (a fixed-output ridge unit), M = 256 Monte Carlo data on S^24, k = 25;
prints, all measured in the same run (freed memory reused, solver.model.memory):
  before  ms of the unfused RHS (f_n from the unit matrix, then theta_vjp recomputing it);
  after   ms of the fused RHS (particles.velocity: one unit evaluation per block);
  gemv    ms of one M x n matrix times n-vector product (S @ w);
  gemm_k  ms of one n x M times M x k product with k = param_dim, done in the faster
          layout (k x M) @ (M x n) (numpy's S.T @ V is 2-4x slower here; not used);
and the ratios after/gemv and after/gemm_k (the goal: within 3x). "after" uses the
defaults of particle_check.particles: column blocks of 2 MiB, at most 64 MiB of unit
matrices kept between the f_n pass and the grad Psi pass (the rest recomputed); a last
table shows that trade-off at n = 2^16 (0 = recompute everything).
Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.particle_step
(--quick: n up to 2^12 only, no budget table.)
"""

import sys
import time
from dataclasses import dataclass

import numpy as np

from benchmarks.problems import circle_rbf
from particle_check.particles import velocity, velocity_unfused
from solver.model import density, quadrature, targets, units
from solver.model.domain import Cylinder, Sphere
from solver.model.memory import reuse_freed_memory
from solver.model.problem import Problem


@dataclass(frozen=True)
class SphereRBFActivation(units.Activation):
    """sigma(u) = exp((u - 1) / width^2), with sigma' from the same exp (``f_and_df``)."""

    width: float = 1.0

    def f_and_df(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = np.subtract(u, 1.0)
        s *= 1.0 / self.width**2
        np.exp(s, out=s)
        return s, s * (1.0 / self.width**2)


def sphere_rbf_unit(d: int, width: float) -> units.Unit:
    inv = 1.0 / width**2

    def f(u: np.ndarray) -> np.ndarray:
        return np.exp((u - 1.0) * inv)

    def df(u: np.ndarray) -> np.ndarray:
        return inv * f(u)

    return units.FixedOutputNeuron(d, SphereRBFActivation("sphere_rbf", f, df, width))


def sphere_problem(d: int = 25, M: int = 256) -> Problem:
    unit = sphere_rbf_unit(d, 1.0)
    teacher = density.UniformSphere(d).sample(np.random.default_rng(1), 3)
    return Problem(unit, quadrature.monte_carlo("sphere", M, 0, dim=d),
                   targets.TeacherTarget(unit, teacher), Sphere(d), density.UniformSphere(d),
                   name=f"sphere_rbf d={d} M={M}")


def per_call_ms(fn, budget_s: float = 0.25) -> float:
    """Median-of-rounds time of fn in ms, repeats chosen to fill about budget_s."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    repeats = max(1, min(2000, int(budget_s / 3 / once)))
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        rounds.append((time.perf_counter() - start) / repeats)
    return float(np.median(rounds)) * 1e3


def measure(problem: Problem, widths: list[int]) -> None:
    x, k = problem.data.points, problem.param_dim
    print(f"\n{problem.name}: unit {problem.unit.name}, M = {problem.data.size}, k = {k}")
    print("      n   before ms    after ms  speed-up     gemv ms   gemm_k ms   after/gemv  "
          "after/gemm_k")
    for n in widths:
        theta = problem.sample_initial(np.random.default_rng(0), n)
        S = problem.unit.values(x, theta)
        w = np.full(n, 1.0 / n)
        Vt = np.random.default_rng(1).standard_normal((k, len(x)))
        v_old, f_old = velocity_unfused(problem, theta)
        v_new, f_new = velocity(problem, theta)
        err = max(np.abs(v_new - v_old).max() / np.abs(v_old).max(),
                  np.abs(f_new - f_old).max() / np.abs(f_old).max())
        assert err < 1e-12, f"fused velocity differs from the unfused one by {err:.2e}"
        before = per_call_ms(lambda t=theta: velocity_unfused(problem, t))
        after = per_call_ms(lambda t=theta: velocity(problem, t))
        gemv = per_call_ms(lambda S=S, w=w: S @ w)
        gemm = per_call_ms(lambda S=S, Vt=Vt: Vt @ S)
        del S
        print(f"{n:7d} {before:11.3f} {after:11.3f} {before / after:9.1f} {gemv:11.4f} "
              f"{gemm:11.4f} {after / gemv:12.1f} {after / gemm:13.1f}", flush=True)


def budgets(problems: list[Problem], n: int = 2**16) -> None:
    print(f"\nms per RHS at n = {n} vs the memory kept between the passes (max_bytes)")
    print("problem                      0 MiB    32 MiB    64 MiB   128 MiB")
    for problem in problems:
        theta = problem.sample_initial(np.random.default_rng(0), n)
        row = [per_call_ms(lambda p=problem, t=theta, mb=mb: velocity(p, t, max_bytes=mb * 2**20))
               for mb in (0, 32, 64, 128)]
        print(f"{problem.name:24s}" + "".join(f"{ms:10.2f}" for ms in row), flush=True)


def main() -> None:
    reuse_freed_memory()
    quick = "--quick" in sys.argv
    widths = [2**p for p in range(6, (12 if quick else 16) + 1)]
    problems = [circle_rbf(m, domain=Cylinder(-5.0, 5.0)) for m in (64, 256)]
    problems.append(sphere_problem())
    for problem in problems:
        measure(problem, widths)
    if not quick:
        budgets(problems[1:])


if __name__ == "__main__":
    main()
