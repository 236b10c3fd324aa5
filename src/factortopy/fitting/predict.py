"""Predictions of a fitted model over many images, in bounded memory."""
from __future__ import annotations

import torch


@torch.no_grad()
def predict_tokens(model, tokens: torch.Tensor, batch_size: int = 64, device: str = "cpu",
                   max_bytes: int | None = None) -> torch.Tensor:
    """tokens (n_images, L, grid^2 + 1, C_max) -> predictions (n_images, N) on ``device``, float32,
    in the model's (z-scored) units.

    Chunked by memory as training is: at most ``batch_size`` images per forward, fewer (and
    vertices in chunks) when their intermediates would pass ``max_bytes`` (default
    :func:`~factortopy.fitting.memory.eval_budget`: 40 % of free GPU memory, 2 GiB on the CPU).
    Chunking changes no number: each vertex's prediction depends on its own selectors alone.
    """
    from factortopy.fitting.memory import eval_budget, eval_chunks

    model = model.to(device).eval()
    n_images, N = tokens.shape[0], model.n_vertices
    budget = eval_budget(device) if max_bytes is None else int(max_bytes)
    images, vertices = eval_chunks(N, model.n_layers, model.grid, model.dim, max(1, int(batch_size)), budget)
    out = torch.empty(n_images, N, device=device)
    for v0 in range(0, N, vertices):
        index = None if vertices >= N else torch.arange(v0, min(v0 + vertices, N), device=device)
        sel = model.selectors(index)  # once per vertex chunk, for all image batches
        for start in range(0, n_images, images):
            batch = tokens[start:start + images].to(device, non_blocking=True).float()
            pred = model.forward_tokens(batch, index=index, selectors=sel).float()
            out[start:start + images, v0:v0 + pred.shape[1]] = pred
    return out
