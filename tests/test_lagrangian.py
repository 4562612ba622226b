"""The lagrangian scheme (solver.pde.lagrangian): moving Gauss nodes of rho_0, checked on the
exact polar flow, its structural checks, its refusals, its snapshots and MPI."""

import json
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("dolfinx", reason="needs DOLFINx")
import h5py
from mpi4py import MPI

from solver.cli import main
from solver.errors import ConfigError
from solver.io import RunDirectory
from solver.model.domain import Circle, Cylinder
from solver.pde.solve import solve
from solver.reference.polar_flow import PolarFlow, polar_flow_problem
from solver.settings import PDESettings

LAG = PDESettings(cells=(8,), scheme="lagrangian", degree=1, integrator="dopri5",
                  time_tolerance=1e-13, outputs=2, snapshots=0, progress=False)


def _errors(domain, cells, degree, target=1.0, t_final=2.0):
    """(max_t |E - E_exact|, max relative error of rho at the nodes at t_final)."""
    problem = polar_flow_problem(domain, target=target, t_final=t_final)
    exact = PolarFlow(domain, target=target)
    r = solve(problem, replace(LAG, cells=cells, degree=degree), comm=MPI.COMM_SELF)
    theta, _ = r.scheme.point_measure()
    rho, rho_exact = r.scheme.node_density(theta), exact.density(theta, t_final)
    return (float(np.max(np.abs(r.energy - exact.energy(r.times)))),
            float(np.max(np.abs(rho - rho_exact)) / rho_exact.max()))


@pytest.mark.parametrize("degree", [1, 2])
def test_orders_on_the_polar_flow_of_the_circle(degree):
    """E converges at least at order 2 degree + 2 (the cell Gauss rule; faster here, the
    pulled-back integrand is analytic), the density by the flow map's Jacobian at order
    degree (the derivative of the degree-p fit)."""
    (e1, d1), (e2, d2) = (_errors(Circle(), (n,), degree) for n in (8, 16))
    assert np.log2(e1 / e2) > 2 * degree + 2
    assert degree - 0.3 < np.log2(d1 / d2) < degree + 0.5
    assert e2 < 1e-7


def test_the_cylinder_at_long_times():
    """Y = 1: rho_t concentrates onto the pole without bound (width ~ e^-sigma, 2e-2 at
    t = 50) while the nodes near the antipode spread apart (the flow map's derivative there
    grows like e^sigma): E(t) within 1e-7 (relative) at t = 10 and 1e-3 at t = 50 on
    4 x 128 cells of degree 2 (measured 6.4e-8, 3.1e-4)."""
    problem = polar_flow_problem(Cylinder(-3.0, 3.0), target=1.0, t_final=50.0)
    exact = PolarFlow(Cylinder(-3.0, 3.0), target=1.0)
    r = solve(problem, replace(LAG, cells=(4, 128), degree=2, time_tolerance=1e-10,
                               outputs=5), comm=MPI.COMM_SELF)
    relative = np.abs(r.energy / exact.energy(r.times) - 1)
    assert relative[1] < 1e-7 and relative.max() < 1e-3
    assert exact.energy(r.times)[-1] < 3e-3 * r.energy[0]  # the flow did concentrate
    steps = r.steps
    assert np.ptp(steps["mass"]) == 0 and min(steps["min_rho"]) > 0
    assert np.all(np.diff(steps["energy"]) <= 0)
    # dE/dt = -sum W |v|^2: the difference quotient against the trapezoid of the dissipation
    dedt, mid = np.array(steps["dEdt"][1:]), 0.5 * (np.array(steps["dissipation"][1:])
                                                  + np.array(steps["dissipation"][:-1]))
    big = mid > 1e-3 * mid.max()
    assert np.max(np.abs(dedt[big] + mid[big]) / mid[big]) < 1e-2


def test_nodes_leaving_a_box_fail_with_the_fix_named():
    """The exact translation towards m* = 3 out of the box [-2, 2]: the nodes cross the wall
    (no no-flux wall for them); their weight outside is refused above pde.max_outflow."""
    from solver.errors import SchemeFailure
    from solver.model import density, quadrature, targets, units
    from solver.model.domain import Box
    from solver.model.problem import Problem

    problem = Problem(units.LinearUnit(1), quadrature.gauss_hermite([0.0], 1.0, 3),
                      targets.ExpressionTarget("3*x0", 1), Box((-2.0,), (2.0,)),
                      density.Gaussian([0.0], [0.3]), t_final=3.0)
    with pytest.raises(SchemeFailure, match=r"left the domain .*enlarge \[domain\]"):
        solve(problem, replace(LAG, cells=(16,)), comm=MPI.COMM_SELF)


