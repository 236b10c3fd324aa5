"""Intervals: the spatial block bootstrap over cortex, percentile and t intervals.

Neighbouring vertices are not independent (the maps are smooth, the responses share noise), so a
bootstrap that resamples single vertices understates the uncertainty. The block bootstrap cuts
the vertices into ``K`` compact patches (k-means on the fsaverage sphere, hemispheres apart) and
draws K patches with replacement. A draw is stored as *counts* (n_boot, K): how often each patch
was drawn; any statistic that is a sum over vertices is then ``counts @ per_block_sums``, so every
run of a subject can be scored on the very same draws (a paired bootstrap) at the cost of one small
matrix product.
"""
from __future__ import annotations

import numpy as np


def spatial_blocks(vertex, hemi, n_blocks: int = 50, seed: int = 0, coords=None) -> np.ndarray:
    """(N,) labels 0..K-1 of ``n_blocks`` compact patches of cortex (k-means on the fsaverage
    sphere, hemispheres apart; K = min(n_blocks, N)), seeded. coords: (N, 3) cortical coordinates
    to cluster instead (a subject's ``coords``: the same sphere, and known for every vertex)."""
    from sklearn.cluster import KMeans

    if coords is None:
        from factortopy.surface import cortical_coordinates

        coords = cortical_coordinates(np.asarray(vertex), np.asarray(hemi))
    xyz = np.asarray(coords, np.float64)
    k = int(min(n_blocks, len(xyz)))
    labels = KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(xyz)
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)  # 0..K-1, no empty label


def iter_block_counts(n_blocks: int, n_boot: int, seed: int = 0, max_cells: int = 1 << 22):
    """Bootstrap draws in chunks: arrays (m, n_blocks) int, m rows at a time (at most ``max_cells``
    entries per chunk, so single-vertex blocks of a whole cortex stay in bounded memory); row =
    how many times each block was drawn (``n_blocks`` blocks drawn with replacement). The same
    ``seed`` gives the same draws, whatever the chunking."""
    rng = np.random.default_rng(seed)
    n_blocks, left = int(n_blocks), int(n_boot)
    per = max(1, int(max_cells) // max(n_blocks, 1))
    while left > 0:
        m = min(per, left)
        counts = np.zeros((m, n_blocks), np.int32)
        for i in range(m):  # one draw at a time: the draws do not depend on the chunk size
            counts[i] = np.bincount(rng.integers(0, n_blocks, n_blocks), minlength=n_blocks)
        left -= m
        yield counts


def block_counts(n_blocks: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n_blocks) int: all the draws of :func:`iter_block_counts` at once."""
    return np.concatenate(list(iter_block_counts(n_blocks, n_boot, seed)) or [np.zeros((0, int(n_blocks)), np.int32)])


def block_sums(labels, n_blocks: int, values) -> np.ndarray:
    """(n_blocks, ...) sums of ``values`` (N, ...) within each block (``labels`` (N,) 0..K-1)."""
    values = np.asarray(values, np.float64)
    out = np.zeros((int(n_blocks),) + values.shape[1:])
    np.add.at(out, np.asarray(labels, np.int64), values)
    return out


def percentile_interval(draws, ci: float = 0.95) -> tuple[float, float]:
    """(low, high) percentile interval of the finite ``draws``; NaN, NaN when there are none."""
    d = np.asarray(draws, np.float64).ravel()
    d = d[np.isfinite(d)]
    if not d.size:
        return float("nan"), float("nan")
    a = (1 - ci) / 2
    lo, hi = np.quantile(d, [a, 1 - a])
    return float(lo), float(hi)


def bootstrap_p(draws) -> float:
    """Two-sided bootstrap p-value of 'the statistic is 0': 2 min(P(draw <= 0), P(draw >= 0)),
    at most 1, from the finite draws (NaN when there are none)."""
    d = np.asarray(draws, np.float64).ravel()
    d = d[np.isfinite(d)]
    if not d.size:
        return float("nan")
    return float(min(1.0, 2 * min((d <= 0).mean(), (d >= 0).mean())))


def t_interval(values, ci: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval of the mean of ``values`` (n - 1 degrees of
    freedom); the interval is NaN with fewer than 2 values."""
    from scipy.stats import t

    v = np.asarray(values, np.float64).ravel()
    mean = float(v.mean()) if v.size else float("nan")
    if v.size < 2:
        return mean, float("nan"), float("nan")
    half = float(t.ppf(0.5 + ci / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return mean, mean - half, mean + half
