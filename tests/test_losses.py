"""General losses (solver/model/losses.py): derivatives against finite differences, the
logistic loss without overflow, callable losses checked, the loss in Psi, in the particle
velocity (GD and SGD) and the energy, the square loss unchanged bit for bit, config errors."""

import numpy as np
import pytest

from particle_check import particles
from solver import config
from solver.errors import ConfigError
from solver.model import density, functionals, losses, quadrature, targets, units
from solver.model.domain import Cylinder
from solver.model.problem import Problem
from solver.restart import describe, fingerprint
from solver.sweep import dump_toml

NAMED = [losses.SQUARE, losses.LOGISTIC, losses.HuberLoss(0.7), losses.SmoothHingeLoss(0.5)]


def _points(loss: losses.Loss, rng: np.random.Generator, size: int = 400):
    f = rng.uniform(-3, 3, size)
    y = rng.choice([-1.0, 1.0], size) if loss.labels else rng.uniform(-2, 2, size)
    return f, y


def _kinks(loss: losses.Loss, f, y) -> np.ndarray:
    """Points within 1e-3 of a kink of d1 (Huber, smoothed hinge): no central difference there."""
    if isinstance(loss, losses.HuberLoss):
        return np.abs(np.abs(f - y) - loss.delta) < 1e-3
    if isinstance(loss, losses.SmoothHingeLoss):
        z = y * f
        return (np.abs(z - 1) < 1e-3) | (np.abs(z - (1 - loss.gamma)) < 1e-3)
    return np.zeros(f.shape, bool)


@pytest.mark.parametrize("loss", NAMED, ids=lambda loss: loss.name)
def test_d1_and_d2_are_the_derivatives_of_the_loss(loss):
    rng = np.random.default_rng(1)
    f, y = _points(loss, rng)
    keep = ~_kinks(loss, f, y)
    f, y = f[keep], y[keep]
    h = 1e-6
    fd1 = (loss.value(f + h, y) - loss.value(f - h, y)) / (2 * h)
    fd2 = (loss.d1(f + h, y) - loss.d1(f - h, y)) / (2 * h)
    # central differences: O(h^2) truncation + round-off eps |l| / h ~ 1e-10
    assert np.max(np.abs(loss.d1(f, y) - fd1)) < 1e-8
    assert np.max(np.abs(loss.d2(f, y) - fd2)) < 1e-8
    assert np.all(loss.d2(f, y) >= 0)  # convex
    assert np.all(np.isfinite(loss.value(f, y)))


def test_the_losses_take_their_textbook_values():
    f, y = np.array([0.3, -2.0, 4.0]), np.array([1.0, 1.0, -1.0])
    assert np.array_equal(losses.SQUARE.value(f, y), 0.5 * (f - y) ** 2)
    assert np.allclose(losses.LOGISTIC.value(f, y), np.log1p(np.exp(-y * f)), rtol=1e-15)
    hub = losses.HuberLoss(1.0)
    assert np.allclose(hub.value(f, y), [0.245, 2.5, 4.5])
    hinge = losses.SmoothHingeLoss(1.0)  # z = 0.3, -2, -4: (1 - z)^2/2, 1/2 - z
    assert np.allclose(hinge.value(f, y), [0.245, 2.5, 4.5])
    assert hinge.value(np.array([1.5]), np.array([1.0]))[0] == 0.0


def test_logistic_is_stable_far_out():
    f = np.array([-800.0, -40.0, 40.0, 800.0])
    y = np.ones(4)
    v, d1, d2 = (g(f, y) for g in (losses.LOGISTIC.value, losses.LOGISTIC.d1,
                                   losses.LOGISTIC.d2))
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(d1)) and np.all(np.isfinite(d2))
    assert v[0] == 800.0 and v[-1] == 0.0 and d1[0] == -1.0 and d1[-1] == -0.0
    assert v[2] == pytest.approx(np.exp(-40.0), rel=1e-14)  # no log(1 + tiny) cancellation
    assert d1[2] == pytest.approx(-np.exp(-40.0), rel=1e-14)


def test_a_callable_loss_is_checked_and_used():
    cubic = losses.CallableLoss(lambda f, y: 0.25 * (f - y) ** 4, lambda f, y: (f - y) ** 3,
                                lambda f, y: 3 * (f - y) ** 2, name="quartic")
    f, y = np.array([0.5, 2.0]), np.array([0.0, 1.0])
    assert np.array_equal(cubic.d1(f, y), (f - y) ** 3)
    with pytest.raises(ValueError, match="d1 is not the derivative of value"):
        losses.CallableLoss(lambda f, y: 0.25 * (f - y) ** 4, lambda f, y: (f - y) ** 2)
    with pytest.raises(ValueError, match="d2 is not the derivative of d1"):
        losses.CallableLoss(lambda f, y: 0.5 * (f - y) ** 2, lambda f, y: f - y,
                            lambda f, y: 2.0 + 0 * f)
    with pytest.raises(ValueError, match="returned shape"):
        losses.CallableLoss(lambda f, y: 0.0, lambda f, y: f - y)
    with pytest.raises(ValueError, match="no second derivative"):
        losses.CallableLoss(lambda f, y: 0.5 * (f - y) ** 2, lambda f, y: f - y).d2(f, y)


