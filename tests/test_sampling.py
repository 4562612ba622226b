"""Cell-wise exact sampling of a piecewise-constant density given on a mesh."""

import itertools

import numpy as np
import pytest
from scipy import stats

from solver.model.domain import Box, Circle, Cylinder, Sphere
from solver.model.sampling import cell_masses_from_values, sample_cells, uniform_in_cells

P_FLOOR = 1e-4  # a correct sampler fails one of these checks with probability ~1e-4


def chi_square_pvalue(cells: np.ndarray, masses: np.ndarray) -> float:
    """p-value of the observed cell counts against the multinomial with the masses.

    Cells of zero mass must stay empty; they are left out of the statistic.
    """
    counts = np.bincount(cells, minlength=len(masses))
    assert np.all(counts[masses == 0] == 0)
    live = masses > 0
    expected = len(cells) * masses[live] / masses.sum()
    return float(stats.chisquare(counts[live], expected).pvalue)


def random_masses(rng, C: int, zeros: int = 2) -> np.ndarray:
    masses = rng.uniform(0.1, 3.0, C)
    masses[rng.choice(C, zeros, replace=False)] = 0.0
    return masses


# --- cell masses follow the masses ----------------------------------------------------------


def test_triangles_of_a_rectangle_reproduce_the_masses():
    """4 x 3 unit squares, each split along its diagonal: cell of a point by floor/diagonal."""
    rng = np.random.default_rng(0)
    verts = []
    for j, i in itertools.product(range(3), range(4)):
        a, b, c, d = (i, j), (i + 1, j), (i, j + 1), (i + 1, j + 1)
        verts += [[a, b, d], [a, d, c]]  # below / above the diagonal y - j = x - i
    verts = np.array(verts, dtype=float)
    masses = random_masses(rng, len(verts))
    theta = sample_cells(rng, 30_000, verts, masses, Box((0, 0), (4, 3)))
    i, j = np.floor(theta[:, 0]).astype(int), np.floor(theta[:, 1]).astype(int)
    above = (theta[:, 1] - j) > (theta[:, 0] - i)
    cells = 2 * (4 * j + i) + above
    assert chi_square_pvalue(cells, masses) > P_FLOOR
    # the same draw with the masses ignored would be far off
    assert chi_square_pvalue(cells, np.where(masses > 0, 1.0, 0.0)) < 1e-20


def test_cylinder_quads_reproduce_the_masses_and_map_to_theta():
    """A (c, z) grid meshed as the surface (c, cos z, sin z); theta = (c, z) from from_mesh."""
    rng = np.random.default_rng(1)
    cylinder = Cylinder(-1.0, 1.0)
    cs, zs = np.linspace(-1, 1, 5), np.linspace(-np.pi, np.pi, 9)

    def X(c, z):
        return [c, np.cos(z), np.sin(z)]

    verts = np.array([[X(cs[a], zs[b]), X(cs[a + 1], zs[b]), X(cs[a], zs[b + 1]),
                       X(cs[a + 1], zs[b + 1])] for b in range(8) for a in range(4)])
    masses = random_masses(rng, len(verts), zeros=3)
    theta = sample_cells(rng, 30_000, verts, masses, cylinder)
    assert np.all(cylinder.contains(theta))
    a = np.minimum(np.floor((theta[:, 0] + 1) / 0.5).astype(int), 3)
    b = np.minimum(np.floor((theta[:, 1] + np.pi) / (np.pi / 4)).astype(int), 7)
    assert chi_square_pvalue(4 * b + a, masses) > P_FLOOR


def icosahedron() -> np.ndarray:
    """The 20 faces of the regular icosahedron inscribed in the unit sphere, (20, 3, 3)."""
    phi = (1 + np.sqrt(5)) / 2
    base = [(0, s1, s2 * phi) for s1 in (-1, 1) for s2 in (-1, 1)]
    pts = np.array([np.roll(p, r) for p in base for r in range(3)], dtype=float)
    faces = [f for f in itertools.combinations(range(12), 3)
             if all(abs(np.linalg.norm(pts[i] - pts[j]) - 2) < 1e-9
                    for i, j in itertools.combinations(f, 2))]
    assert len(faces) == 20
    return pts[np.array(faces)] / np.linalg.norm(pts[0])


