"""Readers of the Algonauts 2023 and raw NSD releases written from their documentation alone
(/work/shared/docs/data-formats.md: the Algonauts devkit tutorial, the NSD data manual), WITHOUT
importing factortopy's loaders. A fixture is right when these read it; our loaders are right when
they agree with these. Plain numpy, scipy.io, nibabel, h5py, csv, PIL; nothing shared with
factortopy.data.
"""
import csv
import os

import numpy as np

N_FSAVERAGE = 163842


# ----------------------------------------------------------------------------- Algonauts 2023
def read_algonauts(subject_dir, split="training"):
    """Everything the devkit tutorial reads for one subject.

    Returns dict: ids (0-based NSD ids in row order), images (list of (H, W, 3) uint8), fmri
    {hemi: (n_images, n_columns)}, vertices {hemi: fsaverage indices of the columns}, rois
    {'<cls>/<name>': {hemi: column mask}} from the challenge-space files, rois_fsaverage (same
    from the fsaverage-space files at the used vertices), noise_ceiling {hemi: (n_columns,)}.
    """
    from PIL import Image

    folder, prefix = {"training": ("training_split", "train"), "test": ("test_split", "test")}[split]
    img_dir = os.path.join(subject_dir, folder, f"{split}_images")
    names = sorted(f for f in os.listdir(img_dir) if f.endswith(".png"))  # the tutorial sorts the listing
    assert all(n.startswith(prefix + "-") for n in names)
    ids = [int(n.split("_nsd-")[1].split(".")[0]) for n in names]  # train-NNNN_nsd-XXXXX.png
    out = {"ids": np.array(ids), "names": names,
           "images": [np.array(Image.open(os.path.join(img_dir, n)).convert("RGB")) for n in names],
           "fmri": {}, "vertices": {}, "rois": {}, "rois_fsaverage": {}, "noise_ceiling": {}}
    roi_dir = os.path.join(subject_dir, "roi_masks")
    for h in ("lh", "rh"):
        fmri_file = os.path.join(subject_dir, folder, f"{split}_fmri", f"{h}_{split}_fmri.npy")
        if os.path.isfile(fmri_file):
            out["fmri"][h] = np.load(fmri_file)
        mask = np.load(os.path.join(roi_dir, f"{h}.all-vertices_fsaverage_space.npy"))
        assert mask.shape == (N_FSAVERAGE,)
        out["vertices"][h] = np.where(mask)[0]
        nc_file = os.path.join(subject_dir, "test_split", "noise_ceiling", f"{h}_noise_ceiling.npy")
        if os.path.isfile(nc_file):
            out["noise_ceiling"][h] = np.load(nc_file)
    for f in sorted(os.listdir(roi_dir)):
        if not f.startswith("mapping_"):
            continue
        cls = f[len("mapping_"):-len(".npy")]
        mapping = np.load(os.path.join(roi_dir, f), allow_pickle=True).item()  # as the devkit does
        for h in ("lh", "rh"):
            challenge = np.load(os.path.join(roi_dir, f"{h}.{cls}_challenge_space.npy"))
            fsavg = np.load(os.path.join(roi_dir, f"{h}.{cls}_fsaverage_space.npy"))
            for k, name in mapping.items():
                if name == "Unknown":
                    continue
                out["rois"].setdefault(f"{cls}/{name}", {})[h] = challenge == k
                out["rois_fsaverage"].setdefault(f"{cls}/{name}", {})[h] = fsavg[out["vertices"][h]] == k
    return out


