"""Tiny files in the exact NSD layouts, with known answers, for tests and examples.

Every image's pixels encode its 0-based NSD id (red + 256 green + 65536 blue), so an
off-by-one between 1-based design indices and 0-based imgBrick rows is visible; files are created in
shuffled order, so a loader that trusts the directory listing's order fails. Sizes are tiny except
where the format fixes them (fsaverage arrays are 163842 long). Files follow the real releases
(data-formats.md): dtypes, folders, 1-based integer design arrays, colour tables beside labels,
per-subject NSD ROIs on a native surface with their transform; tests/release_readers.py reads every
one of them with code written from the datasets' documentation alone.
"""
from __future__ import annotations

import os

import numpy as np

from factortopy.data.rois import ALGONAUTS_ROI_NAMES
from factortopy.surface import FSAVERAGE5_N, FSAVERAGE_N, HEMIS

#: the six Algonauts ROI classes with the region names of the release (label 0 = "Unknown")
ALGONAUTS_MAPPINGS = {cls: list(names) for cls, names in ALGONAUTS_ROI_NAMES.items()}


def _mapping(names) -> dict:
    return {0: "Unknown", **{k + 1: n for k, n in enumerate(names)}}


def _write_ctab(path: str, mapping: dict) -> None:
    """A FreeSurfer colour table: ``label name r g b a`` per line."""
    with open(path, "w") as f:
        for k, name in sorted(mapping.items()):
            f.write(f"{k} {name} {(37 * k) % 256} {(91 * k) % 256} {(53 * k) % 256} 0\n")


#: the first regions of NSD's Kastner2015 group atlas in its label order (the first seven share
#: prf-visualrois's names but are other, group-level regions)
KASTNER = ["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4", "VO1", "VO2", "PHC1", "PHC2", "TO2", "TO1", "LO2",
           "LO1", "V3B", "V3A"]
#: the first areas of NSD's HCP_MMP1 atlas (HCP_MMP1.mgz.ctab) in its label order
HCP_MMP1 = ["V1", "MST", "V6", "V2", "V3", "V4", "V8", "4", "3b", "FEF", "PEF", "55b", "V3A", "RSC", "POS2", "V7",
            "IPS1", "FFC", "V3B", "LO1", "LO2", "PIT", "MT"]
