"""Per-ROI layer profiles: how the selected layers distribute within each region."""
from __future__ import annotations

import numpy as np

from factortopy.analysis.layers import check_layer_probs, expected_layer, selected_layer


def roi_labels_from_masks(vertex, hemi, masks: dict, names: dict | None = None) -> np.ndarray:
    """Per-vertex ROI names from fsaverage-space label arrays (Algonauts ``<cls>_fsaverage_space.npy``).

    vertex: (N,) fsaverage index; hemi: (N,) 'lh'/'rh'; masks: hemi -> (163842,) int (0 = none,
    k = label k); names: {k: name} (Algonauts ``mapping_<cls>.npy``). Returns (N,) str ('' = none).
    """
    v = np.asarray(vertex, np.int64)
    h = np.asarray(hemi).astype(str)
    out = np.full(len(v), "", dtype=object)
    for hh in ("lh", "rh"):
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


def roi_layer_profiles(layer_probs, roi, layer_names=None, roi_order=None) -> list[dict]:
    """One row per ROI: the distribution of selected layers and the expected-layer summary.

    layer_probs: (N, L); roi: (N,) labels ('' or None or negative = no ROI, left out).
    roi_order: ROI labels in the order of the rows (default: sorted labels).
    Each row: {'roi', 'n', 'mean_probs' (L,) mean p_v, 'selected' (L,) fraction of vertices whose
    most probable layer is l, 'expected_mean', 'expected_sd' (expected layer in [0, 1]),
    'layer_names'}.
    """
    p = check_layer_probs(layer_probs)
    roi = np.asarray(roi, dtype=object)
    if len(roi) != len(p):
        raise ValueError(f"{len(roi)} ROI labels for {len(p)} vertices")
    L = p.shape[1]
    names = list(layer_names) if layer_names is not None else [f"layer {i}" for i in range(L)]
    if len(names) != L:
        raise ValueError(f"{len(names)} layer names for {L} layers")
    valid = np.array([r is not None and r != "" and not (isinstance(r, (int, np.integer)) and r < 0) for r in roi])
    labels = sorted({r for r in roi[valid].tolist()}, key=str) if roi_order is None else list(roi_order)
    e = expected_layer(p)
    sel = selected_layer(p)
    rows = []
    for lab in labels:
        m = valid & (roi == lab)
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
