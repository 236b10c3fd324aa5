"""Noise ceilings: how much of a vertex's response variance is explainable at all.

Two units are in use and mixing them up is a classic bug: NSD's formula gives PERCENT (0-100); the
Algonauts score takes a FRACTION (0-1). Functions here say which in their name.
"""
from __future__ import annotations

import numpy as np


def noise_ceiling_percent(ncsnr, n_repeats) -> np.ndarray:
    """NSD noise ceiling in PERCENT from the noise-ceiling SNR: NC = 100 ncsnr^2 / (ncsnr^2 + 1/n).

    ncsnr: (N,) per vertex. n_repeats: the number of trials averaged, a scalar or one count per
    image; for images averaged over different numbers of trials, 1/n is the mean of 1/n_i over the
    images (Allen et al. 2022). Returns (N,) float32 in [0, 100).
    """
    ncsnr = np.asarray(ncsnr, dtype=np.float64)
    n = np.asarray(n_repeats, dtype=np.float64)
    if n.size == 0 or np.any(n < 1):
        raise ValueError("every image must be averaged over at least one trial (n_repeats >= 1)")
    inv_n = float(np.mean(1.0 / n))
    return (100.0 * ncsnr**2 / (ncsnr**2 + inv_n)).astype(np.float32)


def noise_ceiling_fraction(ncsnr, n_repeats) -> np.ndarray:
    """The same noise ceiling as a 0-1 FRACTION (what :func:`algonauts_score` takes)."""
    return noise_ceiling_percent(ncsnr, n_repeats) / np.float32(100.0)


def check_fraction(noise_ceiling, what: str = "noise_ceiling") -> np.ndarray:
    """Return ``noise_ceiling`` as float array after checking it is a 0-1 fraction (not percent)."""
    nc = np.asarray(noise_ceiling, dtype=np.float64)
    finite = nc[np.isfinite(nc)]
    if finite.size and finite.max() > 1.0 + 1e-6:
        raise ValueError(f"{what} has values up to {finite.max():.3g}: it looks like percent; pass a 0-1 "
                         "fraction (divide by 100)")
    if finite.size and finite.min() < 0:
        raise ValueError(f"{what} has negative values ({finite.min():.3g}); a noise ceiling lies in [0, 1]")
    return nc
