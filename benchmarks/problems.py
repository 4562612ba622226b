"""The flagship circle-RBF problem shared by the benchmarks (examples/rbf_circle.toml).

s(x; c, z) = c exp((cos(x - z) - 1) / 0.5^2), data on a lattice of the circle, a 3-unit
teacher, rho_0 = N(0, diag(std^2)) on c in [-5, 5], z in [-pi, pi] (a box, or the cylinder).
"""

from __future__ import annotations

import numpy as np

from solver.model import density, quadrature, targets, units
from solver.model.domain import Box, Domain
from solver.model.problem import Problem

TEACHER = [[2.0, -1.0], [-1.5, 0.3], [1.5, 1.2]]


def circle_rbf(points: int = 64, *, beta: float = np.inf, lam: float = 0.0,
               t_final: float = 5.0, frozen: tuple[int, ...] = (), std=(0.5, 0.6),
               domain: Domain | None = None) -> Problem:
    unit = units.CircleRBFUnit(0.5)
    return Problem(unit, quadrature.circle_lattice(points), targets.TeacherTarget(unit, TEACHER),
                   domain or Box((-5.0, -np.pi), (5.0, np.pi)),
                   density.Gaussian([0.0, 0.0], list(std)), beta=beta, lam=lam,
                   t_final=t_final, frozen=frozen, name=f"circle_rbf M={points}")
