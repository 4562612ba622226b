"""Data quadratures: discrete laws sum_m w_m delta_{x_m} standing in for the data law mu.

Expectations E_mu[f] are approximated by sum_m w_m f(x_m) with w_m >= 0 and sum_m w_m = 1.
Every quadrature also carries a sampler drawing fresh i.i.d. samples from mu (for SGD).
Samplers are ``functools.partial`` objects of module-level functions, so they pickle.
"""

from __future__ import annotations

import csv
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from scipy.special import roots_genlaguerre
from scipy.stats import chi

Sampler = Callable[[np.random.Generator, int], np.ndarray]  # (rng, P) -> (P, d) samples from mu

_MAX_TENSOR_DIM = 3


@dataclass(frozen=True)
class DataQuadrature:
    """Points x_m (M, d), weights w_m (M,) summing to 1, and a sampler of the law they represent.

    Arrays are copied to read-only float64 on construction.
    """

    name: str
    points: np.ndarray
    weights: np.ndarray
    sampler: Sampler
    targets: np.ndarray | None = None
    exact_degree: str = ""

    def __post_init__(self) -> None:
        points = np.array(self.points, dtype=np.float64)
        weights = np.array(self.weights, dtype=np.float64)
        if points.ndim != 2 or points.shape[0] < 1 or points.shape[1] < 1:
            raise ValueError(f"points must have shape (M, d) with M, d >= 1, got {points.shape}")
        if weights.shape != (points.shape[0],):
            raise ValueError(f"weights must have shape ({points.shape[0]},), got {weights.shape}")
        if not (np.all(np.isfinite(points)) and np.all(np.isfinite(weights))):
            raise ValueError("points and weights must be finite")
        if np.any(weights < 0) or abs(weights.sum() - 1.0) > 1e-12:
            raise ValueError(f"weights must be >= 0 and sum to 1, got sum {weights.sum()}")
        if not callable(self.sampler):
            raise ValueError(f"sampler must be callable, got {self.sampler!r}")
        arrays = {"points": points, "weights": weights}
        if self.targets is not None:
            targets = np.array(self.targets, dtype=np.float64)
            if targets.shape != weights.shape or not np.all(np.isfinite(targets)):
                raise ValueError(f"targets must be finite with shape {weights.shape}")
            arrays["targets"] = targets
        for key, array in arrays.items():
            array.flags.writeable = False
            object.__setattr__(self, key, array)

    @property
    def size(self) -> int:
        """Number of points M."""
        return self.points.shape[0]

    @property
    def dim(self) -> int:
        """Dimension d of the points."""
        return self.points.shape[1]

    def rows(self, index: np.ndarray) -> DataQuadrature:
        """The points ``index`` with their weights (which must still sum to 1) and targets."""
        return DataQuadrature(self.name, self.points[index], self.weights[index], self.sampler,
                              None if self.targets is None else self.targets[index],
                              self.exact_degree)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draw ``size`` fresh samples from the law, shape (size, d)."""
        samples = np.asarray(self.sampler(rng, size), dtype=np.float64)
        if samples.shape != (size, self.dim):
            raise ValueError(f"sampler returned shape {samples.shape}, expected {(size, self.dim)}")
        return samples

    def integrate(self, values: np.ndarray) -> float | np.ndarray:
        """Return sum_m w_m values[m] for values of shape (M,) or (M, ...)."""
        values = np.asarray(values)
        if values.ndim == 0 or values.shape[0] != self.size:
            raise ValueError(f"values must have leading dimension {self.size}, got {values.shape}")
        result = np.tensordot(self.weights, values, axes=(0, 0))
        return float(result) if result.ndim == 0 else result


# --- argument validation ---------------------------------------------------------------


def _positive_int(func: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{func}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _scalar(func: str, name: str, value: object, *, positive: bool = False) -> float:
    """Finite real scalar (and > 0 if ``positive``)."""
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or (positive and value <= 0):
        kind = "positive finite" if positive else "finite"
        raise ValueError(f"{func}: {name} must be a {kind} number, got {value!r}")
    return float(value)


def _vector(func: str, name: str, value: float | Sequence[float]) -> np.ndarray:
    """Finite scalar or 1-D sequence as a float64 vector of length >= 1."""
    try:
        vector = np.atleast_1d(np.asarray(value, dtype=np.float64))
        ok = vector.ndim == 1 and vector.size > 0 and bool(np.all(np.isfinite(vector)))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{func}: {name} must be a finite number or 1-D sequence, got {value!r}")
    return vector


def _per_dim_ints(func: str, name: str, value: int | Sequence[int], dim: int) -> list[int]:
    """Positive integer, or sequence of ``dim`` of them, as a list of length ``dim``."""
    values = [value] * dim if np.ndim(value) == 0 else list(value)
    if len(values) != dim:
        raise ValueError(f"{func}: {name} must be an integer or have length {dim}, got {value!r}")
    return [_positive_int(func, name, v) for v in values]


def _box(
    func: str, lower: float | Sequence[float], upper: float | Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Validated box corners (d,), (d,) with lower < upper; scalars broadcast."""
    lo, hi = _vector(func, "lower", lower), _vector(func, "upper", upper)
    try:
        lo, hi = np.broadcast_arrays(lo, hi)
    except ValueError:
        raise ValueError(
            f"{func}: lower and upper must have equal lengths, got {lower!r} and {upper!r}"
        ) from None
    if np.any(lo >= hi):
        raise ValueError(
            f"{func}: need lower < upper in every coordinate, got {lower!r}, {upper!r}"
        )
    return lo.copy(), hi.copy()


