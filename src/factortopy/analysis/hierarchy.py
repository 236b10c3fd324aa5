"""Hierarchy score: does a run's expected layer follow the visual hierarchy? (A rank correlation;
the paper's own measure is the alignment line, :mod:`factortopy.analysis.alignment`.)

Spearman rank correlation between each vertex's expected layer (sum_l l p_vl / (L - 1)) and its
position in the hierarchy: the position of its ROI under one ranking scheme
(:mod:`factortopy.analysis.roi_hierarchy`) when ROIs are given, else its geodesic distance from a
seed region (default the occipital pole), with a seeded spatial block bootstrap interval.
"""
from __future__ import annotations

import numpy as np

from factortopy.analysis.intervals import percentile_interval, spatial_blocks
from factortopy.analysis.layers import expected_layer


def spearman(x, y) -> float:
    """Spearman's rho of two (N,) arrays (average ranks for ties); NaN when either is constant."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    rx -= rx.mean()
    ry -= ry.mean()
    den = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / den) if den > 0 else float("nan")


def hierarchy_score(layer_probs, position=None, *, vertex=None, hemi=None, roi=None, scheme=None,
                    overlap: str = "earliest", roi_rank=None, seeds=None, n_boot: int = 1000, ci: float = 0.95,
                    seed: int = 0, n_blocks: int | None = 50) -> dict:
    """Rank correlation of expected layer with hierarchy position, with a bootstrap CI.

    layer_probs: (N, L). The position is, in order of precedence: ``position`` (N,) given directly;
    that of ``roi`` (the loaders' ROI dict {label: (N,) bool}, overlapping masks welcome, or (N,)
    labels) under ``scheme`` (default 'paper'; ``roi_rank`` {label: rank} is a custom scheme) with
    ``overlap`` (:func:`factortopy.analysis.roi_hierarchy.hierarchy_positions`); the geodesic
    distance (mm) from ``seeds`` (hemi -> seed vertices, default occipital pole) of
    ``vertex``/``hemi`` on fsaverage5. Vertices without a position are left out (with ROIs, the
    counts say how many and why).
    Returns {'rho', 'ci_low', 'ci_high', 'n', 'n_boot', 'ci', 'method' ('position', 'roi:<scheme>'
    or 'geodesic'), 'bootstrap', 'counts' (with ROIs)}. Neighbouring vertices are not independent,
    so when ``vertex``/``hemi`` are known the bootstrap resamples ``n_blocks`` spatial patches (a
    block bootstrap, seeded); otherwise (or with n_blocks=None) it resamples single vertices, which
    understates the uncertainty.
    """
    e = expected_layer(layer_probs)
    counts = None
    if position is not None:
        pos, method = np.asarray(position, float), "position"
    elif roi is not None:
        from factortopy.analysis.roi_hierarchy import hierarchy_positions

        h = hierarchy_positions(roi, len(e), roi_rank if roi_rank is not None else scheme, overlap)
        pos, method, counts = h["position"], f"roi:{h['scheme']}", h["counts"]
    elif vertex is not None and hemi is not None:
        from factortopy.analysis.geodesic import distance_from_seed

        pos, method = distance_from_seed(vertex, hemi, seeds), "geodesic"
    else:
        raise ValueError("give position, roi (labels or the loaders' ROI dict), or vertex and hemi (geodesic "
                         "distance from a seed)")
    if pos.shape != e.shape:
        raise ValueError(f"hierarchy position has {pos.shape[0]} entries for {e.shape[0]} vertices")
    ok = np.isfinite(pos)
    e, pos = e[ok], pos[ok]
    n = int(ok.sum())
    if n < 3:
        raise ValueError(f"only {n} vertices have a hierarchy position: cannot score"
                         + (f" (vertex counts under the scheme: {counts})" if counts else ""))
    rho = spearman(e, pos)
    rng = np.random.default_rng(seed)
    if n_blocks and vertex is not None and hemi is not None:
        labels = spatial_blocks(np.asarray(vertex)[ok], np.asarray(hemi)[ok], n_blocks, seed)
        members = [np.where(labels == b)[0] for b in range(labels.max() + 1)]
        draws = (np.concatenate([members[b] for b in rng.integers(0, len(members), len(members))])
                 for _ in range(int(n_boot)))
        bootstrap = f"{len(members)} spatial blocks"
    else:
        draws = (rng.integers(0, n, n) for _ in range(int(n_boot)))
        bootstrap = "vertices"
    lo, hi = percentile_interval([spearman(e[i], pos[i]) for i in draws], ci)
    out = {"rho": rho, "ci_low": lo, "ci_high": hi, "n": n, "n_boot": int(n_boot), "ci": ci, "method": method,
           "bootstrap": bootstrap}
    if counts is not None:
        out["counts"] = counts
    return out
