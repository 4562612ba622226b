"""examples/neuron_tanh.py at --size small: PDE vs particles for tanh neurons in 2-D and 3-D."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dolfinx", reason="needs DOLFINx (the example solves a PDE)")
from mpi4py import MPI

from tests.conftest import load_example


@pytest.mark.mpi
def test_neuron_tanh_small(tmp_path):
    comm = MPI.COMM_WORLD
    out = Path(comm.bcast(str(tmp_path / "x"), root=0))
    load_example("neuron_tanh").main(["--size", "small", "--output", str(out), "--no-progress"])
    s = json.loads((out / "summary.json").read_text())
    for name in ("gallery.png", "report.md", "part_a/report.md", "part_b/comparison.csv"):
        assert (out / name).is_file(), name
    a, b = s["part_a"], s["part_b"]
    for part in (a, b):
        assert part["pde"]["energy_monotone"]
        assert part["pde"]["mass_drift"] < 1e-12
    # A (measured: gaps 1.3e-2, 7.2e-3, 3.8e-3 at n = 32, 128, 512): the CLT rate n^-1/2,
    # and the particle loss at n = 512 within 1e-3 of the PDE loss (measured 7.6e-5)
    gaps = np.array(a["gap_final"])
    assert np.all(np.diff(gaps) < 0)
    slope = np.polyfit(np.log(a["n"]), np.log(gaps), 1)[0]
    assert -0.7 < slope < -0.3
    assert abs(a["loss_bias_final"][-1]) < 1e-3
    assert a["pde"]["error_budget_final"] < 2e-3
    # B: the loss falls by 5x on [0, 2] (measured 0.31 -> 0.060); particles agree to the
    # coarse mesh's accuracy (loss bias measured 0.023 at n = 512)
    assert b["pde"]["energy_final"] < 0.2 * b["pde"]["energy_initial"]
    assert abs(b["loss_bias_final"][-1]) < 0.05
    assert s["ranks"] == comm.size


def test_fv_boundary_normals_of_a_hexahedral_box():
    """The outward normals of boundary quadrilaterals in 3-D are the unit axis vectors (the
    neuron example's 3-D boundary-outflow check depends on it; they were nan before)."""
    from dolfinx import fem

    from solver.model.domain import Box
    from solver.pde.fv_geometry import build_geometry
    from solver.pde.meshes import build_mesh

    msh = build_mesh(MPI.COMM_SELF, Box((0, 0, 0), (1, 2, 3)), (2, 3, 4))
    g = build_geometry(msh, fem.functionspace(msh, ("DG", 0)))
    n = g.boundary_normal
    assert len(n) == 2 * (3 * 4 + 2 * 4 + 2 * 3)
    assert np.allclose(np.abs(n).max(axis=1), 1.0) and np.allclose(np.abs(n).sum(axis=1), 1.0)
    outward = g.centroids[g.boundary_cell] - np.array([0.5, 1.0, 1.5])
    assert np.all(np.sum(n * outward, axis=1) > 0)


@pytest.mark.parametrize("scheme, degree", [("fv", 1), ("dg", 1), ("dg", 2)])
def test_point_measure_reproduces_the_network_output(scheme, degree):
    """Scheme.point_measure(): sum_q W_q = 1 and f = sum_q W_q s(x; theta_q) (the examples
    plot and post-process the density through it)."""
    from solver.model import functionals
    from solver.pde.solve import make_scheme
    from solver.settings import PDESettings

    module = load_example("neuron_tanh")
    p = module.problem_a(1.0)
    scheme_ = make_scheme(p, PDESettings(cells=(6, 6), scheme=scheme, degree=degree),
                          MPI.COMM_SELF)
    scheme_.set_density(scheme_.initial_density())
    theta, W = scheme_.point_measure()
    assert W.sum() == pytest.approx(1.0, abs=1e-13)
    assert np.allclose(functionals.network_output(p, theta, W), scheme_.f, rtol=0, atol=1e-13)
