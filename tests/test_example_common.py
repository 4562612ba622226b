"""examples/_common.py: an example that solves a PDE stops before any work when DOLFINx is
absent (a particle-only install), with a config error naming what to install."""

import sys
from pathlib import Path

import pytest

from solver.errors import ConfigError
from tests.conftest import load_example

#: every script example but three_spin (whose Part A is particles only: test_example_three_spin)
#: and long_time_gap, alpha_rise (their limits are numpy Lagrangian flows: test_long_time_gap,
#: test_alpha_rise)
NUMPY_ONLY = ("three_spin", "long_time_gap", "alpha_rise")
NEED_DOLFINX = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "examples")
                      .glob("[!_]*.py") if p.stem not in NUMPY_ONLY)


@pytest.mark.parametrize("name", NEED_DOLFINX)
def test_without_dolfinx_a_pde_example_stops_before_any_work(name, tmp_path, monkeypatch):
    example = load_example(name)
    monkeypatch.setattr(sys.modules["_common"], "dolfinx_available", lambda: False)
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=f"{name} solves a PDE and needs DOLFINx"):
        example.main(["--size", "small", "--output", str(out), "--no-progress"])
    assert not out.exists()
