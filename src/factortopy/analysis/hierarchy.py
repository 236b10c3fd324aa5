"""Hierarchy score: does a run's expected layer follow the visual hierarchy?

Spearman rank correlation between each vertex's expected layer (sum_l l p_vl / (L - 1)) and its
position in the hierarchy: the rank of its ROI (early -> mid -> high) when ROI labels are given,
else its geodesic distance from a seed region (default the occipital pole), with a seeded
bootstrap confidence interval over vertices.
"""
from __future__ import annotations

import numpy as np

from factortopy.analysis.layers import expected_layer

#: hierarchy rank of the Algonauts/NSD ROI names (prf-visualrois and streams classes)
DEFAULT_ROI_RANK = {
    "V1v": 0, "V1d": 0, "V2v": 1, "V2d": 1, "V3v": 2, "V3d": 2, "hV4": 3,
    "early": 0, "midventral": 1, "midlateral": 1, "midparietal": 1,
    "ventral": 2, "lateral": 2, "parietal": 2,
}


def spearman(x, y) -> float:
    """Spearman's rho of two (N,) arrays (average ranks for ties); NaN when either is constant."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    rx -= rx.mean()
    ry -= ry.mean()
    den = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / den) if den > 0 else float("nan")


def roi_position(roi, roi_rank: dict | None = None) -> np.ndarray:
    """(N,) hierarchy rank of each vertex's ROI label; NaN where the label has no rank (no ROI).

    roi: (N,) labels (names or ints); a ``<class>/<name>`` label (as the loaders name ROIs, e.g.
    ``streams/early``) takes the rank of its name when the label itself has none. roi_rank: label ->
    rank (early = low), default :data:`DEFAULT_ROI_RANK`.
    """
    rank = DEFAULT_ROI_RANK if roi_rank is None else roi_rank

    def of(r):
        if r in rank:
            return float(rank[r])
        name = r.rsplit("/", 1)[-1] if isinstance(r, str) else None
        return float(rank[name]) if name in rank else np.nan

    return np.array([of(r) for r in np.asarray(roi).tolist()])


def spatial_blocks(vertex, hemi, n_blocks: int = 50, seed: int = 0) -> np.ndarray:
    """(N,) labels of ``n_blocks`` compact patches of cortex (k-means on the fsaverage sphere,
    hemispheres apart), for a bootstrap that respects spatial autocorrelation."""
    from sklearn.cluster import KMeans

    from factortopy.surface import cortical_coordinates

    xyz = cortical_coordinates(np.asarray(vertex), np.asarray(hemi))
    k = int(min(n_blocks, len(xyz)))
    return KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(xyz)


def hierarchy_score(layer_probs, position=None, *, vertex=None, hemi=None, roi=None, roi_rank=None,
                    seeds=None, n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
                    n_blocks: int | None = 50) -> dict:
    """Rank correlation of expected layer with hierarchy position, with a bootstrap CI.

    layer_probs: (N, L). The position is, in order of precedence: ``position`` (N,) given directly;
    the ROI rank of ``roi`` (N,) labels (see :func:`roi_position`); the geodesic distance (mm)
    from ``seeds`` (hemi -> seed vertices, default occipital pole) of ``vertex``/``hemi`` on
    fsaverage5. Vertices with NaN position are left out.
    Returns {'rho', 'ci_low', 'ci_high', 'n', 'n_boot', 'ci', 'method', 'bootstrap'}. Neighbouring
    vertices are not independent, so when ``vertex``/``hemi`` are known the bootstrap resamples
    ``n_blocks`` spatial patches (a block bootstrap, seeded); otherwise (or with n_blocks=None) it
    resamples single vertices, which understates the uncertainty.
    """
    e = expected_layer(layer_probs)
    if position is not None:
        pos, method = np.asarray(position, float), "position"
    elif roi is not None:
        pos, method = roi_position(roi, roi_rank), "roi"
    elif vertex is not None and hemi is not None:
        from factortopy.analysis.geodesic import distance_from_seed

        pos, method = distance_from_seed(vertex, hemi, seeds), "geodesic"
    else:
        raise ValueError("give position, roi labels, or vertex and hemi (geodesic distance from a seed)")
    if pos.shape != e.shape:
        raise ValueError(f"hierarchy position has {pos.shape[0]} entries for {e.shape[0]} vertices")
    ok = np.isfinite(pos)
    e, pos = e[ok], pos[ok]
    n = int(ok.sum())
    if n < 3:
        raise ValueError(f"only {n} vertices have a hierarchy position: cannot score")
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
    boots = np.array([spearman(e[i], pos[i]) for i in draws])
    boots = boots[np.isfinite(boots)]
    a = (1 - ci) / 2
    lo, hi = (np.quantile(boots, [a, 1 - a]) if boots.size else (np.nan, np.nan))
    return {"rho": rho, "ci_low": float(lo), "ci_high": float(hi), "n": n, "n_boot": int(n_boot),
            "ci": ci, "method": method, "bootstrap": bootstrap}
