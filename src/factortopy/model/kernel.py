"""The selection kernel: what vertex v reads from each layer's grid, written as weights over the cells.

Point (the paper's model). ``grid_sample`` with bilinear interpolation, zero padding and
``align_corners=False`` at a point (x, y) in [-1, 1]^2 equals sum_ij tent_y(i) tent_x(j) map[i, j]
with tent_x(j) = Lambda(ix - j), Lambda(u) = max(0, 1 - |u|), ix = ((x + 1) W - 1) / 2 (likewise y
with H). Cells outside the grid simply do not exist, which is the zero padding. Writing selection this
way turns the whole factorised read-out into one GEMM (see method.md, "The fast formulation").

Gaussian (a receptive field of any size). Bilinear sampling reads the piecewise-linear image
f(u) = sum_j m_j Lambda(u - j) at one point. A receptive field of size sigma (cells) reads it through
a Gaussian aperture g_sigma instead: (f * g_sigma)(ix) = sum_j m_j (Lambda * g_sigma)(ix - j), so the
weight of cell j is the tent convolved with the Gaussian, in closed form. With
Lambda(u) = relu(u + 1) - 2 relu(u) + relu(u - 1) and
(relu * g_sigma)(t) = t Phi(t / sigma) + sigma phi(t / sigma) = relu(t) + sigma h(|t| / sigma),
h(a) = phi(a) - a Phi(-a) >= 0 (phi, Phi: the standard normal density and distribution):

    (Lambda * g_sigma)(u) = Lambda(u) + sigma [h(|u + 1| / sigma) - 2 h(|u| / sigma) + h(|u - 1| / sigma)]

Why this form and not a Gaussian sampled at the cell centres: (1) sigma = 0 gives exactly
Lambda(u) + 0, today's bilinear sample, bit for bit (the correction is multiplied by sigma), and the
kernel moves continuously away from it as sigma grows, whereas a sampled Gaussian tends to the
nearest cell, not to bilinear sampling; (2) sum_j Lambda(u - j) = 1 inside the grid, and convolution
keeps that, so the pool stays normalised over the image and loses weight only where the aperture
extends past the image's edge: the same zero padding as the point; (3) it is separable (one 1-D
weight vector per axis, as the tent), so it costs O(N (H + W)) special functions, negligible beside
the GEMM. sigma is given per vertex in image widths (``rf_size``, see selectors.py), sigma_x = rf_size W
cells and sigma_y = rf_size H: the same size means the same part of the image on every grid.

Receptive-field kinds are registered in :data:`RECEPTIVE_FIELDS` (the model's ``receptive_field``
setting picks one).

Precision: ix moves by W / 2 cells per unit of x, so an error e in x moves the sample by W e / 2
cells. In bf16 (8 significant bits) a tanh output near 0.9 is only known to 2^-8: 0.016 of a cell on
an 8-wide grid, ~1-2 % of a sampled value. The model therefore computes xy and this kernel in
float32 even under autocast (FactorTopy.kernel); only the GEMM that applies it runs in bf16.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

# torch is imported in the functions that compute: the table of receptive-field kinds is read by
# code that runs no model (FitConfig's checks and the command line's --help)
_SIGMA_FLOOR = 1e-6  # cells; keeps |t| / sigma finite (and its gradient free of 0 * inf) near sigma = 0


def tent_weights(xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-point bilinear weights over a grid.

    xy: (N, 2) in grid_sample convention (x left->right, y top->bottom, [-1, 1] spans the grid's
    outer edges). Returns (N, height * width), row-major (cell i * width + j), each row summing to 1
    inside the grid and less near the border (zero padding).
    """
    import torch

    ix = ((xy[:, 0] + 1) * width - 1) / 2  # (N,)
    iy = ((xy[:, 1] + 1) * height - 1) / 2
    cols = torch.arange(width, device=xy.device, dtype=xy.dtype)
    rows = torch.arange(height, device=xy.device, dtype=xy.dtype)
    tx = (1 - (ix[:, None] - cols).abs()).clamp_min(0)  # (N, W)
    ty = (1 - (iy[:, None] - rows).abs()).clamp_min(0)  # (N, H)
    return (ty[:, :, None] * tx[:, None, :]).reshape(xy.shape[0], height * width)


