"""Grids: several runs side by side (one column per run, one row per map), shared scales and legends."""
from __future__ import annotations

from factortopy.viz.kinds import check_needs, map_kind


def _row_kind(row: str, columns: dict):
    """The map kind of a row: a registered name, or a map of the columns (a per-vertex key, or a
    single-number map made from one, :mod:`factortopy.viz.vertex_maps`)."""
    have = [d for d in columns.values() if row in d] or list(columns.values())
    return map_kind(row, have[0] if have else {})


def _shared(row: str, columns: dict, n_clusters: int) -> dict:
    """Painting options of a row: what its columns share (layer names when identical, one value range
    and colormap) plus ``n_clusters``."""
    options = {"n_clusters": n_clusters}
    return {**options, **_row_kind(row, columns).share(list(columns.values()), options)}


def compare_figure(columns: dict, rows=("layer", "space", "scale"), view: str = "posterior", hemis="both",
                   surface: str = "inflated", mesh=None, n_clusters: int = 20, title: str | None = None,
                   figsize=None, ax=None, axes=None):
    """Grid of maps: one column per entry of ``columns``, one row per map, one view per cell.

    columns: {title: maps} where maps is a dict with ``vertex`` (N,), ``hemi`` (N,), and the arrays
    the rows need (see :data:`factortopy.viz.kinds.MAP_KINDS`: ``layer_probs`` (N, L) (+
    ``layer_names``) for 'layer', ``space_xy`` (N, 2) for 'space', ``scale`` (N,) for 'scale',
    ``readout`` (N, D) for 'channel', ``r`` for 'score'), or any (N,) value key such as 'r'
    (shared colour range across columns). :func:`load_maps` returns such dicts.
    rows: map names, top to bottom. view: one of :data:`factortopy.viz.render.VIEWS`.
    hemis: hemispheres shown, 'lh', 'rh' or 'both'.
    ax / axes: your own Axes, one per cell (rows x columns, row-major; ``ax`` for a 1 x 1 grid); the
    legends then go in insets right of the last column.
    Colour codes are shared across a row and its legend is drawn once at the right. The layer
    legend names the layers when all columns share them, else reads first -> last.
    Channel clusters are computed per column (their colours do not correspond across columns).
    Returns a matplotlib Figure.
    """
    from factortopy.viz.figure import new_figure
    from factortopy.viz.maps import draw_cell
    from factortopy.viz.render import check_hemis, check_view, given_axes, legend_axes, literal, panels

    if not columns:
        raise ValueError("compare_figure needs at least one column")
    rows = (rows,) if isinstance(rows, str) else tuple(rows)
    if not rows:
        raise ValueError("no rows given")
    check_view(view)
    check_hemis(hemis)
    kinds = [_row_kind(row, columns) for row in rows]  # unknown names fail before any drawing
    ncol, nrow = len(columns), len(rows)
    cells = given_axes(ax, axes, nrow * ncol, f"compare_figure ({nrow} rows x {ncol} columns)")
    if cells is None:
        npan = len(panels(view, hemis))
        cell_w = 2.2 * npan if view in ("lateral", "medial", "flat") else 2.6
        fig = new_figure(figsize=figsize or (cell_w * ncol + 1.4, 2.4 * nrow + 0.5))
        top = 1 - 0.45 / fig.get_figheight() - (0.25 / fig.get_figheight() if title else 0)
        gs = fig.add_gridspec(nrow, ncol + 1, width_ratios=[1] * ncol + [0.35 * ncol / max(ncol, 1) / 1.5],
                              left=0.03, right=0.93, top=top, bottom=0.03, wspace=0.05, hspace=0.12)
        cells = [fig.add_subplot(gs[r, c]) for r in range(nrow) for c in range(ncol)]

        def legend_ax(r):
            return fig.add_subplot(gs[r, ncol].subgridspec(3, 1, height_ratios=[0.25, 1, 0.45])[1, 0])
    else:
        fig = cells[0].figure

        def legend_ax(r):
            return legend_axes(cells[r * ncol + ncol - 1])
    for r, (row, kind) in enumerate(zip(rows, kinds)):
        shared = _shared(row, columns, n_clusters)
        legend = None
        for c, (col_title, d) in enumerate(columns.items()):
            check_needs(kind, d, f"column {str(col_title)!r}", f" (needed for the {row!r} row)")
            p = kind.paint(d, shared)
            legend = legend or p.legend
            cell = cells[r * ncol + c]
            draw_cell(cell, p, view, hemis, surface, mesh, title=str(col_title) if r == 0 else None)
            if c == 0:
                cell.text(-0.03, 0.5, row, transform=cell.transAxes, rotation=90, va="center",
                          ha="right", fontsize=9)
        if legend is not None:
            legend(legend_ax(r))
    if title:
        fig.suptitle(literal(title), fontsize=11)
    return fig


def run_grid(run_dirs, rows=("layer", "space", "scale"), view: str = "posterior", titles=None, **kw):
    """:func:`compare_figure` over RUN_DIRs (or maps .npz files such as a planted_truth.npz).

    rows: map names (the same as :func:`~factortopy.viz.paint`'s ``what``). Column titles are each
    run's maps title (``Run.maps().title``) unless ``titles`` are given; a title shared by several runs is followed by
    what tells them apart (:func:`distinct_titles`: the differing tail of their paths).
    ``kw`` (hemis, surface, mesh, n_clusters, ax / axes, ...) go to :func:`compare_figure`.
    """
    from factortopy.runs.maps import load_maps

    run_dirs = [run_dirs] if isinstance(run_dirs, (str, bytes)) or hasattr(run_dirs, "__fspath__") else list(run_dirs)
    loaded = [load_maps(p) for p in run_dirs]
    if titles is not None and len(titles) != len(loaded):
        raise ValueError(f"{len(titles)} titles for {len(loaded)} runs")
    names = list(titles) if titles is not None else [m["title"] for m in loaded]
    return compare_figure(dict(zip(distinct_titles(names, run_dirs), loaded)), rows=rows, view=view, **kw)


def distinct_titles(titles, paths) -> list[str]:
    """Column titles, each shared title followed by what tells its runs apart: the shortest tail
    of their paths that differs (``'resnet18 (seed1)'``, ``'resnet18 (a/run)'``), numbers only
    when the paths are the same too."""
    import os
    from collections import Counter

    titles = [str(t) for t in titles]
    parts = [os.path.normpath(os.path.abspath(os.fspath(p))).split(os.sep) for p in paths]
    out = list(titles)
    for title, count in Counter(titles).items():
        if count < 2:
            continue
        idx = [i for i, t in enumerate(titles) if t == title]
        for depth in range(1, max(len(parts[i]) for i in idx) + 1):
            tails = ["/".join(parts[i][-depth:]) for i in idx]
            if len(set(tails)) == len(tails):
                break
        else:
            tails = [str(k + 1) for k in range(len(idx))]
        for i, tail in zip(idx, tails):
            out[i] = f"{title} ({tail})"
    return out
