"""Regions of interest as boolean masks over a subject's response columns.

Two sources (data-formats.md):

* Algonauts 2023: ``roi_masks/{lh,rh}.<cls>_challenge_space.npy`` (one int label per fMRI column),
  ``roi_masks/{lh,rh}.<cls>_fsaverage_space.npy`` (one per fsaverage vertex, 163842) and
  ``roi_masks/mapping_<cls>.npy`` (a pickled ``{label: name}``; label 0 is "Unknown", never a ROI).
* NSD / FreeSurfer: ``nsddata/freesurfer/fsaverage/label/{lh,rh}.<name>.mgz`` (one value per
  fsaverage vertex; > 0 = inside) with an optional ``<name>.mgz.ctab`` naming the labels.

Masks always follow the subject's column order: left hemisphere first, then right.
"""
from __future__ import annotations

import os

import numpy as np

from factortopy.data.fsaverage import FSAVERAGE_N, HEMIS

ALGONAUTS_CLASSES = ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words", "streams")
NSD_LABELS = ("nsdgeneral", "streams", "prf-visualrois", "floc-bodies", "floc-faces", "floc-places",
              "floc-words", "Kastner2015")


def read_mapping(subject_dir: str, cls: str) -> dict[int, str]:
    """``{label: name}`` of an Algonauts ROI class (``roi_masks/mapping_<cls>.npy``)."""
    path = os.path.join(subject_dir, "roi_masks", f"mapping_{cls}.npy")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ROI mapping not found: {path} (classes: {', '.join(ALGONAUTS_CLASSES)})")
    mapping = np.load(path, allow_pickle=True).item()  # a pickled dict, as released
    return {int(k): str(v) for k, v in mapping.items()}


def _labels_to_masks(labels: np.ndarray, mapping: dict[int, str]) -> dict[str, np.ndarray]:
    return {name: labels == k for k, name in sorted(mapping.items()) if k != 0}


def fsaverage_roi_labels(subject_dir: str, cls: str, hemi: str) -> np.ndarray:
    """(163842,) int labels of an Algonauts ROI class on full fsaverage."""
    path = os.path.join(subject_dir, "roi_masks", f"{hemi}.{cls}_fsaverage_space.npy")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ROI file not found: {path}")
    labels = np.load(path).astype(np.int64).ravel()
    if labels.shape != (FSAVERAGE_N,):
        raise ValueError(f"{path} has {labels.size} entries, expected {FSAVERAGE_N} (one per fsaverage vertex)")
    return labels


def load_rois(subject_dir: str, cls: str, space: str = "challenge", hemis=HEMIS) -> dict[str, np.ndarray]:
    """Masks of an Algonauts ROI class: ``{name: (n_columns,) bool}`` over the fMRI columns of
    ``hemis`` (lh first), names from ``mapping_<cls>.npy``.

    space: 'challenge' reads ``<cls>_challenge_space.npy``; 'fsaverage' reads
    ``<cls>_fsaverage_space.npy`` and keeps the used vertices (``all-vertices`` mask), so both give
    the same columns. A label file whose length does not match the fMRI columns is an error.
    """
    from factortopy.data.algonauts import vertex_mask

    mapping = read_mapping(subject_dir, cls)
    labels = []
    for h in hemis:
        cols = vertex_mask(subject_dir, h)
        if space == "challenge":
            path = os.path.join(subject_dir, "roi_masks", f"{h}.{cls}_challenge_space.npy")
            if not os.path.isfile(path):
                raise FileNotFoundError(f"ROI file not found: {path}")
            lab = np.load(path).astype(np.int64).ravel()
            if lab.size != cols.size:
                raise ValueError(f"{path} has {lab.size} entries but the {h} fMRI has {cols.size} columns "
                                 "(all-vertices mask); ROI files and fMRI must come from the same subject")
        elif space == "fsaverage":
            lab = fsaverage_roi_labels(subject_dir, cls, h)[cols]
        else:
            raise ValueError(f"space must be 'challenge' or 'fsaverage', got {space!r}")
        labels.append(lab)
    return _labels_to_masks(np.concatenate(labels), mapping)


def algonauts_rois(subject_dir: str, hemis=HEMIS, classes=ALGONAUTS_CLASSES):
    """Every ROI of every class present: ``({name: mask}, {name: cls})``. Classes whose files are
    missing are skipped; a name used by two classes is prefixed ``<cls>:``."""
    rois, owner = {}, {}
    for cls in classes:
        files = [os.path.join(subject_dir, "roi_masks", f"{h}.{cls}_challenge_space.npy") for h in hemis]
        if not all(os.path.isfile(f) for f in files) or not os.path.isfile(
                os.path.join(subject_dir, "roi_masks", f"mapping_{cls}.npy")):
            continue
        for name, mask in load_rois(subject_dir, cls, "challenge", hemis).items():
            key = name if name not in rois else f"{cls}:{name}"
            rois[key], owner[key] = mask, cls
    return rois, owner


def read_ctab(path: str) -> dict[int, str]:
    """A FreeSurfer colour table (lines ``label name [r g b a]``) as ``{label: name}``."""
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and not line.lstrip().startswith("#") and parts[0].lstrip("-").isdigit():
                out[int(parts[0])] = parts[1]
    return out


def read_label_mgz(label_dir: str, name: str, hemi: str) -> np.ndarray:
    """(163842,) values of an fsaverage label file ``{hemi}.{name}.mgz`` (or .mgh)."""
    import nibabel as nib

    for ext in (".mgz", ".mgh"):
        path = os.path.join(label_dir, f"{hemi}.{name}{ext}")
        if os.path.isfile(path):
            values = np.asarray(nib.load(path).dataobj).ravel()
            if values.shape != (FSAVERAGE_N,):
                raise ValueError(f"{path} has {values.size} values, expected {FSAVERAGE_N} (fsaverage)")
            return values
    raise FileNotFoundError(f"fsaverage label not found: {os.path.join(label_dir, f'{hemi}.{name}.mgz')} "
                            f"(labels there: {', '.join(available_labels(label_dir)) or 'none'})")


def available_labels(label_dir: str) -> list[str]:
    """Names of the labels present for both hemispheres in ``label_dir``."""
    if not os.path.isdir(label_dir):
        return []
    found = {h: set() for h in HEMIS}
    for f in os.listdir(label_dir):
        h, _, rest = f.partition(".")
        if h in found and rest.endswith((".mgz", ".mgh")):
            found[h].add(rest[:-4])
    return sorted(found["lh"] & found["rh"])


def label_masks(label_dir: str, name: str, vertex: np.ndarray, hemi: np.ndarray) -> dict[str, np.ndarray]:
    """Masks from an fsaverage label over the columns (``vertex``, ``hemi``).

    Without a colour table: ``{name: value > 0}``. With ``<name>.mgz.ctab``: one mask per label
    > 0 (``{label name: value == k}``) plus the union ``{name: value > 0}``.
    """
    values = np.zeros(len(vertex), dtype=np.float64)
    for h in HEMIS:
        sel = hemi == h
        if sel.any():
            values[sel] = read_label_mgz(label_dir, name, h)[vertex[sel]]
    out = {name: values > 0}
    for ctab in (os.path.join(label_dir, f"{name}.mgz.ctab"), os.path.join(label_dir, f"{name}.ctab")):
        if os.path.isfile(ctab):
            for k, label in sorted(read_ctab(ctab).items()):
                if k > 0 and label not in out:
                    out[label] = values == k
            break
    return out
