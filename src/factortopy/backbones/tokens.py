"""How to read a layer's output as (local map, global token).

A hooked module returns either a feature map (B, C, h, w) or a token sequence. For sequences the
user states the layout: how many prefix tokens (class, registers, distillation) come first, which
of them is the class token, and whether the batch or the sequence axis comes first (PyTorch's
``nn.MultiheadAttention`` default and old open_clip are sequence-first).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TokenLayout:
    """Layout of a token sequence output.

    num_prefix: tokens before the patch grid (ViT: 1 class token; DINOv2-reg4: 1 + 4 registers).
    cls_index: which prefix token is the global token (None: average the patch grid instead;
      registers are neither patches nor the class token).
    batch_first: (B, N, C) if True, (N, B, C) if False.
    channels_last_map: for 4-D outputs, (B, h, w, C) instead of (B, C, h, w) (e.g. SAM, Swin blocks).
    grid: (h, w) of the patch grid; None infers a square grid, or uses the input's aspect via
      ``stride`` when given to :func:`split_tokens`.
    """

    num_prefix: int = 1
    cls_index: int | None = 0
    batch_first: bool = True
    channels_last_map: bool = False
    grid: tuple[int, int] | None = None

    @property
    def global_kind(self) -> str:
        return "class_token" if self.num_prefix > 0 and self.cls_index is not None else "avg_pool"


# Common layouts, by name (accepted wherever a TokenLayout is).
LAYOUTS = {
    "map": TokenLayout(num_prefix=0, cls_index=None),  # (B, C, h, w)
    "map_nhwc": TokenLayout(num_prefix=0, cls_index=None, channels_last_map=True),  # (B, h, w, C)
    "cls": TokenLayout(num_prefix=1, cls_index=0),  # (B, 1 + h w, C): timm / torchvision / HF ViT
    "cls_seq_first": TokenLayout(num_prefix=1, cls_index=0, batch_first=False),  # (1 + h w, B, C)
    "patches": TokenLayout(num_prefix=0, cls_index=None),  # (B, h w, C), no class token
}


def as_layout(layout) -> TokenLayout:
    """A TokenLayout from a TokenLayout, a name in LAYOUTS, a dict of fields, or an int (prefix count,
    class token first)."""
    if layout is None:
        return LAYOUTS["map"]
    if isinstance(layout, TokenLayout):
        return layout
    if isinstance(layout, str):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown token layout {layout!r}; known: {', '.join(LAYOUTS)}")
        return LAYOUTS[layout]
    if isinstance(layout, dict):
        return TokenLayout(**layout)
    if isinstance(layout, int):
        return TokenLayout(num_prefix=layout, cls_index=0 if layout > 0 else None)
    raise TypeError(f"token_layout must be a TokenLayout, str, dict or int, not {type(layout).__name__}")


def _grid_shape(n_tokens: int, layout: TokenLayout, input_hw: tuple[int, int] | None) -> tuple[int, int]:
    if layout.grid is not None:
        h, w = layout.grid
    elif input_hw is not None and input_hw[0] != input_hw[1]:
        # non-square input: h / w follows the image's aspect ratio
        ratio = input_hw[0] / input_hw[1]
        h = round(math.sqrt(n_tokens * ratio))
        w = n_tokens // max(h, 1)
    else:
        h = w = math.isqrt(n_tokens)
    if n_tokens <= 0 or h * w != n_tokens:
        raise ValueError(
            f"cannot lay {n_tokens} patch tokens out as a grid (tried {h} x {w}); "
            "check num_prefix (class + register tokens) or pass grid=(h, w) in the token layout"
        )
    return h, w


def split_tokens(out, layout: TokenLayout, input_hw: tuple[int, int] | None = None):
    """A layer's output -> (local map (B, C, h, w), global token (B, C)).

    out: a tensor, or a tuple/list whose first element is the hidden state (HF / some blocks).
    Maps: the global token is the spatial mean. Sequences: prefix tokens are dropped from the grid;
    the global token is ``prefix[:, cls_index]``, or the grid's mean when there is no class token.
    """
    if isinstance(out, (tuple, list)):
        out = out[0]
    if hasattr(out, "last_hidden_state"):  # a HF ModelOutput
        out = out.last_hidden_state
    if not torch.is_tensor(out):
        raise TypeError(f"hooked output is a {type(out).__name__}, not a tensor")
    if out.ndim == 4:
        grid = out.permute(0, 3, 1, 2) if layout.channels_last_map else out
        return grid, grid.mean(dim=(2, 3))
    if out.ndim != 3:
        raise ValueError(f"cannot read a {out.ndim}-D output {tuple(out.shape)} as tokens or a map")
    seq = out if layout.batch_first else out.transpose(0, 1)  # (B, N, C)
    prefix, patches = seq[:, : layout.num_prefix], seq[:, layout.num_prefix:]
    h, w = _grid_shape(patches.shape[1], layout, input_hw)
    grid = patches.transpose(1, 2).reshape(seq.shape[0], seq.shape[2], h, w)
    if layout.global_kind == "class_token":
        return grid, prefix[:, layout.cls_index]
    return grid, grid.mean(dim=(2, 3))
