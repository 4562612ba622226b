"""The O(M Q) products of the mean-field model, for any weighted point set.

A weighted point set (theta_q, W_q), q = 1..Q, represents the measure
sum_q W_q delta(theta_q): particles have W_q = 1/n, a mesh has W_q = rho_q |K_q|.
Everything goes through the M x Q unit matrix S[m, q] = s(x_m; theta_q), built in
column blocks so memory stays below ``max_bytes`` whatever Q; the Q x Q kernel is
never formed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from solver.model.losses import Loss, is_label
from solver.model.problem import Problem

#: Default memory budget for one block of the unit matrix (and its gradients).
DEFAULT_MAX_BYTES = 64 * 2**20
#: The unit matrices of a mesh are fixed: the PDE schemes keep each whole up to this size
#: (else it is rebuilt in blocks at every evaluation).
MESH_MATRIX_BYTES = 2**30


def column_blocks(M: int, Q: int, per_entry: int, max_bytes: int) -> Iterator[slice]:
    """Slices of 0..Q so that an M x len(slice) x per_entry float64 array fits max_bytes."""
    width = max(1, max_bytes // (8 * M * per_entry))
    for start in range(0, Q, width):
        yield slice(start, min(start + width, Q))


class UnitMatrix:
    """S[m, q] = s(x_m; theta_q) for fixed points, kept whole when it fits in max_bytes.

    Used where theta does not move (mesh quadrature points): S is built once and
    every product is one BLAS call; otherwise blocks are recomputed on demand.
    """

    def __init__(self, problem: Problem, theta: np.ndarray, max_bytes: int = DEFAULT_MAX_BYTES):
        self.problem = problem
        self.theta = np.ascontiguousarray(theta, dtype=float)
        self.max_bytes = max_bytes
        M, Q = problem.data.size, len(self.theta)
        self._whole = problem.unit.values(problem.data.points, self.theta) if (
            8 * M * Q <= max_bytes) else None
        self._second: np.ndarray | None = None  # values_squared of an averaged unit, on demand

    def _blocks(self) -> Iterator[tuple[slice, np.ndarray]]:
        if self._whole is not None:
            yield slice(None), self._whole
            return
        x = self.problem.data.points
        for cols in column_blocks(len(x), len(self.theta), 1, self.max_bytes):
            yield cols, self.problem.unit.values(x, self.theta[cols])

    def forward(self, weights: np.ndarray) -> np.ndarray:
        """sum_q S[m, q] W_q, shape (M,)."""
        out = np.zeros(self.problem.data.size)
        for cols, S in self._blocks():
            out += S @ weights[cols]
        return out

    def forward_squared(self, weights: np.ndarray) -> np.ndarray:
        """sum_q S[m, q]^2 W_q, shape (M,); for an ``averaged`` unit (a reduced unit)
        sum_q S2[m, q] W_q with S2 = unit.values_squared, the second moment of the units it
        stands for (built once beside a whole S, else in blocks at every call)."""
        if self.problem.unit.averaged:
            if self._whole is None:
                return forward_second_moment(self.problem, self.theta, weights, self.max_bytes)
            if self._second is None:
                self._second = self.problem.unit.values_squared(self.problem.data.points,
                                                                self.theta)
            return self._second @ weights
        out = np.zeros(self.problem.data.size)
        for cols, S in self._blocks():
            out += (S * S) @ weights[cols]
        return out

    def adjoint(self, v: np.ndarray) -> np.ndarray:
        """sum_m v_m S[m, q], shape (Q,)."""
        out = np.empty(len(self.theta))
        for cols, S in self._blocks():
            out[cols] = v @ S
        return out


def forward_second_moment(problem: Problem, theta: np.ndarray, weights: np.ndarray,
                          max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """sum_q W_q unit.values_squared(x_m, theta_q), shape (M,), in column blocks: the
    int s^2 rho of MC (= sum_q W_q s(x_m; theta_q)^2 unless the unit is ``averaged``)."""
    x, unit = problem.data.points, problem.unit
    out = np.zeros(len(x))
    for cols in column_blocks(len(x), len(theta), 1, max_bytes):
        out += unit.values_squared(x, theta[cols]) @ weights[cols]
    return out


def network_output(problem: Problem, theta: np.ndarray, weights: np.ndarray,
                   max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """f(x_m) = sum_q W_q s(x_m; theta_q), shape (M,)."""
    return UnitMatrix(problem, theta, max_bytes).forward(weights)


def loss_weights(loss: Loss, weights: np.ndarray, f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """v_m = w_m d1 l(f_m, y_m) for any data (the quadrature, or an SGD batch); for the
    square loss w_m (f_m - y_m), the old expression."""
    if loss.square:
        return weights * (f - y)
    return weights * loss.d1(f, y)


def residual_weights(problem: Problem, f: np.ndarray) -> np.ndarray:
    """v_m = w_m d1 l(f(x_m), y_m) (square loss: w_m (f(x_m) - y_m)): Psi = S^T v (+ lam r)."""
    return loss_weights(problem.loss, problem.data.weights, f, problem.y)


def potential(problem: Problem, theta: np.ndarray, f: np.ndarray,
              max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Psi(theta_q) = sum_m w_m d1 l(f(x_m), y_m) s(x_m; theta_q) + lam r(theta_q)."""
    psi = UnitMatrix(problem, theta, max_bytes).adjoint(residual_weights(problem, f))
    return psi + problem.lam * problem.domain.regulariser(theta)


