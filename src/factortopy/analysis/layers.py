"""Summaries of the layer selector p_v (N, L): expected layer and confidence per vertex."""
from __future__ import annotations

import numpy as np


def check_layer_probs(layer_probs) -> np.ndarray:
    """Validate (N, L) layer probabilities (rows sum to 1 within 1e-3); return them as float64."""
    p = np.asarray(layer_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ValueError(f"layer_probs must have shape (N, L); got {p.shape}")
    if p.size and (np.any(p < -1e-6) or not np.allclose(p.sum(1), 1.0, atol=1e-3)):
        raise ValueError("layer_probs rows must be probabilities (non-negative, summing to 1)")
    return np.clip(p, 0.0, None)


def expected_layer(layer_probs) -> np.ndarray:
    """Expected layer position sum_l l p_vl / (L - 1), shape (N,), in [0, 1] (0 = first layer).

    With a single layer every vertex gets 0.5 (no first/last to tell apart).
    """
    p = check_layer_probs(layer_probs)
    L = p.shape[1]
    if L == 1:
        return np.full(p.shape[0], 0.5)
    return p @ np.arange(L, dtype=np.float64) / (L - 1)


def layer_confidence(layer_probs) -> np.ndarray:
    """Confidence 1 - H(p_v) / log(L), shape (N,), in [0, 1]: 1 = one-hot, 0 = uniform."""
    p = check_layer_probs(layer_probs)
    L = p.shape[1]
    if L == 1:
        return np.ones(p.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    return np.clip(1.0 - h / np.log(L), 0.0, 1.0)


def selected_layer(layer_probs) -> np.ndarray:
    """Most probable layer index per vertex, shape (N,) int."""
    return np.argmax(check_layer_probs(layer_probs), axis=1)
