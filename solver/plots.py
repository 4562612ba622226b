"""Figures of a PDE run (matplotlib Agg, numpy only: no DOLFINx needed to draw).

- ``plot_energy``: the per-step checks against t: E and the loss (log-log), the
  dissipation beside -dE/dt from finite differences of E, the mass drift (with the
  boundary outflow rate) and min rho.
- ``plot_snapshots``: a row of density panels in theta coordinates with one colour
  scale, from the ``(t, polygons, values)`` triples of
  ``solver.pde.output.SnapshotWriter.snapshots`` / ``gather_cell_values``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colors
from matplotlib.collections import PolyCollection

TWO_PI = 2 * np.pi
#: The one colour map of every figure (densities, and the widths n in the report).
CMAP = "viridis"
Snapshot = tuple[float, np.ndarray, np.ndarray]


def _save(fig: plt.Figure, path: str | os.PathLike, dpi: int = 130) -> Path:
    """Save atomically (drawn in memory, checked against the free space, written to a
    temporary sibling and renamed; ``DiskFullError`` on a full disk) and close the figure."""
    from solver.io import write_bytes_atomic

    path = Path(path)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=dpi)
    finally:
        plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
    return path


# -- energy and checks ----------------------------------------------------------------

def _set_yscale(ax: plt.Axes, *arrays: np.ndarray) -> None:
    """Log scale when everything is positive (at most 12 decades), else symmetric log."""
    values = np.concatenate([np.ravel(a) for a in arrays if np.size(a)] or [np.zeros(0)])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    if np.all(values > 0):
        ax.set_yscale("log")
        top = float(values.max())
        if float(values.min()) < 1e-12 * top:
            ax.set_ylim(1e-12 * top, 2 * top)
        return
    nonzero = np.abs(values[values != 0])
    if nonzero.size:  # at most 12 decades below the largest value are drawn logarithmically
        linthresh = max(float(nonzero.min()), 1e-12 * float(nonzero.max()), 1e-300)
        ax.set_yscale("symlog", linthresh=linthresh)


def _missing(ax: plt.Axes, names: str) -> None:
    ax.text(0.5, 0.5, f"{names}: not recorded", ha="center", va="center",
            transform=ax.transAxes, color="0.4")


def plot_energy(path: str | os.PathLike, steps: Mapping[str, Sequence[float] | np.ndarray]
                ) -> Path:
    """Four panels of the per-step checks against t; returns the path written.

    steps: columns of equal length with at least ``t`` and ``energy``; ``loss``,
    ``dissipation``, ``dEdt``, ``mass``, ``min_rho`` and ``boundary_outflow`` are
    drawn when present (-dE/dt is taken from finite differences of E when ``dEdt``
    is absent).
    """
    col = {k: np.asarray(v, dtype=float) for k, v in steps.items()}
    t, energy = col["t"], col["energy"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), layout="constrained")
    (ax_e, ax_d), (ax_m, ax_r) = axes

    positive = t > 0
    ax_e.loglog(t[positive], energy[positive], label="energy E")
    if "loss" in col:
        ax_e.loglog(t[positive], col["loss"][positive], "--", label="loss")
    ax_e.set(xlabel="t (t > 0)", ylabel="E, loss", title="Energy and loss")
    ax_e.legend()

    if "dEdt" in col:  # row 0 (the initial state) has no step before it
        fd_t, fd = t[1:], -col["dEdt"][1:]
    else:
        dt = np.diff(t)
        ok = dt > 0
        fd_t, fd = (0.5 * (t[1:] + t[:-1]))[ok], -np.diff(energy)[ok] / dt[ok]
    ax_d.plot(fd_t, fd, ".", ms=3, label="-dE/dt (finite difference)")
    if "dissipation" in col:
        ax_d.plot(t, col["dissipation"], "-", lw=1.2, label="dissipation D")
    _set_yscale(ax_d, fd, col.get("dissipation", np.zeros(0)))
    ax_d.set(xlabel="t", ylabel="rate", title="Dissipation vs -dE/dt")
    ax_d.legend()

    if "mass" in col:
        ax_m.plot(t, col["mass"] - col["mass"][0], label="mass - mass(0)")
    if "boundary_outflow" in col:
        ax_m.plot(t, col["boundary_outflow"], "--", label="boundary outflow rate")
    if "mass" in col or "boundary_outflow" in col:
        _set_yscale(ax_m, col["mass"] - col["mass"][0] if "mass" in col else np.zeros(0),
                    col.get("boundary_outflow", np.zeros(0)))
        ax_m.legend()
    else:
        _missing(ax_m, "mass, boundary_outflow")
    ax_m.set(xlabel="t", ylabel="drift, rate", title="Mass drift and boundary outflow")

    if "min_rho" in col:
        ax_r.plot(t, col["min_rho"])
        ax_r.axhline(0.0, color="0.6", lw=0.8)
        _set_yscale(ax_r, col["min_rho"])
    else:
        _missing(ax_r, "min_rho")
    ax_r.set(xlabel="t", ylabel="min rho", title="Positivity: min rho")
    for ax in axes.flat:
        ax.grid(True, which="major", alpha=0.3)
    return _save(fig, path)


# -- density snapshots --------------------------------------------------------------

def _wrap(a: np.ndarray) -> np.ndarray:
    """Angles into [-pi, pi)."""
    return (a + np.pi) % TWO_PI - np.pi


def _unwrap_rows(angle: np.ndarray) -> np.ndarray:
    """Each row's angles made continuous around its first entry (no jump of 2 pi)."""
    ref = angle[:, :1]
    return ref + _wrap(angle - ref)


