"""Particles vs the PDE limit: gaps in L2(mu), loss gaps, fitted exponents, the CRBV check.

For each width n (rows) and PDE output time t (columns)::

    gap(n, t)^2 = mean over seeds of ||f_n(t) - f_t||^2_{L2(mu)},
    ||g||^2_{L2(mu)} = sum_m w_m g(x_m)^2,

i.e. the gap is the RMS over seeds. The per-seed squared gaps are kept so that every
statistic can be bootstrapped over seeds (seeds resampled with replacement,
independently per width).

Error budget. ``f_t`` is the PDE's discrete solution, not the exact limit. When an
estimate ``pde_error[t]`` of its own error (``||f_t^fine - f_t^coarse||``, a second run on
a coarser mesh or a lower order) is given, a point (n, t) counts as *resolved* only if
``gap > resolve_factor * pde_error`` (factor 10 by default); unresolved points are left
out of every fit and of the CRBV verdict. Where the PDE has (nearly) reached the target,
the gap to the target ``||f_n - y||`` measures the same thing independently of the PDE
error (triangle inequality: | ||f_n - y|| - ||f_n - f_t|| | <= ||f_t - y||), so it is kept
and fitted as well.

CRBV [Chen, Rotskoff, Bruna, Vanden-Eijnden 2020]: *as n -> infinity*, the mean-square
fluctuation n E||f_n(t) - f_t||^2 stays bounded throughout training by the Monte Carlo
resampling variance MC(t) of the mean-field measure (with equality in expectation at t = 0,
where the n units are i.i.d. draws from rho_0). This is an asymptotic statement: at finite n
the measured n gap^2 may exceed MC(t) by corrections that vanish as n grows, and with a
handful of seeds it is a noisy estimate. The check below therefore only asks whether each
measurement is *consistent* with the bound (the lower end of its bootstrap interval is at
most MC(t)); it does not prove the bound, and a flagged point at small n alone is not a
contradiction of the theorem.

Other losses (``crbv_scope``). CRBV prove the bound for the square loss. For a convex loss l,
linearising the dynamics around f_t gives a fluctuation g = sqrt(n) (f_n - f_t) driven by
dg/dt = -K_t (H_t g) + (the initial resampling noise carried by the flow), H_t = d2 l(f_t, y)
the loss's curvature at the data: the metric of the fluctuations is ||g||_H^2 = sum_m w_m
d2 l g_m^2 (||.||_{L2(mu)} for the square loss, d2 l = 1), and the analogue of the bound
would compare n E||f_n - f_t||_H^2 with MC_H(t) = sum_m w_m d2 l (int s^2 rho_t - f_t^2)
(``functionals.mc_curvature``). At t = 0 equality in expectation holds in any such norm
(i.i.d. units); during training H_t moves with t and no bound is proved. So for another loss
the check below (L2(mu) gap against MC(t)) still runs, as a diagnostic, and summary.json
says ``applies: false`` with this statement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from particle_check.particles import ParticleRun

RESOLVE_FACTOR = 10.0
_TINY = np.finfo(float).tiny
_CHUNK = 4_000_000  # floats per bootstrap block (resamples x widths x times)


def crbv_scope(loss, birth_death: float = 0.0) -> dict:
    """What summary.json says of the CRBV check for ``loss`` (a solver.model.losses.Loss):
    whether the bound is a theorem for it, and what carries over (module docstring). With
    birth-death (gamma > 0) it is not a theorem for any loss: CRBV treat the gradient flow,
    and the kill/duplicate events add their own fluctuations."""
    if birth_death:
        name = "square" if loss is None else loss.name
        return {"applies": False, "loss": name, "birth_death": birth_death,
                "statement": (
                    f"not a theorem with birth-death (gamma = {birth_death:g}): CRBV prove the "
                    "bound for the gradient flow; the particle kill/duplicate events add "
                    "fluctuations of their own, so the L2(mu) check below is a diagnostic "
                    "only (at t = 0, n E||f_n - f_0||^2 = MC(0) still holds)")}
    if loss is None or loss.square:
        return {"applies": True, "loss": "square",
                "statement": "n E||f_n - f_t||^2_{L2(mu)} <= MC(t) as n -> infinity, proved "
                             "for the square loss [CRBV]"}
    return {"applies": False, "loss": loss.name,
            "statement": (
                f"not a theorem for the {loss.name} loss: CRBV prove the bound for the square "
                "loss. The linearisation around f_t makes d2 l(f_t, y) the metric of the "
                "fluctuations (dg/dt = -K_t H_t g); at t = 0, n E||f_n - f_0||^2 = MC(0) "
                "holds for any loss (i.i.d. units), later the L2(mu) check below is a "
                "diagnostic only, and its H-weighted analogue (MC_H, "
                "functionals.mc_curvature) is not proved either")}


def l2_mu(weights: np.ndarray, a: np.ndarray, b: np.ndarray | float = 0.0) -> np.ndarray:
    """||a - b||_{L2(mu)} over the last axis (the data points), weights w_m summing to 1."""
    return np.sqrt(((np.asarray(a) - b) ** 2) @ np.asarray(weights))


def _sd(x: np.ndarray) -> np.ndarray:
    """Sample standard deviation over axis 0 (zeros for a single sample)."""
    if len(x) < 2:
        return np.zeros(x.shape[1:])
    return x.std(axis=0, ddof=1)


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def fit_exponents(n: np.ndarray, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """alpha(t) = -slope of the least-squares line log value = c - alpha log n over the widths
    where ``mask`` holds; nan where fewer than 2 widths qualify.

    n: (W,), values: (..., W, T), mask: (W, T) -> (..., T).
    """
    x = np.log(np.asarray(n, dtype=float))[:, None]
    w = np.asarray(mask, dtype=float)
    count = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xbar = (w * x).sum(axis=0) / count
        dx = w * (x - xbar)
        sxx = (dx * (x - xbar)).sum(axis=0)
        y = np.where(mask, np.log(np.maximum(values, _TINY)), 0.0)
        slope = (dx * y).sum(axis=-2) / sxx
    return np.where((count >= 2) & (sxx > 0), -slope, np.nan)


def local_exponents(n: np.ndarray, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """alpha between adjacent widths, -(log v_{i+1} - log v_i) / (log n_{i+1} - log n_i);
    nan where either width is masked out. n: (W,), values: (..., W, T), mask: (W, T)
    -> (..., W-1, T). Curvature of log gap vs log n (a crossover between power laws)
    shows here, where the single fit of ``fit_exponents`` averages it away."""
    dlog_n = np.diff(np.log(np.asarray(n, dtype=float)))[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        slopes = -np.diff(np.log(np.maximum(values, _TINY)), axis=-2) / dlog_n
    return np.where(mask[:-1] & mask[1:], slopes, np.nan)


@dataclass
class Intervals:
    """Bootstrap percentile intervals over seeds at one level (lo, hi pairs).

    Only the seed-to-seed sampling error is in them: not the PDE error (see the resolved
    flags), not curvature of log gap vs log n, and with few seeds (< ~10) percentile
    intervals are somewhat too narrow.
    """

    level: float
    resamples: int
    gap: tuple[np.ndarray, np.ndarray]             # (W, T) each
    n_gap2: tuple[np.ndarray, np.ndarray]          # (W, T) each
    alpha: tuple[np.ndarray, np.ndarray]           # (T,) each, fit over resolved widths
    alpha_target: tuple[np.ndarray, np.ndarray]    # (T,) each, fit of the gap to the target
    local_alpha: tuple[np.ndarray, np.ndarray]     # (W-1, T) each, between adjacent widths


@dataclass
class CRBVCheck:
    """n gap^2 with its bootstrap interval against MC(t), per (n, t).

    consistent[i, j]: the lower end of the interval is <= MC(t) (+ the PDE's MC error when
    given), i.e. the measurement does not contradict n E||f_n - f_t||^2 <= MC(t). The bound
    is asymptotic in n, so a point flagged at finite n is a finite-n excess, not a disproof.
    judged[i, j]: resolved points (gap above the PDE error budget) that enter the verdict.
    At t = 0 the two are equal in expectation, so about (1 - level)/2 of the points near
    t = 0 are flagged by chance alone.
    """

    level: float
    n_gap2: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    mc: np.ndarray
    consistent: np.ndarray
    judged: np.ndarray

    @property
    def ratio(self) -> np.ndarray:
        """n gap^2 / MC(t) (inf where MC = 0 and the gap is not)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.mc > 0, self.n_gap2 / self.mc,
                            np.where(self.n_gap2 > 0, np.inf, 1.0))

    @property
    def violations(self) -> np.ndarray:
        """Judged points whose whole interval lies above MC(t)."""
        return self.judged & ~self.consistent

    def verdict(self) -> str:
        judged, bad = int(self.judged.sum()), int(self.violations.sum())
        pct = f"{100 * self.level:.0f}%"
        if judged == 0:
            return "not judged: no point has a gap above the PDE error budget"
        if bad == 0:
            return (f"consistent: the {pct} interval of n gap^2 reaches down to MC(t) or "
                    f"below at all {judged} resolved (n, t) points")
        last = self.violations[-1]
        return (f"n gap^2 lies above MC(t) beyond its {pct} interval at {bad} of {judged} "
                f"resolved (n, t) points ({int(last.sum())} of them at the largest n); "
                f"the bound is asymptotic in n, so read this against the trend in n")


