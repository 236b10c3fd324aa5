"""Per-ROI layer profiles: how the selected layers distribute within each region."""
from __future__ import annotations

import numpy as np

from factortopy.analysis.layers import check_layer_probs, expected_layer, selected_layer
from factortopy.surface import HEMIS


def roi_labels_from_masks(vertex, hemi, masks: dict, names: dict | None = None) -> np.ndarray:
    """Per-vertex ROI names from fsaverage-space label arrays (Algonauts ``<cls>_fsaverage_space.npy``).

    vertex: (N,) fsaverage index; hemi: (N,) 'lh'/'rh'; masks: hemi -> (163842,) int (0 = none,
    k = label k); names: {k: name} (Algonauts ``mapping_<cls>.npy``). Returns (N,) str ('' = none).
    """
    v = np.asarray(vertex, np.int64)
    h = np.asarray(hemi).astype(str)
    out = np.full(len(v), "", dtype=object)
    for hh in HEMIS:
        sel = h == hh
        if not sel.any():
            continue
        if hh not in masks:
            raise ValueError(f"no ROI mask for {hh}")
        m = np.asarray(masks[hh])
        if v[sel].max() >= len(m):
            raise ValueError(f"{hh} ROI mask has {len(m)} entries but vertex indices reach {v[sel].max()}")
        lab = m[v[sel]].astype(np.int64)
        out[sel] = ["" if k == 0 else (names.get(k, str(k)) if names else str(k)) for k in lab.tolist()]
    return out.astype(str)


def roi_masks(roi, n: int, roi_order=None) -> dict:
    """{name: (n,) bool mask} from per-vertex ROI labels or from the loaders' ROI dict.

    roi: (n,) labels ('' or None or negative = no ROI; names sorted unless ``roi_order``) or
    {name: (n,) bool mask} as in ``subject.extra["rois"]`` (masks may overlap; loader order unless
    ``roi_order``). roi_order: names in the order wanted (a label absent from the labels gives an
    empty mask; a name absent from a dict is an error).
    """
    if isinstance(roi, dict):
        masks = {}
        for name, m in roi.items():
            m = np.asarray(m)
            if m.shape != (n,):
                raise ValueError(f"ROI mask {name!r} has shape {m.shape} for {n} vertices: masks must be (N,) "
                                 "over the same vertices as layer_probs")
            if m.dtype != bool:
                if not np.isin(m, (0, 1)).all():
                    raise ValueError(f"ROI mask {name!r} must be boolean (True = in the ROI); got {m.dtype} values")
                m = m.astype(bool)
            masks[name] = m
        if roi_order is None:
            return masks
        unknown = [r for r in roi_order if r not in masks]
        if unknown:
            raise ValueError(f"ROIs {unknown} not in the ROI dict; it has {', '.join(map(str, masks))}")
        return {r: masks[r] for r in roi_order}
    roi = np.asarray(roi, dtype=object)
    if roi.shape != (n,):
        raise ValueError(f"{len(roi)} ROI labels for {n} vertices")
    valid = np.array([r is not None and r != "" and not (isinstance(r, (int, np.integer)) and r < 0) for r in roi],
                     dtype=bool)
    labels = sorted({r for r in roi[valid].tolist()}, key=str) if roi_order is None else list(roi_order)
    return {lab: valid & (roi == lab) for lab in labels}


def roi_layer_profiles(layer_probs, roi, layer_names=None, roi_order=None, scheme=None,
                       overlap: str = "earliest") -> list[dict]:
    """One row per ROI: the distribution of selected layers and the expected-layer summary.

    layer_probs: (N, L); roi: (N,) labels ('' or None or negative = no ROI, left out) or the ROI
    dict the loaders return, ``subject.extra["rois"]`` = {name: (N,) bool mask} (overlapping masks:
    a vertex counts in each of its ROIs). scheme: a ranking scheme's name (``'paper'``, ...; see
    :mod:`factortopy.analysis.roi_hierarchy`): one row per group of the scheme instead, early ->
    late, each vertex in the one group ``overlap`` gives it (whole-brain masks and ROIs outside the
    scheme count in none). roi_order: ROI names in the order of the rows (default: sorted labels,
    the dict's order, or the scheme's). Each row: {'roi', 'n', 'mean_probs' (L,) mean p_v,
    'selected' (L,) fraction of vertices whose most probable layer is l, 'expected_mean',
    'expected_sd' (expected layer in [0, 1]), 'layer_names'}.
    """
    p = check_layer_probs(layer_probs)
    L = p.shape[1]
    names = list(layer_names) if layer_names is not None else [f"layer {i}" for i in range(L)]
    if len(names) != L:
        raise ValueError(f"{len(names)} layer names for {L} layers")
    e = expected_layer(p)
    sel = selected_layer(p)
    if scheme is not None:
        from factortopy.analysis.roi_hierarchy import hierarchy_positions

        h = hierarchy_positions(roi, len(p), scheme, overlap)
        roi, roi_order = h["group"], roi_order or [g for g, _ in h["groups"]]
    rows = []
    for lab, m in roi_masks(roi, len(p), roi_order).items():
        n = int(m.sum())
        rows.append({
            "roi": lab, "n": n,
            "mean_probs": p[m].mean(0) if n else np.full(L, np.nan),
            "selected": np.bincount(sel[m], minlength=L) / n if n else np.full(L, np.nan),
            "expected_mean": float(e[m].mean()) if n else float("nan"),
            "expected_sd": float(e[m].std()) if n else float("nan"),
            "layer_names": names,
        })
    return rows
