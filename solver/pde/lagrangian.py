"""Moving nodes: the noiseless mean-field PDE solved along its characteristics, beta = inf.

    d rho/dt = div(rho grad Psi[rho])   is solved by   rho_t = X_t # rho_0,
    d X_t(theta)/dt = -P grad Psi(X_t(theta); rho_t),

X_t the flow map (P = ``domain.project_velocity``). The nodes are the Gauss points theta_q of
every cell of the mesh (the rule of degree 2 ``degree`` + 1, (degree + 1)^tdim points on
intervals and quadrilaterals), carrying the fixed weights

    W_q = rho_0(theta_q) a_q |det J_q| w_q / sum(...)      (a_q: the exact surface's area
                                                            factor on a curved domain)

so that every functional that is an integral against rho_t is the cell Gauss rule applied to
rho_0 pulled back by the flow map: f_t(x_m) = sum_q W_q s(x_m; X_t(theta_q)), E, MC and the
dissipation int |P grad Psi|^2 rho_t = sum_q W_q |v_q|^2. Its error is the rule's on
g o X_t (order 2 degree + 2 in h while X_t stays smooth, the nodes following the mass where it
concentrates: no numerical diffusion, no CFL) plus the time integrator's. Mass (sum W_q) and
positivity (W_q >= 0) hold exactly; the energy is checked every step as for the Eulerian
schemes (a step that raises it is rejected and halved).

The density itself is carried by the Jacobian of the flow map: on each cell the node positions
are fitted by the Lagrange polynomial of degree ``degree`` in reference coordinates (the
interpolant on intervals and quadrilaterals, a least-squares fit on simplices) and

    rho_t(X_t(theta_q)) = W_q / (w_q sqrt(det(D^T D))),   D = d X_t / d xi at node q,

(periodic axes unwrapped within the cell). Snapshots write the nodes as a point cloud
(``nodes.xdmf``: point data rho and W) and, for the figure, each cell's image under the fitted
map with its mean density.

The state a checkpoint keeps is the node positions, a function of a quadrature element (one
value per Gauss point of each cell, stored by original cell index: any number of ranks
resumes it). Nodes stay on the rank that owns their initial cell; f is one Allreduce of the
owned nodes' sums. Nodes may leave a bounded domain (the PDE's no-flux wall does not exist for
them): the weight outside is the ``boundary_outflow`` check's mass, limited by
``pde.max_outflow``.
"""

from __future__ import annotations

import basix
import basix.ufl
import numpy as np
import ufl
from dolfinx import fem, mesh
from mpi4py import MPI

from solver.errors import SchemeFailure
from solver.model import functionals
from solver.model.ode import dp54_trial
from solver.model.problem import Problem
from solver.pde.dg_transport import exact_metric
from solver.pde.meshes import check_mesh
from solver.pde.scheme import Diagnostics
from solver.pde.time_loop import ENERGY_TOLERANCE
from solver.reference.rules import periodic_axes


