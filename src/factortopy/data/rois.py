"""Regions of interest as boolean masks over a subject's response columns, and the vertex sets.

Every ROI label names its atlas: ``<atlas>/<name>`` (``prf-visualrois/V1v``, ``Kastner2015/V1v``,
``streams/early``), plus ``<atlas>`` alone for the union of an atlas's labels. Atlases with the same
region names (the per-subject prf-visualrois and the group Kastner2015 both have V1v) are never
substituted for one another. Sources (data-formats.md):

* Algonauts 2023: ``roi_masks/{lh,rh}.<cls>_challenge_space.npy`` (one int label per fMRI column),
  ``roi_masks/{lh,rh}.<cls>_fsaverage_space.npy`` (one per fsaverage vertex, 163842) and
  ``roi_masks/mapping_<cls>.npy`` (a pickled ``{label: name}``, read with a restricted unpickler;
  label 0 is "Unknown", never a ROI).
* NSD, group atlases on fsaverage: ``nsddata/freesurfer/fsaverage/label/{lh,rh}.<atlas>.mgz`` with
  ``<atlas>.mgz.ctab`` naming the values (nsdgeneral, streams, Kastner2015, HCP_MMP1).
* NSD, per-subject classes (prf-visualrois, floc-*): ``nsddata/freesurfer/subjNN/label/{lh,rh}.<cls>.mgz``
  on the subject's native surface, mapped to fsaverage through NSD's nearest-neighbour transform
  ``nsddata/ppdata/subjNN/transforms/{lh,rh}.white-to-fsaverage.mgz`` (one 1-based native vertex
  index per fsaverage vertex; what ``nsdcode``'s white -> fsaverage mapping applies).

Masks always follow the subject's column order: left hemisphere first, then right.
"""
from __future__ import annotations

import os
import pickle
import re

import numpy as np

from factortopy.surface import FSAVERAGE_N, HEMIS

ALGONAUTS_CLASSES = ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words", "streams")
#: each class's region names in the release's label order (label k = the k-th name; 0 = "Unknown"),
#: as its ``mapping_<cls>.npy`` lists them (data-formats.md); for writers of the layout
ALGONAUTS_ROI_NAMES = {
    "prf-visualrois": ("V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"),
    "floc-bodies": ("EBA", "FBA-1", "FBA-2", "mTL-bodies"),
    "floc-faces": ("OFA", "FFA-1", "FFA-2", "mTL-faces", "aTL-faces"),
    "floc-places": ("OPA", "PPA", "RSC"),
    "floc-words": ("OWFA", "VWFA-1", "VWFA-2", "mfs-words", "mTL-words"),
    "streams": ("early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal"),
}
#: NSD's group atlases in nsddata/freesurfer/fsaverage/label summarised by default (HCP_MMP1, 180
#: areas, on request with roi_labels=)
NSD_FSAVERAGE_ATLASES = ("nsdgeneral", "streams", "Kastner2015")
#: NSD's per-subject ROI classes (native surface; reach fsaverage through the subject's transform)
NSD_SUBJECT_CLASSES = ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words")

#: vertex sets by name: what each is and where it comes from
VERTEX_SETS = {
    "nsdgeneral+RSC": "the Algonauts 2023 challenge space: nsdgeneral plus RSC (39,548 vertices for "
                      "subject 1; the all-vertices mask > 0)",
    "nsdgeneral": "NSD's nsdgeneral ROI (37,984 vertices for subject 1; what the reference code trains on)",
}


def roi_label(atlas: str, name: str | None = None) -> str:
    """The ROI label of ``name`` in ``atlas`` (``'Kastner2015/V1v'``), or of the atlas's union."""
    return atlas if name is None or name == atlas else f"{atlas}/{name}"


# ----------------------------------------------------------------------------- the selection grammar
#: the selection that keeps every vertex
ALL = "all"


