"""n particles in the mean-field time scaling (numpy): GD, noisy GD and online SGD.

    d theta_i = -grad Psi(theta_i; rho_n) dt (+ sqrt(2/beta) dW_i),
    rho_n = (1/n) sum_i delta(theta_i),

so each particle moves at O(1) speed and n -> infinity gives the PDE. Works for any
Problem and any parameter dimension k (no mesh is involved): a Sphere(25) is as good as
an interval.

Integrators (``simulate``):

- "rk4" / "euler": fixed steps no longer than dt per output interval (GD);
- "adaptive": Dormand-Prince 5(4) with error control (rtol, atol), steps ending exactly
  on the output times (GD);
- noise (default: on iff problem.beta is finite): Euler-Maruyama,
  theta += v dt + sqrt(2 dt / beta) xi, xi standard normal made tangent to the domain
  (zero along frozen axes); needs integrator "euler" (RK4 and "adaptive" are refused);
- batch = P (online SGD): every step draws P fresh samples x_p from the data law
  (``problem.data.sampler``) with targets y_p = problem.target(x_p), and uses the
  batch mean in place of E_mu in f_n and grad Psi ("euler" is plain SGD; "rk4" keeps
  the step's batch for all four stages).

Birth-death (``problem.birth_death = gamma > 0``, fixed-step GD; [Rotskoff, Jelassi, Bruna,
Vanden-Eijnden, ICML 2019]): after every step of length h, with Psi_i = Psi(theta_i; rho_n)
on the data quadrature and <Psi> = (1/n) sum_j Psi_j, unit i fires with probability
1 - exp(-gamma |Psi_i - <Psi>| h): if Psi_i > <Psi> it is killed and a uniformly chosen
other unit duplicated in its place, else it is duplicated onto a uniformly chosen other
unit (which is killed); n stays fixed (``birth_death_step``). Its random numbers come from
their own stream, one generator per step seeded by (the task's SeedSequence, step), so a
run is reproducible, independent of the rank and of interruptions.

After every step the domain retracts the points (wraps angles, normalises on the
sphere); with noise, points are also reflected at the walls of boxes, discs and the c
range of cylinders (the PDE's no-flux boundary). The outputs are always f_n at the
data quadrature points, so the PDE comparison uses the same L2(mu) norm.

Cost: one right-hand side is one fused pass per column block of the particles
(``Unit.output_and_vjp``: the unit's exp/trig/activation matrix is evaluated once, then
f_n is a matrix-vector product), then the matrix products of grad Psi with the kept
matrices: O(n M) at BLAS speed. Blocks are ~``block_bytes`` wide (cache-sized); the
matrices of at most ``max_bytes`` are kept between the two passes, the rest are
recomputed, so memory stays bounded for any n.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from solver import preemption
from solver.model import functionals
from solver.model.domain import Box, Circle, Cylinder, Disc, Domain
from solver.model.losses import is_label
from solver.model.memory import reuse_freed_memory
from solver.model.ode import dp54_trial, rk4_step
from solver.model.problem import Problem

#: Memory kept between the f_n pass and the grad Psi pass of one right-hand side. Keep it
#: below glibc's trim threshold (128 MiB after solver.model.memory.reuse_freed_memory): a
#: larger freed heap top is returned to the system after every call and faults back in
#: page by page on the next (2x slower at n = 2^16, M = 256).
DEFAULT_MAX_BYTES = 64 * 2**20
#: Width of one column block of the unit matrix, in bytes of one (M, block) array.
DEFAULT_BLOCK_BYTES = 2 * 2**20

INTEGRATORS = ("euler", "rk4", "adaptive")


@dataclass
class ParticleRun:
    """f_n(t)(x_m), loss and energy at the output times, and the final particles.

    energy = loss + lam sum_i r(theta_i) / n (no entropy term for noisy runs).
    steps: accepted time steps; evaluations: right-hand sides computed (both totals).
    """

    times: np.ndarray
    f: np.ndarray
    loss: np.ndarray
    energy: np.ndarray
    theta: np.ndarray
    steps: int = 0
    evaluations: int = 0


@dataclass(frozen=True)
class DataBatch:
    """The expectation E_mu the velocity uses: points (P, d), weights (P,), targets (P,)."""

    points: np.ndarray
    weights: np.ndarray
    y: np.ndarray


def full_data(problem: Problem) -> DataBatch:
    """The data quadrature of the problem (GD)."""
    return DataBatch(problem.data.points, problem.data.weights, problem.y)


def draw_batch(problem: Problem, rng: np.random.Generator, size: int) -> DataBatch:
    """P = size fresh samples of the data law with weights 1/P and y = problem.target(x)."""
    sampler = getattr(problem.data, "sampler", None)
    if sampler is None or not callable(sampler):
        raise ValueError(
            f"particles: batch = {size} (online SGD) draws fresh samples from the data law, "
            f"but the data quadrature {problem.data.name!r} has no sampler; run GD "
            f"(batch = None) or use data with a law to sample from"
        )
    x = problem.data.sample(rng, size)
    y = np.asarray(problem.target(x), dtype=float)
    if y.shape != (size,) or not np.all(np.isfinite(y)):
        raise ValueError(f"particles: target values at the {size} batch samples must be "
                         f"{size} finite numbers, got shape {y.shape}")
    if problem.loss.labels and not is_label(y):
        raise ValueError(f"particles: loss {problem.loss.name!r} needs labels -1, +1, but the "
                         f"target gives other values on a batch of fresh samples")
    return DataBatch(x, np.full(size, 1.0 / size), y)


# --- the fused right-hand side ------------------------------------------------------------


def _block_width(M: int, block_bytes: int) -> int:
    return max(1, int(block_bytes) // (8 * M))


def fused_output(problem: Problem, theta: np.ndarray, data: DataBatch | None = None,
                 block_bytes: int = DEFAULT_BLOCK_BYTES) -> np.ndarray:
    """f_n(x_m) = (1/n) sum_i s(x_m; theta_i) at the data points (M,), blockwise."""
    data = full_data(problem) if data is None else data
    x, n = data.points, len(theta)
    weights = np.full(n, 1.0 / n)
    f = np.zeros(len(x))
    width = _block_width(len(x), block_bytes)
    for start in range(0, n, width):
        cols = slice(start, min(start + width, n))
        f += problem.unit.output_and_vjp(x, theta[cols], weights[cols])[0]
    return f


def potential_gradient_and_output(
        problem: Problem, theta: np.ndarray, data: DataBatch | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        block_bytes: int = DEFAULT_BLOCK_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """(grad Psi(theta_i; rho_n) (n, k), f_n at the data points (M,)) in two fused passes.

    Pass 1 walks the column blocks once: the unit evaluates its matrix, adds its share of
    f_n and returns a vjp holding that matrix (kept for the last blocks whose total is
    <= max_bytes). Pass 2, in reverse order (the last blocks are still in cache), applies
    the vjps to v_m = w_m d1 l(f_n(x_m), y_m) (square loss: w_m (f_n(x_m) - y_m)); blocks
    not kept are evaluated again.
    Frozen axes get zero gradient; lam grad r is added.
    """
    data = full_data(problem) if data is None else data
    unit, x = problem.unit, data.points
    n, M = len(theta), len(x)
    weights = np.full(n, 1.0 / n)
    width = _block_width(M, block_bytes)
    blocks = [slice(start, min(start + width, n)) for start in range(0, n, width)]
    # keep the last blocks that fit: pass 2 starts with them while they are still cached
    tail_cost = np.cumsum([8 * M * (c.stop - c.start) * unit.fused_entries
                           for c in reversed(blocks)])
    first_kept = len(blocks) - int(np.searchsorted(tail_cost, max_bytes, side="right"))
    f = np.zeros(M)
    kept: list[tuple[slice, Callable[[np.ndarray], np.ndarray] | None]] = []
    for b, cols in enumerate(blocks):
        part, vjp = unit.output_and_vjp(x, theta[cols], weights[cols])
        f += part
        kept.append((cols, vjp if b >= first_kept else None))
        del vjp
    v = functionals.loss_weights(problem.loss, data.weights, f, data.y)
    grad = np.empty(theta.shape)
    while kept:
        cols, vjp = kept.pop()
        if vjp is None:
            vjp = unit.output_and_vjp(x, theta[cols], weights[cols])[1]
        grad[cols] = vjp(v)
        del vjp
    if problem.lam:
        grad += problem.lam * problem.domain.regulariser_gradient(theta)
    if problem.frozen:
        grad[:, list(problem.frozen)] = 0.0
    return grad, f


def velocity(problem: Problem, theta: np.ndarray, data: DataBatch | None = None,
             max_bytes: int = DEFAULT_MAX_BYTES,
             block_bytes: int = DEFAULT_BLOCK_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """(-grad Psi(theta_i; rho_n), f_n) for the particle cloud theta (n, k).

    data: the expectation to use (default: the data quadrature; a DataBatch for SGD).
    On a curved domain (the sphere) the velocity is projected on the tangent space.
    """
    grad, f = potential_gradient_and_output(problem, theta, data, max_bytes, block_bytes)
    np.negative(grad, out=grad)
    return problem.domain.project_velocity(theta, grad), f


def velocity_unfused(problem: Problem, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two-pass reference: f_n from the unit matrix, then theta_vjp recomputing it."""
    weights = np.full(len(theta), 1.0 / len(theta))
    f = functionals.network_output(problem, theta, weights)
    v = -functionals.potential_gradient(problem, theta, f)
    return problem.domain.project_velocity(theta, v), f