class LagrangianTransport:
    """Gauss nodes of rho_0 moved by the flow (module docstring); the Scheme protocol with
    ``density()``/``set_density`` acting on the owned node positions (flat)."""

    def __init__(self, msh: mesh.Mesh, problem: Problem, degree: int = 2):
        if np.isfinite(problem.beta):
            raise NotImplementedError("lagrangian: noiseless problems only (beta = inf)")
        if problem.birth_death:
            raise NotImplementedError("lagrangian: no birth-death reaction (fixed weights)")
        dom = problem.domain
        check_mesh(msh, dom)
        self.problem, self.mesh, self.comm, self.degree = problem, msh, msh.comm, int(degree)
        tdim, gdim, k = msh.topology.dim, msh.geometry.dim, problem.param_dim
        cell = msh.basix_cell()
        qdeg = 2 * self.degree + 1
        Xq, wq = basix.make_quadrature(cell, qdeg)
        self._nq, self._k = len(wq), k
        self.V = fem.functionspace(msh, basix.ufl.quadrature_element(
            cell, value_shape=(k,), degree=qdeg))
        self.n_cells = msh.topology.index_map(tdim).size_local
        dofs = self.V.dofmap.list[: self.n_cells].astype(np.intp)  # (cells, nq)
        self._index = (dofs[..., None] * k + np.arange(k)).reshape(-1)  # into x.array
        self.n_owned = self.V.dofmap.index_map.size_local * k

        owned = np.arange(self.n_cells, dtype=np.int32)
        xq = fem.Expression(ufl.SpatialCoordinate(msh), Xq).eval(msh, owned).reshape(-1, gdim)
        detj = fem.Expression(abs(ufl.JacobianDeterminant(msh)), Xq).eval(msh, owned)
        measure = detj.reshape(-1) * np.tile(wq, self.n_cells)
        if dom.radial_axes:  # the exact surface's area element
            jac = fem.Expression(ufl.Jacobian(msh), Xq).eval(msh, owned)
            measure = measure * exact_metric(jac.reshape(-1, gdim, tdim),
                                             dom.chart_jacobian(xq))[1]
        self.theta0 = dom.retract(dom.from_mesh(xq))
        W = problem.initial.pdf(self.theta0) * measure
        mass = self.comm.allreduce(float(W.sum()), MPI.SUM)
        if not mass > 0:
            raise ValueError("initial: the density is zero at every node of the mesh")
        self.weights = W / mass
        self._wq = np.tile(wq, self.n_cells)
        self._fit = _JacobianFit(cell, self.degree, Xq, periodic_axes(dom), dom)

        self.rho = fem.Function(self.V, name="nodes")  # the state: node positions
        self.theta = self.theta0.copy()
        self.f = np.zeros(problem.data.size)
        self._v: np.ndarray | None = None

    # -- state ----------------------------------------------------------------
    def initial_density(self) -> np.ndarray:
        """The initial node positions (the Gauss points), owned and flat."""
        return self._flat(self.theta0)

    def _flat(self, theta: np.ndarray) -> np.ndarray:
        values = np.zeros(self.n_owned)
        values[self._index] = theta.reshape(-1)
        return values

    def set_density(self, values: np.ndarray) -> None:
        """Set the owned node positions (retracted onto the domain's chart), evaluate f."""
        values = np.asarray(values, dtype=float)
        theta = values[self._index].reshape(-1, self._k)
        self.theta = self.problem.domain.retract(theta)
        self.rho.x.array[: self.n_owned] = self._flat(self.theta)
        self.rho.x.scatter_forward()
        local = functionals.network_output(self.problem, self.theta, self.weights)
        self.f = np.empty_like(local)
        self.comm.Allreduce(local, self.f, MPI.SUM)
        self._v = None

    def density(self) -> np.ndarray:
        """The owned node positions (a copy, flat)."""
        return self.rho.x.array[: self.n_owned].copy()

    def velocity(self) -> np.ndarray:
        """v_q = -P grad Psi(theta_q; rho) at the owned nodes, (Q, k) (cached per state)."""
        if self._v is None:
            grad = functionals.potential_gradient(self.problem, self.theta, self.f)
            self._v = self.problem.domain.project_velocity(self.theta, -grad)
        return self._v

    def rate(self) -> np.ndarray:
        """d theta/dt of the owned nodes, flat like ``density()``."""
        return self._flat(self.velocity())

    def max_stable_step(self) -> float:
        """No positivity bound: the step is the error controller's (``LagrangianStepper``)."""
        return np.inf

    # -- checks -------------------------------------------------------------
    def _sum(self, value: float) -> float:
        return self.comm.allreduce(float(value), MPI.SUM)

    def mass_outside(self) -> float:
        """The weight of the nodes outside the domain (every rank)."""
        return self._sum(self.weights[~self.problem.domain.contains(self.theta)].sum())

    def diagnostics(self) -> Diagnostics:
        """Energy, mass (sum W), min W, dissipation sum W |v|^2; ``boundary_outflow`` is 0:
        the weight outside the domain is checked by the stepper (``mass_outside``)."""
        p, w = self.problem, self.weights
        loss = functionals.loss(p, self.f)
        pen = self._sum(functionals.penalty(p, self.theta, w)) if p.lam else 0.0
        return Diagnostics(
            energy=loss + pen, loss=loss, mass=self._sum(w.sum()),
            min_rho=self.comm.allreduce(float(w.min(initial=np.inf)), MPI.MIN),
            dissipation=self._sum(w @ np.sum(self.velocity() ** 2, axis=1)),
            boundary_outflow=0.0)

    def mc_variance(self) -> float:
        """MC = sum_m w_m (int s^2 rho - f^2) by the node rule."""
        local = functionals.UnitMatrix(self.problem, self.theta).forward_squared(self.weights)
        f2 = np.empty_like(local)
        self.comm.Allreduce(local, f2, MPI.SUM)
        return functionals.mc_variance(self.problem, self.f, f2)

    def point_measure(self) -> tuple[np.ndarray, np.ndarray]:
        """rho_t = sum_q W_q delta(theta_q) over the owned nodes."""
        return self.theta, self.weights

    def stored_nodes(self) -> np.ndarray:
        """The owned node positions as ``rho`` holds them (what a snapshot writes; it may
        differ from the current state while a resumed run rewrites its snapshots)."""
        return self.rho.x.array[self._index].reshape(-1, self._k)

    def node_density(self, theta: np.ndarray) -> np.ndarray:
        """rho at the owned nodes ``theta``, by the Jacobian of the fitted flow map."""
        return self.weights / (self._wq * self._fit.area(theta, self.n_cells))

    def cell_images(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each owned cell's vertices under the fitted map (theta coordinates) and its mean
        density sum_q w_q rho_q / sum_q w_q (for the figure)."""
        rho = (self._wq * self.node_density(theta)).reshape(self.n_cells, self._nq)
        mean = rho.sum(axis=1) / self._wq[: self._nq].sum()
        return self._fit.vertices(theta, self.n_cells), mean


class _JacobianFit:
    """The degree-p Lagrange fit of the node positions on each cell: its reference
    derivatives at the nodes and its values at the reference vertices."""

    def __init__(self, cell, degree: int, Xq: np.ndarray, periodic: tuple[int, ...], domain):
        element = basix.create_element(basix.ElementFamily.P, cell, degree,
                                       basix.LagrangeVariant.gll_warped, discontinuous=True)
        tab = element.tabulate(1, Xq)[..., 0]  # (1 + tdim, nq, n_basis)
        fit = np.linalg.pinv(tab[0])  # (n_basis, nq): interpolation, or least squares
        self._grad = [tab[1 + t] @ fit for t in range(tab.shape[0] - 1)]  # (nq, nq) each
        vertices = basix.geometry(cell)
        order = {basix.CellType.quadrilateral: [0, 1, 3, 2]}.get(cell, slice(None))
        self._vertex = element.tabulate(0, vertices[order])[0, :, :, 0] @ fit  # (nv, nq)
        self.periodic = periodic
        box = domain.bounding_box()
        self.period = {i: box.upper[i] - box.lower[i] for i in periodic}

    def _cells(self, theta: np.ndarray, n_cells: int) -> np.ndarray:
        """(cells, nq, k) with periodic coordinates unwrapped about each cell's first node."""
        x = theta.reshape(n_cells, -1, theta.shape[1]).copy()
        for i in self.periodic:
            p = self.period[i]
            x[..., i] = x[:, :1, i] + (x[..., i] - x[:, :1, i] + p / 2) % p - p / 2
        return x

    def area(self, theta: np.ndarray, n_cells: int) -> np.ndarray:
        """sqrt(det(D^T D)) at every node, D = d theta / d xi (flat over cells, nodes)."""
        x = self._cells(theta, n_cells)
        D = np.stack([np.einsum("ij,cjk->cik", g, x) for g in self._grad], axis=-1)
        return np.sqrt(np.abs(np.linalg.det(np.einsum("cqkt,cqks->cqts", D, D)))).reshape(-1)

    def vertices(self, theta: np.ndarray, n_cells: int) -> np.ndarray:
        """(cells, nv, k): the fitted map at the reference vertices."""
        return np.einsum("vj,cjk->cvk", self._vertex, self._cells(theta, n_cells))


class LagrangianStepper:
    """Dormand-Prince 5(4) on the node positions with the standard controller: a step is
    accepted when the RMS over all nodes and coordinates of its embedded error estimate is
    at most ``pde.time_tolerance`` ("auto": ``LAGRANGIAN_TOLERANCE``), the energy does not
    rise (else the step is halved) and the weight outside the domain stays below
    ``pde.max_outflow``. The controller's state is the next trial step (checkpointed), so a
    resumed run repeats the uninterrupted one bit for bit."""

    SAFETY, GROW, SHRINK = 0.9, 5.0, 0.2

    def __init__(self, scheme: LagrangianTransport, problem: Problem, settings,
                 next_dt: float | None = None):
        self.scheme, self.problem, self.settings = scheme, problem, settings
        self.tolerance = settings.resolved_time_tolerance(0.0)
        self.next_dt = next_dt if next_dt is not None else min(1e-3 * problem.t_final,
                                                               settings.max_step)
        self.time_error = 0.0
        self.rejected = 0
        self._count = scheme.comm.allreduce(scheme.n_owned, MPI.SUM)

    @property
    def controller_state(self) -> float:
        return self.next_dt

    def _rhs(self, y: np.ndarray) -> np.ndarray:
        self.scheme.set_density(y)
        return self.scheme.rate()

    def _norm(self, err: np.ndarray) -> float:
        squares = self.scheme.comm.allreduce(float(err @ err), MPI.SUM)
        return float(np.sqrt(squares / max(self._count, 1))) / self.tolerance

    def advance(self, remaining: float, last: Diagnostics, where: str
                ) -> tuple[float, Diagnostics]:
        y = self.scheme.density()
        min_dt = 1e-12 * self.problem.t_final
        while True:
            dt = min(self.next_dt, self.settings.max_step, remaining)
            # the last stage evaluates rhs(new): the scheme is then at the new state
            _, err, _ = dp54_trial(self._rhs, y, dt)
            norm = self._norm(err)
            if not np.isfinite(norm):
                raise SchemeFailure(f"{where}: non-finite node positions (dt = {dt:.3g}); "
                                    "check [unit] and [initial]")
            factor = self.SAFETY * norm ** -0.2 if norm > 0 else self.GROW
            if norm <= 1.0:
                d = self.scheme.diagnostics()
                if d.energy <= last.energy + ENERGY_TOLERANCE * abs(last.energy):
                    outside = self.scheme.mass_outside()
                    if outside > self.settings.max_outflow:
                        raise SchemeFailure(
                            f"{where}: nodes of weight {outside:.3g} left the domain "
                            f"(pde.max_outflow = {self.settings.max_outflow:g}); enlarge "
                            "[domain] (lower/upper) so that no mass reaches its boundary")
                    grown = dt * min(self.GROW, max(self.SHRINK, factor))
                    # a step cut short by an output time does not shrink the next one
                    self.next_dt = max(self.next_dt, grown) if dt == remaining else grown
                    self.time_error += norm * self.tolerance
                    return dt, d
                factor = 0.5
            self.rejected += 1
            self.next_dt = dt * min(1.0, max(self.SHRINK, factor))
            self.scheme.set_density(y)
            if self.next_dt < min_dt:
                raise SchemeFailure(f"{where}: the node step fell below {min_dt:.3g}: the "
                                    "error estimate or the energy rejected every step; raise "
                                    "pde.time_tolerance")

    def time_error_summary(self, since: float) -> dict:
        """What summary.json says of the time error."""
        return {"integrator": "dopri5", "order": 5, "time_tolerance": self.tolerance,
                "rejected_steps": self.rejected,
                "accumulated_local_error": self.time_error, "accumulated_since_t": since,
                "dominant_error": "space",
                "why": "RMS local error of the node positions per step <= time_tolerance; "
                       "the space (node rule) error is measured by benchmarks/long_time.py"}
