"""Image sets read lazily from files."""
from __future__ import annotations

import numpy as np


class ImageFiles:
    """A sequence of image files; ``images[i]`` is an (H, W, 3) uint8 array (RGB)."""

    def __init__(self, paths):
        self.paths = [str(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return np.asarray(im.convert("RGB"))