@dataclass
class Comparison:
    """Per width n (rows, increasing) and output time (columns).

    Per-seed arrays (lists over widths, each (seeds of that width, T)) keep what the
    bootstrap resamples: ``sq`` = ||f_n - f_t||^2, ``loss_gap`` = L_n - L_pde,
    ``target_sq`` = ||f_n - y||^2 (None without targets).
    """

    times: np.ndarray
    n: np.ndarray
    gap: np.ndarray          # (len(n), len(times)), RMS over seeds
    loss_mean: np.ndarray    # particle loss, mean over seeds
    loss_std: np.ndarray     # ... and its sample sd over seeds
    pde_loss: np.ndarray
    pde_mc: np.ndarray
    seeds: int
    sq: list[np.ndarray] = field(default_factory=list)
    loss_gap: list[np.ndarray] = field(default_factory=list)
    target_sq: list[np.ndarray] | None = None
    pde_error: np.ndarray | None = None       # (T,) ||f^fine - f^coarse|| or None
    pde_target_gap: np.ndarray | None = None  # (T,) ||f_t - y||
    pde_mc_error: np.ndarray | None = None    # (T,) |MC^fine - MC^coarse| or None
    pde_error_missing: str = ""               # why there is no pde_error, when there is none
    resolve_factor: float = RESOLVE_FACTOR

    header = ("t", "n", "seeds", "gap", "gap_lo", "gap_hi", "n_gap2", "n_gap2_lo", "n_gap2_hi",
              "mc", "crbv_consistent", "pde_error", "gap_over_pde_error", "resolved",
              "loss_mean", "loss_std", "pde_loss", "loss_bias", "loss_bias_sd",
              "target_gap", "pde_target_gap", "target_proxy")

    # ---- per (n, t) statistics -------------------------------------------------------

    @property
    def seeds_per_width(self) -> np.ndarray:
        return np.array([len(s) for s in self.sq], dtype=int)

    @property
    def error(self) -> np.ndarray:
        """The PDE error estimate at each t (zeros when none was given)."""
        return np.zeros(len(self.times)) if self.pde_error is None else self.pde_error

    @property
    def resolved(self) -> np.ndarray:
        """(W, T) bool: gap > resolve_factor * PDE error (every positive gap without one)."""
        return self.gap > self.resolve_factor * self.error[None, :]

    @property
    def gap_over_error(self) -> np.ndarray:
        """gap / PDE error (inf where the error estimate is 0 or absent)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.error > 0, self.gap / self.error, np.inf)

    @property
    def loss_bias(self) -> np.ndarray:
        """mean over seeds of L_n - L_pde, (W, T)."""
        return np.array([d.mean(axis=0) for d in self.loss_gap])

    @property
    def loss_bias_sd(self) -> np.ndarray:
        """sample sd over seeds of L_n - L_pde, (W, T)."""
        return np.array([_sd(d) for d in self.loss_gap])

    @property
    def target_gap(self) -> np.ndarray | None:
        """RMS over seeds of ||f_n(t) - y||, (W, T); None without targets."""
        if self.target_sq is None:
            return None
        return np.sqrt(np.array([d.mean(axis=0) for d in self.target_sq]))

    @property
    def target_proxy(self) -> np.ndarray:
        """(W, T) bool: the gap to the target stands in for the gap to the limit, i.e.
        ||f_n - y|| > resolve_factor * (||f_t - y|| + PDE error) (all False without targets)."""
        tg = self.target_gap
        if tg is None:
            return np.zeros_like(self.gap, dtype=bool)
        return tg > self.resolve_factor * (self.pde_target_gap + self.error)[None, :]

    # ---- exponents --------------------------------------------------------------------

    def _fit_data(self, measure: str) -> tuple[np.ndarray, np.ndarray]:
        if measure == "limit":
            return self.gap, self.resolved
        if measure == "target":
            tg = self.target_gap
            if tg is None:
                return np.full_like(self.gap, np.nan), np.zeros_like(self.gap, dtype=bool)
            return tg, self.target_proxy
        raise ValueError(f"measure: 'limit' or 'target', got {measure!r}")

    def exponent(self, j: int | None = None, measure: str = "limit") -> np.ndarray | float:
        """alpha(t) from the least-squares fit log gap = c - alpha log n over the resolved
        widths (nan if fewer than 2); at time index j, or every t when j is None.

        measure="target" fits the gap to the target ||f_n - y|| over the widths where it
        stands in for the gap (``target_proxy``).
        """
        values, mask = self._fit_data(measure)
        alpha = fit_exponents(self.n, values, mask)
        return alpha if j is None else float(alpha[j])

    def local_exponent(self) -> np.ndarray:
        """alpha between adjacent resolved widths, (W-1, T) (see ``local_exponents``)."""
        return local_exponents(self.n, self.gap, self.resolved)

    def exponent_interval(self, level: float = 0.9, resamples: int = 2000,
                          rng: np.random.Generator | int | None = None,
                          measure: str = "limit") -> tuple[np.ndarray, np.ndarray]:
        """Bootstrap percentile interval (lo, hi) of alpha(t) at every t.

        Seeds are resampled with replacement independently per width, the gaps recomputed
        and refitted over the same resolved widths as the point estimate.
        """
        boot = self.bootstrap(level, resamples, rng)
        return boot.alpha if measure == "limit" else boot.alpha_target

    # ---- bootstrap over seeds ---------------------------------------------------------

    def bootstrap(self, level: float = 0.9, resamples: int = 2000,
                  rng: np.random.Generator | int | None = None) -> Intervals:
        """Percentile intervals of gap, n gap^2, alpha(t) (and of the target exponent)."""
        if not 0 < level < 1:
            raise ValueError(f"level: need 0 < level < 1, got {level}")
        if resamples < 1:
            raise ValueError(f"resamples: need >= 1, got {resamples}")
        gen = _rng(rng)
        q = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
        counts = [gen.multinomial(len(s), np.full(len(s), 1 / len(s)), size=resamples)
                  / len(s) for s in self.sq]
        _, mask = self._fit_data("limit")
        _, tmask = self._fit_data("target")
        W, T = self.gap.shape
        gap_q = np.empty((2, W, T))
        alpha_q = np.full((2, T), np.nan)
        talpha_q = np.full((2, T), np.nan)
        local_q = np.full((2, W - 1, T), np.nan)
        step = max(1, _CHUNK // (resamples * W))
        for a in range(0, T, step):
            cols = slice(a, min(a + step, T))
            g = np.sqrt(np.stack([c @ s[:, cols] for c, s in zip(counts, self.sq, strict=True)],
                                 axis=1))                       # (B, W, block)
            gap_q[:, :, cols] = np.percentile(g, q, axis=0)
            alpha_q[:, cols] = _nanpercentile(fit_exponents(self.n, g, mask[:, cols]), q)
            local_q[:, :, cols] = _nanpercentile(local_exponents(self.n, g, mask[:, cols]), q)
            if self.target_sq is not None and tmask[:, cols].any():
                tg = np.sqrt(np.stack([c @ s[:, cols] for c, s in
                                       zip(counts, self.target_sq, strict=True)], axis=1))
                talpha_q[:, cols] = _nanpercentile(
                    fit_exponents(self.n, tg, tmask[:, cols]), q)
        nn = self.n[:, None].astype(float)
        return Intervals(level, resamples, (gap_q[0], gap_q[1]),
                         (nn * gap_q[0] ** 2, nn * gap_q[1] ** 2),
                         (alpha_q[0], alpha_q[1]), (talpha_q[0], talpha_q[1]),
                         (local_q[0], local_q[1]))

    # ---- CRBV -------------------------------------------------------------------------

    def crbv(self, intervals: Intervals | None = None, level: float = 0.9,
             resamples: int = 2000, rng: np.random.Generator | int | None = None) -> CRBVCheck:
        """n gap^2 with its bootstrap interval against MC(t) at every (n, t).

        A point is consistent with the (asymptotic) bound n E||f_n - f_t||^2 <= MC(t) when
        the lower end of its interval is <= MC(t) + the PDE's MC error (when given). With a
        single seed per width the interval collapses onto the estimate.
        """
        boot = intervals if intervals is not None else self.bootstrap(level, resamples, rng)
        nn = self.n[:, None].astype(float)
        lo, hi = boot.n_gap2
        slack = 0.0 if self.pde_mc_error is None else self.pde_mc_error[None, :]
        mc = np.broadcast_to(self.pde_mc, self.gap.shape)
        return CRBVCheck(boot.level, nn * self.gap ** 2, lo, hi, np.asarray(self.pde_mc),
                         lo <= mc + slack, self.resolved.copy())

    # ---- table ------------------------------------------------------------------------

    def rows(self, intervals: Intervals | None = None,
             crbv: CRBVCheck | None = None) -> list[list]:
        """CSV rows (``header``), ordered by t then n; interval columns are nan without
        ``intervals``, crbv_consistent is -1 without ``crbv`` (else 1/0)."""
        W, T = self.gap.shape
        nan = np.full((W, T), np.nan)
        glo, ghi = intervals.gap if intervals is not None else (nan, nan)
        nlo, nhi = intervals.n_gap2 if intervals is not None else (nan, nan)
        ok = crbv.consistent.astype(int) if crbv is not None else np.full((W, T), -1)
        tg = self.target_gap if self.target_gap is not None else nan
        ptg = self.pde_target_gap if self.pde_target_gap is not None else np.full(T, np.nan)
        err = self.pde_error if self.pde_error is not None else np.full(T, np.nan)
        ratio, resolved, proxy = self.gap_over_error, self.resolved, self.target_proxy
        bias, bias_sd, seeds = self.loss_bias, self.loss_bias_sd, self.seeds_per_width
        return [
            [float(t), int(n), int(seeds[i]), self.gap[i, j], glo[i, j], ghi[i, j],
             float(n * self.gap[i, j] ** 2), nlo[i, j], nhi[i, j], float(self.pde_mc[j]),
             int(ok[i, j]), float(err[j]), float(ratio[i, j]), int(resolved[i, j]),
             self.loss_mean[i, j], self.loss_std[i, j], float(self.pde_loss[j]),
             bias[i, j], bias_sd[i, j], tg[i, j], float(ptg[j]), int(proxy[i, j])]
            for j, t in enumerate(self.times) for i, n in enumerate(self.n)
        ]


def _nanpercentile(values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Percentiles over axis 0, nan (quietly) for all-nan columns."""
    out = np.full((len(q), *values.shape[1:]), np.nan)
    ok = np.isfinite(values).any(axis=0)
    if ok.any():
        out[:, ok] = np.nanpercentile(values[:, ok], q, axis=0)
    return out


