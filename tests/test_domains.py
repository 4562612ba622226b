"""Parameter domains and initial densities on them (numpy only)."""

import numpy as np
import pytest
from scipy import stats

from solver.model import density, quadrature, targets, units
from solver.model.density import (
    Gaussian,
    GaussianMixture,
    Uniform,
    UniformSphere,
    VonMisesFisher,
)
from solver.model.domain import Box, Circle, Cylinder, Disc, Sphere, wrap_angle
from solver.model.problem import Problem

RNG_SEED = 20240611


def _theta(domain, rng, n=50):
    """Random points of the domain's canonical chart."""
    if isinstance(domain, Sphere):
        return UniformSphere(domain.ambient_dim).sample(rng, n)
    box = domain.bounding_box()
    theta = rng.uniform(box.lower, box.upper, size=(n, domain.param_dim))
    return theta[domain.contains(theta)]


DOMAINS = [Box((-1.0, -2.0), (3.0, 1.0)), Disc((0.5, -1.0), 2.0), Circle(), Cylinder(-3.0, 2.0),
           Sphere(3), Sphere(7)]


@pytest.mark.parametrize("domain", DOMAINS, ids=lambda d: f"{d.kind}{d.param_dim}")
def test_mesh_round_trip_and_dimensions(domain):
    theta = _theta(domain, np.random.default_rng(RNG_SEED))
    X = domain.to_mesh(theta)
    assert X.shape == (len(theta), domain.embedding_dim)
    np.testing.assert_allclose(domain.from_mesh(X), theta, atol=1e-13)
    assert domain.contains(theta).all()
    assert domain.manifold_dim <= domain.embedding_dim


@pytest.mark.parametrize("domain", [Circle(), Cylinder(-1.0, 1.0), Sphere(3)],
                         ids=lambda d: d.kind)
def test_points_inside_a_curved_mesh_project(domain):
    """Cell midpoints of an inscribed polygon sit inside the curved domain: they project."""
    theta = _theta(domain, np.random.default_rng(1))
    X = domain.to_mesh(theta)
    X[:, -2:] *= 0.97  # pull the circular coordinates towards the axis
    if isinstance(domain, Sphere):
        X = 0.97 * domain.to_mesh(theta)
    np.testing.assert_allclose(domain.from_mesh(X), theta, atol=1e-13)


def _test_function(domain):
    """A smooth F(theta) with its theta-gradient."""
    a = np.arange(1.0, domain.param_dim + 1)

    def F(theta):
        return np.sin(theta @ a) + 0.5 * (theta @ a) ** 2

    def grad(theta):
        s = theta @ a
        return (np.cos(s) + s)[:, None] * a

    return F, grad


@pytest.mark.parametrize("domain", DOMAINS, ids=lambda d: f"{d.kind}{d.param_dim}")
def test_tangent_gradient_is_the_riemannian_gradient(domain):
    """<G, v> = d/ds F(from_mesh(X + s v)) for tangent v, and G is tangent."""
    rng = np.random.default_rng(2)
    theta = _theta(domain, rng, 20)
    # keep angles away from the branch cut so finite differences do not wrap
    if isinstance(domain, Circle | Cylinder):
        theta[:, -1] = np.clip(theta[:, -1], -3.0, 3.0)
    F, grad = _test_function(domain)
    G = domain.tangent_gradient(theta, grad(theta))
    X = domain.to_mesh(theta)
    assert G.shape == X.shape
    if isinstance(domain, Circle):
        normal = X
    elif isinstance(domain, Cylinder):
        normal = np.column_stack([np.zeros(len(X)), X[:, 1:]])
    elif isinstance(domain, Sphere):
        normal = X
    else:
        normal = np.zeros_like(X)
    np.testing.assert_allclose(np.sum(G * normal, axis=1), 0, atol=1e-12)
    # random tangent directions
    v = rng.standard_normal(X.shape)
    v -= np.sum(v * normal, axis=1, keepdims=True) * normal / np.maximum(
        np.sum(normal**2, axis=1, keepdims=True), 1e-300)
    h = 1e-5
    dF = (F(domain.from_mesh(X + h * v)) - F(domain.from_mesh(X - h * v))) / (2 * h)
    np.testing.assert_allclose(np.sum(G * v, axis=1), dF, rtol=1e-6, atol=1e-6)


def test_sphere_projects_velocities_and_normalises():
    sphere = Sphere(5)
    rng = np.random.default_rng(3)
    theta = UniformSphere(5).sample(rng, 40)
    v = sphere.project_velocity(theta, rng.standard_normal((40, 5)))
    np.testing.assert_allclose(np.sum(v * theta, axis=1), 0, atol=1e-14)
    moved = sphere.retract(theta + 0.1 * v)
    np.testing.assert_allclose(np.linalg.norm(moved, axis=1), 1, rtol=1e-15)
    assert sphere.contains(moved).all() and not sphere.contains(1.01 * moved).any()
    assert np.all(sphere.regulariser(theta) == 0)
    assert sphere.regulariser_gradient(theta).shape == (40, 5)


