"""The comparison report of a run directory: table, figures, markdown and a JSON summary.

Files written (rank 0, atomically, through RunDirectory)::

    comparison.csv   every (t, n): gap and interval, n gap^2 and interval, MC(t), CRBV flag,
                     PDE error, gap / PDE error, resolved flag, loss stats, gaps to the target
    gap_vs_n.png     gap vs n at several t, fitted slopes over resolved points (hollow: not)
    alpha.png        alpha(t) with its bootstrap band, lines at 1/2 and 1
    loss.png         PDE loss and the ensemble mean +- sd per n; loss bias L_n - L_pde
    crbv.png         n gap^2 with intervals vs MC(t), and their ratio
    comparison.png   the four panels together
    report.md        a short markdown report linking the figures
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter

from particle_check.compare import Comparison, CRBVCheck, Intervals, crbv_scope
from solver.io import RunDirectory
from solver.plots import CMAP

FIGURES = ("gap_vs_n.png", "alpha.png", "loss.png", "crbv.png", "comparison.png")
FILES = ("comparison.csv", *FIGURES, "report.md")


def table_times(times: np.ndarray, count: int = 6) -> list[int]:
    """About ``count`` output-time indices spread evenly in t, first and last included."""
    if len(times) <= count:
        return list(range(len(times)))
    targets = np.linspace(times[0], times[-1], count)
    return sorted({int(np.argmin(np.abs(times - t))) for t in targets})


def _f(x: float, fmt: str = ".3g") -> str:
    return "—" if x is None or not np.isfinite(x) else format(float(x), fmt)


def _num(x: float) -> float | None:
    """A JSON-friendly float (None for nan)."""
    return float(x) if np.isfinite(x) else None


def summarise(cmp: Comparison, boot: Intervals, crbv: CRBVCheck, picks: list[int]) -> dict:
    """The JSON-able summary: alpha table, CRBV verdict, error budget, loss and target gaps."""
    alpha, talpha = cmp.exponent(), cmp.exponent(measure="target")
    resolved = cmp.resolved
    ratio = crbv.ratio
    table = []
    for j in picks:
        table.append({
            "t": float(cmp.times[j]),
            "alpha": _num(alpha[j]), "lo": _num(boot.alpha[0][j]), "hi": _num(boot.alpha[1][j]),
            "widths_fitted": [int(n) for n in cmp.n[resolved[:, j]]],
            "alpha_target": _num(talpha[j]),
            "alpha_target_lo": _num(boot.alpha_target[0][j]),
            "alpha_target_hi": _num(boot.alpha_target[1][j]),
        })
    local = cmp.local_exponent()
    local_table = [{"t": float(cmp.times[j]), "pairs": {
        f"{cmp.n[i]}-{cmp.n[i + 1]}": {"alpha": _num(local[i, j]),
                                        "lo": _num(boot.local_alpha[0][i, j]),
                                        "hi": _num(boot.local_alpha[1][i, j])}
        for i in range(len(cmp.n) - 1)}} for j in picks]
    judged = crbv.judged & np.isfinite(ratio)
    worst = None
    if judged.any():
        i, j = np.unravel_index(np.argmax(np.where(judged, ratio, -np.inf)), ratio.shape)
        worst = {"t": float(cmp.times[j]), "n": int(cmp.n[i]), "ratio": float(ratio[i, j]),
                 "lo_ratio": _num(crbv.lo[i, j] / crbv.mc[j]) if crbv.mc[j] > 0 else None}
    gor = cmp.gap_over_error
    budget = {
        "pde_error_given": cmp.pde_error is not None,
        "no_estimate_reason": cmp.pde_error_missing or None,
        "resolve_factor": cmp.resolve_factor,
        "max_pde_error": _num(np.max(cmp.pde_error)) if cmp.pde_error is not None else None,
        "min_gap_over_pde_error": _num(np.min(gor)) if cmp.pde_error is not None else None,
        "points": int(resolved.size),
        "unresolved_points": int((~resolved).sum()),
        "unresolved_at_largest_n": int((~resolved[-1]).sum()),
    }
    summary = {
        "n": cmp.n.tolist(),
        "seeds": cmp.seeds,
        "seeds_per_width": cmp.seeds_per_width.tolist(),
        "output_times": len(cmp.times),
        "t_final": float(cmp.times[-1]),
        "level": boot.level,
        "resamples": boot.resamples,
        "alpha": table,
        "local_alpha": local_table,
        "crbv": {
            "verdict": crbv.verdict(),
            "points_judged": int(crbv.judged.sum()),
            "violations": int(crbv.violations.sum()),
            "violations_at_largest_n": int(crbv.violations[-1].sum()),
            "violations_per_n": {str(n): int(crbv.violations[i].sum())
                                 for i, n in enumerate(cmp.n)},
            "judged_per_n": {str(n): int(crbv.judged[i].sum()) for i, n in enumerate(cmp.n)},
            "max_ratio": worst,
            "ratio_t0": {str(n): _num(ratio[i, 0]) for i, n in enumerate(cmp.n)},
            "note": ("n E||f_n - f_t||^2 <= MC(t) holds as n -> infinity [CRBV]; 'consistent' "
                     "means the lower end of the bootstrap interval of n gap^2 is <= MC(t)"),
        },
        "error_budget": budget,
        "loss": {
            "pde_loss_final": float(cmp.pde_loss[-1]),
            "ensemble_loss_final": {str(n): float(cmp.loss_mean[i, -1])
                                    for i, n in enumerate(cmp.n)},
            "loss_bias_final": {str(n): float(cmp.loss_bias[i, -1]) for i, n in enumerate(cmp.n)},
            "loss_bias_sd_final": {str(n): float(cmp.loss_bias_sd[i, -1])
                                   for i, n in enumerate(cmp.n)},
        },
        "gap_final": {str(n): float(cmp.gap[i, -1]) for i, n in enumerate(cmp.n)},
        "pde_loss_final": float(cmp.pde_loss[-1]),
        "exponent_fit": {f"t={cmp.times[j]:.4g}": _num(alpha[j]) for j in picks},
    }
    tg = cmp.target_gap
    if tg is not None:
        summary["target"] = {
            "pde_target_gap_final": float(cmp.pde_target_gap[-1]),
            "target_gap_final": {str(n): float(tg[i, -1]) for i, n in enumerate(cmp.n)},
            "proxy_points": int(cmp.target_proxy.sum()),
            "alpha_target_final": _num(talpha[-1]),
        }
    return summary


# ---- figures ---------------------------------------------------------------------------

def _colors(k: int) -> list:
    return [plt.get_cmap(CMAP)(v) for v in np.linspace(0.0, 0.9, max(k, 1))]


def plot_gap_vs_n(ax, cmp: Comparison, boot: Intervals, picks: list[int]) -> None:
    alpha, resolved = cmp.exponent(), cmp.resolved
    lo, hi = boot.gap
    for color, j in zip(_colors(len(picks)), picks, strict=True):
        g, r = cmp.gap[:, j], resolved[:, j]
        err = np.abs(np.vstack([g - lo[:, j], hi[:, j] - g]))
        ax.errorbar(cmp.n, g, yerr=err, fmt="none", ecolor=color, elinewidth=0.8, capsize=2)
        ax.loglog(cmp.n[r], g[r], "o", color=color)
        ax.loglog(cmp.n[~r], g[~r], "o", mfc="none", color=color)
        label = f"t={cmp.times[j]:.3g}"
        if np.isfinite(alpha[j]):
            x = np.log(cmp.n[r])
            c = np.mean(np.log(g[r]) + alpha[j] * x)
            nn = np.geomspace(cmp.n[r].min(), cmp.n[r].max(), 20)
            label += (f": α={alpha[j]:.2f} [{_f(boot.alpha[0][j], '.2f')}, "
                      f"{_f(boot.alpha[1][j], '.2f')}]")
            ax.loglog(nn, np.exp(c) * nn ** -alpha[j], "-", color=color, lw=1.2)
        ax.plot([], [], "o-", color=color, label=label)
        if cmp.pde_error is not None and cmp.pde_error[j] > 0:
            ax.axhline(cmp.resolve_factor * cmp.pde_error[j], color=color, ls=":", lw=0.8)
    shown = cmp.gap[:, picks]
    shown = shown[shown > 0]
    if shown.size:  # keep the gaps in view: a near-zero PDE error line must not set the scale
        ax.set_ylim(shown.min() / 30, shown.max() * 3)
    ax.set(xlabel="n", ylabel="gap = RMS ‖f_n − f_t‖", title="gap vs width "
           f"(hollow: gap < {cmp.resolve_factor:g}× PDE error, dotted)")
    ax.set_xticks(cmp.n, [str(n) for n in cmp.n])  # the widths, no crowded minor labels
    ax.xaxis.set_minor_formatter(NullFormatter())
    _legend(ax)


def plot_alpha(ax, cmp: Comparison, boot: Intervals) -> None:
    alpha = cmp.exponent()
    ax.plot(cmp.times, alpha, "C0.-", label="α(t), gap to the PDE")
    ax.fill_between(cmp.times, boot.alpha[0], boot.alpha[1], color="C0", alpha=0.25,
                    label=f"{100 * boot.level:.0f}% bootstrap band")
    talpha = cmp.exponent(measure="target")
    if np.isfinite(talpha).any():
        ax.plot(cmp.times, talpha, "C3.--", label="α(t), gap to the target")
        ax.fill_between(cmp.times, boot.alpha_target[0], boot.alpha_target[1], color="C3",
                        alpha=0.15)
    local = cmp.local_exponent()
    if len(cmp.n) > 2:
        for color, (i, n) in zip(_colors(len(cmp.n) - 1), enumerate(cmp.n[:-1]), strict=True):
            ax.plot(cmp.times, local[i], color=color, lw=0.8, ls="-.",
                    label=f"local α, n = {n}-{cmp.n[i + 1]}")
    ax.axhline(0.5, color="k", ls=":", lw=1)
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.set(xlabel="t", ylabel="α in gap ~ n^-α", title="fitted exponent α(t)")
    _legend(ax)


def plot_loss(ax, cmp: Comparison) -> None:
    ax.semilogy(cmp.times, cmp.pde_loss, "k-", lw=2, label="PDE")
    for color, (i, n) in zip(_colors(len(cmp.n)), enumerate(cmp.n), strict=True):
        m, s = cmp.loss_mean[i], cmp.loss_std[i]
        ax.semilogy(cmp.times, m, color=color, label=f"n={n}")
        ax.fill_between(cmp.times, np.maximum(m - s, m * 1e-3), m + s, color=color, alpha=0.2)
    ax.set(xlabel="t", ylabel="loss", title="loss: PDE vs particles (mean ± sd over seeds)")
    _legend(ax)


def plot_loss_bias(ax, cmp: Comparison) -> None:
    """|mean of L_n - L_pde| (hollow where negative) and its standard error (dashed)."""
    bias = cmp.loss_bias
    se = cmp.loss_bias_sd / np.sqrt(np.maximum(cmp.seeds_per_width, 1))[:, None]
    for color, (i, n) in zip(_colors(len(cmp.n)), enumerate(cmp.n), strict=True):
        ax.plot(cmp.times, np.abs(bias[i]), color=color, label=f"n={n}")
        neg = bias[i] < 0
        ax.plot(cmp.times[neg], -bias[i, neg], "o", mfc="none", ms=3, color=color)
        ax.plot(cmp.times, se[i], "--", lw=0.8, color=color)
    if (np.abs(bias) > 0).any():
        ax.set_yscale("log")
    ax.set(xlabel="t", ylabel="|L_n − L_pde|",
           title="loss bias |mean| (o: negative), dashed: its standard error")
    _legend(ax)


def plot_crbv(ax, cmp: Comparison, crbv: CRBVCheck) -> None:
    for color, (i, n) in zip(_colors(len(cmp.n)), enumerate(cmp.n), strict=True):
        ax.plot(cmp.times, crbv.n_gap2[i], color=color, lw=0.7, alpha=0.5)
        ax.plot(cmp.times, np.where(crbv.judged[i], crbv.n_gap2[i], np.nan), color=color,
                label=f"n={n}")
        ax.fill_between(cmp.times, crbv.lo[i], crbv.hi[i], color=color, alpha=0.2)
        bad = crbv.violations[i]
        if bad.any():
            ax.plot(cmp.times[bad], crbv.n_gap2[i, bad], "x", color="C3")
    ax.plot(cmp.times, crbv.mc, "k-", lw=2, label="MC(t) from the PDE")
    if (crbv.n_gap2 > 0).all() and (crbv.mc > 0).all():
        ax.set_yscale("log")
    ax.set(xlabel="t", ylabel="n · gap²",
           title=f"n·gap² ({100 * crbv.level:.0f}% band) vs MC(t); x: above MC, "
           "thin: unresolved")
    _legend(ax)


def plot_crbv_ratio(ax, cmp: Comparison, crbv: CRBVCheck) -> None:
    with np.errstate(divide="ignore", invalid="ignore"):
        for color, (i, n) in zip(_colors(len(cmp.n)), enumerate(cmp.n), strict=True):
            ax.plot(cmp.times, crbv.ratio[i], color=color, lw=0.7, alpha=0.5)
            ax.plot(cmp.times, np.where(crbv.judged[i], crbv.ratio[i], np.nan), color=color,
                    label=f"n={n}")
            ax.fill_between(cmp.times, crbv.lo[i] / crbv.mc, crbv.hi[i] / crbv.mc,
                            color=color, alpha=0.2)
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ratio = crbv.ratio[np.isfinite(crbv.ratio)]
    if ratio.size and (ratio > 0).all():
        ax.set_yscale("log")
    ax.set(xlabel="t", ylabel="n · gap² / MC(t)", title="CRBV ratio (≤ 1 as n → ∞)")
    _legend(ax)


def _legend(ax) -> None:
    """The legend beside the axes, never over a curve."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _figures(cmp: Comparison, boot: Intervals, crbv: CRBVCheck, picks: list[int],
             title: str) -> dict[str, bytes]:
    out = {}
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    plot_gap_vs_n(ax, cmp, boot, picks)
    fig.suptitle(title, fontsize=9)
    out["gap_vs_n.png"] = _png(fig)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    plot_alpha(ax, cmp, boot)
    fig.suptitle(title, fontsize=9)
    out["alpha.png"] = _png(fig)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    plot_loss(axes[0], cmp)
    plot_loss_bias(axes[1], cmp)
    fig.suptitle(title, fontsize=9)
    out["loss.png"] = _png(fig)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    plot_crbv(axes[0], cmp, crbv)
    plot_crbv_ratio(axes[1], cmp, crbv)
    fig.suptitle(title, fontsize=9)
    out["crbv.png"] = _png(fig)
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    plot_gap_vs_n(axes[0, 0], cmp, boot, picks)
    plot_alpha(axes[0, 1], cmp, boot)
    plot_loss(axes[1, 0], cmp)
    plot_crbv(axes[1, 1], cmp, crbv)
    fig.suptitle(title)
    out["comparison.png"] = _png(fig)
    return out


