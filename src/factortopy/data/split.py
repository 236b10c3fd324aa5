"""Deterministic train/validation splits."""
from __future__ import annotations

import numpy as np


def train_val_split(n_images: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of range(n_images): (train indices, val indices), each sorted.

    The same (n_images, val_fraction, seed) always gives the same split, on any machine (numpy's
    PCG64 generator), so a baseline or a re-run scores on exactly the same images.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = max(1, int(round(n_images * val_fraction)))
    if n_val >= n_images:
        raise ValueError(f"{n_images} images are too few for a validation fraction of {val_fraction}")
    order = np.random.default_rng(seed).permutation(n_images)
    return np.sort(order[n_val:]), np.sort(order[:n_val])
