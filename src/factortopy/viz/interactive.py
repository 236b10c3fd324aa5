"""Interactive view: a self-contained HTML page (plotly, an optional extra) of any map.

The page carries its legend (the static maps' legend, as an inline PNG) and hover text for every
vertex: index, hemisphere, ROI, most probable layer and its probability, selected image position,
scale and the painted value. plotly.js is inlined: the file works offline.

Every string that reaches the page from data (titles, map names, layer and ROI names, the
description) goes through :func:`plotly_text`: plotly renders its own pseudo-HTML from text
(``<a href>`` links, ``<b>``, ``<span style>``, ``<br>``), so a layer name or a run label holding
markup would otherwise become a live link or styled text. The HTML around the figure is plotly's
JSON, which escapes ``</script>``.
"""
from __future__ import annotations

import base64
import html
import io
import os
import textwrap

import numpy as np

from factortopy.viz.maps import Painting
from factortopy.viz.render import BG_GYRUS, BG_SULCUS, check_hemis, hemi_offsets

_HEMI_NAMES = {"lh": "left hemisphere (lh)", "rh": "right hemisphere (rh)"}
#: per-vertex keys read for the hover text, from the maps dict or the painting's own data
_HOVER_KEYS = ("layer_probs", "space_xy", "scale", "r")


def plotly_text(value) -> str:
    """``value`` as text plotly shows literally: ``&``, ``<`` and ``>`` as entities (plotly turns them
    back into the characters after it has read its own tags), so no tag in a name is ever read as one."""
    return html.escape(str(value), quote=False)


def _plotly():
    try:
        import plotly.graph_objects as go
    except ImportError as err:  # optional extra
        raise ImportError(
            "the interactive view needs plotly: pip install plotly (or pip install 'factortopy[interactive]')"
        ) from err
    return go


def _roi_names(roi, n: int) -> np.ndarray:
    """(n,) str: the ROI name(s) of each vertex ('' = none) from labels or a {name: mask} dict."""
    from factortopy.analysis.profiles import roi_masks

    out = [[] for _ in range(n)]
    for name, m in roi_masks(roi, n).items():
        for i in np.flatnonzero(m):
            out[i].append(str(name))
    return np.array([", ".join(x) for x in out], dtype=object)


def hover_text(painting: Painting, maps: dict | None = None, roi=None) -> list[str]:
    """One hover line block (plotly text, ``<br>``-separated; names escaped by :func:`plotly_text`)
    per vertex of ``painting``.

    maps: a maps dict (:func:`factortopy.viz.load_maps`) whose per-vertex arrays are shown too,
    matched to the painting by (hemi, vertex). roi: (N,) labels or {name: (N,) bool mask} over the
    painting's vertices (``subject.extra["rois"]``).
    """
    from factortopy.runs import align_columns

    n = len(painting.vertex)
    data = {k: painting.info[k] for k in ("layer_probs", "space_xy", "scale") if painting.info.get(k) is not None}
    names = painting.info.get("layer_names")
    have = np.ones(n, bool)
    if maps is not None:
        ia, ib = align_columns(painting.vertex, painting.hemi, maps["vertex"], maps["hemi"])
        have = np.zeros(n, bool)
        have[ia] = True
        take = np.zeros(n, np.int64)
        take[ia] = ib
        for k in _HOVER_KEYS:
            if maps.get(k) is not None and k not in data:
                data[k] = np.asarray(maps[k])[take]
        names = names if names is not None else maps.get("layer_names")
    rois = _roi_names(roi, n) if roi is not None else None
    values = painting.info.get("values")
    lines = []
    names = [plotly_text(x) for x in names] if names is not None else None
    if rois is not None:
        rois = np.array([plotly_text(x) for x in rois], dtype=object)
    label = plotly_text(painting.name)
    for i in range(n):
        t = [f"vertex {int(painting.vertex[i])}, {_HEMI_NAMES[painting.hemi[i]]}"]
        if rois is not None:
            t.append(f"ROI: {rois[i] or 'none'}")
        if "layer_probs" in data and (have[i] or "layer_probs" in painting.info):
            p = data["layer_probs"][i]
            k = int(np.argmax(p))
            t.append(f"layer: {names[k] if names is not None else k} (p = {p[k]:.2f})")
        if "space_xy" in data and (have[i] or "space_xy" in painting.info):
            x, y = data["space_xy"][i]
            t.append(f"position: x = {x:+.2f}, y = {y:+.2f} (image -1..1, y down)")
        if "scale" in data and (have[i] or "scale" in painting.info):
            t.append(f"scale: {float(data['scale'][i]):.2f} (0 local, 1 global)")
        if values is not None:
            t.append(f"{label}: {values[i]:.3g}")
        elif "r" in data and have[i]:
            t.append(f"r: {float(data['r'][i]):.3g}")
        lines.append("<br>".join(t))
    return lines


