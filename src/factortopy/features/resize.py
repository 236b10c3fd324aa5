"""Resize feature maps to the common grid with one matrix product.

A bilinear resize between fixed sizes is a fixed linear map. Building that map once (by resizing
the identity) and applying it as a GEMM gives the identical result to ``F.interpolate`` and runs at
matmul speed; per-call ``F.interpolate`` on many maps was measured 30x slower than the network
itself (method.md, "Feature extraction has its own trap").
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F


@lru_cache(maxsize=32)
def _resize_matrix_cpu(height: int, width: int, out_h: int, out_w: int) -> torch.Tensor:
    eye = torch.eye(height * width, dtype=torch.float64).view(height * width, 1, height, width)
    out = F.interpolate(eye, size=(out_h, out_w), mode="bilinear", align_corners=False)
    return out.view(height * width, out_h * out_w).T.contiguous()  # (out_h*out_w, H*W)


def resize_matrix(height: int, width: int, out_h: int, out_w: int, device=None, dtype=torch.float32):
    """(out_h * out_w, height * width) matrix M with M @ map.flatten() == bilinear resize
    (align_corners=False), row-major cells on both sides."""
    return _resize_matrix_cpu(height, width, out_h, out_w).to(device=device, dtype=dtype)


def resize_to_tokens(maps: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, grid * grid, C): the map bilinearly resized to grid x grid, as tokens."""
    B, C, H, W = maps.shape
    M = resize_matrix(H, W, grid, grid, device=maps.device, dtype=maps.dtype)
    return torch.matmul(M, maps.reshape(B, C, H * W).transpose(1, 2))
