"""What `meanfield check` accepts starts: every example and every config of a matrix
(each unit, data, target, domain and initial kind x each scheme, integrator, mesh source,
noise and particle integrator) that validation accepts builds its problem, takes its first
PDE step and its first particle step. The ones validation refuses are refused for a
documented cross-section rule (dg with noise, SGD on tabulated data), nothing else."""

import copy
import re
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from solver.config import ConfigError, parse

pytest.importorskip("dolfinx", reason="needs DOLFINx")
from mpi4py import MPI

from particle_check.ensemble import run_ensemble
from solver.io import RunDirectory
from solver.pde.solve import solve

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
PI = 3.141592653589793

#: (unit, data, target, domain, initial, cells, reference mesh): every kind of each section.
SETUPS = {
    "circle_rbf-cylinder": ({"kind": "circle_rbf", "width": 0.5},
                            {"kind": "circle_lattice", "points": 16},
                            {"kind": "teacher", "theta": [[2.0, -1.0], [-1.5, 0.3]]},
                            {"kind": "cylinder", "lower": -5.0, "upper": 5.0},
                            {"kind": "gaussian", "mean": [0.0, 0.0], "std": [0.5, 0.6]},
                            [3, 6], "cylinder"),
    "linear-legendre-box2-uniform": ({"kind": "linear", "dim": 2},
                                     {"kind": "gauss_legendre", "lower": [-1.0, -1.0],
                                      "upper": [1.0, 1.0], "n": 3},
                                     {"kind": "expression", "expression": "x0 - 0.5 * x1"},
                                     {"kind": "box", "lower": [-2.0, -2.0], "upper": [2.0, 2.0]},
                                     {"kind": "uniform", "lower": [-1.0, -1.0],
                                      "upper": [1.0, 1.0]},
                                     [4, 4], "rectangle"),
    "rbf-hermite-box2-mixture": ({"kind": "rbf", "dim": 1, "width": 0.7},
                                 {"kind": "gauss_hermite", "mean": [0.0], "std": 1.0, "n": 6},
                                 {"kind": "expression", "expression": "sin(x)"},
                                 {"kind": "box", "lower": [-3.0, -3.0], "upper": [3.0, 3.0]},
                                 {"kind": "mixture", "means": [[0.5, -1.0], [-0.5, 1.0]],
                                  "stds": [[0.4, 0.4], [0.5, 0.5]], "weights": [0.3, 0.7]},
                                 [4, 4], "rectangle"),
    "circle_bump-circle": ({"kind": "circle_bump", "width": 0.6, "amplitude": 2.0},
                           {"kind": "circle_lattice", "points": 12, "offset": 0.1},
                           {"kind": "teacher", "theta": [[0.5]], "coefficients": [1.0]},
                           {"kind": "circle"},
                           {"kind": "von_mises", "mean": [0.0], "kappa": 1.0},
                           [12], "circle"),
    "neuron-box3": ({"kind": "neuron", "dim": 1, "activation": "tanh"},
                    {"kind": "gauss_legendre", "lower": [-2.0], "upper": [2.0], "n": 6},
                    {"kind": "expression", "expression": "sin(2 * x)"},
                    {"kind": "box", "lower": [-3.0] * 3, "upper": [3.0] * 3},
                    {"kind": "gaussian", "mean": [0.0] * 3, "std": [0.5] * 3},
                    [2, 2, 2], "box"),
    "neuron-fixed-c-mc-box-disc": ({"kind": "neuron", "dim": 1, "activation": "softplus",
                                    "output_weight": 1.0},
                                   {"kind": "monte_carlo", "law": "uniform_box", "points": 12,
                                    "lower": [-1.0], "upper": [1.0], "seed": 3},
                                   {"kind": "teacher", "theta": [[0.5, 0.1]]},
                                   {"kind": "disc", "center": [0.0, 0.0], "radius": 3.0},
                                   {"kind": "gaussian", "mean": [0.0, 0.0], "std": [0.5, 0.5]},
                                   [2], "disc"),
    "fixed_output-sphere-vmf": ({"kind": "fixed_output_neuron", "dim": 3, "activation": "relu"},
                                {"kind": "sphere_product", "n": 3},
                                {"kind": "expression", "expression": "x0 * x1 + 0.2"},
                                {"kind": "sphere"},
                                {"kind": "von_mises_fisher", "mean_direction": [0.0, 0.0, 1.0],
                                 "kappa": 2.0},
                                [0], "sphere"),
    "fixed_output-mc-sphere-uniform": ({"kind": "fixed_output_neuron", "dim": 3,
                                        "activation": "sigmoid"},
                                       {"kind": "monte_carlo", "law": "sphere", "points": 12,
                                        "dim": 3},
                                       {"kind": "expression", "expression": "x2"},
                                       {"kind": "sphere"}, {"kind": "uniform_sphere"},
                                       [1], "sphere"),
    "fixed_output-bias-mc-gaussian": ({"kind": "fixed_output_neuron", "dim": 1,
                                       "activation": "mmn_piecewise_linear", "bias": True},
                                      {"kind": "monte_carlo", "law": "gaussian", "points": 12,
                                       "mean": [0.0], "std": 1.0},
                                      {"kind": "expression", "expression": "abs(x)"},
                                      {"kind": "box", "lower": [-3.0, -3.0],
                                       "upper": [3.0, 3.0]},
                                      {"kind": "gaussian", "mean": [0.0, 0.0],
                                       "std": [0.5, 0.5]},
                                      [4, 4], "rectangle"),
    "reduced_ridge-box2-lifted": ({"kind": "reduced_ridge", "dim": 6, "k": 1,
                                   "activation": "tanh", "output_weight": 1.0},
                                  {"kind": "reduced", "nodes_u": 4, "nodes_r": 3},
                                  {"kind": "expression", "expression": "tanh(x0)"},
                                  {"kind": "box", "lower": [-2.0, 0.0], "upper": [2.0, 2.5]},
                                  {"kind": "lifted_gaussian", "w_std": 0.3},
                                  [4, 4], "rectangle"),
    "linear-file-data-box1": ({"kind": "linear", "dim": 1},
                              {"kind": "file", "path": "data.csv"}, {"kind": "data"},
                              {"kind": "box", "lower": [-3.0], "upper": [3.0]},
                              {"kind": "gaussian", "mean": [0.0], "std": [0.5]},
                              [6], "interval"),
}

