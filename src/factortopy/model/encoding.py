"""Sinusoidal positional encoding of cortical coordinates (method.md, "Selectors from coordinates")."""
from __future__ import annotations

import math

import torch
from torch import nn

N_FREQUENCIES = 32
SPAN = 100.0  # the longest axis of the whole vertex set is rescaled to span this many units


class PositionalEncoding(nn.Module):
    """Coordinates (N, 3) -> features (N, 3 * n_frequencies * 2).

    The per-axis offset and the single scale are computed ONCE, from the whole vertex set given at
    construction, and stored as buffers (they travel with the state dict). Encoding a subset of
    vertices later therefore gives exactly the rows of the full encoding: selectors never shift
    when a user evaluates or paints part of the cortex.

    Frequencies are geometric from 1 down to 1/1000 (cycles per unit of the rescaled space); each
    axis contributes ``sin`` then ``cos`` of its ``n_frequencies`` phases.
    """

    def __init__(self, coords: torch.Tensor, n_frequencies: int = N_FREQUENCIES, span: float = SPAN):
        super().__init__()
        coords = torch.as_tensor(coords, dtype=torch.float64)
        if coords.ndim != 2 or coords.shape[1] != 3:
            raise ValueError(f"coordinates must have shape (n_vertices, 3), got {tuple(coords.shape)}")
        if not torch.isfinite(coords).all():
            raise ValueError("coordinates contain NaN or inf")
        low = coords.min(0).values
        extent = float((coords.max(0).values - low).max())
        scale = span / extent if extent > 0 else 1.0
        self.register_buffer("offset", low.float())
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        freqs = torch.logspace(0.0, -3.0, n_frequencies, dtype=torch.float32)  # 1 .. 1/1000
        self.register_buffer("frequencies", freqs)

    @property
    def out_features(self) -> int:
        return 3 * 2 * self.frequencies.numel()

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """coords (N, 3) in the construction units -> (N, 192) float32."""
        x = (coords.float() - self.offset) * self.scale  # (N, 3) in [0, span]
        phase = x[:, :, None] * self.frequencies  # (N, 3, F)
        return torch.cat([phase.sin(), phase.cos()], dim=-1).reshape(x.shape[0], -1)


def selector_mlp(in_features: int, out_features: int, hidden: int = 128) -> nn.Sequential:
    """192 -> hidden -> GELU -> hidden -> GELU -> k, last layer bias-free and zero-initialised.

    Zero init makes every vertex start at the image centre, uniform over layers and scale 0.5.
    """
    last = nn.Linear(hidden, out_features, bias=False)
    nn.init.zeros_(last.weight)
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), last
    )


def normalised_entropy(p: torch.Tensor) -> torch.Tensor:
    """(N, L) distributions -> (N,) entropy / log L, in [0, 1]."""
    L = p.shape[-1]
    if L < 2:
        return torch.zeros(p.shape[:-1], dtype=p.dtype, device=p.device)
    return -(p * p.clamp_min(1e-12).log()).sum(-1) / math.log(L)