def test_retract_wraps_angles_into_minus_pi_pi():
    z = np.array([-np.pi, np.pi, 3 * np.pi, -3 * np.pi + 0.5, 7.0, 0.25])
    w = wrap_angle(z)
    assert np.all((w > -np.pi) & (w <= np.pi))
    np.testing.assert_allclose(np.cos(w), np.cos(z), atol=1e-14)
    np.testing.assert_allclose(np.sin(w), np.sin(z), atol=1e-14)
    np.testing.assert_allclose(w[[0, 1, 2, 5]], [np.pi, np.pi, np.pi, 0.25])
    np.testing.assert_allclose(Circle().retract(z[:, None])[:, 0], w)
    cyl = Cylinder(-1.0, 1.0).retract(np.column_stack([[5.0, -7.0], [4.0, -4.0]]))
    np.testing.assert_allclose(cyl, [[5.0, 4.0 - 2 * np.pi], [-7.0, -4.0 + 2 * np.pi]])


def test_regularisers():
    theta = np.array([[1.5, 2.0], [-0.5, -3.0]])
    np.testing.assert_allclose(Cylinder(-2, 2).regulariser(theta), [1.125, 0.125])
    np.testing.assert_allclose(Cylinder(-2, 2).regulariser_gradient(theta), [[1.5, 0], [-0.5, 0]])
    np.testing.assert_allclose(Disc((0, 0), 5).regulariser(theta), [3.125, 4.625])
    assert np.all(Circle().regulariser(theta[:, :1]) == 0)
    assert Circle().regulariser_gradient(theta[:, :1]).shape == (2, 1)


def test_measures_and_kinds():
    assert Disc((1, 2), 2.0).measure == pytest.approx(4 * np.pi)
    assert Circle().measure == pytest.approx(2 * np.pi)
    assert Cylinder(-1, 2).measure == pytest.approx(6 * np.pi)
    assert Sphere(3).measure == pytest.approx(4 * np.pi)
    assert Sphere(2).measure == pytest.approx(2 * np.pi)
    assert Sphere(4).measure == pytest.approx(2 * np.pi**2)
    assert [d.kind for d in DOMAINS[:5]] == ["box", "disc", "circle", "cylinder", "sphere"]
    assert Sphere(4).mesh_names == () and Sphere(3).mesh_names == ("sphere",)


@pytest.mark.parametrize("make, match", [
    (lambda: Disc((0, 0), -1.0), "radius"),
    (lambda: Disc((0, 0, 1), 1.0), "center"),
    (lambda: Cylinder(2.0, 1.0), "cylinder"),
    (lambda: Sphere(1), "ambient_dim"),
])
def test_invalid_domains_are_refused(make, match):
    with pytest.raises(ValueError, match=rf"domain: .*{match}"):
        make()


# -- densities on domains -------------------------------------------------------------


def test_gaussian_mass_in_disc_matches_polar_rule_and_monte_carlo():
    g = Gaussian([0.3, -0.2], [0.5, 0.7])
    disc = Disc((0.1, 0.2), 1.3)
    mass = g.mass_in(disc)
    polar = density.Density._mass_in_disc(g, disc)  # the generic polar product rule
    assert mass == pytest.approx(polar, abs=1e-10)
    x = g.sample(np.random.default_rng(4), 400_000)
    frac = disc.contains(x).mean()
    assert abs(frac - mass) < 4 * np.sqrt(mass * (1 - mass) / len(x))
    # a narrow Gaussian at the rim: half its mass inside
    rim = Gaussian([1.0, 0.0], [1e-3, 1e-3])
    assert rim.mass_in(Disc((0, 0), 1.0)) == pytest.approx(0.5, abs=2e-3)


def test_uniform_mass_in_disc_is_the_area_fraction():
    square = Uniform([0.0, 0.0], [1.0, 1.0])
    assert square.mass_in(Disc((0, 0), 1.0)) == pytest.approx(np.pi / 4, abs=1e-10)
    assert square.mass_in(Disc((0.5, 0.5), 0.5)) == pytest.approx(np.pi / 4, abs=1e-10)
    assert square.mass_in(Disc((0.5, 0.5), 2.0)) == pytest.approx(1.0, abs=1e-12)
    assert square.mass_in(Disc((5, 5), 1.0)) == pytest.approx(0.0, abs=1e-14)
    mix = GaussianMixture((Gaussian([0, 0], [1, 1]), Gaussian([3, 0], [0.2, 0.2])), [0.5, 0.5])
    disc = Disc((0, 0), 1.0)
    expected = 0.5 * (1 - np.exp(-0.5)) + 0.5 * Gaussian([3, 0], [0.2, 0.2]).mass_in(disc)
    assert mix.mass_in(disc) == pytest.approx(expected, abs=1e-10)  # 1 - e^{-R^2/2}


