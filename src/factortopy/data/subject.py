"""One subject's data in the form every fit takes, whatever layout it came from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from factortopy.surface import HEMIS


#: ``extra`` entries holding one value per vertex (column): :meth:`Subject.subset` keeps their selected rows
PER_VERTEX_EXTRA = ("noise_ceiling", "ncsnr")


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

    def subset(self, rois) -> "Subject":
        """This subject restricted to some vertices (columns), as a new Subject sharing the images.

        rois: a ROI selection in the grammar every data kind takes (:func:`factortopy.data.rois.parse_roi_spec`):
        ``'<atlas>/<name>'`` (``'streams/early'``), ``'<atlas>'`` (the union of its regions,
        ``'prf-visualrois'``), several joined by ``'+'``, evaluated on ``extra['rois']`` (an unknown
        name is an error listing the valid ones); or an (n_vertices,) bool mask. Responses,
        ``vertex``, ``hemi``, ``coords`` and the per-vertex extras (``noise_ceiling``, ``ncsnr``,
        every mask of ``rois``) keep the selected columns, in order; ``extra['vertex_set']`` becomes
        ``'<old set> & <selection>'`` (what a fit records and ``repr`` shows).
        """
        from dataclasses import replace

        from factortopy.data.rois import ALL, roi_spec_text, select_rois

        mask = isinstance(rois, np.ndarray) or (isinstance(rois, (list, tuple)) and len(rois) > 0
                                                  and isinstance(rois[0], (bool, np.bool_)))
        if not mask:  # a selection: a string or a list of strings
            label = roi_spec_text(rois)
            if label == ALL:
                return self
            keep = select_rois(self.extra.get("rois") or {}, rois, repr(self))
        else:
            keep = np.asarray(rois)
            if keep.dtype != bool or keep.shape != (self.n_vertices,):
                raise ValueError(f"a vertex mask must be ({self.n_vertices},) bool; got {keep.dtype} {keep.shape}")
            label = f"{int(keep.sum())} chosen vertices"
        if not keep.any():
            raise ValueError(f"the selection {label!r} keeps no vertex of {self!r}")
        extra = dict(self.extra)
        for key in PER_VERTEX_EXTRA:
            if key in extra:
                extra[key] = np.asarray(extra[key])[keep]
        if "rois" in extra:
            extra["rois"] = {k: np.asarray(m, bool)[keep] for k, m in extra["rois"].items()}
        old = extra.get("vertex_set")
        extra["vertex_set"] = f"{old} & {label}" if old else label
        extra.pop("data_spec", None)  # the spec no longer describes these columns
        return replace(self, responses=self.responses[:, keep], vertex=np.asarray(self.vertex)[keep],
                       hemi=np.asarray(self.hemi)[keep], coords=np.asarray(self.coords)[keep], extra=extra,
                       image_key=self.__dict__.get("_image_label", ""))

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


def data_digest(responses, coords) -> str:
    """A short digest (16 hex) of a subject's responses (as float32) and vertex coordinates: what a
    run records (config.json ``data_digest``), so a resume never continues on other data and an
    evaluation with the recorded data spec finds out when the folder there holds other data.
    Hashed in place (no concatenated copy; no copy at all when the responses are float32)."""
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(np.asarray(responses, dtype=np.float32)).data)
    h.update(np.ascontiguousarray(coords, dtype=np.float32).data)
    return h.hexdigest()[:16]
