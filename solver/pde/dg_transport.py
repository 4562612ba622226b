"""Upwind discontinuous Galerkin (DG_k, k = 1, 2) with a positivity limiter, beta = inf.

    d rho/dt = div(rho grad Psi[rho]),   no flux through the boundary of the domain.

rho lives in DG_k on intervals, quadrilaterals, hexahedra or simplices (flat meshes
or surfaces embedded in R^3). With the velocity u = -D grad Psi (D the constant
diagonal mobility: 0 along ``problem.frozen`` axes, 1 elsewhere) the semi-discrete
scheme is, for every test function v in DG_k,

    (d rho/dt, v) = (rho u, grad v) - sum_{interior F} <rho^up a, [v]>_F,
    a = {u} . n_s,  n_s = (n+ - n-)/2,  rho^up = rho+ if a > 0 else rho-,

{u} the facet average and [v] = v+ - v-, n_s = (n+ - n-)/2 = n+ on a flat mesh.

Curved domains (circle, cylinder, sphere: ``domain.radial_axes``) are meshed by flat-faced
cells whose vertices lie on the surface; Phi, the radial projection onto the surface, maps
each flat cell onto a curved one exactly. The scheme solves the pulled-back equation on the
flat cells: rho is the density per unit mesh area (rho~ = a rho o Phi, a = sqrt(det g /
det J^T J) the area factor), the velocity in reference coordinates is -g^{-1} grad_ref Psi
with g = (dPhi J)^T (dPhi J) the exact metric (U = g^{-1} ghat replaces K D K^T ghat), and
the facet speed is the mass-flux average a = (a+ u+ . n+ - a- u- . n-)/2 of the two cells'
own conormals, upwinding rho~/a (the surface density, continuous across the facet). The
plain polygon had two O(h^2) defects, order 2 for every k: its own metric (speeds along the
angle scaled by about 1 + h^2/12) and, through {u} . n_s, a flux smaller by cos^2 of half
the fold angle (1 - h^2/4 along a polygon's angle). With the exact metric DG_k is at
order k + 1 on the circle, the cylinder and the sphere (docs/verification.md,
benchmarks/curved_domains.py). The written rho (rho.bp, checkpoints) is rho~, whose
integral over the mesh is the mass.

Boundary facets carry no flux; the would-be outflow int_boundary rho (u . n)^+ ds is
reported as ``boundary_outflow``. The mass matrix is block diagonal (one block per cell)
and is inverted by a PETSc KSP built once (preonly + PC vpbjacobi, the exact inverse of
every cell block: mass is kept to round-off).

Psi is evaluated exactly (through the unit matrix) at the nodes of the continuous
Lagrange space CG_{k+1} and interpolated there, so grad Psi is accurate to O(h^{k+1}).
CG rather than DG_{k+1}: both spaces have the same nodes on each cell, so on every
cell the two interpolants of the continuous Psi coincide (the same grad Psi), but
CG shares the nodes of neighbouring cells: (2n + 1)^2 instead of 9 n^2 unit-matrix
columns for k = 1 on n x n quadrilaterals, 2.2x less work per Psi evaluation.

f(x_m) = int s(x_m; theta) rho(theta) dtheta is the Gauss rule of degree 2k + 1 on each
cell, f(x_m) = sum_{K, q} s(x_m; theta_q) rho(theta_q) w_q |det J_q| (error O(h^{2k+2})),
one M x Q unit-matrix product over the owned cells' points and one Allreduce.

Positivity (Zhang & Shu 2010). Limiter points P = {cell Gauss points} u {facet Gauss
points of every facet} (the points f, the cell averages and the flux see). A linear
program on the reference cell finds weights alpha_p >= 0 on P with
sum_p alpha_p phi(p) = mean of phi over the cell for every phi in DG_k, so that on an
affine cell rho_bar_K = sum_p alpha_p rho(p). Testing with v = 1 on K, forward Euler gives

    |K| rho_bar_K^new = sum_{p not on dK} alpha_p |K| rho(p)
                      + sum_{g on dK} (alpha_g |K| - dt w_g a_g^+) rho_K(g)
                      + dt sum_{g on dK} w_g (-a_g^-) rho_L(g),        a^+- = max/min(a, 0),

w_g the physical facet quadrature weights, a_g = {u} . n_s outward at g. Every term is
>= 0 when rho >= 0 at the limiter points and dt w_g a_g^+ <= alpha_g |K| at every facet
point. Writing c_g = w_hat_g / sum w_hat (the reference facet rule, normalised),
gamma_l = min_{g on facet l} alpha_g / c_g and need_{K,l} = max_{g on l} a_g^+ w_g /
(c_g |K|) (= |F_l| max a^+ / |K| on affine facets), the sufficient condition per cell is

    dt <= 1 / max_l (need_{K,l} / gamma_l)                                     (CFL)

for any such rule alpha. ``max_stable_step`` returns min over owned cells K of the better
of two rules: the one maximising min_l gamma_l over all facets (gamma = 1/4 per facet
for Q1, 1/12 for Q2, 1/3 for P1 triangles, 1/2 for P1 intervals), and a per-cell mixture
sum_i mu_i alpha^(i) of one rule per group of facets (opposite pairs on quads/hexes, single
facets on simplices), mu_i proportional to max_{l in group i} need_{K,l}/gamma^(i)_l,
giving dt <= 1 / sum_i max_{l in group i} need_{K,l} / gamma^(i)_l. For Q_k the pair
rules reach the end weight of Gauss-Lobatto (gamma = 1/2 for Q1, 1/6 for Q2), so on
rectangles the mixture is Zhang-Shu's dt (|u_x|/dx + |u_y|/dy) <= 1/2 (Q1), 1/6 (Q2)
(a factor 2 over the all-facet rule for axis-aligned flow). Each SSP-RK stage
is a convex combination of such Euler steps (SSP coefficient 1), so every stage keeps
cell averages >= 0; the scaling limiter applied in ``set_density`` to every stage,

    rho <- rho_bar_K + t_K (rho - rho_bar_K),  t_K = min(1, (1 - 1e-12) rho_bar_K /
                                                           (rho_bar_K - min_P rho)),

keeps each cell's mass and makes rho >= 0 at all limiter points. The average rule
assumes affine cells (constant det J), true for the box, simplex and flat-faced surface
meshes of this project.

Birth-death (``problem.birth_death = gamma > 0``): the residual gains
(-gamma (Psi - <Psi>) rho, v) by the cell Gauss rule, with Psi exact at the Gauss points
(the unit matrix of f) and <Psi> = sum_q Psi_q W_q rho_q / sum_q W_q rho_q from the same
rule, so the mass (v = 1) is unchanged to round-off. Splitting a forward-Euler step as
theta_K (rho + dt/theta_K T) + (1 - theta_K) (rho + dt/(1 - theta_K) R) on each cell, the
transport part keeps the average >= 0 under its CFL bound and the reaction part while
dt gamma max_q (Psi_q - <Psi>)^+ <= 1 - theta_K (rho >= 0 at the Gauss points, limiter): so
dt <= 1 / max_K (cfl rate_K + gamma max_q (Psi_q - <Psi>)^+). The dissipation gains
gamma sum_q W_q rho_q (Psi_q - <Psi>)^2.
"""

