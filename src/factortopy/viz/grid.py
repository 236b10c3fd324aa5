"""Grids: several runs side by side (one column per run, one row per map), shared scales and legends."""
from __future__ import annotations

import numpy as np

from factortopy.viz import colors as C
from factortopy.viz import maps as M

#: map rows that have their own colour code; any other row name is a per-vertex value key (e.g. 'r')
MAP_ROWS = ("layer", "space", "scale", "channel")


def _painting(row: str, d: dict, shared: dict, title: str) -> M.Painting:
    def need(*keys):
        for k in keys:
            if d.get(k) is None:
                raise ValueError(f"column {title!r} has no {k!r}, needed for the {row!r} row")

    need("vertex", "hemi")
    if row == "layer":
        need("layer_probs")
        return M.layer_painting(d["vertex"], d["hemi"], d["layer_probs"], shared.get("layer_names"))
    if row == "space":
        need("space_xy")
        return M.space_painting(d["vertex"], d["hemi"], d["space_xy"])
    if row == "scale":
        need("scale")
        return M.scale_painting(d["vertex"], d["hemi"], d["scale"])
    if row == "channel":
        need("readout")
        return M.channel_painting(d["vertex"], d["hemi"], d["readout"], shared.get("n_clusters", 20))
    need(row)
    return M.value_painting(d["vertex"], d["hemi"], d[row], shared["cmap"], shared["vmin"], shared["vmax"], row)


def _shared(row: str, columns: dict, n_clusters: int) -> dict:
    """What the columns of a row share: layer names (when identical), value ranges, colormap."""
    if row == "layer":
        # layer_names may be a list or a numpy array (as read from .npz): never test its truth value
        names = [tuple(c.get("layer_names") if c.get("layer_names") is not None else ()) for c in columns.values()]
        same = all(n == names[0] for n in names) and len(names[0]) > 0
        return {"layer_names": list(names[0]) if same else None}
    if row == "channel":
        return {"n_clusters": n_clusters}
    if row in MAP_ROWS:
        return {}
    vals = [np.asarray(c[row], float) for c in columns.values() if c.get(row) is not None]
    lo, hi = C.value_range(np.concatenate(vals) if vals else np.zeros(1))
    return {"vmin": lo, "vmax": hi, "cmap": "RdBu_r" if lo < 0 < hi else "viridis"}


def compare_figure(columns: dict, rows=("layer", "space", "scale"), view: str = "posterior", hemis="both",
                   surface: str = "inflated", mesh=None, n_clusters: int = 20, title: str | None = None,
                   figsize=None):
    """Grid of maps: one column per entry of ``columns``, one row per map, one view per cell.

    columns: {title: maps} where maps is a dict with ``vertex`` (N,), ``hemi`` (N,), and the arrays
        the rows need: ``layer_probs`` (N, L) (+ ``layer_names``) for 'layer', ``space_xy`` (N, 2)
        for 'space', ``scale`` (N,) for 'scale', ``readout`` (N, D) for 'channel', or any (N,) value
        key such as 'r' (shared colour range across columns). :func:`load_maps` returns such dicts.
    rows: map names, top to bottom. view: one of :data:`factortopy.viz.render.VIEWS`.
    hemis: hemispheres shown, 'lh', 'rh' or 'both'.
    Colour codes are shared across a row and its legend is drawn once at the right. The layer
    legend names the layers when all columns share them, else reads first -> last.
    Channel clusters are computed per column (their colours do not correspond across columns).
    Returns a matplotlib Figure.
    """
    from matplotlib.figure import Figure

    from factortopy.viz.render import check_hemis, check_view, panels

    if not columns:
        raise ValueError("compare_figure needs at least one column")
    rows = (rows,) if isinstance(rows, str) else tuple(rows)
    if not rows:
        raise ValueError("no rows given")
    check_view(view)
    check_hemis(hemis)
    ncol, nrow = len(columns), len(rows)
    npan = len(panels(view, hemis))
    cell_w = 2.2 * npan if view in ("lateral", "medial", "flat") else 2.6
    fig = Figure(figsize=figsize or (cell_w * ncol + 1.4, 2.4 * nrow + 0.5))
    top = 1 - 0.45 / fig.get_figheight() - (0.25 / fig.get_figheight() if title else 0)
    gs = fig.add_gridspec(nrow, ncol + 1, width_ratios=[1] * ncol + [0.35 * ncol / max(ncol, 1) / 1.5],
                          left=0.03, right=0.93, top=top, bottom=0.03, wspace=0.05, hspace=0.12)
    for r, row in enumerate(rows):
        shared = _shared(row, columns, n_clusters)
        legend = None
        for c, (col_title, d) in enumerate(columns.items()):
            p = _painting(row, d, shared, str(col_title))
            legend = legend or p.legend
            axes = M.draw_cell(fig, gs[r, c], p, view, hemis, surface, mesh,
                               title=str(col_title) if r == 0 else None)
            if c == 0:
                axes[0].text(-0.03, 0.5, row, transform=axes[0].transAxes, rotation=90, va="center",
                             ha="right", fontsize=9)
        if legend is not None:
            lg = gs[r, ncol].subgridspec(3, 1, height_ratios=[0.25, 1, 0.45])[1, 0]
            legend(fig.add_subplot(lg))
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def run_grid(run_dirs, rows=("layer", "space", "scale"), view: str = "posterior", titles=None, **kw):
    """:func:`compare_figure` over RUN_DIRs (or selectors.npz / planted_truth.npz files).

    Column titles come from each run's config.json unless ``titles`` are given; duplicated titles
    get the folder name appended. ``kw`` go to :func:`compare_figure`.
    """
    from factortopy.viz.io import load_maps

    run_dirs = [run_dirs] if isinstance(run_dirs, (str, bytes)) or hasattr(run_dirs, "__fspath__") else list(run_dirs)
    loaded = [load_maps(p) for p in run_dirs]
    if titles is not None and len(titles) != len(loaded):
        raise ValueError(f"{len(titles)} titles for {len(loaded)} runs")
    names = list(titles) if titles is not None else [m["title"] for m in loaded]
    columns = {}
    for name, m in zip(names, loaded):
        key = name
        i = 2
        while key in columns:
            key = f"{name} ({i})"
            i += 1
        columns[key] = m
    return compare_figure(columns, rows=rows, view=view, **kw)
