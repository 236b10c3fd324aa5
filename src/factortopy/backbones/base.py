"""The one interface every backbone adapter offers to FactorTopy."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn


@dataclass
class BackboneInfo:
    """What a fit needs to know about a wrapped backbone.

    layer_names: the hooked layers, in order (L). channels: C_l per layer. strides: input pixels per
    map cell per layer (None where unknown). input_size: (H, W) in pixels that images are resized to
    (whole, no crop). mean/std: per RGB channel, for images scaled to [0, 1]. global_kind: per layer
    ``"class_token"`` (a ViT's class token) or ``"avg_pool"`` (global average of the full-resolution
    map).
    """

    name: str
    layer_names: list[str]
    channels: list[int]
    strides: list[int | None]
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    global_kind: list[str]
    weights: str | None = None  # identity of the weights: a file path + digest, a hub tag, or None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class Backbone(nn.Module):
    """A frozen feature extractor.

    ``forward(images)`` takes normalised images (B, 3, H, W) at ``info.input_size`` and returns
    ``(local, global_)``: L local maps (B, C_l, H_l, W_l) at the layer's native resolution and L
    global tokens (B, C_l). Subclasses set ``self.info`` and implement ``forward``.
    """

    info: BackboneInfo
    #: the BackboneSpec it was built from (set by load_backbone); None for an instance built by hand,
    #: which a run then cannot rebuild on its own
    spec = None

    @torch.no_grad()
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (B, H, W, 3) or float (B, 3, H, W) in [0, 1] -> normalised (B, 3, *input_size).

        The whole image is resized (bilinear, antialiased): subjects saw all of it, so no crop.
        """
        images = torch.as_tensor(images)
        if images.dtype == torch.uint8:
            images = images.permute(0, 3, 1, 2).float() / 255.0
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, H, W, 3) uint8 or (B, 3, H, W) float, got {tuple(images.shape)}")
        size = tuple(self.info.input_size)
        if tuple(images.shape[-2:]) != size:
            images = torch.nn.functional.interpolate(images, size=size, mode="bilinear",
                                                     align_corners=False, antialias=True)
        mean = torch.tensor(self.info.mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.info.std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return (images - mean) / std


def unknown_layer_error(unknown, valid, model_name) -> ValueError:
    return ValueError(
        f"unknown layer(s) {list(unknown)} for {model_name}; valid layers are: {', '.join(valid)}"
    )
