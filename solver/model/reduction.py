"""Symmetry reduction of ridge networks on rotation-invariant data (numpy/scipy only).

The setting ([SCIENCE.md], "Symmetry reduction"; issue 16). Units s(x; c, w) = c sigma(w . x)
with theta = (c, w) in R^(1+d) (or w alone with a fixed output weight c), data x in R^d whose
law, and whose target, are invariant under the rotations of R^d that fix a k-dimensional
subspace U = span(e_1..e_k) (k = 0, 1, 2): isotropic Gaussians N(0, I_d) or the uniform sphere,
a single-index (k = 1) or two-index (k = 2) teacher y = g(P_U x), centred Gaussian classes
with their own scales along U and across it (MMN's isotropic classes: k = 0). Write

    x = (x_U, x_perp), r = |x_perp|;     w = (a, w_perp), q = |w_perp|;     m = d - k.

A density rho_0 of (c, w) invariant under those rotations stays invariant under the
gradient flow, and the flow reduces exactly to a density of theta_red = (c, a, q) (2 to 4
numbers for any d) with the reduced unit

    s_red(x_red; c, a, q) = c E_t[sigma(a . x_U + q r t)],   x_red = (x_U, r),

t the first coordinate of a uniform unit vector of R^m: density p_m(t) proportional to
(1 - t^2)^((m - 3)/2) on [-1, 1] (m = 1: t = +-1). Then f_rho(x) = f_red(x_red) and
Psi(c, w) = Psi_red(c, P_U w, |w_perp|), so a particle's (c, a, q) moves by -grad Psi_red
(d w_perp/dt = -dPsi_red/dq w_perp/q) and the reduced density solves the same PDE
d rho_red/dt = div(rho_red grad Psi_red) in the Lebesgue measure of (c, a, q): a Problem
on a Box with q in [0, q_max]. At q = 0, dPsi_red/dq = c E[r E_t[t sigma'(a . x_U)]] = 0
(E t = 0): the wall q = 0 has no normal velocity (no flux), by symmetry, not by truncation.
Noise (finite beta) would add the drift (m - 1)/(beta q) of the radial part of the Laplacian;
it is not supported here.

What this module builds:

- ``BetaCosine``: the law p_m, its Gauss-Jacobi rules, cdf and first moment;
- ``ReducedRidgeUnit``: s_red, its gradients in (c, a, q), fused output/vjp; exact (closed
  form, incomplete beta functions) for piecewise-linear activations (relu, MMN's sigma*,
  ``units.piecewise_linear``), Gauss-Jacobi in t converged to ``tol`` (default 1e-13) over
  the (a . x_U, q r) range it is built for, for smooth ones;
- ``DataLaw`` and ``reduced_quadrature``: the law of x_red (x_U ~ N(0, s_U^2 I_k) by tensor
  Gauss-Hermite, r ~ s_perp chi_m by generalised Gauss-Laguerre in r^2 / 2; or the uniform
  sphere of radius R: x_U / R by Gauss-Jacobi, r = sqrt(R^2 - |x_U|^2)), optionally labelled
  classes; ``DataLaw.sample`` draws the full x in R^d;
- ``LiftedGaussian``: rho_0 with c ~ N, a ~ N(mean, std^2), w_perp ~ N(0, w_std^2 I_m), as the
  reduced density (q = w_std chi_m) and as the full Gaussian in R^(1+d) for particles;
- ``ridge_problem``: the reduced Problem and the full-d Problem of one setting, and the
  maps between them (``Reduction``).

Two radii (``radial_u``). When the law is also invariant under the rotations within U (every
centred Gaussian class here is; MMN's centred anisotropic Gaussians), an invariant rho
reduces further to theta_red = (c, a, q) with a = |P_U w| >= 0, the data to x_red = (r_U,
r_perp) = (|x_U|, |x_perp|), and

    s_red(r_U, r_perp; c, a, q) = c E_{t1 ~ p_k, t2 ~ p_(d-k)}[sigma(a r_U t1 + q r_perp t2)]

(``TwoRadiiRidgeUnit``, piecewise-linear sigma; any 1 <= k <= d - 2). s_red is even in a and
in q, so dPsi_red/da = 0 at a = 0 and dPsi_red/dq = 0 at q = 0: both walls of the box
[0, a_max] x [0, q_max] are no-flux by symmetry. ``DataLaw(radial_u=True)``: r_U ~ scale_u
chi_k by generalised Gauss-Laguerre; ``LiftedGaussian(radial_u=True)``: a = a_std chi_k.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from scipy.linalg import eigh_tridiagonal
from scipy.special import betainc, gammaln, roots_genlaguerre, roots_jacobi
from scipy.stats import chi, norm

from solver.model import density, targets, units
from solver.model.domain import Box
from solver.model.problem import Problem
from solver.model.quadrature import DataQuadrature

Array = np.ndarray

#: Node counts tried, in order, when a Gauss-Jacobi rule is converged for a smooth activation.
NODE_LADDER = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


# --- the law of the cosine t on S^(m-1) ----------------------------------------------------


@dataclass(frozen=True)
class BetaCosine:
    """t = e . v for v uniform on the unit sphere of R^m (m >= 1): density
    p_m(t) = C_m (1 - t^2)^((m-3)/2), C_m = Gamma(m/2) / (sqrt(pi) Gamma((m-1)/2)); t = +-1
    with probability 1/2 each when m = 1."""

    m: int

    def __post_init__(self) -> None:
        if isinstance(self.m, bool) or not isinstance(self.m, int | np.integer) or self.m < 1:
            raise ValueError(f"BetaCosine: m = d - k must be an integer >= 1, got {self.m!r}")

    def rule(self, n: int) -> tuple[Array, Array]:
        """n-node Gauss rule of p_m (exact for polynomials of degree <= 2n - 1), weights
        summing to 1; for m = 1 the exact two-point law whatever n. Golub-Welsch on the
        Gegenbauer recurrence (lambda = (m - 2)/2): stable for any m and n (scipy's
        roots_jacobi loses its nodes for large m at large n)."""
        if self.m == 1:
            return np.array([-1.0, 1.0]), np.array([0.5, 0.5])
        if not 1 <= n <= 4096:  # the eigenvectors take 8 n^2 bytes
            raise ValueError(f"BetaCosine.rule: n must be in 1..4096, got {n}")
        lam = 0.5 * (self.m - 2)
        j = np.arange(1, int(n), dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):  # j = 1, lam = 0: set below
            beta = j * (j + 2 * lam - 1) / (4 * (j + lam) * (j + lam - 1))
        beta[:1] = 1.0 / (2.0 * (1.0 + lam))
        t, vectors = eigh_tridiagonal(np.zeros(int(n)), np.sqrt(beta))
        w = vectors[0] ** 2
        t = 0.5 * (t - t[::-1])  # exactly symmetric: E t = 0 to round-off
        w = 0.5 * (w + w[::-1])
        return t, w / w.sum()

    @property
    def _c(self) -> float:
        return float(np.exp(gammaln(0.5 * self.m) - gammaln(0.5 * (self.m - 1))) / np.sqrt(np.pi))

    def cdf(self, c: Array) -> Array:
        """P(t <= c), m >= 2."""
        h = 0.5 * (self.m - 1)
        return betainc(h, h, 0.5 * (1.0 + np.clip(c, -1.0, 1.0)))

    def first_moment(self, c: Array) -> Array:
        """G(c) = int_{-1}^c t p_m(t) dt = -C_m (1 - c^2)^((m-1)/2) / (m - 1), m >= 2."""
        c = np.clip(c, -1.0, 1.0)
        return -self._c * np.maximum(1.0 - c * c, 0.0) ** (0.5 * (self.m - 1)) / (self.m - 1)

    def second_moment(self, c: Array) -> Array:
        """H(c) = int_{-1}^c t^2 p_m(t) dt = c G(c) + F_(m+2)(c) / m, m >= 2 (by parts:
        int G = -F_(m+2) C_m / ((m - 1) C_(m+2)) and C_(m+2) = C_m m / (m - 1)); H(1) = 1/m."""
        c = np.clip(c, -1.0, 1.0)
        return c * self.first_moment(c) + BetaCosine(self.m + 2).cdf(c) / self.m

    def sample(self, rng: np.random.Generator, size: int) -> Array:
        v = rng.standard_normal((size, self.m))
        return v[:, 0] / np.linalg.norm(v, axis=1)


# --- piecewise-linear activations in closed form ---------------------------------------------


@dataclass(frozen=True)
class Pieces:
    """sigma(z) = e_p + k_p z on piece p = 0..K (piece p between knots p-1 and p; pieces 0
    and K unbounded)."""

    knots: Array
    intercepts: Array
    slopes: Array


def pieces_of(activation: units.Activation) -> Pieces | None:
    """The pieces of relu and of ``units.piecewise_linear`` activations; None otherwise."""
    if activation.f is units._relu:
        return Pieces(np.array([0.0]), np.zeros(2), np.array([0.0, 1.0]))
    f = activation.f
    if isinstance(f, partial) and f.func is units._piecewise_linear:
        t, v = (np.asarray(a, dtype=float) for a in f.args)
        inner = np.diff(v) / np.diff(t)
        slopes = np.concatenate([[0.0], inner, [0.0]])
        intercepts = np.concatenate([[v[0]], v[:-1] - inner * t[:-1], [v[-1]]])
        return Pieces(t, intercepts, slopes)
    return None


# --- the reduced unit ------------------------------------------------------------------------


def _as_activation(activation: str | units.Activation) -> units.Activation:
    return activation if isinstance(activation, units.Activation) else units.get_activation(
        activation)


class ReducedRidgeUnit(units.Unit):
    """s_red(x_red; c, a, q) = c E_t[sigma(a . x_U + q r t)], t ~ p_{d-k} (module docstring).

    theta = (c, a_1..a_k, q) (output "free") or (a_1..a_k, q) with c = output_weight fixed.
    Data rows are (x_U (k columns), r, further columns ignored: a label, say).

    Smooth activations: Gauss-Jacobi rules in t, one per range of beta = q r (the doubling
    ranges [0, 1/4], (1/4, 1/2], (1/2, 1], ...; made when an evaluation first meets them):
    for each, the first n of ``NODE_LADDER`` whose E sigma, E sigma', E t sigma' agree with
    the next rung's to ``tol`` (times max(1, sup |sigma|, sup |sigma'|)) on a grid of the
    range times alpha = a . x_U in [-(beta + alpha_pad), beta + alpha_pad] (beyond it the
    saturating activations are flat to round-off on the whole segment). ``nodes`` forces one
    n for every beta. Piecewise-linear activations (relu, ``units.piecewise_linear``): exact
    closed forms in incomplete beta functions.
    """

    def __init__(self, d: int, k: int, activation: str | units.Activation,
                 output_weight: float | None = None, *, alpha_pad: float = 10.0,
                 tol: float = 1e-13, nodes: int | None = None, memo_bytes: int = 0) -> None:
        d = units._positive_int(d, "unit 'reduced_ridge': d")
        if k not in (0, 1, 2) or not d - k >= 1:
            raise ValueError(f"unit 'reduced_ridge': k must be 0, 1 or 2 and d - k >= 1, got "
                             f"d = {d}, k = {k!r}")
        self._set_common(d, k, activation, output_weight)
        super().__init__("reduced_ridge", self._c0 + k + 1, None)
        self.law = BetaCosine(d - k)
        self.pieces = None if self.law.m == 1 else pieces_of(self.activation)
        self.alpha_pad, self.tol = float(alpha_pad), float(tol)
        #: Gauss-Jacobi rules (t, w) of the beta ranges made so far, in order; the upper end
        #: of range j is ``BIN0 * 2**j``. One rule for all beta when ``nodes`` is given.
        self.bins: list[tuple[Array, Array]] = []
        self._fixed = nodes is not None
        if self.pieces is None and nodes is not None:
            self.bins = [self.law.rule(units._positive_int(nodes, "unit 'reduced_ridge': nodes"))]
        #: values() and values_squared() of (x, theta) pairs met before, least recently used
        #: dropped beyond ``memo_bytes`` (0: none kept). The PDE evaluates its zero-weight
        #: data points (test sets) at the same mesh points at every output time, and one
        #: evaluation of the t rules there costs hundreds of matrix products.
        if isinstance(memo_bytes, bool) or not isinstance(memo_bytes, int | np.integer) or (
                memo_bytes < 0):
            raise ValueError(f"unit 'reduced_ridge': memo_bytes must be an integer >= 0, got "
                             f"{memo_bytes!r}")
        self.memo_bytes = int(memo_bytes)
        self._memo: OrderedDict[tuple, Array] = OrderedDict()
        self._memo_used = 0

    BIN0 = 0.25

    def _set_common(self, d: int, k: int, activation: str | units.Activation,
                    output_weight: float | None) -> None:
        """d, k, sigma and the output weight (None: c is a parameter, the first)."""
        if output_weight is not None and not np.isfinite(output_weight):
            raise ValueError(f"unit 'reduced_ridge': output_weight must be finite or None, got "
                             f"{output_weight!r}")
        self.d, self.k = d, int(k)
        self.activation = _as_activation(activation)
        self.output_weight = None if output_weight is None else float(output_weight)
        self._c0 = int(output_weight is None)

    @property
    def nodes(self) -> int:
        """The largest number of nodes in t used so far (0: closed form)."""
        return max((len(t) for t, _ in self.bins), default=0)

    def _bin_of(self, beta: Array) -> Array:
        """Index j of the range (BIN0 2^(j-1), BIN0 2^j] holding beta (0 for beta <= BIN0)."""
        with np.errstate(divide="ignore"):
            j = np.ceil(np.log2(np.maximum(beta, 1e-300) / self.BIN0))
        return np.maximum(j, 0).astype(np.int64)

    def _ensure_bins(self, j_max: int) -> None:
        while len(self.bins) <= j_max:
            j = len(self.bins)
            lo, hi = (0.0 if j == 0 else self.BIN0 * 2.0 ** (j - 1)), self.BIN0 * 2.0**j
            self.bins.append(self.law.rule(self._converged_nodes(lo, hi)))

    @property
    def param_names(self) -> tuple[str, ...]:
        return (*("c",) * self._c0, *units._indexed("a", self.k), "q")

    # -- the averages E sigma, E sigma', E t sigma' at alpha (M, Q), beta (M, Q) >= 0 ---------

    #: Elements per pass of the node loops: their temporaries stay in cache and are reused
    #: by the allocator (whole (M, Q) temporaries per node cost ~3x more: page faults).
    CHUNK = 1 << 15

    def _chunked(self, block: Callable[..., tuple], alpha: Array, beta: Array,
                 count: int, *args) -> tuple:
        """block(alpha, beta, *args) -> ``count`` arrays (or None), over CHUNK-element pieces
        of the broadcast alpha, beta."""
        shape = np.broadcast_shapes(alpha.shape, beta.shape)
        size = int(np.prod(shape))
        if size <= self.CHUNK:
            return block(alpha, beta, *args)
        a = np.broadcast_to(alpha, shape).ravel()
        b = np.broadcast_to(beta, shape).ravel()
        out: list[Array | None] | None = None
        for start in range(0, size, self.CHUNK):
            piece = slice(start, start + self.CHUNK)
            parts = block(a[piece], b[piece], *args)
            if out is None:
                out = [None if p is None else np.empty(size) for p in parts]
            for o, p in zip(out, parts, strict=True):
                if o is not None:
                    o[piece] = p
        return tuple(None if o is None else o.reshape(shape) for o in out)

    def _rule_averages(self, alpha: Array, beta: Array, t: Array, w: Array,
                       need: tuple[bool, bool]) -> tuple[Array, Array | None, Array | None]:
        return self._chunked(self._rule_block, alpha, beta, 3, t, w, need)

    def _rule_square(self, alpha: Array, beta: Array, t: Array, w: Array) -> Array:
        return self._chunked(self._square_block, alpha, beta, 1, t, w)[0]

    def _square_block(self, alpha: Array, beta: Array, t: Array, w: Array) -> tuple[Array]:
        f = self.activation.f
        out = np.zeros(np.broadcast_shapes(alpha.shape, beta.shape))
        for tj, wj in zip(t, w, strict=True):
            out += wj * f(alpha + beta * tj) ** 2
        return (out,)

    def _rule_block(self, alpha: Array, beta: Array, t: Array, w: Array,
                    need: tuple[bool, bool]) -> tuple[Array, Array | None, Array | None]:
        act = self.activation
        s = np.zeros(np.broadcast_shapes(alpha.shape, beta.shape))
        ds = np.zeros_like(s) if need[0] else None
        tds = np.zeros_like(s) if need[1] else None
        for tj, wj in zip(t, w, strict=True):
            z = alpha + beta * tj
            s += wj * act.f(z)
            if ds is not None or tds is not None:
                dz = act.df(z)
                if ds is not None:
                    ds += wj * dz
                if tds is not None:
                    tds += (wj * tj) * dz
        return s, ds, tds

    def _closed_averages(self, alpha: Array, beta: Array
                         ) -> tuple[Array, Array, Array]:
        """Exact: sum over pieces p of (e_p + k_p alpha) dF_p + k_p beta dG_p, E sigma' =
        sum k_p dF_p, E t sigma' = sum k_p dG_p, with cuts (knot - alpha) / beta."""
        p = self.pieces
        scale = np.maximum(beta, np.finfo(np.float64).tiny)
        with np.errstate(over="ignore", invalid="ignore"):
            cuts = [np.clip((tk - alpha) / scale, -1.0, 1.0) for tk in p.knots]
        F = [np.zeros_like(alpha)] + [self.law.cdf(c) for c in cuts] + [np.ones_like(alpha)]
        G = [np.zeros_like(alpha)] + [self.law.first_moment(c) for c in cuts] + [
            np.zeros_like(alpha)]
        s, ds, tds = np.zeros_like(alpha), np.zeros_like(alpha), np.zeros_like(alpha)
        for j, (e, k) in enumerate(zip(p.intercepts, p.slopes, strict=True)):
            dF, dG = F[j + 1] - F[j], G[j + 1] - G[j]
            s += (e + k * alpha) * dF
            if k:
                s += k * beta * dG
                ds += k * dF
                tds += k * dG
        return s, ds, tds

    def _closed_square(self, alpha: Array, beta: Array) -> Array:
        """E_t sigma^2 exactly: on piece p, (e_p + k_p alpha + k_p beta t)^2 against p_m
        between the cuts: (e_p + k_p alpha)^2 dF_p + 2 (e_p + k_p alpha) k_p beta dG_p +
        k_p^2 beta^2 dH_p."""
        p = self.pieces
        scale = np.maximum(beta, np.finfo(np.float64).tiny)
        with np.errstate(over="ignore", invalid="ignore"):
            cuts = [np.clip((tk - alpha) / scale, -1.0, 1.0) for tk in p.knots]
        ends = (np.zeros_like(alpha), np.ones_like(alpha))
        F = [ends[0]] + [self.law.cdf(c) for c in cuts] + [ends[1]]
        G = [ends[0]] + [self.law.first_moment(c) for c in cuts] + [ends[0]]
        H = [ends[0]] + [self.law.second_moment(c) for c in cuts] + [
            np.full_like(alpha, 1.0 / self.law.m)]
        out = np.zeros_like(alpha)
        for j, (e, k) in enumerate(zip(p.intercepts, p.slopes, strict=True)):
            level = e + k * alpha
            out += level * level * (F[j + 1] - F[j])
            if k:
                out += (2.0 * k) * level * beta * (G[j + 1] - G[j])
                out += (k * k) * beta * beta * (H[j + 1] - H[j])
        return out

    def square_average(self, alpha: Array, beta: Array) -> Array:
        """E_t sigma(alpha + beta t)^2, beta >= 0: closed form for piecewise-linear sigma,
        else the rules of ``averages`` (those of each range of beta)."""
        alpha, beta = np.broadcast_arrays(np.asarray(alpha, float), np.asarray(beta, float))
        if self.pieces is not None:
            return self._closed_square(alpha, beta)
        if self._fixed:
            return self._rule_square(alpha, beta, *self.bins[0])
        which = self._bin_of(beta.ravel())
        self._ensure_bins(int(which.max(initial=0)))
        out = np.empty(alpha.size)
        a, b = alpha.ravel(), beta.ravel()
        for j in np.unique(which):
            sel = np.flatnonzero(which == j)
            out[sel] = self._rule_square(a[sel], b[sel], *self.bins[j])
        return out.reshape(alpha.shape)

    def averages(self, alpha: Array, beta: Array, need: tuple[bool, bool] = (True, True)
                 ) -> tuple[Array, Array | None, Array | None]:
        """(E_t sigma(alpha + beta t), E_t sigma'(.), E_t t sigma'(.)), beta >= 0."""
        alpha, beta = np.broadcast_arrays(np.asarray(alpha, float), np.asarray(beta, float))
        if self.pieces is not None:
            return self._closed_averages(alpha, beta)
        if self._fixed:
            return self._rule_averages(alpha, beta, *self.bins[0], need)
        which = self._bin_of(beta.ravel())
        self._ensure_bins(int(which.max(initial=0)))
        out = [np.empty(alpha.size) if i == 0 or need[i - 1] else None for i in range(3)]
        a, b = alpha.ravel(), beta.ravel()
        for j in np.unique(which):
            sel = np.flatnonzero(which == j)
            parts = self._rule_averages(a[sel], b[sel], *self.bins[j], need)
            for o, p in zip(out, parts, strict=True):
                if o is not None:
                    o[sel] = p
        return tuple(None if o is None else o.reshape(alpha.shape) for o in out)

    def _converged_nodes(self, beta_lo: float, beta_hi: float) -> int:
        alpha_max = beta_hi + self.alpha_pad
        alpha = np.linspace(-alpha_max, alpha_max, 81)[:, None]
        beta = np.linspace(beta_lo, beta_hi, 9)[None, :]
        z = np.linspace(-alpha_max - beta_hi, alpha_max + beta_hi, 4001)
        scale = max(1.0, np.abs(self.activation.f(z)).max(), np.abs(self.activation.df(z)).max())
        previous = None
        for n in NODE_LADDER:
            now = np.stack(self._rule_averages(alpha, beta, *self.law.rule(n), (True, True)))
            if previous is not None and np.abs(now - previous[1]).max() <= self.tol * scale:
                return previous[0]
            previous = (n, now)
        raise ValueError(
            f"unit 'reduced_ridge': the Gauss-Jacobi rule in t did not converge to {self.tol:g} "
            f"with {NODE_LADDER[-1]} nodes for q r in ({beta_lo:g}, {beta_hi:g}] (activation "
            f"{self.activation.name!r}, d - k = {self.law.m}); shrink the parameter box "
            f"(q_max) or give nodes")

    # -- the unit ------------------------------------------------------------------------------

    def _parts(self, x: Array, theta: Array) -> tuple[Array, Array, Array, Array]:
        """c (Q,), x_U (M, k), r (M,), alpha (M, Q), beta = r |q| (M, Q), sign(q) (Q,)."""
        if x.shape[1] < self.k + 1:
            raise ValueError(f"unit 'reduced_ridge': data rows need k + 1 = {self.k + 1} "
                             f"columns (x_U, r), got {x.shape[1]}")
        c = theta[:, 0] if self._c0 else np.full(len(theta), self.output_weight)
        a, q = theta[:, self._c0:self._c0 + self.k], theta[:, -1]
        xu, r = x[:, :self.k], x[:, self.k]
        alpha = xu @ a.T if self.k else np.zeros((len(x), len(theta)))
        return c, xu, r, alpha, np.outer(r, np.abs(q)), np.sign(q)

    def _memoised(self, kind: str, x: Array, theta: Array,
                  compute: Callable[[Array, Array], Array]) -> Array:
        """compute(x, theta), from the memo when this (kind, x, theta) was computed before
        (a copy: callers may write into it)."""
        size = 8 * len(x) * len(theta)
        if size > self.memo_bytes:
            return compute(x, theta)
        digest = hashlib.blake2b(np.ascontiguousarray(x).view(np.uint8), digest_size=16)
        digest.update(np.ascontiguousarray(theta).view(np.uint8))
        key = (kind, x.shape, theta.shape, digest.digest())
        hit = self._memo.get(key)
        if hit is not None:
            self._memo.move_to_end(key)
            return hit.copy()
        out = compute(x, theta)
        self._memo[key] = out.copy()
        self._memo_used += size
        while self._memo_used > self.memo_bytes:
            self._memo_used -= self._memo.popitem(last=False)[1].nbytes
        return out

    def _values(self, x: Array, theta: Array) -> Array:
        c, _, _, alpha, beta, _ = self._parts(x, theta)
        return self.averages(alpha, beta, (False, False))[0] * c

    def values(self, x: Array, theta: Array) -> Array:
        x, theta = self._check(x, theta)
        return self._memoised("s", x, theta, self._values)

    #: s_red is the average of the units c sigma(w . x) over the direction of w_perp.
    averaged = True

    def values_squared(self, x: Array, theta: Array) -> Array:
        """c^2 E_t[sigma(a . x_U + q r t)^2]: the mean square of the full units that s_red
        averages, so that MC = E_x[int s^2 rho - f^2] of a reduced density is the full
        network's (the resampling variance of n units in R^d), not that of (E_t s)^2."""
        x, theta = self._check(x, theta)
        return self._memoised("s2", x, theta, self._values_squared)

    def _values_squared(self, x: Array, theta: Array) -> Array:
        c, _, _, alpha, beta, _ = self._parts(x, theta)
        return self.square_average(alpha, beta) * (c * c)

    def _assemble(self, x: Array, theta: Array) -> tuple:
        c, xu, r, alpha, beta, sq = self._parts(x, theta)
        s, ds, tds = self.averages(alpha, beta)
        return c, xu, r, s, ds, tds * sq

    def gradients(self, x: Array, theta: Array) -> Array:
        """ds/dc = E sigma, ds/da = c x_U E sigma', ds/dq = c r E[t sigma'] (odd in q)."""
        x, theta = self._check(x, theta)
        c, xu, r, s, ds, tds = self._assemble(x, theta)
        parts = [(ds * c)[:, :, None] * xu[:, None, :], (tds * c * r[:, None])[:, :, None]]
        if self._c0:
            parts.insert(0, s[:, :, None])
        return np.concatenate(parts, axis=2)

    def theta_vjp(self, x: Array, theta: Array, v: Array) -> Array:
        x, theta = self._check(x, theta)
        return self._vjp(self._check_v(x, v), theta, *self._assemble(x, theta))

    def _vjp(self, v: Array, theta: Array, c, xu, r, s, ds, tds) -> Array:
        out = np.empty(theta.shape)
        if self._c0:
            out[:, 0] = v @ s
        out[:, self._c0:self._c0 + self.k] = ((v[:, None] * xu).T @ ds).T * c[:, None]
        out[:, -1] = ((v * r) @ tds) * c
        return out

    fused_entries = 3

    def output_and_vjp(self, x: Array, theta: Array,
                       weights: Array) -> tuple[Array, Callable[[Array], Array]]:
        x, theta = self._check(x, theta)
        weights = self._check_weights(theta, weights)
        parts = self._assemble(x, theta)
        f = parts[3] @ (parts[0] * weights)
        return f, lambda v: self._vjp(self._check_v(x, v), theta, *parts)


