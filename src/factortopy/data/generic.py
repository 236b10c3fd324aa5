"""Your own data in one documented form (spec ``generic:PATH``).

A folder::

    PATH/images/            image files (.png/.jpg/.jpeg/.bmp), row i = i-th name in sorted order
      or PATH/images.npy    (n_images, H, W, 3) uint8 (memory-mapped)
    PATH/responses.npy      (n_images, n_vertices) float, one row per image
    PATH/vertices.npy       (n_vertices, 2) int: column 0 hemisphere (0 = lh, 1 = rh), column 1 the
                            fsaverage vertex index within it (0..163841)
      or PATH/coords.npy    (n_vertices, 3) float: any cortical coordinates (then vertex = -1,
                            hemi from PATH/hemi.npy (0/1) if present, else all 'lh')
    PATH/image_ids.npy      optional (n_images,) int ids (default 0..n-1)
    PATH/test_mask.npy      optional (n_images,) bool: held-out test images (``split=train``, the
                            default, leaves them out; ``split=test`` reads only them)
    PATH/noise_ceiling.npy  optional (n_vertices,) 0-1 fraction
    PATH/rois.npz           optional ROI masks: one (n_vertices,) bool array per label, named
                            ``<atlas>/<name>`` (or ``<atlas>``), as every loader's ``extra['rois']``

or a single ``.npz`` with the same keys (``images`` as a uint8 array or ``image_paths`` as
strings, ``responses``, ``vertices`` or ``coords``, ..., ROI masks as keys ``roi:<atlas>/<name>``).
``rois=`` selects vertices in the grammar of every data kind (:func:`factortopy.data.rois.parse_roi_spec`). Responses are z-scored per vertex over the
images unless ``zscore=False``.
"""
from __future__ import annotations

import os

import numpy as np

from factortopy.data.ceiling import ceiling_as_fraction
from factortopy.data.images import ImageArray, ImageFiles, ImageSubset, image_files
from factortopy.data.subject import Subject
from factortopy.surface import FSAVERAGE_N, cortical_coordinates

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


def _read_folder(path: str) -> dict:
    out = {}
    for key in ("responses", "vertices", "coords", "hemi", "image_ids", "test_mask", "noise_ceiling"):
        f = os.path.join(path, f"{key}.npy")
        if os.path.isfile(f):
            out[key] = np.load(f, mmap_mode="r" if key == "responses" else None)
    if os.path.isfile(os.path.join(path, "rois.npz")):
        out.update({f"roi:{k}": v for k, v in _read_npz(os.path.join(path, "rois.npz")).items()})
    if os.path.isdir(os.path.join(path, "images")):
        folder = os.path.join(path, "images")
        out["image_paths"] = image_files(folder, IMAGE_EXTS)
    elif os.path.isfile(os.path.join(path, "images.npy")):
        out["images"] = np.load(os.path.join(path, "images.npy"), mmap_mode="r")
    return out


def _read_npz(path: str) -> dict:
    """The arrays of an .npz, never unpickling: an object array is a one-line error naming its key."""
    out = {}
    with np.load(path, allow_pickle=False) as z:
        for key in z.files:
            try:
                out[key] = z[key]
            except ValueError as err:  # "Object arrays cannot be loaded when allow_pickle=False"
                raise ValueError(f"{path}: key {key!r} holds Python objects ({err}); save plain numbers or "
                                 "strings, e.g. np.asarray(values, dtype=np.int64)") from None
    return out


def _integers(values, key: str, path: str) -> np.ndarray:
    """``values`` as int64, or a one-line error naming the key and what it holds (e.g. 'lh' strings)."""
    a = np.asarray(values)
    if a.dtype.kind in "iu" or a.size == 0:
        return a.astype(np.int64)
    if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return a.astype(np.int64)
    text = [str(x) for x in np.unique(a.astype(str))]
    found = ", ".join(repr(x) for x in ([x for x in text if not x.lstrip("-").isdigit()] or text)[:4])
    hemis = " (hemispheres are written 0 = lh, 1 = rh)" if np.isin(a.astype(str), ("lh", "rh")).any() else ""
    raise ValueError(f"{path}: {key} must hold integers; found {a.dtype.name} values such as {found}{hemis}")


def _hemi_codes(codes, n_vox: int, path: str) -> np.ndarray:
    """'lh'/'rh' from hemi.npy codes 0/1; any other code is an error (never read as 'lh')."""
    codes = np.asarray(codes).ravel()
    if codes.shape != (n_vox,):
        raise ValueError(f"{path}: hemi must have {n_vox} entries (0 = lh, 1 = rh), got {codes.shape}")
    if not np.isin(codes, (0, 1)).all():
        raise ValueError(f"{path}: hemi holds codes {sorted(set(codes.tolist()) - {0, 1})[:5]}; use 0 (lh) or 1 (rh)")
    return np.where(codes == 1, "rh", "lh")


def zscore_columns(x: np.ndarray) -> np.ndarray:
    """Z-score each column over rows (ddof 0); constant columns become 0. The statistics are taken
    in float64, a block of columns at a time: float32 overflows on columns of values near 3e38."""
    x = np.asarray(x, dtype=np.float32)
    out = np.empty(x.shape, np.float32)
    for lo in range(0, x.shape[1], 4096):
        block = x[:, lo:lo + 4096].astype(np.float64)
        std = block.std(0)
        out[:, lo:lo + 4096] = (block - block.mean(0)) / np.where(std > 0, std, 1.0)
    return out