# --- boundaries and noise ------------------------------------------------------------------


def _fold(x: np.ndarray, lo: float | np.ndarray, hi: float | np.ndarray) -> np.ndarray:
    """Mirror x into [lo, hi] (any number of reflections)."""
    length = hi - lo
    return lo + length - np.abs(np.mod(x - lo, 2 * length) - length)


def reflect(domain: Domain, theta: np.ndarray) -> np.ndarray:
    """Points outside a box, a disc or a cylinder's c range mirrored back inside."""
    if isinstance(domain, Box):
        lo, hi = np.asarray(domain.lower), np.asarray(domain.upper)
        if np.any(theta < lo) or np.any(theta > hi):
            theta = _fold(theta, lo, hi)
    elif isinstance(domain, Cylinder):
        c = theta[:, 0]
        if np.any(c < domain.lower) or np.any(c > domain.upper):
            theta = theta.copy()
            theta[:, 0] = _fold(c, domain.lower, domain.upper)
    elif isinstance(domain, Disc):
        d = theta - np.asarray(domain.center)
        r = np.linalg.norm(d, axis=1)
        out = r > domain.radius
        if np.any(out):
            theta = theta.copy()
            scale = _fold(r[out], 0.0, domain.radius) / r[out]
            theta[out] = np.asarray(domain.center) + d[out] * scale[:, None]
    return theta


