"""Predictions of a fitted model over many images, in bounded memory."""
from __future__ import annotations

import torch


@torch.no_grad()
def predict_tokens(model, tokens: torch.Tensor, batch_size: int = 64, device: str = "cpu") -> torch.Tensor:
    """tokens (n_images, L, grid^2 + 1, C_max) -> predictions (n_images, N) on ``device``, float32,
    in the model's (z-scored) units. Selectors are computed once for all batches."""
    model = model.to(device).eval()
    sel = model.selectors()
    out = torch.empty(tokens.shape[0], model.n_vertices, device=device)
    for start in range(0, tokens.shape[0], batch_size):
        batch = tokens[start:start + batch_size].to(device, non_blocking=True).float()
        out[start:start + batch_size] = model.forward_tokens(batch, selectors=sel).float()
    return out