class RadialRidgeUnit(ReducedRidgeUnit):
    """MMN's isotropic reduction as the case k = 0 of ``ReducedRidgeUnit``, output weight 1,
    sigma piecewise linear (default MMN's sigma*, knots (0.5, 1.5), values (-2.5, 7.5)):

        s(xi; r) = E_u[sigma(r xi u)],   u the cosine between two independent uniform
                                         directions of R^d (density ~ (1 - u^2)^((d-3)/2)),

    theta = (r,) = |w|; data column 0 is xi = |x|, further columns (a label, say) are
    ignored. Exact in closed form (incomplete beta functions), with ds/dr = 0 at r = 0 and
    the full network's E s^2 for MC (``values_squared``)."""

    def __init__(self, d: int, knots: object = units.MMN_KNOTS,
                 values: object = units.MMN_VALUES) -> None:
        if not (isinstance(d, int | np.integer) and d >= 2):
            raise ValueError(f"unit 'radial_ridge': d must be an integer >= 2 (directions on "
                             f"S^(d-1)), got {d!r}")
        super().__init__(int(d), 0, units.piecewise_linear(knots, values, "radial_ridge_sigma"),
                         1.0)
        self.name = "radial_ridge"

    @property
    def param_names(self) -> tuple[str, ...]:
        return ("r",)