def test_icosahedron_triangles_sample_onto_the_sphere_by_mass():
    rng = np.random.default_rng(2)
    verts = icosahedron()
    masses = random_masses(rng, 20)
    theta = sample_cells(rng, 20_000, verts, masses, Sphere(3))
    np.testing.assert_allclose(np.linalg.norm(theta, axis=1), 1.0, atol=1e-14)
    # the face a point came from: the ray through it meets that face (all barycentrics >= 0)
    coeffs = np.linalg.inv(np.transpose(verts, (0, 2, 1))) @ theta.T  # (20, 3, n)
    inside = np.all(coeffs >= -1e-12, axis=1)
    assert np.all(inside.sum(axis=0) >= 1)
    assert chi_square_pvalue(np.argmax(inside, axis=0), masses) > P_FLOOR


def test_circle_polygon_intervals_sample_angles_by_mass():
    rng = np.random.default_rng(3)
    angles = np.linspace(-np.pi, np.pi, 7)
    pts = np.column_stack([np.cos(angles), np.sin(angles)])
    verts = np.stack([pts[:-1], pts[1:]], axis=1)
    masses = random_masses(rng, 6, zeros=1)
    theta = sample_cells(rng, 20_000, verts, masses, Circle())
    assert theta.shape == (20_000, 1) and np.all(Circle().contains(theta))
    cells = np.minimum(np.floor((theta[:, 0] + np.pi) / (np.pi / 3)).astype(int), 5)
    assert chi_square_pvalue(cells, masses) > P_FLOOR


# --- uniform inside a cell ------------------------------------------------------------------


def ks_pvalue(sample: np.ndarray, cdf) -> float:
    return float(stats.kstest(sample, cdf).pvalue)


def test_uniform_in_an_interval_and_a_triangle_and_a_tetrahedron():
    rng = np.random.default_rng(4)
    n = 20_000
    x = uniform_in_cells(rng, np.array([[[1.0], [3.0]]]), "interval", np.zeros(n, int))[:, 0]
    assert ks_pvalue((x - 1) / 2, stats.uniform.cdf) > P_FLOOR
    # barycentric coordinates of a uniform point in a k-simplex: each ~ Beta(1, k)
    for k, cell_type in ((2, "triangle"), (3, "tetrahedron")):
        simplex = rng.normal(size=(k + 1, k))
        X = uniform_in_cells(rng, simplex[None], cell_type, np.zeros(n, int))
        T = (simplex[1:] - simplex[0]).T
        lam = np.linalg.solve(T, (X - simplex[0]).T).T
        lam = np.column_stack([1 - lam.sum(axis=1), lam])
        assert np.all(lam >= -1e-9)
        for j in range(k + 1):
            assert ks_pvalue(lam[:, j], stats.beta(1, k).cdf) > P_FLOOR / (k + 1)


