"""The maps: per-vertex data -> a :class:`Painting` (RGBA per vertex + legend) -> a Figure.

Every map function takes plain arrays: ``vertex`` (N,) int fsaverage index within its hemisphere
(0..163841), ``hemi`` (N,) 'lh'/'rh', and the per-vertex data (N, ...). Vertices not given are
transparent over the sulcal background.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from factortopy.viz import colors as C
from factortopy.surface import HEMIS, Mesh, fsaverage5, to_mesh_index

DEFAULT_VIEWS = ("lateral", "medial", "ventral", "posterior")


def check_vertices(vertex, hemi, n: int | None = None, what: str = "data"):
    """Validate (N,) vertex indices and (N,) hemisphere names; return (int64 array, str array)."""
    v = np.asarray(vertex)
    h = np.asarray(hemi)
    if h.dtype.kind == "S":
        h = h.astype(str)
    h = h.astype(str)
    if v.ndim != 1 or h.ndim != 1:
        raise ValueError(f"vertex and hemi must be 1-D; got shapes {v.shape} and {h.shape}")
    if len(v) != len(h):
        raise ValueError(f"vertex ({len(v)}) and hemi ({len(h)}) have different lengths")
    if n is not None and len(v) != n:
        raise ValueError(f"{what} has {n} rows but there are {len(v)} vertices")
    if v.size and not np.issubdtype(v.dtype, np.integer):
        if not np.all(v == np.round(v)):
            raise ValueError("vertex must hold integer fsaverage indices")
    bad = ~np.isin(h, HEMIS)
    if bad.any():
        raise ValueError(f"hemi must be 'lh' or 'rh'; found {sorted(set(h[bad].tolist()))[:5]}")
    return v.astype(np.int64), h


@dataclass
class Painting:
    """Colours of one map, ready to draw.

    vertex: (N,) int fsaverage index; hemi: (N,) 'lh'/'rh'; rgba: (N, 4) in [0, 1] (alpha 0 = not shown).
    mode: face colouring, 'mean' for continuous maps, 'mode' for categorical ones.
    legend: draws the legend into an Axes (``legend(ax)``), or None.
    """

    vertex: np.ndarray
    hemi: np.ndarray
    rgba: np.ndarray
    name: str = ""
    mode: str = "mean"
    legend: Callable | None = None
    #: the data behind the colours (``layer_probs``, ``layer_names``, ``space_xy``, ``scale``, ``values``,
    #: ``labels``), for hover text and tests
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.vertex, self.hemi = check_vertices(self.vertex, self.hemi)
        self.rgba = np.asarray(self.rgba, float)
        if self.rgba.shape != (len(self.vertex), 4):
            raise ValueError(f"rgba must have shape ({len(self.vertex)}, 4); got {self.rgba.shape}")

    def on_mesh(self, mesh: Mesh) -> dict:
        """hemi -> (V, 4) RGBA on the mesh's vertices (vertices beyond the mesh are dropped)."""
        out = {}
        for h in HEMIS:
            nv = mesh[h].n_vertices
            sel = self.hemi == h
            v = self.vertex[sel]
            keep = to_mesh_index(v, nv)
            arr = np.zeros((nv, 4))
            arr[v[keep]] = self.rgba[sel][keep]
            out[h] = arr
        return out


# ---------------------------------------------------------------------------- legends

def _layer_legend(layer_names):
    from factortopy.viz.render import literal

    names = None if layer_names is None else [literal(n) for n in layer_names]

    def draw(ax):
        ax.imshow(C.layer_legend_image(), extent=(0, 1, 0, 1), aspect="auto", origin="upper")
        if names and len(names) > 1:
            step = max(1, int(np.ceil(len(names) / 8)))
            idx = list(range(0, len(names), step))
            if idx[-1] != len(names) - 1:
                idx[-1] = len(names) - 1  # always name the last layer; drop its crowded neighbour
            ax.set_xticks([i / (len(names) - 1) for i in idx], [names[i] for i in idx], rotation=60,
                          fontsize=6, ha="right")
        else:
            ax.set_xticks([0, 1], ["first", "last"], fontsize=7)
        ax.set_yticks([0, 1], ["0", "1"], fontsize=7)
        ax.set_xlabel("layer", fontsize=7)
        # Label on the right: on the left it collides with the neighbouring brain panel in grids.
        ax.yaxis.set_label_position("right")
        ax.yaxis.tick_right()
        ax.set_ylabel("confidence", fontsize=7)
        ax.set_title("layer", fontsize=8)

    return draw


