"""Plots of analysis tables (``factortopy.analysis``)."""
from __future__ import annotations

import numpy as np


def plot_layer_profiles(rows: list, key: str = "selected", title: str | None = None, ax=None):
    """Heatmap of per-ROI layer profiles (rows of :func:`factortopy.analysis.roi_layer_profiles`).

    key: 'selected' (fraction of vertices whose most probable layer is l) or 'mean_probs'.
    One row per ROI (n in the label), one column per layer; a dot marks each ROI's mean expected
    layer. ax: your own matplotlib Axes (default: a new Figure). Returns the matplotlib Figure.
    """
    from factortopy.viz.figure import new_figure

    if not rows:
        raise ValueError("no ROI rows to plot")
    if key not in ("selected", "mean_probs"):
        raise ValueError(f"unknown profile {key!r}; valid: 'selected', 'mean_probs'")
    mat = np.stack([np.asarray(r[key], float) for r in rows])
    names = rows[0]["layer_names"]
    L = mat.shape[1]
    if ax is None:
        fig = new_figure(figsize=(1.2 + 0.35 * L, 0.8 + 0.3 * len(rows)), layout="constrained")
        ax = fig.add_subplot()
    fig = ax.figure
    im = ax.imshow(mat, aspect="auto", cmap="magma", vmin=0, vmax=max(float(np.nanmax(mat)), 1e-9))
    ax.plot([r["expected_mean"] * (L - 1) for r in rows], range(len(rows)), "o", color="cyan", ms=4,
            label="mean expected layer")
    ax.set_yticks(range(len(rows)), [f"{r['roi']} (n={r['n']})" for r in rows], fontsize=7)
    ax.set_xticks(range(L), names, rotation=60, ha="right", fontsize=7)
    fig.colorbar(im, ax=ax, label="fraction of vertices" if key == "selected" else "mean p")
    ax.legend(fontsize=6, loc="upper right")
    if title:
        from factortopy.viz.render import literal

        ax.set_title(literal(title), fontsize=9)
    return fig
