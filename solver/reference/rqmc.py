"""Randomised quasi-Monte Carlo (RQMC) estimates of the noiseless limit, with intervals.

The Lagrangian solution from n equal-weight nodes theta_q(0) of rho_0 (``lagrangian_flow``,
rule "rqmc") estimates any output Q(t) (E, f_t at the data points) of the limit by Q_n(t), the
same output of the n-node flow. With scrambled Sobol' nodes each scramble s gives an
independent Q_n^(s)(t); their mean over S scrambles has the interval

    mean +- t_{S-1}((1 + level) / 2) sd / sqrt(S)       (Student t, ``level`` default 0.9)

for E[Q_n(t)], which differs from Q(t) by the bias of the n-node flow (the nodes interact,
so Q_n is not a plain quadrature of rho_0: its bias is of the order of the squared deviation
of f_n, much smaller than Monte Carlo's 1/n for RQMC nodes). ``rqmc_ladder`` runs n, 4n,
16n, ...: the bias is certified small when the means of consecutive levels agree within their
intervals, and the reported error of the finest level is its half-width plus its distance to
the previous level.

Unlike a mesh, the nodes never lose the concentrating or phase-mixing density at long times:
the error is that of integrating the pulled-back g o Phi_t against rho_0, whose variation,
not smoothness, sets the RQMC rate. Scrambles are split over the ranks of ``comm`` (each is
deterministic given its seed, so the result does not depend on the number of ranks).

Checks and restarts: the n-node flow is the gradient flow of E on the node measure, so
E_n must not rise over any accepted step (checked after each; a rise beyond
ENERGY_RISE_TOL E_n(0) stops the run, naming rtol: ``lagrangian.EnergyRise``);
mass and positivity are exact (equal weights). With ``store`` each finished scramble is
written atomically to store/rqmc-<nodes>-<scramble>.npz, and a later call with the same
store reuses it (after a kill, only the unfinished scrambles run again; a file made for
other times, nodes or seeds is refused).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import t as student_t

from solver.io import RunDirectory
from solver.model.problem import Problem
from solver.reference.lagrangian import lagrangian_flow

#: E_n may rise over a step by at most this fraction of E_n(0) (integration error).
ENERGY_RISE_TOL = 1e-9


@dataclass
class RQMCEstimate:
    """S scrambles of the n-node flow at ``times``: energy (S, T), f (S, T, M); means and
    interval half-widths at ``level``."""

    times: np.ndarray
    nodes: int
    energy: np.ndarray
    f: np.ndarray
    level: float = 0.9

    @property
    def scrambles(self) -> int:
        return len(self.energy)

    def _half_width(self, values: np.ndarray) -> np.ndarray:
        S = self.scrambles
        return (student_t.ppf(0.5 * (1 + self.level), S - 1) * values.std(axis=0, ddof=1)
                / np.sqrt(S))

    @property
    def energy_mean(self) -> np.ndarray:
        return self.energy.mean(axis=0)

    @property
    def energy_half_width(self) -> np.ndarray:
        return self._half_width(self.energy)

    @property
    def f_mean(self) -> np.ndarray:
        return self.f.mean(axis=0)

    @property
    def f_half_width(self) -> np.ndarray:
        """(T, M): the half-width of the interval of each f_t(x_m)."""
        return self._half_width(self.f)


def _scramble_run(problem: Problem, times: np.ndarray, nodes: int, seed: int, rtol: float,
                  path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(E (T,), f (T, M)) of one scramble: from ``path`` if it holds this run, else
    computed, checked and (with a path) written there."""
    if path is not None and path.exists():
        saved = np.load(path)
        if (int(saved["nodes"]) != nodes or int(saved["seed"]) != seed
                or not np.array_equal(saved["times"], times)):
            raise ValueError(f"rqmc store: {path} holds another run (nodes, seed or times "
                             f"differ); give an empty store directory or remove the file")
        return saved["energy"], saved["f"]
    run = lagrangian_flow(problem, times, nodes, rule="rqmc", integrator="dop853",
                          rtol=rtol, atol=rtol * 1e-2, scramble=seed,
                          energy_rise_tol=ENERGY_RISE_TOL)
    if path is not None:
        RunDirectory(path.parent).write_npz(path.name, nodes=nodes, seed=seed, times=times,
                                            energy=run.energy, f=run.f)
    return run.energy, run.f


