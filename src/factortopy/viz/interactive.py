"""Interactive view: a self-contained HTML page (plotly, an optional extra) of any map."""
from __future__ import annotations

import os

import numpy as np

from factortopy.viz.maps import Painting
from factortopy.viz.render import BG_GYRUS, BG_SULCUS, check_hemis, hemi_offsets


def _plotly():
    try:
        import plotly.graph_objects as go
    except ImportError as err:  # optional extra
        raise ImportError(
            "the interactive view needs plotly: pip install plotly (or pip install 'factortopy[interactive]')"
        ) from err
    return go


def interactive_figure(painting: Painting, hemis="both", surface: str = "inflated", mesh=None,
                       title: str | None = None):
    """A plotly Figure: the map as per-vertex colours on the mesh, sulcal grey where there are no data.

    Vertex colours are exact (the same RGBA as the static maps); plotly interpolates inside faces.
    """
    go = _plotly()
    from factortopy.viz.maps import mesh_for

    hemis = check_hemis(hemis)
    m = mesh_for("flat" if surface == "flat" else "lateral", surface, mesh)
    rgba = painting.on_mesh(m)
    offsets = hemi_offsets(m, hemis)
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
        f = hm.faces
        traces.append(go.Mesh3d(x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], i=f[:, 0], j=f[:, 1], k=f[:, 2],
                                vertexcolor=vcol, name=h, hoverinfo="skip", flatshading=False,
                                lighting=dict(ambient=0.75, diffuse=0.35, specular=0.05)))
    fig = go.Figure(traces)
    axis = dict(visible=False)
    fig.update_layout(
        title=title or painting.name, margin=dict(l=0, r=0, t=40, b=0), paper_bgcolor="white",
        scene=dict(xaxis=axis, yaxis=axis, zaxis=axis, aspectmode="data",
                   camera=dict(eye=dict(x=0, y=-1.35, z=0.3))),  # from behind: visual cortex first
    )
    return fig


def interactive_html(painting: Painting, path, hemis="both", surface: str = "inflated", mesh=None,
                     title: str | None = None) -> str:
    """Write a self-contained HTML page (plotly.js inlined, works offline) of a map; returns the path."""
    fig = interactive_figure(painting, hemis, surface, mesh, title)
    path = os.fspath(path)
    fig.write_html(path, include_plotlyjs=True, full_html=True)
    return path
