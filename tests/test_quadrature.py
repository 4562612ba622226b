"""Tests for solver.model.quadrature: exactness of each rule, samplers, file input, errors."""

import pickle

import numpy as np
import pytest
from scipy.special import sph_harm_y

from solver.model.quadrature import (
    QUADRATURES,
    DataQuadrature,
    circle_lattice,
    from_file,
    gauss_hermite,
    gauss_legendre,
    monte_carlo,
    sphere_product,
)

N_SE = 5.0  # tolerance in standard errors for random checks


def assert_mean_close(values: np.ndarray, expected: float | np.ndarray) -> None:
    """Sample mean of values (P, ...) within N_SE estimated standard errors of expected."""
    se = values.std(axis=0, ddof=1) / np.sqrt(values.shape[0])
    assert np.all(np.abs(values.mean(axis=0) - expected) <= N_SE * se)


def uniform_moment(a: float, b: float, k: int) -> float:
    """E[x^k] for x uniform on [a, b]."""
    return (b ** (k + 1) - a ** (k + 1)) / ((k + 1) * (b - a))


# --- exactness ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_gauss_legendre_exact_to_degree_2n_minus_1_only(n):
    (a0, a1), (b0, b1) = (-1.0, 0.5), (2.0, 1.5)
    q = gauss_legendre([a0, a1], [b0, b1], n)
    assert q.points.shape == (n * n, 2) and q.dim == 2 and q.size == n * n
    x, y = q.points.T
    for k in (2 * n - 1, 2 * n):
        exact = uniform_moment(a0, b0, k) * uniform_moment(a1, b1, k) + uniform_moment(a0, b0, 1)
        error = abs(q.integrate(x**k * y**k + x) - exact)
        if k == 2 * n - 1:
            assert error <= 1e-13 * abs(exact)
        else:
            assert error > 1e-6 * abs(exact)


def test_gauss_legendre_per_dimension_n_and_scalar_broadcast():
    q = gauss_legendre(0.0, [1.0, 2.0], (2, 4))
    assert q.points.shape == (8, 2)
    assert "(3, 7)" in q.exact_degree
    x, y = q.points.T
    exact = uniform_moment(0.0, 1.0, 3) * uniform_moment(0.0, 2.0, 7)
    assert q.integrate(x**3 * y**7) == pytest.approx(exact, rel=1e-13)


def test_gauss_hermite_moments_1d():
    m, s = 0.5, 2.0
    fourth = m**4 + 6 * m**2 * s**2 + 3 * s**4
    q = gauss_hermite(m, s, 3)
    x = q.points[:, 0]
    assert q.integrate(x) == pytest.approx(m, rel=1e-13)
    assert q.integrate(x**2) == pytest.approx(s**2 + m**2, rel=1e-13)
    assert q.integrate(x**4) == pytest.approx(fourth, rel=1e-13)
    q2 = gauss_hermite(m, s, 2)  # exact to degree 3 only
    assert q2.integrate(q2.points[:, 0] ** 4) != pytest.approx(fourth, rel=1e-3)


def test_gauss_hermite_cross_moments_2d_3d():
    s = 0.7
    q = gauss_hermite([1.0, -2.0], s, 2)
    x, y = q.points.T
    assert q.points.shape == (4, 2)
    assert q.integrate(x * y) == pytest.approx(-2.0, rel=1e-13)
    assert q.integrate(x**2 * y**2) == pytest.approx((s**2 + 1) * (s**2 + 4), rel=1e-13)

    mean = np.array([0.3, -0.1, 2.0])
    q = gauss_hermite(mean, s, [2, 3, 2])
    assert q.points.shape == (12, 3)
    c = q.points - mean
    assert q.integrate(np.prod(q.points, axis=1)) == pytest.approx(np.prod(mean), rel=1e-13)
    assert q.integrate(np.prod(c**2, axis=1)) == pytest.approx(s**6, rel=1e-12)
    assert q.integrate(c[:, 1] ** 4) == pytest.approx(3 * s**4, rel=1e-12)


def test_gauss_hermite_scalar_mean_with_dim():
    q = gauss_hermite(1.0, 1.0, 2, dim=3)
    assert q.points.shape == (8, 3)
    np.testing.assert_allclose(q.integrate(q.points), [1.0, 1.0, 1.0], rtol=1e-14)


@pytest.mark.parametrize("M", [1, 4, 7])
def test_circle_lattice_trigonometric_exactness(M):
    q = circle_lattice(M)
    theta = q.points[:, 0]
    assert q.points.shape == (M, 1)
    for k in range(1, M):
        assert abs(q.integrate(np.cos(k * theta))) < 1e-14
    assert q.integrate(np.cos(M * theta)) == pytest.approx(1.0, abs=1e-14)


