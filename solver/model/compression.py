"""A truncated SVD of the unit matrix, for products cheaper than the dense M x Q ones.

On a fixed parameter mesh the unit matrix S[m, q] = s(x_m; theta_q) never changes, and for
smooth units it is numerically of low rank: the flagship circle RBF has
S[m, (c, z)] = c exp((cos(x_m - z) - 1) / w^2), whose rank is bounded by the number of
Fourier modes of the kernel above the tolerance (29 at 1e-8 for w = 0.5, whatever M and Q).
The dense products cost M Q (memory bound); with

    S = U Sigma V^T,   S_r = U_r Sigma_r V_r^T   (the r largest singular values)

they cost (M + Q) r:

    forward(W) = U_r (Sigma_r (V_r^T W))          ~ S W,
    adjoint(v) = V_r (Sigma_r (U_r^T v))          ~ S^T v.

**Rank rule.** With sigma_1 >= sigma_2 >= ... the singular values of the *global* S (all
ranks' owned columns) and sigma_k := 0 for k > min(M, Q),

    r = the smallest r >= 0 with sigma_{r+1} <= rtol * sigma_1
      = #{i : sigma_i > rtol * sigma_1}.

**Error bound.** ||S - S_r||_2 = sigma_{r+1}, so for any global weight vector W

    ||S W - S_r W||_2 <= sigma_{r+1} ||W||_2 <= rtol sigma_1 ||W||_2,
    ||S^T v - S_r^T v||_2 <= sigma_{r+1} ||v||_2,

in exact arithmetic; ``error_bound`` adds the rounding of the factorisation (below).

**Distribution.** Under MPI each rank holds the columns of its own mesh cells, owned first
and then ghosts (``n_owned``); ghost weights are 0. The factorisation uses each column once
(the owned ones), so sigma and U_r are those of the global S; the right factor is then
local: Sigma_r V_loc^T = U_r^T S_loc for every local column, ghosts included (a column's row
of V depends on that column only), so ``adjoint`` gives Psi on ghosts too and ``forward``
returns this rank's partial sum, which the caller allreduces, exactly as for
:class:`~solver.model.functionals.UnitMatrix`. The small factorisation is done on rank 0 and
broadcast, so every rank has bitwise the same sigma, U_r and r.

**Two ways to get U and sigma** (S is built in column blocks under ``max_bytes`` either way,
so the dense S never needs to be whole):

- ``"tsqr"`` (default): R factor of the tall Q x M matrix S^T by a distributed TSQR. On
  each rank the panels S_blk^T (16 M columns) are folded into a running M x M R by
  Householder QR of [R; S_blk^T]; rank 0 gathers the small R factors, stacks them and takes
  the QR again; then S = R^T Q^T, and the SVD R^T = U Sigma Z^T gives U and sigma.
  Backward stable: sigma_i is found to an absolute error of about eps sigma_1, so any rtol
  down to ~1e-13 is honoured. Cost ~2 Q M^2 flops.
- ``"gram"``: eigendecomposition of G = S S^T = sum over ranks of S_loc S_loc^T (one
  reduction of an M x M matrix). Half the flops of TSQR, but forming G squares the
  condition number: its eigenvalues carry absolute errors ~eps lambda_1, so singular values
  below ~sqrt(eps) sigma_1 ~ 1e-8 sigma_1 are not resolved (the truncation error then
  stalls near 1e-8 sigma_1 ||W||, whatever rtol says). It therefore refuses
  rtol < ``GRAM_MIN_RTOL`` = 1e-7.

TSQR is the default because it is accurate at every tolerance a user may ask for
(including the 1e-10 of the benchmark) and its extra cost is paid once: 2-4x the Gram
build, ~1-1.5 s for M = 256, Q = 65536 on one core, which the faster products repay within
~100 forward + adjoint pairs, against the thousands of a PDE run (see
benchmarks/unit_matrix_compression.py).

In both methods the stored factors are U_r (M x r) and B = Sigma_r V_loc^T = U_r^T S_loc
(r x Q_loc), computed directly from S (not from the small factors), so the products are
U_r (B W) and B^T (U_r^T v): the orthogonal projection U_r U_r^T S, with no division by
small singular values.

``forward_squared`` (S*S) W is not low rank in the same factors; it is called only at output
times, so it recomputes the dense blocks of S (exact, memory stays under max_bytes).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.linalg

from solver.model.functionals import (
    DEFAULT_MAX_BYTES,
    UnitMatrix,
    column_blocks,
    forward_second_moment,
)
from solver.model.problem import Problem

#: Compress only when the compressed products cost below this fraction of the dense ones.
COMPRESS_RATIO = 0.5

#: Smallest rtol the Gram method accepts (it cannot resolve sigma below ~1e-8 sigma_1).
GRAM_MIN_RTOL = 1e-7

METHODS = ("tsqr", "gram")

#: TSQR folds S^T into R in panels of this many times M rows (measured best at 8-32).
TSQR_PANEL = 16

_EPS = float(np.finfo(np.float64).eps)


class _SerialComm:
    """The few collectives used here, on one process (comm=None)."""

    rank = 0
    size = 1

    def allreduce(self, value: Any) -> Any:
        return value

    def gather(self, value: Any, root: int = 0) -> list[Any]:
        return [value]

    def reduce(self, value: Any, root: int = 0) -> Any:
        return value

    def bcast(self, value: Any, root: int = 0) -> Any:
        return value


def should_compress(M: int, Q_global: int, r: int) -> bool:
    """True when the compressed products pay: (M + Q) r < COMPRESS_RATIO M Q.

    (M + Q) r is the flop (and memory-traffic) count of one compressed product, M Q that of
    the dense one. The margin of 2 covers the second BLAS call and its overhead, which
    dominate when the operands are small; on the flagship problem the measured speed-up was
    at or above the predicted M Q / ((M + Q) r), as the factors stay in cache where S does
    not (benchmarks/unit_matrix_compression.py). Only global integers enter, so every rank
    takes the same decision, with no timing involved.
    """
    return (M + Q_global) * r < COMPRESS_RATIO * M * Q_global


def _check_rtol(rtol: float, method: str) -> float:
    if method not in METHODS:
        raise ValueError(f"compression method must be one of {METHODS}, got {method!r}")
    if isinstance(rtol, bool) or not isinstance(rtol, int | float | np.floating) or not (
        0 < rtol < 1
    ):
        raise ValueError(f"compression rtol must be a number in (0, 1), got {rtol!r}")
    rtol = float(rtol)
    if method == "gram" and rtol < GRAM_MIN_RTOL:
        raise ValueError(
            f"compression rtol {rtol:g} is below {GRAM_MIN_RTOL:g}, which the Gram method "
            "cannot resolve (it squares the condition number); use method='tsqr'"
        )
    return rtol


def truncation_rank(sigma: np.ndarray, rtol: float) -> int:
    """The smallest r with sigma_{r+1} <= rtol sigma_1 (sigma sorted descending, 1-based)."""
    if sigma.size == 0 or not sigma[0] > 0:
        return 0
    return int(np.count_nonzero(sigma > rtol * sigma[0]))


class CompressedUnitMatrix:
    """S ~ U_r Sigma_r V_r^T, with the product interface of UnitMatrix.

    Parameters: ``theta`` holds this rank's columns (owned first, then ghosts, whose
    weights are 0); ``n_owned`` how many are owned (default: all); ``comm`` an mpi4py
    communicator or None (one process); ``rtol`` the truncation tolerance of the rank rule in
    the module docstring; ``max_bytes`` the budget for one block of S; ``method`` "tsqr"
    (default, accurate to round-off) or "gram" (rtol >= 1e-7).

    Construction is collective. Attributes: ``rank`` r, ``sigma`` (all min(M, Q_global)
    singular values of the global S, descending), ``U`` (M x r), ``factor``
    B = Sigma_r V_loc^T (r x Q_loc), ``q_global``.
    """

    def __init__(self, problem: Problem, theta: np.ndarray, comm: Any = None,
                 rtol: float = 1e-8, max_bytes: int = DEFAULT_MAX_BYTES, *,
                 n_owned: int | None = None, method: str = "tsqr"):
        self.problem = problem
        self.theta = np.ascontiguousarray(theta, dtype=float)
        self.comm = _SerialComm() if comm is None else comm
        self.rtol = _check_rtol(rtol, method)
        self.method = method
        self.max_bytes = int(max_bytes)
        Q_loc = len(self.theta)
        self.n_owned = Q_loc if n_owned is None else int(n_owned)
        if not 0 <= self.n_owned <= Q_loc:
            raise ValueError(f"n_owned must be in 0..{Q_loc}, got {n_owned!r}")
        M = problem.data.size
        self.q_global = int(self.comm.allreduce(self.n_owned))
        # Keep the local S between the two passes when it fits, else recompute its blocks.
        self._whole = self._values(slice(None)) if 8 * M * Q_loc <= self.max_bytes else None

        if method == "tsqr":
            U, sigma = self._factor_tsqr()
        else:
            U, sigma = self._factor_gram()
        self.sigma = sigma
        self.rank = truncation_rank(sigma, self.rtol)
        self.U = np.ascontiguousarray(U[:, : self.rank])
        self.factor = np.empty((self.rank, Q_loc))
        for cols, S in self._blocks(0, Q_loc):
            self.factor[:, cols] = self.U.T @ S
        self._whole = None

    # -- building -----------------------------------------------------------------------
    def _values(self, cols: slice) -> np.ndarray:
        return self.problem.unit.values(self.problem.data.points, self.theta[cols])

    def _blocks(self, start: int, stop: int) -> Iterator[tuple[slice, np.ndarray]]:
        """(cols, S[:, cols]) for column blocks covering start..stop."""
        if self._whole is not None:
            if stop > start:
                yield slice(start, stop), self._whole[:, start:stop]
            return
        M = self.problem.data.size
        for block in column_blocks(M, stop - start, 1, self.max_bytes):
            cols = slice(start + block.start, start + block.stop)
            yield cols, self._values(cols)

    def _factor_tsqr(self) -> tuple[np.ndarray, np.ndarray]:
        M = self.problem.data.size
        R = np.empty((0, M))
        step = TSQR_PANEL * M  # QR of [R; panel^T] stays in cache: ~1.5x faster than one QR
        for _, S in self._blocks(0, self.n_owned):
            for start in range(0, S.shape[1], step):
                R = _r_factor(np.vstack([R, S[:, start : start + step].T]))
        factors = self.comm.gather(R, root=0)
        result = None
        if self.comm.rank == 0:
            R = _r_factor(np.vstack(factors))
            if R.shape[0] == 0:
                result = (np.zeros((M, 0)), np.zeros(0))
            else:
                U, sigma, _ = scipy.linalg.svd(R.T, full_matrices=False, check_finite=False)
                result = (U, sigma)
        return self.comm.bcast(result, root=0)

    def _factor_gram(self) -> tuple[np.ndarray, np.ndarray]:
        M = self.problem.data.size
        G = np.zeros((M, M))
        for _, S in self._blocks(0, self.n_owned):
            G += S @ S.T
        G = self.comm.reduce(G, root=0)
        result = None
        if self.comm.rank == 0:
            lam, U = scipy.linalg.eigh(G, check_finite=False)
            k = min(M, self.q_global)
            lam, U = lam[::-1][:k], U[:, ::-1][:, :k]
            result = (np.ascontiguousarray(U), np.sqrt(np.maximum(lam, 0.0)))
        return self.comm.bcast(result, root=0)

    # -- accuracy -----------------------------------------------------------------------
    @property
    def tail(self) -> float:
        """sigma_{r+1} (0 when r = min(M, Q_global)): ||S - S_r||_2."""
        return float(self.sigma[self.rank]) if self.rank < self.sigma.size else 0.0

    @property
    def rounding(self) -> float:
        """Allowance for the floating-point error of the factorisation, in units of ||W||_2.

        sqrt(M) eps sigma_1 for TSQR; sqrt(M eps) sigma_1 for Gram (its floor, see module doc).
        """
        if self.sigma.size == 0:
            return 0.0
        M = self.problem.data.size
        scale = np.sqrt(M * _EPS) if self.method == "gram" else np.sqrt(M) * _EPS
        return float(scale * self.sigma[0])

    def error_bound(self, weights: np.ndarray) -> float:
        """(sigma_{r+1} + rounding) ||W||_2 >= ||S W - forward(W) (summed over ranks)||_2.

        ||W||_2 is over the owned entries of all ranks, so this is collective.
        """
        w = np.asarray(weights, dtype=float)[: self.n_owned]
        norm = float(np.sqrt(self.comm.allreduce(float(w @ w))))
        return (self.tail + self.rounding) * norm

    @property
    def v_local(self) -> np.ndarray:
        """V_loc = (Sigma_r^{-1} U_r^T S_loc)^T, shape (Q_loc, r) (computed on demand)."""
        return (self.factor / self.sigma[: self.rank, None]).T

    @property
    def nbytes(self) -> int:
        """Memory held by the factors."""
        return self.U.nbytes + self.factor.nbytes

    # -- products (same contract as UnitMatrix) -----------------------------------------
    def forward(self, weights: np.ndarray) -> np.ndarray:
        """~ sum_q S[m, q] W_q over local columns, shape (M,): U_r (B W)."""
        return self.U @ (self.factor @ weights)

    def adjoint(self, v: np.ndarray) -> np.ndarray:
        """~ sum_m v_m S[m, q], shape (Q_loc,): B^T (U_r^T v)."""
        return (self.U.T @ v) @ self.factor

    def forward_squared(self, weights: np.ndarray) -> np.ndarray:
        """sum_q S[m, q]^2 W_q, shape (M,), exact: dense blocks of S recomputed (of
        unit.values_squared for an ``averaged`` unit)."""
        if self.problem.unit.averaged:
            return forward_second_moment(self.problem, self.theta, weights, self.max_bytes)
        out = np.zeros(self.problem.data.size)
        for cols, S in self._blocks(0, len(self.theta)):
            out += (S * S) @ weights[cols]
        return out


def _r_factor(A: np.ndarray) -> np.ndarray:
    """The R of A = Q R (Householder), min(rows, cols) x cols; A is overwritten."""
    if A.shape[0] == 0:
        return np.empty((0, A.shape[1]))
    R = scipy.linalg.qr(A, mode="r", overwrite_a=True, check_finite=False)[0]
    return R[: min(A.shape)]


def unit_matrix(problem: Problem, theta: np.ndarray, comm: Any = None,
                rtol: float | None = None, max_bytes: int = DEFAULT_MAX_BYTES, *,
                n_owned: int | None = None,
                method: str = "tsqr") -> UnitMatrix | CompressedUnitMatrix:
    """The unit matrix for fixed points: compressed when rtol is given and it pays.

    rtol None gives the dense UnitMatrix. Otherwise the truncated SVD is computed
    (collective) and kept if ``should_compress(M, Q_global, r)``, else the dense UnitMatrix
    is returned (the factorisation's cost is then wasted, as r is only known after it); the
    decision is the same on every rank. ``n_owned`` and ``method`` as for
    CompressedUnitMatrix.
    """
    if rtol is None:
        return UnitMatrix(problem, theta, max_bytes)
    compressed = CompressedUnitMatrix(problem, theta, comm, rtol, max_bytes,
                                      n_owned=n_owned, method=method)
    if should_compress(problem.data.size, compressed.q_global, compressed.rank):
        return compressed
    return UnitMatrix(problem, theta, max_bytes)