def test_a_run_writes_point_clouds_and_resumes_its_settings(tmp_path):
    """nodes.xdmf/.h5 with rho and W per snapshot (rho matches the exact density), figures,
    summary.json naming the scheme's checks."""
    problem = polar_flow_problem(Cylinder(-3.0, 3.0), target=1.0, t_final=4.0)
    settings = replace(LAG, cells=(4, 8), degree=2, outputs=4, snapshots=3)
    solve(problem, settings, RunDirectory(tmp_path), comm=MPI.COMM_SELF)
    text = (tmp_path / "nodes.xdmf").read_text()
    assert text.count("Polyvertex") == 3 and "nodes.h5:/t2/rho" in text
    exact = PolarFlow(Cylinder(-3.0, 3.0), target=1.0)
    with h5py.File(tmp_path / "nodes.h5") as h5:
        assert h5["t2"].attrs["t"] == 4.0 and h5["t2/points"].shape == (4 * 8 * 9, 3)
        x = h5["t2/points"][()]
        theta = np.column_stack([x[:, 0], np.arctan2(x[:, 2], x[:, 1])])
        rho = h5["t2/rho"][()]
        assert np.sum(h5["t2/W"][()]) == pytest.approx(1.0, abs=1e-14)
    rho_exact = exact.density(theta, 4.0)
    assert np.max(np.abs(rho - rho_exact)) < 0.05 * rho_exact.max()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["time_error"]["integrator"] == "dopri5"
    assert summary["min_rho_where"].startswith("the node weights")
    assert (tmp_path / "density.png").stat().st_size > 1000


def _config(tmp_path, problem: str = "", integrator: str = "dopri5"):
    config = tmp_path / "c.toml"
    config.write_text(f"""
name = "lag"
output = "{tmp_path / 'runs'}"
[problem]
t_final = 1.0
{problem}
[unit]
kind = "circle_rbf"
width = 0.5
[data]
kind = "circle_lattice"
points = 16
[target]
kind = "teacher"
theta = [[1.0, 0.0]]
[domain]
kind = "cylinder"
lower = -3.0
upper = 3.0
[initial]
kind = "gaussian"
mean = [0.0, 0.0]
std = [0.5, 0.6]
[pde]
cells = [4, 8]
scheme = "lagrangian"
integrator = "{integrator}"
outputs = 2
snapshots = 2
""")
    return str(config)


@pytest.mark.parametrize("problem, integrator, text", [
    ("beta = 10.0", "dopri5", 'pde.scheme: "lagrangian" is for noiseless dynamics'),
    ("birth_death = 1.0", "dopri5", "no birth-death reaction"),
    ("", "ssprk3", 'scheme "lagrangian" moves its nodes with integrator'),
])
def test_what_the_scheme_refuses_is_named(tmp_path, capsys, problem, integrator, text):
    assert main(["check", _config(tmp_path, problem, integrator)]) == ConfigError.exit_code
    assert text in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_toml_run(tmp_path):
    """meanfield pde with scheme = "lagrangian": the resource check, the run, its files."""
    assert main(["pde", _config(tmp_path), "--no-progress"]) == 0
    out = tmp_path / "runs" / "pde"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["scheme"] == "lagrangian" and summary["energy_increases"] == 0
    assert (out / "nodes.xdmf").exists() and not (out / "rho.bp").exists()


@pytest.mark.mpi
def test_two_ranks_equal_one():
    """The nodes split by owned cells, f by one Allreduce: 2 ranks = 1 rank to round-off."""
    problem = polar_flow_problem(Cylinder(-3.0, 3.0), target=1.0, t_final=3.0)
    settings = replace(LAG, cells=(6, 8), degree=2)
    serial = solve(problem, settings, comm=MPI.COMM_SELF)
    parallel = solve(problem, settings, comm=MPI.COMM_WORLD)
    np.testing.assert_allclose(parallel.f, serial.f, rtol=0, atol=1e-13)
    np.testing.assert_allclose(parallel.energy, serial.energy, rtol=1e-12)
    assert len(parallel.steps["t"]) == len(serial.steps["t"])
