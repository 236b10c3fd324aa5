"""Clusters of per-vertex readout weights (the channel map)."""
from __future__ import annotations

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def spherical_kmeans(x, k: int, n_iter: int = 20, seed: int = 0, max_fit: int = 5000):
    """Cosine k-means: unit-normalised rows, centroids re-normalised each step.

    x: (N, D); k centroids. Centroids are fitted on at most ``max_fit`` rows (seeded subsample) to
    stay fast on 40k vertices, then every row is assigned. Returns (centroids (k', D) unit rows,
    labels (N,) int in 0..k'-1), k' = min(k, N).
    """
    x = _unit(np.asarray(x, dtype=np.float64))
    n = x.shape[0]
    if n == 0:
        raise ValueError("no vertices to cluster")
    k = min(int(k), n)
    rng = np.random.default_rng(seed)
    fit = x[rng.choice(n, size=min(n, max_fit), replace=False)] if n > max_fit else x
    # k-means++-style seeding on cosine distance
    cent = [fit[rng.integers(len(fit))]]
    dist = 1 - fit @ cent[0]
    for _ in range(1, k):
        p = np.clip(dist, 0, None)
        p = p / p.sum() if p.sum() > 0 else None
        cent.append(fit[rng.choice(len(fit), p=p)])
        dist = np.minimum(dist, 1 - fit @ cent[-1])
    cent = np.stack(cent)
    for _ in range(n_iter):
        lab = np.argmax(fit @ cent.T, axis=1)
        new = np.zeros_like(cent)
        np.add.at(new, lab, fit)
        empty = np.linalg.norm(new, axis=1) == 0
        new[empty] = cent[empty]  # keep empty clusters where they were
        new = _unit(new)
        if np.allclose(new, cent):
            break
        cent = new
    return cent, np.argmax(x @ cent.T, axis=1)


#: the channel map's number of clusters: computed once when a run is written (selectors.npz
#: ``channel_clusters``), recomputed only when a painting asks for another number
CHANNEL_CLUSTERS = 20


def cluster_readouts(readout, n_clusters: int = CHANNEL_CLUSTERS, n_centroids: int = 200, seed: int = 0) -> np.ndarray:
    """Channel clusters: cosine k-means to ``n_centroids``, then average-linkage merging to ``n_clusters``.

    readout: (N, D) readout weights. Returns (N,) int labels 0..K-1 (K <= n_clusters), numbered by
    decreasing cluster size so that colours are stable across runs of the same data.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    w = np.asarray(readout, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"readout must have shape (N, D); got {w.shape}")
    if n_clusters < 1:
        raise ValueError("n_clusters must be >= 1")
    cent, lab = spherical_kmeans(w, max(n_centroids, n_clusters), seed=seed)
    if len(cent) > n_clusters:
        z = linkage(cent, method="average", metric="cosine")
        merged = fcluster(z, t=n_clusters, criterion="maxclust") - 1
        lab = merged[lab]
    uniq, inv, counts = np.unique(lab, return_inverse=True, return_counts=True)
    rank = np.empty(len(uniq), np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(len(uniq))
    return rank[inv.ravel()]
