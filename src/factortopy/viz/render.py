"""Draw per-vertex RGBA colours on a cortical mesh into a 2-D matplotlib Axes.

Why not nilearn's ``plot_surf``: our layer, space and channel maps are RGB per vertex, which a
colormap cannot carry, and matplotlib's 3-D axes are slow. Instead each view is an orthographic
projection drawn with a painter's algorithm (back faces culled, far faces first) as one 2-D
``PolyCollection`` with exact per-face colours. A face takes the data colour when at least 2 of its
3 vertices carry data (alpha > 0); otherwise it shows the sulcal background (grey, shaded).
"""
from __future__ import annotations

import numpy as np

from factortopy.surface import HEMIS, Mesh

# view name -> (direction from the brain to the camera, screen-up), per hemisphere where it differs
_VIEWS = {
    "lateral": {"lh": ((-1, 0, 0), (0, 0, 1)), "rh": ((1, 0, 0), (0, 0, 1))},
    "medial": {"lh": ((1, 0, 0), (0, 0, 1)), "rh": ((-1, 0, 0), (0, 0, 1))},
    "ventral": ((0, 0, -1), (0, 1, 0)),
    "dorsal": ((0, 0, 1), (0, 1, 0)),
    "posterior": ((0, -1, 0), (0, 0, 1)),
    "anterior": ((0, 1, 0), (0, 0, 1)),
    "flat": ((0, 0, 1), (0, 1, 0)),
}
#: valid view names
VIEWS = tuple(_VIEWS)
#: views that show one hemisphere per panel (the others show both hemispheres side by side)
PER_HEMI_VIEWS = ("lateral", "medial", "flat")

BG_GYRUS = 0.78   # grey level of gyri (sulc <= 0)
BG_SULCUS = 0.55  # grey level of sulci (sulc > 0)
_GAP_MM = 6.0     # gap between the two hemispheres of an inflated/sphere 'both' view


def check_view(view: str) -> str:
    if view not in _VIEWS:
        raise ValueError(f"unknown view {view!r}; valid views: {', '.join(VIEWS)}")
    return view


def check_hemis(hemi) -> tuple[str, ...]:
    """'lh', 'rh', 'both' or a sequence of them -> tuple of hemispheres."""
    if hemi is None or hemi == "both":
        return HEMIS
    hemis = (hemi,) if isinstance(hemi, str) else tuple(hemi)
    for h in hemis:
        if h not in HEMIS:
            raise ValueError(f"unknown hemisphere {h!r}; valid: 'lh', 'rh', 'both'")
    return hemis


def panels(view: str, hemis=("lh", "rh")) -> list[tuple[str, ...]]:
    """The panels of a view: one per hemisphere for lateral/medial/flat, else one with all hemis."""
    check_view(view)
    hemis = check_hemis(hemis)
    if view in PER_HEMI_VIEWS:
        return [(h,) for h in hemis]
    return [tuple(hemis)]


def _camera(view: str, hemi: str):
    spec = _VIEWS[view]
    d, up = spec[hemi] if isinstance(spec, dict) else spec
    d = np.asarray(d, float)
    up = np.asarray(up, float)
    right = np.cross(-d, up)  # viewer looks along -d
    return d, up, right


