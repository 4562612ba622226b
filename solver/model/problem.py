"""The Problem: everything the mathematics of the mean-field limit needs (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from solver.model.birth_death import check_rate
from solver.model.density import Density
from solver.model.domain import Domain
from solver.model.losses import SQUARE, Loss
from solver.model.quadrature import DataQuadrature
from solver.model.targets import Target
from solver.model.units import Unit

#: Largest fraction of rho_0's mass allowed outside the parameter domain.
MAX_INITIAL_MASS_OUTSIDE = 1e-3
#: The default birth-death rate gamma (off).
NO_BIRTH_DEATH = 0.0


@dataclass(eq=False)
class Problem:
    """Training of f_rho(x) = int s(x; theta) rho(dtheta) on E[rho] with

        E[rho] = sum_m w_m l(f_rho(x_m), y_m) + lam int r(theta) rho(dtheta)
                 (+ 1/beta int rho log rho),
        d rho/dt = div(rho grad Psi[rho]) + (1/beta) Laplace rho
                   - gamma (Psi - <Psi>_rho) rho,   gamma = ``birth_death``,
        Psi(theta; rho) = sum_m w_m d1 l(f_rho(x_m), y_m) s(x_m; theta) + lam r(theta),

l = ``loss`` (``solver.model.losses``; the square loss l = (f - y)^2/2 by default, then
d1 l = f - y); a loss for labels (logistic, smooth hinge) refuses targets not in {-1, +1}.

    The birth-death (Wasserstein-Fisher-Rao) reaction (``solver.model.birth_death``) is
    off at gamma = 0 (the default); gamma > 0 needs beta = inf for now.

    r = ``domain.regulariser`` (|theta|^2/2 on a box). rho_0 is ``initial``
    restricted to ``domain`` (and renormalised there). Parameter axes listed in
    ``frozen`` do not move (fixed features: grad Psi has no component along them).
    """

    unit: Unit
    data: DataQuadrature
    target: Target
    domain: Domain
    initial: Density
    beta: float = np.inf
    lam: float = 0.0
    t_final: float = 1.0
    name: str = "problem"
    frozen: tuple[int, ...] = ()
    # left out of checkpoint fingerprints when square (those of earlier runs stay valid)
    loss: Loss = field(default=SQUARE, metadata={"fingerprint": "omit_default"})
    birth_death: float = field(default=NO_BIRTH_DEATH, metadata={"fingerprint": "omit_default"})
    y: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        k = self.unit.param_dim
        if self.domain.param_dim != k:
            hint = (f"give lower/upper with {k} entries" if self.domain.kind == "box"
                    else f"choose a domain with {k} parameters")
            raise ValueError(
                f"domain: has dimension {self.domain.param_dim} but unit {self.unit.name!r} has "
                f"{k} parameters; {hint}"
            )
        if self.initial.dim != k:
            raise ValueError(
                f"initial: density has dimension {self.initial.dim}, unit {self.unit.name!r} "
                f"has {k} parameters"
            )
        if self.unit.data_dim is not None and self.data.dim != self.unit.data_dim:
            raise ValueError(
                f"data: points have dimension {self.data.dim}, unit {self.unit.name!r} "
                f"expects {self.unit.data_dim}"
            )
        frozen = tuple(sorted({int(i) for i in self.frozen}))
        if any(not 0 <= i < k for i in frozen) or len(frozen) == k:
            raise ValueError(
                f"frozen: axes must be distinct integers in 0..{k - 1} and leave one axis "
                f"free, got {list(self.frozen)}"
            )
        self.frozen = frozen
        if not self.beta > 0:
            raise ValueError(f"beta: must be > 0 (inf for noiseless), got {self.beta}")
        if not (np.isfinite(self.lam) and self.lam >= 0):
            raise ValueError(f"lambda: must be a finite number >= 0, got {self.lam}")
        # 0 (int or float) is stored as the default object: fingerprints omit it
        self.birth_death = check_rate(self.birth_death) or NO_BIRTH_DEATH
        if self.birth_death and np.isfinite(self.beta):
            raise ValueError(f"birth_death: with noise (beta = {self.beta:g}) is not implemented "
                             "yet (the reaction of the noisy flow would need mu = Psi + log "
                             "rho / beta); use beta = inf or birth_death = 0")
        if not (np.isfinite(self.t_final) and self.t_final > 0):
            raise ValueError(f"t_final: must be a finite number > 0, got {self.t_final}")
        outside = 1.0 - self.initial.mass_in(self.domain)
        if outside > MAX_INITIAL_MASS_OUTSIDE:
            raise ValueError(
                f"domain: {outside:.2%} of the initial density lies outside the "
                f"{self.domain.describe()}; "
                f"enlarge the domain (at most {MAX_INITIAL_MASS_OUTSIDE:.1%} may be cut)"
            )
        y = self.data.targets if self.data.targets is not None else self.target(self.data.points)
        y = np.asarray(y, dtype=float)
        if y.shape != (self.data.size,) or not np.all(np.isfinite(y)):
            raise ValueError("target: values at the data points must be M finite numbers")
        if not isinstance(self.loss, Loss):
            raise ValueError(f"loss: expected a solver.model.losses.Loss, got {self.loss!r}")
        self.loss.check_targets(y)
        self.y = y

    @property
    def param_dim(self) -> int:
        return self.unit.param_dim

    def weighted(self) -> tuple[Problem, np.ndarray]:
        """(this problem on its data points of positive weight, their indices). Points of
        weight 0 (evaluation points: a test set, a plotting grid) change neither E nor Psi,
        so the dynamics need only the others; ``self`` when every weight is positive."""
        rows = np.flatnonzero(self.data.weights > 0)
        if len(rows) == self.data.size:
            return self, rows
        return replace(self, data=self.data.rows(rows)), rows

    def sample_initial(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n exact draws from rho_0 (restricted to the domain), shape (n, k)."""
        return self.initial.sample_in(rng, n, self.domain)
