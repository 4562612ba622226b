"""Which modes of the particle-limit gap heal, and how fast (issue 15, items 2 and 3).

Setting: ``examples/bump_circle.toml`` (theta = z on the circle, s(x; z) = a exp((cos(x - z)
- 1) / w^2), a = 2, w = 0.5, 64 lattice points, y = f_{rho*} for a von Mises mixture), run
to long times. The gap g(n, t) = rms over seeds of ||f_n(t) - f_rho(t)||_{L2(mu)} is split

- into Fourier modes of the lattice, |g_k|^2 = |ghat_k|^2 + |ghat_-k|^2 (Parseval:
  sum_k |g_k|^2 = g^2); mode 0 is exactly 0: moving z does not change the mean of f;
- into the eigenmodes u_j of the limit's tangent-kernel operator at the last time,
  (A r)(x_m) = sum_m' K(x_m, x_m') w_m' r(x_m'),  K(x, x') = int d_z s(x; z) d_z s(x'; z) rho(dz)
  (the linearised dynamics of f near the limit is d g/dt = -A_t g), with eigenvalues lambda_j.

Predicted healing of Fourier mode k: the power of a fluctuation in mode k decays like
exp(-H_k(t)), H_k(t) = 2 int_0^t lambda_k(s) ds, lambda_k(t) the Rayleigh quotient of A_t on
cos(kx), sin(kx) (rho_t from the limit at every step of a fine time grid).

The limit: Lagrangian characteristics (``solver.reference.lagrangian``: the "grid" rule,
a periodic trapezoid of rho_0 with ``4 nodes`` points, DOP853 at rtol 1e-11) and its error
budget: the same flow with twice the nodes (``lagrangian_flow``). The particles:
``particle_check.particles.simulate`` (Dormand-Prince, rtol 1e-9) with per-task seeds
SeedSequence(entropy, (n, seed)), and their own error budget: the largest width's first
seed again at rtol / 100.

Reports: alpha(t) over widths >= 64 with 90% bootstrap intervals (seeds resampled per
width), for the whole gap, the low Fourier modes and the healed eigenmodes; n g^2 / MC(t)
per width; per Fourier mode n |g_k|^2 against exp(-H_k); the fit g^2 = R(t)/n + B(t)/n^2
and the width n_c(t) = B/R below which the n^-2 term dominates (the time each width leaves
the n^-1/2 regime); the particle loss against n at the last time with its exponent.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.healing_modes --size small
(the study itself, with figures and a run directory: ``examples/long_time_gap.py``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import nnls

from particle_check.compare import fit_exponents, local_exponents
from particle_check.particles import simulate
from solver.config import load
from solver.model import functionals
from solver.model.problem import Problem
from solver.reference.lagrangian import initial_nodes, lagrangian_flow, velocity

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "bump_circle.toml"
LEVEL = 0.9
RESAMPLES = 2000
#: widths at and above this enter the fits of alpha (the issue's range)
FIT_MIN = 64
#: a Fourier mode counts as healed when its predicted power factor exp(-H_k) < e^-HEALED
HEALED = np.log(100.0)
#: the widths >= LARGE * the largest one are the n^-1/2 reference of the leave time
LARGE = 0.25


@dataclass(frozen=True)
class Study:
    widths: tuple[int, ...]
    seeds: int
    times: tuple[float, ...]
    nodes: int          # trapezoid panels of the limit's initial rule (4 nodes each)
    rtol: float = 1e-9  # particles (Dormand-Prince); atol = rtol / 100
    entropy: int = 15
    fine_times: int = 400  # grid of the kernel's time integral H_k(t)


SIZES = {
    "small": Study(widths=(16, 64, 256, 1024), seeds=6,
                   times=(0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0), nodes=128),
    "full": Study(widths=(8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
                  seeds=32, times=(0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 50.0, 100.0,
                                   200.0, 300.0, 500.0, 1000.0, 2000.0, 3000.0), nodes=1024),
}


def bump_problem() -> Problem:
    return load(CONFIG).problem


# --- the limit ------------------------------------------------------------------------------


@dataclass
class Limit:
    times: np.ndarray        # (T,) output times
    f: np.ndarray            # (T, M) f_rho(t) at the data
    loss: np.ndarray         # (T,)
    mc: np.ndarray           # (T,) MC(t)
    error: np.ndarray        # (T,) ||f(nodes) - f(2 nodes)||_{L2(mu)}, the error budget
    fine: np.ndarray         # (F,) the fine time grid of the kernel
    lam_fourier: np.ndarray  # (F, K) Rayleigh quotients of A_t on Fourier modes k = 0..M/2
    heal: np.ndarray         # (T, K) H_k(t) = 2 int_0^t lambda_k
    eig: np.ndarray          # (M,) eigenvalues of A at the last time, decreasing
    modes: np.ndarray        # (M, M) its eigenvectors (columns), orthonormal in L2(mu)
    nodes: int
    wall: float


def fourier_basis(M: int) -> np.ndarray:
    """(M, M) real Fourier basis of the lattice x_m = 2 pi m / M, orthonormal in L2(mu) (weights
    1/M): columns 1, sqrt2 cos kx, sqrt2 sin kx (k < M/2), cos (M/2) x."""
    x = 2 * np.pi * np.arange(M) / M
    cols = [np.ones(M)]
    for k in range(1, M // 2):
        cols += [np.sqrt(2) * np.cos(k * x), np.sqrt(2) * np.sin(k * x)]
    cols.append(np.cos(M // 2 * x))
    return np.column_stack(cols)


def mode_of_column(M: int) -> np.ndarray:
    """The Fourier mode |k| of each column of ``fourier_basis``."""
    return np.array([0] + [k for k in range(1, M // 2) for _ in range(2)] + [M // 2])


def fourier_power(d: np.ndarray) -> np.ndarray:
    """|g_k|^2 for k = 0..M/2 of d (..., M) on the uniform lattice (sum over k = ||d||^2_mu)."""
    M = d.shape[-1]
    c = np.abs(np.fft.fft(d, axis=-1) / M) ** 2
    out = np.zeros((*d.shape[:-1], M // 2 + 1))
    out[..., 0] = c[..., 0]
    out[..., 1:M // 2] = c[..., 1:M // 2] + c[..., M - 1:M // 2:-1]
    out[..., M // 2] = c[..., M // 2]
    return out


def kernel(problem: Problem, theta: np.ndarray, W: np.ndarray) -> np.ndarray:
    """K(x_m, x_m') = sum_q W_q d_z s(x_m; z_q) d_z s(x_m'; z_q), (M, M)."""
    G = problem.unit.gradients(problem.data.points, theta)[..., 0]   # (M, Q)
    return (G * W) @ G.T


def limit(problem: Problem, times: np.ndarray, nodes: int, fine_times: int = 400) -> Limit:
    """The limit along its characteristics, the tangent kernel on a fine time grid, and the
    error budget from twice the nodes (``lagrangian_flow``)."""
    start = time.perf_counter()
    times = np.asarray(times, dtype=float)
    fine = np.unique(np.concatenate([times, np.geomspace(1e-3, times[-1], fine_times),
                                     np.linspace(0, times[-1], fine_times)]))
    theta0, W, _, _ = initial_nodes(problem, nodes, "grid")

    def rhs(_t, z):
        return velocity(problem, z[:, None], W)[0][:, 0]

    sol = solve_ivp(rhs, (0.0, fine[-1]), theta0[:, 0], method="DOP853", t_eval=fine,
                    rtol=1e-11, atol=1e-13)
    if not sol.success:
        raise RuntimeError(f"limit: {sol.message}")
    M = problem.data.size
    w = problem.data.weights
    basis = fourier_basis(M)
    k_of = mode_of_column(M)
    lam = np.zeros((len(fine), M // 2 + 1))
    for i in range(len(fine)):
        K = kernel(problem, sol.y[:, i, None], W)
        Wb = basis * w[:, None]
        rq = np.einsum("mc,mn,nc->c", Wb, K, Wb)  # <e_c, A e_c>_mu
        lam[i] = np.bincount(k_of, rq) / np.bincount(k_of)
    steps = np.diff(fine)[:, None] * (lam[1:] + lam[:-1]) / 2
    cum = np.vstack([np.zeros((1, lam.shape[1])), np.cumsum(steps, axis=0)])
    at = np.searchsorted(fine, times)
    f, loss, mc = [], [], []
    for i in at:
        theta = sol.y[:, i, None]
        S = functionals.UnitMatrix(problem, theta)
        fi = S.forward(W)
        f.append(fi)
        loss.append(functionals.loss(problem, fi))
        mc.append(functionals.mc_variance(problem, fi, S.forward_squared(W)))
    f = np.array(f)
    K = kernel(problem, sol.y[:, -1, None], W)
    sw = np.sqrt(w)
    eig, V = np.linalg.eigh(sw[:, None] * K * sw[None, :])
    order = np.argsort(eig)[::-1]
    eig, modes = eig[order], V[:, order] / sw[:, None]
    check = lagrangian_flow(problem, times, nodes=2 * nodes, rule="grid", integrator="dop853",
                            rtol=1e-11, atol=1e-13)
    error = np.sqrt(((f - check.f) ** 2) @ w)
    return Limit(times, f, np.array(loss), np.array(mc), error, fine, lam, 2 * cum[at], eig,
                 modes, nodes, time.perf_counter() - start)


# --- the particles --------------------------------------------------------------------------


@dataclass
class Ensemble:
    widths: np.ndarray
    d: list[np.ndarray]      # per width (S, T, M): f_n - f_rho at the data
    loss: list[np.ndarray]   # per width (S, T): the particle loss
    integrator_error: np.ndarray  # (T,) ||f(rtol) - f(rtol/100)|| for the largest width
    wall: dict[int, float]


def ensemble(problem: Problem, study: Study, lim: Limit, progress: bool = False) -> Ensemble:
    d, losses, wall = [], [], {}
    times = lim.times
    for n in study.widths:
        start = time.perf_counter()
        dn, ln = [], []
        for s in range(study.seeds):
            rng = np.random.default_rng(np.random.SeedSequence(study.entropy, spawn_key=(n, s)))
            run = simulate(problem, problem.sample_initial(rng, n), times, 0.05, "adaptive",
                           rtol=study.rtol, atol=study.rtol / 100)
            dn.append(run.f - lim.f)
            ln.append(run.loss)
        d.append(np.array(dn))
        losses.append(np.array(ln))
        wall[n] = time.perf_counter() - start
        if progress:
            print(f"  n = {n}: {study.seeds} seeds in {wall[n]:.1f} s", flush=True)
    n = study.widths[-1]
    rng = np.random.default_rng(np.random.SeedSequence(study.entropy, spawn_key=(n, 0)))
    tight = simulate(problem, problem.sample_initial(rng, n), times, 0.05, "adaptive",
                     rtol=study.rtol / 100, atol=study.rtol / 1e4)
    err = np.sqrt(((d[-1][0] + lim.f - tight.f) ** 2) @ problem.data.weights)
    return Ensemble(np.array(study.widths), d, losses, err, wall)


# --- analysis -------------------------------------------------------------------------------


def _boot_counts(seeds: list[int], rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.multinomial(s, np.full(s, 1 / s), size=RESAMPLES) / s for s in seeds]


def alpha_band(widths: np.ndarray, sq: list[np.ndarray], mask: np.ndarray,
               counts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """alpha(t) of the rms over seeds of a squared gap sq[i] (S_i, T), fitted over the widths in
    ``mask`` (W,), with the 90% bootstrap interval (same resamples ``counts`` for every call)."""
    m = np.repeat(np.asarray(mask)[:, None], sq[0].shape[1], axis=1)
    g = np.sqrt(np.array([s.mean(axis=0) for s in sq]))
    alpha = fit_exponents(widths, g, m)
    boot = np.sqrt(np.stack([c @ s for c, s in zip(counts, sq, strict=True)], axis=1))
    q = 100 * np.array([(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    lo, hi = np.percentile(fit_exponents(widths, boot, m), q, axis=0)
    return alpha, lo, hi


def fit_r_b(widths: np.ndarray, g2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per time, g^2 = R/n + B/n^2 with R, B >= 0, least squares in relative error."""
    R, B = np.zeros(g2.shape[1]), np.zeros(g2.shape[1])
    n = widths.astype(float)
    for j in range(g2.shape[1]):
        A = np.column_stack([1 / n, 1 / n**2]) / g2[:, j, None]
        (R[j], B[j]), _ = nnls(A, np.ones(len(n)))
    return R, B


