"""The two-radii reduction (solver/model/reduction.py, ``radial_u``; issue 16): data invariant
under the rotations within U and within U^perp, theta_red = (c, |w_U|, |w_perp|), the double
direction average s_red against brute-force Monte Carlo of sigma(<w, x>) in small d, its
gradients, the walls a = 0 and q = 0, the (alpha, beta) table, the reduced loss against a
full-d Monte Carlo loss, a short reduced PDE, and examples/anisotropic_gaussians.py."""

import json
from pathlib import Path

import numpy as np
import pytest

from solver.model import functionals, reduction


def _random_unit_vectors(rng, n, m):
    v = rng.standard_normal((n, m))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _brute_force(unit, ru, rp, c, a, q, rng, n):
    """sigma(<w, x>) for x = (ru e_1, rp e_(k+1)) fixed and w = (a u_U, q u_perp), u_U,
    u_perp uniform on the unit spheres of U and U^perp (n draws): (mean, standard error) of
    c sigma and of its derivatives in c, |w_U| = a and |w_perp| = q."""
    k, d = unit.k, unit.d
    uu, up = _random_unit_vectors(rng, n, k), _random_unit_vectors(rng, n, d - k)
    w = np.hstack([a * uu, q * up])
    x = np.zeros(d)
    x[0], x[k] = ru, rp
    z = w @ x
    s, ds = unit.activation.f(z), unit.activation.df(z)
    samples = [c * s, s, c * ds * ru * uu[:, 0], c * ds * rp * up[:, 0]]
    return np.array([[v.mean(), v.std() / np.sqrt(n)] for v in samples])


@pytest.mark.parametrize("d, k", [(6, 2), (6, 3), (6, 1), (5, 3)])
@pytest.mark.parametrize("activation", ["relu", "mmn_piecewise_linear"])
def test_double_average_is_the_rotation_average(d, k, activation):
    """Values and gradients (c, a, q) within 5 standard errors of 2e5 random rotations of w,
    at random (r_U, r_perp, c, a, q); the composite rule (no table)."""
    unit = reduction.TwoRadiiRidgeUnit(d, k, activation)
    rng = np.random.default_rng(10 * d + k)
    for _ in range(3):
        ru, rp = np.sqrt(rng.chisquare(k)), np.sqrt(rng.chisquare(d - k))
        c, a, q = rng.normal(), rng.uniform(0.1, 1.5), rng.uniform(0.1, 1.5)
        mc = _brute_force(unit, ru, rp, c, a, q, rng, 200_000)
        x, theta = np.array([[ru, rp]]), np.array([[c, a, q]])
        got = np.concatenate([unit.values(x, theta)[0], unit.gradients(x, theta)[0, 0]])
        assert np.all(np.abs(got - mc[:, 0]) <= 5 * mc[:, 1] + 1e-12), (got, mc)


@pytest.mark.parametrize("output", [None, 1.0])
def test_gradients_fused_output_and_walls(output):
    """Finite differences; the fused output/vjp; ds/da = 0 at a = 0 and ds/dq = 0 at q = 0,
    and both vanish linearly towards the walls (s_red is even in a and in q)."""
    unit = reduction.TwoRadiiRidgeUnit(7, 3, "mmn_piecewise_linear", output)
    rng = np.random.default_rng(1)
    x = np.column_stack([np.sqrt(rng.chisquare(3, 20)), np.sqrt(rng.chisquare(4, 20)),
                         rng.choice([-1.0, 1.0], 20)])  # a label column is ignored
    theta = np.column_stack([rng.normal(size=(7, unit.param_dim - 2)),
                             rng.uniform(0.05, 1.5, (7, 2))])
    assert unit.check_gradient(x, theta, rtol=1e-6) < 1e-5
    v, weights = rng.normal(size=20), rng.random(7)
    f, vjp = unit.output_and_vjp(x, theta, weights)
    np.testing.assert_allclose(f, unit.values(x, theta) @ weights, rtol=1e-13)
    np.testing.assert_allclose(vjp(v), np.einsum("m,mqk->qk", v, unit.gradients(x, theta)),
                               rtol=1e-12, atol=1e-15)
    for col in (-2, -1):  # a, q
        g = {}
        for eps in (0.0, 1e-6, 1e-4):
            at = theta.copy()
            at[:, col] = eps
            g[eps] = np.abs(unit.gradients(x, at)[:, :, col])
        assert np.all(g[0.0] == 0.0)
        # linear in eps: 100 times smaller at 1e-6 than at 1e-4
        assert np.all(np.abs(g[1e-6] - 1e-2 * g[1e-4]) <= 1e-4 * g[1e-4] + 1e-15), col
        assert g[1e-4].max() > 1e-6