# ----------------------------------------------------------------------------- raw NSD
def read_design(nsd_root):
    """masterordering, subjectim, sharedix from nsd_expdesign.mat, converted to 0-based here."""
    from scipy.io import loadmat

    m = loadmat(os.path.join(nsd_root, "nsddata", "experiments", "nsd", "nsd_expdesign.mat"))
    for k in ("masterordering", "subjectim", "sharedix"):
        assert np.issubdtype(m[k].dtype, np.integer), (k, m[k].dtype)  # integer-typed, as released
        assert m[k].min() >= 1, k  # 1-based
    return {"masterordering0": m["masterordering"].ravel() - 1, "subjectim0": m["subjectim"] - 1,
            "sharedix0": m["sharedix"].ravel() - 1}


def read_stim_info(nsd_root):
    """Rows of nsd_stim_info_merged.csv as dicts (nsdId 0-based; subjectK_repN 1-based trials)."""
    with open(os.path.join(nsd_root, "nsddata", "experiments", "nsd", "nsd_stim_info_merged.csv")) as f:
        return list(csv.DictReader(f))


def read_mgh(path):
    """The values of a surface MGH/MGZ file (one per vertex) as a flat array."""
    import nibabel as nib

    return np.asarray(nib.load(path).dataobj).ravel()


def read_ctab(path):
    """{value: name} from a FreeSurfer colour table."""
    table = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts and not parts[0].startswith("#"):
                table[int(parts[0])] = parts[1]
    return table


def nsd_trial_images(nsd_root, subject, n_trials):
    """0-based NSD id of each of the first n_trials trials of a subject (data manual's recipe)."""
    d = read_design(nsd_root)
    return d["subjectim0"][subject - 1, d["masterordering0"][:n_trials]]


def nsd_betas(nsd_root, subject, hemi, session):
    """(163842, n_trials) float32 percent signal change of one session file (never / 300)."""
    import nibabel as nib

    path = os.path.join(nsd_root, "nsddata_betas", "ppdata", f"subj{subject:02d}", "fsaverage",
                        "betas_fithrf_GLMdenoise_RR", f"{hemi}.betas_session{session:02d}.mgh")
    img = nib.load(path)
    assert img.get_data_dtype().kind == "f" and img.get_data_dtype().itemsize == 4  # float32 (MGH: big-endian)
    return np.asarray(img.dataobj).reshape(N_FSAVERAGE, -1)


def nsd_group_label(nsd_root, atlas, hemi):
    """(values on fsaverage, ctab) of a group atlas in nsddata/freesurfer/fsaverage/label."""
    d = os.path.join(nsd_root, "nsddata", "freesurfer", "fsaverage", "label")
    return read_mgh(os.path.join(d, f"{hemi}.{atlas}.mgz")), read_ctab(os.path.join(d, f"{atlas}.mgz.ctab"))


def nsd_subject_label_on_fsaverage(nsd_root, subject, cls, hemi):
    """(values on fsaverage, ctab) of a per-subject native-surface label, through the subject's
    white-to-fsaverage transform (for every fsaverage vertex, the 1-based index of the nearest
    native vertex; nsdcode's nativesurface-to-fsaverage case: data[index - 1])."""
    sub = f"subj{subject:02d}"
    native = read_mgh(os.path.join(nsd_root, "nsddata", "freesurfer", sub, "label", f"{hemi}.{cls}.mgz"))
    index = read_mgh(os.path.join(nsd_root, "nsddata", "ppdata", sub, "transforms",
                                  f"{hemi}.white-to-fsaverage.mgz"))
    ctab = read_ctab(os.path.join(nsd_root, "nsddata", "freesurfer", sub, "label", f"{cls}.mgz.ctab"))
    return native[index.astype(int) - 1], ctab


def nsd_stimulus(nsd_root, nsd_id):
    import h5py

    with h5py.File(os.path.join(nsd_root, "nsddata_stimuli", "stimuli", "nsd", "nsd_stimuli.hdf5"), "r") as f:
        return np.array(f["imgBrick"][nsd_id])


def fsaverage_sphere(surf_dir, hemi):
    import nibabel as nib

    return nib.freesurfer.read_geometry(os.path.join(surf_dir, f"{hemi}.sphere"))[0]