def _h(a: torch.Tensor) -> torch.Tensor:
    """h(a) = phi(a) - a Phi(-a) for a >= 0: the Gaussian smoothing of relu, less relu, per unit sigma."""
    import torch

    return torch.exp(-0.5 * a * a) / math.sqrt(2 * math.pi) - a * 0.5 * torch.erfc(a / math.sqrt(2))


def blurred_tent(u: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """(Lambda * g_sigma)(u): the tent convolved with a Gaussian of std ``sigma`` (module docstring).

    u: (N, K) offsets in cells; sigma: (N, 1) in cells, >= 0. sigma = 0 returns exactly the tent.
    """
    s = sigma.clamp_min(_SIGMA_FLOOR)
    tent = (1 - u.abs()).clamp_min(0)
    return tent + sigma * (_h((u + 1).abs() / s) - 2 * _h(u.abs() / s) + _h((u - 1).abs() / s))


def gaussian_tent_weights(xy: torch.Tensor, size: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-point weights of a Gaussian receptive field over a grid (module docstring).

    xy: (N, 2) as :func:`tent_weights`; size: (N, 1) sigma in image widths (heights for y), >= 0.
    Returns (N, height * width), row-major; size 0 gives exactly :func:`tent_weights`. Rows sum to 1
    while the aperture lies inside the image, less where it passes the edge (zero padding).
    """
    import torch

    ix = ((xy[:, 0] + 1) * width - 1) / 2
    iy = ((xy[:, 1] + 1) * height - 1) / 2
    cols = torch.arange(width, device=xy.device, dtype=xy.dtype)
    rows = torch.arange(height, device=xy.device, dtype=xy.dtype)
    tx = blurred_tent(ix[:, None] - cols, size * width)  # (N, W)
    ty = blurred_tent(iy[:, None] - rows, size * height)  # (N, H)
    return (ty[:, :, None] * tx[:, None, :]).reshape(xy.shape[0], height * width)


@dataclass(frozen=True)
class ReceptiveField:
    """One receptive-field kind: ``weights(xy (N, 2), size (N, 1), height, width) -> (N, H*W)``;
    ``sized``: whether it reads the per-vertex size selector (``rf_size``)."""

    weights: Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]
    sized: bool
    description: str


RECEPTIVE_FIELDS: dict[str, ReceptiveField] = {
    "point": ReceptiveField(lambda xy, size, h, w: tent_weights(xy, h, w), False,
                            "a bilinear sample at (x, y) (the paper's model)"),
    "gaussian": ReceptiveField(gaussian_tent_weights, True,
                               "a Gaussian pool of learned per-vertex size around (x, y) (size 0 = the point)"),
}


def receptive_field(name: str) -> ReceptiveField:
    if name not in RECEPTIVE_FIELDS:
        raise ValueError(f"unknown receptive field {name!r}; choose one of {', '.join(RECEPTIVE_FIELDS)}")
    return RECEPTIVE_FIELDS[name]


def selection_kernel(xy: torch.Tensor, layer_probs: torch.Tensor, scale: torch.Tensor, height: int, width: int,
                     size: torch.Tensor | None = None, kind: str = "point") -> torch.Tensor:
    """The per-vertex kernel over (layer, token): (N, L, H*W + 1).

    K[v, l, cell] = p_vl (1 - s_v) w_v[cell]; K[v, l, H*W] = p_vl s_v (the global token), with w_v the
    receptive field ``kind``'s weights (the tent for ``"point"``). xy (N, 2), layer_probs (N, L),
    scale (N, 1), size (N, 1) in image widths (needed by sized kinds).
    """
    import torch

    rf = receptive_field(kind)
    if rf.sized and size is None:
        raise ValueError(f"receptive field {kind!r} needs the per-vertex size (N, 1)")
    local = rf.weights(xy, size, height, width) * (1 - scale)  # (N, HW)
    per_token = torch.cat([local, scale], dim=1)  # (N, HW + 1)
    return layer_probs[:, :, None] * per_token[:, None, :]
