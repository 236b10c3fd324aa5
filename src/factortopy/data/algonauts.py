"""The Algonauts 2023 challenge layout of NSD (data-formats.md).

    subjNN/training_split/training_fmri/{lh,rh}_training_fmri.npy   float32, images x vertices
    subjNN/training_split/training_images/train-NNNN_nsd-XXXXX.png
    subjNN/test_split/test_images/test-NNNN_nsd-XXXXX.png
    subjNN/test_split/test_fmri/{lh,rh}_test_fmri.npy               optional (later releases)
    subjNN/roi_masks/{lh,rh}.all-vertices_fsaverage_space.npy        length 163842, > 0 = used
    subjNN/roi_masks/{lh,rh}.<cls>_{challenge,fsaverage}_space.npy   ROI labels (see data.rois)
    subjNN/roi_masks/mapping_<cls>.npy                               pickled {label: name}

Column j of a hemisphere's fMRI array is fsaverage vertex np.where(mask > 0)[0][j]; rows are the
images sorted by NSD id; NNNN is a 1-based running count, XXXXX the 0-based NSD id.
"""
from __future__ import annotations

import hashlib
import os
import re

import numpy as np

from factortopy.data.fsaverage import FSAVERAGE_N, HEMIS, cortical_coordinates
from factortopy.data.images import ImageFiles
from factortopy.data.subject import Subject, check_finite

_NAME = re.compile(r"^(train|test)-(\d+)_nsd-(\d+)\.png$")
SPLITS = {"training": ("training_split", "training_images", "training_fmri", "train"),
          "test": ("test_split", "test_images", "test_fmri", "test")}


def _require(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path} (expected the Algonauts 2023 layout, see docs/data.md)")
    return path


def list_images(folder: str, prefix: str) -> tuple[list[str], np.ndarray]:
    """Image paths sorted by their running number, and their 0-based NSD ids.

    Checks that running numbers are 1..n without gaps and that NSD ids ascend (the fMRI row order).
    """
    _require(folder, "image folder")
    entries = []
    for name in os.listdir(folder):  # os.listdir order is arbitrary: always sort
        m = _NAME.match(name)
        if m and m.group(1) == prefix:
            entries.append((int(m.group(2)), int(m.group(3)), os.path.join(folder, name)))
    if not entries:
        raise FileNotFoundError(f"no {prefix}-NNNN_nsd-XXXXX.png images in {folder}")
    entries.sort()
    running = np.array([e[0] for e in entries])
    if not np.array_equal(running, np.arange(1, len(entries) + 1)):
        missing = sorted(set(range(1, len(entries) + 1)) - set(running.tolist()))[:5]
        raise ValueError(f"{folder}: running numbers are not 1..{len(entries)} (missing e.g. {missing})")
    nsd_ids = np.array([e[1] for e in entries], dtype=np.int64)
    if np.any(np.diff(nsd_ids) <= 0):
        raise ValueError(f"{folder}: NSD ids do not ascend with the running number; the files do not follow the layout")
    return [e[2] for e in entries], nsd_ids


def vertex_mask(subject_dir: str, hemi: str) -> np.ndarray:
    """fsaverage indices (ascending) of the vertices that the hemisphere's fMRI columns hold."""
    path = _require(os.path.join(subject_dir, "roi_masks", f"{hemi}.all-vertices_fsaverage_space.npy"),
                    "vertex mask")
    mask = np.load(path)
    if mask.shape != (FSAVERAGE_N,):
        raise ValueError(f"{path} has shape {mask.shape}, expected ({FSAVERAGE_N},) (one entry per fsaverage vertex)")
    return np.where(mask > 0)[0].astype(np.int64)


NC_NAMES = ("{h}_noise_ceiling.npy", "{h}.noise_ceiling.npy", "{h}_ncsnr_noise_ceiling.npy")
NC_DIRS = (("test_split", "test_fmri"), ("test_split",), ("noise_ceiling",), ("roi_masks",), ())


