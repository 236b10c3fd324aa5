"""Paint RUN_DIRs: the map named by ``what`` from a run's files, as one figure or a grid of runs."""
from __future__ import annotations

import numpy as np

from factortopy.viz import maps as M

#: map names understood by :func:`painting_from_maps` ('score' = Pearson r from scores.npz)
WHATS = ("layer", "space", "scale", "channel", "score", "r", "r2", "ceiling_r")


def painting_from_maps(maps: dict, what: str = "layer", n_clusters: int = 20) -> M.Painting:
    """The :class:`~factortopy.viz.maps.Painting` of one map of a :func:`~factortopy.viz.io.load_maps` dict."""
    if what not in WHATS:
        raise ValueError(f"unknown map {what!r}; valid: {', '.join(WHATS)}")
    key = "r" if what == "score" else what
    src = maps.get("path", "the run")
    need = {"layer": "layer_probs", "space": "space_xy", "scale": "scale", "channel": "readout"}.get(what, key)
    if maps.get(need) is None:
        hint = " (scores.npz missing?)" if key in ("r", "r2") else ""
        raise ValueError(f"{src} has no {need!r}: cannot paint the {what} map{hint}")
    v, h = maps["vertex"], maps["hemi"]
    if what == "layer":
        return M.layer_painting(v, h, maps["layer_probs"], maps.get("layer_names"))
    if what == "space":
        return M.space_painting(v, h, maps["space_xy"])
    if what == "scale":
        return M.scale_painting(v, h, maps["scale"])
    if what == "channel":
        return M.channel_painting(v, h, maps["readout"], n_clusters)
    return M.value_painting(v, h, np.asarray(maps[key], float), label=key)


def paint_run(run_dir, what: str = "layer", views=M.DEFAULT_VIEWS, hemis="both", surface: str = "inflated",
              mesh=None, n_clusters: int = 20, title: str | None = None):
    """One map of one RUN_DIR (or selectors.npz / planted_truth.npz) in several views -> Figure."""
    from factortopy.viz.io import load_maps

    maps = load_maps(run_dir)
    p = painting_from_maps(maps, what, n_clusters)
    return M.plot_painting(p, views, hemis, surface, mesh, title=title if title is not None else f"{maps['title']}: {what}")


def paint(run_dirs, what="layer", views=None, hemis="both", surface: str = "inflated", mesh=None,
          n_clusters: int = 20, titles=None):
    """Paint one or several runs.

    One run: :func:`paint_run` (views default lateral, medial, ventral, posterior).
    Several runs: a grid, one column per run, one row per map in ``what`` (a name or a list), drawn
    in a single view (default 'posterior'; the first of ``views`` if given).
    """
    from factortopy.viz.grid import run_grid

    runs = [run_dirs] if isinstance(run_dirs, str) or hasattr(run_dirs, "__fspath__") else list(run_dirs)
    whats = [what] if isinstance(what, str) else list(what)
    for w in whats:
        if w not in WHATS:
            raise ValueError(f"unknown map {w!r}; valid: {', '.join(WHATS)}")
    if len(runs) == 1 and len(whats) == 1:
        return paint_run(runs[0], whats[0], views or M.DEFAULT_VIEWS, hemis, surface, mesh, n_clusters)
    if isinstance(views, str):
        views = (views,)
    view = views[0] if views else "posterior"
    rows = ["r" if w == "score" else w for w in whats]
    return run_grid(runs, rows=rows, view=view, titles=titles, hemis=hemis, surface=surface, mesh=mesh,
                    n_clusters=n_clusters)