def _noise(problem: Problem, rng: np.random.Generator, theta: np.ndarray,
           h: float) -> np.ndarray:
    """sqrt(2 h / beta) xi, xi ~ N(0, I) tangent to the domain, zero along frozen axes."""
    xi = rng.standard_normal(theta.shape)
    if problem.frozen:
        xi[:, list(problem.frozen)] = 0.0
    return np.sqrt(2.0 * h / problem.beta) * problem.domain.project_velocity(theta, xi)


# --- integrators ---------------------------------------------------------------------------


class _Adaptive:
    """Dormand-Prince 5(4) with the standard controller; FSAL where retraction is harmless."""

    SAFETY, GROW, SHRINK = 0.9, 5.0, 0.2

    def __init__(self, rhs, domain: Domain, h0: float, rtol: float, atol: float,
                 max_steps: int) -> None:
        self.rhs, self.domain, self.h, self.rtol, self.atol = rhs, domain, h0, rtol, atol
        self.max_steps = max_steps
        # wrapping angles does not change the velocity; normalising on a sphere does
        self.fsal = isinstance(domain, Box | Disc | Circle | Cylinder)
        self.k1: np.ndarray | None = None
        self.steps = self.rejected = 0

    def attempt(self, theta: np.ndarray, t: float, t1: float) -> tuple[np.ndarray, float]:
        """One trial step from t towards t1: (theta, t) after it, unchanged if rejected."""
        last = self.h >= (t1 - t) * (1 - 1e-12)
        h = (t1 - t) if last else self.h
        if self.k1 is None:
            self.k1 = self.rhs(theta)
        new, err, k_new = dp54_trial(self.rhs, theta, h, self.k1)
        scale = self.atol + self.rtol * np.maximum(np.abs(theta), np.abs(new))
        norm = float(np.sqrt(np.mean((err / scale) ** 2)))
        if not np.isfinite(norm):
            raise FloatingPointError(
                f"particles: non-finite step at t={t:.6g} (adaptive, h={h:.3g})")
        factor = self.SAFETY * norm ** (-0.2) if norm > 0 else self.GROW
        if norm <= 1.0:
            t = t1 if last else t + h
            theta = self.domain.retract(new)
            self.k1 = k_new if self.fsal else None
            self.steps += 1
            proposal = h * min(self.GROW, max(self.SHRINK, factor))
            self.h = max(self.h, proposal) if last else proposal
        else:
            self.rejected += 1
            self.h = h * min(1.0, max(self.SHRINK, factor))
        if self.h <= 1e-14 * max(1.0, abs(t1)):
            raise FloatingPointError(
                f"particles: adaptive step fell to {self.h:.3g} at t={t:.6g}; "
                f"loosen rtol/atol")
        if self.steps + self.rejected >= self.max_steps:
            raise FloatingPointError(
                f"particles: adaptive integration took {self.max_steps} steps by "
                f"t={t:.6g} (step {self.h:.3g}); loosen rtol/atol or raise max_steps")
        return theta, t

    def state(self) -> dict:
        """The controller's state: next trial step, FSAL slope, step counts."""
        return {"h": self.h, "k1": None if self.k1 is None else self.k1.copy(),
                "steps": self.steps, "rejected": self.rejected}

    def restore(self, state: dict) -> None:
        self.h, self.steps, self.rejected = state["h"], state["steps"], state["rejected"]
        self.k1 = None if state["k1"] is None else np.array(state["k1"])