def list_split_images(path: str, split: str = "training") -> tuple[ImageFiles, np.ndarray]:
    """The images of a split (``training`` or ``test``) and their 0-based NSD ids, without fMRI.

    The test images exist in every release; test fMRI only in later ones.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'training' or 'test'")
    split_dir, img_dir, _, prefix = SPLITS[split]
    paths, nsd_ids = list_images(os.path.join(path, split_dir, img_dir), prefix)
    return ImageFiles(paths), nsd_ids


def find_noise_ceiling(path: str, hemi: str, split: str = "test") -> str | None:
    """The optional per-vertex noise-ceiling file of a hemisphere, or None.

    Searched as ``{lh,rh}_noise_ceiling.npy`` in test_split/test_fmri/, test_split/, noise_ceiling/,
    roi_masks/ and the subject folder (releases differ). A ceiling under test_split/ belongs to the
    test images' repeat counts: it is used only for the test split.
    """
    for parts in NC_DIRS:
        if parts[:1] == ("test_split",) and split != "test":
            continue
        for name in NC_NAMES:
            candidate = os.path.join(path, *parts, name.format(h=hemi))
            if os.path.isfile(candidate):
                return candidate
    return None


def noise_ceiling_fraction(values: np.ndarray, unit: str = "auto", what: str = "noise ceiling") -> np.ndarray:
    """A noise ceiling as a 0-1 fraction. unit: 'fraction', 'percent' or 'auto' (percent if any
    finite value exceeds 1, the only safe reading since a fraction cannot)."""
    values = np.asarray(values, dtype=np.float32)
    if unit == "auto":
        unit = "percent" if np.nanmax(values, initial=0.0) > 1.0 + 1e-6 else "fraction"
    if unit == "percent":
        values = values / 100.0
    elif unit != "fraction":
        raise ValueError(f"noise-ceiling unit must be 'auto', 'percent' or 'fraction', got {unit!r}")
    if np.nanmax(values, initial=0.0) > 1.0 + 1e-6 or np.nanmin(values, initial=0.0) < 0:
        raise ValueError(f"{what}: values outside [0, 1] after reading as {unit}; check the unit")
    return values


def load_algonauts(path: str, split: str = "training", hemis=HEMIS, surface: str = "sphere",
                   mesh_dir: str | None = None, rois: bool = True, nc_unit: str = "auto") -> Subject:
    """Read one Algonauts 2023 subject folder (``.../subjNN``, any of the 8) as a :class:`Subject`.

    split: 'training', or 'test' (needs ``test_split/test_fmri/{lh,rh}_test_fmri.npy``, present in
    later releases only; for the test images alone use :func:`list_split_images`). hemis: which
    hemispheres, lh first. Coordinates come from the fsaverage ``surface`` (sphere by default); see
    :mod:`factortopy.data.fsaverage` for vertices beyond fsaverage5.

    ``subject.extra`` holds: ``split``; ``test_mask`` (n_images,) bool (all False for training, all
    True for test); ``rois`` {name: (n_vertices,) bool} from every ``<cls>_challenge_space.npy`` with
    its mapping (if ``rois``); ``roi_classes`` {name: cls}; ``noise_ceiling`` (n_vertices,) float32
    as a 0-1 FRACTION when ``{lh,rh}_noise_ceiling.npy`` exist (``nc_unit``: how those files are
    written, 'auto' = percent if any value > 1).
    """
    path = os.path.abspath(os.path.expanduser(path))
    _require(path, "subject folder")
    if split == "train":
        split = "training"
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'training' or 'test'")
    split_dir, img_dir, fmri_dir, prefix = SPLITS[split]
    paths, nsd_ids = list_images(os.path.join(path, split_dir, img_dir), prefix)
    responses, vertex, hemi, nc = [], [], [], []
    for h in hemis:
        fmri_path = os.path.join(path, split_dir, fmri_dir, f"{h}_{split}_fmri.npy")
        if split == "test" and not os.path.exists(fmri_path):
            raise FileNotFoundError(
                f"test fMRI not found: {fmri_path}. Only later Algonauts 2023 releases include it; "
                "without it, score test predictions on the challenge server (test images: "
                "factortopy.data.algonauts.list_split_images(path, 'test'))"
            )
        _require(fmri_path, "fMRI file")
        fmri = np.load(fmri_path, mmap_mode="r")
        cols = vertex_mask(path, h)
        if fmri.ndim != 2 or fmri.shape[1] != cols.size:
            raise ValueError(
                f"{fmri_path} has {fmri.shape[-1]} columns but {h}.all-vertices_fsaverage_space.npy "
                f"marks {cols.size} vertices; the fMRI and the mask must come from the same subject"
            )
        if fmri.shape[0] != len(paths):
            raise ValueError(f"{fmri_path} has {fmri.shape[0]} rows but there are {len(paths)} {split} images")
        data = np.asarray(fmri, dtype=np.float32)
        check_finite(data, os.path.basename(fmri_path))
        responses.append(data)
        vertex.append(cols)
        hemi.append(np.full(cols.size, h))
        nc_path = find_noise_ceiling(path, h, split)
        if nc_path is not None:
            values = np.load(nc_path).astype(np.float32).ravel()
            if values.shape == (FSAVERAGE_N,):  # written in fsaverage space: take the used vertices
                values = values[cols]
            if values.shape != (cols.size,):
                raise ValueError(f"{nc_path} has {values.size} entries; expected {cols.size} (one per "
                                 f"{h} fMRI column) or {FSAVERAGE_N} (fsaverage space)")
            nc.append(noise_ceiling_fraction(values, nc_unit, nc_path))
    vertex = np.concatenate(vertex)
    hemi = np.concatenate(hemi)
    extra = {"split": split, "test_mask": np.full(len(paths), split == "test")}
    if len(nc) == len(hemis):
        extra["noise_ceiling"] = np.concatenate(nc)
    if rois:
        from factortopy.data.rois import algonauts_rois

        extra["rois"], extra["roi_classes"] = algonauts_rois(path, hemis=hemis)
    key = hashlib.sha256((os.path.basename(path) + split + ",".join(map(str, nsd_ids))).encode()).hexdigest()[:16]
    return Subject(
        images=ImageFiles(paths),
        responses=np.concatenate(responses, axis=1),
        vertex=vertex,
        hemi=hemi,
        coords=cortical_coordinates(vertex, hemi, surface, mesh_dir),
        image_ids=nsd_ids,
        name=os.path.basename(path),
        image_key=f"algonauts-{split}-{key}",
        extra=extra,
    )
