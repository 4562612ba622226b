"""The reference of every config key: one table that `meanfield check --explain` prints and
that writes docs/config.md. The tests read configs of every kind and check that the keys the
reader takes in each section are exactly the keys documented here, so the two cannot drift.

A topic is a section (``problem``, ``pde``, ``particles``, ``pde.petsc``, the top level
``config``) or a section's kind (``unit.neuron``, ``data.gauss_legendre``, ...). Each key:
(type, default or "required", meaning).
"""

from __future__ import annotations

from solver.errors import ConfigError

REQ = "required"

#: topic -> (one-line description, {key: (type, default, meaning)})
TOPICS: dict[str, tuple[str, dict[str, tuple[str, str, str]]]] = {
    "config": ("Top level of a config file.", {
        "name": ("string of letters, digits, - _ .", '"run"',
                 "run name (also the default run directory runs/<name>)"),
        "output": ("string", '"runs/<name>"', "run directory"),
    }),
    "problem": ("The dynamics: d rho/dt = div(rho grad Psi) + (1/beta) Laplace rho.", {
        "t_final": ("number > 0", REQ, "time horizon of the gradient flow"),
        "beta": ("number > 0 or inf", "inf", "inverse temperature (inf: noiseless GD)"),
        "lambda": ("number >= 0", "0", "weight of the confinement lambda |theta|^2/2"),
    }),
    "unit.linear": ("s(x; theta) = theta . x; theta = (theta_1..theta_d).", {
        "kind": ('"linear"', REQ, ""),
        "dim": ("integer >= 1", REQ, "d, the data dimension (= parameter dimension)"),
    }),
    "unit.rbf": ("s(x; c, z) = c exp(-|x - z|^2 / (2 width^2)); theta = (c, z_1..z_d).", {
        "kind": ('"rbf"', REQ, ""),
        "dim": ("integer >= 1", REQ, "d, the data dimension (k = d + 1 parameters)"),
        "width": ("number > 0", REQ, "width of the bump"),
    }),
    "unit.circle_rbf": ("s(x; c, z) = c exp((cos(x - z) - 1) / width^2) for angles x, z; "
                        "theta = (c, z).", {
        "kind": ('"circle_rbf"', REQ, ""),
        "width": ("number > 0", REQ, "angular width"),
    }),
    "unit.circle_bump": ("s(x; z) = amplitude exp((cos(x - z) - 1) / width^2); theta = (z,).", {
        "kind": ('"circle_bump"', REQ, ""),
        "width": ("number > 0", REQ, "angular width"),
        "amplitude": ("finite number != 0", "1", "the fixed output weight"),
    }),
    "unit.neuron": ("s(x; c, a, b) = c sigma(a . x + b); theta = (c, a_1..a_d, b), or "
                    "(a_1..a_d, b) with a fixed output_weight (for d = 1: (c, a, b)).", {
        "kind": ('"neuron"', REQ, ""),
        "dim": ("integer >= 1", REQ, "d, the data dimension (k = d + 2, or d + 1)"),
        "activation": ("string", REQ, "sigma: tanh, relu, sigmoid, softplus, "
                                      "mmn_piecewise_linear"),
        "output_weight": ("finite number", "free", "fix c to this value (theta = (a, b))"),
    }),
    "unit.fixed_output_neuron": ("s(x; w) = sigma(w . x) (+ b with bias); theta = (w_1..w_d"
                                 "[, b]).", {
        "kind": ('"fixed_output_neuron"', REQ, ""),
        "dim": ("integer >= 1", REQ, "d, the data dimension"),
        "activation": ("string", REQ, "sigma: tanh, relu, sigmoid, softplus, "
                                      "mmn_piecewise_linear"),
        "bias": ("boolean", "false", "add a bias b to theta"),
    }),
    "data.gauss_legendre": ("Tensor Gauss-Legendre rule of the uniform law on a box.", {
        "kind": ('"gauss_legendre"', REQ, ""),
        "lower": ("list of d numbers", REQ, "lower corner of the box (d = its length)"),
        "upper": ("list of d numbers", REQ, "upper corner"),
        "n": ("integer >= 1", REQ, "nodes per axis (M = n^d points)"),
    }),
    "data.gauss_hermite": ("Tensor Gauss-Hermite rule of the Gaussian N(mean, std^2 I).", {
        "kind": ('"gauss_hermite"', REQ, ""),
        "mean": ("list of d numbers", REQ, "mean (d = its length)"),
        "std": ("number > 0", REQ, "one standard deviation for every axis (a scalar)"),
        "n": ("integer >= 1", REQ, "nodes per axis (M = n^d points)"),
    }),
    "data.circle_lattice": ("M equally spaced angles on the circle (x is an angle, d = 1).", {
        "kind": ('"circle_lattice"', REQ, ""),
        "points": ("integer >= 1", REQ, "M, the number of angles"),
        "offset": ("number", "0", "rotation of the lattice"),
    }),
    "data.sphere_product": ("Product rule on the unit sphere S^2 (d = 3).", {
        "kind": ('"sphere_product"', REQ, ""),
        "n": ("integer >= 1", REQ, "nodes per angle"),
    }),
    "data.monte_carlo": ("M independent samples of a law (weights 1/M).", {
        "kind": ('"monte_carlo"', REQ, ""),
        "law": ('"uniform_box" | "gaussian" | "sphere"', REQ, "the law sampled"),
        "points": ("integer >= 1", REQ, "M, the number of samples"),
        "seed": ("integer", "0", "seed of the draw"),
        "lower": ("list of d numbers", "uniform_box: required", "box corner (uniform_box)"),
        "upper": ("list of d numbers", "uniform_box: required", "box corner (uniform_box)"),
        "mean": ("list of d numbers", "gaussian: required", "mean (gaussian)"),
        "std": ("number > 0", "gaussian: required", "standard deviation (gaussian)"),
        "dim": ("integer >= 1", "sphere: required", "d, uniform on S^(d-1) (sphere)"),
    }),
    "data.file": ("Data points read from .npz (arrays x, optional w, y) or .csv (header "
                  "x0.., w, y).", {
        "kind": ('"file"', REQ, ""),
        "path": ("string", REQ, "the file, relative to the config"),
    }),
    "target.expression": ("y(x) from an expression in x0, x1, .. (x = x0 when d = 1; r = |x|)"
                          " with + - * / ** %, comparisons, numbers and sin cos tan exp log "
                          "sqrt abs tanh sinh cosh arctan arcsin arccos sign maximum minimum "
                          "where i0, pi, e.", {
        "kind": ('"expression"', REQ, ""),
        "expression": ("string", REQ, 'e.g. "sin(x0) * exp(-x1**2)"; finite at every x_m'),
    }),
    "target.teacher": ("y(x) = sum_j a_j s(x; theta_j), a teacher network of the same unit.", {
        "kind": ('"teacher"', REQ, ""),
        "theta": ("list of lists of k numbers", REQ, "the teacher units' parameters"),
        "coefficients": ("list of numbers", "1/(number of units)", "the a_j"),
    }),
    "target.data": ("y from the y column of a [data] kind = \"file\".", {
        "kind": ('"data"', REQ, ""),
    }),
    "domain.box": ("Box prod_i [lower_i, upper_i] of the k parameters.", {
        "kind": ('"box"', '"box"', ""),
        "lower": ("list of k numbers", REQ, "lower corner (k = the unit's parameters)"),
        "upper": ("list of k numbers", REQ, "upper corner"),
    }),
    "domain.disc": ("Disc of 2 parameters.", {
        "kind": ('"disc"', REQ, ""),
        "center": ("list of 2 numbers", REQ, "centre"),
        "radius": ("number > 0", REQ, "radius"),
    }),
    "domain.circle": ("One angle in (-pi, pi] (units with theta = (z,)).", {
        "kind": ('"circle"', REQ, ""),
    }),
    "domain.cylinder": ("c in [lower, upper] times an angle z (units with theta = (c, z)).", {
        "kind": ('"cylinder"', REQ, ""),
        "lower": ("number", REQ, "lower bound of c"),
        "upper": ("number", REQ, "upper bound of c"),
    }),
    "domain.sphere": ("Unit vectors theta on S^(k-1).", {
        "kind": ('"sphere"', REQ, ""),
    }),
    "initial.gaussian": ("rho_0 = N(mean, diag(std^2)), restricted to the domain.", {
        "kind": ('"gaussian"', REQ, ""),
        "mean": ("list of k numbers", REQ, "mean"),
        "std": ("list of k numbers > 0", REQ, "standard deviation per parameter (a list)"),
    }),
    "initial.uniform": ("rho_0 uniform on a box.", {
        "kind": ('"uniform"', REQ, ""),
        "lower": ("list of k numbers", REQ, "lower corner"),
        "upper": ("list of k numbers", REQ, "upper corner"),
    }),
    "initial.mixture": ("rho_0 a mixture of Gaussians.", {
        "kind": ('"mixture"', REQ, ""),
        "means": ("list of lists of k numbers", REQ, "the means"),
        "stds": ("list of lists of k numbers > 0", REQ, "one std list per mean"),
        "weights": ("list of numbers >= 0 summing to 1", "equal", "mixture weights"),
    }),
    "initial.uniform_sphere": ("rho_0 uniform on the sphere domain.", {
        "kind": ('"uniform_sphere"', REQ, ""),
    }),
    "initial.von_mises_fisher": ("rho_0 proportional to exp(kappa mu . theta) on the sphere.", {
        "kind": ('"von_mises_fisher"', REQ, ""),
        "mean_direction": ("list of k numbers", REQ, "mu (normalised)"),
        "kappa": ("number >= 0", REQ, "concentration"),
    }),
    "initial.checkpoint": ("rho_0 the density of an earlier PDE run (same [domain] and [pde] "
                           "mesh, scheme and degree).", {
        "kind": ('"checkpoint"', REQ, ""),
        "file": ("string", REQ, "its pde/checkpoint.h5, relative to the config"),
        "field": ("string", "the final density", 'e.g. "snapshot2"'),
    }),
    "pde": ("The PDE solver; give exactly one of cells, mesh (+ level) or mesh_file.", {
        "cells": ("list of integers >= 1", "-", "structured mesh: box: cells per axis; disc: "
                                                "rings; circle: edges; cylinder: [c, z]; "
                                                "sphere: [icosphere level]"),
        "mesh": ("string", "-", "a reference mesh of meshes/ (interval, rectangle, box, disc, "
                                "circle, cylinder, sphere)"),
        "level": ("integer >= 0", "0", "refinement level of the reference mesh"),
        "mesh_file": ("string", "-", "an XDMF or gmsh .msh file, relative to the config"),
        "scheme": ('"fv" | "dg"', '"fv"', "finite volumes (any beta) or upwind DG (beta = "
                                          "inf)"),
        "degree": ("1 | 2", "1", "DG degree"),
        "integrator": ('"euler" | "ssprk2" | "ssprk3" | "implicit"', '"ssprk2"',
                       "implicit: fv only"),
        "cfl": ("number in (0, 1]", "0.5", "fraction of the positivity-preserving step"),
        "time_tolerance": ("number > 0", "1e-4", "local error per implicit step"),
        "stationary_tolerance": ("number >= 0", "0", "stop once int |grad Psi|^2 rho < it "
                                                     "(0: run to t_final)"),
        "max_outflow": ("number > 0", "1e-6", "mass allowed to leave through the wall"),
        "outputs": ("integer >= 1", "50", "output times (t_final / outputs apart)"),
        "snapshots": ("integer >= 0", "6", "density snapshots written to rho.bp"),
        "max_step": ("number > 0", "inf", "largest time step"),
        "compress_rtol": ("number in (0, 1)", "none", "truncated-SVD unit matrix to this "
                                                      "relative error"),
        "checkpoint_every": ("number > 0", "600", "seconds of wall time between checkpoints "
                                                  "(inf: at the end and when pre-empted)"),
        "petsc": ("table", "MUMPS LU", "[pde.petsc]: PETSc options of the implicit solve"),
    }),
    "pde.petsc": ("PETSc options of the implicit solve without the prefix, e.g. ksp_type = "
                  '"gmres", pc_type = "bjacobi", ksp_rtol = 1e-13.', {}),
    "particles": ("The finite-n particle ensembles.", {
        "n": ("list of integers >= 1", REQ, "widths"),
        "seeds": ("integer >= 1", "4", "seeds per width"),
        "dt": ("number > 0", "0.01", "time step"),
        "integrator": ('"rk4" | "euler" | "adaptive"', '"rk4"', 'noisy (finite beta): '
                                                              '"euler"'),
        "rtol": ("number in (0, 1)", "1e-6", "tolerance of the adaptive integrator"),
        "batch": ("integer >= 1", "none", "online SGD with this many fresh samples per step "
                                          "(euler or rk4)"),
        "entropy": ("integer >= 0", "0", "root entropy of the seeds"),
        "checkpoint_every": ("number > 0", "600", "seconds between checkpoints of a task"),
    }),
}