def test_outer_rule_converged_and_table():
    """d = 40, s0 = 8, sigma*: the composite rule at its nodes agrees with twice the nodes to
    1e-12; the (alpha, beta) table agrees with the rule within its recorded error, which is
    below 1e-3 (step 0.1)."""
    unit = reduction.TwoRadiiRidgeUnit(40, 8, "mmn_piecewise_linear", table=(8.0, 8.0),
                                       table_step=0.1)
    rng = np.random.default_rng(2)
    a, b = rng.uniform(0, 8, 300), rng.uniform(0, 8, 300)
    n = unit.nodes
    rule = np.stack(unit._double(a, b, False, n) + unit._double(a, b, True, n))
    fine = np.stack(unit._double(a, b, False, 2 * n) + unit._double(a, b, True, 2 * n))
    assert np.abs(rule - fine).max() <= 1e-11 * 56.25
    assert np.abs(rule[:3] - fine[:3]).max() <= 1e-12 * 10
    table = np.stack((*unit.double_averages(a, b), unit.double_square(a, b)))
    assert unit.table_error < 1e-3
    assert np.abs(table - rule).max() <= 2 * unit.table_error
    # outside the box the rule is used
    out = np.array([9.0, 20.0])
    np.testing.assert_array_equal(unit.double_averages(out, out)[0],
                                  unit._double(out, out, False)[0])


def _law(d, k, delta=0.5):
    return reduction.DataLaw(d, k, classes=(
        reduction.GaussianClass(0.5, 1.0, 1.0 + delta, 1.0),
        reduction.GaussianClass(0.5, -1.0, 1.0 - delta, 1.0)), labelled=True, radial_u=True)


def test_reduced_data_and_initial_density():
    """The reduced rule integrates r_U^2, r_perp^2 and r_U^4 of each class exactly; reduce()
    of full draws; LiftedGaussian's density of (|w_U|, |w_perp|) against its lift."""
    law = _law(7, 3)
    data = reduction.reduced_quadrature(law, 12, 12)
    w, p = data.weights, data.points
    for y, su in ((1.0, 1.5), (-1.0, 0.5)):
        sel = p[:, 2] == y
        np.testing.assert_allclose(2 * w[sel] @ p[sel, 0] ** 2, 3 * su**2, rtol=1e-12)
        np.testing.assert_allclose(2 * w[sel] @ p[sel, 0] ** 4, 15 * su**4, rtol=1e-12)
        np.testing.assert_allclose(2 * w[sel] @ p[sel, 1] ** 2, 4.0, rtol=1e-12)
    rng = np.random.default_rng(3)
    x = law.sample(rng, 5)
    np.testing.assert_allclose(law.reduce(x), np.column_stack([
        np.linalg.norm(x[:, :3], axis=1), np.linalg.norm(x[:, 3:7], axis=1), x[:, 7]]))
    rho = reduction.LiftedGaussian(7, 3, False, 0.0, 0.3, 0.2, radial_u=True)
    assert rho.dim == 2
    theta = rho.full().sample(rng, 100_000)
    red = np.column_stack([np.linalg.norm(theta[:, :3], axis=1),
                           np.linalg.norm(theta[:, 3:], axis=1)])
    from scipy.stats import kstest

    assert kstest(red[:, 0], lambda a: reduction.chi.cdf(a / 0.3, 3)).pvalue > 1e-3
    assert kstest(red[:, 1], lambda q: reduction.chi.cdf(q / 0.2, 4)).pvalue > 1e-3
    a, q = np.meshgrid(np.linspace(0, 2, 401), np.linspace(0, 1.5, 301), indexing="ij")
    dens = rho.pdf(np.column_stack([a.ravel(), q.ravel()]))
    assert abs(dens.sum() * (2 / 400) * (1.5 / 300) - 1.0) < 1e-4
    from solver.model.domain import Box

    assert abs(rho.mass_in(Box((0.0, 0.0), (0.5, 0.4))) - reduction.chi.cdf(
        0.5 / 0.3, 3) * reduction.chi.cdf(0.4 / 0.2, 4)) < 1e-14
    with pytest.raises(ValueError, match="radial_u"):
        reduction.LiftedGaussian(7, 3, False, 0.1, 0.3, 0.2, radial_u=True)