from __future__ import annotations

from collections.abc import Sequence

import basix
import numpy as np
import ufl
from dolfinx import fem, la, mesh
from mpi4py import MPI
from petsc4py import PETSc
from scipy.optimize import linprog

from solver.model import birth_death, functionals
from solver.model.compression import unit_matrix
from solver.model.functionals import MESH_MATRIX_BYTES
from solver.model.memory import reuse_freed_memory
from solver.model.problem import Problem
from solver.pde.meshes import check_mesh
from solver.pde.scheme import Diagnostics

#: Relative safety margin of the limiter: min_P rho >= 1e-12 rho_bar after limiting.
LIMITER_MARGIN = 1e-12
#: Cell averages below this are set to 0 by the limiter: in the subnormal range a product no
#: longer has relative precision (-4.9e-324 at a limiter point otherwise); the mass so dropped
#: is below MIN_AVERAGE times the domain's measure.
MIN_AVERAGE = 1e-280


def _facet_rule(cell: basix.CellType, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss points (on the reference facet) and weights of the facet rule of a cell type."""
    tdim = len(basix.topology(cell)) - 1
    if tdim == 1:  # the facets of an interval are points
        return np.zeros((1, 0)), np.ones(1)
    facet = basix.cell.subentity_types(cell)[tdim - 1][0]
    return basix.make_quadrature(facet, degree)


def _facet_points_in_cell(cell: basix.CellType, Xf: np.ndarray) -> np.ndarray:
    """Reference facet points mapped onto every local facet: (n_facets, n_points, tdim)."""
    geom = basix.geometry(cell)
    topo = basix.topology(cell)
    tdim = len(topo) - 1
    out = []
    for verts in topo[tdim - 1]:
        v = geom[verts]
        out.append(v[0] + Xf @ (v[1 : Xf.shape[1] + 1] - v[0]))
    return np.array(out)


def positivity_weights(B: np.ndarray, wq: np.ndarray, n_facets: int, wf: np.ndarray,
                       facets: Sequence[int] | None = None) -> np.ndarray:
    """Weights alpha >= 0 on the limiter points with sum_p alpha_p phi_j(p) = mean(phi_j).

    B: (n_points, n_dofs) basis values at the points, cell Gauss points first (weights wq),
    then the facet points of each facet in turn (reference facet weights wf). A linear
    program maximises gamma with alpha_g >= gamma c_g, c_g = wf_g / sum(wf), on the points
    of the listed ``facets`` (default: all).
    """
    nq, nfp = len(wq), len(wf)
    n_pts, nd = B.shape
    if n_pts != nq + n_facets * nfp:
        raise ValueError("positivity_weights: B does not match the points")
    facets = range(n_facets) if facets is None else facets
    c = np.zeros(n_pts + 1)
    c[-1] = -1.0
    a_eq = np.hstack([B.T, np.zeros((nd, 1))])
    b_eq = B[:nq].T @ wq / wq.sum()
    rows = [nq + lf * nfp + i for lf in facets for i in range(nfp)]
    a_ub = np.zeros((len(rows), n_pts + 1))
    a_ub[np.arange(len(rows)), rows] = -1.0
    a_ub[:, -1] = np.tile(wf / wf.sum(), len(facets))
    res = linprog(c, A_ub=a_ub, b_ub=np.zeros(len(rows)), A_eq=a_eq, b_eq=b_eq,
                  bounds=[(0, None)] * (n_pts + 1), method="highs")
    if not res.success or res.x[-1] <= 0:
        raise RuntimeError(f"DG limiter: no positive average rule on the limiter points "
                           f"({res.message})")
    return np.maximum(res.x[:n_pts], 0.0)


def positivity_rules(B: np.ndarray, wq: np.ndarray, n_facets: int, wf: np.ndarray,
                     facet_vertices: Sequence[Sequence[int]]
                     ) -> tuple[np.ndarray, list[tuple[list[int], np.ndarray]]]:
    """Average rules for the CFL bound, as gamma[l] = min over facet l's points of alpha_g / c_g.

    Returns (uniform, groups): ``uniform`` (n_facets,) of the rule weighting all facets
    (``positivity_weights``); ``groups`` partitions the facets into opposite pairs (tensor
    cells: no shared vertex) or single facets (simplices), each with the rule weighting its
    own facets, to be mixed in proportion to a cell's outflow through each group.
    """
    nq, nfp = len(wq), len(wf)
    c = wf / wf.sum()

    def rule(facets):
        alpha = positivity_weights(B, wq, n_facets, wf, facets)[nq:].reshape(n_facets, nfp)
        return np.min(alpha / c, axis=1)

    groups, seen = [], set()
    for lf in range(n_facets):
        if lf in seen:
            continue
        opposite = [m for m in range(lf + 1, n_facets) if m not in seen
                    and not set(facet_vertices[lf]) & set(facet_vertices[m])]
        group = [lf, opposite[0]] if opposite else [lf]
        seen.update(group)
        groups.append((group, rule(group)))
    return rule(None), groups


class DGTransport:
    """DG_k density, upwind flux, Zhang-Shu limiter; owns the DOLFINx objects of one run.

    DGTransport(msh, problem, degree=1 | 2, max_bytes=2**30) implements the Scheme protocol
    (solver.pde.scheme). ``max_bytes`` bounds each of the two unit matrices (cell
    quadrature points for f, CG_{k+1} nodes for Psi), which are kept whole when they fit;
    ``compress_rtol`` replaces them by truncated SVDs (solver.model.compression).

    The residual is evaluated with numpy arrays of the quadrature points built once
    from DOLFINx Expressions (Jacobians, facet normals and weights), with the same
    rules as the UFL form ``ufl_rate_form`` (degree 2k + 1 in cells and on facets), which
    ``reference_rate`` assembles as a cross-check (the two agree to round-off).
    """

    def __init__(self, msh: mesh.Mesh, problem: Problem, degree: int = 1,
                 max_bytes: int = MESH_MATRIX_BYTES, compress_rtol: float | None = None):
        if int(degree) != degree or degree < 1:
            raise ValueError(f"pde.degree: DG needs an integer degree >= 1, got {degree}")
        if np.isfinite(problem.beta):
            raise NotImplementedError("DGTransport is for beta = inf (no diffusion)")
        k, dom = int(degree), problem.domain
        check_mesh(msh, dom)
        tdim, gdim = msh.topology.dim, msh.geometry.dim
        self.problem, self.mesh, self.comm, self.degree = problem, msh, msh.comm, k
        reuse_freed_memory()  # the per-stage temporaries are large: no page faults

        self.V = fem.functionspace(msh, ("DG", k))
        self.Vpsi = fem.functionspace(msh, ("Lagrange", k + 1))
        self.n_owned = self.V.dofmap.index_map.size_local
        cmap = msh.topology.index_map(tdim)
        self.n_cells = cmap.size_local
        self._n_local = cmap.size_local + cmap.num_ghosts
        self._dofs_all = self.V.dofmap.list[: self._n_local].astype(np.intp)
        self._dofs = self._dofs_all[: self.n_cells]
        if self._dofs.size and self._dofs.max() >= self.n_owned:
            raise RuntimeError("DG: an owned cell has a ghost dof")
        # DOLFINx numbers DG dofs cell by cell: then owned values reshape without a gather
        self._contiguous = np.array_equal(self._dofs.reshape(-1), np.arange(self.n_owned))
        self._psi_dofs = self.Vpsi.dofmap.list[: self._n_local].astype(np.intp)
        self.mobility = self._mobility(gdim)

        # -- reference points P: the cell Gauss rule, then the facet Gauss points of each facet
        cell = self.V.element.basix_element.cell_type
        self._qdeg = 2 * k + 1
        Xq, wq = basix.make_quadrature(cell, self._qdeg)
        Xf, wf = _facet_rule(cell, self._qdeg)
        Xfc = _facet_points_in_cell(cell, Xf)
        nq, nfl, nfp = len(wq), Xfc.shape[0], Xfc.shape[1]
        self._nq, self._nfl, self._nfp = nq, nfl, nfp
        P = np.vstack([Xq, Xfc.reshape(-1, tdim)])
        tab = self.V.element.basix_element.tabulate(1, P)[..., 0]  # (1 + tdim, n_P, n_dofs)
        B = np.ascontiguousarray(tab[0])
        self._BT = np.ascontiguousarray(B.T)  # (n_dofs, n_P): values at P = dofs @ _BT
        self._BfT = np.ascontiguousarray(B[nq:].T)  # (n_dofs, n_facet_points)
        self._Bf = np.ascontiguousarray(B[nq:])  # (n_facet_points, n_dofs)
        # per reference direction t (arrays by component, so every product is contiguous):
        # grad_ref v at the Gauss points, and grad_ref of the CG_{k+1} basis at cell/facet points
        self._dgrad = [np.ascontiguousarray(tab[1 + t, :nq]) for t in range(tdim)]
        ptab = self.Vpsi.element.basix_element.tabulate(1, P)[1:, :, :, 0]  # (tdim, n_P, n_psi)
        self._psi_tab_cell = [np.ascontiguousarray(ptab[t, :nq].T) for t in range(tdim)]
        self._psi_tab_facet = [np.ascontiguousarray(ptab[t, nq:].T) for t in range(tdim)]
        alpha = positivity_weights(B, wq, nfl, wf)
        self._alpha_f = alpha[nq:].reshape(nfl, nfp)  # the all-facet rule
        uniform, groups = positivity_rules(B, wq, nfl, wf, basix.topology(cell)[tdim - 1])
        # 1/gamma, with 0 -> huge (a facet without outflow costs nothing)
        self._inv_uniform = 1.0 / np.maximum(uniform, 1e-200)
        self._groups = [(g, 1.0 / np.maximum(gamma, 1e-200)) for g, gamma in groups]
        self._facet_c = wf / wf.sum()

        # -- the owned cells' Gauss points: theta_q, W_q = w_q |det J|, metric K D K^T
        x = ufl.SpatialCoordinate(msh)
        owned = np.arange(self.n_cells, dtype=np.int32)
        xq = fem.Expression(x, Xq).eval(msh, owned).reshape(-1, gdim)
        detj = fem.Expression(abs(ufl.JacobianDeterminant(msh)), Xq).eval(msh, owned)
        self.W = detj.reshape(self.n_cells, nq) * wq
        self.volumes = self.W.sum(axis=1)
        self._curved = bool(dom.radial_axes)
        if self._curved:  # the exact surface's inverse metric; rho is per unit mesh area
            jac = fem.Expression(ufl.Jacobian(msh), Xq).eval(msh, owned)
            ginv, area = exact_metric(jac.reshape(-1, gdim, tdim), dom.chart_jacobian(xq))
            metric = ginv.reshape(self.n_cells, nq, tdim, tdim).transpose(2, 3, 0, 1)
            self._area = area.reshape(self.n_cells, nq)
        else:
            kinv = fem.Expression(ufl.JacobianInverse(msh), Xq).eval(msh, owned)
            kinv = kinv.reshape(self.n_cells, nq, tdim, gdim)
            metric = np.einsum("cqsg,g,cqtg->stcq", kinv, self.mobility, kinv)  # K D K^T
            self._area = np.ones((self.n_cells, nq))
        self._metric = [[np.ascontiguousarray(metric[i, j]) for j in range(tdim)]
                        for i in range(tdim)]
        self.theta = dom.from_mesh(xq)
        self.S = unit_matrix(problem, self.theta, msh.comm, compress_rtol, max_bytes,
                             n_owned=len(self.theta))
        self._r = dom.regulariser(self.theta) if problem.lam else None

        # -- Psi at the CG_{k+1} nodes (every local node: no communication)
        xpsi = self.Vpsi.tabulate_dof_coordinates()[:, :gdim]
        self.theta_psi = dom.from_mesh(xpsi)
        self.S_psi = unit_matrix(problem, self.theta_psi, msh.comm, compress_rtol, max_bytes,
                                 n_owned=self.Vpsi.dofmap.index_map.size_local)
        self._r_psi = problem.lam * dom.regulariser(self.theta_psi) if problem.lam else 0.0

        self.rho = fem.Function(self.V, name="rho")
        self.psi = fem.Function(self.Vpsi, name="Psi")
        self._build_facets(Xf, wf, P[nq:])
        self._build_mass_solver()
        self.f = np.zeros(problem.data.size)
        self._points = np.zeros((self.n_cells, len(P)))
        self._kin: dict | None = None
        self.limited_cells = 0  # cells the limiter scaled in the last set_density (this rank)
        self.unlimited_min = 0.0  # min over the limiter points before limiting (this rank)
        self._ufl_rate: fem.Form | None = None
        self.gamma = problem.birth_death
        self._psi_q = np.zeros((self.n_cells, self._nq))  # exact Psi at Gauss points (gamma > 0)
        self.mean_psi = 0.0

    # -- set-up -------------------------------------------------------------
    def _mobility(self, gdim: int) -> np.ndarray:
        """Diagonal of D in mesh coordinates: 0 along frozen axes (flat charts only)."""
        frozen = self.problem.frozen
        if frozen and gdim != self.problem.param_dim:
            raise NotImplementedError(
                "frozen: axes of a curved domain's chart cannot be frozen in the DG scheme")
        m = np.ones(gdim)
        m[list(frozen)] = 0.0
        return m

    def _build_facets(self, Xf: np.ndarray, wf: np.ndarray, Pf: np.ndarray) -> None:
        """Facet-point arrays: interior facets touching an owned cell, owned boundary facets.

        With shared-facet ghosting both cells of every facet of an owned cell are local,
        so a facet of an owned cell seen from one local cell only is on the boundary.
        """
        msh, tdim, gdim = self.mesh, self.mesh.topology.dim, self.mesh.geometry.dim
        nl, nfl, nfp = self._n_local, self._nfl, self._nfp
        msh.topology.create_connectivity(tdim, tdim - 1)
        c2f = msh.topology.connectivity(tdim, tdim - 1).array.reshape(nl, nfl)
        cells = np.repeat(np.arange(nl, dtype=np.int32), nfl)
        local = np.tile(np.arange(nfl, dtype=np.int32), nl)
        ents = np.column_stack([cells, local])

        n = ufl.FacetNormal(msh)
        x = ufl.SpatialCoordinate(msh)
        shape = (nl, nfl, nfp)
        xs = fem.Expression(x, Xf).eval(msh, ents).reshape(*shape, gdim)
        # DOLFINx may walk a facet the other way (simplices): put its facet points in the
        # order of the limiter points (the facet rule is symmetric, so the sets agree)
        xp = fem.Expression(x, Pf).eval(msh, np.arange(nl, dtype=np.int32)).reshape(xs.shape)
        dist = _pair_distances(xp, xs)
        match = np.argmin(dist, axis=3)  # limiter point p is DOLFINx's facet point match[p]
        if dist.size and np.take_along_axis(dist, match[..., None], 3).max() > (
                1e-10 * _diameter(msh)):
            raise RuntimeError("DG: facet quadrature points do not match the limiter points")

        def at_limiter_points(values: np.ndarray) -> np.ndarray:
            values = values.reshape(*shape, -1)
            return np.take_along_axis(values, match[..., None], axis=2)

        ns = at_limiter_points(fem.Expression(n, Xf).eval(msh, ents))
        if tdim > 1:
            fj = ufl.geometry.FacetJacobianDeterminant(msh)
            scale = fem.Expression(abs(fj), Xf).eval(msh, ents).reshape(shape) * wf
            w = at_limiter_points(scale)[..., 0]
        else:  # point facets
            w = np.ones(shape)
        if self._curved:
            # side speeds a g^{-1} J^T n of each cell's own conormal n (the exact metric g)
            jac = at_limiter_points(fem.Expression(ufl.Jacobian(msh), Xf).eval(msh, ents))
            ginv, area = exact_metric(jac.reshape(-1, gdim, tdim),
                                      self.problem.domain.chart_jacobian(xp.reshape(-1, gdim)))
            jn = np.einsum("pgt,pg->pt", jac.reshape(-1, gdim, tdim), ns.reshape(-1, gdim))
            side = (area[:, None] * np.einsum("pst,pt->ps", ginv, jn)).reshape(*shape, tdim)
            inv_area = 1.0 / area.reshape(shape)
        else:
            kinv = at_limiter_points(
                fem.Expression(ufl.JacobianInverse(msh), Xf).eval(msh, ents))
            kd = kinv.reshape(*shape, tdim, gdim) * self.mobility  # K D
            inv_area = np.ones(shape)
        xs = xp

        facet = c2f.reshape(-1)
        order = np.argsort(facet, kind="stable")
        count = np.bincount(facet, minlength=facet.max(initial=-1) + 1)
        fs = facet[order]
        pair = np.flatnonzero(fs[1:] == fs[:-1])
        i0, i1 = order[pair], order[pair + 1]
        keep = (cells[i0] < self.n_cells) | (cells[i1] < self.n_cells)
        i0, i1 = i0[keep], i1[keep]
        c0, l0, c1, l1 = cells[i0], local[i0], cells[i1], local[i1]
        rows = np.arange(len(c0))[:, None]
        # point p of side 0 is point perm[p] of side 1
        perm = np.argmin(_pair_distances(xs[c0, l0], xs[c1, l1]), axis=2)
        if len(c0) and not np.all(np.sort(perm, axis=1) == np.arange(nfp)):
            raise RuntimeError("DG: facet points of neighbouring cells do not match")
        if self._curved:  # a = (a0 u0 . n0 - a1 u1 . n1) / 2, the mass-flux speed
            e0 = side[c0, l0].transpose(2, 1, 0).copy()
            e1 = -side[c1, l1][rows, perm].transpose(2, 1, 0)
        else:  # a = {u} . n_s
            n_sym = (ns[c0, l0] - ns[c1, l1][rows, perm]) / 2  # outward from side 0
            e0 = np.einsum("fptg,fpg->tpf", kd[c0, l0], n_sym)
            e1 = np.einsum("fptg,fpg->tpf", kd[c1, l1][rows, perm], n_sym)
        w0, w1 = w[c0, l0], w[c1, l1][rows, perm]
        volumes = np.full(nl, np.inf)
        volumes[: self.n_cells] = self.volumes  # ghost sides never limit the step
        point = np.arange(nfp)

        def flat(c, lf, p):  # index of (cell, local facet, point) in (n_local, nfl, nfp)
            return np.ascontiguousarray(((c.astype(np.intp) * nfl + lf)[:, None] * nfp + p).T)

        # every facet-point array is point-major, (nfp, F): a[p] is a contiguous vector
        self._inner = {
            "i0": flat(c0, l0, point), "i1": flat(c1, l1, perm), "w": w0.T.copy(),
            "cf0": c0.astype(np.intp) * nfl + l0, "cf1": c1.astype(np.intp) * nfl + l1,
            # a = -(ghat0 . e0 + ghat1 . e1) / 2, ghat reference gradients of Psi
            "e0": np.ascontiguousarray(e0), "e1": np.ascontiguousarray(e1),
            # outflow a^+ at a point of a cell's facet moves w_g a^+ rho~/area of its mass:
            # w_g / (c_g |K| area_g) times a^+ rho~
            "scale0": (w0 * inv_area[c0, l0] / self._facet_c / volumes[c0, None]).T.copy(),
            "scale1": (w1 * inv_area[c1, l1][rows, perm] / self._facet_c[perm]
                       / volumes[c1, None]).T.copy(),
        }
        self._inv_area_facet = inv_area.reshape(-1) if self._curved else None
        single = (count[facet] == 1) & (cells < self.n_cells)
        cb, lb = cells[single], local[single]
        e = (side[cb, lb].transpose(2, 1, 0) if self._curved
             else np.einsum("fptg,fpg->tpf", kd[cb, lb], ns[cb, lb]))
        self._boundary = {"i": flat(cb, lb, point), "w": w[cb, lb].T.copy(),
                          "e": np.ascontiguousarray(e)}

    def _build_mass_solver(self) -> None:
        """Mass matrix with the cell Gauss rule of f (so int rho is the same sum) + KSP.

        preonly + PC vpbjacobi: the exact inverse of each cell's block (DOLFINx numbers
        DG dofs cell by cell); block Jacobi with LU sub-solves if the numbering is not.
        """
        from dolfinx.fem import petsc as fem_petsc

        w, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        dx = ufl.Measure("dx", domain=self.mesh, metadata={"quadrature_degree": self._qdeg})
        self._A = fem_petsc.assemble_matrix(fem.form(w * v * dx))
        self._A.assemble()
        ksp = PETSc.KSP().create(self.comm)
        ksp.setType("preonly")
        pc = ksp.getPC()
        if self._contiguous:
            nd = self._dofs.shape[1]
            self._A.setVariableBlockSizes(np.full(self.n_cells, nd, dtype=PETSc.IntType))
            ksp.setOperators(self._A)
            pc.setType("vpbjacobi")
            ksp.setUp()
        else:
            ksp.setOperators(self._A)
            pc.setType("bjacobi")
            ksp.setUp()
            for sub in pc.getBJacobiSubKSP():
                sub.setType("preonly")
                sub.getPC().setType("lu")
        self._ksp = ksp
        self._b, self._x = self._A.createVecs()

    def _solve_mass(self, b_owned: np.ndarray) -> np.ndarray:
        self._b.array[:] = b_owned
        self._ksp.solve(self._b, self._x)
        return self._x.array_r.copy()

    # -- the state ----------------------------------------------------------
    def _limit(self, values: np.ndarray) -> np.ndarray:
        """Zhang-Shu scaling towards the cell average so rho >= 0 at the limiter points."""
        pts = self._cell_values(values) @ self._BT
        low = pts.min(axis=1)
        bad = np.flatnonzero(low < 0)
        self.limited_cells = len(bad)
        self.unlimited_min = float(low.min(initial=np.inf))
        if len(bad):
            avg = np.einsum("cq,cq->c", pts[bad, : self._nq], self.W[bad]) / self.volumes[bad]
            avg[np.abs(avg) < MIN_AVERAGE] = 0.0  # no relative precision left: an empty cell
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.where(avg > 0, (1 - LIMITER_MARGIN) * avg / (avg - low[bad]), 0.0)
            t = np.clip(t, 0.0, 1.0)
            dofs = self._dofs[bad]
            values = values.copy()
            values[dofs] = avg[:, None] + t[:, None] * (values[dofs] - avg[:, None])
            pts[bad] = values[dofs] @ self._BT
            # rounding (dofs far above the average) can still leave a few ulps below 0:
            # such a cell becomes its (>= 0) average, whose point values are >= 0 exactly
            still = np.flatnonzero((pts[bad].min(axis=1) < 0) & (avg >= 0))
            if len(still):
                values[dofs[still]] = avg[still, None]
                pts[bad[still]] = values[dofs[still]] @ self._BT
        self._points = pts
        return values

    def _cell_values(self, values: np.ndarray) -> np.ndarray:
        """Owned dof values cell by cell, (n_cells, n_dofs)."""
        if self._contiguous:
            return values.reshape(self.n_cells, -1)
        return np.take(values, self._dofs)

    def set_density(self, values: np.ndarray) -> None:
        """Set rho on owned dofs, limit it (each cell keeps its mass), evaluate f and Psi."""
        values = self._limit(np.asarray(values, dtype=float))
        self.rho.x.array[: self.n_owned] = values
        self.rho.x.scatter_forward()
        local = self.S.forward(self._weights())
        self.f = np.empty_like(local)
        self.comm.Allreduce(local, self.f, MPI.SUM)
        psi = self.S_psi.adjoint(functionals.residual_weights(self.problem, self.f))
        self.psi.x.array[:] = psi + self._r_psi
        self._kin = None
        if self.gamma:
            psi_q = self.S.adjoint(functionals.residual_weights(self.problem, self.f))
            if self.problem.lam:
                psi_q = psi_q + self.problem.lam * self._r
            self._psi_q = psi_q.reshape(self.n_cells, self._nq)
            w = self._weights()
            sums = self.comm.allreduce(np.array([psi_q @ w, np.sum(w)]), MPI.SUM)
            self.mean_psi = float(sums[0] / sums[1])

    def density(self) -> np.ndarray:
        """rho on the owned dofs (a copy)."""
        return self.rho.x.array[: self.n_owned].copy()

    def initial_density(self) -> np.ndarray:
        """L2 projection of rho_0 (cell Gauss rule), limited to >= 0, mass exactly 1."""
        pdf = self.problem.initial.pdf(self.theta).reshape(self.n_cells, self._nq) * self._area
        b = np.zeros(self.n_owned)
        b[self._dofs] = (pdf * self.W) @ self._BT[:, : self._nq].T
        values = self._limit(self._solve_mass(b))
        mass = self.comm.allreduce(float(np.sum(self._weights())), MPI.SUM)
        if not mass > 0:
            raise ValueError("initial: the density is zero on every cell of the mesh")
        return values / mass

    def point_measure(self) -> tuple[np.ndarray, np.ndarray]:
        """rho as the weighted point set sum_q W_q delta(theta_q) of the owned cells' Gauss
        points (theta (Q, k), W_q = w_q |det J_q| rho(theta_q)): the rule f is computed with."""
        return self.theta, self._weights()

    def _weights(self) -> np.ndarray:
        """W_q rho(theta_q) at the owned cells' Gauss points (flat, ordered like theta)."""
        return (self._points[:, : self._nq] * self.W).reshape(-1)

    def _kinematics(self) -> dict:
        """Reference gradients of Psi at every point and the facet speeds (cached per state)."""
        if self._kin is not None:
            return self._kin
        nc, tdim = self.n_cells, self.mesh.topology.dim
        psi = np.take(self.psi.x.array, self._psi_dofs)
        gv = [psi[:nc] @ tab for tab in self._psi_tab_cell]  # (n_cells, nq) each
        gf = [(psi @ tab).reshape(-1) for tab in self._psi_tab_facet]  # flat facet points
        inn, bnd = self._inner, self._boundary
        a = sum(np.take(gf[t], inn["i0"]) * inn["e0"][t] + np.take(gf[t], inn["i1"])
                * inn["e1"][t] for t in range(tdim))
        ab = sum(np.take(gf[t], bnd["i"]) * bnd["e"][t] for t in range(tdim))
        # U = K D K^T ghat = -(u in reference coordinates) at the cell Gauss points
        U = [sum(self._metric[s][t] * gv[t] for t in range(tdim)) for s in range(tdim)]
        self._kin = {
            "a": -0.5 * a,
            "a_boundary": -ab,
            "U": U,
            "speed2": sum(U[s] * gv[s] for s in range(tdim)),  # |D grad Psi|^2 at Gauss pts
        }
        return self._kin

    def _facet_rho(self) -> np.ndarray:
        """rho (per unit area of the exact surface: rho~/area) at the facet points of every
        local cell, flat over (n_local, nfl, nfp)."""
        values = (np.take(self.rho.x.array, self._dofs_all) @ self._BfT).reshape(-1)
        return values if self._inv_area_facet is None else values * self._inv_area_facet

    # -- the scheme ---------------------------------------------------------
    def rate(self) -> np.ndarray:
        """d rho/dt on owned dofs: M^{-1} of the upwind DG residual."""
        kin, inn = self._kinematics(), self._inner
        nc, nq = self.n_cells, self._nq
        # - <rho^up a, [v]>: the outward flux at every facet point of every local cell
        fr, a = self._facet_rho(), kin["a"]
        flux = inn["w"] * (np.maximum(a, 0) * np.take(fr, inn["i0"])
                           + np.minimum(a, 0) * np.take(fr, inn["i1"]))
        out = np.zeros_like(fr)
        out[inn["i0"]] = flux
        out[inn["i1"]] = -flux
        cells = -(out.reshape(self._n_local, -1)[:nc] @ self._Bf)
        # (rho u, grad v)_K = -sum_q W_q rho_q U_q . grad_ref v(q)
        rw = self._points[:, :nq] * self.W
        for U, dgrad in zip(kin["U"], self._dgrad, strict=True):
            cells -= (rw * U) @ dgrad
        if self.gamma:  # (-gamma (Psi - <Psi>) rho, v) by the cell Gauss rule
            reaction = birth_death.reaction_rate(self._psi_q, rw, self.gamma, self.mean_psi)
            cells += reaction @ self._BT[:, :nq].T
        b = np.empty(self.n_owned)
        b[self._dofs] = cells
        return self._solve_mass(b)

    def max_stable_step(self) -> float:
        """The forward-Euler bound (CFL) of the module docstring, min over owned cells.

        need[K, l] = max over the points g of facet l of a_g^+ w_g / (c_g |K|); a rule with
        weights gamma_l keeps the average of K >= 0 while dt need[K, l] <= gamma_l for every
        facet l. Each cell takes the better of the all-facet rule and the group mixture.
        """
        inn, a = self._inner, self._kinematics()["a"]
        nfl = self._nfl
        need = np.zeros(self._n_local * nfl)
        points = range(self._nfp)
        need[inn["cf0"]] = _max_of(np.maximum(a[p], 0) * inn["scale0"][p] for p in points)
        need[inn["cf1"]] = _max_of(np.maximum(-a[p], 0) * inn["scale1"][p] for p in points)
        need = need.reshape(self._n_local, nfl)[: self.n_cells]
        cols = [need[:, lf] for lf in range(nfl)]
        # 1/dt of each cell: the all-facet rule, or the rules of the facet groups mixed with
        # weights mu_i proportional to max_{l in group i} need_l / gamma_il
        rate = _max_of(cols[lf] * self._inv_uniform[lf] for lf in range(nfl))
        mixed = sum(_max_of(cols[lf] * inv[lf] for lf in group) for group, inv in self._groups)
        np.minimum(rate, mixed, out=rate)
        if self.gamma:
            rate = rate + birth_death.reaction_inverse_step(
                self._psi_q, self.gamma, self.mean_psi).max(axis=1, initial=0.0)
        with np.errstate(divide="ignore"):
            local = float(np.divide(1.0, rate.max(initial=0.0)))
        return self.comm.allreduce(local, MPI.MIN)

    # -- checks -------------------------------------------------------------
    def _sum(self, value: float) -> float:
        return self.comm.allreduce(float(value), MPI.SUM)

    def diagnostics(self) -> Diagnostics:
        """Energy, mass, min rho at the limiter points, dissipation, boundary outflow rate."""
        w = self._weights()
        kin, bnd = self._kinematics(), self._boundary
        loss = functionals.loss(self.problem, self.f)
        pen = self._sum(self.problem.lam * (w @ self._r)) if self.problem.lam else 0.0
        speed2 = kin["speed2"].reshape(-1)
        rho_b = np.take(self._facet_rho(), bnd["i"])
        outflow = np.sum(bnd["w"] * rho_b * np.maximum(kin["a_boundary"], 0))
        low = float(self._points.min(initial=np.inf))
        dissipation = w @ speed2
        if self.gamma:
            dissipation += birth_death.reaction_dissipation(
                self._psi_q.reshape(-1), w, 1.0, self.gamma, self.mean_psi)
        return Diagnostics(
            energy=loss + pen,
            loss=loss,
            mass=self._sum(w.sum()),
            min_rho=self.comm.allreduce(low, MPI.MIN),
            dissipation=self._sum(dissipation),
            boundary_outflow=self._sum(outflow),
        )

    def energy_rate(self) -> float:
        """dE/dt of the semi-discrete scheme now (no time error, no limiter):

            dE/dt = sum_m w_m (f_m - y_m) df_m + lam sum_q r_q W_q L_q,
            df_m = sum_q s(x_m; theta_q) W_q L_q,  L_q = L(rho)(theta_q) at the Gauss points.

        It differs from -``dissipation`` by the scheme's O(h^{k+1}) inconsistency (grad Psi
        of the CG_{k+1} interpolant, the upwind facet terms), not by any time error."""
        rate = self._cell_values(self.rate()) @ self._BT[:, : self._nq]
        w = (rate * self.W).reshape(-1)
        local = self.S.forward(w)
        df = np.empty_like(local)
        self.comm.Allreduce(local, df, MPI.SUM)
        pen = self._sum(self.problem.lam * (w @ self._r)) if self.problem.lam else 0.0
        return float(functionals.residual_weights(self.problem, self.f) @ df) + pen

    def mc_variance(self) -> float:
        """MC = sum_m w_m (int s^2 rho - f^2) at the current state (cell Gauss rule)."""
        local = self.S.forward_squared(self._weights())
        f2 = np.empty_like(local)
        self.comm.Allreduce(local, f2, MPI.SUM)
        return functionals.mc_variance(self.problem, self.f, f2)

    # -- the same residual as a UFL form (a cross-check) --------------------
    def ufl_rate_form(self) -> fem.Form:
        """(rho u, grad v) dx - <rho^up {u}.n_s, [v]> dS with the scheme's quadrature degrees."""
        if self._ufl_rate is None:
            msh, rho, v = self.mesh, self.rho, ufl.TestFunction(self.V)
            meta = {"quadrature_degree": self._qdeg}
            n = ufl.FacetNormal(msh)
            if self._curved:
                u, area = self._ufl_exact_velocity()
                a = (area("+") * ufl.dot(u("+"), n("+"))
                     - area("-") * ufl.dot(u("-"), n("-"))) / 2
                up, down = rho("+") / area("+"), rho("-") / area("-")
            else:
                grad = ufl.grad(self.psi)
                u = -ufl.as_vector([float(m) * grad[i] for i, m in enumerate(self.mobility)])
                a = ufl.dot(ufl.avg(u), (n("+") - n("-")) / 2)
                up, down = rho("+"), rho("-")
            flux = up * (a + abs(a)) / 2 + down * (a - abs(a)) / 2
            dx = ufl.Measure("dx", domain=msh, metadata=meta)
            dS = ufl.Measure("dS", domain=msh, metadata=meta)
            self._ufl_rate = fem.form(rho * ufl.dot(u, ufl.grad(v)) * dx
                                      - flux * ufl.jump(v) * dS)
        return self._ufl_rate

    def _ufl_exact_velocity(self):
        """u = -J g^{-1} J^T grad Psi (g the exact surface's metric) and the area factor."""
        msh, axes = self.mesh, list(self.problem.domain.radial_axes)
        x = ufl.SpatialCoordinate(msh)
        r = ufl.sqrt(sum(x[i] ** 2 for i in axes))
        gdim = msh.geometry.dim
        dphi = ufl.as_matrix([[((i == j) - x[i] * x[j] / r**2) / r if i in axes and j in axes
                                else float(i == j) for j in range(gdim)] for i in range(gdim)])
        jac = ufl.Jacobian(msh)
        je = dphi * jac
        g = je.T * je
        area = ufl.sqrt(ufl.det(g) / ufl.det(jac.T * jac))
        return -jac * ufl.inv(g) * jac.T * ufl.grad(self.psi), area

    def reference_rate(self) -> np.ndarray:
        """``rate`` computed by assembling ``ufl_rate_form`` (slower; for tests)."""
        vec = la.vector(self.V.dofmap.index_map)
        vec.array[:] = 0.0
        fem.assemble_vector(vec.array, self.ufl_rate_form())
        vec.scatter_reverse(la.InsertMode.add)
        return self._solve_mass(vec.array[: self.n_owned])