def _wheel_legend(ax):
    # extent top = -1: row 0 is the image's top (y = -1 in grid_sample convention)
    ax.imshow(C.wheel_legend_image(), extent=(-1, 1, 1, -1), origin="upper")
    ax.set_xticks([-1, 0, 1], ["left", "", "right"], fontsize=7)
    ax.set_yticks([-1, 0, 1], ["top", "", "bottom"], fontsize=7)
    ax.set_title("image position", fontsize=8)
    ax.set_aspect("equal")


def _colorbar_legend(cmap, vmin, vmax, label, ticks=None, ticklabels=None):
    def draw(ax):
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        sm = ScalarMappable(norm=Normalize(vmin, vmax), cmap=cmap)
        cb = ax.figure.colorbar(sm, cax=ax, orientation="vertical")
        if ticks is not None:
            cb.set_ticks(ticks, labels=ticklabels)
        cb.ax.tick_params(labelsize=7)
        ax.set_title(label, fontsize=8)

    return draw


def _swatch_legend(names, palette, title):
    def draw(ax):
        n = len(names)
        img = np.asarray(palette, float)[:, None, :]
        ax.imshow(img, extent=(0, 1, n - 0.5, -0.5), aspect="auto")
        ax.set_xticks([])
        step = max(1, int(np.ceil(n / 25)))
        from factortopy.viz.render import literal

        ax.set_yticks(range(0, n, step), [literal(names[i]) for i in range(0, n, step)], fontsize=6)
        ax.yaxis.tick_right()
        ax.set_title(literal(title), fontsize=8)

    return draw


# ---------------------------------------------------------------------------- paintings

def layer_painting(vertex, hemi, layer_probs, layer_names=None) -> Painting:
    """Layer map: colour = expected layer (coolwarm, first -> last), brightness = confidence."""
    p = np.asarray(layer_probs)
    check_vertices(vertex, hemi, p.shape[0] if p.ndim == 2 else -1, "layer_probs")
    if layer_names is not None and len(layer_names) != p.shape[1]:
        raise ValueError(f"{len(layer_names)} layer names for {p.shape[1]} layers")
    return Painting(vertex, hemi, C.layer_colors(p), "layer", legend=_layer_legend(layer_names),
                    info={"layer_names": layer_names, "layer_probs": p})


def space_painting(vertex, hemi, space_xy) -> Painting:
    """Space map: selected image position (x, y) through the colour wheel."""
    xy = np.asarray(space_xy)
    check_vertices(vertex, hemi, xy.shape[0] if xy.ndim else -1, "space_xy")
    return Painting(vertex, hemi, C.space_colors(xy), "space", legend=_wheel_legend, info={"space_xy": xy})


def scale_painting(vertex, hemi, scale) -> Painting:
    """Scale map: 0 = local token, 1 = global token, diverging colours."""
    s = np.asarray(scale)
    check_vertices(vertex, hemi, s.shape[0] if s.ndim else -1, "scale")
    legend = _colorbar_legend(C.SCALE_CMAP, 0.0, 1.0, "scale", [0, 0.5, 1], ["local", "", "global"])
    return Painting(vertex, hemi, C.scale_colors(s), "scale", legend=legend, info={"scale": s})


