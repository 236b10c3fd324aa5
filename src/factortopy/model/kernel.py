"""The selection kernel: bilinear sampling written as a dot product with a tent kernel.

``grid_sample`` with bilinear interpolation, zero padding and ``align_corners=False`` at a point
(x, y) in [-1, 1]^2 equals sum_ij tent_y(i) tent_x(j) map[i, j] with
tent_x(j) = max(0, 1 - |ix - j|), ix = ((x + 1) W - 1) / 2 (likewise y with H). Cells outside the
grid simply do not exist, which is the zero padding. Writing selection this way turns the whole
factorised read-out into one GEMM (see method.md, "The fast formulation").

Precision: ix moves by W / 2 cells per unit of x, so an error e in x moves the sample by W e / 2
cells. In bf16 (8 significant bits) a tanh output near 0.9 is only known to 2^-8: 0.016 of a cell on
an 8-wide grid, ~1-2 % of a sampled value. The model therefore computes xy and this kernel in
float32 even under autocast (FactorTopy.kernel); only the GEMM that applies it runs in bf16.
"""
from __future__ import annotations

import torch


def tent_weights(xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-point bilinear weights over a grid.

    xy: (N, 2) in grid_sample convention (x left->right, y top->bottom, [-1, 1] spans the grid's
    outer edges). Returns (N, height * width), row-major (cell i * width + j), each row summing to 1
    inside the grid and less near the border (zero padding).
    """
    ix = ((xy[:, 0] + 1) * width - 1) / 2  # (N,)
    iy = ((xy[:, 1] + 1) * height - 1) / 2
    cols = torch.arange(width, device=xy.device, dtype=xy.dtype)
    rows = torch.arange(height, device=xy.device, dtype=xy.dtype)
    tx = (1 - (ix[:, None] - cols).abs()).clamp_min(0)  # (N, W)
    ty = (1 - (iy[:, None] - rows).abs()).clamp_min(0)  # (N, H)
    return (ty[:, :, None] * tx[:, None, :]).reshape(xy.shape[0], height * width)


def selection_kernel(
    xy: torch.Tensor, layer_probs: torch.Tensor, scale: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """The per-vertex kernel over (layer, token): (N, L, H*W + 1).

    K[v, l, cell] = p_vl (1 - s_v) tent_v[cell]; K[v, l, H*W] = p_vl s_v (the global token).
    xy (N, 2), layer_probs (N, L), scale (N, 1).
    """
    tent = tent_weights(xy, height, width) * (1 - scale)  # (N, HW)
    per_token = torch.cat([tent, scale], dim=1)  # (N, HW + 1)
    return layer_probs[:, :, None] * per_token[:, None, :]