def exact_metric(jac: np.ndarray, dphi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact surface's metric on a flat cell, at points with cell Jacobian J (N, gdim,
    tdim) and surface-map Jacobian dPhi (N, gdim, gdim): g = (dPhi J)^T (dPhi J), returns
    g^{-1} (N, tdim, tdim) and the area factor a = sqrt(det g / det J^T J)."""
    je = dphi @ jac
    g = np.einsum("ngs,ngt->nst", je, je)
    flat = np.einsum("ngs,ngt->nst", jac, jac)
    return np.linalg.inv(g), np.sqrt(np.linalg.det(g) / np.linalg.det(flat))


def _pair_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a[..., i, :] - b[..., j, :]| for all point pairs (i, j), shape (..., n, n)."""
    d2 = sum((a[..., :, None, g] - b[..., None, :, g]) ** 2 for g in range(a.shape[-1]))
    return np.sqrt(d2)


def _max_of(arrays) -> np.ndarray:
    """Elementwise maximum of a few arrays."""
    it = iter(arrays)
    out = np.array(next(it), dtype=float)
    for a in it:
        np.maximum(out, a, out=out)
    return out


def _diameter(msh: mesh.Mesh) -> float:
    x = msh.geometry.x
    local = float(np.ptp(x, axis=0).max()) if len(x) else 0.0
    return max(msh.comm.allreduce(local, MPI.MAX), 1.0)
