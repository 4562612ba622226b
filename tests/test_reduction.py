"""The symmetry reduction of ridge networks (solver/model/reduction.py): the reduced unit
against Monte-Carlo averages over rotations in small d, its gradients, the converged rules,
RadialRidgeUnit as the case k = 0, the no-flux wall q = 0, rho_0 and its lift, and a short
reduced-PDE run against the full-d particles."""

import numpy as np
import pytest
from scipy.stats import kstest, norm

from solver.model import functionals, quadrature, reduction, units


def _mc_rotation_average(unit, x_red, theta, rng, n):
    """c sigma(a . x_U + q r v_1) for n directions v uniform on S^(m-1): (mean, standard
    error) of the value and of the gradient in (c, a, q)."""
    k, m = unit.k, unit.d - unit.k
    c0 = int(unit.output_weight is None)
    c = theta[0] if c0 else unit.output_weight
    a, q = theta[c0:c0 + k], theta[-1]
    xu, r = x_red[:k], x_red[k]
    t = reduction.BetaCosine(m).sample(rng, n)
    z = xu @ a + q * r * t
    s, ds = unit.activation.f(z), unit.activation.df(z)
    samples = [c * s]
    grads = ([s] if c0 else []) + [c * ds * xu[j] for j in range(k)] + [c * ds * r * t]
    out = np.array([[g.mean(), g.std() / np.sqrt(n)] for g in samples + grads])
    return out[0], out[1:]


@pytest.mark.parametrize("d", [3, 5, 8])
@pytest.mark.parametrize("k", [0, 1, 2])
@pytest.mark.parametrize("activation", ["tanh", "relu", "mmn_piecewise_linear"])
def test_reduced_unit_is_the_rotation_average(d, k, activation):
    """Values and gradients within 5 Monte-Carlo standard errors (2e5 directions) at random
    (x_red, theta), free output weight."""
    unit = reduction.ReducedRidgeUnit(d, k, activation)
    rng = np.random.default_rng(100 * d + 10 * k)
    for _ in range(3):
        x_red = np.concatenate([rng.normal(size=k), [abs(rng.normal()) * np.sqrt(d - k)]])
        theta = np.concatenate([[rng.normal()], rng.normal(size=k), [rng.uniform(0, 1.5)]])
        (mean, se), grads = _mc_rotation_average(unit, x_red, theta, rng, 200_000)
        value = unit.values(x_red[None], theta[None])[0, 0]
        grad = unit.gradients(x_red[None], theta[None])[0, 0]
        assert abs(value - mean) <= 5 * se + 1e-12, (value, mean, se)
        assert np.all(np.abs(grad - grads[:, 0]) <= 5 * grads[:, 1] + 1e-12), (grad, grads)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("output", [None, 0.7])