def rf_size_painting(vertex, hemi, rf_size, grid: int | None = None, vmin=None, vmax=None,
                     cmap: str = "magma") -> Painting:
    """Receptive-field size map: sigma per vertex, sequential colours from 0 (a point) up.

    rf_size: (N,) sigma in image widths (selectors.npz ``rf_size``). grid: the run's token-grid side,
    for the legend's second unit (sigma in grid cells = rf_size * grid); None leaves it out.
    vmin/vmax: colour limits in image widths (default 0 and the data's maximum).
    """
    s = np.asarray(rf_size, float)
    check_vertices(vertex, hemi, s.shape[0] if s.ndim else -1, "rf_size")
    lo, hi = C.value_range(s, 0.0 if vmin is None else vmin, vmax)
    ticks = np.linspace(lo, hi, 5)
    labels = [f"{t:.2g}" + ("" if grid is None else f" = {t * grid:.2g} cells") for t in ticks]
    title = "RF sigma (image widths)"
    if s.size and np.all(np.nan_to_num(s) == 0):
        # a point receptive field (the default head) has size 0 everywhere: the map is all the
        # colour of 0, so say why instead of showing a black cortex without a word
        warnings.warn("every rf_size is 0: this run has a point receptive field (fit with --receptive-field "
                      "gaussian to learn sizes); the rf-size map is uniform", stacklevel=2)
        title = "RF sigma: 0 everywhere\n(a point RF; fit with\n--receptive-field gaussian)"
    legend = _colorbar_legend(cmap, lo, hi, title, list(ticks), labels)
    return Painting(vertex, hemi, C.value_colors(s, cmap, lo, hi), "rf-size", legend=legend,
                    info={"rf_size": s, "grid": grid, "vmin": lo, "vmax": hi, "tick_labels": labels})


def value_painting(vertex, hemi, values, cmap=None, vmin=None, vmax=None, label: str = "value",
                   categorical: bool = False, label_names=None) -> Painting:
    """Any per-vertex value (r, score, ...) on a colour scale, or integer labels (ROIs) as categories.

    values: (N,) float (NaN = not shown) or, with ``categorical``, int labels (< 0 = not shown).
    cmap: default 'RdBu_r' when values take both signs, else 'viridis'. label_names: names of the
    categories 0..K-1 for the legend.
    """
    v = np.asarray(values)
    check_vertices(vertex, hemi, v.shape[0] if v.ndim else -1, label)
    if categorical:
        lab = v.astype(np.int64)
        k = int(lab.max() + 1) if lab.size else 0
        names = list(label_names) if label_names is not None else list(range(k))
        if len(names) < k:
            raise ValueError(f"{len(names)} label names for labels up to {k - 1}")
        k = max(k, len(names))
        legend = _swatch_legend(names, C.categorical_palette(k), label)
        return Painting(vertex, hemi, C.label_colors(lab, k), label, "mode", legend, {"n_labels": k})
    vf = v.astype(float)
    lo, hi = C.value_range(vf, vmin, vmax)
    if cmap is None:
        cmap = "RdBu_r" if lo < 0 < hi else "viridis"
    return Painting(vertex, hemi, C.value_colors(vf, cmap, lo, hi), label,
                    legend=_colorbar_legend(cmap, lo, hi, label),
                    info={"vmin": lo, "vmax": hi, "cmap": cmap, "values": vf})


def channel_painting(vertex, hemi, readout, n_clusters: int = 20, seed: int = 0, labels=None) -> Painting:
    """Channel map: readout weights (N, D) clustered (cosine k-means + merging), categorical colours.

    labels: precomputed (N,) cluster labels (skips the clustering, e.g. to share clusters across runs).
    """
    from factortopy.analysis.clusters import cluster_readouts

    w = np.asarray(readout)
    check_vertices(vertex, hemi, w.shape[0] if w.ndim else -1, "readout")
    lab = cluster_readouts(w, n_clusters, seed=seed) if labels is None else np.asarray(labels, np.int64)
    k = int(lab.max() + 1) if lab.size else 1
    p = value_painting(vertex, hemi, lab, categorical=True, label="channel cluster",
                       label_names=[f"c{i}" for i in range(k)])
    p.name = "channel"
    p.info["labels"] = lab
    return p


# ---------------------------------------------------------------------------- figures

def mesh_for(view: str, surface: str = "inflated", mesh: Mesh | None = None) -> Mesh:
    """The mesh a view is drawn on: the flat patch for 'flat', else ``mesh`` or fsaverage5 ``surface``."""
    if view == "flat":
        return mesh if (mesh is not None and mesh.surface == "flat") else fsaverage5("flat")
    return mesh if mesh is not None else fsaverage5(surface)


def draw_cell(ax, painting: Painting, view: str, hemis="both", surface: str = "inflated",
              mesh: Mesh | None = None, title: str | None = None):
    """Draw one view of a painting into ``ax`` (both hemispheres side by side where the view splits them)."""
    from factortopy.viz.render import draw_view, literal

    m = mesh_for(view, surface, mesh)
    draw_view(ax, m, hemis, view, painting.on_mesh(m), mode=painting.mode)
    if title:
        ax.set_title(literal(title), fontsize=9)
    return ax


