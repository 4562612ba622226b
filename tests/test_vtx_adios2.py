"""rho.bp read back by a real ADIOS2 reader (PyPI's adios2, in its own environment, since it
cannot live beside the DOLFINx wheel): every snapshot is there, at its time, with mass 1."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dolfinx", reason="needs DOLFINx")
from mpi4py import MPI

from solver.io import RunDirectory
from solver.pde.solve import solve
from solver.settings import PDESettings
from tests.conftest import circle_problem

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-adios2"
READER = ROOT / "tests" / "tools" / "read_vtx_adios2.py"


def adios2_python() -> Path:
    """The Python of .venv-adios2 (made on first use, about 10 s: venv + pip install adios2
    numpy); skips the test when it cannot be made (no package index)."""
    python = VENV / "bin" / "python"
    if not python.exists():
        made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)],
                              capture_output=True, text=True)
        pip = made.returncode == 0 and subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "adios2", "numpy"],
            capture_output=True, text=True)
        if not pip or pip.returncode != 0:
            pytest.skip(f"cannot make {VENV} with adios2: {(pip or made).stderr[-300:]}")
    return python


def test_rho_bp_read_by_adios2_has_every_snapshot_with_mass_one(tmp_path, monkeypatch):
    for name in ("plot_energy", "plot_snapshots"):
        monkeypatch.setattr(f"solver.pde.run_writer.{name}",
                            lambda path, *a, **k: path.write_bytes(b"figure"))
    settings = PDESettings(cells=(12, 12), outputs=4, snapshots=3, progress=False)
    result = solve(circle_problem(t_final=0.4), settings, RunDirectory(tmp_path),
                   comm=MPI.COMM_SELF)
    read = subprocess.run([str(adios2_python()), str(READER), str(tmp_path / "rho.bp")],
                          capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr
    rows = json.loads(read.stdout)
    assert [r["t"] for r in rows] == pytest.approx([0.0, 0.2, 0.4])
    assert all(r["cells"] == 144 for r in rows)
    np.testing.assert_allclose([r["mass"] for r in rows], 1.0, rtol=1e-12)
    assert min(r["min"] for r in rows) >= 0  # FV cell values
    assert rows[-1]["min"] == pytest.approx(result.scheme.density().min(), rel=1e-12, abs=0)
