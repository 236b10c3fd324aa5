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


def split_indices(n_images: int, val_fraction: float, heldout_fraction: float, seed: int) -> dict:
    """The three roles of a fit's images, disjoint and each sorted: ``train`` (the gradient),
    ``val`` (early stopping: picks the best epoch) and ``heldout`` (the headline score: images that
    chose nothing). heldout_fraction 0 gives an empty held-out set.

    The held-out images are drawn first from the seeded order, then the validation images, so a
    given (n_images, heldout_fraction, seed) holds out the same images whatever val_fraction is.
    """
    if not 0 <= heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_held = int(round(n_images * heldout_fraction)) if heldout_fraction > 0 else 0
    if heldout_fraction > 0:
        n_held = max(1, n_held)
    n_val = max(1, int(round(n_images * val_fraction)))
    if n_held + n_val >= n_images:
        raise ValueError(f"{n_images} images are too few for a validation fraction of {val_fraction} and a "
                         f"held-out fraction of {heldout_fraction}")
    order = np.random.default_rng(seed).permutation(n_images)
    return dict(heldout=np.sort(order[:n_held]), val=np.sort(order[n_held:n_held + n_val]),
                train=np.sort(order[n_held + n_val:]))


def nested_train_subset(train: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The first ``n`` of the training images ``train`` in a seeded order, sorted: the subsets of
    one (train, seed) NEST (n < m: subset(n) is inside subset(m)), so a data-scaling curve adds
    images to a fixed set instead of drawing a new one per size. The order is drawn from a stream
    of its own (seed, 1), independent of the permutation that made the split, so the validation and
    held-out images (and hence the score's images) stay those of the full fit."""
    train = np.asarray(train)
    if not (isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1):
        raise ValueError(f"train_images must be a whole number >= 1, got {n!r}")
    if n > len(train):
        raise ValueError(f"train_images {n} is more than the {len(train)} training images this split leaves "
                         f"(the rest are validation and held-out images): use at most {len(train)}, or leave "
                         "train_images unset for all of them")
    order = np.random.default_rng([int(seed), 1]).permutation(len(train))
    return np.sort(train[order[:n]])