def legend_png(painting: Painting) -> str | None:
    """The painting's legend as a ``data:image/png;base64`` URI (inline, no file), or None without one."""
    if painting.legend is None:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.8, 2.0), dpi=100)
    painting.legend(fig.add_axes([0.2, 0.3, 0.5, 0.55]))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def interactive_figure(painting: Painting, hemis="both", surface: str = "inflated", mesh=None,
                       title: str | None = None, maps: dict | None = None, roi=None,
                       description: str | None = None):
    """A plotly Figure: the map as per-vertex colours on the mesh, sulcal grey where there are no data,
    the legend on the right and hover text on every vertex (see :func:`hover_text`).

    Vertex colours are exact (the same RGBA as the static maps); plotly interpolates inside faces.
    description: a line under the legend saying what the colours mean (default the map's name).
    """
    go = _plotly()
    from factortopy.viz.maps import mesh_for

    hemis = check_hemis(hemis)
    m = mesh_for("flat" if surface == "flat" else "lateral", surface, mesh)
    rgba = painting.on_mesh(m)
    offsets = hemi_offsets(m, hemis)
    text = np.array(hover_text(painting, maps, roi), dtype=object)
    traces = []
    for h in hemis:
        hm = m[h]
        xyz = np.array(hm.coords, float)
        xyz[:, 0] += offsets[h]
        sulc = hm.sulc if hm.sulc is not None else np.zeros(hm.n_vertices)
        col = np.repeat(np.where(sulc > 0, BG_SULCUS, BG_GYRUS)[:, None], 3, 1)
        has = rgba[h][:, 3] > 0
        col[has] = rgba[h][has, :3]
        c255 = np.round(col * 255).astype(int)
        vcol = [f"rgb({r},{g},{b})" for r, g, b in c255]
        hov = np.array([f"vertex {v}, {_HEMI_NAMES[h]}: no data" for v in range(hm.n_vertices)], dtype=object)
        sel = np.flatnonzero(painting.hemi == h)
        on = painting.vertex[sel] < hm.n_vertices
        hov[painting.vertex[sel][on]] = text[sel][on]
        f = hm.faces
        traces.append(go.Mesh3d(x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], i=f[:, 0], j=f[:, 1], k=f[:, 2],
                                vertexcolor=vcol, name=h, text=hov.tolist(), hovertemplate="%{text}<extra></extra>",
                                flatshading=False, lighting=dict(ambient=0.75, diffuse=0.35, specular=0.05)))
    fig = go.Figure(traces)
    axis = dict(visible=False)
    fig.update_layout(
        title=plotly_text(title or painting.name), margin=dict(l=0, r=0, t=40, b=0), paper_bgcolor="white",
        scene=dict(xaxis=axis, yaxis=axis, zaxis=axis, aspectmode="data", domain=dict(x=[0, 0.82], y=[0, 1]),
                   camera=dict(eye=dict(x=0, y=-1.35, z=0.3))),  # from behind: visual cortex first
    )
    src = legend_png(painting)
    if src is not None:
        fig.add_layout_image(source=src, name="legend", xref="paper", yref="paper", x=0.84, y=0.85,
                             sizex=0.15, sizey=0.5, xanchor="left", yanchor="top", sizing="contain")
    fig.add_annotation(text="<br>".join(plotly_text(line) for line in textwrap.wrap(description or painting.name, 26)),
                       name="legend-text",
                       xref="paper", yref="paper", x=0.84, y=0.33, xanchor="left", yanchor="top", showarrow=False,
                       align="left", font=dict(size=11))
    return fig


def interactive_html(painting: Painting, path, hemis="both", surface: str = "inflated", mesh=None,
                     title: str | None = None, maps: dict | None = None, roi=None,
                     description: str | None = None) -> str:
    """Write a self-contained HTML page (plotly.js inlined, works offline) of a map; returns the path.

    maps, roi, description: see :func:`interactive_figure` and :func:`hover_text`.
    """
    from factortopy._files import write_text

    fig = interactive_figure(painting, hemis, surface, mesh, title, maps, roi, description)
    page = fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})
    return write_text(os.fspath(path), page)
