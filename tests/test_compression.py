"""The truncated-SVD unit matrix against the dense one and an independent SVD."""

import itertools

import numpy as np
import pytest
from mpi4py import MPI

from solver.model import compression, density, quadrature, targets, units
from solver.model.compression import CompressedUnitMatrix, should_compress, unit_matrix
from solver.model.domain import Box
from solver.model.functionals import UnitMatrix
from solver.model.problem import Problem
from tests.conftest import circle_problem


def grid(n_c: int, n_z: int) -> np.ndarray:
    """Cell centroids of an n_c x n_z grid on [-5, 5] x [-pi, pi], theta = (c, z)."""
    c = -5.0 + (np.arange(n_c) + 0.5) * 10.0 / n_c
    z = -np.pi + (np.arange(n_z) + 0.5) * 2 * np.pi / n_z
    C, Z = np.meshgrid(c, z, indexing="ij")
    return np.column_stack([C.ravel(), Z.ravel()])


@pytest.fixture(scope="module")
def setup():
    """circle_problem (M = 32), a 24 x 20 grid jittered so that no structure is exact."""
    problem = circle_problem()
    theta = grid(24, 20) + np.random.default_rng(3).uniform(-0.05, 0.05, (480, 2))
    S = problem.unit.values(problem.data.points, theta)
    _, sigma, Vt = np.linalg.svd(S, full_matrices=False)
    return problem, theta, S, sigma, Vt


def test_sigma_matches_an_independent_svd(setup):
    problem, theta, _, sigma, _ = setup
    tsqr = CompressedUnitMatrix(problem, theta, rtol=1e-6)
    assert tsqr.sigma.shape == sigma.shape
    np.testing.assert_allclose(tsqr.sigma, sigma, rtol=0, atol=1e-13 * sigma[0])
    gram = CompressedUnitMatrix(problem, theta, rtol=1e-6, method="gram")
    np.testing.assert_allclose(gram.sigma, sigma, rtol=0, atol=1e-7 * sigma[0])
    # eigenvalues of S S^T are found to ~eps sigma_1^2, so sigma_i to ~eps sigma_1^2 / sigma_i
    kept = sigma[: gram.rank]
    assert np.all(np.abs(gram.sigma[: gram.rank] - kept) < 1e3 * np.finfo(float).eps
                  * sigma[0] ** 2 / kept)


@pytest.mark.parametrize(("method", "rtol"), [("tsqr", 1e-3), ("tsqr", 1e-6), ("tsqr", 1e-9),
                                             ("gram", 1e-3), ("gram", 1e-7)])
def test_products_match_dense_within_the_bound(setup, method, rtol):
    problem, theta, S, sigma, _ = setup
    A = CompressedUnitMatrix(problem, theta, rtol=rtol, method=method)
    assert A.rank == np.count_nonzero(sigma > rtol * sigma[0])
    assert 0 < A.rank < len(sigma)
    assert A.tail <= rtol * sigma[0] < A.sigma[A.rank - 1]
    rng = np.random.default_rng(7)
    for W in (rng.uniform(0, 1, len(theta)), rng.standard_normal(len(theta))):
        err = np.linalg.norm(A.forward(W) - S @ W)
        assert err <= A.error_bound(W)
        assert A.error_bound(W) <= (rtol * sigma[0] + A.rounding) * np.linalg.norm(W)
    v = rng.standard_normal(problem.data.size)
    assert np.linalg.norm(A.adjoint(v) - v @ S) <= (A.tail + A.rounding) * np.linalg.norm(v)


def test_truncation_is_exactly_at_rank_r(setup):
    """W = v_{r+1} (right singular vector) loses exactly sigma_{r+1}; W = v_r loses nothing."""
    problem, theta, S, sigma, Vt = setup
    A = CompressedUnitMatrix(problem, theta, rtol=1e-5)
    r = A.rank
    lost = np.linalg.norm(S @ Vt[r] - A.forward(Vt[r]))
    assert lost == pytest.approx(sigma[r], rel=1e-8)
    assert np.linalg.norm(S @ Vt[r - 1] - A.forward(Vt[r - 1])) < 1e-13 * sigma[0]
    np.testing.assert_allclose(A.v_local.T @ A.v_local, np.eye(r), atol=1e-10)


