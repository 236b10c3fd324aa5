"""Noise ceilings of the data sets: how much of a vertex's response variance is explainable at all.

Two units are in use and mixing them up is a classic bug: NSD's formula gives PERCENT (0-100); the
Algonauts release stores a FRACTION (0-1), which is also what every ``Subject.extra['noise_ceiling']``
and the Algonauts score take. Each function says its unit in its name or docstring.
"""
from __future__ import annotations

import numpy as np

UNITS = {"fraction": 1.0, "percent": 100.0}


def ncsnr_ceiling_percent(ncsnr, n_repeats) -> np.ndarray:
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


def ncsnr_ceiling(ncsnr, n_repeats) -> np.ndarray:
    """The same NSD noise ceiling as a 0-1 FRACTION, (N,) float32 (what the Algonauts score takes)."""
    return ncsnr_ceiling_percent(ncsnr, n_repeats) / np.float32(100.0)


def ceiling_as_fraction(values, unit: str = "fraction", what: str = "noise ceiling") -> np.ndarray:
    """A stored noise ceiling as a checked 0-1 fraction, float64 (NaN kept).

    unit: how ``values`` are written, 'fraction' (Algonauts, generic) or 'percent'. Finite values
    outside [0, 1] after conversion are an error that names ``what`` and suggests the other unit.
    """
    if unit not in UNITS:
        raise ValueError(f"noise-ceiling unit must be one of {', '.join(UNITS)}, got {unit!r}")
    nc = np.asarray(values, dtype=np.float64) / UNITS[unit]
    finite = nc[np.isfinite(nc)]
    if finite.size and finite.max() > 1.0 + 1e-6:
        hint = " (it looks like percent: pass unit 'percent' / nc_unit=percent, or divide by 100)" if unit == "fraction" else ""
        raise ValueError(f"{what}: values up to {finite.max():.3g} as a {unit}; a noise ceiling lies in [0, 1]{hint}")
    if finite.size and finite.min() < 0:
        raise ValueError(f"{what}: negative values ({finite.min():.3g}); a noise ceiling lies in [0, 1]")
    return nc
