"""Shared small problems for the tests."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest

import solver.pde  # noqa: F401 (the DOLFINx wheel's MPI first, when it is installed)
from solver.model import density, quadrature, targets, units
from solver.model.domain import Box
from solver.model.problem import Problem


def circle_problem(lam: float = 0.0, t_final: float = 0.5) -> Problem:
    """A small RBF-on-circle problem, theta = (c, z), 3-unit teacher."""
    unit = units.CircleRBFUnit(0.5)
    teacher = targets.TeacherTarget(unit, [[2.0, -1.0], [-1.5, 0.3], [1.5, 1.2]])
    return Problem(unit, quadrature.circle_lattice(32), teacher,
                   Box((-5.0, -np.pi), (5.0, np.pi)), density.Gaussian([0, 0], [0.5, 0.6]),
                   lam=lam, t_final=t_final)


@pytest.fixture
def small_circle_problem() -> Problem:
    return circle_problem()


def load_example(name: str):
    """Import ``examples/<name>.py`` as a module (examples are scripts, not a package)."""
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "examples"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # for ``import _common``
    spec = importlib.util.spec_from_file_location(f"example_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def tiny_run_config(output, *, t_final: float = 0.2, pde: dict | None = None,
                    particles: dict | None = None) -> str:
    """TOML text of a seconds-long run: circle-RBF units, 16 data points, a 2-unit teacher,
    FV on the 8 x 8 cylinder, widths 16 and 32 x 2 seeds (``pde``/``particles`` override)."""
    from solver.sweep import dump_toml

    return dump_toml({
        "name": "tiny", "output": str(output),
        "problem": {"t_final": t_final},
        "unit": {"kind": "circle_rbf", "width": 0.5},
        "data": {"kind": "circle_lattice", "points": 16},
        "target": {"kind": "teacher", "theta": [[2.0, -1.0], [-1.5, 0.3]]},
        "domain": {"kind": "cylinder", "lower": -5.0, "upper": 5.0},
        "initial": {"kind": "gaussian", "mean": [0.0, 0.0], "std": [0.5, 0.6]},
        "pde": {"cells": [8, 8], "outputs": 4, "snapshots": 0, "max_outflow": 0.01,
                **(pde or {})},
        "particles": {"n": [16, 32], "seeds": 2, "dt": 0.05, **(particles or {})},
    })
