"""The FV scheme on every domain type: structure each step, and serial == 2 ranks."""

import numpy as np
import pytest

pytest.importorskip("dolfinx", reason="needs DOLFINx")
from mpi4py import MPI

from solver.model import density, quadrature, targets, units
from solver.model.domain import Circle, Cylinder, Disc, Sphere
from solver.model.problem import Problem
from solver.pde.solve import solve
from solver.settings import PDESettings
from tests.ranks import assert_runs_agree


def _angle_unit(width: float = 0.7) -> units.CallableUnit:
    """s(x; z) = exp((cos(x - z) - 1) / w^2): a bump of fixed height centred at angle z."""

    def value(x, theta):
        return np.exp((np.cos(x[:, :1] - theta[:, 0]) - 1) / width**2)

    def gradient(x, theta):
        d = x[:, :1] - theta[:, 0]
        return (value(x, theta) * np.sin(d) / width**2)[..., None]

    return units.CallableUnit(value, gradient, param_dim=1, data_dim=1, name="angle_bump")


def problem(kind: str) -> tuple[Problem, tuple[int, ...]]:
    """A small noiseless problem on each domain and the cells its mesh takes."""
    if kind == "disc":
        unit = units.RBFUnit(1, 0.6)  # theta = (c, z) in a disc
        return Problem(unit, quadrature.gauss_legendre([-2.0], [2.0], 24),
                       targets.TeacherTarget(unit, [[1.5, -0.8], [-1.0, 0.7]]),
                       Disc((0.0, 0.0), 4.0), density.Gaussian([0, 0], [0.4, 0.5]),
                       t_final=1.0), (12,)
    if kind == "circle":
        unit = _angle_unit()
        target = targets.ExpressionTarget("0.8*exp((cos(x0 - 1.0) - 1)/0.49)", 1)
        return Problem(unit, quadrature.circle_lattice(32), target, Circle(),
                       density.Gaussian([-0.5], [0.6]), t_final=1.0), (64,)
    if kind == "cylinder":
        unit = units.CircleRBFUnit(0.5)
        return Problem(unit, quadrature.circle_lattice(32),
                       targets.TeacherTarget(unit, [[2.0, 3.0], [1.5, -2.9]]),
                       Cylinder(-5.0, 5.0), density.Gaussian([0, 1.8], [0.5, 0.4]),
                       lam=0.05, t_final=1.0), (20, 24)
    unit = units.FixedOutputNeuron(3, "tanh")  # theta = w on the sphere S^2
    data = quadrature.sphere_product(6)
    teacher = targets.TeacherTarget(unit, [[0.0, 0.0, 2.0], [2.0, 0.0, 0.0]])
    return Problem(unit, data, teacher, Sphere(3),
                   density.VonMisesFisher([1.0, 1.0, 1.0], 2.0), t_final=1.0), (2,)


KINDS = ["disc", "circle", "cylinder", "sphere"]


@pytest.mark.parametrize("kind", KINDS)
def test_structure_on_every_domain(kind):
    prob, cells = problem(kind)
    result = solve(prob, PDESettings(cells=cells, outputs=4, snapshots=0, progress=False),
                   comm=MPI.COMM_SELF)
    steps = {k: np.array(v) for k, v in result.steps.items()}
    assert len(steps["t"]) > 3
    assert np.ptp(steps["mass"]) < 1e-12
    assert steps["min_rho"].min() >= 0
    assert np.all(np.diff(steps["energy"]) <= 0)
    assert result.energy[-1] < 0.99 * result.energy[0]


@pytest.mark.mpi
@pytest.mark.parametrize("kind", KINDS)
def test_serial_equals_parallel_on_every_domain(kind):
    prob, cells = problem(kind)
    settings = PDESettings(cells=cells, outputs=4, snapshots=0, progress=False)
    serial = solve(prob, settings, comm=MPI.COMM_SELF)
    parallel = solve(prob, settings, comm=MPI.COMM_WORLD)
    assert_runs_agree(serial, parallel)


@pytest.mark.parametrize("kind", ["cylinder", "sphere"])
def test_dg_on_a_named_surface_mesh(kind):
    """DG1 on the shipped reference meshes (triangles in R^3): structure every step."""
    prob, _ = problem(kind)
    settings = PDESettings(mesh=kind, level=1, scheme="dg", degree=1, integrator="ssprk3",
                           outputs=2, snapshots=0, progress=False)
    result = solve(prob, settings, comm=MPI.COMM_SELF)
    steps = {k: np.array(v) for k, v in result.steps.items()}
    assert np.ptp(steps["mass"]) < 1e-12
    assert steps["min_rho"].min() >= 0
    assert np.all(np.diff(steps["energy"]) <= 0)
    assert result.energy[-1] < result.energy[0]


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["cylinder", "sphere"])
def test_dg_serial_equals_parallel_on_surfaces(kind):
    prob, cells = problem(kind)
    settings = PDESettings(cells=cells, scheme="dg", degree=1, integrator="ssprk3", outputs=2,
                           snapshots=0, progress=False)
    serial = solve(prob, settings, comm=MPI.COMM_SELF)
    parallel = solve(prob, settings, comm=MPI.COMM_WORLD)
    np.testing.assert_allclose(parallel.energy, serial.energy, rtol=1e-10)
    np.testing.assert_allclose(parallel.f, serial.f, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("scheme", ["fv", "dg"])
def test_a_mesh_that_does_not_fit_the_domain_is_refused(scheme):
    from solver.model.domain import Box
    from solver.pde.dg_transport import DGTransport
    from solver.pde.finite_volume import FiniteVolume
    from solver.pde.meshes import box_mesh

    prob, _ = problem("cylinder")  # a surface in R^3; a flat rectangle does not fit it
    flat = box_mesh(MPI.COMM_SELF, Box((-5.0, -np.pi), (5.0, np.pi)), (4, 4))
    with pytest.raises(ValueError, match=r"pde\.mesh: .*cylinder"):
        (FiniteVolume if scheme == "fv" else DGTransport)(flat, prob)
