"""Two-point finite volumes (DG0) with the Scharfetter-Gummel flux, on any mesh.

    d rho/dt = div(rho grad Psi[rho]) + D Laplace rho,   D = 1/beta,  no flux at the boundary.

Per cell K with neighbours L across facets sigma (centroid distance d = d_KL,
mobility m_sigma = 1 except along frozen axes):

    |K| d rho_K/dt = - sum_sigma |sigma| m_sigma F_KL,
    F_KL = a_KL rho_K - a_LK rho_L,
    a_KL = (D/d) B(-Pe),  a_LK = (D/d) B(Pe),  Pe = (Psi_K - Psi_L)/D,  B(x) = x/(e^x - 1),

with Psi at the cell centroids. As D -> 0 (beta = inf) this is the upwind flux
a_KL = u^+, a_LK = u^-, u = (Psi_K - Psi_L)/d. The scheme conserves mass by
construction; a forward-Euler step keeps rho >= 0 when
dt <= |K| / sum_sigma |sigma| m_sigma a_KL (the CFL bound); and with
mu = Psi + D log rho the semi-discrete free energy
E = 1/2 sum_m w_m (f(x_m) - y_m)^2 + lam sum_K r(theta_K) rho_K |K| + D sum_K rho_K log rho_K |K|,
f(x_m) = sum_K s(x_m; theta_K) rho_K |K|, obeys

    dE/dt = - sum_sigma |sigma| m_sigma F_KL (mu_K - mu_L) <= 0,

each term being >= 0 since F_KL = (D/d) B(Pe) (e^{Pe} rho_K - rho_L) has the sign of
mu_K - mu_L. The would-be drift outflow sum_boundary |sigma| rho_K (v . n)^+,
v = -grad Psi, is reported, not lost.

Birth-death (``problem.birth_death = gamma > 0``, beta = inf): the reaction
R_K = -gamma (Psi_K - <Psi>) rho_K, <Psi> = sum_K Psi_K rho_K |K| / sum_K rho_K |K|, is
added to d rho_K/dt (sum_K R_K |K| = 0: mass stays exact to round-off); the positivity
bound becomes dt <= 1 / max_K (sum_sigma |sigma| m a_KL / |K| + gamma (Psi_K - <Psi>)^+);
the dissipation gains gamma sum_K (Psi_K - <Psi>)^2 rho_K |K| (``solver.model.birth_death``).
"""

from __future__ import annotations

import numpy as np
from dolfinx import fem, mesh
from mpi4py import MPI
from scipy.special import xlogy

from solver.model import birth_death, functionals
from solver.model.compression import unit_matrix
from solver.model.functionals import MESH_MATRIX_BYTES
from solver.model.problem import Problem
from solver.pde.fv_geometry import build_geometry
from solver.pde.meshes import check_mesh
from solver.pde.scheme import Diagnostics

#: log rho is evaluated as log(max(rho, TINY)) in the dissipation diagnostic.
TINY = 1e-300


def bernoulli(x: np.ndarray) -> np.ndarray:
    """B(x) = x / (e^x - 1), B(0) = 1, evaluated without cancellation."""
    out = np.ones_like(x)
    nz = x != 0
    out[nz] = x[nz] / np.expm1(x[nz])
    return out