@dataclass
class ParticleState:
    """Everything ``simulate`` needs to continue a run bit for bit.

    interval: the output interval [times[i], times[i+1]] being integrated; substep: the
    fixed steps done in it; t: the time reached in it (adaptive); theta: the particles;
    f, loss, energy: the outputs recorded so far; steps, evaluations: the counts so far;
    rng_state: the generator's ``bit_generator.state`` (None without rng); adaptive:
    the controller's state (h, k1, steps, rejected) for "adaptive".
    """

    interval: int
    substep: int
    t: float
    theta: np.ndarray
    f: np.ndarray
    loss: np.ndarray
    energy: np.ndarray
    steps: int
    evaluations: int
    rng_state: dict | None = None
    adaptive: dict | None = None


class Checkpointer(Protocol):
    """Asked after every accepted step whether to save the state, and given it if so."""

    def due(self) -> bool: ...
    def save(self, state: ParticleState) -> None: ...


# --- birth-death ---------------------------------------------------------------------------


def particle_potential(problem: Problem, theta: np.ndarray,
                       block_bytes: int = DEFAULT_BLOCK_BYTES,
                       max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Psi(theta_i; rho_n) on the data quadrature, (n,)."""
    f = fused_output(problem, theta, None, block_bytes)
    return functionals.potential(problem, theta, f, max_bytes)


def birth_death_step(theta: np.ndarray, psi: np.ndarray, h: float, gamma: float,
                     rng: np.random.Generator) -> np.ndarray:
    """One step h of the particle birth-death process (a new array; n kept).

    Every unit i fires with probability 1 - exp(-gamma |Psi_i - <Psi>| h), <Psi> the mean
    of psi; a firing unit above the mean is replaced by a copy of a uniformly chosen other
    unit j, one below the mean replaces j by its copy. The events are applied in the order
    i = 0..n-1 (a copy copies the current value). Draws n uniforms and n partners always.
    """
    n = len(theta)
    dev = psi - np.mean(psi)
    fire = rng.random(n) < -np.expm1(-gamma * h * np.abs(dev))
    partner = rng.integers(0, max(n - 1, 1), size=n)
    new = theta.copy()
    if n < 2:
        return new
    for i in np.flatnonzero(fire):
        j = partner[i] + (partner[i] >= i)  # uniform among the others
        if dev[i] > 0:
            new[i] = new[j]
        else:
            new[j] = new[i]
    return new


def birth_death_generator(seed: np.random.SeedSequence, step: int) -> np.random.Generator:
    """The generator of birth-death step ``step`` (0-based) of the stream ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(
        seed.entropy, spawn_key=(*seed.spawn_key, int(step))))


