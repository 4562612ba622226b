"""Two-point upwind finite volumes (DG0) for the noiseless mean-field PDE.

    d rho/dt = div(rho grad Psi[rho]),   on a box, no flux through its boundary.

Per cell K with neighbours L across facets sigma (centroid distance d_KL):

    |K| d rho_K/dt = - sum_sigma |sigma| F_KL,
    u_KL = (Psi_K - Psi_L) / d_KL,   F_KL = u_KL^+ rho_K - u_KL^- rho_L,

with Psi evaluated at the cell centroids theta_K. The scheme is conservative by
construction, a forward-Euler step keeps rho >= 0 when
dt <= |K| / sum_sigma |sigma| u_KL^+ (the CFL bound), and the discrete energy
E = 1/2 sum_m w_m (f(x_m) - y_m)^2 + penalty, f(x_m) = sum_K s(x_m; theta_K) rho_K |K|,
obeys dE/dt = - sum_sigma |sigma| d_KL u_KL^2 rho_upwind <= 0.
The would-be outflow int_{boundary} rho (-grad Psi . n)^+ ds is reported, not lost.
"""

from __future__ import annotations

import numpy as np
import ufl
from dolfinx import fem, la, mesh
from mpi4py import MPI

from solver.model import functionals
from solver.model.functionals import UnitMatrix
from solver.model.problem import Problem
from solver.pde.scheme import Diagnostics