def test_reduced_loss_is_the_full_loss():
    """An invariant rho_0 (|w_U| = 0.5 chi_3, |w_perp| = 0.25 chi_4 in d = 7) and the two
    classes: the reduced loss (Gauss rules in (a, q) and in (r_U, r_perp)) equals a Monte
    Carlo estimate of the full-d loss 1/2 E[(f(x) - y)^2] within 5 standard errors; there
    f(x) = E sigma*(Z sqrt(0.25 |x_U|^2 + 0.0625 |x_perp|^2)) exactly (Gauss-Hermite in Z)."""
    d, k, sa, sq = 7, 3, 0.5, 0.25
    law = _law(d, k)
    unit = reduction.TwoRadiiRidgeUnit(d, k, "mmn_piecewise_linear", 1.0)
    data = reduction.reduced_quadrature(law, 12, 12)
    ga, wa = reduction._laguerre_rule(10, 0.5 * k - 1)
    gq, wq = reduction._laguerre_rule(10, 0.5 * (d - k) - 1)
    A, Q = np.meshgrid(sa * np.sqrt(2 * ga), sq * np.sqrt(2 * gq), indexing="ij")
    W = np.outer(wa / wa.sum(), wq / wq.sum()).ravel()
    f_red = unit.values(data.points, np.column_stack([A.ravel(), Q.ravel()])) @ W
    loss_red = 0.5 * data.weights @ (f_red - data.points[:, 2]) ** 2

    rng = np.random.default_rng(4)
    x = law.sample(rng, 400_000)
    scale = np.sqrt(sa**2 * np.sum(x[:, :k] ** 2, 1) + sq**2 * np.sum(x[:, k:d] ** 2, 1))
    z, wz = np.polynomial.hermite_e.hermegauss(200)
    f = unit.activation.f(scale[:, None] * z[None, :]) @ (wz / wz.sum())
    sample = 0.5 * (f - x[:, d]) ** 2
    se = sample.std() / np.sqrt(sample.size)
    assert abs(loss_red - sample.mean()) <= 5 * se, (loss_red, sample.mean(), se)


def test_ridge_problem_radial_u():
    red = reduction.ridge_problem("relu", 7, 3, law=_law(7, 3), output=1.0, test_points=20,
                                  nodes_u=6, nodes_r=6, radial_u=True, table_step=None,
                                  a_max=2.5, q_max=2.0, w_std=0.3)
    assert red.reduced.unit.param_names == ("a", "q")
    assert red.reduced.domain.lower == (0.0, 0.0) and red.reduced.domain.upper == (2.5, 2.0)
    x = red.full.data.points
    np.testing.assert_allclose(red.reduced.data.points[red.test], red.law.reduce(x))
    theta = red.full.sample_initial(np.random.default_rng(5), 4)
    np.testing.assert_allclose(red.reduce_params(theta), np.column_stack([
        np.linalg.norm(theta[:, :3], axis=1), np.linalg.norm(theta[:, 3:], axis=1)]))
    with pytest.raises(ValueError, match="radial_u"):
        reduction.ridge_problem("relu", 7, 3, law=_law(7, 3), test_points=5)
    with pytest.raises(ValueError, match="piecewise linear"):
        reduction.TwoRadiiRidgeUnit(7, 3, "tanh")


