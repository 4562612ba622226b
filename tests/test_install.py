"""The install paths (docs/install.md) stay in step: environment.yml (own DOLFINx, conda)
has every runtime dependency of pyproject.toml, and no test looks for the DOLFINx wheel
instead of DOLFINx itself (with one's own DOLFINx such a test would skip silently)."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()


def test_environment_yml_has_every_dependency_and_dolfinx_0_11():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda = {_name(line.strip()[2:]): line.strip()[2:]
             for line in (ROOT / "environment.yml").read_text().splitlines()
             if line.startswith("  - ")}
    needed = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    needed.discard("mpich")  # the MPI library: conda-forge's mpi4py brings its own
    assert needed - set(conda) == set()
    assert "dolfinx-solver-real>=0.11,<0.12" in project["optional-dependencies"]["dolfinx"]
    assert conda["fenics-dolfinx"] == "fenics-dolfinx=0.11.*" and "petsc4py" in conda


def test_no_test_skips_on_the_wheel_rather_than_on_dolfinx():
    for path in sorted((ROOT / "tests").glob("*.py")):
        assert not re.search(r"importorskip\(\s*[\"']dolfinx_solver", path.read_text()), path
