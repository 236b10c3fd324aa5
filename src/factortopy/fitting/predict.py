"""Predictions of a fitted model over many images, in bounded memory."""
from __future__ import annotations

import numpy as np
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


def predict_subject(run, subject, image_index=None, batch_size: int = 64, device: str = "cpu",
                    progress: bool = False) -> np.ndarray:
    """Predicted responses of a fitted run (see :func:`factortopy.fitting.run_dir.load_run`) to the
    subject's images (all, or ``image_index``): (n_images, N) float32 in the subject's units
    (the z-scoring of the training responses undone)."""
    from factortopy.features.extract import extract_features

    features = extract_features(run.backbone(), subject.images, grid=run.model.grid, batch_size=batch_size,
                                device=device, progress=progress, index=image_index)
    pred = predict_tokens(run.model, features.tokens, batch_size, device).cpu().numpy()
    return pred * run.response_std + run.response_mean
