"""PDE-vs-particles comparison on synthetic ensembles with a known law of f_n - f_t.

f_n(t) = f_t + (bias) + Gaussian noise of sd sigma(n) at each data point (weights sum to
1), so E||f_n - f_t||^2 = sigma(n)^2 + |bias|^2 and the exponent, the CRBV ratio and the
error budget are known in advance.
"""

import json

import numpy as np
import pytest

from particle_check.compare import compare, fit_exponents, l2_mu
from particle_check.particles import ParticleRun
from particle_check.report import FILES, write_report
from solver.io import RunDirectory

WIDTHS = (16, 64, 256, 1024)
M = 64


def reference(times: np.ndarray, m: int = M):
    """Weights, PDE outputs f_t (T, M) and targets y: f_t relaxes towards y."""
    x = np.linspace(0, 2 * np.pi, m, endpoint=False)
    weights = np.full(m, 1.0 / m)
    y = np.sin(x) + 0.3 * np.cos(3 * x)
    f = y[None, :] + np.exp(-times)[:, None] * (0.5 - y[None, :])
    return weights, f, y


def ensemble(times, pde_f, y, weights, sd, seeds=8, widths=WIDTHS, bias=None, rng=0):
    """(n, seed) -> ParticleRun with f = pde_f (+ bias) + N(0, sd(n)^2) per point."""
    gen = np.random.default_rng(rng)
    runs = {}
    for n in widths:
        for s in range(seeds):
            f = pde_f + gen.normal(0.0, sd(n), pde_f.shape)
            if bias is not None:
                f = f + bias
            loss = 0.5 * ((f - y) ** 2) @ weights
            runs[(n, s)] = ParticleRun(times, f, loss, loss, np.zeros((n, 2)))
    return runs


def make(sd, times=None, mc=None, **kw):
    times = np.linspace(0, 3, 40) if times is None else times
    weights, f, y = reference(times)
    runs = ensemble(times, f, y, weights, sd,
                    **{k: kw.pop(k) for k in ("bias", "seeds", "rng", "widths") if k in kw})
    loss = 0.5 * ((f - y) ** 2) @ weights
    mc = np.ones(len(times)) if mc is None else mc
    return compare(weights, times, f, loss, mc, runs, targets=y, **kw)


@pytest.mark.parametrize(("power", "expected"), [(0.5, 0.5), (1.0, 1.0)])
def test_exponent_and_its_bootstrap_interval(power, expected):
    cmp = make(lambda n: 0.7 * n ** -power)
    alpha = cmp.exponent()
    lo, hi = cmp.exponent_interval(level=0.9, resamples=1000, rng=1)
    assert alpha.shape == lo.shape == hi.shape == (40,)
    assert abs(np.median(alpha) - expected) < 0.02
    assert np.all(np.abs(alpha - expected) < 0.08)
    assert np.all((lo <= alpha) & (alpha <= hi))
    covered = np.mean((lo <= expected) & (expected <= hi))
    assert 0.7 <= covered <= 1.0, covered              # a calibrated 90% interval
    assert np.all(hi - lo < 0.15)                       # and an informative one
    other = 1.5 - expected                              # 1 when expecting 1/2 and vice versa
    assert not np.any((lo <= other) & (other <= hi))
    assert cmp.exponent(3) == pytest.approx(alpha[3])