#: (problem, pde, particles) overrides: every scheme/integrator/mesh source/noise/particle
#: integrator (and combinations validation must refuse).
NUMERICS = {
    "fv-euler-rk4": ({}, {"integrator": "euler"}, {}),
    "fv-ssprk2-adaptive": ({}, {"integrator": "ssprk2"}, {"integrator": "adaptive"}),
    "fv-ssprk3-sgd-euler": ({}, {"integrator": "ssprk3"}, {"integrator": "euler", "batch": 4}),
    "fv-implicit-sgd-rk4": ({}, {"integrator": "implicit", "petsc": {"ksp_type": "preonly"}},
                            {"batch": 4}),
    "dg1-euler": ({}, {"scheme": "dg", "integrator": "euler"}, {}),
    "dg1-ssprk2": ({}, {"scheme": "dg", "degree": 1}, {"integrator": "euler"}),
    "dg2-ssprk3": ({}, {"scheme": "dg", "degree": 2, "integrator": "ssprk3"}, {}),
    "noisy-fv-ssprk2": ({"beta": 20.0}, {}, {"integrator": "euler"}),
    "noisy-fv-implicit-sgd": ({"beta": 20.0, "lambda": 0.1}, {"integrator": "implicit"},
                              {"integrator": "euler", "batch": 4}),
    "noisy-dg": ({"beta": 20.0}, {"scheme": "dg"}, {"integrator": "euler"}),
    "reference-mesh-fv": ({}, {"mesh": "<mesh>", "compress_rtol": 1e-8}, {}),
    "reference-mesh-dg2": ({}, {"mesh": "<mesh>", "scheme": "dg", "degree": 2}, {}),
    "mesh-file-fv": ({}, {"mesh_file": "<mesh_file>", "max_step": 1e-7}, {}),
}

#: What validation may refuse in this matrix: the cross-section rules, nothing else.
REFUSED = re.compile(r'^(pde\.scheme: "dg" is for noiseless dynamics|particles\.batch: online '
                     r'SGD needs y at fresh samples|pde\.mesh_file: .* spans .* a mesh file '
                     r"is used as it is|problem\.beta: .* unit 'reduced_ridge' is for "
                     r"noiseless dynamics)")