class UpwindFV:
    """DG0 density with the two-point upwind flux; owns the DOLFINx objects of one run."""

    def __init__(self, msh: mesh.Mesh, problem: Problem, max_bytes: int | None = None):
        k = problem.param_dim
        if msh.geometry.dim != k:
            raise ValueError(
                f"mesh: geometric dimension {msh.geometry.dim} does not match the "
                f"{k} parameters of unit {problem.unit.name!r}"
            )
        self.problem, self.mesh, self.comm = problem, msh, msh.comm
        tdim = msh.topology.dim
        self.V = fem.functionspace(msh, ("DG", 0))
        self.n_owned = self.V.dofmap.index_map.size_local
        n_all = self.n_owned + self.V.dofmap.index_map.num_ghosts
        dofs = self.V.dofmap.list[:, 0]
        midpoints = mesh.compute_midpoints(msh, tdim, np.arange(n_all, dtype=np.int32))
        self.theta = np.empty((n_all, k))
        self.theta[dofs] = midpoints[:, :k]

        v = ufl.TestFunction(self.V)
        self.volumes = self._assemble_cells(fem.form(v * ufl.dx))
        self.S = UnitMatrix(problem, self.theta, **({} if max_bytes is None else
                                                    {"max_bytes": max_bytes}))

        self.rho = fem.Function(self.V, name="rho")
        self.psi = fem.Function(self.V, name="Psi")
        Vc = fem.functionspace(msh, ("DG", 0, (k,)))
        centroid = fem.Function(Vc)
        centroid.x.array[:] = self.theta.reshape(-1)
        self.grad_psi_boundary = fem.Function(Vc)
        self._boundary_dofs = self._boundary_cell_dofs()

        dist = ufl.sqrt(ufl.inner(ufl.jump(centroid), ufl.jump(centroid)))
        u = (self.psi("+") - self.psi("-")) / dist
        u_pos, u_neg = (u + abs(u)) / 2, (u - abs(u)) / 2
        flux = u_pos * self.rho("+") + u_neg * self.rho("-")
        meta = {"quadrature_degree": 0}
        dS = ufl.Measure("dS", domain=msh, metadata=meta)
        ds = ufl.Measure("ds", domain=msh, metadata=meta)
        n = ufl.FacetNormal(msh)
        self._rate_form = fem.form(-flux * ufl.jump(v) * dS)
        self._outflow_form = fem.form((u_pos * v("+") - u_neg * v("-")) * dS)
        self._dissipation_form = fem.form(dist * u * flux * dS)
        out_speed = -ufl.dot(self.grad_psi_boundary, n)
        self._boundary_form = fem.form(self.rho * (out_speed + abs(out_speed)) / 2 * ds)
        self._buffer = np.zeros(n_all)
        self.f = np.zeros(problem.data.size)

    # -- set-up helpers ---------------------------------------------------
    def _assemble_cells(self, form: fem.Form) -> np.ndarray:
        """Assemble a DG0 linear form, summed onto owners and copied to ghosts."""
        vec = la.vector(self.V.dofmap.index_map)
        vec.array[:] = 0
        fem.assemble_vector(vec.array, form)
        vec.scatter_reverse(la.InsertMode.add)
        vec.scatter_forward()
        return vec.array.copy()

    def _boundary_cell_dofs(self) -> np.ndarray:
        """DG0 dofs of local cells with a facet that has one local neighbour.

        This covers every boundary cell (and a few ghost-layer cells, harmlessly).
        """
        tdim = self.mesh.topology.dim
        self.mesh.topology.create_connectivity(tdim - 1, tdim)
        f2c = self.mesh.topology.connectivity(tdim - 1, tdim)
        single = np.flatnonzero(np.diff(f2c.offsets) == 1)
        cells = f2c.array[f2c.offsets[single]]
        return np.unique(self.V.dofmap.list[cells, 0])

    # -- the state --------------------------------------------------------
    def set_density(self, values: np.ndarray) -> None:
        """Set rho on owned cells (ghosts follow) and evaluate f and Psi."""
        self.rho.x.array[: self.n_owned] = values
        self.rho.x.scatter_forward()
        self._evaluate()

    def density(self) -> np.ndarray:
        """rho on the owned cells (a copy)."""
        return self.rho.x.array[: self.n_owned].copy()

    def initial_density(self) -> np.ndarray:
        """rho_0 at the centroids, normalised so that sum_K rho_K |K| = 1 exactly."""
        values = self.problem.initial.pdf(self.theta[: self.n_owned])
        mass = self.comm.allreduce(float(values @ self.volumes[: self.n_owned]), MPI.SUM)
        if not mass > 0:
            raise ValueError("initial: the density is zero on every cell of the mesh")
        return values / mass

    def _weights(self) -> np.ndarray:
        """W_K = rho_K |K| on owned cells, 0 on ghosts (each cell counted once)."""
        w = self._buffer
        w[: self.n_owned] = self.rho.x.array[: self.n_owned] * self.volumes[: self.n_owned]
        w[self.n_owned :] = 0.0
        return w

    def _evaluate(self) -> None:
        local = self.S.forward(self._weights())
        self.f = np.empty_like(local)
        self.comm.Allreduce(local, self.f, MPI.SUM)
        v = functionals.residual_weights(self.problem, self.f)
        psi = self.S.adjoint(v)
        if self.problem.lam:
            psi += self.problem.lam * self.problem.domain.regulariser(self.theta)
        self.psi.x.array[:] = psi

    # -- the scheme -------------------------------------------------------
    def rate(self) -> np.ndarray:
        """d rho/dt on owned cells at the current state."""
        return self._assemble_cells(self._rate_form)[: self.n_owned] / self.volumes[: self.n_owned]

    def max_stable_step(self) -> float:
        """min_K |K| / sum_sigma |sigma| u_KL^+, the forward-Euler positivity bound."""
        out = self._assemble_cells(self._outflow_form)[: self.n_owned]
        with np.errstate(divide="ignore"):
            local = float(np.min(self.volumes[: self.n_owned] / out, initial=np.inf))
        return self.comm.allreduce(local, MPI.MIN)

    # -- checks -----------------------------------------------------------
    def _sum(self, value: float) -> float:
        return self.comm.allreduce(float(value), MPI.SUM)

    def diagnostics(self) -> Diagnostics:
        """Energy, mass, min rho, dissipation and boundary outflow rate at the current state."""
        rho = self.rho.x.array[: self.n_owned]
        w = self._weights()
        loss = functionals.loss(self.problem, self.f)
        pen = self._sum(functionals.penalty(self.problem, self.theta, w))
        bdofs = self._boundary_dofs
        self.grad_psi_boundary.x.array[:] = 0.0
        if len(bdofs):
            grad = functionals.potential_gradient(self.problem, self.theta[bdofs], self.f)
            k = self.problem.param_dim
            vals = self.grad_psi_boundary.x.array.reshape(-1, k)
            vals[bdofs] = grad
        diss = self._sum(fem.assemble_scalar(self._dissipation_form))
        outflow = self._sum(fem.assemble_scalar(self._boundary_form))
        return Diagnostics(
            energy=loss + pen,
            loss=loss,
            mass=self._sum(rho @ self.volumes[: self.n_owned]),
            min_rho=self.comm.allreduce(float(rho.min(initial=np.inf)), MPI.MIN),
            dissipation=diss,
            boundary_outflow=outflow,
        )

    def mc_variance(self) -> float:
        """MC = sum_m w_m (int s^2 rho - f^2) at the current state."""
        local = self.S.forward_squared(self._weights())
        f2 = np.empty_like(local)
        self.comm.Allreduce(local, f2, MPI.SUM)
        return functionals.mc_variance(self.problem, self.f, f2)
