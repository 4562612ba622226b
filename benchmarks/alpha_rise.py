"""A setting where the gap's exponent alpha(t) rises from 1/2 to 1 (issue 15, item 2).

Why bump_circle cannot show it (``benchmarks/healing_modes.py``): Fourier mode k of the gap
heals at the tangent-kernel rate lambda_k ~ k^2 |s_k|^2, and its initial power is ~|s_k|^2,
so with the Gaussian spectrum of a bump the unhealed modes keep an n^-1/2 part whose weight
decays only algebraically in t; and every width >= 16 fits the 64 data points, so the n^-1
part (the finite network's own approximation error at equilibrium) is absent.

The design here makes both parts explicit. theta = z on the circle, and the unit is a
*steep step* (a smoothed sawtooth, the circle's version of a sharp sigmoid):

    s(x; z) = a saw_eps(x - z),  saw_eps(u) = Phi(u / eps) - 1/2 - u / (2 pi),  u in [-pi, pi),

Phi the standard normal CDF: a jump of height a at x = z smoothed over eps, a linear ramp
back (mean zero). Its spectrum is algebraic, |s_k| = a e^{-eps^2 k^2 / 2} / (2 pi k), so
k^2 |s_k|^2 = a^2 e^{-eps^2 k^2} / (4 pi^2) is flat up to k ~ 1/eps: every mode heals at
the same O(1) rate. In closed form (eps -> 0, data uniform on the circle): f_rho(x) =
a (F_rho(x) - x / 2 pi) + const with F_rho the CDF of rho, the velocity of a unit is
v(z) = (a / 2 pi) (r_eps(z) - <r>), r = f_rho - y, and the residual obeys

    d r / dt = -(a^2 / 2 pi) (rho_t r - <rho_t r>):

it decays pointwise at the local rate lambda(x) = a^2 rho_t(x) / (2 pi), for the limit and for
the n-unit fluctuation alike. The n-unit network f_n = a (F_n - x / 2 pi) + const is a
staircase with steps a / n; it cannot fit a smooth target (n parameters against M >> n data
points that resolve the steps), and its best fit, steps centred on y (the quantiles of rho*),
misses by a sawtooth of rms a / (n sqrt 12) in every cell. Hence, with MC(0) = a^2 / 12 for
rho_0 uniform (the periodic Brownian bridge), the prediction

    gap^2(n, t) ~ R(t) / n + B / n^2,  R(0) = a^2 / 12,  R(t) ~ e^{-2 lambda t} R(0),  B = a^2 / 12,

so alpha goes from 1/2 to 1 once n e^{-2 lambda t} << 1 for every n in the fit, i.e. at
t ~ ln(n_max) / (2 lambda). The steps must stay sharp against their spacing,
eps n rho* <= 0.05 at the largest width (else the smoothing lowers B below a^2/12 and the
exponent overshoots 1; ``predicted_b`` gives B(n) with the smoothing), and the lattice must
resolve eps (h = 2 pi / M <= eps / 3), so M >> n.

Target: y = f_{rho*} for rho* = (1 + sum_j c_j cos(k_j (z - mu_j))) / 2 pi (closed form below);
rho_0 uniform. The limit is its Lagrangian flow (equal-weight nodes of rho_0, DOP853), with
the error budget from twice the nodes; the particles run the same right-hand side with
weights 1/n. The right-hand side is evaluated sparsely, O(M + n eps / h): the sawtooth part
by prefix sums over the sorted positions, the Phi part on the lattice points within 8.5 eps of
each unit (``dense_problem`` is the same unit as a ``CallableUnit`` for the dense tools;
tests/test_alpha_rise.py checks the two agree).

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.alpha_rise --size small
      (under mpiexec -n N the (width, seed) runs and the limit's two node sets are dealt
      over the ranks; the results do not depend on N)
      (--size full --json runs/alpha-rise.json --plot docs/figures/alpha_rise.png: the README's
      figure)
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp
from scipy.special import ndtr

from benchmarks import healing_modes as hm
from particle_check.compare import fit_exponents, local_exponents

TWO_PI = 2 * np.pi
#: the local Phi part is evaluated within HALO * eps of each unit (Phi(-8.5) ~ 1e-17)
HALO = 8.5
LEVEL = hm.LEVEL


@dataclass(frozen=True)
class Setting:
    M: int                      # lattice points
    eps: float                  # step width
    amplitude: float = TWO_PI   # a
    # rho* = (1 + sum c_j cos(k_j (z - mu_j))) / 2 pi
    modes: tuple[tuple[float, int, float], ...] = ((0.35, 1, 1.0), (0.15, 2, -2.0))

    @property
    def h(self) -> float:
        return TWO_PI / self.M


@dataclass(frozen=True)
class Study:
    setting: Setting
    widths: tuple[int, ...]
    seeds: int
    times: tuple[float, ...]
    nodes: int                  # limit: equal-weight nodes of rho_0 (twice as many: budget)
    rtol: float = 1e-9
    entropy: int = 2024
    fit_min: int = 16


SIZES = {
    "small": Study(Setting(M=4096, eps=2e-3), widths=(8, 16, 32, 64), seeds=8,
                   times=(0.0, 1.0, 2.0, 4.0, 8.0, 12.0), nodes=4096),
    "full": Study(Setting(M=2**15, eps=2.5e-4), widths=(8, 16, 32, 64, 128, 256, 512, 1024),
                  seeds=32, times=(0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0,
                                   20.0), nodes=2**16),
    # two decades over the widths >= 64: eps n rho*_max = 0.049 at n = 8192, h = eps / 4.2
    "wide": Study(Setting(M=2**20, eps=2.5e-5), widths=(16, 32, 64, 128, 256, 512, 1024, 2048,
                                                        4096, 8192),
                  seeds=16, times=(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0),
                  nodes=2**17),
    # widths 64..16384 (issue 15's range): M = 2^21, eps n rho*_max = 0.049 at n = 16384
    "decades": Study(Setting(M=2**21, eps=1.25e-5), widths=(64, 128, 256, 512, 1024, 2048, 4096,
                                                            8192, 16384),
                     seeds=16, times=(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0),
                     nodes=2**17, fit_min=64),
}


class SawtoothLattice:
    """The unit a saw_eps(x - z) on the lattice x_m = 2 pi m / M (weights 1/M): f, the
    velocity -d_z Psi and the MC variance for weighted positions, in O(M + Q eps / h)."""

    def __init__(self, setting: Setting) -> None:
        self.s = setting
        self.M, self.eps, self.a = setting.M, setting.eps, setting.amplitude
        self.x = TWO_PI * np.arange(self.M) / self.M
        self.J = int(np.ceil(2 * HALO * self.eps / setting.h)) + 2
        self.y = self.target(self.x)
        # E_mu s(x; z)^2, the same for every z up to the lattice's (spectrally small) error
        self.s2 = float(np.mean(self.values_dense(self.x, np.array([0.3 * setting.h])) ** 2))

    # the unit itself, dense (for checks and the CallableUnit)
    def values_dense(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        u = np.mod(x[:, None] - z[None, :] + np.pi, TWO_PI) - np.pi
        return self.a * (ndtr(u / self.eps) - 0.5 - u / TWO_PI)

    def gradients_dense(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        u = np.mod(x[:, None] - z[None, :] + np.pi, TWO_PI) - np.pi
        phi = np.exp(-0.5 * (u / self.eps) ** 2) / np.sqrt(TWO_PI)
        return (-self.a * (phi / self.eps - 1 / TWO_PI))[..., None]

    def target(self, x: np.ndarray) -> np.ndarray:
        """y = f_{rho*} = (a / 2 pi) sum_j c_j e^{-eps^2 k_j^2 / 2} sin(k_j (x - mu_j)) / k_j."""
        y = np.zeros_like(x, dtype=float)
        for c, k, mu in self.s.modes:
            y += c * np.exp(-0.5 * (self.eps * k) ** 2) * np.sin(k * (x - mu)) / k
        return self.a / TWO_PI * y

    def rho_star(self, z: np.ndarray) -> np.ndarray:
        out = np.ones_like(z, dtype=float)
        for c, k, mu in self.s.modes:
            out += c * np.cos(k * (z - mu))
        return out / TWO_PI

    # sparse evaluation
    def _window(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lattice indices (Q, J) within HALO eps of each z and u = x - z there (unwrapped)."""
        h = self.s.h
        m0 = np.ceil((z - HALO * self.eps) / h).astype(np.int64)
        m = m0[:, None] + np.arange(self.J)[None, :]
        return np.mod(m, self.M), m * h - z[:, None]

    def output(self, z: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, tuple]:
        """f (M,) and the window data for ``velocity``."""
        z = np.mod(z, TWO_PI)
        order = np.argsort(z)
        zs, Ws = z[order], W[order]
        total = Ws.sum()
        cum = np.concatenate([[0.0], np.cumsum(Ws)])
        above = total - cum[np.searchsorted(zs, self.x, side="right")]
        # sum_q W_q (1/2 - ((x - z_q) mod 2 pi) / 2 pi)
        saw = total / 2 - self.x * total / TWO_PI + (Ws @ zs) / TWO_PI - above
        idx, u = self._window(z)
        t = u / self.eps
        corr = np.where(u >= 0, -1.0, 1.0) * ndtr(-np.abs(t))  # Phi(u/eps) - H(u)
        local = np.bincount(idx.ravel(), weights=(corr * W[:, None]).ravel(), minlength=self.M)
        return self.a * (saw + local), (idx, t)

    def velocity(self, z: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(-d_z Psi(z_q) (Q,), f (M,))."""
        f, (idx, t) = self.output(z, W)
        r = f - self.y
        phi = np.exp(-0.5 * t * t) / np.sqrt(TWO_PI)
        v = self.a / self.M * ((r[idx] * phi).sum(axis=1) / self.eps - r.sum() / TWO_PI)
        return v, f

    def loss(self, f: np.ndarray) -> float:
        return 0.5 * float(np.mean((f - self.y) ** 2))

    def mc(self, f: np.ndarray) -> float:
        return self.s2 - float(np.mean(f**2))

    def dense_problem(self):
        """The same problem for the generic (dense) tools: a ``CallableUnit`` on
        ``circle_lattice(M)`` with the closed-form target, rho_0 uniform on the circle."""
        from solver.model import density, quadrature, targets, units
        from solver.model.domain import Circle
        from solver.model.problem import Problem

        unit = units.CallableUnit(lambda x, th: self.values_dense(x[:, 0], th[:, 0]),
                                  lambda x, th: self.gradients_dense(x[:, 0], th[:, 0]),
                                  param_dim=1, data_dim=1, name="circle_sawtooth")
        data = quadrature.circle_lattice(self.M)
        target = targets.TabulatedTarget(data.points, self.y)
        return Problem(unit, data, target, Circle(), density.Uniform([-np.pi], [np.pi]))


def flow(lat: SawtoothLattice, z0: np.ndarray, W: np.ndarray, times: np.ndarray,
         rtol: float) -> tuple[np.ndarray, np.ndarray, int]:
    """f (T, M) and the positions (T, Q) along d z / dt = v(z) (DOP853); RHS evaluations."""
    calls = [0]

    def rhs(_t, z):
        calls[0] += 1
        return lat.velocity(z, W)[0]

    sol = solve_ivp(rhs, (times[0], times[-1]), z0, method="DOP853", t_eval=times,
                    rtol=rtol, atol=rtol * 1e-2)
    if not sol.success:
        raise RuntimeError(f"flow: {sol.message}")
    f = np.array([lat.output(sol.y[:, i], W)[0] for i in range(len(times))])
    return f, sol.y.T, calls[0]


@dataclass
class Limit:
    times: np.ndarray
    f: np.ndarray        # (T, M)
    loss: np.ndarray
    mc: np.ndarray
    error: np.ndarray    # ||f(Q) - f(2Q)||_mu
    positions: np.ndarray
    wall: float


def _split(comm) -> tuple[int, int]:
    return (0, 1) if comm is None else (comm.rank, comm.size)


def limit(lat: SawtoothLattice, times: np.ndarray, nodes: int, rtol: float = 1e-10,
          comm=None) -> Limit:
    """The limit from rho_0 uniform: Q equal-weight equispaced nodes (the periodic trapezoid,
    spectrally accurate while the smoothed steps overlap, Q eps rho >> 1), and Q -> 2Q (on
    two ranks, one each)."""
    start = time.perf_counter()
    rank, size = _split(comm)
    out = {}
    for j, Q in enumerate((nodes, 2 * nodes)):
        if j % size == rank:
            z0 = TWO_PI * (np.arange(Q) + 0.5) / Q
            out[j] = flow(lat, z0, np.full(Q, 1.0 / Q), times, rtol)[:2]
    if size > 1:
        for part in comm.allgather(out):
            out.update(part)
    f, pos = out[0]
    err = np.sqrt(np.mean((f - out[1][0]) ** 2, axis=1))
    return Limit(times, f, np.array([lat.loss(x) for x in f]), np.array([lat.mc(x) for x in f]),
                 err, pos, time.perf_counter() - start)


@dataclass
class Ensemble:
    widths: np.ndarray
    sq: list[np.ndarray]         # per width (S, T): ||f_n - f_rho||^2_mu
    loss: list[np.ndarray]       # per width (S, T)
    integrator_error: np.ndarray  # (T,) largest width, first seed: rtol vs rtol / 100
    calls: dict[int, float]
    wall: dict[int, float]       # per width: the seconds of its runs, summed over the ranks


def initial(study: Study, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence(study.entropy, spawn_key=(n, seed)))
    return rng.uniform(0.0, TWO_PI, n)


def ensemble(lat: SawtoothLattice, study: Study, lim: Limit, progress: bool = False,
             comm=None) -> Ensemble:
    """Every (width, seed) run, width-major, dealt round-robin over ``comm``'s ranks and
    gathered on all; only ||f_n - f_rho||^2 and the loss per output are kept (a run's f is
    M floats per output: 16 seeds x 11 outputs at M = 2^21 would be 3 GB per width)."""
    rank, size = _split(comm)
    widths, last = study.widths, (len(study.widths) - 1, 0)
    mine, err = {}, None
    tasks = [(i, s) for i in range(len(widths)) for s in range(study.seeds)]
    own = tasks[rank::size]
    for i, s in own:
        n, start = widths[i], time.perf_counter()
        f, _, c = flow(lat, initial(study, n, s), np.full(n, 1.0 / n), lim.times, study.rtol)
        mine[i, s] = (np.mean((f - lim.f) ** 2, axis=-1), [lat.loss(x) for x in f], c,
                      time.perf_counter() - start)
        if (i, s) == last:
            fine = flow(lat, initial(study, n, s), np.full(n, 1.0 / n), lim.times,
                        study.rtol / 100)[0]
            err = np.sqrt(np.mean((f - fine) ** 2, axis=1))
        if progress and rank == 0 and (i, s) == max(t for t in own if t[0] == i):
            runs = [v for (j, _), v in mine.items() if j == i]
            print(f"  n = {n}: {len(runs)} of {study.seeds} seeds on rank 0 in "
                  f"{sum(r[3] for r in runs):.1f} s ({np.mean([r[2] for r in runs]):.0f} RHS "
                  "per run)", flush=True)
    if size > 1:
        for part in comm.allgather((mine, err)):
            mine.update(part[0])
            err = part[1] if part[1] is not None else err
    sq, losses, calls, wall = [], [], {}, {}
    for i, n in enumerate(widths):
        runs = [mine[i, s] for s in range(study.seeds)]
        sq.append(np.array([r[0] for r in runs]))
        losses.append(np.array([r[1] for r in runs]))
        calls[n] = float(np.mean([r[2] for r in runs]))
        wall[n] = float(sum(r[3] for r in runs))
    return Ensemble(np.array(widths), sq, losses, err, calls, wall)


def predicted_b(lat: SawtoothLattice, n: np.ndarray, harmonics: int = 200) -> np.ndarray:
    """B(n) = n^2 gap^2 at the particles' equilibrium (steps centred on y at the quantiles of
    rho*, spacing 1 / (n rho*)): the sawtooth of rms a / (n sqrt 12) per cell, its harmonic j
    damped by the smoothing, e^{-(2 pi j eps n rho*)^2} in power; = a^2 / 12 as eps -> 0."""
    x = np.linspace(0, TWO_PI, 4096, endpoint=False)
    rho = lat.rho_star(x)
    j = np.arange(1, harmonics + 1)
    out = []
    for m in np.atleast_1d(n):
        damp = np.exp(-(TWO_PI * j[:, None] * lat.eps * m * rho[None, :]) ** 2)
        out.append(lat.a**2 * np.mean((damp / (2 * np.pi**2 * j[:, None] ** 2)).sum(axis=0)))
    return np.array(out)


def analyse(lat: SawtoothLattice, study: Study, lim: Limit, ens: Ensemble,
            entropy: int = 0) -> dict:
    widths, times = ens.widths, lim.times
    fit = widths >= study.fit_min
    counts = hm._boot_counts([len(x) for x in ens.sq], np.random.default_rng(entropy))
    sq = ens.sq                                                  # (S, T): ||d||^2_mu
    g2 = np.array([s.mean(axis=0) for s in sq])                  # (W, T)
    res: dict = {"widths": widths.tolist(), "times": times.tolist(), "seeds": study.seeds,
                 "M": lat.M, "eps": lat.eps, "a": lat.a, "fit_min": study.fit_min}
    a, lo, hi = hm.alpha_band(widths, sq, fit, counts)
    res["alpha"] = {"value": a.tolist(), "lo": lo.tolist(), "hi": hi.tolist()}
    big = widths >= 64
    if big.sum() >= 2 and study.fit_min < 64:
        a, lo, hi = hm.alpha_band(widths, sq, big, counts)
        res["alpha_ge64"] = {"value": a.tolist(), "lo": lo.tolist(), "hi": hi.tolist()}
    res["local_alpha"] = local_exponents(widths, np.sqrt(g2), np.ones_like(g2, bool)).tolist()
    res["n_g2_over_mc"] = (widths[:, None] * g2 / lim.mc[None, :]).tolist()
    B = predicted_b(lat, widths)
    res["n2_g2_over_b"] = (widths[:, None] ** 2 * g2 / B[:, None]).tolist()
    res["b_predicted"] = B.tolist()
    R, Bfit = hm.fit_r_b(widths[fit], g2[fit])
    res["R"], res["B"] = R.tolist(), Bfit.tolist()
    with np.errstate(divide="ignore", invalid="ignore"):
        res["n_c"] = np.where(R > 0, Bfit / R, np.inf).tolist()
    # the time each width leaves the n^-1/2 regime: its n^2 g^2 within 2x of B(n) from then on
    # (the n^-1 term at least half the gap^2)
    ratio = widths[:, None] ** 2 * g2 / B[:, None]
    leave = {}
    for i, n in enumerate(widths):
        above = np.nonzero(ratio[i] > 2.0)[0]
        j = 0 if above.size == 0 else above[-1] + 1
        leave[int(n)] = float(times[j]) if j < len(times) else None
    res["leave_time"] = leave
    # the particle loss at the last time against n
    L = np.array([x[:, -1].mean() for x in ens.loss])
    boot = np.stack([c @ x[:, -1] for c, x in zip(counts, ens.loss, strict=True)], axis=1)
    q = 100 * np.array([(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    m = fit[:, None]
    aL = float(fit_exponents(widths, L[:, None], m)[0])
    loL, hiL = np.percentile(fit_exponents(widths, boot[..., None], m)[:, 0], q)
    res["loss_final"] = {"particles": L.tolist(), "limit": float(lim.loss[-1]),
                         "exponent": [aL, float(loL), float(hiL)]}
    budget = np.maximum(lim.error, ens.integrator_error)
    gmin = np.sqrt(g2[fit]).min(axis=0)
    res["budget"] = {"limit_error": lim.error.tolist(),
                     "integrator_error": ens.integrator_error.tolist(),
                     "smallest_gap": gmin.tolist(),
                     "gap_over_budget_min": float((gmin / budget).min())}
    res["limit"] = {"loss": lim.loss.tolist(), "mc": lim.mc.tolist(), "wall_s": lim.wall}
    res["particles"] = {"wall_s": {int(k): v for k, v in ens.wall.items()},
                        "rhs_per_run": {int(k): v for k, v in ens.calls.items()}}
    return res


def _band(v: dict, j: int) -> str:
    return f"{v['value'][j]:.3f} [{v['lo'][j]:.3f}, {v['hi'][j]:.3f}]"


def table(res: dict) -> str:
    t, W = res["times"], res["widths"]
    has64 = "alpha_ge64" in res and res["fit_min"] < 64
    lines = [f"| t | alpha (widths >= {res['fit_min']}) | " + ("alpha (>= 64) | " if has64 else "")
             + "limit loss | MC | smallest gap / budget |",
             "|---|---|" + ("---|" if has64 else "") + "---|---|---|"]
    b = res["budget"]
    for j, tj in enumerate(t):
        budget = max(b["limit_error"][j], b["integrator_error"][j])
        lines.append(f"| {tj:g} | {_band(res['alpha'], j)} | "
                     + (f"{_band(res['alpha_ge64'], j)} | " if has64 else "")
                     + f"{res['limit']['loss'][j]:.3g} | {res['limit']['mc'][j]:.3g} | "
                     f"{b['smallest_gap'][j] / budget:.3g} |")
    lines += ["", "n gap^2 / MC(t) per width:", "",
              "| n | " + " | ".join(f"t={x:g}" for x in t) + " |", "|---|" + "---|" * len(t)]
    for n, row in zip(W, res["n_g2_over_mc"], strict=True):
        lines.append(f"| {n} | " + " | ".join(f"{v:.2g}" for v in row) + " |")
    lines += ["", "n^2 gap^2 / B(n) per width (B(n): the equilibrium staircase, "
              "`predicted_b`), and when the width leaves the n^-1/2 regime:", "",
              "| n | B(n) / (a^2/12) | " + " | ".join(f"t={x:g}" for x in t) + " | leaves at t |",
              "|---|---|" + "---|" * len(t) + "---|"]
    a2 = res["a"] ** 2 / 12
    for i, (n, row) in enumerate(zip(W, res["n2_g2_over_b"], strict=True)):
        lt = res["leave_time"].get(n, res["leave_time"].get(str(n)))
        lines.append(f"| {n} | {res['b_predicted'][i] / a2:.3f} | "
                     + " | ".join(f"{v:.3g}" for v in row)
                     + f" | {'never' if lt is None else f'{lt:g}'} |")
    lf = res["loss_final"]
    lines += ["", f"Particle loss at t = {t[-1]:g} (limit {lf['limit']:.3g}): "
              + ", ".join(f"n={n}: {v:.3g}" for n, v in zip(W, lf["particles"], strict=True))
              + f"; exponent over widths >= {res['fit_min']}: {lf['exponent'][0]:.3f} "
              f"[{lf['exponent'][1]:.3f}, {lf['exponent'][2]:.3f}] (RVE: 2)",
              "", f"Error budget: limit (Q vs 2Q nodes) <= {max(b['limit_error']):.2g}, "
              f"particle integrator (rtol vs rtol/100) <= {max(b['integrator_error']):.2g}; "
              f"smallest gap in the fits / budget >= {b['gap_over_budget_min']:.3g}."]
    return "\n".join(lines)


def figure(res: dict, path) -> None:
    """Four panels: alpha(t) with its 90% band (widths >= fit_min and >= 64); n gap^2 / MC(t)
    per width; n^2 gap^2 / B(n) per width; the particle loss at the last time against n with
    its fitted exponent beside n^-1 and n^-2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from solver.plots import CMAP

    t, W = np.array(res["times"]), np.array(res["widths"])
    colours = plt.get_cmap(CMAP)(np.linspace(0, 0.9, len(W)))
    fig, ax = plt.subplots(1, 4, figsize=(18, 4.2))
    for key, label in (("alpha", f"widths >= {res['fit_min']}"), ("alpha_ge64", "widths >= 64")):
        if key in res and not (key == "alpha_ge64" and res["fit_min"] >= 64):
            band = res[key]
            line, = ax[0].plot(t, band["value"], marker="o", ms=3, label=label)
            ax[0].fill_between(t, band["lo"], band["hi"], alpha=0.25, color=line.get_color())
    for level in (0.5, 1.0):
        ax[0].axhline(level, color="k", ls=":", lw=1)
    ax[0].set(xlabel="t", ylabel="alpha(t) in gap ~ n^-alpha (90% band)",
              title="the exponent rises from 1/2 to 1")
    for n, colour, a, b in zip(W, colours, res["n_g2_over_mc"], res["n2_g2_over_b"],
                               strict=True):
        ax[1].semilogy(t, a, color=colour, label=f"n = {n}")
        ax[2].semilogy(t, b, color=colour)
    ax[1].set(xlabel="t", ylabel="n gap^2 / MC(t)", title="the n^-1/2 part heals")
    ax[2].set(xlabel="t", ylabel="n^2 gap^2 / B(n)", title="what is left: the n^-1 staircase")
    lf = res["loss_final"]
    L = np.array(lf["particles"])
    ax[3].loglog(W, L, "o-", label=f"particles, t = {t[-1]:g}: n^-{lf['exponent'][0]:.2f} "
                 f"[{lf['exponent'][1]:.2f}, {lf['exponent'][2]:.2f}]")
    for power, style in ((1, "--"), (2, ":")):
        ax[3].loglog(W, L[-1] * (W[-1] / W) ** power, "k" + style, lw=1, label=f"n^-{power}")
    ax[3].set(xlabel="n", ylabel="loss", title="particle loss (RVE: n^-2)")
    for a in (ax[0], ax[1], ax[3]):
        a.legend(fontsize=7)
    fig.suptitle(f"Steep steps on the circle (M = {res['M']}, eps = {res['eps']:g}): "
                 "no width fits the data, every mode heals at one rate")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--size", choices=tuple(SIZES), default="small")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--plot", default=None, help="write the figure here (PNG)")
    args = parser.parse_args(argv)
    from mpi4py import MPI

    comm = MPI.COMM_WORLD  # the (width, seed) runs are dealt over the ranks
    say = print if comm.rank == 0 else (lambda *a, **k: None)
    study = SIZES[args.size]
    lat = SawtoothLattice(study.setting)
    times = np.array(study.times)
    lim = limit(lat, times, study.nodes, comm=comm)
    say(f"limit: {2 * study.nodes} / {study.nodes} nodes in {lim.wall:.1f} s, "
        f"error <= {lim.error.max():.2g}", flush=True)
    start = time.perf_counter()
    ens = ensemble(lat, study, lim, progress=True, comm=comm)
    res = analyse(lat, study, lim, ens)
    res["wall_s"] = {"limit": lim.wall, "ensemble": time.perf_counter() - start,
                     "ranks": comm.size}
    say(table(res))
    say(f"wall: limit {lim.wall:.1f} s, ensemble {res['wall_s']['ensemble']:.1f} s on "
        f"{comm.size} rank(s)")
    if comm.rank == 0 and args.json:
        import json
        from pathlib import Path

        Path(args.json).write_text(json.dumps(res, indent=1))
    if comm.rank == 0 and args.plot:
        figure(res, args.plot)
    return res

if __name__ == "__main__":
    main()