def test_circle_lattice_offset():
    q = circle_lattice(5, offset=0.3)
    theta = q.points[:, 0]
    np.testing.assert_allclose(theta[0], 0.3)
    assert abs(q.integrate(np.sin(4 * theta))) < 1e-14
    assert q.integrate(np.cos(5 * theta)) == pytest.approx(np.cos(1.5), abs=1e-14)


def test_sphere_product_moments():
    q = sphere_product(3)
    assert q.points.shape == (18, 3)
    np.testing.assert_allclose(np.linalg.norm(q.points, axis=1), 1.0, rtol=1e-14)
    x1, x2, x3 = q.points.T
    np.testing.assert_allclose(q.integrate(q.points**2), [1 / 3] * 3, rtol=1e-13)
    assert q.integrate(x1**2 * x2**2) == pytest.approx(1 / 15, rel=1e-13)
    assert q.integrate(x3**4) == pytest.approx(1 / 5, rel=1e-13)


@pytest.mark.parametrize("n", [2, 4])
def test_sphere_product_harmonic_exactness(n):
    q = sphere_product(n)
    x, y, z = q.points.T
    polar, azimuth = np.arccos(np.clip(z, -1, 1)), np.arctan2(y, x)

    def mean_real_harmonic(degree: int, order: int) -> float:
        return q.integrate(sph_harm_y(degree, order, polar, azimuth).real)

    # every harmonic of degree 1..2n-1 has mean 0; sectoral and zonal ones of degree 2n do not
    for order in range(2 * n):
        assert abs(mean_real_harmonic(2 * n - 1, order)) < 1e-13
    assert abs(mean_real_harmonic(2 * n, 2 * n)) > 1e-3
    assert abs(mean_real_harmonic(2 * n, 0)) > 1e-3
    # orthonormality: |Y_l^m|^2 has degree 2l <= 2n-1 and mean 1 / (4 pi)
    y_lm = sph_harm_y(n - 1, n - 2, polar, azimuth)
    assert q.integrate(np.abs(y_lm) ** 2) == pytest.approx(1 / (4 * np.pi), rel=1e-13)


@pytest.mark.parametrize(
    ("law", "params", "second_moment", "dim"),
    [
        ("uniform_box", {"lower": [0.0, -1.0], "upper": [1.0, 3.0]}, [1 / 3, 7 / 3], 2),
        ("gaussian", {"mean": [1.0, -0.5, 0.0], "std": 2.0}, [5.0, 4.25, 4.0], 3),
        ("sphere", {"dim": 4}, [0.25] * 4, 4),
    ],
)
def test_monte_carlo_second_moments(law, params, second_moment, dim):
    q = monte_carlo(law, 4000, seed=1, **params)
    assert q.points.shape == (4000, dim)
    np.testing.assert_allclose(q.weights, 1 / 4000)
    assert_mean_close(q.points**2, np.array(second_moment))
    assert q.integrate(q.points[:, 0] ** 2) == pytest.approx(np.mean(q.points[:, 0] ** 2))


def test_monte_carlo_reproducible_from_seed():
    a = monte_carlo("gaussian", 50, seed=3, mean=0.0, std=1.0, dim=2)
    b = monte_carlo("gaussian", 50, seed=3, mean=0.0, std=1.0, dim=2)
    c = monte_carlo("gaussian", 50, seed=4, mean=0.0, std=1.0, dim=2)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.points, c.points)
    np.testing.assert_allclose(np.linalg.norm(monte_carlo("sphere", 9, 0, dim=3).points, axis=1), 1)


# --- samplers ----------------------------------------------------------------------------

P = 20_000


def test_uniform_box_sampler():
    q = gauss_legendre([0.0, -2.0], [1.0, 4.0], 2)
    s = q.sample(np.random.default_rng(0), P)
    assert s.shape == (P, 2)
    assert np.all((s >= [0.0, -2.0]) & (s <= [1.0, 4.0]))
    assert_mean_close(s, np.array([0.5, 1.0]))
    assert_mean_close((s - [0.5, 1.0]) ** 2, np.array([1 / 12, 36 / 12]))


def test_gaussian_sampler():
    q = gauss_hermite([1.0, -1.0, 0.0], 0.5, 2)
    s = q.sample(np.random.default_rng(1), P)
    assert s.shape == (P, 3)
    assert_mean_close(s, np.array([1.0, -1.0, 0.0]))
    assert_mean_close((s - [1.0, -1.0, 0.0]) ** 2, np.full(3, 0.25))