def test_mass_in_circle_and_cylinder_through_their_theta_box():
    g1 = Gaussian([0.5], [1.0])
    expected = stats.norm.cdf(np.pi, 0.5) - stats.norm.cdf(-np.pi, 0.5)
    assert g1.mass_in(Circle()) == pytest.approx(expected, rel=1e-13)
    g2 = Gaussian([0.0, 0.5], [2.0, 1.0])
    c = stats.norm.cdf(1.0, 0, 2) - stats.norm.cdf(-2.0, 0, 2)
    assert g2.mass_in(Cylinder(-2.0, 1.0)) == pytest.approx(c * expected, rel=1e-13)


@pytest.mark.parametrize("domain, initial", [
    (Disc((0.0, 0.0), 1.0), Gaussian([0.5, 0.0], [0.6, 0.6])),
    (Circle(), Gaussian([3.0], [0.5])),
    (Cylinder(-1.0, 1.0), Gaussian([0.0, -3.0], [1.0, 0.5])),
])
def test_sample_in_stays_in_the_domain(domain, initial):
    rng = np.random.default_rng(5)
    x = initial.sample_in(rng, 5000, domain)
    assert x.shape == (5000, domain.param_dim)
    assert domain.contains(x).all()


def test_sample_in_disc_has_the_truncated_distribution():
    """The fraction of draws right of x = 0.5 equals the exact mass ratio."""
    g = Gaussian([0.5, 0.0], [0.6, 0.6])
    disc = Disc((0.0, 0.0), 1.0)
    x = g.sample_in(np.random.default_rng(6), 20_000, disc)
    right = density.Density._mass_in_disc(  # mass of the disc part with x > 0.5
        _HalfPlane(g, 0.5), disc) / g.mass_in(disc)
    frac = np.mean(x[:, 0] > 0.5)
    assert abs(frac - right) < 4 * np.sqrt(right * (1 - right) / len(x))


class _HalfPlane(density.Density):
    """g restricted to x > a (unnormalised), for the generic polar rule."""

    def __init__(self, g, a):
        self.g, self.a, self.dim = g, a, 2

    def pdf(self, theta):
        return self.g.pdf(theta) * (theta[:, 0] > self.a)

    def sample(self, rng, n):
        raise NotImplementedError


def _sphere_quadrature(n=200):
    """Gauss-Legendre in cos(polar angle) x trapezoid in azimuth on S^2: points, weights."""
    u, wu = np.polynomial.legendre.leggauss(n)
    phi = 2 * np.pi * np.arange(2 * n) / (2 * n)
    U, P = np.meshgrid(u, phi, indexing="ij")
    s = np.sqrt(1 - U**2)
    pts = np.column_stack([(s * np.cos(P)).ravel(), (s * np.sin(P)).ravel(), U.ravel()])
    return pts, np.repeat(wu, 2 * n) * (np.pi / n)


@pytest.mark.parametrize("dens", [
    UniformSphere(3), VonMisesFisher([1.0, -2.0, 0.5], 0.0), VonMisesFisher([1.0, -2.0, 0.5], 4.0),
    VonMisesFisher([0.0, 0.0, 1.0], 60.0),
], ids=["uniform", "vmf0", "vmf4", "vmf60"])
def test_sphere_pdf_integrates_to_one_on_s2(dens):
    pts, w = _sphere_quadrature()
    assert w.sum() == pytest.approx(4 * np.pi, rel=1e-13)
    assert w @ dens.pdf(pts) == pytest.approx(1.0, rel=1e-10)
    assert dens.mass_in(Sphere(3)) == 1.0


def test_vmf_pdf_integrates_to_one_on_the_circle():
    a = 2 * np.pi * np.arange(4000) / 4000
    pts = np.column_stack([np.cos(a), np.sin(a)])
    vmf = VonMisesFisher([1.0, 1.0], 3.0)
    assert vmf.pdf(pts).sum() * 2 * np.pi / 4000 == pytest.approx(1.0, rel=1e-12)