# ---- markdown --------------------------------------------------------------------------

def markdown(cmp: Comparison, summary: dict, title: str) -> str:
    pct = f"{100 * summary['level']:.0f}%"
    seeds = summary["seeds_per_width"]
    seeds_text = (str(seeds[0]) if len(set(seeds)) == 1
                  else ", ".join(f"{s} (n={n})" for n, s in zip(cmp.n, seeds, strict=True)))
    target = "target" in summary
    lines = [
        f"# {title}", "",
        f"- widths n: {', '.join(map(str, cmp.n))}; seeds per width: {seeds_text}",
        f"- output times: {len(cmp.times)}, t in [{cmp.times[0]:.4g}, {cmp.times[-1]:.4g}]",
        "- gap(n, t) = RMS over seeds of ||f_n(t) − f_t||_{L2(mu)}; α(t) from a least-squares "
        f"fit of log gap vs log n over the resolved widths; {pct} bootstrap intervals over "
        f"seeds ({summary['resamples']} resamples, seeds only: not the PDE error).", "",
        "## Exponent α(t)", "",
        "| t | α | " + pct + " interval | widths fitted |"
        + (" α (gap to target) | interval |" if target else ""),
        "|---|---|---|---|" + ("---|---|" if target else ""),
    ]
    for row in summary["alpha"]:
        line = (f"| {row['t']:.4g} | {_f(_nan(row['alpha']), '.3f')} | "
                f"{_interval(row['lo'], row['hi'])} | "
                f"{', '.join(map(str, row['widths_fitted'])) or '—'} |")
        if target:
            line += (f" {_f(_nan(row['alpha_target']), '.3f')} | "
                     f"{_interval(row['alpha_target_lo'], row['alpha_target_hi'])} |")
        lines.append(line)
    lines += ["", "Expected: α = 1/2 at finite times (CLT); towards 1 at long times when the "
              "limit interpolates the target [RVE, CRBV].", ""]
    if len(cmp.n) > 2:
        pairs = list(summary["local_alpha"][0]["pairs"])
        lines += ["### Local exponents between adjacent widths", "",
                  "α from each pair of neighbouring widths alone: a crossover from n^-1 at "
                  "small n to n^-1/2 at large n shows here, not in the single fit.", "",
                  "| t | " + " | ".join(f"n = {p}" for p in pairs) + " |",
                  "|---|" + "---|" * len(pairs)]
        for row in summary["local_alpha"]:
            cells = [f"{_f(_nan(v['alpha']), '.2f')} {_interval(v['lo'], v['hi'])}"
                     for v in row["pairs"].values()]
            lines.append(f"| {row['t']:.4g} | " + " | ".join(cells) + " |")
        lines.append("")
    c = summary["crbv"]
    lines += ["## CRBV check: n gap² vs MC(t)", "", f"**{c['verdict']}.**", ""]
    if c["max_ratio"] is not None:
        w = c["max_ratio"]
        lines.append(f"- largest n gap² / MC(t) among resolved points: {w['ratio']:.3g} "
                     f"(t = {w['t']:.4g}, n = {w['n']}; lower end of interval / MC: "
                     f"{_f(_nan(w['lo_ratio']))})")
    lines.append("- flagged / judged points per width: " + ", ".join(
        f"n={n}: {c['violations_per_n'][n]}/{c['judged_per_n'][n]}" for n in c["judged_per_n"]))
    lines.append("- at t = 0 (n gap² / MC, expected 1 for i.i.d. initial units): "
                 + ", ".join(f"n={n}: {_f(_nan(v))}" for n, v in c["ratio_t0"].items()))
    if not c.get("applies", True):
        lines.append(f"- **scope**: {c['statement']}.")
    lines += ["- the bound n E||f_n − f_t||² ≤ MC(t) is asymptotic (n → ∞); a point is "
              "'consistent' when the lower end of its interval is ≤ MC(t). At t ≈ 0 the two "
              f"are equal in expectation, so ~{(1 - summary['level']) / 2:.0%} of those points "
              "are flagged by chance.", ""]
    if summary.get("classification"):
        k = summary["classification"]
        lines += ["## Classification accuracy", "",
                  f"Fraction of the data (weights w_m) with sign f = y, loss "
                  f"{summary['loss']['function']['name']}: PDE "
                  f"{k['pde'][0]:.3f} → {k['pde'][-1]:.3f}; ensembles at the last time: "
                  + ", ".join(f"n={n}: {v[-1]:.3f}" for n, v in k["particles"].items()), ""]
    b = summary["error_budget"]
    lines += ["## Error budget", ""]
    if b["pde_error_given"]:
        lines += [f"- PDE error estimate ||f_t(fine) − f_t(coarse)||: max {b['max_pde_error']:.3g}",
                  f"- smallest gap / PDE error: {_f(_nan(b['min_gap_over_pde_error']))}",
                  f"- points with gap < {b['resolve_factor']:g}× PDE error (left out of fits and "
                  f"of the CRBV verdict): {b['unresolved_points']} of {b['points']} "
                  f"({b['unresolved_at_largest_n']} at the largest n); per-point values in "
                  "comparison.csv (pde_error, gap_over_pde_error, resolved)"]
    else:
        lines.append(f"- no PDE error estimate ({b['no_estimate_reason']}): every gap counts "
                     "as resolved, and the exponents may be limited by the PDE's "
                     "discretisation error.")
    if target:
        t = summary["target"]
        lines.append(f"- PDE ||f_t − y|| at t = {cmp.times[-1]:.4g}: "
                     f"{t['pde_target_gap_final']:.3g}; gaps to the target at the last time: "
                     + ", ".join(f"n={n}: {v:.3g}" for n, v in t["target_gap_final"].items())
                     + f"; points where the gap to the target stands in for the gap: "
                     f"{t['proxy_points']}")
    lines += ["", "## Figures", "",
              "![gap vs n](gap_vs_n.png)", "", "![alpha(t)](alpha.png)", "",
              "![loss](loss.png)", "", "![n gap^2 vs MC](crbv.png)", "",
              "Table: [comparison.csv](comparison.csv); all panels: "
              "[comparison.png](comparison.png).", ""]
    return "\n".join(lines)