# --- the run -------------------------------------------------------------------------------


def _check_options(problem: Problem, theta0: np.ndarray, times: np.ndarray, dt: float,
                   integrator: str, rng, noise, batch, rtol: float, atol: float) -> bool:
    """Validate simulate's arguments; returns whether the run is noisy."""
    if integrator not in INTEGRATORS:
        raise ValueError(f"particles: integrator {integrator!r} not in {INTEGRATORS}")
    k = problem.param_dim
    if theta0.ndim != 2 or theta0.shape[1] != k or len(theta0) < 1:
        raise ValueError(f"particles: theta0 must have shape (n, {k}) with n >= 1, "
                         f"got {theta0.shape}")
    if not np.all(np.isfinite(theta0)):
        raise ValueError("particles: theta0 has non-finite entries")
    if times.ndim != 1 or times.size < 1 or not np.all(np.isfinite(times)) or np.any(
            np.diff(times) <= 0):
        raise ValueError("particles: times must be finite and strictly increasing")
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"particles: dt must be a finite step > 0, got {dt}")
    noisy = np.isfinite(problem.beta) if noise is None else bool(noise)
    if noisy and not np.isfinite(problem.beta):
        raise ValueError("particles: noise=True needs a finite beta in the problem")
    if noisy and integrator != "euler":
        raise ValueError(
            f"particles: noisy dynamics (beta = {problem.beta:g}) are integrated by "
            f"Euler-Maruyama; integrator {integrator!r} is for noiseless GD only: pass "
            f"integrator='euler' (or noise=False for GD without the noise)")
    if batch is not None:
        if isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1:
            raise ValueError(f"particles: batch must be a positive integer or None, got "
                             f"{batch!r}")
        if integrator == "adaptive":
            raise ValueError("particles: online SGD (batch) needs fixed steps: use "
                             "integrator 'euler' (plain SGD) or 'rk4'")
    if (noisy or batch is not None) and rng is None:
        raise ValueError("particles: noise and batch sampling need rng "
                         "(a numpy Generator) for reproducible draws")
    if problem.birth_death and (integrator == "adaptive" or batch is not None):
        raise ValueError("particles: birth-death (problem.birth_death > 0) needs fixed-step "
                         "full-data GD for now: integrator 'euler' or 'rk4', no batch")
    if integrator == "adaptive" and not (rtol > 0 and atol > 0):
        raise ValueError(f"particles: rtol and atol must be > 0, got {rtol}, {atol}")
    return noisy