@pytest.mark.dolfinx
def test_short_reduced_pde_conserves_mass_and_lowers_the_risk():
    """d = 40, s0 = 8, sigma*, DG1 12^2 cells, t <= 0.4: the mass stays 1, the loss falls at
    every output, dPsi/da = 0 at a = 0 and dPsi/dq = 0 at q = 0."""
    pytest.importorskip("dolfinx")
    from mpi4py import MPI

    from solver.pde.output import gather_cell_values
    from solver.pde.solve import solve
    from solver.settings import PDESettings

    red = reduction.ridge_problem(
        "mmn_piecewise_linear", 40, 8, law=_law(40, 8), output=1.0, w_std=0.8 / np.sqrt(40),
        a_max=2.5, q_max=2.5, nodes_u=8, nodes_r=8, test_points=5, radial_u=True,
        table_step=0.1, t_final=0.4)
    settings = PDESettings(cells=(12, 12), scheme="dg", degree=1, integrator="ssprk3",
                           outputs=4, snapshots=0, progress=False, max_outflow=1e-4)
    result = solve(red.reduced, settings, comm=MPI.COMM_SELF)
    polygons, values = gather_cell_values(result.scheme.rho, red.reduced.domain)
    x, y = polygons[:, :, 0], polygons[:, :, 1]
    area = 0.5 * np.abs(np.sum(x * np.roll(y, -1, 1) - np.roll(x, -1, 1) * y, axis=1))
    # the no-flux walls hold back what the discrete velocity's O(h^2) normal component
    # would carry out (boundary_outflow): the mass stays 1
    assert float(np.sum(result.steps["boundary_outflow"])) < 1e-4
    assert abs(values @ area - 1.0) < 1e-10
    loss = np.asarray(result.loss)
    assert np.all(np.diff(loss) < 0) and loss[-1] < 0.5 * loss[0], loss
    wall = np.array([[0.0, 0.7], [0.0, 1.3], [0.5, 0.0], [1.2, 0.0]])
    grad = functionals.potential_gradient(red.reduced, wall, np.asarray(result.f)[-1])
    assert np.all(grad[:2, 0] == 0.0) and np.all(grad[2:, 1] == 0.0)
    assert np.abs(grad).max() > 0.0


@pytest.mark.mpi
@pytest.mark.dolfinx
def test_anisotropic_gaussians_example_small(tmp_path):
    pytest.importorskip("dolfinx", reason="needs DOLFINx (the example solves a PDE)")
    from mpi4py import MPI

    from tests.conftest import load_example

    comm = MPI.COMM_WORLD
    out = Path(comm.bcast(str(tmp_path / "x"), root=0))
    load_example("anisotropic_gaussians").main(["--size", "small", "--output", str(out),
                                                "--no-progress"])
    s = json.loads((out / "summary.json").read_text())
    for name in ("gallery.png", "report.md", "risk.csv"):
        assert (out / name).is_file(), name
    assert s["wall_velocity"] == 0.0
    assert s["table_error"] < 1e-3
    # the risk falls (measured 2.32 -> 0.34 by t = 1) and SGD follows it: at t = 1 the
    # risk gaps were 0.070 (n = 100) and 0.027 (n = 400)
    assert s["pde_risk_final"] < 0.2 * s["pde_risk_initial"]
    gaps = s["gaps"]["|risk gap|, t=1"]
    assert gaps[1] < gaps[0] < 0.15
    # at t = 0 the SGD radii are exact draws of rho_0: KS below 2 / sqrt(n)
    for n, scale in s["ks_scale"].items():
        assert s["ks_distance"][n]["t=0"]["a"] < 2 * scale
        assert s["ks_distance"][n]["t=0"]["q"] < 2 * scale