def _nan(x: float | None) -> float:
    return np.nan if x is None else x


def _interval(lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return "—"
    return f"[{lo:.3f}, {hi:.3f}]"


def classification_summary(weights: np.ndarray, y: np.ndarray, times: np.ndarray,
                           pde_f: np.ndarray, runs) -> dict | None:
    """Accuracy sum_m w_m [sign f = y] of the PDE and of the ensembles (mean over seeds, per
    width) at every output time; None unless every target is a label -1 or +1."""
    y = np.asarray(y, dtype=float)
    if not (y.size and np.all((y == 1.0) | (y == -1.0))):
        return None

    def acc(f: np.ndarray) -> list[float]:
        return [float(a) for a in (np.sign(f) == y).astype(float) @ weights]

    widths = sorted({n for n, _ in runs})
    return {"times": [float(t) for t in times], "pde": acc(pde_f),
            "particles": {str(n): [float(a) for a in np.mean(
                [acc(r.f) for (m, _), r in sorted(runs.items()) if m == n], axis=0)]
                for n in widths},
            "definition": "sum_m w_m [sign f(x_m) = y_m] on the data quadrature (f = 0 "
                          "counts as wrong); particles: the mean over seeds"}


def write_report(cmp: Comparison, run_dir: RunDirectory, title: str, *, level: float = 0.9,
                 resamples: int = 2000, seed: int = 0, times: int = 6, loss=None,
                 birth_death: float = 0.0,
                 classification: dict | None = None) -> dict:
    """comparison.csv, the figures and report.md in run_dir; returns a JSON-able summary.

    level/resamples/seed: the bootstrap over seeds (seed makes it reproducible);
    times: about how many output times the alpha table and gap-vs-n figure show.
    loss: the problem's loss (solver.model.losses; None: square): summary.json's
    ``loss.function`` and whether the CRBV bound is a theorem for it (``crbv.applies``;
    otherwise the verdict is marked a diagnostic); birth_death: the problem's gamma (> 0:
    the check is a diagnostic for any loss, ``crbv_scope``). classification: accuracies
    (``classification_summary``) when the targets are labels.
    Non-writer ranks compute the summary and write nothing.
    """
    boot = cmp.bootstrap(level, resamples, np.random.default_rng(seed))
    crbv = cmp.crbv(boot)
    picks = table_times(cmp.times, times)
    summary = {"title": title, **summarise(cmp, boot, crbv, picks), "files": list(FILES)}
    scope = crbv_scope(loss, birth_death)
    summary["crbv"].update(scope)
    if not scope["applies"]:
        why = (f"with birth-death (gamma = {birth_death:g})" if birth_death
               else f"for the {scope['loss']} loss")
        summary["crbv"]["verdict"] = (f"diagnostic only, not a theorem {why}: "
                                      f"{summary['crbv']['verdict']}")
    summary["loss"]["function"] = {"name": "square"} if loss is None else loss.record()
    if classification is not None:
        summary["classification"] = classification
    if not run_dir.writer:
        return summary
    run_dir.write_csv("comparison.csv", cmp.header, cmp.rows(boot, crbv))
    for name, data in _figures(cmp, boot, crbv, picks, title).items():
        run_dir.write_bytes(name, data)
    run_dir.write_text("report.md", markdown(cmp, summary, title))
    return summary