def face_colors(faces: np.ndarray, vertex_rgba: np.ndarray, mode: str = "mean"):
    """Per-face data colour from per-vertex RGBA.

    faces: (F, 3) int; vertex_rgba: (V, 4), alpha 0 = no data at that vertex.
    mode: 'mean' (average of the face's data vertices: continuous maps) or 'mode' (the colour two
    vertices share, else the first data vertex's: categorical maps, no blended colours).
    Returns (rgb (F, 3), has_data (F,) bool): has_data where >= 2 of the 3 vertices carry data.
    """
    vr = np.asarray(vertex_rgba, float)
    has = vr[:, 3] > 0
    fh = has[faces]  # (F, 3)
    n = fh.sum(1)
    painted = n >= 2
    if mode == "mean":
        rgb = (vr[faces, :3] * fh[..., None]).sum(1) / np.maximum(n, 1)[:, None]
    elif mode == "mode":
        a, b, c = (vr[faces[:, k], :3] for k in range(3))
        ha, hb, hc = fh[:, 0], fh[:, 1], fh[:, 2]
        eq_bc = hb & hc & np.all(b == c, 1)
        # default: first data vertex; if b and c agree (and a differs or lacks data) use b
        rgb = np.where(ha[:, None], a, np.where(hb[:, None], b, c))
        use_b = eq_bc & ~(ha & (np.all(a == b, 1) | np.all(a == c, 1)))
        rgb = np.where(use_b[:, None], b, rgb)
    else:
        raise ValueError(f"unknown face colour mode {mode!r}; valid: 'mean', 'mode'")
    return rgb, painted


def project(coords: np.ndarray, view: str, hemi: str) -> tuple[np.ndarray, np.ndarray]:
    """Orthographic projection: (V, 3) -> screen (V, 2) (x right, y up) and depth (V,) (larger = nearer)."""
    d, up, right = _camera(check_view(view), hemi)
    c = np.asarray(coords, float)
    return np.stack([c @ right, c @ up], 1), c @ d


def hemi_offsets(mesh: Mesh, hemis) -> dict:
    """x-shift (mm) per hemisphere so that surfaces centred on 0 (inflated, sphere) sit side by side."""
    hemis = tuple(hemis)
    if len(hemis) < 2:
        return {h: 0.0 for h in hemis}
    lh, rh = mesh["lh"].coords[:, 0], mesh["rh"].coords[:, 0]
    if lh.max() <= rh.min() + 1.0:  # already apart (pial, white)
        return {"lh": 0.0, "rh": 0.0}
    return {"lh": -lh.max() - _GAP_MM / 2, "rh": -rh.min() + _GAP_MM / 2}


def build_polys(mesh: Mesh, hemis, view: str, vertex_rgba: dict, mode: str = "mean",
                shade_data: bool = False):
    """Projected triangles and their colours for one panel, back to front.

    vertex_rgba: hemi -> (V, 4) RGBA on the mesh's vertices (alpha 0 = no data).
    Returns (tris (F', 3, 2) screen coordinates in mm, colors (F', 4) RGBA, is_data (F',) bool).
    """
    check_view(view)
    hemis = check_hemis(hemis)
    offsets = hemi_offsets(mesh, hemis) if view not in PER_HEMI_VIEWS else {h: 0.0 for h in hemis}
    all_tris, all_cols, all_depth, all_data = [], [], [], []
    for h in hemis:
        hm = mesh[h]
        coords = np.array(hm.coords, float)
        coords[:, 0] += offsets[h]
        faces = hm.faces
        if view == "flat":
            xy = coords[:, :2]
            depth = np.zeros(len(coords))
            shade = np.ones(len(faces))
            keep = np.ones(len(faces), bool)
        else:
            xy, depth = project(coords, view, h)
            d, _, _ = _camera(view, h)
            p = coords[faces]
            normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
            normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
            facing = normal @ d
            keep = facing > 0  # outward normals: cull faces turned away from the camera
            shade = 0.55 + 0.45 * np.clip(facing, 0, 1)  # Lambert, light from the camera
        sulc = hm.sulc if hm.sulc is not None else np.zeros(hm.n_vertices)
        grey = np.where(sulc[faces].mean(1) > 0, BG_SULCUS, BG_GYRUS) * shade
        cols = np.ones((len(faces), 4))
        cols[:, :3] = grey[:, None]
        rgba = vertex_rgba.get(h)
        data = np.zeros(len(faces), bool)
        if rgba is not None:
            rgba = np.asarray(rgba, float)
            if rgba.shape != (hm.n_vertices, 4):
                raise ValueError(f"{h} colours must have shape ({hm.n_vertices}, 4); got {rgba.shape}")
            rgb, data = face_colors(faces, rgba, mode)
            if shade_data:
                rgb = rgb * shade[:, None]
            cols[data, :3] = rgb[data]
        all_tris.append(xy[faces[keep]])
        all_cols.append(cols[keep])
        all_depth.append(depth[faces[keep]].mean(1))
        all_data.append(data[keep])
    tris = np.concatenate(all_tris)
    order = np.argsort(np.concatenate(all_depth), kind="stable")  # far first
    return tris[order], np.concatenate(all_cols)[order], np.concatenate(all_data)[order]