def test_circle_sampler():
    s = circle_lattice(8).sample(np.random.default_rng(2), P)
    assert s.shape == (P, 1)
    assert np.all((s >= 0) & (s < 2 * np.pi))
    assert_mean_close(s, np.pi)
    assert_mean_close((s - np.pi) ** 2, (2 * np.pi) ** 2 / 12)


def test_sphere_samplers():
    for q in (sphere_product(2), monte_carlo("sphere", 10, seed=0, dim=3)):
        s = q.sample(np.random.default_rng(3), P)
        assert s.shape == (P, 3)
        np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, rtol=1e-14)
        assert_mean_close(s, np.zeros(3))
        assert_mean_close(s**2, np.full(3, 1 / 3))
        assert_mean_close(s[:, :1] ** 2 * s[:, 1:2] ** 2, 1 / 15)


def test_monte_carlo_sampler_draws_fresh_points():
    q = monte_carlo("uniform_box", 100, seed=0, lower=-1.0, upper=1.0)
    s = q.sample(np.random.default_rng(0), P)
    assert s.shape == (P, 1) and np.unique(s).size == P
    assert_mean_close(s**2, 1 / 3)


def test_samplers_pickle():
    q = gauss_legendre(0.0, 1.0, 3)
    sampler = pickle.loads(pickle.dumps(q.sampler))
    np.testing.assert_array_equal(
        sampler(np.random.default_rng(5), 4), q.sample(np.random.default_rng(5), 4)
    )


# --- from_file ---------------------------------------------------------------------------


def test_from_file_npz_round_trip(tmp_path):
    x = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    w = np.array([1.0, 1.0, 2.0])
    y = np.array([-1.0, 0.0, 1.0])
    np.savez(tmp_path / "d.npz", x=x, w=w, y=y)
    q = from_file(tmp_path / "d.npz")
    np.testing.assert_array_equal(q.points, x)
    np.testing.assert_allclose(q.weights, [0.25, 0.25, 0.5])
    np.testing.assert_array_equal(q.targets, y)
    assert q.name == "file" and q.integrate(q.targets) == pytest.approx(0.25)


def test_from_file_npz_1d_without_w_y(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.array([0.5, 1.5, 2.5, 3.5]))
    q = from_file(str(tmp_path / "d.npz"))
    assert q.points.shape == (4, 1) and q.targets is None
    np.testing.assert_allclose(q.weights, 0.25)


def test_from_file_csv_round_trip(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("y, x1, w, x0\n1.0, 10.0, 3, 0.0\n2.0, 20.0, 1, 1.0\n")
    q = from_file(path)
    np.testing.assert_array_equal(q.points, [[0.0, 10.0], [1.0, 20.0]])
    np.testing.assert_allclose(q.weights, [0.75, 0.25])
    np.testing.assert_array_equal(q.targets, [1.0, 2.0])


def test_from_file_csv_without_w_y(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x0\n1.0\n2.0\n3.0\n")
    q = from_file(path)
    assert q.points.shape == (3, 1) and q.targets is None
    np.testing.assert_allclose(q.weights, 1 / 3)


def test_from_file_sampler_follows_weights(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.array([0.0, 1.0, 2.0]), w=np.array([0.2, 0.0, 0.8]))
    s = from_file(tmp_path / "d.npz").sample(np.random.default_rng(4), P)
    assert s.shape == (P, 1)
    assert not np.any(s == 1.0)
    assert_mean_close((s == 2.0).astype(float), 0.8)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": np.array([[0.0], [np.nan]])}, r"column 'x' has a non-finite value in data row 1"),
        ({"x": np.zeros(3), "w": np.array([1.0, -1.0, 1.0])}, r"column 'w' has negative"),
        ({"x": np.zeros(3), "w": np.zeros(3)}, r"column 'w' must have a positive sum"),
        ({"x": np.zeros(3), "y": np.zeros(2)}, r"column 'y' has shape \(2,\), expected \(3,\)"),
        ({"x": np.zeros(3), "w": np.ones(4)}, r"column 'w' has shape \(4,\)"),
        ({"x": np.zeros(3), "y": np.array([0.0, np.inf, 0.0])}, r"column 'y' has a non-finite"),
        ({"w": np.ones(3)}, r"missing column 'x'"),
        ({"x": np.zeros(3), "z": np.ones(3)}, r"unknown columns \['z'\]"),
    ],
)
def test_from_file_npz_errors(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match) as info:
        from_file(path)
    assert "bad.npz" in str(info.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("x0,w\n1.0,1\nnan,1\n", r"column 'x' has a non-finite value in data row 1"),
        ("x0,w\n1.0,1\n2.0,-0.5\n", r"column 'w' has negative weight -0.5 in data row 1"),
        ("x0,y\n1.0,1\n2.0\n", r"data row 1 has 1 values, header has 2"),
        ("x0,y\n1.0,1\n2.0,\n", r"column 'y' is not numeric"),
        ("x0,x2\n1.0,1\n", r"header must name columns x0"),
        ("x0\n", r"no data points"),
    ],
)
def test_from_file_csv_errors(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        from_file(path)
    assert "bad.csv" in str(info.value)


def test_from_file_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"\.npz or \.csv"):
        from_file(tmp_path / "d.txt")