def test_reduced_unit_gradients_and_fused_output(activation, output):
    unit = reduction.ReducedRidgeUnit(6, 1, activation, output)
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.normal(size=30), np.sqrt(rng.chisquare(5, 30))])
    theta = rng.normal(size=(9, unit.param_dim))
    theta[:, -1] = rng.uniform(0.05, 1.0, 9)
    if activation == "relu":  # FD across the kinks of the closed form is not a test
        assert unit.check_gradient(x, theta, rtol=1e-4) < 1e-4
    else:
        assert unit.check_gradient(x, theta, rtol=1e-6) < 1e-6
    v, weights = rng.normal(size=30), rng.random(9)
    f, vjp = unit.output_and_vjp(x, theta, weights)
    np.testing.assert_allclose(f, unit.values(x, theta) @ weights, rtol=1e-13)
    np.testing.assert_allclose(vjp(v), np.einsum("m,mqk->qk", v, unit.gradients(x, theta)),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(unit.theta_vjp(x, theta, v), vjp(v), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("d, k", [(3, 1), (10, 1), (50, 2), (200, 1)])
def test_t_rule_is_converged_to_round_off(d, k):
    """The per-range Gauss-Jacobi rules (made as the evaluation meets q r up to 12) agree
    with a 1024-node rule to 1e-13 (values; gradients 3e-13)."""
    unit = reduction.ReducedRidgeUnit(d, k, "tanh")
    ref = reduction.ReducedRidgeUnit(d, k, "tanh", nodes=1024)
    rng = np.random.default_rng(d)
    x = np.column_stack([rng.uniform(-3, 3, (50, k)), rng.uniform(0, 6, 50)])
    theta = np.column_stack([rng.normal(size=(40, 1 + k)), rng.uniform(0, 2, 40)])
    assert np.abs(unit.values(x, theta) - ref.values(x, theta)).max() <= 1e-13
    assert np.abs(unit.gradients(x, theta) - ref.gradients(x, theta)).max() <= 3e-13
    assert len(unit.bins) == 7 and 0 < unit.nodes < 1024  # ranges up to 16 made, no more


def test_piecewise_linear_closed_form_matches_a_fine_rule():
    """relu and sigma* in closed form against 2048-node Gauss-Jacobi (slow only at kinks)."""
    for act in ("relu", "mmn_piecewise_linear"):
        exact = reduction.ReducedRidgeUnit(7, 1, act)
        assert exact.nodes == 0
        fine = reduction.ReducedRidgeUnit(7, 1, act, nodes=2048)
        x = np.array([[0.3, 1.0], [-1.0, 2.5], [2.0, 0.1], [0.0, 4.0]])
        theta = np.array([[1.0, 0.5, 0.7], [-0.4, 1.2, 0.0], [2.0, -0.3, 1.5]])
        np.testing.assert_allclose(exact.values(x, theta), fine.values(x, theta), atol=2e-6)


@pytest.mark.parametrize("d, k", [(2, 1), (3, 0), (5, 1), (8, 2)])
@pytest.mark.parametrize("activation", ["tanh", "relu", "mmn_piecewise_linear"])
@pytest.mark.parametrize("output", [None, 0.7])
def test_values_squared_is_the_rotation_average_of_the_squares(d, k, activation, output):
    """values_squared = c^2 E_t[sigma^2] (the full units' second moment, what MC needs)
    within 5 Monte-Carlo standard errors (2e5 directions); d - k = 1 is the two-point law."""
    unit = reduction.ReducedRidgeUnit(d, k, activation, output)
    assert unit.averaged
    rng = np.random.default_rng(10 * d + k)
    for _ in range(3):
        x_red = np.concatenate([rng.normal(size=k), [abs(rng.normal()) * np.sqrt(d - k)]])
        c = rng.normal() if output is None else output
        a, q = rng.normal(size=k), rng.uniform(0, 1.5)
        theta = np.concatenate([[c] if output is None else [], a, [q]])
        t = reduction.BetaCosine(d - k).sample(rng, 200_000)
        squares = (c * unit.activation.f(x_red[:k] @ a + q * x_red[k] * t)) ** 2
        mean, se = squares.mean(), squares.std() / np.sqrt(len(t))
        value = unit.values_squared(x_red[None], theta[None])[0, 0]
        assert abs(value - mean) <= 5 * se + 1e-12, (value, mean, se)
        assert value >= unit.values(x_red[None], theta[None])[0, 0] ** 2 - 1e-14  # Jensen


def test_values_squared_closed_form_and_rules():
    """The closed form of E_t sigma^2 (relu, sigma*) against 2048-node Gauss-Jacobi, the
    second moment H(c) of the cosine law against quadrature, and the converged tanh rules
    against 1024 nodes (1e-13)."""
    from scipy.integrate import quad

    x = np.array([[0.3, 1.0], [-1.0, 2.5], [2.0, 0.1], [0.0, 4.0]])
    theta = np.array([[1.0, 0.5, 0.7], [-0.4, 1.2, 0.0], [2.0, -0.3, 1.5]])
    for act in ("relu", "mmn_piecewise_linear"):
        exact = reduction.ReducedRidgeUnit(7, 1, act)
        fine = reduction.ReducedRidgeUnit(7, 1, act, nodes=2048)
        np.testing.assert_allclose(exact.values_squared(x, theta),
                                   fine.values_squared(x, theta), atol=2e-6)
    for m in (2, 3, 7, 50):
        law = reduction.BetaCosine(m)
        for c in (-0.7, 0.1, 0.9, 1.0):
            ref = quad(lambda t, m=m, law=law: t * t * law._c * (1 - t * t) ** ((m - 3) / 2),
                       -1, c)[0]
            assert abs(float(law.second_moment(np.array(c))) - ref) < 1e-10
    rng = np.random.default_rng(4)
    for d in (3, 10, 200):
        unit = reduction.ReducedRidgeUnit(d, 1, "tanh")
        ref = reduction.ReducedRidgeUnit(d, 1, "tanh", nodes=1024)
        x = np.column_stack([rng.uniform(-3, 3, 50), rng.uniform(0, 6, 50)])
        theta = np.column_stack([rng.normal(size=(40, 2)), rng.uniform(0, 2, 40)])
        assert np.abs(unit.values_squared(x, theta) - ref.values_squared(x, theta)).max() <= 1e-13


def test_reduced_mc_is_the_full_networks():
    """MC(0) of the reduced problem (functionals.mc_variance with UnitMatrix.forward_squared,
    dense and compressed, rho_0 by a Gauss rule in (a, q)) is that of the full units in R^5
    (tanh, fixed output, w ~ N(0, 0.25 I)): at the test points, against the sample variance of
    4000 full units within 5 standard errors (of the units' sampling, by 8 batches); over the
    law, against the test points' average within 5 standard errors (of the points). The
    reduced units' own variance ((E_t s)^2) is far below: 0.076 against 0.400."""
    from scipy.special import roots_genlaguerre

    from solver.model import compression

    d, w_std = 5, 0.5
    red = reduction.ridge_problem("tanh", d, 1, target="tanh(2*x0)", output=1.0,
                                  test_points=1500, nodes_u=40, nodes_r=16, w_std=w_std,
                                  seed=2)
    h, wh = np.polynomial.hermite_e.hermegauss(30)
    g, wg = roots_genlaguerre(20, 0.5 * (d - 1) - 1)
    A, Q = np.meshgrid(w_std * h, w_std * np.sqrt(2 * g), indexing="ij")
    theta = np.column_stack([A.ravel(), Q.ravel()])
    W = np.outer(wh / wh.sum(), wg / wg.sum()).ravel()
    p = red.reduced
    S = functionals.UnitMatrix(p, theta)
    f = S.forward(W)
    mc = functionals.mc_variance(p, f, S.forward_squared(W))
    compressed = compression.unit_matrix(p, theta, rtol=1e-12)
    np.testing.assert_allclose(compressed.forward_squared(W), S.forward_squared(W), rtol=1e-13)
    old = functionals.mc_variance(p, f, (p.unit.values(p.data.points, theta) ** 2) @ W)
    # the full units at the test points
    test = red.test
    per_point = S.forward_squared(W)[test] - f[test] ** 2
    rng = np.random.default_rng(5)
    batches = []
    for _ in range(8):
        Sf = red.full.unit.values(red.full.data.points, red.full.sample_initial(rng, 500))
        batches.append(np.mean(Sf.var(axis=1, ddof=1)))
    se_units = np.std(batches, ddof=1) / np.sqrt(len(batches))
    assert abs(np.mean(per_point) - np.mean(batches)) <= 5 * se_units, (
        np.mean(per_point), np.mean(batches), se_units)
    se_points = np.std(per_point, ddof=1) / np.sqrt(len(per_point))
    assert abs(mc - np.mean(per_point)) <= 5 * se_points, (mc, np.mean(per_point), se_points)
    assert abs(mc - 0.4001) < 1e-3 and abs(old - 0.0763) < 1e-3, (mc, old)


def test_memo_and_chunks_change_nothing():
    """values / values_squared with the memo (a repeated (x, theta): a copy of the stored
    array, bitwise) and over several CHUNK pieces equal the unmemoised, unchunked ones; the
    memo drops least recently used entries beyond memo_bytes."""
    rng = np.random.default_rng(8)
    x = np.column_stack([rng.normal(size=300), np.sqrt(rng.chisquare(9, 300))])
    theta = np.column_stack([rng.normal(size=(200, 2)), rng.uniform(0, 1.5, 200)])
    plain = reduction.ReducedRidgeUnit(10, 1, "tanh")
    plain.CHUNK = 10**9
    memo = reduction.ReducedRidgeUnit(10, 1, "tanh", memo_bytes=int(2.2 * 8 * 300 * 200))
    for fn in ("values", "values_squared"):
        ref = getattr(plain, fn)(x, theta)
        first = getattr(memo, fn)(x, theta)
        first[0, 0] = np.nan  # the caller's copy
        again = getattr(memo, fn)(x, theta)
        np.testing.assert_array_equal(again, ref)
    assert len(memo._memo) == 2
    memo.values(x[:10], theta)  # a third entry, within budget; a fourth drops the oldest
    memo.values(x[:150], theta)
    assert memo._memo_used <= memo.memo_bytes and len(memo._memo) == 3
    with pytest.raises(ValueError, match="memo_bytes"):
        reduction.ReducedRidgeUnit(10, 1, "tanh", memo_bytes=-1)


def test_radial_ridge_unit_is_the_case_k_0():
    """k = 0, fixed output 1, MMN's sigma*, isotropic classes: RadialRidgeUnit's values and
    gradients, and isotropic_gaussians_radial's rule."""
    d, delta = 40, 0.8
    unit = reduction.ReducedRidgeUnit(d, 0, "mmn_piecewise_linear", 1.0)
    radial = units.RadialRidgeUnit(d)
    law = reduction.DataLaw(d, 0, classes=(
        reduction.GaussianClass(0.5, -1.0, 1 - delta, 1 - delta),
        reduction.GaussianClass(0.5, 1.0, 1 + delta, 1 + delta)), labelled=True)
    rule = reduction.reduced_quadrature(law, nodes_r=40)
    old = quadrature.isotropic_gaussians_radial(d, delta, 40)
    np.testing.assert_allclose(rule.points, old.points, rtol=1e-14)
    np.testing.assert_allclose(rule.weights, old.weights, rtol=1e-12)
    r = np.linspace(0.0, 3.0, 31)[:, None]
    np.testing.assert_allclose(unit.values(rule.points, r), radial.values(old.points, r),
                               rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(unit.gradients(rule.points, r), radial.gradients(old.points, r),
                               rtol=1e-12, atol=1e-13)


def test_reduced_data_rule():
    """Gaussian: moments E x_U^4 r^4 exact; sphere (k = 2, d = 10): |x|^2 = R^2 on every row
    and E x_1^2 = R^2 / d; labelled classes carry their labels and probabilities."""
    g = reduction.reduced_quadrature(reduction.DataLaw(10, 1), 20, 20)
    assert abs(g.integrate(g.points[:, 0] ** 4 * g.points[:, 1] ** 4) - 3 * 9 * 11) < 1e-11
    s = reduction.reduced_quadrature(reduction.DataLaw(10, 2, kind="sphere"), 12)
    np.testing.assert_allclose(np.sum(s.points**2, axis=1), 10.0, rtol=1e-14)
    assert abs(s.integrate(s.points[:, 0] ** 2) - 1.0) < 1e-13
    assert abs(s.integrate(s.points[:, 0] ** 4) - 3 * 100 / (10 * 12)) < 1e-12
    law = reduction.DataLaw(6, 1, classes=(reduction.GaussianClass(0.3, -1.0, 2.0),
                                           reduction.GaussianClass(0.7, 1.0, 0.5)),
                            labelled=True)
    q = reduction.reduced_quadrature(law, 10, 10)
    assert abs(q.integrate(q.points[:, 2]) - 0.4) < 1e-14
    assert abs(q.integrate(q.points[:, 0] ** 2) - (0.3 * 4 + 0.7 * 0.25)) < 1e-13
    x = law.sample(np.random.default_rng(0), 5)
    assert law.reduce(x).shape == (5, 3) and set(x[:, -1]) <= {-1.0, 1.0}


def test_velocity_has_no_normal_component_at_q_0():
    """dPsi/dq = 0 at q = 0 for any f (E t = 0 under p_m), and odd in q."""
    red = reduction.ridge_problem("tanh", 6, 1, target="tanh(x0)", test_points=50,
                                  nodes_u=12, nodes_r=12)
    p = red.reduced
    rng = np.random.default_rng(1)
    theta = np.column_stack([rng.normal(size=(20, 2)), np.zeros(20)])
    f = rng.normal(size=p.data.size)
    grad = functionals.potential_gradient(p, theta, f)
    assert np.abs(grad[:, -1]).max() <= 1e-15 * np.abs(grad).max()
    theta[:, -1] = 0.3
    minus = theta * [1, 1, -1]
    np.testing.assert_allclose(functionals.potential_gradient(p, minus, f)[:, -1],
                               -functionals.potential_gradient(p, theta, f)[:, -1], rtol=1e-13)


def test_lifted_initial_density():
    """The reduced rho_0 has mass 1 (pdf integrates to 1 on a fine grid), and the reductions
    of draws from the full Gaussian in R^(1+d) follow it (KS tests per coordinate)."""
    red = reduction.ridge_problem("tanh", 12, 1, target="x0", a_mean=0.4, w_std=0.3,
                                  test_points=10, nodes_u=8, nodes_r=8, q_max=3.0, c_max=8.0)
    rho = red.initial
    assert abs(rho.mass_in(red.reduced.domain) - 1.0) < 1e-9
    c, a, q = np.meshgrid(np.linspace(-6, 6, 61), np.linspace(-1.5, 2.3, 61),
                          np.linspace(0, 3, 91), indexing="ij")
    pts = np.column_stack([c.ravel(), a.ravel(), q.ravel()])
    vol = (12 / 60) * (3.8 / 60) * (3 / 90)
    assert abs(rho.pdf(pts).sum() * vol - 1.0) < 1e-3
    rng = np.random.default_rng(5)
    full = red.full.sample_initial(rng, 4000)
    assert full.shape == (4000, 13)
    mine = red.reduce_params(full)
    direct = rho.sample(rng, 4000)
    for j in range(3):
        assert kstest(mine[:, j], direct[:, j]).pvalue > 1e-3
    assert abs(np.mean(mine[:, 1]) - 0.4) < 4 * 0.3 / np.sqrt(4000)


def test_reduced_f_equals_full_network_at_t0():
    """At t = 0 the full-d network of n draws from the lifted rho_0, at the full test points,
    is f_red (exact rho_0 by a Gauss rule in (a, q)) within its Monte-Carlo error: the mean
    squared gap is MC/n, MC the units' sample variance; 4 seeds, gap^2 n / MC in
    [0.25, 2.5] (chi^2 bounds for the mean of 4 seeds' gap^2)."""
    from scipy.special import roots_genlaguerre

    red = reduction.ridge_problem("tanh", 5, 1, target="tanh(2*x0)", output=1.0,
                                  test_points=400, nodes_u=10, nodes_r=10, w_std=0.5)
    h, wh = np.polynomial.hermite_e.hermegauss(40)
    g, wg = roots_genlaguerre(40, 0.5 * 4 - 1)
    A, Q = np.meshgrid(0.5 * h, 0.5 * np.sqrt(2 * g), indexing="ij")
    W = np.outer(wh / wh.sum(), wg / wg.sum()).ravel()
    x_red = red.reduced.data.points[red.test]
    f_red = red.unit.values(x_red, np.column_stack([A.ravel(), Q.ravel()])) @ W
    rng = np.random.default_rng(7)
    n, ratios = 3000, []
    for _ in range(4):
        S = red.full.unit.values(red.full.data.points, red.full.sample_initial(rng, n))
        f = S.mean(axis=1)
        mc = np.mean(S.var(axis=1))
        ratios.append(np.mean((f - f_red) ** 2) * n / mc)
    assert 0.25 < np.mean(ratios) < 2.5, ratios


def test_full_problem_is_the_lift():
    """The full target is the reduced one at the reduced points; labels for labelled laws."""
    red = reduction.ridge_problem("relu", 7, 2, target="x0 * x1 + 0.1 * x2", test_points=30,
                                  nodes_u=6, nodes_r=6)
    x = red.full.data.points
    np.testing.assert_allclose(red.full.y, x[:, 0] * x[:, 1] + 0.1 * np.linalg.norm(
        x[:, 2:], axis=1), rtol=1e-13)
    np.testing.assert_allclose(red.reduced.data.points[red.test], red.law.reduce(x))
    assert np.all(red.reduced.data.weights[red.test] == 0)
    assert red.reduced.unit.param_names == ("c", "a_1", "a_2", "q")
    assert red.full.unit.param_dim == 8
    with pytest.raises(ValueError, match="labelled"):
        reduction.ridge_problem("tanh", 5, 1, test_points=5)


@pytest.mark.slow
@pytest.mark.dolfinx
def test_reduced_pde_against_full_particles():
    """d = 5, k = 1, tanh, fixed output, teacher tanh(2 x0): the reduced PDE (DG1, 24^2 cells)
    to t = 0.5 against n = 2000 full-d particles (online SGD, 1000 samples a step): at every
    output time the gap at the test points is below 3 sqrt(MC_n / n), MC_n the particles'
    sample variance (gap^2 ~ MC / n at finite times)."""
    pytest.importorskip("dolfinx")
    from mpi4py import MPI

    from particle_check.particles import simulate
    from solver.pde.solve import solve
    from solver.settings import PDESettings

    red = reduction.ridge_problem("tanh", 5, 1, target="tanh(2*x0)", output=1.0,
                                  test_points=500, nodes_u=16, nodes_r=12, q_max=4.0,
                                  t_final=0.5, w_std=0.5)
    res = solve(red.reduced, PDESettings(cells=(24, 24), scheme="dg", degree=1,
                                         integrator="ssprk3", outputs=2, snapshots=0,
                                         progress=False), comm=MPI.COMM_SELF)
    rng = np.random.default_rng(11)
    n = 2000
    theta = red.full.sample_initial(rng, n)
    mc0 = np.mean(red.full.unit.values(red.full.data.points, theta).var(axis=1))
    run = simulate(red.full, theta, res.times, 0.01, "euler", rng=rng, batch=1000)
    f_pde = np.asarray(res.f)[:, red.test]
    gap = np.sqrt((run.f - f_pde) ** 2 @ red.full.data.weights)
    S = red.full.unit.values(red.full.data.points, run.theta)
    mc = np.mean(S.var(axis=1))
    print("gap", gap, "sqrt(MC_n/n)", np.sqrt(mc / n), "loss", res.loss, run.loss)
    assert np.all(gap <= 3 * np.sqrt(mc / n)), (gap, np.sqrt(mc / n))
    assert res.loss[-1] < 0.8 * res.loss[0]  # it trained
    # the PDE's MC(t) is the full units' (E_t s^2), the particles' sample variance at the
    # test points (500 points: a few % of x-sampling error); (E_t s)^2 would give ~1/5
    mc_n = np.array([mc0, mc])
    np.testing.assert_allclose(np.asarray(res.mc)[[0, -1]], mc_n, rtol=0.1)


@pytest.mark.parametrize("m", [2, 3, 4, 9, 50, 199])
def test_cosine_rule_matches_gauss_jacobi_and_moments(m):
    """Golub-Welsch rule = scipy's Gauss-Jacobi (1e-13) where that works; exact moments
    E t^2 = 1/m, E t^4 = 3/(m(m+2)); cdf and first moment against the rule."""
    from scipy.special import roots_jacobi

    law = reduction.BetaCosine(m)
    t, w = law.rule(40)
    t2, w2 = roots_jacobi(40, 0.5 * (m - 3), 0.5 * (m - 3))
    np.testing.assert_allclose(t, t2, atol=1e-13)
    np.testing.assert_allclose(w, w2 / w2.sum(), atol=1e-13)
    assert abs(w @ t**2 - 1 / m) < 4e-15 and abs(w @ t**4 - 3 / (m * (m + 2))) < 4e-15
    assert abs(w @ t) < 1e-16
    from scipy.integrate import quad

    def p(u):
        return (1 - u * u) ** (0.5 * (m - 3))

    norm = quad(p, -1, 1)[0]
    for c in (-0.5, 0.0, 0.3):
        assert abs(law.cdf(c) - quad(p, -1, c)[0] / norm) < 1e-9
        assert abs(law.first_moment(c) - quad(lambda u: u * p(u), -1, c)[0] / norm) < 1e-9


def test_cosine_rule_large_m():
    """m = 999: finite, symmetric, E t^2 = 1/m (scipy's roots_jacobi returns NaN at n = 512)."""
    t, w = reduction.BetaCosine(999).rule(512)
    assert np.all(np.isfinite(t)) and np.all(np.isfinite(w))
    assert abs(w @ t**2 - 1 / 999) < 1e-16


def _toml(**over):
    raw = {"name": "red", "problem": {"t_final": 1.0},
           "unit": {"kind": "reduced_ridge", "dim": 8, "k": 1, "activation": "tanh"},
           "data": {"kind": "reduced", "nodes_u": 6, "nodes_r": 5},
           "target": {"kind": "expression", "expression": "tanh(2 * x0)"},
           "domain": {"kind": "box", "lower": [-4.0, -3.0, 0.0], "upper": [4.0, 3.0, 3.0]},
           "initial": {"kind": "lifted_gaussian", "a_mean": [0.2], "w_std": 0.4}}
    for key, value in over.items():
        section, _, name = key.partition("__")
        if name:
            raw[section] = {**raw[section], name: value}
        else:
            raw[section] = value
    return raw


def test_toml_builds_the_reduced_problem_of_ridge_problem():
    from solver.config import parse

    cfg = parse(_toml())
    red = reduction.ridge_problem("tanh", 8, 1, target="tanh(2 * x0)", a_mean=0.2, w_std=0.4,
                                  nodes_u=6, nodes_r=5, test_points=3)
    p, q = cfg.problem, red.reduced
    assert p.unit.param_names == q.unit.param_names == ("c", "a", "q")
    np.testing.assert_array_equal(p.data.points, q.data.points[:p.data.size])
    np.testing.assert_allclose(p.data.weights, q.data.weights[:p.data.size], rtol=1e-14)
    theta = np.array([[0.3, 0.1, 0.9], [1.0, -0.4, 0.2]])
    np.testing.assert_array_equal(p.initial.pdf(theta), q.initial.pdf(theta))
    np.testing.assert_array_equal(p.unit.values(p.data.points, theta),
                                  q.unit.values(p.data.points, theta))


@pytest.mark.parametrize("over, message", [
    ({"unit": {"kind": "neuron", "dim": 1, "activation": "tanh"}},
     'needs \\[unit\\] kind = "reduced_ridge"'),
    ({"domain__lower": [-4.0, -3.0, -1.0]}, "q = \\|w_perp\\| >= 0"),
    ({"problem__beta": 10.0}, "noiseless"),
    ({"initial__a_mean": [0.1, 0.2]}, "expected k = 1 numbers"),
])
def test_toml_refusals(over, message):
    from solver.config import ConfigError, parse

    with pytest.raises(ConfigError, match=message):
        parse(_toml(**over))


def test_symmetric_extension_in_q():
    """ridge_problem(symmetric=True): q in [-q_max, q_max], rho_0 even with half the weight on
    each side (mass 1, both signs drawn), the unit even in q."""
    red = reduction.ridge_problem("tanh", 7, 1, target="tanh(x0)", output=1.0, w_std=0.3,
                                  symmetric=True, test_points=5, nodes_u=6, nodes_r=6)
    assert red.reduced.domain.lower[-1] == -red.reduced.domain.upper[-1]
    rho = red.initial
    assert abs(rho.mass_in(red.reduced.domain) - 1.0) < 1e-12
    theta = np.array([[0.2, 0.5], [0.2, -0.5]])
    assert rho.pdf(theta)[0] == rho.pdf(theta)[1] > 0
    q = np.linspace(-3, 3, 6001)
    marginal = rho.pdf(np.column_stack([np.full_like(q, 0.2), q])).sum() * (q[1] - q[0])
    assert abs(marginal - norm.pdf(0.2, 0.0, 0.3)) < 1e-8  # a ~ N(0, w_std^2)
    draws = rho.sample(np.random.default_rng(0), 2000)
    assert 0.4 < np.mean(draws[:, -1] > 0) < 0.6
    x = red.reduced.data.points[:20]
    np.testing.assert_array_equal(red.unit.values(x, theta[:1]), red.unit.values(x, theta[1:]))


@pytest.mark.parametrize("d", [10, 200])
def test_quadratic_activation_reduced_energy_is_the_moment_ode(d):
    """sigma = z^2, y = x_1^2: the exact rho_t is rho_0 dilated (a by g_a(t), q by g_q(t),
    g' = -A g); the reduced unit and data give E(rho_t) = the moment ODE's E(t) to 1e-12."""
    from scipy.integrate import solve_ivp
    from scipy.special import roots_genlaguerre

    from benchmarks import reduction_quadratic as bq

    red = bq.problem(d, 1.0, symmetric=False)

    def rhs(_t, y):
        ma, mp = y[:2]
        T = ma - 1 + (d - 1) * mp
        a11, a22 = 4 * (ma - 1) + 2 * T, 4 * mp + 2 * T
        return [-2 * a11 * ma, -2 * a22 * mp, -a11, -a22]

    ts = np.linspace(0, 1, 6)
    sol = solve_ivp(rhs, (0, 1), [bq.A_MEAN**2 + bq.S**2 / d, bq.S**2 / d, 0, 0],
                    method="DOP853", t_eval=ts, rtol=1e-13, atol=1e-15)
    h, wh = np.polynomial.hermite_e.hermegauss(20)
    g, wg = roots_genlaguerre(20, 0.5 * (d - 1) - 1)
    sd = bq.S / np.sqrt(d)
    A, Q = np.meshgrid(bq.A_MEAN + sd * h, sd * np.sqrt(2 * g), indexing="ij")
    W = np.outer(wh / wh.sum(), wg / wg.sum()).ravel()
    p = red.reduced
    ref = bq.reference_energy(d, ts)
    for j in range(len(ts)):
        theta = np.column_stack([A.ravel() * np.exp(sol.y[2, j]),
                                 Q.ravel() * np.exp(sol.y[3, j])])
        f = p.unit.values(p.data.points, theta) @ W
        assert abs(0.5 * p.data.integrate((f - p.y) ** 2) - ref[j]) < 1e-12


@pytest.mark.slow
@pytest.mark.dolfinx
def test_quadratic_activation_pde_converges():
    """The reduced PDE (DG2) reproduces the moment ODE's E(t) on [0, 1], d = 10: max error
    4.0e-4 on 16^2 cells, 1.6e-6 on 32^2 (measured; order ~8 in this pre-asymptotic range)."""
    pytest.importorskip("dolfinx")
    from benchmarks import reduction_quadratic as bq

    (_, e16, _, _), (_, e32, _, held) = bq.energy_errors(10, [16, 32], 2, symmetric=False)
    assert e32 < 5e-6 and e16 / e32 > 8.0 and held < 1e-6


def test_data_rule_in_high_d():
    """d = 1000: the chi_999 rule (Golub-Welsch; scipy's Laguerre weights overflow) has
    E r^2 = 999 and E r^4 = 999 * 1001."""
    q = reduction.reduced_quadrature(reduction.DataLaw(1000, 1), 10, 16)
    assert abs(q.integrate(q.points[:, 1] ** 2) / 999 - 1) < 1e-13
    assert abs(q.integrate(q.points[:, 1] ** 4) / (999 * 1001) - 1) < 1e-13