def literal(text) -> str:
    """``text`` as matplotlib should draw it, character for character: ``$`` is escaped, so a run
    name or title holding one never starts mathtext (an odd count made every figure fail)."""
    return str(text).replace("$", r"\$")


def _show(ax, tris, cols, title=None):
    """Add projected triangles to a plain 2-D Axes as one PolyCollection, framed, axes hidden."""
    from matplotlib.collections import PolyCollection

    # antialiased=False: no hairline seams between neighbouring triangles
    pc = PolyCollection(tris, facecolors=cols, edgecolors="none", linewidths=0, antialiased=False)
    ax.add_collection(pc)
    lo, hi = tris.reshape(-1, 2).min(0), tris.reshape(-1, 2).max(0)
    pad = 0.02 * (hi - lo).max()
    ax.set_xlim(lo[0] - pad, hi[0] + pad)
    ax.set_ylim(lo[1] - pad, hi[1] + pad)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if title:
        ax.set_title(literal(title), fontsize=8)
    return pc


def draw_panel(ax, mesh: Mesh, hemis, view: str, vertex_rgba: dict, mode: str = "mean",
               shade_data: bool = False, title: str | None = None):
    """Draw one panel into ``ax`` (a plain 2-D Axes) in screen mm; returns the PolyCollection."""
    tris, cols, _ = build_polys(mesh, hemis, view, vertex_rgba, mode, shade_data)
    return _show(ax, tris, cols, title)


def draw_view(ax, mesh: Mesh, hemis, view: str, vertex_rgba: dict, mode: str = "mean",
              shade_data: bool = False, title: str | None = None):
    """Draw every panel of a view into one Axes, side by side (left hemisphere left).

    lateral/medial/flat show one panel per hemisphere, the other views one panel with both
    (see :func:`panels`). Returns the PolyCollection.
    """
    pans = panels(view, hemis)
    if len(pans) == 1:
        return draw_panel(ax, mesh, pans[0], view, vertex_rgba, mode, shade_data, title)
    all_tris, all_cols, x0 = [], [], 0.0
    for pan in pans:
        tris, cols, _ = build_polys(mesh, pan, view, vertex_rgba, mode, shade_data)
        lo, hi = tris[..., 0].min(), tris[..., 0].max()
        tris = tris.copy()
        tris[..., 0] += x0 - lo  # panels never overlap, so their faces need no common depth order
        x0 += (hi - lo) + _GAP_MM
        all_tris.append(tris)
        all_cols.append(cols)
    return _show(ax, np.concatenate(all_tris), np.concatenate(all_cols), title)


def given_axes(ax, axes, n: int, what: str) -> list | None:
    """The caller's Axes as a flat list of ``n`` (``ax=`` one Axes, ``axes=`` any nesting, row-major), or
    None when neither was given (then the plotting function makes its own Figure)."""
    if ax is not None and axes is not None:
        raise ValueError("give ax= or axes=, not both")
    if ax is None and axes is None:
        return None
    got = [ax] if ax is not None else list(np.ravel(np.asarray(axes, dtype=object)))
    if len(got) != n:
        raise ValueError(f"{what} draws {n} panel(s), one Axes each; got {len(got)} Axes")
    return got


def legend_axes(ax):
    """A small inset Axes right of ``ax`` for a map's legend (when the caller supplied the Axes)."""
    return ax.inset_axes([1.06, 0.2, 0.14, 0.6])