# --- argument errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: gauss_legendre(0.0, 1.0, 0),
            r"gauss_legendre: n must be a positive integer, got 0",
        ),
        (lambda: gauss_legendre(0.0, 1.0, 2.5), r"n must be a positive integer, got 2.5"),
        (lambda: gauss_legendre([0.0, 1.0], [1.0, 1.0], 2), r"need lower < upper"),
        (lambda: gauss_legendre([0.0, 0.0], [1.0, 1.0, 1.0], 2), r"equal lengths"),
        (lambda: gauss_legendre([0.0, 0.0], 1.0, [2, 2, 2]), r"n must be .* length 2"),
        (lambda: gauss_legendre(0.0, np.inf, 2), r"upper must be a finite"),
        (lambda: gauss_hermite(0.0, 1.0, 2, dim=4), r"dim must be <= 3.*monte_carlo"),
        (lambda: gauss_hermite([0.0] * 4, 1.0, 2), r"dim must be <= 3.*monte_carlo"),
        (lambda: gauss_hermite(0.0, 0.0, 2), r"std must be a positive finite number, got 0.0"),
        (lambda: gauss_hermite([0.0, 1.0], 1.0, 2, dim=3), r"mean must be a scalar or have"),
        (lambda: gauss_hermite(0.0, 1.0, 0), r"n must be a positive integer"),
        (lambda: circle_lattice(0), r"circle_lattice: M must be a positive integer, got 0"),
        (lambda: circle_lattice(4, offset=np.nan), r"offset must be a finite number"),
        (lambda: sphere_product(0), r"sphere_product: n must be a positive integer, got 0"),
        (lambda: monte_carlo("cube", 10, 0), r"law must be one of"),
        (lambda: monte_carlo("sphere", 0, 0, dim=3), r"M must be a positive integer"),
        (lambda: monte_carlo("sphere", 10, -1, dim=3), r"seed must be a non-negative integer"),
        (lambda: monte_carlo("sphere", 10, 0), r"missing \['dim'\]"),
        (lambda: monte_carlo("sphere", 10, 0, dim=3, std=1.0), r"unknown \['std'\]"),
        (lambda: monte_carlo("uniform_box", 10, 0, lower=1.0, upper=0.0), r"lower < upper"),
    ],
)
def test_constructor_argument_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_data_quadrature_validation_and_integrate():
    def sampler(rng, size):
        return rng.random((size, 1))

    with pytest.raises(ValueError, match="sum to 1"):
        DataQuadrature("q", np.zeros((2, 1)), np.array([0.5, 0.6]), sampler)
    with pytest.raises(ValueError, match=">= 0"):
        DataQuadrature("q", np.zeros((2, 1)), np.array([1.5, -0.5]), sampler)
    with pytest.raises(ValueError, match=r"shape \(M, d\)"):
        DataQuadrature("q", np.zeros(2), np.array([0.5, 0.5]), sampler)
    with pytest.raises(ValueError, match="finite"):
        DataQuadrature("q", np.array([[0.0], [np.nan]]), np.array([0.5, 0.5]), sampler)
    q = DataQuadrature("q", [[1.0], [3.0]], [0.25, 0.75], sampler)
    assert q.points.dtype == np.float64 and not q.points.flags.writeable
    np.testing.assert_allclose(q.integrate(np.array([[1.0, 2.0], [3.0, 4.0]])), [2.5, 3.5])
    assert isinstance(q.integrate(np.array([4.0, 8.0])), float)
    with pytest.raises(ValueError, match="leading dimension 2"):
        q.integrate(np.ones(3))


def test_registry():
    assert set(QUADRATURES) == {
        "gauss_legendre",
        "gauss_hermite",
        "circle_lattice",
        "sphere_product",
        "monte_carlo",
        "file",
    }
    assert QUADRATURES["file"] is from_file
    assert QUADRATURES["sphere_product"](2).size == 8