def test_rank_drops_and_error_grows_as_rtol_grows(setup):
    problem, theta, S, _, _ = setup
    W = np.random.default_rng(1).uniform(0, 1, len(theta))
    ranks, errors = [], []
    for rtol in (1e-12, 1e-9, 1e-6, 1e-3, 1e-1):
        A = CompressedUnitMatrix(problem, theta, rtol=rtol)
        ranks.append(A.rank)
        errors.append(np.linalg.norm(A.forward(W) - S @ W))
    assert all(a > b for a, b in itertools.pairwise(ranks)), ranks
    assert errors[0] < 1e-11 * errors[-1], errors
    assert errors[-1] > 1e-3 * np.linalg.norm(S @ W)


def linear_problem(d: int) -> Problem:
    data = quadrature.gauss_legendre([-1.0] * d, [1.0] * d, 4)
    return Problem(units.LinearUnit(d), data, targets.ExpressionTarget("x0", d),
                   Box((-3.0,) * d, (3.0,) * d), density.Gaussian([0.0] * d, [0.5] * d))


@pytest.mark.parametrize("method", ["tsqr", "gram"])
@pytest.mark.parametrize("d", [2, 3])
def test_rank_deficient_matrix_has_its_exact_rank(method, d):
    """S = X Theta^T has rank d: found exactly, and the products are exact to round-off."""
    problem = linear_problem(d)
    rng = np.random.default_rng(d)
    theta = rng.standard_normal((300, d))
    S = problem.unit.values(problem.data.points, theta)
    A = CompressedUnitMatrix(problem, theta, rtol=1e-7, method=method)
    assert A.rank == d
    assert A.tail < 1e-7 * A.sigma[0] if method == "gram" else A.tail < 1e-14 * A.sigma[0]
    W, v = rng.standard_normal(300), rng.standard_normal(problem.data.size)
    scale = A.sigma[0] * np.linalg.norm(W)
    assert np.linalg.norm(A.forward(W) - S @ W) < 1e-13 * scale
    assert np.linalg.norm(A.adjoint(v) - v @ S) < 1e-13 * A.sigma[0] * np.linalg.norm(v)
    assert A.nbytes == 8 * d * (problem.data.size + 300)


