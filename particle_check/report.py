"""Figures and a summary of a PDE-vs-particles comparison."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from particle_check.compare import Comparison
from solver.io import RunDirectory


def write_report(cmp: Comparison, run_dir: RunDirectory, title: str) -> dict:
    """comparison.csv and comparison.png (loss curves, gaps, n gap^2 vs MC); returns a summary."""
    alpha = cmp.exponent()
    run_dir.write_csv("comparison.csv", cmp.header, cmp.rows())
    picks = sorted({0, len(cmp.times) // 4, len(cmp.times) // 2, len(cmp.times) - 1})
    summary = {
        "title": title,
        "seeds": cmp.seeds,
        "n": cmp.n.tolist(),
        "exponent_fit": {f"t={cmp.times[j]:.4g}": float(alpha[j]) for j in picks},
        "gap": {f"t={cmp.times[j]:.4g}": dict(zip(map(str, cmp.n), cmp.gap[:, j], strict=True))
                for j in picks},
        "pde_loss_final": float(cmp.pde_loss[-1]),
    }
    if not run_dir.writer:
        return summary
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.semilogy(cmp.times, cmp.pde_loss, "k-", lw=2, label="PDE")
    for i, n in enumerate(cmp.n):
        line, = ax.semilogy(cmp.times, cmp.loss_mean[i], label=f"n={n}")
        lo = np.maximum(cmp.loss_mean[i] - cmp.loss_std[i], cmp.loss_mean[i] * 1e-3)
        ax.fill_between(cmp.times, lo, cmp.loss_mean[i] + cmp.loss_std[i],
                        color=line.get_color(), alpha=0.2)
    ax.set(xlabel="t", ylabel="loss", title="loss: PDE vs particles (mean ± sd)")
    ax.legend(fontsize=8)
    ax = axes[1]
    for j in picks:
        ax.loglog(cmp.n, cmp.gap[:, j], "o-", label=f"t={cmp.times[j]:.3g}, α≈{alpha[j]:.2f}")
    ref = cmp.gap[0, 0] * np.sqrt(cmp.n[0] / cmp.n)
    ax.loglog(cmp.n, ref, "k--", lw=1, label="n^-1/2")
    ax.set(xlabel="n", ylabel="gap ‖f_n − f_t‖", title="gap vs width")
    ax.legend(fontsize=8)
    ax = axes[2]
    for i, n in enumerate(cmp.n):
        ax.plot(cmp.times, n * cmp.gap[i] ** 2, label=f"n={n}")
    ax.plot(cmp.times, cmp.pde_mc, "k-", lw=2, label="MC(t) from PDE")
    ax.set(xlabel="t", ylabel="n · gap²", title="n·gap² vs resampling variance")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    run_dir.write_bytes("comparison.png", buf.getvalue())
    return summary