def test_unresolved_points_are_left_out_of_the_fit():
    """A PDE error e shifts the reference: gap^2 = c^2/n + e^2 flattens at large n."""
    times = np.linspace(0, 1, 6)
    widths = tuple(16 * 4**k for k in range(8))
    e = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 2.0])
    weights, *_ = reference(times)
    bias = e[:, None] * np.ones(M)                     # ||bias||_{L2(mu)} = e exactly
    np.testing.assert_allclose(l2_mu(weights, bias), e)
    kw = {"sd": lambda n: 20 / np.sqrt(n), "times": times, "bias": bias, "widths": widths}
    with_budget = make(pde_error=e, **kw)
    naive = make(**kw)                                 # same draws, no error budget
    np.testing.assert_array_equal(with_budget.gap, naive.gap)
    resolved = with_budget.resolved
    np.testing.assert_array_equal(resolved, with_budget.gap > 10 * e[None, :])
    np.testing.assert_array_equal(resolved[:, 0], [True] * 3 + [False] * 5)
    assert naive.resolved.all()
    for j in range(5):
        r = resolved[:, j]
        manual = -np.polyfit(np.log(with_budget.n[r]), np.log(with_budget.gap[r, j]), 1)[0]
        assert with_budget.exponent(j) == pytest.approx(manual)
        assert abs(with_budget.exponent(j) - 0.5) < 0.05
        assert naive.exponent(j) < 0.44                # the plateau drags the naive fit down
    assert not resolved[:, -1].any()                   # e = 2: nothing to fit at the end
    assert np.isnan(with_budget.exponent(5))
    lo, hi = with_budget.exponent_interval(resamples=200, rng=0)
    assert np.isnan(lo[5]) and np.isnan(hi[5]) and np.all(lo[:5] <= hi[:5])
    crbv = with_budget.crbv(resamples=200, rng=0)
    np.testing.assert_array_equal(crbv.judged, resolved)


def test_crbv_check_flags_an_excess_over_mc():
    """sd = c/sqrt(n): n E gap^2 = c^2 at every n and t."""
    c2 = 0.49
    times = np.linspace(0, 1, 20)
    sd = lambda n: np.sqrt(c2 / n)  # noqa: E731
    over = make(sd, times=times, mc=np.full(20, c2 / 3)).crbv(resamples=1000, rng=0)
    assert over.ratio.mean() == pytest.approx(3.0, rel=0.1)
    assert over.violations.all()
    assert over.verdict().startswith("n gap^2 lies above MC(t)")
    equal = make(sd, times=times, mc=np.full(20, c2)).crbv(resamples=1000, rng=0)
    assert equal.lo.shape == (4, 20) and np.all(equal.lo <= equal.n_gap2)
    assert np.all(equal.n_gap2 <= equal.hi)
    assert equal.consistent.mean() >= 0.85             # ~5% one-sided misses expected
    above = make(sd, times=times, mc=np.full(20, 3 * c2)).crbv(resamples=1000, rng=0)
    assert above.consistent.all() and above.verdict().startswith("consistent")


def test_loss_gap_and_gap_to_the_target():
    times = np.linspace(0, 12, 9)
    weights, f, y = reference(times)
    runs = ensemble(times, f, y, weights, lambda n: 0.5 / n, seeds=3)
    pde_loss = 0.5 * ((f - y) ** 2) @ weights
    cmp = compare(weights, times, f, pde_loss, np.ones(9), runs, targets=y)
    i, n = 1, WIDTHS[1]
    per_seed = np.array([runs[(n, s)].loss - pde_loss for s in range(3)])
    np.testing.assert_allclose(cmp.loss_bias[i], per_seed.mean(axis=0))
    np.testing.assert_allclose(cmp.loss_bias_sd[i], per_seed.std(axis=0, ddof=1))
    rms = np.sqrt(np.mean([((runs[(n, s)].f - y) ** 2) @ weights for s in range(3)], axis=0))
    np.testing.assert_allclose(cmp.target_gap[i], rms)
    np.testing.assert_allclose(cmp.pde_target_gap, np.sqrt(2 * pde_loss))
    proxy = cmp.target_proxy
    assert not proxy[:, 0].any() and proxy[:, -1].all()   # f_t reaches y only late
    assert abs(cmp.exponent(8, measure="target") - 1.0) < 0.1
    assert np.isnan(cmp.exponent(0, measure="target"))
    no_target = compare(weights, times, f, pde_loss, np.ones(9), runs)
    assert no_target.target_gap is None and not no_target.target_proxy.any()
    with pytest.raises(ValueError, match="pde_error"):
        compare(weights, times, f, pde_loss, np.ones(9), runs, pde_error=np.ones(3))


