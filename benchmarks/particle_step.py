"""Cost of one particle right-hand side (f_n, then grad Psi) on the flagship problem.

Prints ms per evaluation vs n, with glibc's default allocator settings and then with
freed memory reused (solver.model.memory), and the ratio to one dense (M x n)
matrix-vector product measured in the same run.
Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/particle_step.py
"""

import time
from pathlib import Path

import numpy as np

from particle_check.particles import velocity
from solver.config import load
from solver.model.memory import reuse_freed_memory

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "rbf_circle.toml"


def per_call_ms(fn, repeats: int = 30) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def measure(problem, widths) -> dict[int, tuple[float, float]]:
    out = {}
    for n in widths:
        theta = problem.sample_initial(np.random.default_rng(0), n)
        S = problem.unit.values(problem.data.points, theta)
        w = np.full(n, 1.0 / n)
        out[n] = (per_call_ms(lambda t=theta: velocity(problem, t)),
                  per_call_ms(lambda S=S, w=w: S @ w))
    return out


def main() -> None:
    problem = load(EXAMPLE).problem
    widths = (256, 1024, 4096, 16384)
    default = measure(problem, widths)
    reuse_freed_memory()
    reused = measure(problem, widths)
    print(f"M = {problem.data.size} data points, unit {problem.unit.name}")
    print("     n   rhs ms (default malloc)   rhs ms (reuse)   matvec ms   rhs/matvec (reuse)")
    for n in widths:
        (a, mv), (b, _) = default[n], reused[n]
        print(f"{n:6d}   {a:23.3f}   {b:14.3f}   {mv:9.4f}   {b / mv:18.1f}")


if __name__ == "__main__":
    main()
