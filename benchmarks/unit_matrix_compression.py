"""Truncated-SVD unit matrix vs the dense one on the flagship circle-RBF problem.

For M = 64 (examples/rbf_circle.toml) and M = 256 data points, on cell-centroid grids of
128^2 and 256^2 cells over the flagship domain (theta = (c, z) in [-5, 5] x [-pi, pi]), and
rtol in (1e-4, 1e-6, 1e-8, 1e-10), prints:

- r: the rank kept (sigma_{r+1} <= rtol sigma_1) and whether ``should_compress`` takes it;
- the error the compression adds to f_rho, ||f_r - f||_2 / ||y||_2 (W_K = rho_K |K|,
  sum W = 1), for: the flagship rho_0 (Gaussian mean 0, std (0.5, 0.6)); a density
  concentrated at the teacher's three units (Gaussians of std 0.1, as late in the flow),
  with its a-priori bound ``error_bound`` / ||y||_2; and a random positive density (i.i.d.
  uniform rho_K). The scale is ||y|| (what f is compared with in the residual) because
  f_rho0 itself vanishes: rho_0 is even in c and s is odd in c, and so is the compressed
  f = U_r U_r^T S W, which is why its error is round-off;
- the error it adds to Psi at rho_0, max|Psi_r - Psi| / max|Psi|;
- the predicted speed-up M Q / ((M + Q) r) (what ``should_compress`` uses: "pays" when >= 2);
- one forward + adjoint (f = S W, Psi = S^T v): dense (S held whole, one BLAS call each)
  and compressed, median over repeated runs measured alternately in the same run, the
  dense streaming rate and the speed-up;
- the one-off cost: building the compressed matrix (S in blocks of the default 64 MiB budget,
  distributed TSQR, SVD, factors) minus building the dense one (S evaluated once), medians
  of 3 builds, and the number of forward + adjoint pairs after which it has paid for itself.

Run (one core, from the project root):
    OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.unit_matrix_compression
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np

from solver.config import load
from solver.model import density, quadrature
from solver.model.compression import CompressedUnitMatrix, should_compress
from solver.model.functionals import UnitMatrix, residual_weights
from solver.model.problem import Problem

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "rbf_circle.toml"
DATA_SIZES = (64, 256)
CELLS = (128, 256)
RTOLS = (1e-4, 1e-6, 1e-8, 1e-10)


def centroids(problem: Problem, n: int) -> tuple[np.ndarray, float]:
    """Cell centroids (n^2, 2) of an n x n grid on the domain's (c, z) box, and the cell area."""
    box = problem.domain.bounding_box()
    lo, hi = np.asarray(box.lower), np.asarray(box.upper)
    axes = [a + (np.arange(n) + 0.5) * (b - a) / n for a, b in zip(lo, hi, strict=True)]
    C, Z = np.meshgrid(*axes, indexing="ij")
    return np.column_stack([C.ravel(), Z.ravel()]), float(np.prod((hi - lo) / n))


def build(cls, *args, repeats: int = 3, **kwargs):
    """Median seconds of ``cls(*args, **kwargs)`` over a few calls, and the last object."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        made = cls(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), made


def seconds_per_pair(A, W: np.ndarray, v: np.ndarray, calls: int) -> float:
    """Mean seconds of one forward + adjoint over ``calls`` consecutive calls."""
    start = time.perf_counter()
    for _ in range(calls):
        A.forward(W)
        A.adjoint(v)
    return (time.perf_counter() - start) / calls


def pair_seconds(products: dict[str, object], W: np.ndarray, v: np.ndarray,
                 samples: int = 41) -> dict[str, float]:
    """Median seconds of one forward + adjoint per matrix; samples alternate between them."""
    # warm up, and enough calls per sample for ~5 ms
    calls = {name: max(1, int(5e-3 / max(seconds_per_pair(A, W, v, 1), 1e-7)))
             for name, A in products.items()}
    times = {name: [] for name in products}
    for _ in range(samples):
        for name, A in products.items():
            times[name].append(seconds_per_pair(A, W, v, calls[name]))
    return {name: float(np.median(t)) for name, t in times.items()}


def main() -> None:
    base = load(EXAMPLE).problem
    rng = np.random.default_rng(0)
    print(f"unit {base.unit.name} width {base.unit.width}, float64, one core "
          f"(load average {os.getloadavg()[0]:.1f}); errors relative to ||y||_2 (see docstring); "
          "times per forward + adjoint")
    head = (f"{'M':>4} {'cells':>7} {'rtol':>6} {'r':>3} {'pays':>4} {'pred':>5}  "
            f"{'err f rho0':>10} {'err f teach':>11} {'(bound)':>8} {'err f rand':>10} "
            f"{'err Psi':>8}  {'dense ms':>8} {'GB/s':>5} {'compr ms':>8} {'speed-up':>8}  "
            f"{'extra build s':>13} {'break-even':>10}")
    print(head)
    print("-" * len(head))
    for M in DATA_SIZES:
        problem = dataclasses.replace(base, data=quadrature.circle_lattice(M))
        y_norm = float(np.linalg.norm(problem.y))
        for n in CELLS:
            theta, area = centroids(problem, n)
            Q = len(theta)
            w0 = problem.initial.pdf(theta) * area
            w0 /= w0.sum()
            w_rand = rng.uniform(0.0, 1.0, Q)
            w_rand /= w_rand.sum()
            w_teach = sum(density.Gaussian(t, [0.1, 0.1]).pdf(theta)
                          for t in problem.target.theta)
            w_teach /= w_teach.sum()
            t_dense, dense = build(UnitMatrix, problem, theta, 8 * M * Q)  # S whole
            f0, f_rand, f_teach = (dense.forward(w) for w in (w0, w_rand, w_teach))
            v0 = residual_weights(problem, f0)
            psi0 = dense.adjoint(v0)
            for rtol in RTOLS:
                t_build, A = build(CompressedUnitMatrix, problem, theta, rtol=rtol)
                err0 = np.linalg.norm(A.forward(w0) - f0) / y_norm
                err_teach = np.linalg.norm(A.forward(w_teach) - f_teach) / y_norm
                bound_teach = A.error_bound(w_teach) / y_norm
                err_rand = np.linalg.norm(A.forward(w_rand) - f_rand) / y_norm
                err_psi = np.abs(A.adjoint(v0) - psi0).max() / np.abs(psi0).max()
                secs = pair_seconds({"dense": dense, "compressed": A}, w0, v0)
                t_d, t_c = secs["dense"], secs["compressed"]
                extra = t_build - t_dense
                gain = t_d - t_c
                even = f"{max(extra, 0.0) / gain:10.0f}" if gain > 0 else f"{'never':>10}"
                pays = "yes" if should_compress(M, Q, A.rank) else "no"
                predicted = M * Q / ((M + Q) * A.rank)
                print(f"{M:4d} {n:4d}^2 {rtol:6.0e} {A.rank:3d} {pays:>4} {predicted:5.1f}  "
                      f"{err0:10.1e} {err_teach:11.1e} {bound_teach:8.1e} {err_rand:10.1e} "
                      f"{err_psi:8.1e}  {t_d * 1e3:8.3f} "
                      f"{16 * M * Q / t_d / 1e9:5.1f} {t_c * 1e3:8.3f} {t_d / t_c:8.1f}  "
                      f"{extra:13.3f} {even}")
            del dense


if __name__ == "__main__":
    main()