def test_fit_exponents_needs_two_widths():
    n = np.array([10, 100, 1000])
    values = np.array([[1.0, 1.0], [0.1, 0.5], [0.01, 0.25]])
    mask = np.array([[True, True], [True, False], [True, False]])
    alpha = fit_exponents(n, values, mask)
    assert alpha[0] == pytest.approx(1.0) and np.isnan(alpha[1])


def test_write_report_files_and_summary(tmp_path):
    times = np.linspace(0, 3, 12)
    cmp = make(lambda n: 0.7 / np.sqrt(n), times=times, pde_error=np.full(12, 1e-3), seeds=4)
    run_dir = RunDirectory(tmp_path)
    summary = write_report(cmp, run_dir, "synthetic", resamples=200)
    for name in FILES:
        assert (tmp_path / name).stat().st_size > 0, name
    assert {"title", "n", "seeds", "seeds_per_width", "alpha", "crbv", "error_budget", "loss",
            "target", "files", "level"} <= set(summary)
    assert len(summary["alpha"]) == 6
    assert {"t", "alpha", "lo", "hi", "widths_fitted"} <= set(summary["alpha"][0])
    assert summary["alpha"][0]["lo"] <= 0.5 <= summary["alpha"][0]["hi"] + 0.05
    assert summary["crbv"]["verdict"]
    assert summary["error_budget"]["max_pde_error"] == pytest.approx(1e-3)
    run_dir.write_json("summary.json", summary)         # strict JSON
    assert json.loads((tmp_path / "summary.json").read_text())["n"] == list(WIDTHS)
    rows = (tmp_path / "comparison.csv").read_text().splitlines()
    assert rows[0].split(",") == list(cmp.header) and len(rows) == 1 + 12 * len(WIDTHS)
    text = (tmp_path / "report.md").read_text()
    assert "# synthetic" in text and "gap_vs_n.png" in text and "CRBV" in text
    quiet = tmp_path / "quiet"
    again = write_report(cmp, RunDirectory(quiet, writer=False), "synthetic", resamples=200)
    assert again["alpha"] == summary["alpha"] and not quiet.exists()


def test_bootstrap_matches_a_plain_resampling_loop():
    """Seeds resampled with replacement per width, gaps recomputed and refitted."""
    cmp = make(lambda n: 0.7 / np.sqrt(n), times=np.linspace(0, 1, 3), seeds=6)
    B = 20000
    boot = cmp.bootstrap(level=0.8, resamples=B, rng=0)
    gen = np.random.default_rng(1)
    gaps = np.array([np.sqrt(s[gen.integers(len(s), size=(B, len(s))), 1].mean(axis=1))
                     for s in cmp.sq])                  # (W, B)
    alphas = -np.polyfit(np.log(cmp.n), np.log(gaps), 1)[0]
    lo, hi = np.percentile(alphas, [10, 90])
    assert boot.alpha[0][1] == pytest.approx(lo, abs=1e-3)
    assert boot.alpha[1][1] == pytest.approx(hi, abs=1e-3)
    glo, ghi = np.percentile(gaps, [10, 90], axis=1)
    np.testing.assert_allclose(boot.gap[0][:, 1], glo, rtol=6e-3)
    np.testing.assert_allclose(boot.gap[1][:, 1], ghi, rtol=6e-3)
    np.testing.assert_allclose(boot.n_gap2[0], cmp.n[:, None] * boot.gap[0] ** 2)