def test_vmf_sampling_is_exact_on_s2():
    """w = mu.x has CDF (e^{k w} - e^{-k}) / (e^k - e^{-k}) on S^2, and E[x] = A(k) mu."""
    kappa = 3.0
    vmf = VonMisesFisher([2.0, -1.0, 2.0], kappa)
    x = vmf.sample(np.random.default_rng(7), 50_000)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, rtol=1e-14)
    w = x @ vmf.mean_direction
    cdf = lambda t: (np.exp(kappa * t) - np.exp(-kappa)) / (2 * np.sinh(kappa))  # noqa: E731
    assert stats.kstest(w, cdf).pvalue > 1e-3
    a3 = 1 / np.tanh(kappa) - 1 / kappa  # A_3 in closed form
    assert vmf.mean_resultant_length == pytest.approx(a3, rel=1e-12)
    np.testing.assert_allclose(x.mean(axis=0), a3 * vmf.mean_direction, atol=0.01)
    # the part orthogonal to mu is isotropic
    perp = x - np.outer(w, vmf.mean_direction)
    cov = perp.T @ perp / len(x)
    P = np.eye(3) - np.outer(vmf.mean_direction, vmf.mean_direction)
    np.testing.assert_allclose(cov, P * np.trace(cov) / 2, atol=0.01)


@pytest.mark.parametrize("d, kappa", [(2, 2.0), (10, 25.0), (50, 5.0)])
def test_vmf_sample_mean_in_any_dimension(d, kappa):
    mu = np.ones(d)
    vmf = VonMisesFisher(mu, kappa)
    x = vmf.sample(np.random.default_rng(8), 40_000)
    w = x @ vmf.mean_direction
    se = w.std() / np.sqrt(len(w))
    assert abs(w.mean() - vmf.mean_resultant_length) < 5 * se


def test_uniform_sphere_moments():
    x = UniformSphere(4).sample(np.random.default_rng(9), 40_000)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, rtol=1e-14)
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=0.02)
    np.testing.assert_allclose(x.T @ x / len(x), np.eye(4) / 4, atol=0.01)
    assert UniformSphere(4).pdf(x[:3]) == pytest.approx(1 / (2 * np.pi**2))
    y = UniformSphere(4).sample_in(np.random.default_rng(9), 10, Sphere(4))
    assert Sphere(4).contains(y).all()


def test_densities_refuse_the_wrong_kind_of_domain():
    with pytest.raises(ValueError, match=r"initial: Gaussian is a density on R\^3.*sphere "
                                         r"density"):
        Gaussian([0, 0, 1], [1, 1, 1]).mass_in(Sphere(3))
    with pytest.raises(ValueError, match=r"initial: VonMisesFisher .*Sphere\(ambient_dim=2\)"):
        VonMisesFisher([1, 0], 1.0).mass_in(Box((-1, -1), (1, 1)))
    with pytest.raises(ValueError, match=r"initial: UniformSphere.*Sphere"):
        UniformSphere(2).sample_in(np.random.default_rng(0), 3, Circle())
    with pytest.raises(ValueError, match=r"initial: density lives in R\^4.*3 entries"):
        VonMisesFisher([1, 0, 0, 0], 1.0).mass_in(Sphere(3))
    with pytest.raises(ValueError, match=r"initial: density has dimension 2"):
        Gaussian([0, 0], [1, 1]).mass_in(Circle())
    with pytest.raises(ValueError, match=r"initial\.kappa"):
        VonMisesFisher([1, 0], -1.0)
    with pytest.raises(ValueError, match=r"initial\.mean_direction"):
        VonMisesFisher([0, 0], 1.0)


def _circle_rbf_parts():
    unit = units.CircleRBFUnit(0.5)
    return unit, quadrature.circle_lattice(16), targets.TeacherTarget(unit, [[1.0, 0.5]])


def test_problem_on_a_disc_checks_the_initial_mass():
    unit, data, target = _circle_rbf_parts()
    ok = Problem(unit, data, target, Disc((0.0, 0.0), 3.0), Gaussian([0, 0], [0.5, 0.5]))
    theta = ok.sample_initial(np.random.default_rng(1), 100)
    assert ok.domain.contains(theta).all()
    with pytest.raises(ValueError, match=r"domain: .* outside the disc center=\[0.0, 0.0\], "
                                         r"radius=1.0"):
        Problem(unit, data, target, Disc((0.0, 0.0), 1.0), Gaussian([0, 0], [0.5, 0.5]))
    with pytest.raises(ValueError, match=r"domain: has dimension 3 .* 2 parameters; choose"):
        Problem(unit, data, target, Sphere(3), Gaussian([0, 0], [0.5, 0.5]))
    with pytest.raises(ValueError, match=r"domain: .*lower=\[-1.0, -1.0\]"):
        Problem(unit, data, target, Box((-1.0, -1.0), (1.0, 1.0)), Gaussian([0, 0], [1, 1]))