def rqmc_estimate(problem: Problem, times: Sequence[float], nodes: int, scrambles: int = 8,
                  entropy: int = 0, rtol: float = 1e-9, level: float = 0.9,
                  comm=None, store: str | Path | None = None,
                  poll: Callable[[], None] | None = None) -> RQMCEstimate:
    """S = ``scrambles`` >= 2 independent RQMC runs of ``nodes`` nodes (DOP853, rtol;
    scramble seeds from (entropy, nodes, s)); split over ``comm``'s ranks in rounds of one
    scramble per rank, gathered on all; each kept in ``store`` when given (module
    docstring). ``poll`` is called by every rank before every round (it may be collective,
    and may raise to stop, e.g. when pre-empted: the finished scrambles stay in the store)."""
    if scrambles < 2:
        raise ValueError(f"rqmc_estimate: scrambles must be >= 2 for an interval, got {scrambles}")
    times = np.asarray(times, dtype=float)
    rank, size = (0, 1) if comm is None else (comm.rank, comm.size)
    if store is not None:
        store = Path(store)
        store.mkdir(parents=True, exist_ok=True)
    mine, error = {}, None
    try:
        for first in range(0, scrambles, size):
            if poll is not None:
                poll()
            s = first + rank
            if s >= scrambles:
                continue
            seed = int(np.random.SeedSequence([entropy, nodes, s]).generate_state(1)[0])
            path = None if store is None else store / f"rqmc-{nodes}-{s}.npz"
            mine[s] = _scramble_run(problem, times, nodes, seed, rtol, path)
    except Exception as exc:  # every rank must reach the gather below
        if comm is None or size == 1:
            raise
        error = exc
    if comm is not None and size > 1:
        failed = comm.allgather(None if error is None else f"rank {rank}: {error}")
        if error is not None:
            raise error
        if any(failed):
            raise RuntimeError("rqmc: " + "; ".join(m for m in failed if m))
        merged: dict = {}
        for part in comm.allgather(mine):
            merged.update(part)
        mine = merged
    order = [mine[s] for s in range(scrambles)]
    return RQMCEstimate(times, nodes, np.array([e for e, _ in order]),
                        np.array([f for _, f in order]), level)


@dataclass
class RQMCLadder:
    """Estimates at nodes n, 4n, ...; ``*_error``: the finest level's half-width plus its
    distance to the level before, for E (T,) and for f (T, M)."""

    levels: list[RQMCEstimate]

    @property
    def energy(self) -> np.ndarray:
        return self.levels[-1].energy_mean

    @property
    def energy_error(self) -> np.ndarray:
        fine, coarse = self.levels[-1], self.levels[-2]
        return fine.energy_half_width + np.abs(fine.energy_mean - coarse.energy_mean)

    @property
    def f(self) -> np.ndarray:
        return self.levels[-1].f_mean

    @property
    def f_error(self) -> np.ndarray:
        fine, coarse = self.levels[-1], self.levels[-2]
        return fine.f_half_width + np.abs(fine.f_mean - coarse.f_mean)

    def consistent(self) -> np.ndarray:
        """Per time: whether the two finest levels' intervals overlap (no visible bias)."""
        fine, coarse = self.levels[-1], self.levels[-2]
        gap = np.abs(fine.energy_mean - coarse.energy_mean)
        return gap <= fine.energy_half_width + coarse.energy_half_width


def rqmc_ladder(problem: Problem, times: Sequence[float], nodes: Sequence[int],
                scrambles: int = 8, **options) -> RQMCLadder:
    """``rqmc_estimate`` at each node count (at least two, increasing)."""
    nodes = [int(n) for n in nodes]
    if len(nodes) < 2 or np.any(np.diff(nodes) <= 0):
        raise ValueError(f"rqmc_ladder: need >= 2 increasing node counts, got {nodes}")
    return RQMCLadder([rqmc_estimate(problem, times, n, scrambles, **options) for n in nodes])