def _per_time(name: str, value: np.ndarray | None, size: int) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=float)
    if arr.shape != (size,) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name}: need {size} finite values >= 0, one per output time")
    return arr


def compare(weights: np.ndarray, pde_times: np.ndarray, pde_f: np.ndarray,
            pde_loss: np.ndarray, pde_mc: np.ndarray,
            runs: Mapping[tuple[int, int], ParticleRun], *,
            pde_error: np.ndarray | None = None, targets: np.ndarray | None = None,
            pde_mc_error: np.ndarray | None = None, pde_error_missing: str = "",
            resolve_factor: float = RESOLVE_FACTOR) -> Comparison:
    """Gaps, loss gaps and gaps to the target of the particle runs against the PDE outputs.

    weights (M,): data quadrature weights; pde_f (T, M): f_t at the data points;
    runs: (n, seed) -> ParticleRun at the same output times.
    pde_error (T,): the PDE's own error ||f_t^fine - f_t^coarse||_{L2(mu)}, optional;
    targets (M,): y at the data points, optional (enables the gap to the target);
    pde_mc_error (T,): |MC^fine - MC^coarse|, optional slack in the CRBV check;
    pde_error_missing: why there is no pde_error (reported), when there is none.
    """
    times = np.asarray(pde_times, dtype=float)
    pde_f = np.asarray(pde_f, dtype=float)
    weights = np.asarray(weights, dtype=float)
    T = len(times)
    if not runs:
        raise ValueError("no particle runs to compare")
    widths = sorted({n for n, _ in runs})
    seeds = sorted({s for _, s in runs})
    error = _per_time("pde_error", pde_error, T)
    mc_error = _per_time("pde_mc_error", pde_mc_error, T)
    y = None if targets is None else np.asarray(targets, dtype=float)
    if y is not None and y.shape != weights.shape:
        raise ValueError(f"targets: need shape {weights.shape}, got {y.shape}")
    gap = np.empty((len(widths), T))
    loss_mean, loss_std = np.empty_like(gap), np.empty_like(gap)
    sq, loss_gap, target_sq = [], [], []
    pde_loss = np.asarray(pde_loss, dtype=float)
    for i, n in enumerate(widths):
        group = [runs[(n, s)] for s in seeds if (n, s) in runs]
        for run in group:
            if not np.allclose(run.times, times, rtol=0, atol=1e-12):
                raise ValueError("particle and PDE runs have different output times")
        sq.append(np.array([(r.f - pde_f) ** 2 @ weights for r in group]))
        gap[i] = np.sqrt(sq[-1].mean(axis=0))
        losses = np.array([r.loss for r in group])
        loss_mean[i], loss_std[i] = losses.mean(axis=0), _sd(losses)
        loss_gap.append(losses - pde_loss[None, :])
        if y is not None:
            target_sq.append(np.array([(r.f - y) ** 2 @ weights for r in group]))
    return Comparison(
        times, np.array(widths), gap, loss_mean, loss_std, pde_loss,
        np.asarray(pde_mc, dtype=float), len(seeds), sq, loss_gap,
        target_sq if y is not None else None, error,
        None if y is None else l2_mu(weights, pde_f, y), mc_error,
        "" if error is not None else pde_error_missing or "none was given",
        float(resolve_factor))