def _gaussian(
    func: str, mean: float | Sequence[float], std: float, dim: int | None
) -> tuple[np.ndarray, float]:
    """Validated mean vector (dim,) and std > 0; dim defaults to len(mean)."""
    mu = _vector(func, "mean", mean)
    if dim is not None:
        dim = _positive_int(func, "dim", dim)
        if mu.size not in (1, dim):
            raise ValueError(
                f"{func}: mean must be a scalar or have length dim={dim}, got {mean!r}"
            )
        mu = np.broadcast_to(mu, (dim,)).copy()
    return mu, _scalar(func, "std", std, positive=True)


def _degree_text(degrees: Sequence[int]) -> str:
    return str(degrees[0]) if len(set(degrees)) == 1 else str(tuple(degrees))


def _tensor(
    nodes: Sequence[np.ndarray], weights: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Tensor product of 1-D rules: points (M, d) and normalised weights (M,)."""
    points = np.stack([g.ravel() for g in np.meshgrid(*nodes, indexing="ij")], axis=1)
    w = np.ones(1)
    for wi in weights:
        w = np.multiply.outer(w, wi).ravel()
    return points, w / w.sum()


# --- samplers ----------------------------------------------------------------------------


def _sample_uniform_box(
    lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator, size: int
) -> np.ndarray:
    return rng.uniform(lo, hi, size=(size, lo.size))


def _sample_gaussian(
    mean: np.ndarray, std: float, rng: np.random.Generator, size: int
) -> np.ndarray:
    return mean + std * rng.standard_normal((size, mean.size))


def _sample_sphere(dim: int, rng: np.random.Generator, size: int) -> np.ndarray:
    z = rng.standard_normal((size, dim))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def _sample_circle_angles(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.uniform(0.0, 2.0 * np.pi, size=(size, 1))


def _sample_empirical(
    points: np.ndarray, weights: np.ndarray, rng: np.random.Generator, size: int
) -> np.ndarray:
    return points[rng.choice(points.shape[0], size=size, p=weights)]


# --- constructors ------------------------------------------------------------------------


def _tensor_rule(
    name: str, nodes: list[np.ndarray], rules: list, ns: list[int], sampler: Sampler
) -> DataQuadrature:
    """The tensor product of 1-D Gauss rules (nodes mapped, weights from rules)."""
    points, weights = _tensor(nodes, [w for _, w in rules])
    return DataQuadrature(
        name=name,
        points=points,
        weights=weights,
        sampler=sampler,
        exact_degree=(
            f"polynomials of degree <= {_degree_text([2 * k - 1 for k in ns])} per coordinate"
        ),
    )


def gauss_legendre(
    lower: float | Sequence[float], upper: float | Sequence[float], n: int | Sequence[int]
) -> DataQuadrature:
    """Tensor Gauss-Legendre rule for the uniform law on prod_i [lower_i, upper_i].

    n_i nodes in coordinate i; exact for polynomials of degree <= 2 n_i - 1 in coordinate i.
    """
    lo, hi = _box("gauss_legendre", lower, upper)
    ns = _per_dim_ints("gauss_legendre", "n", n, lo.size)
    rules = [np.polynomial.legendre.leggauss(k) for k in ns]
    nodes = [0.5 * (a + b) + 0.5 * (b - a) * t for (t, _), a, b in zip(rules, lo, hi, strict=True)]
    return _tensor_rule("gauss_legendre", nodes, rules, ns, partial(_sample_uniform_box, lo, hi))


def gauss_hermite(
    mean: float | Sequence[float], std: float, n: int | Sequence[int], dim: int | None = None
) -> DataQuadrature:
    """Tensor (probabilists') Gauss-Hermite rule for N(mean, std^2 I) in dim <= 3.

    n_i nodes in coordinate i; exact for polynomials of degree <= 2 n_i - 1 in coordinate i.
    dim defaults to len(mean) (1 for a scalar mean).
    """
    mu, sigma = _gaussian("gauss_hermite", mean, std, dim)
    if mu.size > _MAX_TENSOR_DIM:
        raise ValueError(
            f"gauss_hermite: dim must be <= {_MAX_TENSOR_DIM} (tensor rules grow as n^dim), "
            f"got {mu.size}; use monte_carlo('gaussian', ...) instead"
        )
    ns = _per_dim_ints("gauss_hermite", "n", n, mu.size)
    rules = [np.polynomial.hermite_e.hermegauss(k) for k in ns]
    nodes = [m + sigma * t for (t, _), m in zip(rules, mu, strict=True)]
    return _tensor_rule("gauss_hermite", nodes, rules, ns, partial(_sample_gaussian, mu, sigma))


def circle_lattice(M: int, offset: float = 0.0) -> DataQuadrature:
    """Equispaced angles offset + 2 pi j / M, weights 1/M, for the uniform law on the circle.

    Points are angles, shape (M, 1); exact for trigonometric polynomials of degree < M.
    """
    M = _positive_int("circle_lattice", "M", M)
    angles = _scalar("circle_lattice", "offset", offset) + 2.0 * np.pi * np.arange(M) / M
    return DataQuadrature(
        name="circle_lattice",
        points=angles[:, None],
        weights=np.full(M, 1.0 / M),
        sampler=_sample_circle_angles,
        exact_degree=f"trigonometric polynomials of degree < {M}",
    )


def sphere_product(n: int) -> DataQuadrature:
    """Product rule for the uniform law on S^2 in R^3, M = 2 n^2 unit vectors.

    n Gauss-Legendre nodes in z = cos(polar angle) times 2n equispaced azimuths;
    exact for polynomials (spherical harmonics) of degree <= 2n - 1.
    """
    n = _positive_int("sphere_product", "n", n)
    z, wz = np.polynomial.legendre.leggauss(n)
    phi = np.pi * np.arange(2 * n) / n
    r = np.sqrt(1.0 - z**2)
    points = np.stack(
        [np.outer(r, np.cos(phi)).ravel(), np.outer(r, np.sin(phi)).ravel(), np.repeat(z, 2 * n)],
        axis=1,
    )
    weights = np.repeat(wz, 2 * n)
    return DataQuadrature(
        name="sphere_product",
        points=points,
        weights=weights / weights.sum(),
        sampler=partial(_sample_sphere, 3),
        exact_degree=f"polynomials (spherical harmonics) of degree <= {2 * n - 1}",
    )


def _uniform_box_law(lower: float | Sequence[float], upper: float | Sequence[float]) -> Sampler:
    return partial(_sample_uniform_box, *_box("monte_carlo", lower, upper))


def _gaussian_law(mean: float | Sequence[float], std: float, dim: int | None = None) -> Sampler:
    return partial(_sample_gaussian, *_gaussian("monte_carlo", mean, std, dim))


def _sphere_law(dim: int) -> Sampler:
    return partial(_sample_sphere, _positive_int("monte_carlo", "dim", dim))


def _sample_isotropic_gaussians(dim: int, delta: float, rng: np.random.Generator,
                                size: int) -> np.ndarray:
    y = rng.choice([-1.0, 1.0], size=size)
    x = (1.0 + delta * y)[:, None] * rng.standard_normal((size, dim))
    return np.column_stack([x, y])


def _isotropic_gaussians_law(dim: int, delta: float) -> Sampler:
    dim = _positive_int("monte_carlo", "dim", dim)
    delta = _scalar("monte_carlo", "delta", delta)
    if not 0 < delta < 1:
        raise ValueError(f"monte_carlo: delta must be in (0, 1), got {delta!r}")
    return partial(_sample_isotropic_gaussians, dim, delta)


_LAWS: dict[str, Callable[..., Sampler]] = {
    "uniform_box": _uniform_box_law,
    "gaussian": _gaussian_law,
    "sphere": _sphere_law,
    "isotropic_gaussians": _isotropic_gaussians_law,
}


def monte_carlo(law: str, M: int, seed: int, **law_params: object) -> DataQuadrature:
    """M i.i.d. samples of ``law`` with weights 1/M, reproducible from ``seed``.

    Laws and parameters: "uniform_box" (lower, upper), "gaussian" (mean, std, dim=None),
    "sphere" (dim; uniform on S^{dim-1} in R^dim), "isotropic_gaussians" (dim, delta;
    labelled pairs (x, y) as rows of length dim + 1: y = +-1 with probability 1/2 each and
    x ~ N(0, (1 + y delta)^2 I_dim), the two classes of Mei, Montanari and Nguyen).
    Exact for nothing; error O(M^-1/2).
    """
    if law not in _LAWS:
        raise ValueError(f"monte_carlo: law must be one of {sorted(_LAWS)}, got {law!r}")
    M = _positive_int("monte_carlo", "M", M)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"monte_carlo: seed must be a non-negative integer, got {seed!r}")
    params = inspect.signature(_LAWS[law]).parameters
    unknown = sorted(set(law_params) - set(params))
    missing = [k for k, p in params.items() if p.default is p.empty and k not in law_params]
    if unknown or missing:
        raise ValueError(
            f"monte_carlo: law {law!r} takes parameters {list(params)}; "
            f"unknown {unknown}, missing {missing}"
        )
    sampler = _LAWS[law](**law_params)
    return DataQuadrature(
        name="monte_carlo",
        points=sampler(np.random.default_rng(seed), M),
        weights=np.full(M, 1.0 / M),
        sampler=sampler,
        exact_degree="nothing exactly (Monte Carlo, error O(M^-1/2))",
    )


# --- data from a file --------------------------------------------------------------------


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    columns = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            try:
                columns[key] = np.asarray(data[key], dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"{path}: column {key!r} is not numeric") from None
    if "x" not in columns:
        raise ValueError(f"{path}: missing column 'x'")
    x = columns["x"]
    if x.ndim not in (1, 2):
        raise ValueError(f"{path}: column 'x' must have shape (M,) or (M, d), got {x.shape}")
    columns["x"] = x[:, None] if x.ndim == 1 else x
    return columns


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    header = [name.strip() for name in rows[0]] if rows else []
    x_names = [f"x{i}" for i in range(len(set(header) - {"w", "y"}))]
    if not x_names or set(header) - {"w", "y"} != set(x_names) or len(set(header)) < len(header):
        raise ValueError(
            f"{path}: header must name columns x0..x{{d-1}} and optionally w, y; got {header}"
        )
    body = rows[1:]
    if not body:
        raise ValueError(f"{path}: no data points")
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise ValueError(
                f"{path}: data row {i} has {len(row)} values, header has {len(header)}"
            )
    col = {}
    for j, name in enumerate(header):
        try:
            col[name] = np.array([row[j] for row in body], dtype=np.float64)
        except ValueError as err:
            raise ValueError(f"{path}: column {name!r} is not numeric ({err})") from None
    columns = {key: col[key] for key in ("w", "y") if key in col}
    columns["x"] = np.stack([col[name] for name in x_names], axis=1)
    return columns


def from_file(path: str | Path) -> DataQuadrature:
    """Data set read from ``.npz`` (arrays x, optional w, y) or ``.csv`` (header x0.., w, y).

    Weights default to uniform and are normalised to sum 1. The law is the empirical law
    sum_m w_m delta_{x_m}, which the rule integrates exactly; the sampler resamples points
    with probabilities w.
    """
    path = Path(path)
    readers = {".npz": _read_npz, ".csv": _read_csv}
    if path.suffix not in readers:
        raise ValueError(f"from_file: path must end in .npz or .csv, got {str(path)!r}")
    columns = readers[path.suffix](path)
    unknown = sorted(set(columns) - {"x", "w", "y"})
    if unknown:
        raise ValueError(f"{path}: unknown columns {unknown}; allowed are x, w, y")
    x = columns["x"]
    M = x.shape[0]
    if M == 0:
        raise ValueError(f"{path}: no data points")
    w = columns.setdefault("w", np.ones(M))
    for key, value in columns.items():
        if key != "x" and value.shape != (M,):
            raise ValueError(
                f"{path}: column {key!r} has shape {value.shape}, expected ({M},) to match x"
            )
        bad = np.flatnonzero(~np.isfinite(value.reshape(M, -1)).all(axis=1))
        if bad.size:
            raise ValueError(f"{path}: column {key!r} has a non-finite value in data row {bad[0]}")
    negative = np.flatnonzero(w < 0)
    if negative.size:
        raise ValueError(
            f"{path}: column 'w' has negative weight {w[negative[0]]} in data row "
            f"{negative[0]}; weights must be >= 0"
        )
    if w.sum() <= 0:
        raise ValueError(f"{path}: column 'w' must have a positive sum, got {w.sum()}")
    weights = w / w.sum()
    return DataQuadrature(
        name="file",
        points=x,
        weights=weights,
        sampler=partial(_sample_empirical, x, weights),
        targets=columns.get("y"),
        exact_degree="everything: the law is the empirical law of the file",
    )


def _sample_isotropic_radial(dim: int, delta: float, rng: np.random.Generator,
                             size: int) -> np.ndarray:
    y = rng.choice([-1.0, 1.0], size=size)
    return np.column_stack([(1.0 + delta * y) * np.sqrt(rng.chisquare(dim, size)), y])


def isotropic_gaussians_radial(dim: int, delta: float, n: int,
                               grid: int = 0) -> DataQuadrature:
    """The law of (xi, y) = (|x|, y) for the labelled isotropic Gaussians of
    ``monte_carlo("isotropic_gaussians", ...)``: y = +-1 (probability 1/2 each),
    xi = (1 + y delta) chi_dim. Points are rows (xi, y), 2 n (+ 2 grid) of them.

    Per class, an n-node Gauss rule for chi_dim: xi_j = (1 + y delta) sqrt(2 g_j) with g_j, w_j
    the generalised Gauss-Laguerre rule of weight g^(dim/2-1) e^-g (exact for polynomials in
    xi^2 of degree <= 2n - 1), weights w_j / 2 (normalised). grid > 0 appends, per class,
    ``grid`` equispaced evaluation points (weight 0) spanning the class's
    [1e-12, 1 - 1e-12] chi quantiles: f there comes free with f at the data (for the
    classification error, say) and changes no integral.
    """
    func = "isotropic_gaussians_radial"
    dim, n = _positive_int(func, "dim", dim), _positive_int(func, "n", n)
    delta = _scalar(func, "delta", delta)
    if not 0 < delta < 1:
        raise ValueError(f"{func}: delta must be in (0, 1), got {delta!r}")
    if isinstance(grid, bool) or not isinstance(grid, int | np.integer) or grid < 0:
        raise ValueError(f"{func}: grid must be an integer >= 0, got {grid!r}")
    g, w = roots_genlaguerre(n, 0.5 * dim - 1.0)
    lo, hi = chi.ppf([1e-12, 1.0 - 1e-12], dim)
    rows, weights = [], []
    for y in (-1.0, 1.0):
        scale = 1.0 + delta * y
        xi = np.concatenate([scale * np.sqrt(2.0 * g), scale * np.linspace(lo, hi, grid)])
        rows.append(np.column_stack([xi, np.full(xi.size, y)]))
        weights.append(np.concatenate([0.5 * w / w.sum(), np.zeros(grid)]))
    weights = np.concatenate(weights)
    return DataQuadrature(
        name=func,
        points=np.vstack(rows),
        weights=weights / weights.sum(),
        sampler=partial(_sample_isotropic_radial, dim, delta),
        exact_degree=f"polynomials in xi^2 of degree <= {2 * n - 1} per class",
    )


QUADRATURES: dict[str, Callable[..., DataQuadrature]] = {
    "gauss_legendre": gauss_legendre,
    "gauss_hermite": gauss_hermite,
    "circle_lattice": circle_lattice,
    "sphere_product": sphere_product,
    "monte_carlo": monte_carlo,
    "file": from_file,
}