def plot_painting(painting: Painting, views=DEFAULT_VIEWS, hemis="both", surface: str = "inflated",
                  mesh: Mesh | None = None, title: str | None = None, figsize=None, ax=None, axes=None,
                  legend: bool = True):
    """One map in several views: one row per view (both hemispheres), legend on the right.

    views: names from :data:`factortopy.viz.render.VIEWS` (a single name is accepted).
    hemis: hemispheres shown, 'lh', 'rh' or 'both'.
    ax / axes: draw into your own matplotlib Axes instead of a new Figure: ``ax`` for one view,
    ``axes`` one per view (in order); the legend then goes in an inset right of the last one.
    legend: draw the legend. Returns the matplotlib Figure.
    """
    from factortopy.viz.figure import new_figure
    from factortopy.viz.render import check_hemis, check_view, given_axes, legend_axes, literal

    views = (views,) if isinstance(views, str) else tuple(views)
    if not views:
        raise ValueError("no views given")
    for v in views:
        check_view(v)
    check_hemis(hemis)
    if surface not in ("inflated", "pial", "white", "sphere"):
        raise ValueError(f"unknown surface {surface!r}; valid: inflated, pial, white, sphere")
    cells = given_axes(ax, axes, len(views), f"plot_painting with views {', '.join(views)}")
    if cells is None:
        nrow = len(views)
        fig = new_figure(figsize=figsize or (7.5, 2.3 * nrow + 0.4), layout=None)
        gs = fig.add_gridspec(nrow, 2, width_ratios=[1, 0.16], left=0.02, right=0.9,
                              top=0.93 if title else 0.98, bottom=0.03, hspace=0.08, wspace=0.15)
        cells = [fig.add_subplot(gs[r, 0]) for r in range(nrow)]
        legend_ax = (lambda: fig.add_subplot(gs[:, 1].subgridspec(3, 1, height_ratios=[1, 1.4, 1])[1, 0]))
    else:
        fig = cells[0].figure
        legend_ax = (lambda: legend_axes(cells[-1]))
    for cell, v in zip(cells, views):
        draw_cell(cell, painting, v, hemis, surface, mesh)
        cell.text(-0.02, 0.5, v, transform=cell.transAxes, rotation=90, va="center", ha="right", fontsize=8)
    if legend and painting.legend is not None:
        painting.legend(legend_ax())
    if title:
        if ax is not None or axes is not None:
            cells[0].set_title(literal(title), fontsize=10)
        else:
            fig.suptitle(literal(title), fontsize=10)
    return fig


def layer_map(vertex, hemi, layer_probs, layer_names=None, **kw):
    """Layer map figure: see :func:`layer_painting`; ``kw`` go to :func:`plot_painting`."""
    return plot_painting(layer_painting(vertex, hemi, layer_probs, layer_names), **kw)


def space_map(vertex, hemi, space_xy, **kw):
    """Space map figure: see :func:`space_painting`; ``kw`` go to :func:`plot_painting`."""
    return plot_painting(space_painting(vertex, hemi, space_xy), **kw)


def scale_map(vertex, hemi, scale, **kw):
    """Scale map figure: see :func:`scale_painting`; ``kw`` go to :func:`plot_painting`."""
    return plot_painting(scale_painting(vertex, hemi, scale), **kw)


def channel_map(vertex, hemi, readout, n_clusters: int = 20, seed: int = 0, **kw):
    """Channel map figure: see :func:`channel_painting`; ``kw`` go to :func:`plot_painting`."""
    return plot_painting(channel_painting(vertex, hemi, readout, n_clusters, seed), **kw)


def value_map(vertex, hemi, values, cmap=None, vmin=None, vmax=None, label: str = "value",
              categorical: bool = False, label_names=None, **kw):
    """Any per-vertex value: see :func:`value_painting`; ``kw`` go to :func:`plot_painting`."""
    p = value_painting(vertex, hemi, values, cmap, vmin, vmax, label, categorical, label_names)
    return plot_painting(p, **kw)
