"""Observed orders on the circle, the cylinder and the sphere, where the angle's period and the
curvature matter: the exact polar flow (solver.reference.polar_flow, rho_0 uniform in the angle).

For FV (two-point upwind, order 1), DG1 and DG2 (SSP-RK3 at cfl 0.5 of the positivity bound)
on refined meshes of each domain: the max relative error of E(t) over 10 output times in
[0, t_final] and the L1 error of the density on the surface at t_final,

    ||rho_h - rho||_1 = int_mesh |rho~_h - a rho(Phi(x))| dx,

rho~_h the scheme's density per unit mesh area, a the area factor of the surface map Phi
(exact_metric; 1 on flat meshes), by a Gauss rule of degree 8 on each cell.

The disc is flat; its wall is an inscribed polygon, which a valid run never reaches (the wall
is an artificial truncation of R^2: mass reaching it stops the run, pde.max_outflow). Its
study ("disc") is the exact translation of benchmarks.dg_translation on the ring meshes
(triangles), a Gaussian 7 std from the wall: the L1 density error at t = 0.5.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.curved_domains \
          [circle|cylinder|sphere|disc]
"""

from __future__ import annotations

import sys

import basix
import numpy as np
import ufl
from mpi4py import MPI

from benchmarks.dg_translation import march
from solver.model.domain import Circle, Cylinder, Domain, Sphere
from solver.pde.dg_transport import exact_metric
from solver.pde.solve import make_scheme
from solver.reference.polar_flow import PolarFlow, polar_flow_problem
from solver.settings import PDESettings

T_FINAL = 2.0
DOMAINS = {
    "circle": (Circle(), [32, 64, 128, 256], lambda n: n),
    "cylinder": (Cylinder(-4.0, 4.0), [16, 32, 64], lambda n: (n, n)),
    "sphere": (Sphere(3), [2, 3, 4, 5], lambda n: n),
}
SCHEMES = {"FV": ("fv", 1), "DG1": ("dg", 1), "DG2": ("dg", 2)}


def surface_l1_error(scheme, domain: Domain, exact_pdf, degree: int = 8) -> float:
    """int |rho~_h - a rho(Phi(x))| dx over the mesh (rank sum), rho~_h = scheme.rho."""
    from dolfinx import fem

    msh = scheme.mesh
    tdim, gdim = msh.topology.dim, msh.geometry.dim
    cell = basix.CellType[msh.topology.cell_name()]
    Xq, wq = basix.make_quadrature(cell, degree)
    owned = np.arange(msh.topology.index_map(tdim).size_local, dtype=np.int32)
    rho = fem.Expression(scheme.rho, Xq).eval(msh, owned).reshape(len(owned), -1)
    x = fem.Expression(ufl.SpatialCoordinate(msh), Xq).eval(msh, owned).reshape(-1, gdim)
    jac = fem.Expression(ufl.Jacobian(msh), Xq).eval(msh, owned).reshape(-1, gdim, tdim)
    detj = np.sqrt(np.linalg.det(np.einsum("ngs,ngt->nst", jac, jac)))
    _, area = exact_metric(jac, domain.chart_jacobian(x))
    exact = (exact_pdf(domain.from_mesh(x)) * area).reshape(rho.shape)
    local = float(np.sum(np.abs(rho - exact) * detj.reshape(rho.shape) * wq))
    return msh.comm.allreduce(local, MPI.SUM)


def run(domain: Domain, cells, scheme: str, degree: int, exact: PolarFlow,
        comm=MPI.COMM_WORLD) -> dict:
    """One run to T_FINAL: E(t) error, L1 density error, wall time, steps."""
    problem = polar_flow_problem(domain, t_final=T_FINAL)
    settings = PDESettings(cells=tuple(int(c) for c in np.atleast_1d(cells)), scheme=scheme,
                           degree=degree, integrator="ssprk3", progress=False, snapshots=0)
    s = make_scheme(problem, settings, comm)
    s.set_density(s.initial_density())
    times = np.linspace(0.0, T_FINAL, 11)
    energy, _, wall, steps = march(s, times)
    wall = comm.allreduce(wall, MPI.MAX)
    e_err = float(np.max(np.abs(energy / exact.energy(times) - 1)))
    l1 = surface_l1_error(s, domain, lambda th: exact.density(th, T_FINAL))
    return {"E": e_err, "L1": l1, "wall": wall, "steps": steps}


def study(name: str, comm=MPI.COMM_WORLD) -> None:
    domain, levels, cells_of = DOMAINS[name]
    exact = PolarFlow(domain)
    if comm.rank == 0:
        print(f"\n{name}: polar flow, rho_0 uniform in the angle, t in [0, {T_FINAL}]; "
              f"E(T) = {exact.energy([T_FINAL])[0]:.10f}")
        print(f"{'scheme':>6} {'cells':>10} {'E(t) err':>10} {'order':>6} {'L1 err':>10} "
              f"{'order':>6} {'steps':>6} {'wall s':>7}")
    for label, (scheme, degree) in SCHEMES.items():
        previous = None
        for level in levels:
            r = run(domain, cells_of(level), scheme, degree, exact, comm)
            orders = ("", "")
            if previous is not None:
                ratio = 2.0 if name == "sphere" else level / previous[0]
                orders = tuple(f"{np.log(previous[i] / r[k]) / np.log(ratio):6.2f}"
                               for i, k in ((1, "E"), (2, "L1")))
            previous = (level, r["E"], r["L1"])
            if comm.rank == 0:
                size = f"L={level}" if name == "sphere" else str(cells_of(level))
                print(f"{label:>6} {size:>10} {r['E']:10.2e} {orders[0]:>6} {r['L1']:10.2e} "
                      f"{orders[1]:>6} {r['steps']:6d} {r['wall']:7.2f}", flush=True)


def disc_study(rings=(8, 16, 32)) -> None:
    """FV, DG1, DG2 on the exact translation in the disc |theta - (0.5, -0.2)| <= 3.2."""
    import dataclasses

    from benchmarks import dg_translation
    from solver.model.domain import Disc

    domain = Disc((0.5, -0.2), 3.2)
    problem = dataclasses.replace(dg_translation.translation_problem(0.5), domain=domain)
    print("\ndisc: exact translation (rho_0 = N((0.3, 0.2), 0.4^2), t = 0.5), ring meshes")
    print(f"{'scheme':>6} {'rings':>6} {'L1 err':>10} {'order':>6}")
    for label, (scheme, degree) in SCHEMES.items():
        previous = None
        for n in rings:
            settings = PDESettings(cells=(n,), scheme=scheme, degree=degree, progress=False)
            s = make_scheme(problem, settings, MPI.COMM_SELF)
            s.set_density(s.initial_density())
            dg_translation.advance(s, 0.5)
            l1, _ = dg_translation.density_errors(s, problem, 0.5)
            order = "" if previous is None else f"{np.log2(previous / l1):6.2f}"
            previous = l1
            print(f"{label:>6} {n:>6} {l1:10.3e} {order:>6}", flush=True)


def main() -> None:
    for name in sys.argv[1:] or [*DOMAINS, "disc"]:
        if name == "disc":
            disc_study()
        else:
            study(name)


if __name__ == "__main__":
    main()