#: NSD's per-subject classes (native surface)
NSD_NATIVE = {cls: ALGONAUTS_MAPPINGS[cls] for cls in
              ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words")}


def _write_stim_info(path: str, n_brick: int, subjectim: np.ndarray, masterordering: np.ndarray,
                     sharedix: np.ndarray) -> None:
    """nsd_stim_info_merged.csv: one row per image (nsdId 0-based), subjectK 0/1, subjectK_repN the
    1-based trial number of the N-th showing (0 = not shown)."""
    import csv

    shared = set((sharedix - 1).tolist())
    reps = {}
    for t, slot in enumerate(masterordering):  # trial t + 1 (1-based) shows slot `slot` (1-based)
        for k in range(subjectim.shape[0]):
            reps.setdefault((k, int(subjectim[k, slot - 1]) - 1), []).append(t + 1)
    seen = [set((subjectim[k] - 1).tolist()) for k in range(subjectim.shape[0])]
    header = ["", "cocoId", "cocoSplit", "cropBox", "loss", "nsdId", "flagged", "BOLD5000", "shared1000"]
    header += [f"subject{k + 1}" for k in range(8)]
    header += [f"subject{k + 1}_rep{n}" for k in range(8) for n in range(3)]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in range(n_brick):
            row = [i, 100000 + i, "train2017", "(0, 0, 0.1, 0.1)", 0.0, i, False, False, i in shared]
            row += [int(i in seen[k]) if k < len(seen) else 0 for k in range(8)]
            for k in range(8):
                r = reps.get((k, i), []) + [0, 0, 0]
                row += r[:3]
            w.writerow(row)


def _save_mgh(path: str, values: np.ndarray) -> None:
    import nibabel as nib

    nib.save(nib.MGHImage(np.asarray(values).reshape(-1, 1, 1), np.eye(4)), path)


def id_image(nsd_id: int, size: int = 8) -> np.ndarray:
    """(size, size, 3) uint8 image whose pixels encode ``nsd_id``."""
    img = np.zeros((size, size, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = nsd_id % 256, (nsd_id // 256) % 256, nsd_id // 65536
    return img


def decode_id(image: np.ndarray) -> int:
    """The NSD id encoded by :func:`id_image`."""
    return int(image[0, 0, 0]) + 256 * int(image[0, 0, 1]) + 65536 * int(image[0, 0, 2])


def _save_png(path: str, array: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(array).save(path)


def write_full_mesh(folder: str, nested: bool = True, seed: int = 0) -> str:
    """Write a fake full fsaverage ``{lh,rh}.sphere`` (163842 vertices) into ``folder``.

    nested: the first 10242 vertices are fsaverage5's sphere (as in real fsaverage); otherwise they
    are shuffled. The other vertices are random points on the sphere of radius 100.
    """
    import nibabel as nib

    from factortopy.surface import fsaverage5_surface

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for h in HEMIS:
        small, faces = fsaverage5_surface(h, "sphere")
        extra = rng.normal(size=(FSAVERAGE_N - FSAVERAGE5_N, 3))
        extra = 100 * extra / np.linalg.norm(extra, axis=1, keepdims=True)
        first = small if nested else small[rng.permutation(FSAVERAGE5_N)]
        nib.freesurfer.write_geometry(os.path.join(folder, f"{h}.sphere"),
                                      np.concatenate([first, extra]).astype(np.float64), faces)
    return folder


# ----------------------------------------------------------------------------- Algonauts 2023
#: the first lh columns of :func:`write_fake_algonauts` carry the overlaps the release has
#: (data-formats.md): {cls: name} per column, every class not named = 0 ("Unknown")
OVERLAP_COLUMNS = (
    {"prf-visualrois": "V1v", "streams": "early"},  # a pRF area inside a stream
    {"prf-visualrois": "hV4", "floc-faces": "OFA", "streams": "midventral"},  # a pRF area and a floc ROI
    {"floc-faces": "OFA", "floc-words": "OWFA", "streams": "midlateral"},  # floc ROIs of two categories
    {"floc-faces": "FFA-2", "floc-words": "VWFA-1", "streams": "ventral"},
    {"floc-faces": "mTL-faces", "streams": "ventral"},  # a floc ROI that the paper's groups leave out
    {},  # in no ROI at all
)


def write_fake_algonauts(root: str, subject: str = "subj01", n_train: int = 12, n_test: int = 5,
                         n_lh: int = 7, n_rh: int = 9, test_fmri: bool = True, noise_ceiling: bool = True,
                         seed: int = 0) -> dict:
    """Write ``root/subject`` in the Algonauts 2023 layout; return the planted truth.

    Truth keys: path, train_ids/test_ids (0-based NSD ids, ascending), train/test (responses,
    images x (lh + rh) columns), vertex {hemi: fsaverage indices}, rois {'<cls>/<name>': column
    mask} for all six classes, labels {cls: per-column int labels}, noise_ceiling (a float64
    fraction per column, written as released to test_split/noise_ceiling/). ROI labels are drawn
    at random per class (so classes overlap anywhere), except that the first lh columns carry the
    overlaps of :data:`OVERLAP_COLUMNS` (when n_lh allows).
    """
    rng = np.random.default_rng(seed)
    path = os.path.join(root, subject)
    ids = np.sort(rng.choice(73000, n_train + n_test, replace=False))
    test_ids = np.sort(rng.choice(ids, n_test, replace=False))
    train_ids = np.setdiff1d(ids, test_ids)
    truth = {"path": path, "train_ids": train_ids, "test_ids": test_ids, "vertex": {}}
    os.makedirs(os.path.join(path, "roi_masks"))
    for h, n in (("lh", n_lh), ("rh", n_rh)):
        # spread over fsaverage5's range (offline coordinates), unsorted on purpose before sorting
        truth["vertex"][h] = np.sort(rng.choice(FSAVERAGE5_N, n, replace=False))
        mask = np.zeros(FSAVERAGE_N, np.int32)
        mask[truth["vertex"][h]] = 1
        np.save(os.path.join(path, "roi_masks", f"{h}.all-vertices_fsaverage_space.npy"), mask)
    n_cols = n_lh + n_rh
    for split, folder, prefix, sid in (("training", "training_split", "train", train_ids),
                                       ("test", "test_split", "test", test_ids)):
        img_dir = os.path.join(path, folder, f"{split}_images")
        os.makedirs(img_dir)
        order = rng.permutation(len(sid))  # create files in shuffled order
        for k in order:
            _save_png(os.path.join(img_dir, f"{prefix}-{k + 1:04d}_nsd-{sid[k]:05d}.png"), id_image(int(sid[k])))
        # responses: column j of image i = id + j / 100 (so any misordering is visible)
        resp = (sid[:, None] + np.arange(n_cols)[None] / 100.0).astype(np.float32)
        truth["train" if split == "training" else "test"] = resp
        if split == "test" and not test_fmri:
            continue
        os.makedirs(os.path.join(path, folder, f"{split}_fmri"))
        np.save(os.path.join(path, folder, f"{split}_fmri", f"lh_{split}_fmri.npy"), resp[:, :n_lh])
        np.save(os.path.join(path, folder, f"{split}_fmri", f"rh_{split}_fmri.npy"), resp[:, n_lh:])
    # ROIs: all six classes, per-column labels (0 = Unknown), challenge and fsaverage space
    truth["rois"], truth["labels"] = {}, {}
    for cls, names in ALGONAUTS_MAPPINGS.items():
        mapping = _mapping(names)
        np.save(os.path.join(path, "roi_masks", f"mapping_{cls}.npy"), mapping, allow_pickle=True)
        labels = rng.integers(0, len(mapping), n_cols)
        for col, named in enumerate(OVERLAP_COLUMNS[:n_lh]):
            labels[col] = names.index(named[cls]) + 1 if cls in named else 0
        truth["labels"][cls] = labels
        for h, sl in (("lh", slice(0, n_lh)), ("rh", slice(n_lh, n_cols))):
            np.save(os.path.join(path, "roi_masks", f"{h}.{cls}_challenge_space.npy"), labels[sl].astype(np.int32))
            full = np.zeros(FSAVERAGE_N, np.int32)
            full[truth["vertex"][h]] = labels[sl]
            np.save(os.path.join(path, "roi_masks", f"{h}.{cls}_fsaverage_space.npy"), full)
        for k, name in mapping.items():
            if k:
                truth["rois"][f"{cls}/{name}"] = labels == k
    if noise_ceiling:
        nc = rng.uniform(0.05, 0.9, n_cols)  # float64 fraction, as released
        truth["noise_ceiling"] = nc
        nc_dir = os.path.join(path, "test_split", "noise_ceiling")
        os.makedirs(nc_dir, exist_ok=True)
        np.save(os.path.join(nc_dir, "lh_noise_ceiling.npy"), nc[:n_lh])
        np.save(os.path.join(nc_dir, "rh_noise_ceiling.npy"), nc[n_lh:])
    return truth


# ----------------------------------------------------------------------------- raw NSD
def write_fake_nsd(root: str, subject: int = 1, n_sessions: int = 3, n_sessions_written: int | None = None,
                   trials_per_session: int = 6, n_slots: int = 12, n_shared: int = 4, n_brick: int = 300,
                   lh_vertices=(3, 50, 1000, 10241, 20000), rh_vertices=(0, 7, 5000, 12345),
                   nan_vertices=(), ext: str = ".mgh", full_mesh: bool = True, seed: int = 0,
                   subject_rois: bool = True, n_native: int = 400) -> dict:
    """Write a tiny raw-NSD root; return the planted design and betas.

    n_sessions trials' worth of design (masterordering covers n_sessions x trials_per_session
    trials); n_sessions_written session files are written (default all; fewer = missing trailing
    sessions). nsdgeneral (0/1, as on fsaverage) marks ``lh_vertices`` / ``rh_vertices``. Each
    slot is shown at most 3 times (as in NSD), listed in ``nsd_stim_info_merged.csv``. Group
    labels nsdgeneral, streams, Kastner2015, HCP_MMP1 (with ``.mgz.ctab``) in fsaverage/label; per-subject
    prf-visualrois and floc-* on a native surface of ``n_native`` vertices with the subject's
    ``{lh,rh}.white-to-fsaverage.mgz`` (written when ``subject_rois``). Betas are percent signal change: beta[t, v] = 2 + id(t) / 50 +
    (v index) / 10 + session offset + noise. nan_vertices: (hemi, vertex, session) triples set to NaN
    in that session (all trials). Vertices >= 10242 need the full mesh (written when full_mesh).
    Truth keys: masterordering, subjectim, sharedix (1-based, as written), betas {hemi: (n_trials,
    n_vertices) float32}, vertex {hemi}, ncsnr {hemi}, nsdgeneral, streams, Kastner2015, HCP_MMP1 {hemi:
    (163842,)}, native {cls: {hemi: (n_native,)}}, transform {hemi: (163842,) 1-based},
    on_fsaverage {cls: {hemi: (163842,)}} (the native labels mapped), ctab {atlas: {k: name}}.
    """
    import h5py
    import nibabel as nib
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    T = trials_per_session
    written = n_sessions if n_sessions_written is None else n_sessions_written
    n_trials = n_sessions * T
    # design: 8 subjects; first n_shared slots are the shared images (same for everybody)
    ids = rng.choice(np.arange(1, n_brick), size=n_shared + 8 * (n_slots - n_shared), replace=False)
    shared = ids[:n_shared]
    subjectim = np.zeros((8, n_slots), np.int64)
    for s in range(8):
        own = ids[n_shared + s * (n_slots - n_shared): n_shared + (s + 1) * (n_slots - n_shared)]
        subjectim[s] = np.concatenate([shared, own]) + 1  # 1-based NSD ids
    if n_trials > 3 * n_slots:
        raise ValueError(f"{n_trials} trials need n_slots >= {-(-n_trials // 3)} (NSD shows an image at most 3 "
                         "times; n_brick must hold n_shared + 8 x (n_slots - n_shared) ids)")
    # 1-based slots: every slot once first (if there are enough trials), then the 2nd and 3rd showings
    first = rng.permutation(n_slots) + 1
    again = rng.permutation(np.repeat(np.arange(1, n_slots + 1), 2))
    masterordering = np.concatenate([first, again])[:n_trials]
    sharedix = np.sort(shared) + 1
    exp = os.path.join(root, "nsddata", "experiments", "nsd")
    os.makedirs(exp)
    # integer-typed and 1-based, as released
    savemat(os.path.join(exp, "nsd_expdesign.mat"),
            {"masterordering": masterordering[None].astype(np.int32), "subjectim": subjectim.astype(np.int32),
             "sharedix": sharedix[None].astype(np.int32)})
    _write_stim_info(os.path.join(exp, "nsd_stim_info_merged.csv"), n_brick, subjectim, masterordering, sharedix)
    # stimuli: row r encodes r (0-based), so id i must be read from row i
    stim = os.path.join(root, "nsddata_stimuli", "stimuli", "nsd")
    os.makedirs(stim)
    with h5py.File(os.path.join(stim, "nsd_stimuli.hdf5"), "w") as f:
        f.create_dataset("imgBrick", data=np.stack([id_image(i, 4) for i in range(n_brick)]), chunks=(1, 4, 4, 3))
    # labels
    label = os.path.join(root, "nsddata", "freesurfer", "fsaverage", "label")
    os.makedirs(label)
    native_dir = os.path.join(root, "nsddata", "freesurfer", f"subj{subject:02d}", "label")
    transforms = os.path.join(root, "nsddata", "ppdata", f"subj{subject:02d}", "transforms")
    if subject_rois:
        os.makedirs(native_dir)
        os.makedirs(transforms)
    truth = {"masterordering": masterordering, "subjectim": subjectim, "sharedix": sharedix, "vertex": {},
             "betas": {}, "ncsnr": {}, "nsdgeneral": {}, "streams": {}, "Kastner2015": {}, "HCP_MMP1": {},
             "transform": {},
             "native": {}, "on_fsaverage": {}, "trials_per_session": T,
             "n_sessions_written": written}
    trial_ids = subjectim[subject - 1, masterordering - 1] - 1
    truth["trial_ids"] = trial_ids
    for h, verts in (("lh", lh_vertices), ("rh", rh_vertices)):
        verts = np.asarray(sorted(verts), np.int64)
        truth["vertex"][h] = verts
        gen = np.zeros(FSAVERAGE_N, np.int32)  # 0/1 on fsaverage (the -1 is in the volume ROI only)
        gen[verts] = 1
        truth["nsdgeneral"][h] = gen
        _save_mgh(os.path.join(label, f"{h}.nsdgeneral.mgz"), gen)
        streams = np.zeros(FSAVERAGE_N, np.int32)
        streams[verts[::2]] = 1
        streams[verts[1::2]] = 5
        truth["streams"][h] = streams
        _save_mgh(os.path.join(label, f"{h}.streams.mgz"), streams)
        kastner = np.zeros(FSAVERAGE_N, np.int32)  # a group atlas with the prf-visualrois names
        kastner[verts] = np.arange(verts.size) % len(KASTNER) + 1
        truth["Kastner2015"][h] = kastner
        _save_mgh(os.path.join(label, f"{h}.Kastner2015.mgz"), kastner)
        hcp = np.zeros(FSAVERAGE_N, np.int32)  # read only when asked for (roi_labels=HCP_MMP1)
        hcp[verts] = (np.arange(verts.size) * 5) % len(HCP_MMP1) + 1
        truth["HCP_MMP1"][h] = hcp
        _save_mgh(os.path.join(label, f"{h}.HCP_MMP1.mgz"), hcp)
        if subject_rois:  # native surface labels + the nearest-neighbour transform to fsaverage
            transform = rng.integers(1, n_native + 1, FSAVERAGE_N).astype(np.int32)
            truth["transform"][h] = transform
            _save_mgh(os.path.join(transforms, f"{h}.white-to-fsaverage.mgz"), transform)
            for cls, names in NSD_NATIVE.items():
                native = rng.integers(0, len(names) + 1, n_native).astype(np.int32)
                truth["native"].setdefault(cls, {})[h] = native
                truth["on_fsaverage"].setdefault(cls, {})[h] = native[transform - 1]
                _save_mgh(os.path.join(native_dir, f"{h}.{cls}.mgz"), native)
        noise = rng.normal(0, 0.3, size=(n_trials, verts.size))
        offset = np.repeat(rng.normal(0, 1, size=(n_sessions, verts.size)), T, axis=0)
        truth["betas"][h] = (2 + trial_ids[:, None] / 50 + np.arange(verts.size)[None] / 10 + offset
                             + noise).astype(np.float32)
        truth["ncsnr"][h] = rng.uniform(0.1, 1.5, verts.size).astype(np.float32)
    truth["ctab"] = {"nsdgeneral": {0: "Unknown", 1: "nsdgeneral"}, "streams": _mapping(ALGONAUTS_MAPPINGS["streams"]),
                     "Kastner2015": _mapping(KASTNER), "HCP_MMP1": _mapping(HCP_MMP1)}
    for atlas, mapping in truth["ctab"].items():
        _write_ctab(os.path.join(label, f"{atlas}.mgz.ctab"), mapping)
    if subject_rois:
        for cls, names in NSD_NATIVE.items():
            truth["ctab"][cls] = _mapping(names)
            _write_ctab(os.path.join(native_dir, f"{cls}.mgz.ctab"), _mapping(names))
    for h, v, s in nan_vertices:
        col = int(np.searchsorted(truth["vertex"][h], v))
        truth["betas"][h][(s - 1) * T: s * T, col] = np.nan
    # betas, sessions written in shuffled order
    betas = os.path.join(root, "nsddata_betas", "ppdata", f"subj{subject:02d}", "fsaverage",
                         "betas_fithrf_GLMdenoise_RR")
    os.makedirs(betas)
    for s in rng.permutation(written) + 1:
        for h in HEMIS:
            full = np.zeros((FSAVERAGE_N, 1, 1, T), np.float32)
            full[truth["vertex"][h], 0, 0, :] = truth["betas"][h][(s - 1) * T: s * T].T
            nib.save(nib.MGHImage(full, np.eye(4)), os.path.join(betas, f"{h}.betas_session{s:02d}{ext}"))
    for h in HEMIS:
        full = np.zeros((FSAVERAGE_N, 1, 1), np.float32)
        full[truth["vertex"][h], 0, 0] = truth["ncsnr"][h]
        nib.save(nib.MGHImage(full, np.eye(4)), os.path.join(betas, f"{h}.ncsnr.mgh"))
    if full_mesh:
        write_full_mesh(os.path.join(root, "nsddata", "freesurfer", "fsaverage", "surf"), seed=seed)
    truth["root"] = root
    return truth