def potential_gradient(problem: Problem, theta: np.ndarray, f: np.ndarray,
                       max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """grad_theta Psi(theta_q) = sum_m w_m d1 l(f(x_m), y_m) grad s(x_m; theta_q) + lam grad r.

    Axes in ``problem.frozen`` get zero gradient (they do not move).
    """
    x, v = problem.data.points, residual_weights(problem, f)
    out = np.empty_like(theta, dtype=float)
    per_entry = problem.param_dim + 1
    for cols in column_blocks(len(x), len(theta), per_entry, max_bytes):
        out[cols] = problem.unit.theta_vjp(x, theta[cols], v)
    if problem.lam:
        out += problem.lam * problem.domain.regulariser_gradient(theta)
    out[:, list(problem.frozen)] = 0.0
    return out


def loss(problem: Problem, f: np.ndarray) -> float:
    """L = sum_m w_m l(f(x_m), y_m) (square loss: 1/2 sum_m w_m (f(x_m) - y_m)^2)."""
    if problem.loss.square:
        return 0.5 * float(problem.data.weights @ (f - problem.y) ** 2)
    return float(problem.data.weights @ problem.loss.value(f, problem.y))


def accuracy(problem: Problem, f: np.ndarray) -> float | None:
    """sum_m w_m [sign f(x_m) = y_m], the classification accuracy on the data (the fraction
    of points for equal weights; f = 0 counts as wrong); None unless every target is a label
    -1 or +1. ``f`` may be (..., M): one accuracy per row then (an array)."""
    if not is_label(problem.y):
        return None
    right = (np.sign(f) == problem.y).astype(float) @ problem.data.weights
    return float(right) if np.ndim(right) == 0 else right


def penalty(problem: Problem, theta: np.ndarray, weights: np.ndarray) -> float:
    """lam sum_q W_q r(theta_q) (a partial sum when the point set is split over ranks)."""
    if problem.lam == 0:
        return 0.0
    return problem.lam * float(weights @ problem.domain.regulariser(theta))


def energy(problem: Problem, f: np.ndarray, theta: np.ndarray, weights: np.ndarray) -> float:
    """E = L + lam sum_q W_q r(theta_q) for a point set held whole on this rank."""
    return loss(problem, f) + penalty(problem, theta, weights)


def mc_variance(problem: Problem, f: np.ndarray, f_squared: np.ndarray) -> float:
    """MC = sum_m w_m (int s(x_m; theta)^2 rho(dtheta) - f(x_m)^2), the resampling variance.

    f_squared = sum_q W_q s(x_m; theta_q)^2 (UnitMatrix.forward_squared); for a reduced
    (``averaged``) unit the second moment of the full units, so MC is the full network's.
    """
    return float(problem.data.weights @ (f_squared - f**2))


def mc_curvature(problem: Problem, f: np.ndarray, f_squared: np.ndarray) -> float:
    """MC_H = sum_m w_m d2 l(f(x_m), y_m) (int s(x_m; theta)^2 rho(dtheta) - f(x_m)^2): the
    resampling variance in the norm of the loss's curvature, ||g||_H^2 = sum_m w_m d2 l g_m^2,
    the metric of the linearised fluctuations (= MC for the square loss, d2 l = 1). For n
    i.i.d. draws from rho, E n ||f_n - f_rho||_H^2 = MC_H exactly (t = 0); that it bounds
    the fluctuations during training is CRBV's theorem for the square loss only."""
    if problem.loss.square:
        return mc_variance(problem, f, f_squared)
    h = problem.loss.d2(f, problem.y)
    return float((problem.data.weights * h) @ (f_squared - f**2))