def simulate(problem: Problem, theta0: np.ndarray, times: np.ndarray, dt: float,
             integrator: str = "rk4", *, rng: np.random.Generator | None = None,
             noise: bool | None = None, batch: int | None = None, rtol: float = 1e-6,
             atol: float = 1e-9, max_steps: int = 100_000, max_bytes: int = DEFAULT_MAX_BYTES,
             block_bytes: int = DEFAULT_BLOCK_BYTES, checkpoint: Checkpointer | None = None,
             resume: ParticleState | None = None,
             birth_death_seed: np.random.SeedSequence | None = None) -> ParticleRun:
    """Integrate the particles from theta0 (n, k), recording at ``times`` (from times[0]).

    integrator: "rk4" or "euler" (equal steps no longer than dt per output interval) or
    "adaptive" (Dormand-Prince 5(4), first trial step dt, error rtol/atol per coordinate,
    at most max_steps accepted + rejected steps in all).
    noise: None = on iff problem.beta < inf; on, Euler-Maruyama (integrator "euler" only).
    batch: P fresh data samples per step (online SGD) instead of the data quadrature.
    rng: the generator of the noise and the batches (required when either is on; per
    step the batch is drawn before the noise).
    max_bytes / block_bytes: memory kept between the passes / cache block of one
    right-hand side. Raises FloatingPointError if the particles become non-finite.
    checkpoint: asked after every accepted step (``due``) and then handed the
    ``ParticleState`` (``save``; it may raise to stop the run, e.g. when pre-empted).
    resume: a saved state to continue from (theta0 is then ignored, rng's state is
    restored): the result is bit-identical to the uninterrupted run's.
    birth_death_seed: the stream of the birth-death events (required when
    problem.birth_death > 0; step s uses ``birth_death_generator(seed, s)``).
    """
    reuse_freed_memory()
    theta = np.array(theta0 if resume is None else resume.theta, dtype=float)
    times = np.asarray(times, dtype=float)
    noisy = _check_options(problem, theta, times, dt, integrator, rng, noise, batch, rtol,
                           atol)
    full = full_data(problem)
    evaluations = 0 if resume is None else resume.evaluations
    gamma = problem.birth_death
    if gamma and birth_death_seed is None:
        raise ValueError("particles: birth-death (problem.birth_death > 0) needs "
                         "birth_death_seed (a numpy SeedSequence) for reproducible events")

    def rhs(th: np.ndarray, data: DataBatch = full) -> np.ndarray:
        nonlocal evaluations
        evaluations += 1
        return velocity(problem, th, data, max_bytes, block_bytes)[0]

    weights = np.full(len(theta), 1.0 / len(theta))
    fs, losses, energies = [], [], []

    def record() -> None:
        f = fused_output(problem, theta, full, block_bytes)
        fs.append(f)
        losses.append(functionals.loss(problem, f))
        energies.append(functionals.energy(problem, f, theta, weights))

    adaptive = (_Adaptive(rhs, problem.domain, dt, rtol, atol, max_steps)
                if integrator == "adaptive" else None)
    steps, first, substep, t_in = 0, 0, 0, float(times[0])
    if resume is None:
        record()
    else:
        first, substep, t_in, steps = resume.interval, resume.substep, resume.t, resume.steps
        fs, losses, energies = list(resume.f), list(resume.loss), list(resume.energy)
        if resume.rng_state is not None:
            if rng is None:
                raise ValueError("particles: the saved state has a generator state; pass rng")
            rng.bit_generator.state = resume.rng_state
        if adaptive is not None:
            adaptive.restore(resume.adaptive)

    def save(interval: int, done: int, t: float) -> None:
        if checkpoint is not None and checkpoint.due():
            checkpoint.save(ParticleState(
                interval, done, t, theta.copy(), np.array(fs), np.array(losses),
                np.array(energies), adaptive.steps if adaptive is not None else steps,
                evaluations, None if rng is None else rng.bit_generator.state,
                None if adaptive is None else adaptive.state()))

    for i in range(first, len(times) - 1):
        t0, t1 = times[i], times[i + 1]
        if adaptive is not None:
            t = t_in if i == first else t0
            while t < t1:
                accepted = adaptive.steps
                theta, t = adaptive.attempt(theta, t, t1)
                if adaptive.steps > accepted:
                    save(i, 0, t)
        else:
            count = max(1, int(np.ceil((t1 - t0) / dt - 1e-9)))
            h = (t1 - t0) / count
            for j in range(substep if i == first else 0, count):
                before = (evaluations, None if rng is None else rng.bit_generator.state)
                try:  # a signal stops a long step at once; it is rolled back and saved
                    with preemption.immediately(f"a particle step (n = {len(theta)})"):
                        data = full if batch is None else draw_batch(problem, rng, batch)
                        if integrator == "rk4":
                            new = rk4_step(lambda th, d=data: rhs(th, d), theta, h)
                        else:
                            new = theta + h * rhs(theta, data)
                        if noisy:
                            new += _noise(problem, rng, theta, h)
                            new = reflect(problem.domain, new)
                except preemption.Preempted:
                    evaluations = before[0]
                    if rng is not None:
                        rng.bit_generator.state = before[1]
                    save(i, j, t0)  # the checkpointer saves this step's start and raises
                    raise
                theta = problem.domain.retract(new)
                if gamma:
                    psi = particle_potential(problem, theta, block_bytes, max_bytes)
                    theta = birth_death_step(theta, psi, h, gamma,
                                             birth_death_generator(birth_death_seed, steps))
                steps += 1
                save(i, j + 1, t0)
        if not np.all(np.isfinite(theta)):
            raise FloatingPointError(f"particles: non-finite parameters by t={t1:.6g}; lower dt")
        record()
    if adaptive is not None:
        steps = adaptive.steps
    return ParticleRun(times, np.array(fs), np.array(losses), np.array(energies), theta,
                       steps, evaluations)