class TwoRadiiRidgeUnit(ReducedRidgeUnit):
    """The reduction when the data law is also invariant under the rotations within U
    (``radial_u``; centred Gaussian classes with scales along U and across it):
    theta_red = (c, a, q) with a = |P_U w| >= 0, q = |w_perp| >= 0 (or (a, q) with c fixed),
    data rows (r_U, r_perp, further columns ignored) = (|x_U|, |x_perp|, ...), and

        s_red(r_U, r_perp; c, a, q) = c E_{t1 ~ p_k, t2 ~ p_(d-k)}[sigma(a r_U t1 + q r_perp t2)],

    t1, t2 independent cosines on S^(k-1), S^(d-k-1) (``BetaCosine``). Piecewise-linear
    activations only (relu, MMN's sigma*, ``units.piecewise_linear``): the inner t2 average
    is the closed form of ``ReducedRidgeUnit`` at alpha = a r_U t1, beta = q r_perp. As a
    function of t1 it is analytic between the breakpoints t1 = (knot +- beta) / alpha, where
    it has (t1 - t1*)^((d-k-1)/2)-type singularities (a kink, the kinked sigma itself, at
    beta = 0): one Gauss-Jacobi rule in t1 cannot reach round-off near q = 0. The outer
    average is therefore a composite rule in phi = arccos t1 (weight C_k sin^(k-2) phi):
    [0, pi] split at the breakpoints, on each piece ``n`` Gauss-Legendre nodes in s through
    phi = lo + (hi - lo) (1 - cos(pi s)) / 2, which makes the half-integer endpoint powers
    analytic; n is the first of ``NODE_LADDER`` agreeing with the next rung to ``tol``
    (relative to 1 + the size of sigma on the segment) on a grid of (alpha, beta) (``nodes``
    forces one n). k = 1: t1 = +-1 exactly. Gradients: ds/da = c r_U E[t1 sigma'],
    ds/dq = c r_perp E[t2 sigma'] (both odd: 0 at a = 0, q = 0: no-flux walls by symmetry).

    The composite rule costs hundreds of closed-form evaluations per (x, theta) pair (d = 40,
    k = 8, sigma*: 7 pieces x 64 nodes), too many for the M x Q pairs of a PDE. Since s_red
    / c depends on (alpha, beta) = (a r_U, q r_perp) only, ``table = (alpha_max, beta_max)``
    interpolates E sigma and E sigma^2 there by quintic tensor splines on a grid of spacing
    ``table_step`` (1 + u / 2) in each of u = alpha, beta (finer near 0, where sigma's knots
    are), built from the composite rule when first needed; the gradients are the spline's
    derivatives (dE sigma/dalpha = E t1 sigma', dE sigma/dbeta = E t2 sigma'), so values and
    gradients stay consistent. Pairs outside the box use the rule. ``table_error``: the
    largest difference from the rule at 400 random points of the box (checked when built;
    half of them near the knots; above ``table_limit`` the build fails).
    """

    radial_u = True

    def __init__(self, d: int, k: int, activation: str | units.Activation,
                 output_weight: float | None = None, *, tol: float = 1e-13,
                 nodes: int | None = None, memo_bytes: int = 0,
                 table: tuple[float, float] | None = None, table_step: float = 0.05,
                 table_limit: float = 1e-3) -> None:
        d = units._positive_int(d, "unit 'reduced_ridge' (radial_u): d")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= d - 2:
            raise ValueError(f"unit 'reduced_ridge' (radial_u): k must be an integer with "
                             f"1 <= k <= d - 2, got d = {d}, k = {k!r}")
        self._set_common(d, k, activation, output_weight)
        units.Unit.__init__(self, "reduced_ridge", self._c0 + 2, None)
        self.law = BetaCosine(d - self.k)
        self.law_u = BetaCosine(self.k)
        self.pieces = pieces_of(self.activation)
        if self.pieces is None:
            raise ValueError(f"unit 'reduced_ridge' (radial_u): the activation must be "
                             f"piecewise linear (relu, mmn_piecewise_linear, "
                             f"units.piecewise_linear), got {self.activation.name!r}")
        self.alpha_pad, self.tol = 0.0, float(tol)
        self.bins, self._fixed = [], True
        if isinstance(memo_bytes, bool) or not isinstance(memo_bytes, int | np.integer) or (
                memo_bytes < 0):
            raise ValueError(f"unit 'reduced_ridge': memo_bytes must be an integer >= 0, got "
                             f"{memo_bytes!r}")
        self.memo_bytes = int(memo_bytes)
        self._memo = OrderedDict()
        self._memo_used = 0
        self.table = None if table is None else (float(table[0]), float(table[1]))
        if self.table is not None and not min(self.table) > 0:
            raise ValueError(f"unit 'reduced_ridge' (radial_u): table needs alpha_max, "
                             f"beta_max > 0, got {table!r}")
        self.table_step, self.table_limit = float(table_step), float(table_limit)
        self._splines = None
        self.table_error = float("nan")
        if self.k == 1:
            self.outer_nodes = 1
        elif nodes is not None:
            self.outer_nodes = units._positive_int(nodes, "unit 'reduced_ridge': nodes")
        else:
            self.outer_nodes = self._converged_outer()

    @property
    def nodes(self) -> int:
        """Gauss-Legendre nodes per piece of the outer (t1) rule."""
        return self.outer_nodes

    @property
    def param_names(self) -> tuple[str, ...]:
        return (*("c",) * self._c0, "a", "q")

    # -- the outer rule in t1 -------------------------------------------------------------------

    def _outer_rule(self, alpha: Array, beta: Array, n: int) -> tuple[Array, Array]:
        """Nodes t1 and weights (P, J) of the composite rule for pairs alpha, beta (P,) >= 0."""
        if self.k == 1:
            t = np.broadcast_to(np.array([-1.0, 1.0]), (alpha.size, 2))
            return t, np.full((alpha.size, 2), 0.5)
        knots = self.pieces.knots
        with np.errstate(divide="ignore", invalid="ignore"):
            cuts = np.concatenate([(knots[None, :] + e * beta[:, None]) / alpha[:, None]
                                   for e in (-1.0, 0.0, 1.0)], axis=1)
        cuts = np.where(alpha[:, None] > 0, cuts, 1.0)
        phi = np.arccos(np.clip(cuts, -1.0, 1.0))
        ends = np.zeros((alpha.size, 1))
        edges = np.sort(np.concatenate([ends, phi, ends + np.pi], axis=1), axis=1)
        lo, width = edges[:, :-1], np.diff(edges, axis=1)
        s, ws = np.polynomial.legendre.leggauss(n)
        s, ws = 0.5 * (s + 1.0), 0.5 * ws
        u = 0.5 * (1.0 - np.cos(np.pi * s))
        du = 0.5 * np.pi * np.sin(np.pi * s) * ws
        ph = lo[:, :, None] + width[:, :, None] * u
        w = (width[:, :, None] * du) * (self.law_u._c * np.sin(ph) ** (self.k - 2))
        return np.cos(ph).reshape(alpha.size, -1), w.reshape(alpha.size, -1)

    def _pair_block(self, alpha: Array, beta: Array, n: int, square: bool) -> tuple:
        """(E s, E t1 s', E t2 s') or (E s^2,) over t1, t2 for flat pairs alpha, beta."""
        t, w = self._outer_rule(alpha, beta, n)
        inner_alpha = alpha[:, None] * t
        inner_beta = np.broadcast_to(beta[:, None], t.shape)
        if square:
            return (np.sum(w * self._closed_square(inner_alpha, inner_beta), axis=1),)
        s, ds, tds = self._closed_averages(inner_alpha, inner_beta)
        e1 = np.where(alpha > 0, np.sum(w * t * ds, axis=1), 0.0)  # E t1 = 0 exactly at a = 0
        return np.sum(w * s, axis=1), e1, np.sum(w * tds, axis=1)

    def _double(self, alpha: Array, beta: Array, square: bool, n: int | None = None) -> tuple:
        n = self.outer_nodes if n is None else n
        alpha, beta = np.broadcast_arrays(np.asarray(alpha, float), np.asarray(beta, float))
        shape, a, b = alpha.shape, alpha.ravel(), beta.ravel()
        per = (3 * self.pieces.knots.size + 1) * n if self.k > 1 else 2
        step = max(1, self.CHUNK // per)
        count = 1 if square else 3
        out = [np.empty(a.size) for _ in range(count)]
        for start in range(0, a.size, step):
            piece = slice(start, start + step)
            for o, p in zip(out, self._pair_block(a[piece], b[piece], n, square), strict=True):
                o[piece] = p
        return tuple(o.reshape(shape) for o in out)

    def double_averages(self, alpha: Array, beta: Array) -> tuple[Array, Array, Array]:
        """(E sigma(alpha t1 + beta t2), E t1 sigma'(.), E t2 sigma'(.)), alpha, beta >= 0."""
        return self._tabled(alpha, beta, False)

    def double_square(self, alpha: Array, beta: Array) -> Array:
        """E sigma(alpha t1 + beta t2)^2, alpha, beta >= 0."""
        return self._tabled(alpha, beta, True)[0]

    @staticmethod
    def _table_axis(top: float, step: float, centres: Array) -> Array:
        """0 = u_0 < u_1 < ... >= top with u_(j+1) - u_j ~ step (1 + u_j / 2), refined
        geometrically (ratio 2, down to step / 64) towards each of ``centres``."""
        u = [0.0]
        while u[-1] < top:
            u.append(u[-1] + step * (1.0 + 0.5 * u[-1]))
        u = np.array(u)
        fine = step * 2.0 ** -np.arange(1, 7)
        extra = [c + e * fine for c in centres for e in (-1.0, 1.0)]
        u = np.unique(np.concatenate([u, np.concatenate(extra) if extra else [], centres]))
        u = u[(u >= 0) & (u <= u[-1])]
        keep = np.concatenate([[True], np.diff(u) > 1e-3 * step * 2.0 ** -6])
        return u[keep]

    def _build_table(self) -> None:
        from scipy.interpolate import RectBivariateSpline

        # E sigma is not smooth at (alpha, beta) = (knot, 0) (the edge of the t1 law meets
        # a knot when beta = 0): the axes are refined towards it
        knots = np.abs(self.pieces.knots)
        ua = self._table_axis(self.table[0], self.table_step, knots)
        ub = self._table_axis(self.table[1], self.table_step, np.zeros(1))
        A, B = np.meshgrid(ua, ub, indexing="ij")
        s = self._double(A, B, False)[0]
        s2 = self._double(A, B, True)[0]
        self._splines = (RectBivariateSpline(ua, ub, s, kx=5, ky=5, s=0),
                         RectBivariateSpline(ua, ub, s2, kx=5, ky=5, s=0))
        rng = np.random.default_rng(0)  # half near the knots, where E sigma is roughest
        top = 2.0 * np.abs(self.pieces.knots).max() + self.table_step
        a = np.concatenate([rng.uniform(0, self.table[0], 200),
                            rng.uniform(0, min(top, self.table[0]), 200)])
        b = np.concatenate([rng.uniform(0, self.table[1], 200),
                            rng.uniform(0, min(top, self.table[1]), 200)])
        exact = np.stack(self._double(a, b, False) + self._double(a, b, True))
        approx = np.stack(self._from_table(a, b, False) + self._from_table(a, b, True))
        self.table_error = float(np.abs(exact - approx).max())
        if not self.table_error <= self.table_limit:
            raise ValueError(f"unit 'reduced_ridge' (radial_u): the (alpha, beta) table misses "
                             f"the rule by {self.table_error:.2e} > {self.table_limit:g}; "
                             f"lower table_step")

    def _from_table(self, alpha: Array, beta: Array, square: bool) -> tuple:
        spline = self._splines[1 if square else 0]
        if square:
            return (spline.ev(alpha, beta),)
        return (spline.ev(alpha, beta), spline.ev(alpha, beta, dx=1),
                spline.ev(alpha, beta, dy=1))

    def _tabled(self, alpha: Array, beta: Array, square: bool) -> tuple:
        """The table inside its box, the rule outside."""
        if self.table is None:
            return self._double(alpha, beta, square)
        if self._splines is None:
            self._build_table()
        alpha, beta = np.broadcast_arrays(np.asarray(alpha, float), np.asarray(beta, float))
        shape, a, b = alpha.shape, alpha.ravel(), beta.ravel()
        inside = (a <= self.table[0]) & (b <= self.table[1])
        out = [np.empty(a.size) for _ in range(1 if square else 3)]
        if inside.any():
            for o, p in zip(out, self._from_table(a[inside], b[inside], square), strict=True):
                o[inside] = p
        if not inside.all():
            rest = ~inside
            for o, p in zip(out, self._double(a[rest], b[rest], square), strict=True):
                o[rest] = p
        return tuple(o.reshape(shape) for o in out)

    def _converged_outer(self) -> int:
        knots = self.pieces.knots
        span = float(np.max(np.abs(knots))) + 1.0
        grid = span * np.concatenate([[0.0], np.geomspace(1e-3, 30.0, 25)])
        alpha, beta = (g.ravel() for g in np.meshgrid(grid, grid, indexing="ij"))
        f = self.activation.f
        top = np.maximum(np.abs(f(alpha + beta)), np.abs(f(-alpha - beta)))
        steep = np.abs(self.pieces.slopes).max()
        # the closed forms round off like slope (alpha + beta) (their pieces cancel)
        size = np.maximum.reduce([np.ones_like(top), top, np.full_like(top, np.abs(
            f(knots)).max()), steep * (alpha + beta)])
        slope = np.full_like(size, max(1.0, steep))
        previous = None
        for n in NODE_LADDER:
            now = np.stack(self._double(alpha, beta, False, n) + self._double(
                alpha, beta, True, n))
            scale = np.stack([size, slope, slope, size ** 2])
            if previous is not None and np.all(
                    np.abs(now - previous[1]) <= self.tol * scale):
                return previous[0]
            previous = (n, now)
        raise ValueError(
            f"unit 'reduced_ridge' (radial_u): the outer rule in t1 did not converge to "
            f"{self.tol:g} with {NODE_LADDER[-1]} nodes per piece (activation "
            f"{self.activation.name!r}, d = {self.d}, k = {self.k}); give nodes")

    # -- the unit ------------------------------------------------------------------------------

    def _parts(self, x: Array, theta: Array) -> tuple:
        """c (Q,), r_U (M,), r_perp (M,), alpha (M, Q), beta (M, Q), sign(a), sign(q) (Q,)."""
        if x.shape[1] < 2:
            raise ValueError(f"unit 'reduced_ridge' (radial_u): data rows need 2 columns "
                             f"(r_U, r_perp), got {x.shape[1]}")
        c = theta[:, 0] if self._c0 else np.full(len(theta), self.output_weight)
        a, q = theta[:, self._c0], theta[:, -1]
        ru, rp = x[:, 0], x[:, 1]
        return (c, ru, rp, np.outer(np.abs(ru), np.abs(a)), np.outer(np.abs(rp), np.abs(q)),
                np.sign(a), np.sign(q))

    def _values(self, x: Array, theta: Array) -> Array:
        c, _, _, alpha, beta, _, _ = self._parts(x, theta)
        return self.double_averages(alpha, beta)[0] * c

    def _values_squared(self, x: Array, theta: Array) -> Array:
        c, _, _, alpha, beta, _, _ = self._parts(x, theta)
        return self.double_square(alpha, beta) * (c * c)

    def _assemble(self, x: Array, theta: Array) -> tuple:
        c, ru, rp, alpha, beta, sa, sq = self._parts(x, theta)
        s, e1, e2 = self.double_averages(alpha, beta)
        return c, ru, rp, s, e1 * sa, e2 * sq

    def gradients(self, x: Array, theta: Array) -> Array:
        """ds/dc = E sigma, ds/da = c r_U E[t1 sigma'], ds/dq = c r_perp E[t2 sigma']."""
        x, theta = self._check(x, theta)
        c, ru, rp, s, e1, e2 = self._assemble(x, theta)
        parts = [e1 * c * ru[:, None], e2 * c * rp[:, None]]
        if self._c0:
            parts.insert(0, s)
        return np.stack(parts, axis=2)

    def _vjp(self, v: Array, theta: Array, c, ru, rp, s, e1, e2) -> Array:
        out = np.empty(theta.shape)
        if self._c0:
            out[:, 0] = v @ s
        out[:, -2] = ((v * ru) @ e1) * c
        out[:, -1] = ((v * rp) @ e2) * c
        return out


# --- the data law and its reduced quadrature -------------------------------------------------


@dataclass(frozen=True)
class GaussianClass:
    """One class of the data: probability p, label y, x_U ~ N(0, scale_u^2 I_k),
    x_perp ~ N(0, scale_perp^2 I_(d-k))."""

    probability: float = 1.0
    label: float = 0.0
    scale_u: float = 1.0
    scale_perp: float = 1.0


@dataclass(frozen=True)
class DataLaw:
    """A rotation-invariant data law on R^d (invariant under the rotations fixing U):

    kind "gaussian": a mixture of centred ``GaussianClass``es (default one class N(0, I_d));
    ``labelled``: rows carry the class label as a last column (the target reads it);
    kind "sphere": uniform on the sphere |x| = radius (default sqrt(d)), unlabelled.
    ``radial_u``: the law is also invariant under the rotations within U (every law here is)
    and the reduced rows are (|x_U|, |x_perp| [, label]) (``TwoRadiiRidgeUnit``).
    """

    d: int
    k: int
    kind: str = "gaussian"
    classes: tuple[GaussianClass, ...] = (GaussianClass(),)
    labelled: bool = False
    radius: float | None = None
    radial_u: bool = False

    def __post_init__(self) -> None:
        if self.radial_u and not 1 <= self.k <= self.d - 2:
            raise ValueError(f"data law: radial_u needs 1 <= k <= d - 2, got d = {self.d}, "
                             f"k = {self.k}")
        if self.kind not in ("gaussian", "sphere"):
            raise ValueError(f"data law: kind must be 'gaussian' or 'sphere', got {self.kind!r}")
        if self.kind == "sphere" and (self.labelled or len(self.classes) != 1):
            raise ValueError("data law: the sphere has one unlabelled class")
        if self.kind == "sphere" and self.d - self.k < 2:
            raise ValueError("data law: the sphere needs d - k >= 2")
        p = np.array([c.probability for c in self.classes])
        if np.any(p < 0) or abs(p.sum() - 1.0) > 1e-12:
            raise ValueError(f"data law: class probabilities must be >= 0 and sum to 1, got {p}")
        if self.radius is None:
            object.__setattr__(self, "radius", float(np.sqrt(self.d)))

    @property
    def m(self) -> int:
        return self.d - self.k

    def sample(self, rng: np.random.Generator, size: int) -> Array:
        """size draws of x in R^d (+ the label column when labelled)."""
        if self.kind == "sphere":
            z = rng.standard_normal((size, self.d))
            return self.radius * z / np.linalg.norm(z, axis=1, keepdims=True)
        p = np.array([c.probability for c in self.classes])
        which = rng.choice(len(self.classes), size=size, p=p)
        su = np.array([c.scale_u for c in self.classes])[which]
        sp = np.array([c.scale_perp for c in self.classes])[which]
        x = rng.standard_normal((size, self.d))
        x[:, :self.k] *= su[:, None]
        x[:, self.k:] *= sp[:, None]
        if self.labelled:
            x = np.column_stack([x, np.array([c.label for c in self.classes])[which]])
        return x

    def reduce(self, x: Array) -> Array:
        """Rows x (M, d [+ 1]) -> x_red = (x_U, |x_perp| [, label]) (M, k + 1 [+ 1]);
        ``radial_u``: (|x_U|, |x_perp| [, label]) (M, 2 [+ 1])."""
        x = np.asarray(x, dtype=float)
        u = (np.linalg.norm(x[:, :self.k], axis=1)[:, None] if self.radial_u
             else x[:, :self.k])
        cols = [u, np.linalg.norm(x[:, self.k:self.d], axis=1)[:, None]]
        if self.labelled:
            cols.append(x[:, self.d:])
        return np.hstack(cols)


def _sample_law(law: DataLaw, rng: np.random.Generator, size: int) -> Array:
    return law.sample(rng, size)


def _sample_reduced(law: DataLaw, rng: np.random.Generator, size: int) -> Array:
    return law.reduce(law.sample(rng, size))


def _laguerre_rule(n: int, alpha: float) -> tuple[Array, Array]:
    """Gauss rule of the weight g^alpha e^-g on (0, inf): scipy's where its weights are
    finite, else Golub-Welsch on the monic recurrence (a_j = 2j + alpha + 1, b_j = j (j +
    alpha)): scipy's weights overflow for alpha ~ 500 (d ~ 1000)."""
    with np.errstate(all="ignore"):
        g, w = roots_genlaguerre(n, alpha)
    if np.all(np.isfinite(g)) and np.all(np.isfinite(w)) and w.sum() > 0:
        return g, w
    j = np.arange(n, dtype=float)
    g, vectors = eigh_tridiagonal(2 * j + alpha + 1, np.sqrt(j[1:] * (j[1:] + alpha)))
    return g, vectors[0] ** 2


def reduced_quadrature(law: DataLaw, nodes_u: int = 40, nodes_r: int = 40,
                       extra: Array | None = None) -> DataQuadrature:
    """The law of x_red = (x_U, r [, label]) as a Gauss rule, rows (x_U, r [, y]).

    Gaussian classes: tensor rule of nodes_u probabilists' Gauss-Hermite nodes per axis of
    U (exact for polynomials of degree <= 2 nodes_u - 1 in each) times the nodes_r-node
    generalised Gauss-Laguerre rule of r^2 / 2 (weight g^(m/2 - 1) e^-g; exact for
    polynomials in r^2 of degree <= 2 nodes_r - 1: the unit is even in r). Sphere of radius R:
    k = 0: r = R; k = 1: x_U / R = u by the Gauss-Jacobi rule of (1 - u^2)^((d-3)/2); k = 2:
    s = |x_U|^2 / R^2 by Gauss-Jacobi of (1 - s)^((d-4)/2) on [0, 1] times 2 nodes_u
    equispaced angles; r = sqrt(R^2 - |x_U|^2). ``extra`` rows (reduced points, e.g. of a
    test set) are appended with weight 0: f comes free there, no integral changes.
    ``law.radial_u``: rows (r_U, r_perp [, y]); Gaussian classes: r_U ~ scale_u chi_k by the
    nodes_u-node generalised Gauss-Laguerre rule of r_U^2 / 2 (weight g^(k/2 - 1) e^-g) times
    r_perp's rule; sphere: s = r_U^2 / R^2 ~ Beta(k/2, (d-k)/2) by nodes_u-node Gauss-Jacobi,
    r_perp = R sqrt(1 - s).
    """
    k, m = law.k, law.m
    rows, weights = [], []
    if law.radial_u and law.kind == "sphere":
        z, w = roots_jacobi(nodes_u, 0.5 * m - 1.0, 0.5 * k - 1.0)
        s = 0.5 * (1.0 + z)
        R = law.radius
        rows.append(np.column_stack([R * np.sqrt(s), R * np.sqrt(np.maximum(1.0 - s, 0.0))]))
        weights.append(w / w.sum())
    elif law.radial_u:
        g, wg = _laguerre_rule(nodes_r, 0.5 * m - 1.0)
        r0, wr = np.sqrt(2.0 * g), wg / wg.sum()
        gu, wgu = _laguerre_rule(nodes_u, 0.5 * k - 1.0)
        u0, wu = np.sqrt(2.0 * gu), wgu / wgu.sum()
        for cls in law.classes:
            pts = np.column_stack([np.repeat(cls.scale_u * u0, r0.size),
                                   np.tile(cls.scale_perp * r0, u0.size)])
            if law.labelled:
                pts = np.column_stack([pts, np.full(len(pts), cls.label)])
            rows.append(pts)
            weights.append(cls.probability * np.outer(wu, wr).ravel())
    elif law.kind == "sphere":
        R = law.radius
        if k == 0:
            pts, w = np.array([[R]]), np.ones(1)
        elif k == 1:
            u, w = roots_jacobi(nodes_u, 0.5 * (law.d - 3), 0.5 * (law.d - 3))
            pts = np.column_stack([R * u, R * np.sqrt(np.maximum(1.0 - u * u, 0.0))])
        else:
            z, ws = roots_jacobi(nodes_u, 0.5 * (law.d - 4), 0.0)
            s = 0.5 * (1.0 + z)
            phi = np.pi * np.arange(2 * nodes_u) / nodes_u
            rad = np.repeat(np.sqrt(s), phi.size)
            ang = np.tile(phi, s.size)
            pts = np.column_stack([R * rad * np.cos(ang), R * rad * np.sin(ang),
                                   R * np.sqrt(np.maximum(1.0 - rad**2, 0.0))])
            w = np.repeat(ws, phi.size)
        rows.append(pts)
        weights.append(w / w.sum())
    else:
        g, wg = _laguerre_rule(nodes_r, 0.5 * m - 1.0)
        r0, wr = np.sqrt(2.0 * g), wg / wg.sum()
        h, wh = np.polynomial.hermite_e.hermegauss(nodes_u)
        wh = wh / wh.sum()
        for cls in law.classes:
            grids = [cls.scale_u * h] * k + [cls.scale_perp * r0]
            ws = [wh] * k + [wr]
            mesh = np.meshgrid(*grids, indexing="ij")
            pts = np.stack([g_.ravel() for g_ in mesh], axis=1)
            w = np.ones(1)
            for wi in ws:
                w = np.multiply.outer(w, wi).ravel()
            if law.labelled:
                pts = np.column_stack([pts, np.full(len(pts), cls.label)])
            rows.append(pts)
            weights.append(cls.probability * w)
    points, weights = np.vstack(rows), np.concatenate(weights)
    if extra is not None:
        extra = np.asarray(extra, dtype=float)
        points = np.vstack([points, extra])
        weights = np.concatenate([weights, np.zeros(len(extra))])
    return DataQuadrature(
        name="reduced_" + law.kind, points=points, weights=weights / weights.sum(),
        sampler=partial(_sample_reduced, law),
        exact_degree=(f"polynomials in r_U^2 of degree <= {2 * nodes_u - 1} and in r_perp^2 of "
                      f"degree <= {2 * nodes_r - 1}" if law.radial_u and law.kind == "gaussian"
                      else f"polynomials in r_U^2 / R^2 of degree <= {2 * nodes_u - 1}"
                      if law.radial_u else
                      f"polynomials of degree <= {2 * nodes_u - 1} per axis of U and in r^2 of "
                      f"degree <= {2 * nodes_r - 1}" if law.kind == "gaussian" else
                      f"polynomials of degree <= {2 * nodes_u - 1} in u = x_U / R"))


# --- rho_0: the reduced density and its lift ---------------------------------------------------


@dataclass(frozen=True, eq=False)
class LiftedGaussian(density.Density):
    """rho_0 invariant under the rotations fixing U: c ~ N(c_mean, c_std^2) (free output only),
    a ~ N(a_mean, diag(a_std^2)) in U, w_perp ~ N(0, w_std^2 I_m). Reduced: theta_red =
    (c, a, q) with q = w_std chi_m (this Density); ``full()`` is the Gaussian in R^(1+d) (or
    R^d) whose reduction it is (particles draw from it). ``radial_u`` (a_mean = 0, one a_std):
    theta_red = (c, a, q) with a = |P_U w| = a_std chi_k, q = w_std chi_m independent."""

    d: int
    k: int
    free_output: bool
    a_mean: Array
    a_std: Array
    w_std: float
    c_mean: float = 0.0
    c_std: float = 1.0
    symmetric: bool = False
    radial_u: bool = False

    def __post_init__(self) -> None:
        k = self.k
        a_mean = np.broadcast_to(np.asarray(self.a_mean, float), (k,)).copy()
        a_std = np.broadcast_to(np.asarray(self.a_std, float), (k,)).copy()
        if np.any(a_std <= 0) or not self.w_std > 0 or not self.c_std > 0:
            raise ValueError("initial: standard deviations must be > 0")
        if self.radial_u and (np.any(a_mean != 0) or np.ptp(a_std) > 0 or self.symmetric
                              or not 1 <= k <= self.d - 2):
            raise ValueError("initial: radial_u needs a_mean = 0, one a_std, not symmetric "
                             "and 1 <= k <= d - 2")
        object.__setattr__(self, "a_mean", a_mean)
        object.__setattr__(self, "a_std", a_std)

    @property
    def m(self) -> int:
        return self.d - self.k

    @property
    def dim(self) -> int:
        return int(self.free_output) + (1 if self.radial_u else self.k) + 1

    def _flat(self, reduced: bool = True) -> tuple[Array, Array]:
        """Means and stds of the Gaussian coordinates: c [and a unless radial_u, reduced]."""
        u = not (self.radial_u and reduced)
        mean = np.concatenate([[self.c_mean] if self.free_output else [],
                               self.a_mean if u else []])
        std = np.concatenate([[self.c_std] if self.free_output else [], self.a_std if u else []])
        return mean, std

    def _radii(self, theta: Array) -> Array:
        """The density of the radii columns (a, q) of radial_u rows."""
        sa = self.a_std[0]
        return (chi.pdf(theta[:, -2] / sa, self.k) / sa
                * chi.pdf(theta[:, -1] / self.w_std, self.m) / self.w_std)

    def pdf(self, theta: Array) -> Array:
        """The density of (c, a, q); ``symmetric``: of (c, a, +-q), even in q, half the
        weight on each side (the PDE on q in [-q_max, q_max] has no wall at q = 0)."""
        theta = np.asarray(theta, float)
        mean, std = self._flat()
        if self.radial_u:
            return np.prod(norm.pdf(theta[:, :-2], mean, std), axis=1) * self._radii(theta)
        flat = np.prod(norm.pdf(theta[:, :-1], mean, std), axis=1)
        q = theta[:, -1]
        if self.symmetric:
            return 0.5 * flat * chi.pdf(np.abs(q) / self.w_std, self.m) / self.w_std
        return flat * chi.pdf(q / self.w_std, self.m) / self.w_std

    def sample(self, rng: np.random.Generator, n: int) -> Array:
        mean, std = self._flat()
        flat = mean + std * rng.standard_normal((n, mean.size))
        if self.radial_u:
            flat = np.column_stack([flat, self.a_std[0] * np.sqrt(rng.chisquare(self.k, n))])
        q = self.w_std * np.sqrt(rng.chisquare(self.m, n))
        if self.symmetric:
            q *= rng.choice([-1.0, 1.0], n)
        return np.column_stack([flat, q])

    def _q_mass(self, lo: float, hi: float) -> float:
        """P(q in [lo, hi]) for q >= 0 (the chi law)."""
        F = chi.cdf(np.array([max(lo, 0.0), max(hi, 0.0)]) / self.w_std, self.m)
        return float(F[1] - F[0])

    def _mass_in_box(self, box: Box) -> float:
        mean, std = self._flat()
        lo, hi = np.asarray(box.lower), np.asarray(box.upper)
        if self.radial_u:
            sa = self.a_std[0]
            Fa = chi.cdf(np.array([max(lo[-2], 0.0), max(hi[-2], 0.0)]) / sa, self.k)
            flat = np.prod(norm.cdf(hi[:-2], mean, std) - norm.cdf(lo[:-2], mean, std))
            return float(flat * (Fa[1] - Fa[0]) * self._q_mass(lo[-1], hi[-1]))
        flat = np.prod(norm.cdf(hi[:-1], mean, std) - norm.cdf(lo[:-1], mean, std))
        if self.symmetric:
            q = 0.5 * (self._q_mass(lo[-1], hi[-1]) + self._q_mass(-hi[-1], -lo[-1]))
        else:
            q = self._q_mass(lo[-1], hi[-1])
        return float(flat * q)

    def full(self) -> density.Gaussian:
        """The Gaussian of (c, w) in R^(1+d) (w alone with a fixed output)."""
        mean, std = self._flat(reduced=False)
        return density.Gaussian(np.concatenate([mean, np.zeros(self.m)]),
                                np.concatenate([std, np.full(self.m, self.w_std)]))


# --- full-d pieces ----------------------------------------------------------------------------


class RidgeUnit(units._RidgeUnit):
    """s(x; c, w) = c sigma(w . x) in R^d, theta = (c, w_1..w_d); with output_weight fixed,
    theta = w. (No bias: a bias would be a further invariant parameter.)"""

    _weight_symbol = "w"

    def __init__(self, d: int, activation: str | units.Activation,
                 output_weight: float | None = None) -> None:
        super().__init__("ridge", d, activation,
                         None if output_weight is None else float(output_weight), bias=False)


@dataclass(frozen=True, eq=False)
class LiftedTarget(targets.Target):
    """y(x) = reduced(law.reduce(x)): a target of the reduced rows, read on R^d."""

    law: DataLaw
    reduced: targets.Target

    def __call__(self, x: Array) -> Array:
        return self.reduced(self.law.reduce(x))


# --- the two problems ---------------------------------------------------------------------------


@dataclass
class Reduction:
    """One setting as the reduced Problem (the PDE's) and the full-d Problem (particles').

    ``test`` is the slice of the reduced data rows that are the reductions of the full
    problem's data points (weight 0 in the reduced rule): the PDE's f there is f_rho at the
    full data points, so the two f's are compared in the L2 norm of ``full.data``.
    """

    reduced: Problem
    full: Problem
    law: DataLaw
    unit: ReducedRidgeUnit
    initial: LiftedGaussian
    test: slice = field(default_factory=lambda: slice(0, 0))

    def reduce_params(self, theta: Array) -> Array:
        """Full parameters (N, [1 +] d) -> (c, a, q) rows (N, [1 +] k + 1); radial_u:
        (c, |P_U w|, |w_perp|) rows (N, [1 +] 2)."""
        theta = np.asarray(theta, float)
        c0 = int(self.unit.output_weight is None)
        k = self.law.k
        if self.law.radial_u:
            return np.column_stack([theta[:, :c0], np.linalg.norm(theta[:, c0:c0 + k], axis=1),
                                    np.linalg.norm(theta[:, c0 + k:], axis=1)])
        return np.column_stack([theta[:, :c0 + k],
                                np.linalg.norm(theta[:, c0 + k:], axis=1)])


def ridge_problem(activation: str | units.Activation, d: int, k: int, *,
                  law: DataLaw | None = None, target: str | targets.Target = "label",
                  output: str | float = "free", a_mean: float | Sequence[float] = 0.0,
                  w_std: float | None = None, c_mean: float = 0.0, c_std: float = 1.0,
                  c_max: float = 4.0, a_max: float = 3.0, q_max: float = 3.0,
                  a_min: float | None = None, symmetric: bool = False,
                  nodes_u: int = 40, nodes_r: int = 40, test_points: int = 2000,
                  seed: int = 0, t_final: float = 1.0, lam: float = 0.0,
                  full_bound: float = 50.0, tol: float = 1e-13, memo_bytes: int = 0,
                  radial_u: bool = False, nodes: int | None = None,
                  table_step: float | None = 0.05, name: str = "ridge") -> Reduction:
    """A ridge network c sigma(w . x) on a rotation-invariant law (invariant subspace U of
    dimension k), as a reduced Problem on theta_red = (c, a, q) in [-c_max, c_max] x
    [-a_max, a_max]^k x [0, q_max] and the full Problem on (c, w) in R^(1+d).

    law: the data law (default N(0, I_d)); target: an expression in the reduced coordinates
    x0..x{k-1} (= P_U x) and x{k} (= |x_perp|) (r = |x|), a Target of reduced rows, or "label"
    for labelled data. output: "free" (c a parameter) or a number (c fixed).
    symmetric: q in [-q_max, q_max] with rho_0 even in q (the unit is even in q, so the
    flow keeps it even and the marginal of |q| is the reduced law): the PDE then has no wall
    at q = 0, where the discrete velocity (the gradient of an interpolant of Psi) has an
    O(h^p) normal component instead of 0, at twice the cells in q.
    rho_0: ``LiftedGaussian`` with w_perp ~ N(0, w_std^2 I_(d-k)) (w_std default 1/sqrt(d):
    w ~ N(0, I_d / d) when a_mean = 0), a ~ N(a_mean, w_std^2). The full problem's data are
    ``test_points`` draws of the law (seed), weights 1/M, with the law's sampler (SGD); their
    reductions are appended to the reduced rule with weight 0 (``Reduction.test``).
    memo_bytes: the reduced unit keeps its values at (x, theta) pairs met before up to this
    size (``ReducedRidgeUnit``; 0 by default: the PDE keeps the unit values of its fixed
    points, test points and second moments included, itself).
    radial_u: the law is also invariant under the rotations within U (it must say so,
    ``DataLaw.radial_u``): theta_red = (c, |P_U w|, |w_perp|) in [-c_max, c_max] x
    [0, a_max] x [0, q_max] (``TwoRadiiRidgeUnit``, both walls no-flux by symmetry),
    data rows (|x_U|, |x_perp| [, y]), a_mean = 0; expression targets read x0 = |x_U|,
    x1 = |x_perp|. nodes: force the outer rule's nodes per piece (radial_u only).
    table_step: radial_u: the unit interpolates its (alpha, beta) table
    (``TwoRadiiRidgeUnit``) on [0, a_max max r_U] x [0, q_max max r_perp] over the data rows;
    None: the composite rule everywhere.
    """
    law = law or DataLaw(d, k, radial_u=radial_u)
    if (law.d, law.k) != (d, k):
        raise ValueError(f"ridge_problem: the data law has (d, k) = ({law.d}, {law.k}), "
                         f"expected ({d}, {k})")
    if law.radial_u != radial_u:
        raise ValueError(f"ridge_problem: radial_u = {radial_u} but the data law has "
                         f"radial_u = {law.radial_u}")
    if radial_u and (symmetric or a_min not in (None, 0.0)):
        raise ValueError("ridge_problem: radial_u has a = |P_U w| >= 0 and q >= 0 (no "
                         "symmetric extension, a_min = 0)")
    free = output == "free"
    c_fixed = None if free else float(output)
    w_std = 1.0 / np.sqrt(d) if w_std is None else float(w_std)
    initial = LiftedGaussian(d, k, free, a_mean, np.full(k, w_std), w_std, c_mean, c_std,
                             symmetric, radial_u)

    rng = np.random.default_rng(seed)
    full_points = law.sample(rng, test_points)
    base = reduced_quadrature(law, nodes_u, nodes_r)
    data = reduced_quadrature(law, nodes_u, nodes_r, extra=law.reduce(full_points))
    if radial_u:
        top = data.points[:, :2].max(axis=0) * np.array([a_max, q_max])
        unit = TwoRadiiRidgeUnit(d, k, activation, c_fixed, tol=tol, nodes=nodes,
                                 memo_bytes=memo_bytes,
                                 table=None if table_step is None else tuple(top),
                                 table_step=0.05 if table_step is None else table_step)
    else:
        unit = ReducedRidgeUnit(d, k, activation, c_fixed, tol=tol, memo_bytes=memo_bytes)

    labelled = law.labelled
    if isinstance(target, str) and target == "label":
        if not labelled:
            raise ValueError("ridge_problem: target 'label' needs a labelled data law")
        col = 2 if radial_u else k + 1
        red_target = targets.ExpressionTarget(f"x{col}", col + 1)
        full_target = targets.ExpressionTarget(f"x{d}", d + 1)
    else:
        red_target = (targets.ExpressionTarget(target, data.dim) if isinstance(target, str)
                      else target)
        full_target = LiftedTarget(law, red_target)

    ka = 1 if radial_u else k
    lower = [*([-c_max] if free else []),
             *([0.0 if radial_u else -a_max if a_min is None else a_min] * ka),
             -q_max if symmetric else 0.0]
    upper = [*([c_max] if free else []), *([a_max] * ka), q_max]
    reduced = Problem(unit, data, red_target, Box(tuple(lower), tuple(upper)), initial,
                      lam=lam, t_final=t_final, name=f"{name}-reduced")

    full_unit = RidgeUnit(d, unit.activation, c_fixed)
    if labelled:
        full_unit = units.LabelledDataUnit(full_unit)
    full_data = DataQuadrature(name=f"{law.kind}_test", points=full_points,
                               weights=np.full(test_points, 1.0 / test_points),
                               sampler=partial(_sample_law, law),
                               exact_degree="nothing exactly (Monte Carlo test set)")
    k_full = full_unit.param_dim
    full = Problem(full_unit, full_data, full_target,
                   Box((-full_bound,) * k_full, (full_bound,) * k_full), initial.full(),
                   lam=lam, t_final=t_final, name=f"{name}-d{d}")
    return Reduction(reduced, full, law, unit, initial,
                     slice(base.size, base.size + test_points))
