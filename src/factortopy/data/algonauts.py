"""The Algonauts 2023 challenge layout of NSD (data-formats.md).

    subjNN/training_split/training_fmri/{lh,rh}_training_fmri.npy   float32, images x vertices
    subjNN/training_split/training_images/train-NNNN_nsd-XXXXX.png
    subjNN/test_split/test_images/test-NNNN_nsd-XXXXX.png
    subjNN/test_split/test_fmri/{lh,rh}_test_fmri.npy               optional (later releases)
    subjNN/test_split/noise_ceiling/{lh,rh}_noise_ceiling.npy       float64 0-1 fraction, one per column
    subjNN/roi_masks/{lh,rh}.all-vertices_fsaverage_space.npy        length 163842, > 0 = used
    subjNN/roi_masks/{lh,rh}.<cls>_{challenge,fsaverage}_space.npy   ROI labels (see data.rois)
    subjNN/roi_masks/mapping_<cls>.npy                               pickled {label: name}

Column j of a hemisphere's fMRI array is fsaverage vertex np.where(mask > 0)[0][j]; rows are the
images sorted by NSD id; NNNN is a 1-based running count, XXXXX the 0-based NSD id.
"""
from __future__ import annotations

import os
import re

import numpy as np

from factortopy.data.ceiling import ceiling_as_fraction
from factortopy.data.images import ImageFiles
from factortopy.data.subject import Subject, check_finite, parse_hemis
from factortopy.surface import FSAVERAGE_N, HEMIS, cortical_coordinates

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


#: where the release keeps the noise ceiling (computed from the TEST images' repeats)
NOISE_CEILING = ("test_split", "noise_ceiling", "{h}_noise_ceiling.npy")
DEFAULT_VERTEX_SET = "nsdgeneral+RSC"