class FiniteVolume:
    """DG0 density with the Scharfetter-Gummel (upwind when beta = inf) two-point flux."""

    def __init__(self, msh: mesh.Mesh, problem: Problem, max_bytes: int = MESH_MATRIX_BYTES,
                 compress_rtol: float | None = None):
        check_mesh(msh, problem.domain)
        self.problem, self.mesh, self.comm = problem, msh, msh.comm
        self.diffusion = 0.0 if np.isinf(problem.beta) else 1.0 / problem.beta
        self.V = fem.functionspace(msh, ("DG", 0))
        g = self.geometry = build_geometry(msh, self.V)
        self.n_owned = g.n_owned
        dom = problem.domain
        self.theta = dom.from_mesh(g.centroids)
        self.S = unit_matrix(problem, self.theta, self.comm, compress_rtol, max_bytes,
                             n_owned=self.n_owned)
        self.regulariser = problem.lam * dom.regulariser(self.theta) if problem.lam else 0.0

        K, L = g.inner[:, 0], g.inner[:, 1]
        both_owned = (K < g.n_owned) & (L < g.n_owned)
        # a facet shared with another rank is seen there too: count it half on each side
        self._facet_share = np.where(both_owned, 1.0, 0.5)
        self._conductance = g.inner_area * self._mobility()
        self.rho = fem.Function(self.V, name="rho")
        self.psi = np.zeros(len(self.theta))
        self.f = np.zeros(problem.data.size)
        self.gamma = problem.birth_death
        self.mean_psi = 0.0  # <Psi>_rho, evaluated when gamma > 0

    def _mobility(self) -> np.ndarray:
        """m_sigma = 1 - sum_i (e_sigma . t_i)^2 over the unit tangents t_i of frozen axes."""
        g, dom = self.geometry, self.problem.domain
        mob = np.ones(len(g.inner))
        if not self.problem.frozen:
            return mob
        mid = dom.from_mesh(g.inner_midpoint)
        for axis in self.problem.frozen:
            unit = np.zeros_like(mid)
            unit[:, axis] = 1.0
            t = dom.tangent_gradient(mid, unit)
            t /= np.linalg.norm(t, axis=1, keepdims=True)
            mob -= np.sum(g.inner_direction * t, axis=1) ** 2
        return np.clip(mob, 0.0, 1.0)

    # -- the state --------------------------------------------------------
    def set_density(self, values: np.ndarray) -> None:
        """Set rho on owned cells (ghosts follow) and evaluate f and Psi."""
        self.rho.x.array[: self.n_owned] = values
        self.rho.x.scatter_forward()
        self._evaluate()

    def density(self) -> np.ndarray:
        return self.rho.x.array[: self.n_owned].copy()

    def initial_density(self) -> np.ndarray:
        """rho_0 at the centroids, normalised so that sum_K rho_K |K| = 1 exactly."""
        values = self.problem.initial.pdf(self.theta[: self.n_owned])
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError("initial: the density has negative or non-finite values on the mesh")
        mass = self._sum(values @ self.geometry.volumes[: self.n_owned])
        if not mass > 0:
            raise ValueError("initial: the density is zero on every cell of the mesh")
        return values / mass

    def weights(self) -> np.ndarray:
        """W_K = rho_K |K| on owned cells, 0 on ghosts (each cell counted once)."""
        w = self.rho.x.array * self.geometry.volumes
        w[self.n_owned :] = 0.0
        return w

    def point_measure(self) -> tuple[np.ndarray, np.ndarray]:
        """rho as the weighted point set sum_q W_q delta(theta_q) of the owned cells:
        (centroids theta (n_owned, k), W = rho_K |K|)."""
        return self.theta[: self.n_owned], self.weights()[: self.n_owned]

    def _evaluate(self) -> None:
        local = self.S.forward(self.weights())
        self.f = np.empty_like(local)
        self.comm.Allreduce(local, self.f, MPI.SUM)
        self.psi = self.S.adjoint(functionals.residual_weights(self.problem, self.f))
        self.psi += self.regulariser
        if self.gamma:
            self.mean_psi = self.mean_potential()

    def mean_potential(self) -> float:
        """<Psi> = sum_K Psi_K rho_K |K| / sum_K rho_K |K| over all ranks (the mass's weights)."""
        w = self.weights()
        sums = self.comm.allreduce(np.array([self.psi @ w, np.sum(w)]), MPI.SUM)
        return float(sums[0] / sums[1])

    # -- the flux ---------------------------------------------------------
    def coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """(|sigma| m a_KL, |sigma| m a_LK) per interior facet at the current Psi."""
        g = self.geometry
        K, L = g.inner[:, 0], g.inner[:, 1]
        u = (self.psi[K] - self.psi[L]) / g.inner_distance
        if self.diffusion == 0.0:
            out, into = np.maximum(u, 0.0), np.maximum(-u, 0.0)
        else:
            peclet = u * g.inner_distance / self.diffusion
            scale = self.diffusion / g.inner_distance
            out, into = scale * bernoulli(-peclet), scale * bernoulli(peclet)
        return self._conductance * out, self._conductance * into

    def _fluxes(self) -> np.ndarray:
        """|sigma| m F_KL per interior facet."""
        a_out, a_in = self.coefficients()
        rho = self.rho.x.array
        g = self.geometry
        return a_out * rho[g.inner[:, 0]] - a_in * rho[g.inner[:, 1]]

    def _per_cell(self, values_k: np.ndarray, values_l: np.ndarray) -> np.ndarray:
        """sum over facets of values_k at K plus values_l at L, on owned cells."""
        g, n = self.geometry, self.n_owned
        n_local = len(g.volumes)
        total = np.bincount(g.inner[:, 0], values_k, n_local)
        total += np.bincount(g.inner[:, 1], values_l, n_local)
        return total[:n]

    def rate(self) -> np.ndarray:
        """d rho/dt on owned cells at the current state."""
        F = self._fluxes()
        rate = -self._per_cell(F, -F) / self.geometry.volumes[: self.n_owned]
        if self.gamma:
            n = self.n_owned
            rate += birth_death.reaction_rate(self.psi[:n], self.rho.x.array[:n], self.gamma,
                                              self.mean_psi)
        return rate

    def max_stable_step(self) -> float:
        """min_K |K| / sum_sigma |sigma| m a_KL, the forward-Euler positivity bound (with
        birth-death: 1 / max_K (sum_sigma |sigma| m a_KL / |K| + gamma (Psi_K - <Psi>)^+))."""
        a_out, a_in = self.coefficients()
        out = self._per_cell(a_out, a_in)
        if self.gamma:
            n = self.n_owned
            out = out + self.geometry.volumes[:n] * birth_death.reaction_inverse_step(
                self.psi[:n], self.gamma, self.mean_psi)
        with np.errstate(divide="ignore"):
            local = float(np.min(self.geometry.volumes[: self.n_owned] / out, initial=np.inf))
        return self.comm.allreduce(local, MPI.MIN)

    # -- checks -----------------------------------------------------------
    def _sum(self, value: float) -> float:
        return self.comm.allreduce(float(value), MPI.SUM)

    def _chemical_potential(self) -> np.ndarray:
        """mu = Psi + D log rho (log of rho floored at TINY)."""
        if self.diffusion == 0.0:
            return self.psi
        return self.psi + self.diffusion * np.log(np.maximum(self.rho.x.array, TINY))

    def dissipation(self) -> float:
        """sum_sigma |sigma| m F_KL (mu_K - mu_L) (+ gamma sum_K (Psi_K - <Psi>)^2 rho_K |K|
        with birth-death) = -dE/dt of the semi-discrete scheme."""
        g, mu = self.geometry, self._chemical_potential()
        terms = self._fluxes() * (mu[g.inner[:, 0]] - mu[g.inner[:, 1]])
        if not self.gamma:
            return self._sum(terms @ self._facet_share)
        n = self.n_owned
        reaction = birth_death.reaction_dissipation(
            self.psi[:n], self.rho.x.array[:n], self.geometry.volumes[:n], self.gamma,
            self.mean_psi)
        return self._sum(terms @ self._facet_share + reaction)

    def boundary_outflow(self) -> float:
        """sum over boundary facets of |sigma| rho_K (v . n)^+, v = -grad Psi(theta_K)."""
        g = self.geometry
        local = 0.0
        if len(g.boundary_cell):
            theta = self.theta[g.boundary_cell]
            grad = functionals.potential_gradient(self.problem, theta, self.f)
            v = -self.problem.domain.tangent_gradient(theta, grad)
            speed = np.maximum(np.sum(v * g.boundary_normal, axis=1), 0.0)
            local = float(g.boundary_area * self.rho.x.array[g.boundary_cell] @ speed)
        return self._sum(local)

    def diagnostics(self) -> Diagnostics:
        """Free energy, loss, mass, min rho, dissipation and boundary outflow now."""
        rho = self.rho.x.array[: self.n_owned]
        vol = self.geometry.volumes[: self.n_owned]
        loss = functionals.loss(self.problem, self.f)
        local = 0.0
        if self.problem.lam:
            local += float(self.regulariser[: self.n_owned] @ (rho * vol))
        if self.diffusion:
            local += self.diffusion * float(xlogy(rho, rho) @ vol)
        return Diagnostics(
            energy=loss + self._sum(local),
            loss=loss,
            mass=self._sum(rho @ vol),
            min_rho=self.comm.allreduce(float(rho.min(initial=np.inf)), MPI.MIN),
            dissipation=self.dissipation(),
            boundary_outflow=self.boundary_outflow(),
        )

    def l1_error(self, exact) -> float:
        """sum_K |rho_K - exact(theta_K)| |K| (midpoint rule; exact maps (Q, k) -> (Q,))."""
        n = self.n_owned
        diff = np.abs(self.rho.x.array[:n] - exact(self.theta[:n]))
        return self._sum(diff @ self.geometry.volumes[:n])

    def mc_variance(self) -> float:
        """MC = sum_m w_m (int s^2 rho - f^2) at the current state."""
        local = self.S.forward_squared(self.weights())
        f2 = np.empty_like(local)
        self.comm.Allreduce(local, f2, MPI.SUM)
        return functionals.mc_variance(self.problem, self.f, f2)
