"""The config schema: every key of every section and kind, declared once.

``solver.config`` reads configs through these Sections and ``solver.config_reference``
renders them (``meanfield check --explain``, docs/config.md). A list of ``k`` numbers has
one entry per parameter of the unit (k = len(unit.param_names)); of ``d`` numbers, one per
data dimension (d = unit.dim, 1 for the circle units).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from solver.model.losses import LOSSES
from solver.model.units import ACTIVATIONS
from solver.schema import Key, Section
from solver.settings import INTEGRATORS, PARTICLE_INTEGRATORS, SCHEMES


def _list(v: Any) -> list:
    return v if isinstance(v, list) else [v]


def finite(v: Any) -> bool:
    return all(math.isfinite(x) for x in _list(v))


def positive(v: Any) -> bool:
    return all(x > 0 for x in _list(v))


def finite_positive(v: Any) -> bool:
    return finite(v) and positive(v)


def non_negative(v: Any) -> bool:
    return all(x >= 0 for x in _list(v))


def plain_name(name: str) -> bool:
    """A name that stays inside runs/ as runs/<name>: no separators, not . or .."""
    return bool(name) and name not in (".", "..") and all(
        c.isalnum() or c in "-_." for c in name)


def _dim() -> Key:
    return Key("dim", "an integer", "d, the data dimension", check=positive,
               allowed="a positive integer")


def _width(meaning: str) -> Key:
    return Key("width", "a number", meaning, check=positive, allowed="a number > 0")


def _points(meaning: str) -> Key:
    return Key("points", "an integer", meaning, check=positive, allowed="a positive integer")


def _nodes(meaning: str) -> Key:
    return Key("n", "an integer", meaning, check=positive, allowed="a positive integer")


def _activation() -> Key:
    return Key("activation", "a string", "sigma", choices=tuple(ACTIVATIONS))


def _bounds(size: str, what: str, *, when: tuple[str, str] | None = None) -> tuple[Key, Key]:
    return tuple(Key(end, "a list of numbers", f"{end} corner of the {what}", check=finite,
                     allowed="finite numbers", size=size, when=when)
                 for end in ("lower", "upper"))


def _checkpoint_every(meaning: str) -> Key:
    return Key("checkpoint_every", "a number", meaning, 600.0, check=positive,
               allowed="seconds of wall time between checkpoints, a number > 0 "
                       "(inf: only when pre-empted and at the end)")


TOP = Section("config", "Top level of a config file (the sections follow as tables).", (
    Key("name", "a string", "run name (also the default run directory runs/<name>)", "run",
        check=plain_name, allowed="a run name of letters, digits, '-', '_', '.' (no path: "
                                  "set output for that)"),
    Key("output", "a string", "run directory, relative to the working directory", None,
        shown="runs/<name>"),
))

PROBLEM = Section("problem", "The dynamics: d rho/dt = div(rho grad Psi) + (1/beta) Laplace "
                             "rho, Psi = (the loss's first variation) + lambda |theta|^2/2.", (
    Key("t_final", "a number", "time horizon of the gradient flow", check=finite_positive,
        allowed="a finite number > 0"),
    Key("beta", "a number", "inverse temperature (inf: noiseless gradient descent)", math.inf,
        check=positive, allowed="a number > 0 or inf"),
    Key("lambda", "a number", "weight of the confinement lambda |theta|^2/2", 0.0,
        check=lambda v: finite(v) and v >= 0, allowed="a finite number >= 0"),
    Key("loss", "a string", "the loss l(f, y) of E = E_mu[l(f, y)]: (f - y)^2/2; "
        "log(1 + exp(-y f)) (labels y = -1, +1); Huber; quadratically smoothed hinge of y f "
        "(labels); Psi = E_mu[d1 l(f, y) s] + lambda r", "square", choices=LOSSES),
    Key("huber_delta", "a number", "Huber's delta: quadratic for |f - y| <= delta, linear "
        "beyond", 1.0, check=finite_positive, allowed="a finite number > 0",
        when=("loss", "huber")),
    Key("smooth_hinge_gamma", "a number", "width of the quadratic piece of the smoothed hinge",
        1.0, check=finite_positive, allowed="a finite number > 0",
        when=("loss", "smooth_hinge")),
    Key("birth_death", "a number", "gamma of the birth-death (Wasserstein-Fisher-Rao) "
        "reaction - gamma (Psi - <Psi>_rho) rho added to d rho/dt (0: off; > 0 needs beta = "
        "inf, an explicit PDE integrator, and particles at fixed steps without batch)", 0.0,
        check=lambda v: finite(v) and v >= 0, allowed="a finite number >= 0"),
))

UNIT = {s.kind: s for s in (
    Section("unit.linear", "s(x; theta) = theta . x.", (_dim(),),
            theta=(("", "theta_1..theta_d"),)),
    Section("unit.rbf", "s(x; c, z) = c exp(-|x - z|^2 / (2 width^2)).",
            (_dim(), _width("width of the bump")), theta=(("", "c, z_1..z_d"),)),
    Section("unit.circle_rbf", "s(x; c, z) = c exp((cos(x - z) - 1) / width^2) for angles x, "
                               "z (d = 1).", (_width("angular width"),),
            theta=(("", "c, z"),)),
    Section("unit.circle_bump", "s(x; z) = amplitude exp((cos(x - z) - 1) / width^2) for "
                                "angles x, z (d = 1).", (
        _width("angular width"),
        Key("amplitude", "a number", "the fixed output weight", 1.0,
            check=lambda v: finite(v) and v != 0, allowed="a finite nonzero number"),
    ), theta=(("", "z"),)),
    Section("unit.neuron", "s(x; c, a, b) = c sigma(a . x + b).", (
        _dim(), _activation(),
        Key("output_weight", "a number", "fix c to this value", None, check=finite,
            allowed="a finite number", shown="free (c is a parameter)"),
    ), theta=(("", "c, a_1..a_d, b"), ("output_weight", "a_1..a_d, b"))),
    Section("unit.fixed_output_neuron", "s(x; w) = sigma(w . x) (+ b with bias).", (
        _dim(), _activation(), Key("bias", "a boolean", "add a bias b to theta", False),
    ), theta=(("", "w_1..w_d"), ("bias", "w_1..w_d, b"))),
    Section("unit.reduced_ridge", "Symmetry-reduced ridge unit c sigma(w . x) on data invariant "
            "under the rotations fixing U = span(e_1..e_k): s = c E_t[sigma(a . x_U + q r t)], "
            "a = P_U w, q = |w_perp| >= 0, data rows (x_U, r = |x_perp|), "
            "t ~ (1 - t^2)^((d-k-3)/2) (solver/model/reduction.py); with [data] kind = "
            '"reduced", [initial] kind = '
            '"lifted_gaussian" and a box with q in [0, q_max]. Particles of meanfield run move '
            "in (c, a, q); the full-d particles: reduction.ridge_problem in Python. With "
            "radial_u (data also invariant under the rotations within U): theta = (c, a, q) "
            "((a, q) with output_weight), a = |P_U w| >= 0, "
            "data rows (|x_U|, |x_perp|), s = c E_{t1, t2}[sigma(a |x_U| t1 + q r t2)], t1 ~ "
            "(1 - t1^2)^((k-3)/2) (TwoRadiiRidgeUnit, piecewise-linear activations), a box "
            "with a, q >= 0.", (
        _dim(),
        Key("k", "an integer", "dimension of the invariant subspace U", 1,
            check=lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            allowed="0, 1 or 2 (and k < d); with radial_u 1 <= k <= d - 2"),
        _activation(),
        Key("output_weight", "a number", "fix c to this value", None, check=finite,
            allowed="a finite number", shown="free (c is a parameter)"),
        Key("radial_u", "a boolean", "reduce P_U w to its norm too (theta = (c, a, q), "
            "a = |P_U w|)", False),
        Key("table_step", "a number", "radial_u: spacing near 0 of the unit's (alpha, beta) "
            "spline table over the data and the box (0: the composite rule everywhere)", 0.05,
            check=non_negative, allowed="a number >= 0"),
    ), theta=(("", "c, a_1..a_k, q"), ("output_weight", "a_1..a_k, q"))),
)}

_MC = "monte_carlo"
DATA = {s.kind: s for s in (
    Section("data.gauss_legendre", "Tensor Gauss-Legendre rule of the uniform law on the box "
                                   "[lower, upper] (M = n^d points).", (
        *_bounds("d", "box"), _nodes("nodes per axis"),
    )),
    Section("data.gauss_hermite", "Tensor Gauss-Hermite rule of N(mean, std^2 I) "
                                  "(M = n^d points, d <= 3).", (
        Key("mean", "a list of numbers", "the mean", check=finite, allowed="finite numbers",
            size="d"),
        Key("std", "a number", "one standard deviation for every axis (a scalar, not a list)",
            check=finite_positive, allowed="a finite number > 0"),
        _nodes("nodes per axis"),
    )),
    Section("data.circle_lattice", "M equally spaced angles offset + 2 pi j / M (d = 1).", (
        _points("M, the number of angles"),
        Key("offset", "a number", "rotation of the lattice", 0.0, check=finite,
            allowed="a finite number"),
    )),
    Section("data.sphere_product", "Product rule of the uniform law on the sphere S^2 (d = 3).",
            (_nodes("nodes per angle"),)),
    Section("data.monte_carlo", "M independent samples of a law, weights 1/M; the keys after "
                                "seed belong to one law each.", (
        Key("law", "a string", "the law sampled", choices=("uniform_box", "gaussian",
                                                             "sphere")),
        _points("M, the number of samples"),
        Key("seed", "an integer", "seed of the draw", 0, check=non_negative,
            allowed="an integer >= 0"),
        *_bounds("d", "box (law uniform_box)", when=("law", "uniform_box")),
        Key("mean", "a list of numbers", "the mean (law gaussian)", check=finite,
            allowed="finite numbers", size="d", when=("law", "gaussian")),
        Key("std", "a number", "standard deviation, a scalar (law gaussian)",
            check=finite_positive, allowed="a finite number > 0", when=("law", "gaussian")),
        Key("dim", "an integer", "d: uniform on S^(d-1) in R^d (law sphere)", check=positive,
            allowed="a positive integer", when=("law", "sphere")),
    )),
    Section("data.reduced", "The law of (x_U, |x_perp|) for unit kind reduced_ridge (d, k "
                            "from [unit]): Gaussian x_U ~ N(0, scale_u^2 I_k), x_perp ~ N(0, "
                            "scale_perp^2 I_(d-k)) by Gauss-Hermite x generalised "
                            "Gauss-Laguerre rules; or uniform on the sphere |x| = radius.", (
        Key("law", "a string", "the data law", "gaussian", choices=("gaussian", "sphere")),
        Key("nodes_u", "an integer", "Gauss nodes per axis of U", 40, check=positive,
            allowed="a positive integer"),
        Key("nodes_r", "an integer", "Gauss nodes in r (law gaussian)", 40, check=positive,
            allowed="a positive integer"),
        Key("scale_u", "a number", "standard deviation along U (law gaussian)", 1.0,
            check=finite_positive, allowed="a finite number > 0"),
        Key("scale_perp", "a number", "standard deviation across U (law gaussian)", 1.0,
            check=finite_positive, allowed="a finite number > 0"),
        Key("radius", "a number", "radius of the sphere (law sphere)", None,
            check=finite_positive, allowed="a finite number > 0", shown="sqrt(d)",
            when=("law", "sphere")),
    )),
    Section("data.file", "Data points from .npz (arrays x, optional w, y) or .csv (header "
                         "x0..x{d-1}, optional w, y); weights default to 1/M.", (
        Key("path", "a string", "the file, relative to the config"),
    )),
)}

TARGET = {s.kind: s for s in (
    Section("target.expression", "y(x) from an expression in x0, x1, .. (x = x0 when d = 1; "
                                 "r = |x|) with + - * / ** %, comparisons, numbers and sin cos "
                                 "tan exp log sqrt abs tanh sinh cosh arctan arcsin arccos "
                                 "sign maximum minimum where i0, pi, e.", (
        Key("expression", "a string", 'e.g. "sin(x0) * exp(-x1**2)"; finite at every data '
                                      'point'),
    )),
    Section("target.teacher", "y(x) = sum_j a_j s(x; theta_j), a teacher network of the "
                              "config's unit.", (
        Key("theta", "a list of lists of numbers", "the teacher units' parameters, one row "
                                                   "per unit", check=lambda rows: all(
            map(finite, rows)), allowed="lists of finite numbers", size="k"),
        Key("coefficients", "a list of numbers", "the a_j, one per row of theta", None,
            check=finite, allowed="finite numbers", shown="1/(number of rows)"),
    )),
    Section("target.data", 'y from the y column of [data] kind = "file".'),
)}

DOMAIN = {s.kind: s for s in (
    Section("domain.box", "The box prod_i [lower_i, upper_i] of the k parameters (the "
                          "default kind).", _bounds("k", "box")),
    Section("domain.disc", "A disc of the 2 parameters.", (
        Key("center", "a list of numbers", "the centre", check=finite, allowed="finite numbers",
            size="k"),
        Key("radius", "a number", "the radius", check=finite_positive,
            allowed="a finite number > 0"),
    )),
    Section("domain.circle", "One angle z in (-pi, pi] (units with theta = (z))."),
    Section("domain.cylinder", "c in [lower, upper] times an angle z (units with theta = "
                               "(c, z)).", (
        Key("lower", "a number", "lower bound of c", check=finite, allowed="a finite number"),
        Key("upper", "a number", "upper bound of c", check=finite, allowed="a finite number"),
    )),
    Section("domain.sphere", "Unit vectors theta on the sphere S^(k-1) (the PDE meshes S^2: "
                             "k = 3)."),
)}

INITIAL = {s.kind: s for s in (
    Section("initial.gaussian", "rho_0 = N(mean, diag(std^2)) restricted to the domain.", (
        Key("mean", "a list of numbers", "the mean", check=finite, allowed="finite numbers",
            size="k"),
        Key("std", "a list of numbers", "one standard deviation per parameter (a list, not a "
                                        "scalar)", check=finite_positive,
            allowed="positive numbers", size="k"),
    )),
    Section("initial.von_mises", "rho_0 = N(c; mean[:-1], diag(std^2)) exp(kappa cos(z - "
                                 "mean[-1])) / (2 pi I_0(kappa)) on a circle or cylinder: "
                                 "Gaussian in the flat coordinates, von Mises in the angle z "
                                 "(kappa = 0: uniform in the angle).", (
        Key("mean", "a list of numbers", "the mean (the angle last)", check=finite,
            allowed="finite numbers", size="k"),
        Key("std", "a list of numbers", "one standard deviation per flat coordinate (k - 1 "
                                        "numbers; omit it on a circle)", (),
            check=finite_positive, allowed="positive numbers"),
        Key("kappa", "a number", "the concentration in the angle", 0.0,
            check=lambda v: finite(v) and v >= 0, allowed="a finite number >= 0"),
    )),
    Section("initial.uniform", "rho_0 uniform on the box [lower, upper].", _bounds("k", "box")),
    Section("initial.mixture", "rho_0 = sum_i w_i N(mean_i, diag(std_i^2)).", (
        Key("means", "a list of lists of numbers", "the means", check=lambda rows: all(
            map(finite, rows)),
            allowed="lists of finite numbers", size="k"),
        Key("stds", "a list of lists of numbers", "one std list per mean",
            check=lambda s: all(map(finite_positive, s)), allowed="lists of positive numbers",
            size="k"),
        Key("weights", "a list of numbers", "mixture weights, one per mean", None,
            check=lambda w: non_negative(w) and abs(sum(w) - 1) <= 1e-9,
            allowed="numbers >= 0 summing to 1 (one per mean)", shown="equal"),
    )),
    Section("initial.lifted_gaussian", "For unit kind reduced_ridge: the reduction of c ~ "
                                       "N(c_mean, c_std^2), P_U w ~ N(a_mean, w_std^2 I_k), "
                                       "w_perp ~ N(0, w_std^2 I_(d-k)): q = w_std chi_(d-k).", (
        Key("a_mean", "a list of numbers", "mean of P_U w (k numbers; [] when k = 0)", None,
            check=finite, allowed="finite numbers", shown="zeros"),
        Key("w_std", "a number", "standard deviation of every coordinate of w", None,
            check=finite_positive, allowed="a finite number > 0", shown="1/sqrt(d)"),
        Key("c_mean", "a number", "mean of c (free output weight)", 0.0, check=finite,
            allowed="a finite number"),
        Key("c_std", "a number", "standard deviation of c (free output weight)", 1.0,
            check=finite_positive, allowed="a finite number > 0"),
    )),
    Section("initial.uniform_sphere", "rho_0 uniform on the sphere domain."),
    Section("initial.von_mises_fisher", "rho_0 proportional to exp(kappa mu . theta) on the "
                                        "sphere.", (
        Key("mean_direction", "a list of numbers", "mu (normalised)", check=finite,
            allowed="finite numbers", size="k"),
        Key("kappa", "a number", "the concentration", check=lambda v: finite(v) and v >= 0,
            allowed="a finite number >= 0"),
    )),
    Section("initial.checkpoint", "rho_0 the density of an earlier PDE run (same [domain] and "
                                  "[pde] mesh, scheme and degree).", (
        Key("file", "a string", "its pde/checkpoint.h5, relative to the config"),
        Key("field", "a string", 'the density to start from, e.g. "snapshot2"', None,
            shown="the final density"),
    )),
)}

PDE = Section("pde", "The PDE solver. Give exactly one of cells, mesh (+ level) or mesh_file.", (
    Key("cells", "a list of integers", "a structured mesh: box: cells per axis (k numbers, "
                                       "k <= 3); disc: [rings]; circle: [edges >= 3]; "
                                       "cylinder: [cells along c, cells around >= 3]; sphere: "
                                       "[icosphere level 0..8]", (), check=non_negative,
        allowed="integers >= 0", shown="-"),
    Key("mesh", "a string", "a reference mesh of meshes/ fitting the domain: interval, "
                            "rectangle, box (box of 1, 2, 3 parameters), disc, circle, cylinder, "
                            "sphere", None, shown="-"),
    Key("level", "an integer", "refinement level of the reference mesh (shipped: 0-3; box 0-2)",
        0, check=non_negative, allowed="an integer >= 0"),
    Key("mesh_file", "a string", "an XDMF (.xdmf) or gmsh (.msh) mesh of the domain, relative "
                                 "to the config", None, shown="-"),
    Key("scheme", "a string", "finite volumes (any beta), upwind DG (beta = inf only) or "
        "lagrangian: the Gauss nodes of rho_0 on every cell moved along the characteristics "
        "(beta = inf only; for long times, where the density concentrates)", "fv",
        choices=SCHEMES),
    Key("degree", "an integer", "DG polynomial degree (dg: 1 or 2); lagrangian: degree + 1 "
        "Gauss nodes per cell axis (1..8)", 1,
        check=lambda v: isinstance(v, int) and 1 <= v <= 8, allowed="1 or 2 (dg), 1..8 "
        "(lagrangian)"),
    Key("integrator", "a string", "SSP Runge-Kutta; or error-controlled, positive and "
        "conservative at any step (fv only): lagged backward Euler (implicit, order 1) or "
        "modified Patankar-Runge-Kutta (mprk22, order 2); dopri5 (lagrangian only, and "
        "lagrangian needs it): Dormand-Prince 5(4) on the node positions", "ssprk2",
        choices=INTEGRATORS),
    Key("cfl", "a number", "fraction of the positivity-preserving explicit step", 0.5,
        check=lambda c: 0 < c <= 1, allowed="0 < cfl <= 1"),
    Key("time_tolerance", 'a number or "auto"', "local error per implicit/mprk22 step; "
        '"auto": follows the mesh (implicit 3e-5 h^4, mprk22 0.2 h^2, h the largest centroid '
        "distance) so that the time error stays below a tenth of the space error "
        "(docs/verification-time.md); dopri5: RMS local error of the node positions per "
        'step ("auto": 1e-10)', "auto",
        check=lambda v: v == "auto" or finite_positive(v),
        allowed='a finite number > 0 or "auto"'),
    Key("stationary_tolerance", "a number", "stop once int |grad Psi|^2 rho falls below it", 0.0,
        check=lambda v: finite(v) and v >= 0, allowed="a number >= 0 (0: run to t_final)"),
    Key("max_outflow", "a number", "the largest mass the no-flux wall may hold back", 1e-6,
        check=positive, allowed="a number > 0"),
    Key("outputs", "an integer", "equal output intervals on [0, t_final]", 50, check=positive,
        allowed="an integer >= 1"),
    Key("snapshots", "an integer", "outputs that also write the density to rho.bp", 6,
        check=non_negative, allowed="an integer >= 0"),
    Key("max_step", "a number", "the largest time step", math.inf, check=positive,
        allowed="a number > 0"),
    Key("compress_rtol", "a number", "truncated-SVD unit matrix to this relative error", None,
        check=lambda v: 0 < v < 1, allowed="a number in (0, 1)", shown="none (dense)"),
    _checkpoint_every("seconds of wall time between checkpoints"),
    Key("petsc", "a table", "[pde.petsc]: PETSc options of the implicit solve", None,
        shown="MUMPS LU"),
))

PETSC = Section("pde.petsc", "PETSc options of the implicit solve without the prefix, e.g. "
                             'ksp_type = "gmres", pc_type = "bjacobi", ksp_rtol = 1e-13 (any '
                             "key; strings, numbers or booleans).", free=True)

PARTICLES = Section("particles", "The finite-n particle ensembles (networks of n units "
                                 "trained by gradient descent).", (
    Key("n", "a list of integers", "the widths", check=positive, allowed="positive integers"),
    Key("seeds", "an integer", "seeds per width", 4, check=positive, allowed="an integer >= 1"),
    Key("dt", "a number", "time step (rk4, euler)", 0.01, check=finite_positive,
        allowed="a finite number > 0"),
    Key("integrator", "a string", 'fixed steps (rk4, euler) or Dormand-Prince 5(4); noisy '
                                  '(finite beta): "euler"', "rk4", choices=PARTICLE_INTEGRATORS),
    Key("entropy", "an integer", "root entropy of the seeds", 0, check=non_negative,
        allowed="an integer >= 0"),
    Key("batch", "an integer", "online SGD: fresh data samples per step (euler or rk4; not "
                               'with target kind "data")', None, check=positive,
        allowed="an integer >= 1", shown="none (full data)"),
    Key("rtol", "a number", "tolerance of the adaptive integrator", 1e-6,
        check=lambda v: 0 < v < 1, allowed="a number in (0, 1)"),
    _checkpoint_every("seconds of wall time between checkpoints of a task"),
))

def _powers_of_two(v: Any) -> bool:
    v = _list(v)
    return (len(v) >= 2 and all(int(x) == x and x >= 2 and int(x) & (int(x) - 1) == 0
                                for x in v) and all(a < b for a, b in itertools.pairwise(v)))


LIMIT = Section("limit", "The RQMC reference of the noiseless limit (`meanfield limit`): "
                         "the characteristics from scrambled Sobol' nodes of rho_0, "
                         "over independent scrambles, with 90% intervals of E and f_t "
                         "(solver/reference/rqmc.py).", (
    Key("nodes", "a list of integers", "node counts of the ladder; the error is the last "
                                       "level's half-width plus its shift from the one before",
        [4096, 16384], check=_powers_of_two,
        allowed="at least two increasing powers of 2 (Sobol' balance)"),
    Key("scrambles", "an integer", "independent scrambles per level", 8,
        check=lambda v: v >= 2, allowed="an integer >= 2 (an interval needs two)"),
    Key("rtol", "a number", "DOP853 tolerance of the node flow", 1e-9,
        check=lambda v: 0 < v < 1, allowed="a number in (0, 1)"),
    Key("outputs", "an integer", "equal output intervals on [0, t_final]", 20, check=positive,
        allowed="an integer >= 1"),
))

#: The sections of a config: name -> (its Section or {kind: Section}, required, default kind).
SECTIONS: dict[str, tuple[Section | dict[str, Section], bool, str | None]] = {
    "problem": (PROBLEM, True, None),
    "unit": (UNIT, True, None),
    "data": (DATA, True, None),
    "target": (TARGET, True, None),
    "domain": (DOMAIN, True, "box"),
    "initial": (INITIAL, True, None),
    "pde": (PDE, False, None),
    "particles": (PARTICLES, False, None),
    "limit": (LIMIT, False, None),
}


def all_sections() -> list[Section]:
    """Every Section, in the order of the reference."""
    out = [TOP]
    for spec, _, _ in SECTIONS.values():
        out += list(spec.values()) if isinstance(spec, dict) else [spec]
        if spec is PDE:
            out.append(PETSC)
    return out