def multilinear(ref: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """The bilinear/trilinear map written out (independently of the module)."""
    t = ref.shape[1]
    out = np.zeros((len(ref), verts.shape[1]))
    for a in range(2**t):
        w = np.ones(len(ref))
        for j in range(t):
            w *= ref[:, j] if (a >> j) & 1 else 1 - ref[:, j]
        out += w[:, None] * verts[a]
    return out


def exact_moments(verts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the uniform law on a quad/hex cell (also a surface quad), by
    Gauss-Legendre on the reference cell with the volume element from finite differences."""
    t = int(np.log2(len(verts)))
    g, w = np.polynomial.legendre.leggauss(12)
    g, w = (g + 1) / 2, w / 2
    ref = np.array(list(itertools.product(g, repeat=t)))
    wq = np.prod(np.array(list(itertools.product(w, repeat=t))), axis=1)
    h = 1e-6
    J = np.stack([(multilinear(ref + h * e, verts) - multilinear(ref - h * e, verts)) / (2 * h)
                  for e in np.eye(t)], axis=2)
    vol = np.sqrt(np.linalg.det(np.einsum("ngi,ngj->nij", J, J))) * wq
    X = multilinear(ref, verts)
    mean = vol @ X / vol.sum()
    cov = (X - mean).T @ ((X - mean) * vol[:, None]) / vol.sum()
    return mean, cov


@pytest.mark.parametrize(
    ("cell_type", "verts"),
    [
        ("quadrilateral", [[0, 0], [2, 0], [0, 1], [1.5, 2]]),            # a trapezoid-ish quad
        ("quadrilateral", [[0, 0], [2, 0.5], [0.5, 1], [2.5, 1.5]]),     # a parallelogram
        ("quadrilateral", [[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.8]]),  # a saddle in R^3
        ("hexahedron", [[0, 0, 0], [1, 0, 0], [0, 1, 0], [1.5, 1.2, 0],
                        [0, 0, 1], [1, 0, 1.5], [0, 1, 1], [1, 1, 1]]),
    ],
    ids=["quad", "parallelogram", "surface-quad", "hex"],
)
def test_uniform_in_tensor_cells_has_the_exact_moments(cell_type, verts):
    """Mean and covariance of the draws match those of the uniform law on the cell (5 sigma);
    tensor-uniform points without the |J| correction fail this for the non-affine cells."""
    rng = np.random.default_rng(5)
    verts = np.array(verts, dtype=float)
    n = 40_000
    X = uniform_in_cells(rng, verts[None], cell_type, np.zeros(n, int))
    mean, cov = exact_moments(verts)
    sd = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(X.mean(axis=0) - mean) <= 5 * sd + 1e-12)
    fourth = ((X - mean) ** 2).std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(X.var(axis=0) - np.diag(cov)) <= 5 * fourth + 1e-12)
    naive = multilinear(rng.uniform(size=(n, len(verts).bit_length() - 1)), verts)
    if cell_type != "quadrilateral" or not np.allclose(verts[0] + verts[3], verts[1] + verts[2]):
        assert np.any(np.abs(naive.mean(axis=0) - mean) > 5 * sd)


# --- errors -------------------------------------------------------------------------------


TRIANGLES = np.array([[[0, 0], [1, 0], [0, 1]], [[1, 0], [1, 1], [0, 1]]], dtype=float)


@pytest.mark.parametrize(
    ("masses", "kwargs", "match"),
    [
        ([1.0, -0.5], {}, r"initial: cell masses .* >= 0; cell 1 has -0.5"),
        ([np.nan, 1.0], {}, r"initial: cell masses .*finite"),
        ([0.0, 0.0], {}, r"initial: .*sum to 0"),
        ([1.0], {}, r"initial: cell masses must have shape \(2,\)"),
        ([1.0, 1.0], {"cell_type": "quadrilateral"}, "initial: a quadrilateral has 4"),
        ([1.0, 1.0], {"cell_type": "prism"}, "initial: unknown cell type"),
        ([1.0, 1.0], {"n": 0}, "initial: number of particles"),
    ],
)
def test_sample_cells_rejects_bad_input(masses, kwargs, match):
    n = kwargs.pop("n", 10)
    with pytest.raises(ValueError, match=match):
        sample_cells(np.random.default_rng(0), n, TRIANGLES, np.array(masses), Box((0, 0), (1, 1)),
                     **kwargs)


def test_sample_cells_checks_the_mesh_against_the_domain():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="initial: triangle cells have dimension 2"):
        sample_cells(rng, 5, np.pad(TRIANGLES, ((0, 0), (0, 0), (0, 1))), np.ones(2),
                     Box((0, 0, 0), (1, 1, 1)))
    with pytest.raises(ValueError, match="initial: cell vertices have 2 coordinates"):
        sample_cells(rng, 5, TRIANGLES, np.ones(2), Sphere(3))
    with pytest.raises(ValueError, match="initial: cells with 5 vertices"):
        sample_cells(rng, 5, np.zeros((1, 5, 2)), np.ones(1), Box((0, 0), (1, 1)))


def test_cell_masses_from_values():
    np.testing.assert_allclose(cell_masses_from_values([1.0, 0.0, 2.0], [0.5, 1.0, 0.25]),
                               [0.5, 0.0, 0.5])
    with pytest.raises(ValueError, match=r"initial: cell values .* >= 0; cell 1 has -1"):
        cell_masses_from_values([1.0, -1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="initial: cell volumes must be finite and > 0"):
        cell_masses_from_values([1.0, 1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="initial: cell values"):
        cell_masses_from_values([1.0, 1.0], [1.0])
