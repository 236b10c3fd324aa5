"""One subject's data in the form every fit takes, whatever layout it came from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from factortopy.surface import HEMIS


@dataclass(repr=False, eq=False)
class Subject:
    """Images, responses and where each response column lives on the cortex.

    images: a sequence of (H, W, 3) uint8 arrays (read lazily). responses: (n_images, n_vertices)
    float32, z-scored per vertex. vertex: (n_vertices,) int64 fsaverage index within its hemisphere
    (-1 for data with coordinates only). hemi: (n_vertices,) 'lh'/'rh'. coords: (n_vertices, 3)
    float32 (fsaverage sphere, hemispheres side by side). image_ids: (n_images,) int64 (0-based NSD
    ids where known). image_key: the feature-cache key of ``images``, always DERIVED from them by
    :func:`factortopy.data.images.image_set_key` (computed on first use); a value passed to the
    constructor is only a readable prefix, never the identity. extra: loader-specific (docs/data.md),
    including ``vertex_set``, the name of the vertex set the columns cover.
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
        check_columns(self.vertex, self.hemi, self.name)
        check_finite(self.responses, self.name)

    @property
    def n_images(self) -> int:
        return self.responses.shape[0]

    @property
    def n_vertices(self) -> int:
        return self.responses.shape[1]

    def __repr__(self) -> str:
        hemi = np.asarray(self.hemi).astype(str)
        counts = ", ".join(f"{h} {int((hemi == h).sum())}" for h in HEMIS if (hemi == h).any())
        parts = [f"{self.name!r}", f"{self.n_images} images", f"{self.n_vertices} vertices ({counts})"]
        parts += [f"{k}={self.extra[k]}" for k in ("split", "vertex_set") if k in self.extra]
        return f"Subject({', '.join(parts)})"


def _get_image_key(self) -> str:
    # Derived, never trusted from a loader: the same images give the same key, other pixels another.
    # Cached per images object, so assigning other images to the subject gives their key.
    cached = self.__dict__.get("_image_key")
    if cached is None or cached[0] is not self.images:
        from factortopy.data.images import image_set_key

        key = image_set_key(self.images)
        label = self.__dict__.get("_image_label", "")
        cached = self.__dict__["_image_key"] = (self.images, f"{label}-{key}" if label else key)
    return cached[1]


def _set_image_key(self, value) -> None:
    self.__dict__["_image_label"] = str(value or "")
    self.__dict__.pop("_image_key", None)


# A property over the dataclass field: the constructor keeps its ``image_key=`` argument.
Subject.image_key = property(_get_image_key, _set_image_key, doc="The feature-cache key of ``images`` (derived).")


def parse_hemis(value) -> tuple[str, ...]:
    """Hemisphere names from ``'lh'``, ``'lh,rh'``, ``'lh+rh'`` or a sequence; lh first.

    Any name outside {lh, rh} is an error naming it (a string is never split letter by letter).
    """
    if isinstance(value, str):
        names = [v.strip() for v in value.replace("+", ",").split(",") if v.strip()]
    else:
        names = [str(v) for v in value]
    bad = [n for n in names if n not in HEMIS]
    if bad or not names:
        raise ValueError(f"hemis: {', '.join(map(repr, bad)) or 'none given'} - hemispheres are 'lh' and 'rh' "
                         "(e.g. hemis=lh or hemis=lh,rh)")
    return tuple(h for h in HEMIS if h in names)


def check_columns(vertex, hemi, name: str = "subject") -> None:
    """Raise a clear error for a hemisphere code outside {lh, rh} or a (hemi, vertex) used twice."""
    hemi = np.asarray(hemi).astype(str)
    bad = sorted(set(np.unique(hemi).tolist()) - set(HEMIS))
    if bad:
        raise ValueError(f"{name}: hemisphere codes {bad} are not 'lh'/'rh'")
    vertex = np.asarray(vertex, dtype=np.int64)
    known = vertex >= 0  # -1 = coordinates only, no fsaverage vertex
    for h in HEMIS:
        v = vertex[known & (hemi == h)]
        uniq, counts = np.unique(v, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"{name}: {h} vertex {int(uniq[counts > 1][0])} appears {int(counts.max())} times "
                             f"({int((counts > 1).sum())} duplicated vertex ids); each response column must be "
                             "a different vertex")


def check_finite(responses: np.ndarray, name: str = "responses") -> None:
    """Raise a clear error if responses hold NaN/inf, naming how many columns and which."""
    bad = ~np.isfinite(responses)
    if bad.any():
        cols = np.where(bad.any(axis=0))[0]
        raise ValueError(
            f"{name}: {int(bad.sum())} NaN/inf values in {cols.size} vertex columns "
            f"(first: {cols[:5].tolist()}); drop those vertices (and their mask entries) or impute them"
        )
