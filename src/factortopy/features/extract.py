"""Run a backbone over an image set once and keep the stacked tokens (half precision)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from factortopy.data.images import ImageSubset
from factortopy.features.resize import resize_to_tokens


@dataclass
class Features:
    """Stacked tokens of every image: ``tokens`` (n_images, L, grid^2 + 1, C_max), float16,
    row-major grid cells then the global token; channels beyond a layer's width are zero."""

    tokens: torch.Tensor
    layer_names: list[str]
    channels: list[int]
    grid: int
    #: identity of the backbone that made them (factortopy.backbones.spec.backbone_identity)
    backbone: dict | None = None

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def subset(self, index) -> "Features":
        return Features(self.tokens[torch.as_tensor(index)], self.layer_names, self.channels, self.grid, self.backbone)


def images_to_tokens(backbone, batch: torch.Tensor, grid: int) -> torch.Tensor:
    """Normalised images (B, 3, H, W) -> (B, L, grid^2 + 1, C_max) tokens in the images' dtype."""
    local, global_ = backbone(batch)
    c_max = max(backbone.info.channels)
    B = batch.shape[0]
    out = batch.new_zeros(B, len(local), grid * grid + 1, c_max)
    for l, (maps, glob) in enumerate(zip(local, global_)):  # L is small; each step is one GEMM
        c = maps.shape[1]
        out[:, l, : grid * grid, :c] = resize_to_tokens(maps.float(), grid).to(out.dtype)
        out[:, l, grid * grid, :c] = glob.float().to(out.dtype)
    return out


def to_storage(tokens: torch.Tensor, dtype=torch.float16) -> torch.Tensor:
    """Tokens -> CPU storage dtype, refusing values the dtype cannot hold (float16 tops at 65504:
    block outputs taken before the final norm can exceed it)."""
    out = tokens.to("cpu", dtype)
    if not torch.isfinite(out).all():
        bad = "NaN/inf in the backbone's features" if not torch.isfinite(tokens).all() else \
            f"features exceed the range of {dtype} (max |value| {tokens.abs().max().item():.3g})"
        raise ValueError(f"{bad}; extract with dtype=torch.float32 (or bfloat16), or hook other layers")
    return out


@torch.no_grad()
def token_rows(backbone, images, start: int, stop: int, grid: int, device: str = "cpu",
               dtype=torch.float16) -> torch.Tensor:
    """Images [start, stop) -> their stored tokens (stop - start, L, grid^2 + 1, C_max) on the CPU
    in ``dtype``: read, preprocessed, run (bf16 autocast on CUDA), resized, range-checked. The one
    extraction step shared by :func:`extract_features` and the on-disk cache."""
    batch = prepare_batch(backbone, images, start, stop, device)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=str(device).startswith("cuda")):
        tokens = images_to_tokens(backbone, batch, grid)
    return to_storage(tokens, dtype)


def prepare_batch(backbone, images, start: int, stop: int, device: str = "cpu") -> torch.Tensor:
    """Images [start, stop) read, moved to ``device`` and preprocessed there (resize + normalise on
    the GPU when there is one: the antialiased resize is the slow part on a CPU)."""
    raw = load_batch(images, start, stop)
    if isinstance(raw, list):  # mixed sizes: each image is resized whole on its own
        # a copy: image readers hand out read-only arrays, which torch.from_numpy warns about
        return torch.cat([backbone.preprocess(torch.from_numpy(a.copy())[None].to(device)) for a in raw])
    return backbone.preprocess(raw.to(device))


def load_batch(images, start: int, stop: int) -> torch.Tensor:
    """Images [start, stop) of a sequence of (H, W, 3) uint8 arrays -> (B, H, W, 3) uint8 tensor.
    Images of different sizes are allowed: each is returned at its own size in a list."""
    arrays = [np.asarray(images[i]) for i in range(start, stop)]
    shapes = {a.shape for a in arrays}
    if len(shapes) == 1:
        return torch.from_numpy(np.stack(arrays))
    return arrays


@torch.no_grad()
def extract_features(backbone, images, grid: int = 8, batch_size: int = 32, device: str = "cpu",
                     progress: bool = True, dtype=torch.float16, index=None) -> Features:
    """Run ``backbone`` over ``images`` (a sequence of (H, W, 3) uint8 arrays) once.

    index: optional positions into ``images`` to run on (read lazily, in that order).

    Returns :class:`Features` on the CPU in ``dtype``. Memory: n_images x L x (grid^2 + 1) x C_max
    x 2 bytes (ViT-B, 12 layers, 8x8: 1.2 MB per image); for more, use the on-disk cache.
    """
    from factortopy._progress import progress_bar as tqdm  # renders in Jupyter, else a plain bar

    if index is not None:
        images = ImageSubset(images, index)
    backbone = backbone.to(device).eval()
    info = backbone.info
    n = len(images)
    out = torch.zeros(n, len(info.layer_names), grid * grid + 1, max(info.channels), dtype=dtype)
    bar = tqdm(total=n, desc=f"features {info.name}", unit="img", disable=not progress)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        out[start:stop] = token_rows(backbone, images, start, stop, grid, device, dtype)
        bar.update(stop - start)
    bar.close()
    from factortopy.backbones.spec import backbone_identity

    return Features(out, list(info.layer_names), list(info.channels), grid, backbone_identity(backbone))