def _toml(**unit):
    return {"name": "red2", "problem": {"t_final": 1.0},
            "unit": {"kind": "reduced_ridge", "dim": 9, "k": 3, "activation": "relu",
                     "output_weight": 1.0, "radial_u": True, **unit},
            "data": {"kind": "reduced", "nodes_u": 5, "nodes_r": 6, "scale_u": 1.5},
            "target": {"kind": "expression", "expression": "x0 - x1"},
            "domain": {"kind": "box", "lower": [0.0, 0.0], "upper": [2.5, 2.0]},
            "initial": {"kind": "lifted_gaussian", "w_std": 0.3}}


def test_toml_builds_the_radial_u_problem_of_ridge_problem():
    from solver.config import ConfigError, parse

    law = reduction.DataLaw(9, 3, classes=(reduction.GaussianClass(1.0, 0.0, 1.5, 1.0),),
                            radial_u=True)
    red = reduction.ridge_problem("relu", 9, 3, law=law, target="x0 - x1", output=1.0,
                                  w_std=0.3, a_max=2.5, q_max=2.0, nodes_u=5, nodes_r=6,
                                  test_points=3, radial_u=True, table_step=None)
    p, q = parse(_toml(table_step=0.0)).problem, red.reduced
    assert p.unit.param_names == q.unit.param_names == ("a", "q")
    assert p.unit.table is None
    np.testing.assert_array_equal(p.data.points, q.data.points[:p.data.size])
    np.testing.assert_allclose(p.data.weights, q.data.weights[:p.data.size], rtol=1e-14)
    theta = np.array([[0.3, 0.9], [1.0, 0.2]])
    np.testing.assert_array_equal(p.initial.pdf(theta), q.initial.pdf(theta))
    np.testing.assert_array_equal(p.unit.values(p.data.points, theta),
                                  q.unit.values(p.data.points, theta))
    tabled = parse(_toml()).problem
    np.testing.assert_allclose(tabled.unit.table, p.data.points[:, :2].max(axis=0) * [2.5, 2.0])
    with pytest.raises(ConfigError, match="a = \\|P_U w\\| >= 0"):
        raw = _toml()
        raw["domain"] = {"kind": "box", "lower": [-1.0, 0.0], "upper": [2.5, 2.0]}
        parse(raw)
    with pytest.raises(ConfigError, match="only with radial_u"):
        parse(_toml(radial_u=False, k=1, table_step=0.1))


def test_sphere_law_radial_u_rule():
    """Uniform sphere |x| = R, radial_u: s = r_U^2 / R^2 ~ Beta(k/2, (d-k)/2) (mean k/d,
    E s^2 = k (k + 2) / (d (d + 2))) and r_U^2 + r_perp^2 = R^2 at every node."""
    law = reduction.DataLaw(9, 3, "sphere", radial_u=True)
    data = reduction.reduced_quadrature(law, 8)
    s = data.points[:, 0] ** 2 / 9.0
    np.testing.assert_allclose(data.weights @ s, 3 / 9, rtol=1e-13)
    np.testing.assert_allclose(data.weights @ s**2, 3 * 5 / (9 * 11), rtol=1e-13)
    np.testing.assert_allclose(data.points[:, 0] ** 2 + data.points[:, 1] ** 2, 9.0, rtol=1e-13)
    x = law.sample(np.random.default_rng(6), 4)
    np.testing.assert_allclose(np.sum(law.reduce(x) ** 2, axis=1), 9.0, rtol=1e-13)
