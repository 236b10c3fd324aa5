"""One subject's data in the form every fit takes, whatever layout it came from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass
class Subject:
    """Images, responses and where each response column lives on the cortex.

    images: a sequence of (H, W, 3) uint8 arrays (read lazily). responses: (n_images, n_vertices)
    float32, z-scored per vertex. vertex: (n_vertices,) int64 fsaverage index within its hemisphere.
    hemi: (n_vertices,) 'lh'/'rh'. coords: (n_vertices, 3) float32 (fsaverage sphere, hemispheres
    side by side). image_ids: (n_images,) int64 (0-based NSD ids where known). image_key: a string
    that identifies the image set (for feature caches).
    """

    images: Sequence
    responses: np.ndarray
    vertex: np.ndarray
    hemi: np.ndarray
    coords: np.ndarray
    image_ids: np.ndarray
    name: str = "subject"
    image_key: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        n_img, n_vox = self.responses.shape
        if len(self.images) != n_img:
            raise ValueError(f"{len(self.images)} images but {n_img} response rows")
        for what, arr in (("vertex", self.vertex), ("hemi", self.hemi), ("coords", self.coords)):
            if len(arr) != n_vox:
                raise ValueError(f"{len(arr)} entries in {what} but {n_vox} response columns")
        if len(self.image_ids) != n_img:
            raise ValueError(f"{len(self.image_ids)} image ids but {n_img} response rows")
        check_finite(self.responses, self.name)

    @property
    def n_images(self) -> int:
        return self.responses.shape[0]

    @property
    def n_vertices(self) -> int:
        return self.responses.shape[1]


def check_finite(responses: np.ndarray, name: str = "responses") -> None:
    """Raise a clear error if responses hold NaN/inf, naming how many columns and which."""
    bad = ~np.isfinite(responses)
    if bad.any():
        cols = np.where(bad.any(axis=0))[0]
        raise ValueError(
            f"{name}: {int(bad.sum())} NaN/inf values in {cols.size} vertex columns "
            f"(first: {cols[:5].tolist()}); drop those vertices (and their mask entries) or impute them"
        )