#: A complete config of tanh neurons in d = 1 (theta = (c, a, b)), tested to validate.
NEURON_EXAMPLE = '''name = "tanh-neurons"

[problem]
t_final = 2.0

[unit]
kind = "neuron"            # s(x; c, a, b) = c tanh(a x + b), theta = (c, a, b)
dim = 1
activation = "tanh"

[data]
kind = "gauss_legendre"    # uniform law on [-2, 2], 32 nodes
lower = [-2.0]             # lists: one entry per data dimension
upper = [2.0]
n = 32

[target]
kind = "expression"
expression = "sin(2 * x)"

[domain]
kind = "box"               # one interval per parameter: c, a, b
lower = [-4.0, -4.0, -4.0]
upper = [4.0, 4.0, 4.0]

[initial]
kind = "gaussian"
mean = [0.0, 0.0, 0.0]
std = [0.5, 0.5, 0.5]      # a list, one per parameter

[pde]
cells = [12, 12, 12]       # box: cells per axis
scheme = "fv"
outputs = 20

[particles]
n = [64, 256]
seeds = 4
'''


def explain(topic: str | None = None) -> str:
    """The reference of a topic (see TOPICS), or the list of topics."""
    if not topic:
        return "topics (meanfield check --explain TOPIC):\n" + "\n".join(
            f"  {name:26s} {TOPICS[name][0][:72]}" for name in TOPICS)
    if topic not in TOPICS:
        sections = sorted({name.split(".")[0] for name in TOPICS})
        matches = [name for name in TOPICS if name.startswith(topic + ".")]
        if matches:
            return "\n\n".join(explain(name) for name in matches)
        raise ConfigError(f"--explain {topic!r}: no such topic; sections: "
                          f"{', '.join(sections)}; or a kind such as unit.neuron")
    text, keys = TOPICS[topic]
    width = max([len(k) for k in keys] + [4])
    lines = [f"[{topic.split('.')[0] if topic != 'config' else 'top level'}]"
             + (f" kind = {topic.split('.', 1)[1]!r}" if "." in topic and topic != "pde.petsc"
                else ""), f"  {text}"]
    for key, (kind, default, meaning) in keys.items():
        lines.append(f"  {key:{width}s}  {kind}; default: {default}"
                     + (f"; {meaning}" if meaning else ""))
    return "\n".join(lines)


def reference_markdown() -> str:
    """docs/config.md."""
    out = ["# Config reference", "",
           "Generated from `solver/config_reference.py` (`meanfield check --explain TOPIC` "
           "prints one topic); a test keeps this file, the table and the config reader in "
           "step. Paths are relative to the config file.", ""]
    for topic, (text, keys) in TOPICS.items():
        out += [f"## `{topic}`", "", text, ""]
        if keys:
            out += ["| key | type | default | meaning |", "|---|---|---|---|"]
            out += [f"| `{k}` | {t} | {d} | {m} |".replace("||", "| |")
                    for k, (t, d, m) in keys.items()]
            out.append("")
    out += ["## A complete example: tanh neurons", "", "```toml", NEURON_EXAMPLE.rstrip(),
            "```", ""]
    return "\n".join(out)
