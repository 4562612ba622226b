"""Curved domains: the exact polar flow (solver.reference.polar_flow) and the DG orders on
the circle, the cylinder and the sphere with rho_0 uniform in the angle (the densities that
see the period and the curvature; benchmarks/curved_domains.py has the full tables)."""

import numpy as np
import pytest

from solver.model import density
from solver.model.domain import Box, Circle, Cylinder, Sphere
from solver.reference.lagrangian import lagrangian_flow
from solver.reference.polar_flow import PolarFlow, polar_flow_problem


@pytest.mark.parametrize("domain, rule", [(Circle(), "grid"), (Sphere(3), "sphere"),
                                          (Cylinder(-4.0, 4.0), "grid")])
@pytest.mark.parametrize("kappa", [0.0, 1.5])
def test_polar_flow_energy_matches_characteristics(domain, rule, kappa):
    """The scalar-ODE solution against the Lagrangian cross-check (an independent method):
    measured agreement 1e-14..1e-13 on the circle and the sphere."""
    times = np.linspace(0.0, 2.0, 5)
    exact = PolarFlow(domain, kappa=kappa).energy(times)
    lag = lagrangian_flow(polar_flow_problem(domain, kappa=kappa, t_final=2.0), times,
                          nodes=16, dt=0.01, rule=rule)
    assert np.max(np.abs(lag.energy / exact - 1)) < 1e-9
    assert np.all(np.diff(exact) < 0)


@pytest.mark.parametrize("domain", [Circle(), Sphere(3)])
def test_polar_flow_density_is_a_probability_density(domain):
    """rho_t integrates to 1 and is the pushforward: mean cos(phi) under rho_t is m(sigma)."""
    exact = PolarFlow(domain)
    sigma = exact.sigma([2.0])[0]
    if isinstance(domain, Circle):
        z = -np.pi + 2 * np.pi * (np.arange(4096) + 0.5) / 4096
        rho, w, cos = exact.density(z[:, None], 2.0), np.full(z.size, 2 * np.pi / z.size), np.cos(z)
    else:
        x, wx = np.polynomial.legendre.leggauss(400)
        theta = np.column_stack([np.sqrt(1 - x**2), np.zeros_like(x), x])
        rho, w, cos = exact.density(theta, 2.0), 2 * np.pi * wx, x
    assert np.sum(rho * w) == pytest.approx(1.0, abs=1e-12)
    assert np.sum(rho * w * cos) == pytest.approx(exact.mean_cos(sigma), abs=1e-12)


def test_gaussian_von_mises_density():
    d = density.GaussianVonMises([0.5, 1.0], [0.3], 2.0)
    c, z = np.meshgrid(np.linspace(-4, 5, 1801), -np.pi + 2 * np.pi * np.arange(512) / 512)
    pdf = d.pdf(np.column_stack([c.ravel(), z.ravel()]))
    assert np.sum(pdf) * (9 / 1800) * (2 * np.pi / 512) == pytest.approx(1.0, abs=1e-9)
    draws = d.sample(np.random.default_rng(1), 200_000)
    assert np.mean(np.cos(draws[:, 1] - 1.0)) == pytest.approx(0.6978, abs=5e-3)  # I1/I0(2)
    # c in [0.5 - 5 std, 0.5 + 5 std], the whole angle: 1 - 2 Phi(-5)
    assert d.mass_in(Cylinder(-1.0, 2.0)) == pytest.approx(1 - 5.733031e-7, abs=1e-12)
    with pytest.raises(ValueError, match="std"):
        density.GaussianVonMises([0.0, 0.0], [], 1.0)
    with pytest.raises(ValueError, match="angle"):
        d.check_domain(Box((0.0, 0.0), (1.0, 1.0)))



@pytest.mark.parametrize("name, coarse, fine, degree, l1_order, e_error", [
    ("sphere", 3, 4, 0, 0.9, 6e-3),  # FV: measured 0.96 (L1 1.05e-2), E 4.8e-3 at level 4
    ("circle", 32, 64, 2, 2.85, 5e-8),  # measured 2.93 (L1 1.65e-5), E 3.1e-9 at 64
    ("cylinder", 16, 32, 2, 2.9, 1e-6),  # measured 3.03 (L1 5.4e-4), E 1.6e-7 at 32^2
    ("sphere", 2, 3, 1, 1.8, 1e-4),  # measured 1.90 (L1 5.0e-3), E 3.5e-5 at level 3
    ("sphere", 2, 3, 2, 2.6, 2e-6),  # measured 2.70 (L1 1.5e-4), E 5.3e-7 at level 3
])
def test_dg_design_order_where_the_angle_and_curvature_matter(name, coarse, fine, degree,
                                                              l1_order, e_error):
    """DG_k at order k + 1 in the L1 density error on the exact polar flow, rho_0 uniform in
    the angle (on polygonal meshes without the exact metric: order 2 whatever k); FV (degree
    0 here) at order 1 on the icosphere (with centroids as cell points it diverged)."""
    pytest.importorskip("dolfinx", reason="needs DOLFINx")
    from benchmarks.curved_domains import DOMAINS, run

    domain, _, cells_of = DOMAINS[name]
    exact = PolarFlow(domain)
    scheme, degree = ("fv", 1) if degree == 0 else ("dg", degree)
    a = run(domain, cells_of(coarse), scheme, degree, exact)
    b = run(domain, cells_of(fine), scheme, degree, exact)
    ratio = 2.0 if name == "sphere" else fine / coarse
    assert np.log(a["L1"] / b["L1"]) / np.log(ratio) >= l1_order
    assert b["E"] < e_error


VON_MISES_CONFIG = """
name = "vm"
[problem]
t_final = 0.5
[unit]
kind = "circle_rbf"
width = 0.5
[data]
kind = "circle_lattice"
points = 32
[target]
kind = "teacher"
theta = [[2.0, -1.0]]
[domain]
{domain}
[initial]
kind = "von_mises"
mean = [0.0, 0.0]
std = {std}
kappa = 0.0
"""


@pytest.mark.parametrize("domain, std, code, named", [
    ('kind = "cylinder"\nlower = -5.0\nupper = 5.0', "[0.5]", 0, None),
    ('kind = "cylinder"\nlower = -5.0\nupper = 5.0', "[0.5, 0.3]", 2, "std: need 1"),
    ("lower = [-5.0, -3.2]\nupper = [5.0, 3.2]", "[0.5]", 2, "needs an angle"),
])
def test_von_mises_initial_from_toml(tmp_path, capsys, domain, std, code, named):
    """[initial] kind = "von_mises" (uniform in the angle at kappa = 0): accepted on a
    cylinder, refused with the field named for a wrong std or a domain without an angle."""
    from solver.cli import main

    path = tmp_path / "vm.toml"
    path.write_text(VON_MISES_CONFIG.format(domain=domain, std=std))
    assert main(["check", str(path)]) == code
    if named:
        assert named in capsys.readouterr().err