def _roi_masks(d: dict, n_vox: int, path: str) -> dict:
    """{label: (n_vertices,) bool} from the ``roi:<label>`` entries; wrong shapes or values are errors."""
    out = {}
    for key in [k for k in d if k.startswith("roi:")]:
        label, mask = key[4:], np.asarray(d[key])
        if not label or label.count("/") > 1:
            raise ValueError(f"{path}: ROI {label!r}: name masks <atlas>/<name> or <atlas> (e.g. streams/early)")
        if mask.shape != (n_vox,) or not (mask.dtype == bool or np.isin(mask, (0, 1)).all()):
            raise ValueError(f"{path}: ROI {label!r} must be ({n_vox},) bool (one entry per vertex), got "
                             f"{mask.dtype} {mask.shape}")
        out[label] = mask.astype(bool)
    return out


def load_generic(path: str, split: str = "train", zscore: bool = True, surface: str = "sphere",
                  mesh_dir: str | None = None, rois: str | None = None) -> Subject:
    """Read the generic layout (a folder or an .npz, see the module doc) as a :class:`Subject`.

    split: 'train' (images not marked in test_mask; all images without one), 'test' (the marked
    images; needs test_mask) or 'all'. ``extra['test_mask']`` marks the test images of the result.
    rois: keep the vertices of a ROI selection of the data's ROI masks (see :meth:`Subject.subset`).
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(path):
        d = _read_folder(path)
    elif os.path.isfile(path) and path.endswith(".npz"):
        d = _read_npz(path)
        if "image_paths" in d:
            base = os.path.dirname(path)
            d["image_paths"] = [p if os.path.isabs(p) else os.path.join(base, p) for p in d["image_paths"].tolist()]
    else:
        raise FileNotFoundError(f"generic data not found: {path} (a folder or an .npz; see docs/data.md)")
    if "responses" not in d:
        raise FileNotFoundError(f"{path}: no responses (responses.npy or key 'responses')")
    responses = np.asarray(d["responses"], dtype=np.float32)
    if responses.ndim != 2:
        raise ValueError(f"{path}: responses must be (n_images, n_vertices), got {responses.shape}")
    n_img, n_vox = responses.shape
    if "image_paths" in d:
        images = ImageFiles(d["image_paths"])
    elif "images" in d:
        images = ImageArray(d["images"])
    else:
        raise FileNotFoundError(f"{path}: no images (an images/ folder, images.npy, or key 'images'/'image_paths')")
    if len(images) != n_img:
        raise ValueError(f"{path}: {len(images)} images but {n_img} response rows")

    if "vertices" in d:
        v = _integers(d["vertices"], "vertices", path)
        if v.shape != (n_vox, 2):
            raise ValueError(f"{path}: vertices must be ({n_vox}, 2) [hemi 0/1, fsaverage index], got {v.shape}")
        if "hemi" in d:  # never ignored silently: it must say what column 0 says
            named = _hemi_codes(d["hemi"], n_vox, path)
            if not np.array_equal(named, np.where(v[:, 0] == 0, "lh", "rh")):
                raise ValueError(f"{path}: hemi disagrees with column 0 of vertices (the hemisphere, 0 = lh, 1 = rh); "
                                 "give the hemisphere once, in vertices")
        if not np.isin(v[:, 0], (0, 1)).all() or v[:, 1].min() < 0 or v[:, 1].max() >= FSAVERAGE_N:
            raise ValueError(f"{path}: vertices column 0 must be 0 (lh) / 1 (rh), column 1 in [0, {FSAVERAGE_N})")
        hemi = np.where(v[:, 0] == 0, "lh", "rh")
        vertex = v[:, 1]
        coords = cortical_coordinates(vertex, hemi, surface, mesh_dir)
    elif "coords" in d:
        coords = np.asarray(d["coords"], dtype=np.float32)
        if coords.shape != (n_vox, 3):
            raise ValueError(f"{path}: coords must be ({n_vox}, 3), got {coords.shape}")
        vertex = np.full(n_vox, -1, dtype=np.int64)  # not fsaverage vertices: painting needs vertices.npy
        hemi = _hemi_codes(d["hemi"], n_vox, path) if "hemi" in d else np.full(n_vox, "lh")
    else:
        raise FileNotFoundError(f"{path}: no vertices.npy (hemi, fsaverage index) or coords.npy")

    image_ids = np.asarray(d.get("image_ids", np.arange(n_img)), dtype=np.int64)
    test_mask = np.asarray(d.get("test_mask", np.zeros(n_img, bool)), dtype=bool)
    if test_mask.shape != (n_img,):
        raise ValueError(f"{path}: test_mask must have {n_img} entries")
    if split == "test" and not test_mask.any():
        raise ValueError(f"{path}: no test images (test_mask.npy / key 'test_mask' marks none)")
    rows = {"train": ~test_mask, "test": test_mask, "all": np.ones(n_img, bool)}[split]
    if not rows.all():
        index = np.where(rows)[0]
        images = ImageSubset(images, index)
        responses, image_ids, test_mask = responses[index], image_ids[index], test_mask[index]
    extra = {"split": split, "vertex_set": "as given", "test_mask": test_mask}
    masks = _roi_masks(d, n_vox, path)
    if masks:
        extra["rois"] = masks
    if "noise_ceiling" in d:
        nc = ceiling_as_fraction(np.asarray(d["noise_ceiling"]).ravel(), "fraction", f"{path} noise_ceiling")
        if nc.shape != (n_vox,):
            raise ValueError(f"{path}: noise_ceiling must have {n_vox} entries")
        extra["noise_ceiling"] = nc
    subject = Subject(
        images=images,
        responses=zscore_columns(responses) if zscore else responses,
        vertex=vertex,
        hemi=hemi,
        coords=coords,
        image_ids=image_ids,
        name=os.path.splitext(os.path.basename(path))[0],
        extra=extra,
    )
    return subject if rois is None else subject.subset(rois)