def crossing_time(times: np.ndarray, values: np.ndarray, level: float) -> float:
    """First time (log-linear interpolation) at which ``values`` falls below ``level``."""
    below = np.nonzero(values <= level)[0]
    if below.size == 0:
        return float("nan")
    j = below[0]
    if j == 0:
        return float(times[0])
    t0, t1 = times[j - 1], times[j]
    v0, v1 = np.log(values[j - 1]), np.log(values[j])
    s = (np.log(level) - v0) / (v1 - v0)
    if t0 <= 0:
        return float(t0 + s * (t1 - t0))
    return float(np.exp(np.log(t0) + s * (np.log(t1) - np.log(t0))))


def excess_exponent(widths: np.ndarray, losses: list[np.ndarray], limit_loss: float,
                    counts: list[np.ndarray]) -> tuple[float, float, float]:
    """Exponent of the particle loss's excess over the limit's, E L_n - L_rho ~ n^-p, with its
    bootstrap interval, over the widths >= FIT_MIN where the excess is resolved (above twice
    its standard error over seeds; L_n - L_rho = <f_rho - y, d> + |d|^2 / 2 and the first term
    averages out only over many seeds)."""
    ex = np.array([x.mean() - limit_loss for x in losses])
    se = np.array([x.std(ddof=1) / np.sqrt(len(x)) for x in losses])
    use = (widths >= FIT_MIN) & (ex > 2 * se)
    if use.sum() < 2:
        return float("nan"), float("nan"), float("nan")
    m = use[:, None]
    a = float(fit_exponents(widths, ex[:, None], m)[0])
    boot = np.stack([c @ x for c, x in zip(counts, losses, strict=True)], axis=1) - limit_loss
    q = 100 * np.array([(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    lo, hi = np.nanpercentile(fit_exponents(widths, np.maximum(boot, 1e-300)[..., None], m)[:, 0],
                              q)
    return a, float(lo), float(hi)


def from_raw(path: Path, entropy: int = 0) -> None:
    """Print, at the last time of a run's raw.npz, the loss excess per width (E L_n - L_rho, its
    standard error, the mean |d|^2 / 2) and its exponent over the resolved widths >= FIT_MIN,
    and the seed-averaged gap ||E d||^2 (the O(1/n) bias; unbiased, with the standard error
    ||Var d||_mu / S of the estimate)."""
    z = np.load(path)
    widths = np.array(sorted(int(k[len("loss_n"):]) for k in z.files if k.startswith("loss_n")))
    problem = bump_problem()
    f = z["f_limit"][-1]
    limit_loss = functionals.loss(problem, f)
    losses = [z[f"loss_n{n}"][:, -1] for n in widths]
    print(f"t = {z['times'][-1]:g}, limit loss {limit_loss:.3g}")
    print("| n | E L_n - L_rho | standard error | E |d|^2 / 2 | |E d|^2 (bias) | its standard "
          "error |\n|---|---|---|---|---|---|")
    w = problem.data.weights
    for n, x in zip(widths, losses, strict=True):
        d = z[f"d_n{n}"][:, -1]
        half = 0.5 * ((d**2) @ w).mean()
        S = len(d)
        mean = d.mean(axis=0)
        var = ((d - mean) ** 2).sum(axis=0) / (S - 1) @ w / S   # of the mean, in L2(mu)
        bias = mean**2 @ w - var   # unbiased estimate of ||E d||^2
        print(f"| {n} | {x.mean() - limit_loss:.3g} | {x.std(ddof=1) / np.sqrt(S):.2g} | "
              f"{half:.3g} | {bias:.2g} | {var:.1g} |")
    counts = _boot_counts([len(x) for x in losses], np.random.default_rng(entropy))
    a, lo, hi = excess_exponent(widths, losses, limit_loss, counts)
    print(f"excess ~ n^-p over the resolved widths >= {FIT_MIN}: p = {a:.3f} [{lo:.3f}, {hi:.3f}]")


def analyse(problem: Problem, lim: Limit, ens: Ensemble, entropy: int = 0) -> dict:
    """Every number the report quotes (see the module docstring)."""
    widths, times = ens.widths, lim.times
    w = problem.data.weights
    fit = widths >= FIT_MIN
    counts = _boot_counts([len(d) for d in ens.d], np.random.default_rng(entropy))
    fp = [fourier_power(d) for d in ens.d]                       # (S, T, K)
    ep = [((d * w) @ lim.modes) ** 2 for d in ens.d]             # (S, T, M): eigen power
    sq = [p.sum(axis=-1) for p in fp]                            # (S, T): ||d||^2
    g2 = np.array([s.mean(axis=0) for s in sq])                  # (W, T)
    out: dict = {"widths": widths.tolist(), "times": times.tolist(),
                 "seeds": [len(d) for d in ens.d]}
    a, lo, hi = alpha_band(widths, sq, fit, counts)
    out["alpha"] = {"value": a.tolist(), "lo": lo.tolist(), "hi": hi.tolist()}
    loc = local_exponents(widths, np.sqrt(g2), np.ones_like(g2, dtype=bool))
    out["local_alpha_final"] = loc[:, -1].tolist()
    out["n_g2_over_mc"] = (widths[:, None] * g2 / lim.mc[None, :]).tolist()
    # Fourier modes
    nk = np.array([widths[i] * fp[i].mean(axis=0) for i in range(len(widths))])  # (W, T, K)
    pooled = nk[fit].mean(axis=0)                                                # (T, K)
    out["mode0_max"] = float(np.max([p[..., 0].max() for p in fp]))
    out["n_gk2_pooled"] = pooled[:, :13].tolist()
    out["heal_predicted"] = lim.heal[:, :13].tolist()
    out["lambda_k_final"] = lim.lam_fourier[-1, :13].tolist()
    meas, pred = [], []
    for k in range(1, 13):
        meas.append(crossing_time(times, pooled[:, k] / pooled[0, k], np.exp(-HEALED)))
        pred.append(crossing_time(times, np.exp(-lim.heal[:, k]), np.exp(-HEALED)))
    out["healing_time"] = {"k": list(range(1, 13)), "measured": meas, "predicted": pred}
    for kmax in (1, 2, 3, 4):
        s_low = [p[..., 1:kmax + 1].sum(axis=-1) for p in fp]
        a, lo, hi = alpha_band(widths, s_low, fit, counts)
        out[f"alpha_fourier_le{kmax}"] = {"value": a.tolist(), "lo": lo.tolist(),
                                          "hi": hi.tolist()}
    # eigenmodes of the last time's kernel: healed = 2 lambda_j t >= HEALED at that time
    out["eig"] = lim.eig[:16].tolist()
    healed_sq, unhealed_sq = [], []
    for p in ep:
        heal = 2 * lim.eig[None, :] * times[:, None] >= HEALED           # (T, M)
        healed_sq.append(np.where(heal[None], p, 0.0).sum(axis=-1))
        unhealed_sq.append(np.where(heal[None], 0.0, p).sum(axis=-1))
    has = (2 * lim.eig[0] * times >= HEALED)
    for name, s in (("alpha_healed_eig", healed_sq), ("alpha_unhealed_eig", unhealed_sq)):
        a, lo, hi = alpha_band(widths, s, fit, counts)
        if name == "alpha_healed_eig":
            a, lo, hi = (np.where(has, v, np.nan) for v in (a, lo, hi))
        out[name] = {"value": a.tolist(), "lo": lo.tolist(), "hi": hi.tolist()}
    out["healed_eig_count"] = (2 * lim.eig[None, :] * times[:, None] >= HEALED).sum(1).tolist()
    hs = np.array([s.mean(axis=0) for s in healed_sq])
    out["n_healed_eig_pooled"] = (widths[fit, None] * hs[fit]).mean(axis=0).tolist()
    # g^2 = R/n + B/n^2 over all widths; n_c = B / R; leave time per width
    R, B = fit_r_b(widths, g2)
    with np.errstate(divide="ignore", invalid="ignore"):
        nc = np.where(R > 0, B / R, np.inf)
    out["R"], out["B"], out["n_c"] = R.tolist(), B.tolist(), nc.tolist()
    # the time each width leaves the n^-1/2 regime: from then on its n g^2 exceeds twice that
    # of the largest widths (pooled), i.e. an n^-2 term as large as the n^-1 one
    big = widths >= LARGE * widths.max()
    ref = (widths[big, None] * g2[big]).mean(axis=0)
    ratio = widths[:, None] * g2 / ref[None, :]
    out["ratio_to_largest"] = ratio.tolist()
    leave = {}
    for i, n in enumerate(widths):
        below = np.nonzero(ratio[i] < 2.0)[0]  # leaves for good: >= 2 from then on
        j = 0 if below.size == 0 else below[-1] + 1
        leave[int(n)] = float(times[j]) if j < len(times) else None
    out["leave_time"] = leave
    # the particle loss at the last time against n
    L = np.array([ln[:, -1].mean() for ln in ens.loss])
    boot = np.stack([c @ ln[:, -1] for c, ln in zip(counts, ens.loss, strict=True)], axis=1)
    q = 100 * np.array([(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    m = fit[:, None]
    aL = float(fit_exponents(widths, L[:, None], m)[0])
    loL, hiL = np.percentile(fit_exponents(widths, boot[..., None], m)[:, 0], q)
    aE, loE, hiE = excess_exponent(widths, [ln[:, -1] for ln in ens.loss], lim.loss[-1],
                                   counts)
    out["loss_final"] = {"n": widths.tolist(), "particles": L.tolist(),
                         "limit": float(lim.loss[-1]), "exponent": [aL, loL, hiL],
                         "excess_exponent": [aE, loE, hiE]}
    # error budgets against the smallest gaps used in the fits
    budget = np.maximum(lim.error, ens.integrator_error)
    gmin = np.sqrt(g2[fit]).min(axis=0)
    hmin = np.sqrt(hs[fit]).min(axis=0)
    out["budget"] = {"limit_error": lim.error.tolist(),
                     "integrator_error": ens.integrator_error.tolist(),
                     "smallest_gap": gmin.tolist(), "smallest_healed_eig_gap": hmin.tolist(),
                     "gap_over_budget_min": float((gmin / budget).min())}
    out["limit"] = {"loss": lim.loss.tolist(), "mc": lim.mc.tolist(), "nodes": 4 * lim.nodes,
                    "wall_s": lim.wall}
    out["particle_wall_s"] = {int(k): v for k, v in ens.wall.items()}
    return out


def _fmt(x: float) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.3g}"


def table(res: dict) -> str:
    """The report's tables (markdown)."""
    t = res["times"]
    lines = ["| t | alpha (>= 64) | alpha, Fourier k <= 2 | alpha, healed eigenmodes "
             "(count) | alpha, unhealed eigenmodes | n_c = B/R | limit loss |",
             "|---|---|---|---|---|---|---|"]
    for j, tj in enumerate(t):
        def band(key, j=j):
            v = res[key]
            return f"{_fmt(v['value'][j])} [{_fmt(v['lo'][j])}, {_fmt(v['hi'][j])}]"
        lines.append(f"| {tj:g} | {band('alpha')} | {band('alpha_fourier_le2')} | "
                     f"{band('alpha_healed_eig')} ({res['healed_eig_count'][j]}) | "
                     f"{band('alpha_unhealed_eig')} | {_fmt(res['n_c'][j])} | "
                     f"{res['limit']['loss'][j]:.3g} |")
    lines += ["", "n g^2 / MC(t) per width:", "",
              "| n | " + " | ".join(f"t={x:g}" for x in t) + " |",
              "|---|" + "---|" * len(t)]
    for n, row in zip(res["widths"], res["n_g2_over_mc"], strict=True):
        lines.append(f"| {n} | " + " | ".join(f"{v:.2g}" for v in row) + " |")
    h = res["healing_time"]
    lines += ["", "Healing time of Fourier mode k (power down by 100x): measured (pooled "
              "widths >= 64) vs predicted from the limit's kernel, exp(-2 int lambda_k):", "",
              "| k | lambda_k(t_final) | measured | predicted |", "|---|---|---|---|"]
    for i, k in enumerate(h["k"]):
        lines.append(f"| {k} | {res['lambda_k_final'][k]:.3g} | {_fmt(h['measured'][i])} | "
                     f"{_fmt(h['predicted'][i])} |")
    lf = res["loss_final"]
    lines += ["", f"Particle loss at t = {t[-1]:g} against n (limit {lf['limit']:.3g}): "
              f"exponent {lf['exponent'][0]:.3f} [{lf['exponent'][1]:.3f}, "
              f"{lf['exponent'][2]:.3f}]; of the excess over the limit "
              f"{lf['excess_exponent'][0]:.3f} [{lf['excess_exponent'][1]:.3f}, "
              f"{lf['excess_exponent'][2]:.3f}] over the widths >= 64 where it is resolved "
              "(RVE: 1 or 2)", "",
              "| n | loss | n g^2 / (n g^2 of the largest widths) at the end | "
              "leaves n^-1/2 (that ratio >= 2) at t |",
              "|---|---|---|---|"]
    for i, (n, L) in enumerate(zip(lf["n"], lf["particles"], strict=True)):
        lt = res["leave_time"][n] if n in res["leave_time"] else res["leave_time"][str(n)]
        lines.append(f"| {n} | {L:.3g} | {res['ratio_to_largest'][i][-1]:.3g} | "
                     f"{'never' if lt is None else f'{lt:g}'} |")
    b = res["budget"]
    lines += ["", f"Error budget: limit (nodes vs 2x nodes) <= {max(b['limit_error']):.2g}, "
              f"particle integrator (rtol vs rtol/100) <= {max(b['integrator_error']):.2g}; "
              f"smallest gap used / budget >= {b['gap_over_budget_min']:.3g}."]
    return "\n".join(lines)


def figure(res: dict, path: Path) -> None:
    """Four panels: alpha(t); n g^2/MC per width; n |g_k|^2 per mode vs exp(-H_k); loss vs n."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array(res["times"])
    tp = np.where(t > 0, t, np.nan)
    fig, ax = plt.subplots(2, 2, figsize=(12, 9))
    a = ax[0, 0]
    for key, label, color in (("alpha", "whole gap", "k"),
                              ("alpha_fourier_le2", "Fourier modes k <= 2", "tab:blue"),
                              ("alpha_healed_eig", "healed eigenmodes of A", "tab:red"),
                              ("alpha_unhealed_eig", "unhealed eigenmodes", "tab:green")):
        v = res[key]
        a.plot(tp, v["value"], "-o", color=color, ms=3, label=label)
        a.fill_between(tp, v["lo"], v["hi"], color=color, alpha=0.2)
    a.axhline(0.5, ls=":", c="gray")
    a.axhline(1.0, ls=":", c="gray")
    a.set_xscale("log")
    a.set_xlabel("t")
    a.set_ylabel("alpha (widths >= 64), 90% band")
    a.legend(fontsize=8)
    a.set_title("gap ~ n^-alpha")
    a = ax[0, 1]
    cmap = plt.get_cmap("viridis")
    W = len(res["widths"])
    for i, (n, row) in enumerate(zip(res["widths"], res["n_g2_over_mc"], strict=True)):
        a.loglog(tp, row, color=cmap(i / max(1, W - 1)), label=f"n={n}")
    a.loglog(tp, 0.05 / tp, "k--", lw=1, label="0.05/t")
    a.set_xlabel("t")
    a.set_ylabel("n gap^2 / MC(t)")
    a.legend(fontsize=7, ncol=2)
    a = ax[1, 0]
    P = np.array(res["n_gk2_pooled"])
    H = np.array(res["heal_predicted"])
    for k in range(1, min(10, P.shape[1])):
        c = plt.get_cmap("tab10")(k - 1)
        a.loglog(tp, P[:, k], "-", color=c, label=f"k={k}")
        a.loglog(tp, P[0, k] * np.exp(-H[:, k]), "--", color=c, lw=1)
    a.set_ylim(max(P[:, 1:10].min() / 3, 1e-16), P.max() * 3)
    a.set_xlabel("t")
    a.set_ylabel("n |g_k|^2 (widths >= 64 pooled); dashed: exp(-2 int lambda_k)")
    a.legend(fontsize=7, ncol=2)
    a = ax[1, 1]
    lf = res["loss_final"]
    n = np.array(lf["n"], dtype=float)
    L = np.array(lf["particles"])
    a.loglog(n, L, "o-", label="particle loss")
    a.loglog(n, L - lf["limit"], "s-", label="excess over the limit")
    a.axhline(lf["limit"], c="gray", ls=":", label="limit")
    ref = n >= FIT_MIN
    for p, ls in ((1, "--"), (2, "-.")):
        a.loglog(n[ref], L[ref][0] * (n[ref] / n[ref][0]) ** -p, "k" + ls, lw=1,
                 label=f"n^-{p}")
    e = lf["exponent"]
    a.set_title(f"loss at t = {t[-1]:g}: n^-({e[0]:.2f} [{e[1]:.2f}, {e[2]:.2f}])")
    a.set_xlabel("n")
    a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pde_check(t_final: float, cells: int = 512, nodes: int = 1024, outputs: int = 10
              ) -> tuple[np.ndarray, np.ndarray, float]:
    """The config's own limit (DG2, SSP-RK3, ``cells`` cells: needs DOLFINx) against the
    Lagrangian one at its output times: (times, ||f_DG2 - f_Lagrangian||_{L2(mu)}, DG wall)."""
    from dataclasses import replace

    from mpi4py import MPI

    from solver.pde.solve import solve

    cfg = load(CONFIG)
    problem = replace(cfg.problem, t_final=t_final)
    settings = replace(cfg.pde, cells=(cells,), outputs=outputs, snapshots=0, progress=False)
    start = time.perf_counter()
    dg = solve(problem, settings, None, MPI.COMM_SELF)
    wall = time.perf_counter() - start
    lag = lagrangian_flow(problem, dg.times, nodes=nodes, rule="grid", integrator="dop853",
                          rtol=1e-11, atol=1e-13)
    return dg.times, np.sqrt(((dg.f - lag.f) ** 2) @ problem.data.weights), wall


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--size", choices=tuple(SIZES), default="small")
    parser.add_argument("--raw", type=Path, default=None,
                        help="only print the loss excess against n from a run's raw.npz")
    parser.add_argument("--pde-check", type=float, default=None, metavar="T",
                        help="only compare DG2 (512 cells) with the Lagrangian limit to t = T")
    args = parser.parse_args(argv)
    if args.raw is not None:
        from_raw(args.raw)
        return {}
    if args.pde_check is not None:
        from solver.errors import SchemeFailure

        for cells in (256, 512, 1024):
            try:
                t, err, wall = pde_check(args.pde_check, cells)
            except SchemeFailure as exc:
                print(f"DG2 {cells} cells: {exc}")
                continue
            pairs = ", ".join(f"t={a:g}: {b:.2g}" for a, b in zip(t, err, strict=True))
            print(f"DG2 {cells} cells ({wall:.1f} s) vs Lagrangian 4096 nodes, "
                  f"||f_DG2 - f_Lag||: {pairs}")
        return {}
    study = SIZES[args.size]
    problem = bump_problem()
    lim = limit(problem, np.array(study.times), study.nodes, study.fine_times)
    ens = ensemble(problem, study, lim, progress=True)
    res = analyse(problem, lim, ens)
    print(table(res))
    return res


if __name__ == "__main__":
    main()