def _problem(loss=losses.SQUARE, target="sign(cos(x0))", **kw) -> Problem:
    unit = units.CircleRBFUnit(0.5)
    return Problem(unit, quadrature.circle_lattice(16, 0.1), targets.ExpressionTarget(target, 1),
                   Cylinder(-5, 5), density.Gaussian([0.0, 0.0], [0.5, 0.6]), loss=loss,
                   t_final=0.2, **kw)


def test_a_label_loss_refuses_targets_that_are_not_labels():
    with pytest.raises(ValueError, match="loss: 'logistic' needs labels y in"):
        _problem(losses.LOGISTIC, target="cos(x0)")
    with pytest.raises(ValueError, match=r"loss: expected a solver\.model\.losses\.Loss"):
        _problem("logistic")
    _problem(losses.HuberLoss(0.5), target="cos(x0)")  # Huber takes any target


@pytest.mark.parametrize("loss", NAMED[1:], ids=lambda loss: loss.name)
def test_psi_is_the_first_variation_of_the_loss(loss):
    """d/de L(f + e s(.; theta)) at e = 0 is Psi(theta) - lam r: the loss and its d1 agree
    inside the model, for every loss."""
    problem = _problem(loss)
    rng = np.random.default_rng(3)
    theta = problem.sample_initial(rng, 50)
    W = np.full(50, 1 / 50)
    f = functionals.network_output(problem, theta, W)
    probe = np.array([[1.3, 0.4]])
    s = problem.unit.values(problem.data.points, probe)[:, 0]
    h = 1e-6
    fd = (functionals.loss(problem, f + h * s) - functionals.loss(problem, f - h * s)) / (2 * h)
    assert functionals.potential(problem, probe, f)[0] == pytest.approx(fd, rel=1e-8)


@pytest.mark.parametrize("loss", NAMED, ids=lambda loss: loss.name)
def test_particle_velocity_uses_the_loss_for_gd_and_sgd(loss):
    """The fused particle velocity equals -grad Psi from the model (full data), and on an SGD
    batch it is the batch's E[d1 l s] (recomputed here from the unit matrix)."""
    problem = _problem(loss)
    rng = np.random.default_rng(4)
    theta = problem.sample_initial(rng, 40)
    v, f = particles.velocity(problem, theta)
    ref, f_ref = particles.velocity_unfused(problem, theta)
    assert np.allclose(v, ref, rtol=1e-12, atol=1e-14) and np.allclose(f, f_ref, rtol=1e-13)
    batch = particles.DataBatch(problem.data.points[:5], np.full(5, 0.2), problem.y[:5])
    v_batch, f_batch = particles.velocity(problem, theta, batch)
    vals = problem.unit.values(batch.points, theta)  # (P, n)
    f_b = vals.mean(axis=1)
    weights = 0.2 * loss.d1(f_b, batch.y)
    eps = 1e-6  # grad by central differences of sum_p weights_p s(x_p; theta_i)
    grad = np.empty_like(theta)
    for j in range(2):
        step = np.zeros(2)
        step[j] = eps
        grad[:, j] = (weights @ problem.unit.values(batch.points, theta + step)
                      - weights @ problem.unit.values(batch.points, theta - step)) / (2 * eps)
    assert np.allclose(f_batch, f_b, rtol=1e-13)
    assert np.allclose(v_batch, -grad, rtol=1e-7, atol=1e-9)


def test_accuracy_and_curvature_mc():
    problem = _problem(losses.LOGISTIC)
    f = np.where(np.arange(16) < 4, -problem.y, problem.y) * 0.3
    assert functionals.accuracy(problem, f) == pytest.approx(12 / 16)
    rows = functionals.accuracy(problem, np.vstack([f, -f]))
    assert np.allclose(rows, [12 / 16, 4 / 16])
    assert functionals.accuracy(_problem(target="cos(x0)"), f) is None
    f2 = f**2 + 1.0
    h = losses.LOGISTIC.d2(f, problem.y)
    assert functionals.mc_curvature(problem, f, f2) == pytest.approx(problem.data.weights @ h)
    square = _problem()
    assert functionals.mc_curvature(square, f, f2) == functionals.mc_variance(square, f, f2)


