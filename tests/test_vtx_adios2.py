"""rho.bp read back by a real ADIOS2 reader (PyPI's adios2, in its own venv made by
scripts/adios2_venv.sh, since it cannot live beside the DOLFINx wheel): every snapshot is
there, at its time, with mass 1 recomputed from the geometry and connectivity read, and the
smallest value read is the summary's ``min_rho_written``. Under mpiexec the run is
parallel (one block per rank, ghost cells included) and rank 0 reads."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dolfinx", reason="needs DOLFINx")
from mpi4py import MPI

from solver.io import RunDirectory
from solver.pde.solve import solve
from solver.settings import PDESettings
from tests.conftest import circle_problem
from tests.ranks import on_root, shared_dir

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-adios2"  # ignored by git; made once, about 11 s (measured), then reused
READER = ROOT / "tests" / "tools" / "read_vtx_adios2.py"


def _make_venv() -> str | None:
    """None when .venv-adios2 has adios2 and numpy (made if needed), else why not."""
    if shutil.which("bash") is None:
        return "scripts/adios2_venv.sh needs bash"
    made = subprocess.run(["bash", str(ROOT / "scripts" / "adios2_venv.sh"), str(VENV)],
                          capture_output=True, text=True, timeout=600)
    if made.returncode != 0:
        return f"cannot make {VENV} (pip install adios2 numpy): {made.stderr[-300:]}"
    return None


@pytest.fixture(scope="module")
def adios2_python() -> Path:
    """The Python of .venv-adios2 (adios2 + numpy), made by rank 0; skips on every rank when
    it cannot be made (no Python >= 3.12 or no package index), naming why."""
    comm = MPI.COMM_WORLD
    why = comm.bcast(_make_venv() if comm.rank == 0 else None, root=0)
    if why:
        pytest.skip(why)
    return VENV / "bin" / "python"


def read_back(python: Path, run: Path) -> list[dict]:
    read = subprocess.run([str(python), str(READER), str(run / "rho.bp")],
                          capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr
    return json.loads(read.stdout)


@pytest.fixture
def no_figures(monkeypatch):
    for name in ("plot_energy", "plot_snapshots"):
        monkeypatch.setattr(f"solver.pde.run_writer.{name}",
                            lambda path, *a, **k: path.write_bytes(b"figure"))


@pytest.mark.mpi
def test_fv_snapshots_read_by_adios2_cell_data_mass_one(tmp_path, no_figures, adios2_python):
    comm = MPI.COMM_WORLD
    out = shared_dir(comm, tmp_path)
    settings = PDESettings(cells=(12, 12), outputs=4, snapshots=3, progress=False)
    result = solve(circle_problem(t_final=0.4), settings, RunDirectory(out), comm=comm)
    final_min = comm.allreduce(float(result.scheme.density().min()), MPI.MIN)

    def check():
        rows = read_back(adios2_python, out)
        assert [r["t"] for r in rows] == pytest.approx([0.0, 0.2, 0.4])
        assert all(r["cells"] == 144 and r["blocks"] == comm.size and r["data"] == "cell"
                   for r in rows)
        np.testing.assert_allclose([r["mass"] for r in rows], 1.0, rtol=1e-12)
        assert min(r["min"] for r in rows) >= 0  # FV cell values
        assert rows[-1]["min"] == pytest.approx(final_min, rel=1e-12, abs=0)
        summary = json.loads((out / "summary.json").read_text())
        assert summary["min_rho_written"] == min(r["min"] for r in rows)

    on_root(comm, check)


@pytest.mark.mpi
def test_dg2_snapshots_read_by_adios2_point_data_mass_one(tmp_path, no_figures,
                                                          adios2_python):
    """DG2 nodal values: the mass of their Q2 interpolant is 1, and their minimum, negative
    on this run (the limiter controls the Gauss points, not the nodes), is what the summary
    reports as min_rho_written, while min_rho (the limiter points) is >= 0."""
    comm = MPI.COMM_WORLD
    out = shared_dir(comm, tmp_path)
    settings = PDESettings(cells=(6, 6), scheme="dg", degree=2, integrator="ssprk3",
                           outputs=2, snapshots=2, progress=False)
    solve(circle_problem(t_final=0.2), settings, RunDirectory(out), comm=comm)

    def check():
        rows = read_back(adios2_python, out)
        assert [r["t"] for r in rows] == pytest.approx([0.0, 0.2])
        assert all(r["cells"] == 36 and r["blocks"] == comm.size and r["data"] == "point"
                   for r in rows)
        np.testing.assert_allclose([r["mass"] for r in rows], 1.0, rtol=1e-12)
        summary = json.loads((out / "summary.json").read_text())
        assert summary["min_rho_written"] == min(r["min"] for r in rows) < 0
        assert summary["min_rho"] >= 0

    on_root(comm, check)
