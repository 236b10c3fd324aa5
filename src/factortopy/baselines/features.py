"""Per-layer design matrices for the ridge baseline: the hooked layers' tokens, pooled.

Each layer's grid x grid local tokens are average-pooled to pool x pool cells and concatenated with
the layer's global token: (pool^2 + 1) x C_l features per image (ViT-B, pool 2: 3840 per layer).
Images are run through the backbone in chunks, so only the pooled features are held.
"""
from __future__ import annotations

import numpy as np


def pool_tokens(tokens, channels, grid: int, pool: int = 2) -> list[np.ndarray]:
    """tokens (n, L, grid^2 + 1, C_max) -> L arrays (n, (pool^2 + 1) * C_l) float32.

    pool: cells per side after average pooling (adaptive when grid is not a multiple of pool);
    pool=0 keeps only the global token.
    """
    import torch

    tokens = torch.as_tensor(tokens)
    n = tokens.shape[0]
    out = []
    for l, c in enumerate(channels):
        glob = tokens[:, l, grid * grid, :c].float()
        parts = []
        if pool > 0:
            local = tokens[:, l, : grid * grid, :c].float().reshape(n, grid, grid, c).permute(0, 3, 1, 2)
            pooled = torch.nn.functional.adaptive_avg_pool2d(local, pool)  # (n, c, pool, pool)
            parts.append(pooled.permute(0, 2, 3, 1).reshape(n, pool * pool * c))
        parts.append(glob)
        out.append(torch.cat(parts, dim=1).numpy().astype(np.float32))
    return out


def pooled_features(backbone, images, index=None, grid: int = 8, pool: int = 2, batch_size: int = 32,
                    device: str = "cpu", chunk: int = 512, progress: bool = False) -> list[np.ndarray]:
    """Run ``backbone`` over ``images`` (all, or positions ``index``) and pool each layer's tokens.

    Returns L arrays (n_images, (pool^2 + 1) * C_l) float32 in the order of ``index``.
    """
    from factortopy.features.extract import extract_features

    index = np.arange(len(images)) if index is None else np.asarray(index, dtype=np.int64)
    parts = []
    for start in range(0, index.size, chunk):
        feats = extract_features(backbone, images, grid=grid, batch_size=batch_size, device=device,
                                 progress=progress, index=index[start:start + chunk])
        parts.append(pool_tokens(feats.tokens, feats.channels, feats.grid, pool))
    return [np.concatenate([p[l] for p in parts]) for l in range(len(parts[0]))]