def _periodic_copies(polys: list[np.ndarray] | np.ndarray, values: np.ndarray, axis: int
                     ) -> tuple[list[np.ndarray], np.ndarray]:
    """Polygons that cross +-pi in coordinate ``axis`` drawn twice, shifted by 2 pi.

    The axes limits [-pi, pi] then clip each copy to the part inside.
    """
    out, vals = list(polys), [np.asarray(values)]
    extra, extra_vals = [], []
    for p, v in zip(polys, values, strict=True):
        for shift in (TWO_PI, -TWO_PI):
            if np.any(p[:, axis] * np.sign(shift) > np.pi):
                q = p.copy()
                q[:, axis] -= shift
                extra.append(q)
                extra_vals.append(v)
    vals.append(np.asarray(extra_vals, dtype=float))
    return out + extra, np.concatenate(vals)


def _cylinder_polys(polys: np.ndarray, values: np.ndarray
                    ) -> tuple[list[np.ndarray], np.ndarray]:
    """Cylinder polygons as (c, z): from theta (c, z) or mesh points (c, cos z, sin z)."""
    if polys.shape[-1] == 3:
        z = np.arctan2(polys[..., 2], polys[..., 1])
        polys = np.stack([polys[..., 0], z], axis=-1)
    polys = polys.copy()
    polys[..., 1] = _unwrap_rows(polys[..., 1])
    return _periodic_copies(list(polys), values, axis=1)


def _sphere_polys(polys: np.ndarray, values: np.ndarray
                  ) -> tuple[list[np.ndarray], np.ndarray]:
    """Sphere polygons as (longitude, latitude) in degrees, cut at +-180 and the poles.

    polys: points on the sphere (..., 3) (mesh coordinates, or theta = a unit vector),
    or (longitude, latitude) in radians (..., 2).
    """
    if polys.shape[-1] == 3:
        r = np.linalg.norm(polys, axis=-1)
        lon = np.arctan2(polys[..., 1], polys[..., 0])
        lat = np.arcsin(np.clip(polys[..., 2] / np.where(r > 0, r, 1.0), -1.0, 1.0))
    else:
        lon, lat = polys[..., 0], polys[..., 1]
    pole = np.abs(np.cos(lat)) < 1e-9
    out = []
    for lo, la, po in zip(lon, lat, pole, strict=True):
        keep = np.flatnonzero(~po)
        lo = lo.copy()
        lo[keep] = lo[keep[0]] + _wrap(lo[keep] - lo[keep[0]])
        points = []
        n = len(lo)
        for i in range(n):
            if not po[i]:
                points.append((lo[i], la[i]))
                continue
            # the pole is an edge of the map: run along it between the neighbours
            prev, nxt = (i - 1) % n, (i + 1) % n
            while po[prev]:
                prev = (prev - 1) % n
            while po[nxt]:
                nxt = (nxt + 1) % n
            points += [(lo[prev], la[i]), (lo[nxt], la[i])]
        out.append(np.degrees(np.array(points)))
    result, vals = [], []
    for p, v in zip(out, values, strict=True):
        result.append(p)
        vals.append(v)
        for shift in (360.0, -360.0):
            if np.any(p[:, 0] * np.sign(shift) > 180.0):
                q = p.copy()
                q[:, 0] -= shift
                result.append(q)
                vals.append(v)
    return result, np.asarray(vals, dtype=float)