def _raw(setup: str, numerics: str) -> dict:
    unit, data, target, domain, initial, cells, mesh = copy.deepcopy(SETUPS[setup])
    problem, pde, particles = copy.deepcopy(NUMERICS[numerics])
    pde = {"cells": cells, "outputs": 1, "snapshots": 0, **pde}
    if pde.get("mesh") == "<mesh>":
        del pde["cells"]
        pde["mesh"] = mesh
    if pde.get("mesh_file") == "<mesh_file>":
        del pde["cells"]
        pde["mesh_file"] = str(ROOT / "meshes" / f"{mesh}_0.xdmf")
    return {"name": f"{setup}-{numerics}",
            "problem": {"t_final": 1e-6, **problem},  # one PDE step: t_final < the CFL step
            "unit": unit, "data": data, "target": target, "domain": domain, "initial": initial,
            "pde": pde, "particles": {"n": [4], "seeds": 1, "dt": 1e-6, **particles}}


def starts(cfg, t_step: float | None = None) -> None:
    """Build the problem's scheme and take its first PDE step; take one particle step."""
    comm = MPI.COMM_SELF
    problem = cfg.problem
    if t_step is not None:  # examples: a copy of the problem over one step
        problem = replace(problem, t_final=t_step)
    pde = replace(cfg.pde, outputs=1, snapshots=0, progress=False)
    result = solve(problem, pde, None, comm)
    assert result.times[-1] == problem.t_final and np.all(np.isfinite(result.f))
    assert result.steps["step"][-1] >= 1 and result.cells > 0
    particles = replace(cfg.particles, n=(4,), seeds=1)
    runs = run_ensemble(problem, particles, np.array([0.0, particles.dt]), None, comm)
    run = runs[(4, 0)]
    assert np.all(np.isfinite(run.theta))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data")
    (path / "data.csv").write_text("x0,y\n-1.0,0.5\n0.0,1.0\n0.5,-0.5\n1.5,0.2\n")
    return path


def test_the_matrix_covers_every_kind():
    from solver.config_schema import DATA, DOMAIN, INITIAL, TARGET, UNIT

    raws = [_raw(s, "fv-euler-rk4") for s in SETUPS]
    for section, kinds in (("unit", UNIT), ("data", DATA), ("target", TARGET),
                           ("domain", DOMAIN), ("initial", INITIAL)):
        covered = {raw[section]["kind"] for raw in raws}
        assert covered | {"checkpoint"} >= set(kinds), (section, set(kinds) - covered)
    laws = {raw["data"].get("law") for raw in raws}
    assert laws >= {"uniform_box", "gaussian", "sphere"}


@pytest.mark.parametrize("setup", list(SETUPS))
def test_every_accepted_config_of_the_matrix_starts(setup, data_dir):
    accepted, start = 0, time.perf_counter()
    for numerics in NUMERICS:
        raw = _raw(setup, numerics)
        try:
            cfg = parse(raw, data_dir)
        except ConfigError as err:
            assert all(REFUSED.match(line.strip()) for line in str(err).splitlines()
                       if not line.endswith("problems:")), (numerics, str(err))
            continue
        accepted += 1
        try:
            starts(cfg)
        except Exception as err:  # the config that check accepted and a run refused
            raise AssertionError(f"{setup} x {numerics}: check accepts it, the run "
                                 f"fails: {type(err).__name__}: {err}") from err
    assert accepted >= len(NUMERICS) - 5, accepted  # refused: by REFUSED rules only
    print(f"{setup}: {accepted} configs started in {time.perf_counter() - start:.1f} s")


def test_a_checkpoint_initial_density_starts(tmp_path):
    """initial kind = "checkpoint": the density of an earlier run on the same mesh."""
    raw = _raw("circle_rbf-cylinder", "fv-ssprk2-adaptive")
    first = parse(raw, tmp_path)
    solve(first.problem, replace(first.pde, progress=False),
          RunDirectory(tmp_path / "first", writer=True), MPI.COMM_SELF)
    raw["initial"] = {"kind": "checkpoint", "file": "first/checkpoint.h5"}
    starts(parse(raw, tmp_path))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_starts(example):
    cfg = parse(tomllib.loads(example.read_text()), example.parent)
    starts(cfg, t_step=1e-6)
