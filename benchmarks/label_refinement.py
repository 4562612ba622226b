"""Adaptive refinement of the Lagrangian labels on the flagship: does it certify E(50)?

The flagship limit (circle-RBF on the cylinder [-5, 5] x S^1, benchmarks.problems) along its
characteristics, from a quadtree of label panels of rho_0 in the chart (c, z): 3 x 3 Gauss
nodes per panel, weights rho_0 |panel| w_q, moved by Dormand-Prince 5(4) (RMS position
tolerance 1e-10). After each pass the panels whose image at t_final is wider than ``--size``
(the largest distance between two of their nodes, z unwrapped; with ``--stretch``, that
distance over the panel's own node spread) and whose weight exceeds 1e-12 (1e-14 with
``--stretch``) are split into four and the flow is run again from t = 0. E(10) and
E(t_final) per pass; the pass-to-pass difference is the estimate refinement would certify if
it converged.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.label_refinement
          [--t-final 50] [--panels 16] [--size 0.25 | --stretch 2] [--passes 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.problems import circle_rbf
from solver.model import functionals
from solver.model.domain import Cylinder
from solver.model.ode import dp54_trial
from solver.reference.lagrangian import velocity

TOLERANCE = 1e-10
MIN_WEIGHT = 1e-12
_G, _GW = np.polynomial.legendre.leggauss(3)
REF = np.array([[a, b] for a in (_G + 1) / 2 for b in (_G + 1) / 2])  # nodes in [0, 1]^2
REF_W = np.array([a * b for a in _GW / 2 for b in _GW / 2])


def panel_nodes(problem, panels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (P, 9, 2) and weights (P, 9) of panels (lower c, lower z, width c, width z)."""
    theta = panels[:, None, :2] + REF[None] * panels[:, None, 2:]
    area = panels[:, 2] * panels[:, 3]
    W = problem.initial.pdf(theta.reshape(-1, 2)).reshape(len(panels), -1) * REF_W * area[:, None]
    return theta, W


def flow(problem, panels: np.ndarray, times: list[float]) -> tuple[dict, np.ndarray, np.ndarray,
                                                                    int]:
    """E at ``times``, the final nodes (P, 9, 2), the weights (P, 9), the steps."""
    theta, W = panel_nodes(problem, panels)
    shape, w = theta.shape, (W / W.sum()).reshape(-1)

    def rhs(y: np.ndarray) -> np.ndarray:
        return velocity(problem, problem.domain.retract(y.reshape(-1, 2)), w)[0].reshape(-1)

    y, t, h, steps, energy = theta.reshape(-1).copy(), 0.0, 1e-3, 0, {}
    for target in times:
        while t < target - 1e-12:
            h = min(h, target - t)
            new, err, _ = dp54_trial(rhs, y, h)
            norm = np.sqrt(np.mean(err**2)) / TOLERANCE
            if norm <= 1:
                t, y, steps = (target if h == target - t else t + h), new, steps + 1
            h *= min(5.0, max(0.2, 0.9 * norm**-0.2 if norm > 0 else 5.0))
        f = functionals.network_output(problem, problem.domain.retract(y.reshape(-1, 2)), w)
        energy[target] = functionals.loss(problem, f)
    return energy, y.reshape(shape), W, steps


def image_sizes(final: np.ndarray) -> np.ndarray:
    """The largest distance between two nodes of each panel's image (z unwrapped)."""
    x = final.copy()
    x[..., 1] = x[:, :1, 1] + (x[..., 1] - x[:, :1, 1] + np.pi) % (2 * np.pi) - np.pi
    return np.max(np.linalg.norm(x[:, :, None] - x[:, None], axis=-1), axis=(1, 2))


def split(panels: np.ndarray) -> np.ndarray:
    """Each panel's four children."""
    half = panels[:, 2:] / 2
    return np.vstack([np.column_stack([panels[:, :2] + half * [i, j], half])
                      for i in (0, 1) for j in (0, 1)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t-final", type=float, default=50.0)
    parser.add_argument("--panels", type=int, default=16)
    parser.add_argument("--size", type=float, default=0.25)
    parser.add_argument("--stretch", type=float, default=None,
                        help="split where image width / own node spread exceeds this instead")
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    problem = circle_rbf(t_final=args.t_final, domain=Cylinder(-5.0, 5.0))
    n = args.panels
    c, z = np.meshgrid(np.linspace(-5, 5, n + 1)[:-1], np.linspace(-np.pi, np.pi, n + 1)[:-1],
                       indexing="ij")
    panels = np.column_stack([c.ravel(), z.ravel(), np.full(n * n, 10 / n),
                              np.full(n * n, 2 * np.pi / n)])
    times = [10.0, args.t_final]
    print(f"{'pass':>4} {'nodes':>7} {'steps':>6} {'wall s':>7} {'E(10)':>16} "
          f"{'E(' + format(args.t_final, 'g') + ')':>16} {'split':>6} {'widest':>7}")
    for step in range(args.passes):
        start = time.perf_counter()
        energy, final, W, steps = flow(problem, panels, times)
        sizes = image_sizes(final)
        if args.stretch is None:
            flag = (sizes > args.size) & (W.sum(axis=1) > MIN_WEIGHT)
        else:  # the node spread of a panel is its diagonal times (g_3 - g_1)
            spread = np.hypot(panels[:, 2], panels[:, 3]) * (_G[-1] - _G[0]) / 2
            flag = (sizes / spread > args.stretch) & (W.sum(axis=1) > 1e-14)
        print(f"{step:>4} {W.size:>7} {steps:>6} {time.perf_counter() - start:7.1f} "
              f"{energy[10.0]:16.9e} {energy[args.t_final]:16.9e} {int(flag.sum()):>6} "
              f"{sizes.max():7.2f}", flush=True)
        if not flag.any():
            break
        panels = np.vstack([panels[~flag], split(panels[flag])])


if __name__ == "__main__":
    main()