@pytest.mark.parametrize("max_bytes", [8 * 32 * 7, 8 * 32 * 100, 2**30])
def test_blocked_build_and_ghost_columns(setup, max_bytes):
    """Blocks of any width (narrower than M too) give the same factors; ghost columns are
    left out of the factorisation but get their Psi."""
    problem, theta, S, sigma, _ = setup
    ghosts = [5, 100, 479]
    local = np.vstack([theta, theta[ghosts]])
    A = CompressedUnitMatrix(problem, local, rtol=1e-9, max_bytes=max_bytes,
                             n_owned=len(theta))
    np.testing.assert_allclose(A.sigma, sigma, rtol=0, atol=1e-13 * sigma[0])
    ref = CompressedUnitMatrix(problem, theta, rtol=1e-9)
    assert A.rank == ref.rank
    W = np.concatenate([np.random.default_rng(2).uniform(0, 1, len(theta)), np.zeros(3)])
    np.testing.assert_allclose(A.forward(W), ref.forward(W[: len(theta)]), rtol=1e-13,
                               atol=1e-15)
    assert A.error_bound(W) == pytest.approx(ref.error_bound(W[: len(theta)]), rel=1e-14)
    v = problem.data.weights * (S @ W[: len(theta)] - problem.y)
    psi = A.adjoint(v)
    np.testing.assert_allclose(psi[len(theta):], psi[ghosts], rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(psi, (v @ S)[np.r_[0 : len(theta), ghosts]],
                               atol=(A.tail + A.rounding) * np.linalg.norm(v))
    np.testing.assert_allclose(A.forward_squared(W), (S * S) @ W[: len(theta)], rtol=1e-13)


def test_should_compress_and_the_factory():
    assert should_compress(64, 16384, 29) and not should_compress(64, 16384, 33)
    assert not should_compress(32, 400, 32)
    problem = circle_problem()
    theta = grid(64, 64)
    assert type(unit_matrix(problem, theta)) is UnitMatrix
    compressed = unit_matrix(problem, theta, rtol=1e-3)
    assert isinstance(compressed, CompressedUnitMatrix)
    assert compressed.rank < 16
    assert type(unit_matrix(problem, theta, rtol=1e-12)) is UnitMatrix  # rank ~ M: no gain
    W = np.full(len(theta), 1.0 / len(theta))
    S = UnitMatrix(problem, theta)
    assert np.linalg.norm(compressed.forward(W) - S.forward(W)) <= compressed.error_bound(W)


def test_bad_arguments_are_refused():
    problem, theta = circle_problem(), grid(4, 4)
    with pytest.raises(ValueError, match="method='tsqr'"):
        CompressedUnitMatrix(problem, theta, rtol=1e-8, method="gram")
    for rtol in (0.0, 1.0, -1e-3, True):
        with pytest.raises(ValueError, match="rtol"):
            CompressedUnitMatrix(problem, theta, rtol=rtol)
    with pytest.raises(ValueError, match="method"):
        CompressedUnitMatrix(problem, theta, rtol=1e-3, method="svd")
    with pytest.raises(ValueError, match="n_owned"):
        CompressedUnitMatrix(problem, theta, rtol=1e-3, n_owned=17)
    assert compression.truncation_rank(np.zeros(3), 1e-3) == 0


@pytest.mark.mpi
@pytest.mark.parametrize("method", ["tsqr", "gram"])
def test_columns_split_over_ranks_give_the_serial_f_and_psi(setup, method):
    """Each rank holds a contiguous share of columns plus one ghost from the next share."""
    problem, theta, _, _, _ = setup
    comm = MPI.COMM_WORLD
    Q = len(theta)
    rng = np.random.default_rng(11)
    W = rng.uniform(0, 1, Q)
    rtol = 1e-8 if method == "tsqr" else 1e-6
    serial = CompressedUnitMatrix(problem, theta, MPI.COMM_SELF, rtol=rtol, method=method)
    f_serial = serial.forward(W)
    v = problem.data.weights * (f_serial - problem.y)
    psi_serial = serial.adjoint(v)

    bounds = np.linspace(0, Q, comm.size + 1).astype(int)
    lo, hi = bounds[comm.rank], bounds[comm.rank + 1]
    cols = np.r_[lo:hi, hi % Q]  # owned, then one ghost column
    A = CompressedUnitMatrix(problem, theta[cols], comm, rtol=rtol, max_bytes=8 * 32 * 50,
                             n_owned=hi - lo, method=method)
    W_loc = np.concatenate([W[lo:hi], [0.0]])
    f = np.empty(problem.data.size)
    comm.Allreduce(A.forward(W_loc), f, MPI.SUM)
    assert A.rank == serial.rank
    assert A.q_global == Q
    assert comm.allgather(A.rank) == [serial.rank] * comm.size
    psi = A.adjoint(v)
    if method == "tsqr":  # backward stable: blocking and splitting change only round-off
        atol_sigma, atol_f, atol_psi = (1e-12 * serial.sigma[0], 1e-12 * np.abs(f_serial).max(),
                                        1e-12 * np.abs(psi_serial).max())
    else:  # G's summation order changes sigma_i by ~eps sigma_1^2 / sigma_i: within the bound
        atol_sigma = serial.rounding
        atol_f = 2 * serial.error_bound(W)
        atol_psi = 2 * (serial.tail + serial.rounding) * np.linalg.norm(v)
    np.testing.assert_allclose(A.sigma, serial.sigma, rtol=0, atol=atol_sigma)
    np.testing.assert_allclose(f, f_serial, rtol=0, atol=atol_f)
    np.testing.assert_allclose(psi, psi_serial[cols], rtol=0, atol=atol_psi)
    # sigma_{r+1} moves by round-off (eps sigma_1, or more for Gram): within the allowance
    assert abs(A.error_bound(W_loc) - serial.error_bound(W)) <= serial.rounding * np.linalg.norm(W)