def parse_roi_spec(spec) -> tuple[tuple[str, str | None], ...]:
    """A ROI selection, the same for every data kind, at load time (``rois=``) and on a Subject
    (:meth:`~factortopy.data.subject.Subject.subset`): ``<atlas>/<name>`` (one region,
    ``streams/early``), ``<atlas>`` (the union of the atlas's regions, ``streams``), several joined
    by ``+`` or ``,`` (their union), or a list of those. Returns ``((atlas, name or None), ...)``;
    ``'all'`` gives ``()``.
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    parts = [p.strip() for item in items for p in str(item).replace(",", "+").split("+") if p.strip()]
    if not parts:
        raise ValueError(f"ROI selection {spec!r} names no region; write <atlas>/<name> (e.g. streams/early), "
                         "<atlas> (e.g. streams) or several joined by '+'")
    if parts == [ALL]:
        return ()
    out = []
    for part in parts:
        atlas, _, name = part.partition("/")
        if not atlas or "/" in name:
            raise ValueError(f"ROI {part!r} in {spec!r}: write <atlas>/<name> (e.g. streams/early) or <atlas>")
        if (atlas, name or None) not in out:
            out.append((atlas, name or None))
    return tuple(out)


def roi_spec_text(spec) -> str:
    """The canonical text of a selection (``'streams/early+prf-visualrois'``): what ``vertex_set`` records."""
    parsed = parse_roi_spec(spec)
    return "+".join(roi_label(a, n) for a, n in parsed) if parsed else ALL


def valid_rois(rois: dict) -> list[str]:
    """Every selectable name of a ROI dict: its atlases (unions), then its labels."""
    atlases = list(dict.fromkeys(k.partition("/")[0] for k in rois))
    return atlases + [k for k in rois if k not in atlases]


def select_rois(rois: dict, spec, where: str = "the subject") -> np.ndarray:
    """(N,) bool: the columns the selection ``spec`` (:func:`parse_roi_spec`) picks from the ROI
    dict ``rois`` ({label: (N,) bool}, a loader's ``extra['rois']``). An atlas without its own
    entry is the union of its ``<atlas>/*`` labels (Algonauts stores only those). A name not in
    the dict is an error listing the valid ones."""
    parsed = parse_roi_spec(spec)
    if not rois:
        raise ValueError(f"{where} has no ROI masks (extra['rois']): cannot select {spec!r}")
    n = len(next(iter(rois.values())))
    if not parsed:
        return np.ones(n, bool)
    out = np.zeros(n, bool)
    for atlas, name in parsed:
        label = roi_label(atlas, name)
        if label in rois:
            out |= np.asarray(rois[label], bool)
        elif name is None and any(k.startswith(atlas + "/") for k in rois):
            for k, mask in rois.items():
                if k.startswith(atlas + "/"):
                    out |= np.asarray(mask, bool)
        else:
            raise ValueError(f"unknown ROI {label!r} in {where}; valid: {', '.join(valid_rois(rois))} "
                             "(or several joined by '+')")
    return out


# ----------------------------------------------------------------------------- Algonauts mapping files
# A mapping file is ``np.save(path, {int: str}, allow_pickle=True)``: a 0-d object array whose pickle
# names numpy's ``_reconstruct``, ``ndarray`` and ``dtype`` (and ``scalar`` for numpy-int keys or
# numpy-str names). None of them is ever called: numpy builds an object array from whatever bytes
# the pickle gives it, so a crafted file (an object dtype whose state drops its list-pickle flag,
# then 8 raw bytes as the array's data) made numpy dereference a pointer the file chose and the
# process died (issue 23). The unpickler below maps those names onto plain stand-ins that accept
# only what a mapping is: the 0-d object array holding one dict, integer keys and string names
# (numpy scalars decoded from their bytes here, by int.from_bytes and UTF-32), nothing else.
_SCALAR_SPEC = re.compile(r"(?:[iu][1248]|U\d{1,4})")


class _NDArray:
    """Stands for ``numpy.ndarray`` as a pickle names it: only passed to :func:`_reconstruct`."""


class _Dtype:
    """A dtype as a mapping's pickle names it: its spec ('O8', an integer or a unicode spec) and
    byte order, kept as text (never a numpy dtype, whose pickled state can change what it holds)."""

    def __init__(self, spec, align=False, copy=True):
        if not isinstance(spec, str) or not (spec == "O8" or _SCALAR_SPEC.fullmatch(spec)):
            raise pickle.UnpicklingError(f"dtype {spec!r} is not allowed")
        self.spec, self.byteorder = spec, "|"

    def __setstate__(self, state):
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags): a plain dtype has
        # no subarray, names or fields; only the byte order is used (the spec gives the size)
        if not (isinstance(state, tuple) and len(state) == 8 and state[1] in ("<", ">", "|", "=")
                and state[2:5] == (None, None, None)):
            raise pickle.UnpicklingError("a dtype state that is not a plain dtype's")
        self.byteorder = state[1]


class _Array:
    """The 0-d object array of a mapping file: :meth:`__setstate__` takes its one object (a list
    of one item, how numpy pickles object data), never raw bytes."""

    value = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError("an array state that is not numpy's")
        _, shape, dtype, _, data = state
        if not (isinstance(dtype, _Dtype) and dtype.spec == "O8") or shape != ():
            raise pickle.UnpicklingError("only a 0-d object array (the dict) is allowed")
        if not (isinstance(data, list) and len(data) == 1):
            raise pickle.UnpicklingError("object array data that is not a list of one object (raw bytes?)")
        self.value = data[0]


def _reconstruct(cls, shape, typecode):
    if cls is not _NDArray or shape != (0,) or typecode != b"b":
        raise pickle.UnpicklingError("an array reconstruction that is not numpy's")
    return _Array()


def _scalar(dtype, data=None):
    """A numpy integer or unicode scalar as the plain Python value of its bytes."""
    if not isinstance(dtype, _Dtype) or dtype.spec == "O8" or not isinstance(data, bytes):
        raise pickle.UnpicklingError("a numpy scalar that is not an integer or a string")
    size = int(dtype.spec[1:]) * (4 if dtype.spec[0] == "U" else 1)
    if len(data) != size:
        raise pickle.UnpicklingError(f"a {dtype.spec} scalar of {len(data)} bytes")
    order = "big" if dtype.byteorder == ">" else "little"
    if dtype.spec[0] == "U":
        return data.decode(f"utf-32-{order[0]}e").rstrip("\0")
    return int.from_bytes(data, order, signed=dtype.spec[0] == "i")


_MAPPING_GLOBALS = {("numpy", "ndarray"): _NDArray, ("numpy", "dtype"): _Dtype}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):  # files written by numpy 1 or 2
    _MAPPING_GLOBALS[(_mod, "_reconstruct")], _MAPPING_GLOBALS[(_mod, "scalar")] = _reconstruct, _scalar


class _MappingUnpickler(pickle.Unpickler):
    """Unpickles only what a mapping file holds: a 0-d object array of a dict of ints and strings,
    through the stand-ins above (no numpy object is ever built from the file)."""

    def find_class(self, module, name):
        if (module, name) not in _MAPPING_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a ROI mapping")
        return _MAPPING_GLOBALS[(module, name)]

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed in a ROI mapping")


def read_mapping_file(path: str) -> dict[int, str]:
    """``{label: name}`` from an Algonauts ``mapping_<cls>.npy`` without running code from it.

    The file is a .npy of a 0-d object array holding a dict; its pickle is read by a restricted
    unpickler whose only globals are plain stand-ins for numpy's array reconstruction and
    integer/unicode scalars, so a crafted file can neither call anything nor have numpy build an
    object from raw bytes. Anything else (other objects, keys that are not integers, names that
    are not strings) is a clear error naming the file.
    """
    fix = "re-download the Algonauts 2023 release or rewrite it as np.save(path, {int: str})"
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                               else np.lib.format.read_array_header_2_0(f))
            if dtype != np.dtype(object) or shape != ():
                raise ValueError(f"holds a {dtype} array of shape {shape}, not a pickled dict")
            value = _MappingUnpickler(f).load()
    except (pickle.UnpicklingError, ValueError, EOFError, TypeError, AttributeError, IndexError) as err:
        raise ValueError(f"{path} is not a ROI mapping ({err}); {fix}") from None
    value = value.value if isinstance(value, _Array) else value
    if not isinstance(value, dict):
        raise ValueError(f"{path} holds a {type(value).__name__}, not a dict {{label: name}}; {fix}")
    out = {}
    for k, v in value.items():
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or not isinstance(v, str):
            raise ValueError(f"{path}: entry {k!r}: {v!r} is not int -> str; {fix}")
        out[int(k)] = str(v)
    return out


def read_mapping(subject_dir: str, cls: str) -> dict[int, str]:
    """``{label: name}`` of an Algonauts ROI class (``roi_masks/mapping_<cls>.npy``)."""
    path = os.path.join(subject_dir, "roi_masks", f"mapping_{cls}.npy")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ROI mapping not found: {path} (classes: {', '.join(ALGONAUTS_CLASSES)})")
    return read_mapping_file(path)


def _labels_to_masks(labels: np.ndarray, mapping: dict[int, str]) -> dict[str, np.ndarray]:
    return {name: labels == k for k, name in sorted(mapping.items()) if k != 0}


def fsaverage_roi_labels(subject_dir: str, cls: str, hemi: str) -> np.ndarray:
    """(163842,) int labels of an Algonauts ROI class on full fsaverage."""
    path = os.path.join(subject_dir, "roi_masks", f"{hemi}.{cls}_fsaverage_space.npy")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ROI file not found: {path}")
    labels = np.load(path, allow_pickle=False).astype(np.int64).ravel()
    if labels.shape != (FSAVERAGE_N,):
        raise ValueError(f"{path} has {labels.size} entries, expected {FSAVERAGE_N} (one per fsaverage vertex)")
    return labels


def load_rois(subject_dir: str, cls: str, space: str = "challenge", hemis=HEMIS) -> dict[str, np.ndarray]:
    """Masks of one Algonauts ROI class: ``{name: (n_columns,) bool}`` over the fMRI columns of
    ``hemis`` (lh first), names from ``mapping_<cls>.npy`` (bare: the class is the argument).

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
            lab = np.load(path, allow_pickle=False).astype(np.int64).ravel()
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
    """Every ROI of every class present, labelled ``<cls>/<name>``: ``({label: mask}, {label: cls})``.
    Classes whose files are missing are skipped."""
    rois, owner = {}, {}
    for cls in classes:
        files = [os.path.join(subject_dir, "roi_masks", f"{h}.{cls}_challenge_space.npy") for h in hemis]
        if not all(os.path.isfile(f) for f in files) or not os.path.isfile(
                os.path.join(subject_dir, "roi_masks", f"mapping_{cls}.npy")):
            continue
        for name, mask in load_rois(subject_dir, cls, "challenge", hemis).items():
            key = roi_label(cls, name)
            rois[key], owner[key] = mask, cls
    return rois, owner


# ----------------------------------------------------------------------------- FreeSurfer labels (NSD)
def read_ctab(path: str) -> dict[int, str]:
    """A FreeSurfer colour table (lines ``label name [r g b a]``) as ``{label: name}``."""
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and not line.lstrip().startswith("#") and parts[0].lstrip("-").isdigit():
                out[int(parts[0])] = parts[1]
    return out


def _read_surface_values(path: str, n: int | None) -> np.ndarray:
    import nibabel as nib

    values = np.asarray(nib.load(path).dataobj).ravel()
    if n is not None and values.shape != (n,):
        raise ValueError(f"{path} has {values.size} values, expected {n}")
    return values


def read_label_mgz(label_dir: str, name: str, hemi: str) -> np.ndarray:
    """(163842,) values of an fsaverage label file ``{hemi}.{name}.mgz`` (or .mgh)."""
    for ext in (".mgz", ".mgh"):
        path = os.path.join(label_dir, f"{hemi}.{name}{ext}")
        if os.path.isfile(path):
            return _read_surface_values(path, FSAVERAGE_N)
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


def nsd_dirs(root: str, subject: int) -> dict[str, str]:
    """Where NSD keeps labels and transforms: ``fsaverage`` (group labels), ``native`` (the
    subject's labels), ``transforms`` (the subject's surface transforms)."""
    subj = f"subj{int(subject):02d}"
    return {"fsaverage": os.path.join(root, "nsddata", "freesurfer", "fsaverage", "label"),
            "native": os.path.join(root, "nsddata", "freesurfer", subj, "label"),
            "transforms": os.path.join(root, "nsddata", "ppdata", subj, "transforms")}


def native_to_fsaverage(values: np.ndarray, transform_path: str) -> np.ndarray:
    """(163842,) values on fsaverage of per-vertex ``values`` on a subject's native surface, through
    NSD's nearest-neighbour transform ``{h}.white-to-fsaverage.mgz`` (1-based native vertex per
    fsaverage vertex), as nsdcode's white -> fsaverage mapping does."""
    index = _read_surface_values(transform_path, FSAVERAGE_N)
    if not np.all(np.isfinite(index)) or np.any(index != np.round(index)) or index.min() < 1 or index.max() > values.size:
        raise ValueError(f"{transform_path}: expected 1-based native vertex indices 1..{values.size} (the "
                         f"subject's surface), got {index.min():g}..{index.max():g}; transform and label must "
                         "come from the same subject")
    return values[index.astype(np.int64) - 1]


def nsd_label(root: str, subject: int, name: str, hemi: str) -> tuple[np.ndarray, str]:
    """(163842,) values of NSD label ``name`` on fsaverage, and the ctab path beside it ('' if none).

    Per-subject classes (:data:`NSD_SUBJECT_CLASSES`) come ONLY from the subject's native labels
    through its transform (a missing transform is an error naming it); anything else from the group
    labels in ``nsddata/freesurfer/fsaverage/label``. One atlas never stands in for another.
    """
    d = nsd_dirs(root, subject)
    if name not in NSD_SUBJECT_CLASSES:
        return read_label_mgz(d["fsaverage"], name, hemi), os.path.join(d["fsaverage"], f"{name}.mgz.ctab")
    native = os.path.join(d["native"], f"{hemi}.{name}.mgz")
    if not os.path.isfile(native):
        raise FileNotFoundError(f"per-subject ROI label not found: {native} ({name} exists per subject only, in "
                                "the native surface space; the group atlas Kastner2015 is a different region set)")
    transform = os.path.join(d["transforms"], f"{hemi}.white-to-fsaverage.mgz")
    if not os.path.isfile(transform):
        raise FileNotFoundError(f"NSD surface transform not found: {transform}; it maps {native} to fsaverage "
                                "(download nsddata/ppdata/subjNN/transforms from NSD)")
    return native_to_fsaverage(_read_surface_values(native, None), transform), os.path.join(d["native"], f"{name}.mgz.ctab")


def nsd_roi_names(root: str, subject: int) -> list[str]:
    """The default NSD atlases present for ``subject``: group atlases, then per-subject classes
    whose native labels exist for both hemispheres."""
    d = nsd_dirs(root, subject)
    group = [n for n in NSD_FSAVERAGE_ATLASES if n in available_labels(d["fsaverage"])]
    own = [n for n in NSD_SUBJECT_CLASSES if n in available_labels(d["native"])]
    return group + own


def nsd_roi_vertices(root: str, subject: int, spec, hemi: str) -> np.ndarray:
    """(163842,) bool: the fsaverage vertices of ``hemi`` that the selection ``spec``
    (:func:`parse_roi_spec`) picks from NSD's labels: ``<atlas>`` = label value > 0, ``<atlas>/<name>``
    = the value the atlas's ``.mgz.ctab`` gives ``name``; ``'all'`` = every vertex. An atlas or a
    name that NSD_ROOT does not have is an error listing the valid ones."""
    parsed = parse_roi_spec(spec)
    out = np.zeros(FSAVERAGE_N, bool)
    if not parsed:
        return ~out
    d = nsd_dirs(root, subject)
    for atlas, name in parsed:
        known = list(dict.fromkeys(nsd_roi_names(root, subject) + available_labels(d["fsaverage"])))
        if atlas not in known:
            raise ValueError(f"unknown ROI atlas {atlas!r} for NSD subject {int(subject)} in {root}; valid: "
                             f"{', '.join(known) or 'none found'} (as <atlas> or <atlas>/<name>)")
        values, ctab = nsd_label(root, subject, atlas, hemi)
        if name is None:
            out |= values > 0  # > 0: a volume-derived label may hold -1
            continue
        mapping = read_ctab(ctab) if ctab and os.path.isfile(ctab) else {}
        keys = [k for k, n in mapping.items() if n == name and k > 0]
        if not keys:
            names = [roi_label(atlas, n) for k, n in sorted(mapping.items()) if k > 0]
            raise ValueError(f"unknown ROI {roi_label(atlas, name)!r}: {atlas} ({ctab or 'no .mgz.ctab'}) names "
                             f"{', '.join(names) or 'no regions'}")
        out |= values == keys[0]
    return out


def nsd_label_masks(root: str, subject: int, name: str, vertex: np.ndarray, hemi: np.ndarray) -> dict[str, np.ndarray]:
    """Masks of NSD atlas ``name`` over the columns (``vertex``, ``hemi``): ``{name: value > 0}``
    and, with a colour table beside the label, ``{name/label: value == k}`` for each label k > 0."""
    values = np.zeros(len(vertex), dtype=np.float64)
    ctab = ""
    for h in HEMIS:
        sel = np.asarray(hemi) == h
        if sel.any():
            full, ctab = nsd_label(root, subject, name, h)
            values[sel] = full[vertex[sel]]
    out = {roi_label(name): values > 0}
    if ctab and os.path.isfile(ctab):
        for k, label in sorted(read_ctab(ctab).items()):
            if k > 0 and roi_label(name, label) not in out:
                out[roi_label(name, label)] = values == k
    return out
