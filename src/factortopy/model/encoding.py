"""Sinusoidal positional encoding of cortical coordinates (method.md, "Selectors from coordinates").

A vertex at c (3,) is first rescaled once and for all: x = (c - low) * span / extent, with ``low``
the per-axis minimum and ``extent`` the longest axis of the whole vertex set given at construction
(so x lies in [0, span], span = 100). Then each axis a and frequency f_k (radians per rescaled unit)
gives the two features sin(f_k x_a) and cos(f_k x_a): 3 * 2 * F features (F = 32: 192).

Two schemes, selected by name (:data:`ENCODINGS`):

| name        | f_k, k = 0..F-1        | order of an axis' 2F features                     |
|-------------|------------------------|---------------------------------------------------|
| `ours`      | 1000^(-k/(F-1)): 1 .. 1/1000 | sin f_0 .. sin f_{F-1}, cos f_0 .. cos f_{F-1} |
| `reference` | 1000^(-k/F): 1 .. ~1/806     | sin f_0, cos f_0, sin f_1, cos f_1, ... (the authors' code) |

Axes come one after the other in both (x's features, then y's, then z's).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

N_FREQUENCIES = 32
SPAN = 100.0  # the longest axis of the whole vertex set is rescaled to span this many units


@dataclass(frozen=True)
class EncodingScheme:
    """Frequencies (F,) float64 for F = n, and whether sin/cos are interleaved per frequency."""

    frequencies: Callable[[int], torch.Tensor]
    interleaved: bool
    description: str


ENCODINGS: dict[str, EncodingScheme] = {
    "ours": EncodingScheme(lambda n: torch.logspace(0.0, -3.0, n, dtype=torch.float64), False,
                           "1000^(-k/(F-1)), sines then cosines per axis"),
    "reference": EncodingScheme(lambda n: 1000.0 ** (-torch.arange(n, dtype=torch.float64) / n), True,
                                "1000^(-k/F), sin and cos interleaved per frequency (the authors' code)"),
}


def encoding_scheme(name: str) -> EncodingScheme:
    if name not in ENCODINGS:
        raise ValueError(f"unknown positional encoding {name!r}; choose one of {sorted(ENCODINGS)}")
    return ENCODINGS[name]


class PositionalEncoding(nn.Module):
    """Coordinates (N, 3) -> features (N, 3 * n_frequencies * 2); see the module docstring.

    The per-axis offset and the single scale are computed ONCE, from the whole vertex set given at
    construction, and stored as buffers (they travel with the state dict), as are the frequencies.
    Encoding a subset of vertices later therefore gives exactly the rows of the full encoding:
    selectors never shift when a user evaluates or paints part of the cortex.
    """

    def __init__(self, coords: torch.Tensor, n_frequencies: int = N_FREQUENCIES, span: float = SPAN,
                 scheme: str = "ours"):
        super().__init__()
        self.scheme = scheme
        self.interleaved = encoding_scheme(scheme).interleaved
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
        self.register_buffer("frequencies", encoding_scheme(scheme).frequencies(n_frequencies).float())

    @property
    def out_features(self) -> int:
        return 3 * 2 * self.frequencies.numel()

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """coords (N, 3) in the construction units -> (N, 192) in the buffers' dtype (float32)."""
        x = (coords.to(self.offset.dtype) - self.offset) * self.scale  # (N, 3) in [0, span]
        phase = x[:, :, None] * self.frequencies  # (N, 3, F)
        # (N, 3, F, 2) -> per axis sin f0, cos f0, ...; (N, 3, 2, F) -> per axis all sines, all cosines
        parts = torch.stack([phase.sin(), phase.cos()], dim=-1 if self.interleaved else -2)
        return parts.reshape(x.shape[0], -1)


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