def test_local_exponents_show_a_crossover_the_single_fit_averages():
    """gap = n^-1/2 / 8 + n^-1 (the n^-1 part dominates below n = 64): local exponents fall
    from ~0.9 towards 0.5 across the widths, each pair's interval holding its exact slope."""
    widths = (4, 16, 64, 256, 1024, 4096)

    def law(n):
        return n ** -0.5 / 8 + 1.0 / n

    cmp = make(law, widths=widths, seeds=64, rng=3)
    local = cmp.local_exponent()
    n = np.array(widths, float)
    exact = -np.diff(np.log(law(n))) / np.diff(np.log(n))
    assert local.shape == (len(widths) - 1, 40)
    assert np.all(np.diff(exact) < 0) and exact[0] > 0.85 and exact[-1] < 0.6
    np.testing.assert_allclose(local.mean(axis=1), exact, atol=0.03)
    boot = cmp.bootstrap(level=0.9, resamples=500, rng=2)
    lo, hi = boot.local_alpha
    inside = (lo <= exact[:, None]) & (exact[:, None] <= hi)
    assert inside.mean() > 0.75   # 90% intervals over 5 pairs x 40 times
    alpha = cmp.exponent()
    assert np.all((alpha > exact[-1]) & (alpha < exact[0]))   # the fit averages the crossover


def _monte_carlo_se(boot: np.ndarray, p: float, dp: float = 0.01) -> float:
    """Standard error of the p-quantile estimated from B bootstrap resamples:
    sqrt(p (1 - p) / B) / density(q_p), the density read off the bootstrap distribution
    itself as 2 dp / (q_{p+dp} - q_{p-dp}) (no normality assumed: the gap at 8 seeds is
    skewed and discrete)."""
    spread = np.quantile(boot, p + dp) - np.quantile(boot, p - dp)
    return float(np.sqrt(p * (1 - p) / len(boot)) * spread / (2 * dp))


def _assert_same_percentile_interval(lo, hi, res, level):
    """Our (lo, hi) and scipy's come from independent resamplings with the same B, so each end
    differs by sqrt(2) Monte-Carlo standard errors of one estimate in sd; allow 5 of those."""
    boot = res.bootstrap_distribution
    for ours, theirs, p in ((lo, res.confidence_interval.low, (1 - level) / 2),
                            (hi, res.confidence_interval.high, (1 + level) / 2)):
        tol = 5 * np.sqrt(2) * _monte_carlo_se(boot, p)
        assert abs(ours - theirs) < tol, (p, ours, theirs, tol)


def test_bootstrap_intervals_agree_with_scipy_percentile_bootstrap():
    """The gap at each width (sqrt of the seed mean of ||f_n - f_t||^2) and the exponent fitted
    over the widths, each width's seeds resampled on their own: the same percentile intervals
    as scipy.stats.bootstrap(method="percentile", paired=False), to Monte-Carlo error.

    With B = 20000 a 5% / 95% quantile has standard error sqrt(0.05 * 0.95 / B) / density
    ~ 0.0015 / density, i.e. ~0.015 bootstrap sd (~0.005 (hi - lo)) for a normal statistic;
    the density is estimated from scipy's bootstrap distribution (``_monte_carlo_se``). A wrong
    level is caught: 5 sqrt(2) standard errors are ~0.01 in p, so 0.88 instead of 0.9 fails."""
    from scipy import stats

    cmp = make(lambda n: 0.7 * n ** -0.5, times=np.array([0.0]), seeds=8)
    B, level = 20000, 0.9
    ours = cmp.bootstrap(level, B, rng=1)
    for i in range(len(WIDTHS)):
        res = stats.bootstrap((cmp.sq[i][:, 0],), lambda s, axis=-1: np.sqrt(s.mean(axis)),
                              n_resamples=B, confidence_level=level, method="percentile",
                              rng=np.random.default_rng(2))
        _assert_same_percentile_interval(ours.gap[0][i, 0], ours.gap[1][i, 0], res, level)

    def exponent(*samples):
        gaps = np.sqrt([s.mean() for s in samples])
        return fit_exponents(np.array(WIDTHS), gaps[:, None], np.ones((len(WIDTHS), 1)))[0]

    res = stats.bootstrap(tuple(s[:, 0] for s in cmp.sq), exponent, n_resamples=B,
                          confidence_level=level, method="percentile", paired=False,
                          vectorized=False, rng=np.random.default_rng(3))
    _assert_same_percentile_interval(ours.alpha[0][0], ours.alpha[1][0], res, level)