def _box_marginal(polys: np.ndarray, values: np.ndarray
                  ) -> tuple[list[np.ndarray], np.ndarray]:
    """3-D cells: rho integrated over theta_3, on the (theta_1, theta_2) plane.

    Hexahedra of a box mesh (axis-aligned, stacked in columns) give the exact
    marginal on their footprints; other cells (tetrahedra) are binned by centroid on a
    regular grid (rho |K| summed per bin over the bin's area).
    """
    lo, hi = polys.min(axis=1), polys.max(axis=1)
    if polys.shape[1] == 8:
        span = np.ptp(polys.reshape(-1, 3), axis=0)
        key = np.round(np.concatenate([lo[:, :2], hi[:, :2]], axis=1) /
                       (1e-9 * (1.0 + span.max())))
        uniq, inverse = np.unique(key, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        marginal = np.zeros(len(uniq))
        np.add.at(marginal, inverse, values * (hi[:, 2] - lo[:, 2]))
        first = np.zeros(len(uniq), dtype=int)
        first[inverse[::-1]] = np.arange(len(inverse))[::-1]
        boxes = [(lo[i, 0], lo[i, 1], hi[i, 0], hi[i, 1]) for i in first]
    else:  # tetrahedra: |K| = |det(v1 - v0, v2 - v0, v3 - v0)| / 6
        edges = polys[:, 1:4] - polys[:, :1]
        volume = np.abs(np.linalg.det(edges)) / 6
        bins = max(1, int((len(polys) / 6) ** (1 / 3) + 1e-9))  # ~ cubes of 6 tetrahedra
        x0, y0 = lo[:, 0].min(), lo[:, 1].min()
        hx, hy = (hi[:, 0].max() - x0) / bins, (hi[:, 1].max() - y0) / bins
        centre = polys.mean(axis=1)
        ix = np.clip(((centre[:, 0] - x0) / hx).astype(int), 0, bins - 1)
        iy = np.clip(((centre[:, 1] - y0) / hy).astype(int), 0, bins - 1)
        grid = np.zeros((bins, bins))
        np.add.at(grid, (ix, iy), values * volume)
        marginal = grid.ravel() / (hx * hy)
        boxes = [(x0 + i * hx, y0 + j * hy, x0 + (i + 1) * hx, y0 + (j + 1) * hy)
                 for i in range(bins) for j in range(bins)]
    rects = [np.array([[a, b], [c, b], [c, d], [a, d]]) for a, b, c, d in boxes]
    return rects, marginal


def _kind(label: str, polys: np.ndarray) -> str:
    text = label.lower()
    if "sphere" in text:
        return "sphere"
    if "cylinder" in text:
        return "cylinder"
    if polys.shape[1] == 2:  # interval cells: a line, or a circle's polygon in R^2
        if polys.shape[2] == 2 or "circle" in text:
            return "circle"
        return "line"
    if polys.shape[2] == 2:
        return "flat"
    if polys.shape[2] == 3 and polys.shape[1] in (4, 8):
        return "box3"
    raise ValueError(f"plot_snapshots: cannot draw polygons of shape {polys.shape} "
                     f"for domain {label!r}")


def _line_xy(polys: np.ndarray, values: np.ndarray, periodic: bool
             ) -> tuple[np.ndarray, np.ndarray]:
    """A piecewise-constant graph: x = [l0, r0, l1, r1, ...], y = [v0, v0, v1, v1, ...]."""
    if polys.shape[2] == 2:  # points on a circle in R^2
        ends = np.arctan2(polys[..., 1], polys[..., 0])
    else:
        ends = polys[..., 0]
    if periodic:
        ends = _unwrap_rows(ends)
        segs, vals = _periodic_copies([e[:, None] for e in ends], values, axis=0)
        ends = np.array([s[:, 0] for s in segs])
        values = vals
    left, right = ends.min(axis=1), ends.max(axis=1)
    order = np.argsort(left, kind="stable")
    x = np.stack([left[order], right[order]], axis=1).ravel()
    y = np.repeat(np.asarray(values)[order], 2)
    return x, y


def plot_snapshots(path: str | os.PathLike, snapshots: Sequence[Snapshot], domain_label: str,
                   *, log: bool = False, axis_labels: Sequence[str] | None = None,
                   value_label: str = "rho (cell average)") -> Path:
    """A row of density panels at the snapshot times with one colour scale.

    snapshots: ``(t, polygons, values)`` with polygons (n_cells, n_vertices, d) in
    theta coordinates and the cell values (n_cells,), as kept by ``SnapshotWriter``.
    domain_label: a title that also picks the drawing (case-insensitive):
    - "cylinder ...": theta = (c, z) with z an angle (or mesh points (c, cos z, sin z));
      drawn unwrapped on c x [-pi, pi], cells across the cut at +-pi drawn on both sides;
    - "sphere ...": points on the sphere in R^3 (or (longitude, latitude) in radians),
      drawn in longitude/latitude, cells across the date line split, polar cells
      extended along the pole;
    - "circle ...": interval cells of an angle (theta (n, 2, 1), or points in R^2), a
      periodic graph on [-pi, pi];
    - anything else: by dimension, a graph for intervals, a coloured cell map for 2-D
      meshes, the marginal over theta_3 for 3-D meshes (hexahedra or tetrahedra).
    log: a logarithmic colour scale (values below 1e-6 of the largest are clipped);
    axis_labels: the parameter names (the first two name the axes, a third the one a 3-D
    density is integrated over; the sphere keeps longitude and latitude); value_label: the
    colour bar's.
    """
    if not snapshots:
        raise ValueError("plot_snapshots: no snapshots")
    first = np.asarray(snapshots[0][1])
    kind = _kind(domain_label, first)
    n = len(snapshots)

    if kind in ("line", "circle"):
        fig, axes = plt.subplots(1, n, figsize=(3.0 * n + 0.6, 3.0), sharey=True,
                                 squeeze=False, layout="constrained")
        for ax, (t, polys, values) in zip(axes[0], snapshots, strict=True):
            x, y = _line_xy(np.asarray(polys), np.asarray(values, dtype=float),
                            periodic=kind == "circle")
            ax.plot(x, y, lw=1.2)
            ax.set_title(f"t = {t:.4g}")
            ax.set_xlabel(axis_labels[0] if axis_labels else
                          ("angle" if kind == "circle" else "theta"))
            if kind == "circle":
                ax.set_xlim(-np.pi, np.pi)
            if log:
                ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
        axes[0, 0].set_ylabel(value_label)
        fig.suptitle(domain_label)
        return _save(fig, path)

    shapes = []
    for t, polys, values in snapshots:
        polys, values = np.asarray(polys, dtype=float), np.asarray(values, dtype=float)
        if kind == "cylinder":
            cells, vals = _cylinder_polys(polys, values)
        elif kind == "sphere":
            cells, vals = _sphere_polys(polys, values)
        elif kind == "box3":
            cells, vals = _box_marginal(polys, values)
        else:
            cells, vals = list(polys), values
        shapes.append((t, cells, vals))

    everything = np.concatenate([s[2] for s in shapes])
    finite = everything[np.isfinite(everything)]
    vmax = float(finite.max()) if finite.size else 1.0
    if log:
        vmax = vmax if vmax > 0 else 1.0
        positive = finite[finite > 0]
        vmin = max(float(positive.min()) if positive.size else vmax * 1e-3, vmax * 1e-6)
        norm: colors.Normalize = colors.LogNorm(vmin=vmin, vmax=vmax, clip=True)
    else:
        vmin = min(0.0, float(finite.min()) if finite.size else 0.0)
        norm = colors.Normalize(vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1.0)

    labels = {
        "cylinder": ("c", "z (angle)"),
        "sphere": ("longitude (deg)", "latitude (deg)"),
        "box3": ("theta_1", "theta_2"),
    }.get(kind, ("theta_1", "theta_2"))
    labels = tuple(axis_labels[:2]) if axis_labels and kind != "sphere" else labels
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 1.0, 3.3), squeeze=False,
                             layout="constrained")
    cmap = plt.get_cmap(CMAP)
    collection = None
    for ax, (t, cells, vals) in zip(axes[0], shapes, strict=True):
        collection = PolyCollection(cells, array=vals, cmap=cmap, norm=norm,
                                    edgecolors="face", linewidths=0.2, rasterized=True)
        ax.add_collection(collection)
        points = np.concatenate(cells)
        lo, hi = points.min(axis=0), points.max(axis=0)
        if kind == "cylinder":
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(-np.pi, np.pi)
        elif kind == "sphere":
            ax.set_xlim(-180, 180)
            ax.set_ylim(-90, 90)
            ax.set_aspect("equal")
        else:
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
            width, height = hi[:2] - lo[:2]
            if 1 / 3 <= width / height <= 3:  # true shape unless very elongated
                ax.set_aspect("equal")
        ax.set_title(f"t = {t:.4g}")
        ax.set_xlabel(labels[0])
    axes[0, 0].set_ylabel(labels[1])
    third = axis_labels[2] if axis_labels and len(axis_labels) > 2 else "theta_3"
    bar_label = value_label if kind != "box3" else f"{value_label}, integrated over {third}"
    fig.colorbar(collection, ax=axes[0].tolist(), label=bar_label, shrink=0.9)
    fig.suptitle(domain_label)
    return _save(fig, path)