def list_split_images(path: str, split: str = "training") -> tuple[ImageFiles, np.ndarray]:
    """The images of a split (``training`` or ``test``) and their 0-based NSD ids, without fMRI.

    The test images exist in every release; test fMRI only in later ones.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'training' or 'test'")
    split_dir, img_dir, _, prefix = SPLITS[split]
    paths, nsd_ids = list_images(os.path.join(path, split_dir, img_dir), prefix)
    return ImageFiles(paths), nsd_ids


def noise_ceiling_path(path: str, hemi: str) -> str:
    """``subjNN/test_split/noise_ceiling/{hemi}_noise_ceiling.npy``, where the release keeps it."""
    return os.path.join(path, *NOISE_CEILING).format(h=hemi)


def nsdgeneral_columns(cols: np.ndarray, hemi: str, label_dir: str | None) -> np.ndarray:
    """(len(cols),) bool: which challenge-space columns of ``hemi`` are in NSD's nsdgeneral label.

    The Algonauts release does not say which of its vertices are RSC, so this needs NSD's fsaverage
    label ``{hemi}.nsdgeneral.mgz`` (value 1 = inside) from ``label_dir``
    (``nsddata/freesurfer/fsaverage/label``).
    """
    from factortopy.data.rois import read_label_mgz

    if not label_dir:
        raise ValueError("vertex_set=nsdgeneral needs NSD's fsaverage label {lh,rh}.nsdgeneral.mgz: pass "
                         "nsdgeneral_dir=NSD_ROOT/nsddata/freesurfer/fsaverage/label (the Algonauts release "
                         "marks nsdgeneral and RSC alike); or use vertex_set=nsdgeneral+RSC, the challenge space")
    inside = read_label_mgz(os.path.expanduser(label_dir), "nsdgeneral", hemi) > 0
    if not inside[cols].any():
        raise ValueError(f"no {hemi} column of the subject lies in {label_dir}/{hemi}.nsdgeneral.mgz; is it NSD's "
                         "fsaverage label?")
    return inside[cols]


def load_algonauts(path: str, split: str = "training", hemis=HEMIS, surface: str = "sphere",
                   mesh_dir: str | None = None, rois: str | None = None, nc_unit: str = "fraction",
                   vertex_set: str = DEFAULT_VERTEX_SET, nsdgeneral_dir: str | None = None,
                   roi_masks: bool = True) -> Subject:
    """Read one Algonauts 2023 subject folder (``.../subjNN``, any of the 8) as a :class:`Subject`.

    split: 'training', or 'test' (needs ``test_split/test_fmri/{lh,rh}_test_fmri.npy``, present in
    later releases only; for the test images alone use :func:`list_split_images`). hemis: 'lh',
    'rh' or both ('lh,rh'; lh first). Coordinates come from the fsaverage ``surface`` (sphere by
    default); see :mod:`factortopy.surface` for vertices beyond fsaverage5.
    vertex_set: 'nsdgeneral+RSC' (default, the challenge space: every fMRI column) or 'nsdgeneral'
    (the columns inside NSD's nsdgeneral label, as the reference code trains; needs
    ``nsdgeneral_dir``, NSD's ``nsddata/freesurfer/fsaverage/label``).

    rois: keep only the columns of a ROI selection, in the grammar of every data kind
    (:func:`factortopy.data.rois.parse_roi_spec`): ``'streams/early'``, ``'prf-visualrois'`` (the
    union of its regions), several joined by '+'; an unknown name is an error listing the valid
    ones; ``vertex_set`` then reads ``'<vertex_set> & <selection>'`` (see :meth:`Subject.subset`).

    ``subject.extra`` holds: ``split``; ``vertex_set``; ``test_mask`` (n_images,) bool (all False
    for training, all True for test); ``rois`` {'<cls>/<name>': (n_vertices,) bool} from every
    ``<cls>_challenge_space.npy`` with its mapping (unless ``roi_masks=False``); ``roi_classes`` {label: cls};
    for split='test', ``noise_ceiling`` (n_vertices,) float64, a 0-1 FRACTION, from
    ``test_split/noise_ceiling/{lh,rh}_noise_ceiling.npy`` (``nc_unit``: 'fraction' as released, or
    'percent' for files written so; other values than [0, 1] are an error).
    """
    from factortopy.data.rois import VERTEX_SETS

    path = os.path.abspath(os.path.expanduser(path))
    _require(path, "subject folder")
    if split == "train":
        split = "training"
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'training' or 'test'")
    if vertex_set not in VERTEX_SETS:
        raise ValueError(f"unknown vertex_set {vertex_set!r}; choose one of {', '.join(VERTEX_SETS)}")
    hemis = parse_hemis(hemis)
    split_dir, img_dir, fmri_dir, prefix = SPLITS[split]
    paths, nsd_ids = list_images(os.path.join(path, split_dir, img_dir), prefix)
    responses, vertex, hemi, nc, keep = [], [], [], [], []
    for h in hemis:
        fmri_path = os.path.join(path, split_dir, fmri_dir, f"{h}_{split}_fmri.npy")
        if split == "test" and not os.path.exists(fmri_path):
            raise FileNotFoundError(
                f"test fMRI not found: {fmri_path}. Only later Algonauts 2023 releases include it; "
                "without it, score test predictions on the challenge server (test images: "
                "factortopy.data.algonauts.list_split_images(path, 'test'))"
            )
        _require(fmri_path, "fMRI file")
        fmri = np.load(fmri_path, mmap_mode="r", allow_pickle=False)
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
        keep.append(np.ones(cols.size, bool) if vertex_set == "nsdgeneral+RSC"
                    else nsdgeneral_columns(cols, h, nsdgeneral_dir))
        nc_path = noise_ceiling_path(path, h)
        if split == "test" and os.path.isfile(nc_path):  # the ceiling belongs to the test images' repeats
            values = np.load(nc_path, allow_pickle=False).ravel()
            if values.shape == (FSAVERAGE_N,):  # written in fsaverage space: take the used vertices
                values = values[cols]
            if values.shape != (cols.size,):
                raise ValueError(f"{nc_path} has {values.size} entries; expected {cols.size} (one per "
                                 f"{h} fMRI column) or {FSAVERAGE_N} (fsaverage space)")
            nc.append(ceiling_as_fraction(values, nc_unit, nc_path))
    keep = np.concatenate(keep)
    responses = np.concatenate(responses, axis=1)
    if not keep.all():
        responses = responses[:, keep]
    vertex = np.concatenate(vertex)[keep]
    hemi = np.concatenate(hemi)[keep]
    extra = {"split": split, "vertex_set": vertex_set, "test_mask": np.full(len(paths), split == "test")}
    if nc and len(nc) == len(hemis):
        extra["noise_ceiling"] = np.concatenate(nc)[keep]
    elif nc:
        missing = [noise_ceiling_path(path, h) for h in hemis if not os.path.isfile(noise_ceiling_path(path, h))]
        raise FileNotFoundError(f"noise ceiling found for some hemispheres only; missing {', '.join(missing)}")
    if roi_masks or rois is not None:
        from factortopy.data.rois import algonauts_rois

        masks, classes = algonauts_rois(path, hemis=hemis)
        extra["rois"] = {k: m[keep] for k, m in masks.items()}
        extra["roi_classes"] = classes
    subject = Subject(
        images=ImageFiles(paths),
        responses=responses,
        vertex=vertex,
        hemi=hemi,
        coords=cortical_coordinates(vertex, hemi, surface, mesh_dir),
        image_ids=nsd_ids,
        name=os.path.basename(path),
        extra=extra,
    )
    return subject if rois is None else subject.subset(rois)