# --- the square loss is the old code, bit for bit -------------------------------------------


def _old_functionals(monkeypatch):
    """Patch the model back to the expressions before losses were general."""
    monkeypatch.setattr(functionals, "loss_weights",
                        lambda loss, w, f, y: w * (f - y))
    monkeypatch.setattr(functionals, "loss",
                        lambda p, f: 0.5 * float(p.data.weights @ (f - p.y) ** 2))


@pytest.mark.parametrize("batch", [None, 6])
def test_square_loss_particles_are_bitwise_the_old_runs(monkeypatch, batch):
    problem = _problem(target="cos(x0) + 0.3 * sin(2 * x0)")
    times = np.linspace(0, 0.2, 3)

    def run():
        rng = np.random.default_rng(7)
        theta0 = problem.sample_initial(rng, 32)
        return particles.simulate(problem, theta0, times, 0.05, "euler" if batch else "rk4",
                                  rng=rng, batch=batch)

    new = run()
    _old_functionals(monkeypatch)
    old = run()
    for key in ("f", "loss", "energy", "theta"):
        assert np.array_equal(getattr(new, key), getattr(old, key)), key


def test_square_loss_keeps_the_checkpoint_fingerprint():
    """A square-loss Problem is described as before the loss existed (earlier checkpoints
    resume); another loss changes the fingerprint."""
    square, logistic = _problem(), _problem(losses.LOGISTIC)
    assert "loss" not in describe(square)
    assert describe(logistic)["loss"]["type"] == "LogisticLoss"
    assert fingerprint(problem=square) != fingerprint(problem=logistic)


# --- configs ---------------------------------------------------------------------------------


def _raw(**problem) -> dict:
    return {
        "name": "loss",
        "problem": {"t_final": 0.2, **problem},
        "unit": {"kind": "circle_rbf", "width": 0.5},
        "data": {"kind": "circle_lattice", "points": 16, "offset": 0.1},
        "target": {"kind": "expression", "expression": "sign(cos(x0))"},
        "domain": {"kind": "cylinder", "lower": -5.0, "upper": 5.0},
        "initial": {"kind": "gaussian", "mean": [0.0, 0.0], "std": [0.5, 0.6]},
    }


def test_config_reads_every_loss():
    assert config.parse(_raw()).problem.loss is losses.SQUARE
    assert config.parse(_raw(loss="logistic")).problem.loss is losses.LOGISTIC
    hub = config.parse(_raw(loss="huber", huber_delta=0.25)).problem.loss
    assert isinstance(hub, losses.HuberLoss) and hub.delta == 0.25
    hinge = config.parse(_raw(loss="smooth_hinge", smooth_hinge_gamma=0.5)).problem.loss
    assert isinstance(hinge, losses.SmoothHingeLoss) and hinge.gamma == 0.5
    assert config.parse(_raw(loss="huber")).problem.loss.delta == 1.0


@pytest.mark.parametrize("problem, target, message", [
    ({"loss": "hinge"}, None, "problem.loss: got 'hinge'; allowed: square, logistic, huber, "
                              "smooth_hinge"),
    ({"loss": "logistic"}, "cos(x0)", "problem.loss: 'logistic' needs labels y in {-1, +1}"),
    ({"loss": "smooth_hinge"}, "2 * sign(cos(x0))", "problem.loss: 'smooth_hinge' needs labels"),
    ({"loss": "huber", "huber_delta": 0}, None, "problem.huber_delta: got 0; expected a finite "
                                                "number > 0"),
    ({"loss": "huber", "huber_delta": float("inf")}, None, "problem.huber_delta: got inf"),
    ({"huber_delta": 0.5}, None, "problem.huber_delta: unknown key"),
    ({"loss": "logistic", "huber_delta": 0.5}, None, "problem.huber_delta: unknown key"),
    ({"loss": "smooth_hinge", "smooth_hinge_gamma": -1}, None,
     "problem.smooth_hinge_gamma: got -1; expected a finite number > 0"),
    ({"loss": 1}, None, "problem.loss: got 1; expected a string"),
])
def test_bad_loss_configs_are_named_errors(problem, target, message):
    raw = _raw(**problem)
    if target is not None:
        raw["target"]["expression"] = target
    with pytest.raises(ConfigError) as err:
        config.parse(raw)
    assert message in str(err.value)


def test_a_bad_loss_config_is_refused_by_check(tmp_path, capsys):
    from solver.cli import main

    raw = _raw(loss="logistic")
    raw["target"]["expression"] = "cos(x0)"
    path = tmp_path / "c.toml"
    path.write_text(dump_toml(raw))
    assert main(["check", str(path)]) == 2
    assert "problem.loss: 'logistic' needs labels" in capsys.readouterr().err
