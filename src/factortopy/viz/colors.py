"""Colour codes of the maps: per-vertex values -> RGBA (N, 4) float in [0, 1], plus legend images.

Everything here is numpy + matplotlib colormaps (imported lazily); no drawing.
"""
from __future__ import annotations

import numpy as np

LAYER_CMAP = "coolwarm"   # first layer blue -> last layer red
SCALE_CMAP = "PiYG_r"     # local (0) green -> global (1) pink: diverging, distinct from the layer map
#: brightness of a zero-confidence vertex relative to a fully confident one (keeps its hue visible)
LAYER_DIM_FLOOR = 0.3


def _cmap(name):
    import matplotlib

    return matplotlib.colormaps[name] if isinstance(name, str) else name


def layer_rgb(position, confidence) -> np.ndarray:
    """Layer-map colour: hue from the layer position, brightness from the confidence.

    position: (...) float in [0, 1] (expected layer, 0 = first); confidence: (...) in [0, 1].
    Returns (..., 3) RGB: coolwarm(position) * (floor + (1 - floor) * confidence).
    """
    pos = np.clip(np.asarray(position, float), 0, 1)
    conf = np.clip(np.asarray(confidence, float), 0, 1)
    rgb = _cmap(LAYER_CMAP)(pos)[..., :3]
    return rgb * (LAYER_DIM_FLOOR + (1 - LAYER_DIM_FLOOR) * conf)[..., None]


def layer_colors(layer_probs) -> np.ndarray:
    """(N, L) layer probabilities -> (N, 4) RGBA of the layer map."""
    from factortopy.analysis.layers import expected_layer, layer_confidence

    return _rgba(layer_rgb(expected_layer(layer_probs), layer_confidence(layer_probs)))


def layer_legend_image(n: int = 64) -> np.ndarray:
    """(n, n, 3) legend: layer position 0 -> 1 across (columns), confidence 1 -> 0 down (rows)."""
    pos, conf = np.meshgrid(np.linspace(0, 1, n), np.linspace(1, 0, n))
    return layer_rgb(pos, conf)


def wheel_rgb(x, y) -> np.ndarray:
    """Space-map colour of image position (x, y) in [-1, 1]^2 (grid_sample convention, y down).

    Hue = angle (counter-clockwise on the image as seen, i.e. with y pointing down), saturation =
    radius (0 at the image centre = white-ish, 1 at the border), value 1 - 0.25 * radius so the
    border colours are not neon. Returns (..., 3) RGB.
    """
    from matplotlib.colors import hsv_to_rgb

    x = np.asarray(x, float)
    y = np.asarray(y, float)
    r = np.clip(np.hypot(x, y), 0, 1)
    hue = (np.arctan2(-y, x) / (2 * np.pi)) % 1.0
    hsv = np.stack([hue, r, 1 - 0.25 * r], axis=-1)
    return hsv_to_rgb(hsv)


def space_colors(space_xy) -> np.ndarray:
    """(N, 2) selected positions in (-1, 1) -> (N, 4) RGBA through the colour wheel."""
    xy = np.asarray(space_xy, float)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"space_xy must have shape (N, 2); got {xy.shape}")
    return _rgba(wheel_rgb(xy[:, 0], xy[:, 1]))


def wheel_legend_image(n: int = 65) -> np.ndarray:
    """(n, n, 4) RGBA colour wheel; row 0 = image top (y = -1), column 0 = image left (x = -1).

    Pixels outside the unit disc are transparent.
    """
    g = np.linspace(-1, 1, n)
    x, y = np.meshgrid(g, g)  # y grows downwards with the row, as in the image
    rgba = _rgba(wheel_rgb(x, y))
    rgba[np.hypot(x, y) > 1.0 + 1e-9, 3] = 0.0
    return rgba


def scale_colors(scale) -> np.ndarray:
    """(N,) scale in (0, 1) (0 = local token, 1 = global token) -> (N, 4) RGBA."""
    s = np.asarray(scale, float)
    if s.ndim != 1:
        raise ValueError(f"scale must have shape (N,); got {s.shape}")
    return value_colors(s, SCALE_CMAP, 0.0, 1.0)


def value_colors(values, cmap="viridis", vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """(N,) values -> (N, 4) RGBA through ``cmap`` on [vmin, vmax]; NaN -> transparent."""
    v = np.asarray(values, float)
    if v.ndim != 1:
        raise ValueError(f"values must have shape (N,); got {v.shape}")
    vmin, vmax = value_range(v, vmin, vmax)
    t = (v - vmin) / (vmax - vmin) if vmax > vmin else np.full_like(v, 0.5)
    rgba = np.asarray(_cmap(cmap)(np.clip(np.nan_to_num(t, nan=0.0), 0, 1)), float)
    rgba[np.isnan(v), 3] = 0.0
    return rgba


def value_range(values, vmin=None, vmax=None, symmetric: bool | None = None) -> tuple[float, float]:
    """Colour limits: given ones, else the data range; symmetric about 0 when values take both signs."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    lo = float(v.min()) if v.size else 0.0
    hi = float(v.max()) if v.size else 1.0
    if symmetric is None:
        symmetric = lo < 0 < hi and vmin is None and vmax is None
    if symmetric:
        m = max(abs(lo), abs(hi))
        lo, hi = -m, m
    lo = lo if vmin is None else float(vmin)
    hi = hi if vmax is None else float(vmax)
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def categorical_palette(n: int) -> np.ndarray:
    """(n, 3) distinct RGB colours, none of them grey (grey is the cortex background).

    tab10 / tab20 without their greys first, then evenly spread hues (golden-ratio steps).
    """
    tab10 = [c for i, c in enumerate(_cmap("tab10").colors) if i != 7]
    if n <= len(tab10):
        return np.asarray(tab10[:n], float).reshape(n, 3)
    t20 = _cmap("tab20").colors
    # dark members of the pairs first (contrast), greys (pair 7) left out
    cols = [t20[i] for i in range(0, 20, 2) if i != 14] + [t20[i] for i in range(1, 20, 2) if i != 15]
    cols = np.asarray(cols, float)
    if n <= len(cols):
        return cols[:n]
    from matplotlib.colors import hsv_to_rgb

    m = n - len(cols)
    hue = (np.arange(m) * 0.618033988749895 + 0.05) % 1.0
    sat = np.where(np.arange(m) % 2 == 0, 0.8, 0.55)
    val = np.where(np.arange(m) % 3 == 0, 0.95, 0.7)
    return np.concatenate([cols, hsv_to_rgb(np.stack([hue, sat, val], -1))])


def label_colors(labels, n_labels: int | None = None) -> np.ndarray:
    """(N,) integer labels 0..K-1 -> (N, 4) RGBA from :func:`categorical_palette`; label < 0 -> transparent."""
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must have shape (N,); got {lab.shape}")
    lab = lab.astype(np.int64)
    k = int(n_labels if n_labels is not None else (lab.max() + 1 if lab.size else 0))
    pal = categorical_palette(max(k, 1))
    rgba = np.zeros((lab.size, 4))
    ok = lab >= 0
    rgba[ok, :3] = pal[lab[ok]]
    rgba[ok, 3] = 1.0
    return rgba


def _rgba(rgb: np.ndarray) -> np.ndarray:
    out = np.ones(rgb.shape[:-1] + (4,))
    out[..., :3] = rgb
    return out
