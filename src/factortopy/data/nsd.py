"""The raw NSD layout (Allen et al. 2022) on fsaverage, read exactly (data-formats.md).

    nsddata_betas/ppdata/subjNN/fsaverage/betas_fithrf_GLMdenoise_RR/{lh,rh}.betas_sessionSS.mgh
        (163842, 1, 1, 750) float32, ALREADY percent signal change (never divided by 300 here)
    .../fsaverage/betas_fithrf_GLMdenoise_RR/{lh,rh}.ncsnr.mgh       (optional) noise-ceiling SNR
    nsddata/freesurfer/fsaverage/label/{lh,rh}.<atlas>.mgz            group ROI labels (> 0 = inside) + <atlas>.mgz.ctab
    nsddata/freesurfer/subjNN/label/{lh,rh}.<cls>.mgz                 per-subject ROIs (native surface)
    nsddata/ppdata/subjNN/transforms/{lh,rh}.white-to-fsaverage.mgz   native -> fsaverage (see data.rois)
    nsddata/freesurfer/fsaverage/surf/{lh,rh}.sphere                  full mesh (optional)
    nsddata/experiments/nsd/nsd_expdesign.mat      masterordering, subjectim, sharedix: ALL 1-based
    nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5   imgBrick (73000, 425, 425, 3) uint8, 0-based rows

Trial t (0-based) is session t // T + 1, position t % T in that session's file (T = 750 trials per
session); its image is the 0-based NSD id ``subjectim[subject - 1, masterordering[t] - 1] - 1``.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from factortopy._digest import file_digest
from factortopy.data.ceiling import ncsnr_ceiling
from factortopy.data.subject import Subject, parse_hemis
from factortopy.surface import FSAVERAGE_N, HEMIS, cortical_coordinates

NSD_SESSIONS = {1: 40, 2: 40, 3: 32, 4: 30, 5: 40, 6: 32, 7: 40, 8: 30}
TRIALS_PER_SESSION = 750
BETAS = "betas_fithrf_GLMdenoise_RR"
SPLITS = ("train", "test", "all")


def _require(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path} (expected the raw NSD layout, see docs/data.md)")
    return path


# ----------------------------------------------------------------------------- experiment design
@dataclass
class NSDDesign:
    """nsd_expdesign.mat, kept exactly as stored: every index 1-based.

    masterordering (30000,): 1-based slot (into a subject's 10000 images) of each trial.
    subjectim (8, 10000): 1-based NSD id of each subject's slots. sharedix (1000,): 1-based NSD ids
    of the shared images.
    """

    masterordering: np.ndarray
    subjectim: np.ndarray
    sharedix: np.ndarray

    def trial_images(self, subject: int, n_trials: int) -> np.ndarray:
        """0-based NSD ids (rows of imgBrick) of the first ``n_trials`` trials of ``subject``."""
        if n_trials > self.masterordering.size:
            raise ValueError(f"the session files hold {n_trials} trials (sessions x trials_per_session) but "
                             f"masterordering lists only {self.masterordering.size}; check trials_per_session "
                             "(750 in NSD) and that the design file matches the betas")
        slots = self.masterordering[:n_trials] - 1  # 1-based slot -> 0-based column of subjectim
        return self.subjectim[subject - 1, slots] - 1  # 1-based NSD id -> 0-based imgBrick row

    @property
    def shared_ids(self) -> np.ndarray:
        """0-based NSD ids of the shared images (sorted)."""
        return np.sort(self.sharedix - 1)


def read_expdesign(path: str) -> NSDDesign:
    """Read nsd_expdesign.mat (MATLAB v5 via scipy, or v7.3 via h5py) and check it is 1-based."""
    _require(path, "NSD experiment design")
    try:
        from scipy.io import loadmat

        mat = loadmat(path)
        get = lambda k: np.asarray(mat[k])  # noqa: E731
    except (NotImplementedError, ValueError):  # v7.3 files are HDF5 (stored transposed)
        import h5py

        with h5py.File(path, "r") as f:
            mat = {k: np.asarray(f[k]).T for k in ("masterordering", "subjectim", "sharedix")}
        get = lambda k: mat[k]  # noqa: E731
    try:
        design = NSDDesign(get("masterordering").astype(np.int64).ravel(),
                           np.atleast_2d(get("subjectim").astype(np.int64)),
                           get("sharedix").astype(np.int64).ravel())
    except KeyError as err:
        raise ValueError(f"{path} lacks {err}; expected masterordering, subjectim, sharedix") from None
    for name in ("masterordering", "subjectim", "sharedix"):
        values = getattr(design, name)
        if values.size and values.min() < 1:
            raise ValueError(f"{path}: {name} holds {values.min()}; NSD's design is 1-based (min 1). Was the "
                             "file converted to 0-based? Use the original nsd_expdesign.mat")
    if design.masterordering.max() > design.subjectim.shape[1]:
        raise ValueError(f"{path}: masterordering refers to slot {design.masterordering.max()} but subjectim "
                         f"has {design.subjectim.shape[1]} slots")
    return design


# ----------------------------------------------------------------------------- stimuli
class NSDStimuli:
    """NSD images by 0-based id, read lazily from nsd_stimuli.hdf5 (``imgBrick``).

    ``stimuli[i]`` is the (425, 425, 3) uint8 image with NSD id ``ids[i]``. The HDF5 file is opened on
    first access and re-opened in a forked child (h5py handles must not cross a fork), and dropped
    when pickled, so the sequence works in DataLoader workers.
    """

    def __init__(self, path: str, ids, dataset: str = "imgBrick"):
        self.path, self.dataset = path, dataset
        self.ids = np.asarray(ids, dtype=np.int64)
        self._file, self._pid = None, None
        import h5py

        with h5py.File(_require(path, "NSD stimuli file"), "r") as f:
            if dataset not in f:
                raise ValueError(f"{path} has no dataset {dataset!r} (found: {', '.join(f.keys())})")
            shape = f[dataset].shape
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(f"{path}:{dataset} has shape {shape}, expected (n, H, W, 3)")
        if self.ids.size and (self.ids.min() < 0 or self.ids.max() >= shape[0]):
            raise ValueError(f"NSD ids {self.ids.min()}..{self.ids.max()} outside the {shape[0]} rows of {path}")

    def _brick(self):
        if self._file is None or self._pid != os.getpid():
            import h5py

            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._file[self.dataset]

    def __len__(self) -> int:
        return self.ids.size

    def __getitem__(self, i: int) -> np.ndarray:
        return np.asarray(self._brick()[int(self.ids[i])], dtype=np.uint8)

    def identity(self) -> dict:
        """For :func:`factortopy.data.images.image_set_key`: the brick's absolute path, whole-file
        digest (streamed once, then remembered by path, size, mtime, inode and ctime;
        ``factortopy._digest``), dataset and ids."""
        path = os.path.abspath(self.path)
        return {"kind": "hdf5", "path": path, "digest": file_digest(path), "dataset": self.dataset,
                "ids": self.ids.tolist()}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, None
        return state


# ----------------------------------------------------------------------------- betas
def _session_file(betas_dir: str, hemi: str, session: int) -> str | None:
    for ext in (".mgh", ".mgz"):
        path = os.path.join(betas_dir, f"{hemi}.betas_session{session:02d}{ext}")
        if os.path.isfile(path):
            return path
    return None


def present_sessions(betas_dir: str, n_expected: int, hemis=HEMIS) -> list[int]:
    """Sessions 1..k whose files exist for every hemisphere. Missing trailing sessions are tolerated
    (with a warning); a gap followed by a present session is an error."""
    present = [s for s in range(1, n_expected + 1) if all(_session_file(betas_dir, h, s) for h in hemis)]
    if not present:
        raise FileNotFoundError(f"no {{lh,rh}}.betas_session01.mgh in {betas_dir}")
    k = len(present)
    if present != list(range(1, k + 1)):
        gap = next(s for s in range(1, n_expected + 1) if s not in present)
        raise FileNotFoundError(f"session {gap:02d} is missing in {betas_dir} but later sessions exist "
                                f"(present: {present}); only missing trailing sessions are tolerated")
    for s in range(1, n_expected + 1):  # one hemisphere present without the other: say so
        if s > k and any(_session_file(betas_dir, h, s) for h in hemis):
            raise FileNotFoundError(f"session {s:02d} exists for only some of {list(hemis)} in {betas_dir}")
    if k < n_expected:
        warnings.warn(f"{betas_dir}: sessions {k + 1}..{n_expected} missing; using sessions 1..{k} "
                      f"({k} of {n_expected})", stacklevel=3)
    return present


def read_session(path: str, vertices: np.ndarray, trials_per_session: int = TRIALS_PER_SESSION,
                 chunk: int = 16384) -> np.ndarray:
    """(T, n) float32 betas of fsaverage ``vertices`` (ascending) from one session's MGH file.

    Values are returned as stored (percent signal change; no division by 300). Reads through the
    proxy in blocks of at most ``chunk`` vertices, so a whole 163842 x 750 array is never held.
    """
    import nibabel as nib

    img = nib.load(path)
    shape = img.shape
    if shape[0] != FSAVERAGE_N or int(np.prod(shape[1:-1])) != 1 or len(shape) < 2:
        raise ValueError(f"{path} has shape {shape}; expected ({FSAVERAGE_N}, 1, 1, {trials_per_session})")
    if shape[-1] != trials_per_session:
        raise ValueError(f"{path} holds {shape[-1]} trials but trials_per_session={trials_per_session}; "
                         "NSD sessions have 750 (set trials_per_session only for test files)")
    if not np.issubdtype(img.get_data_dtype(), np.floating):
        raise ValueError(f"{path} stores {img.get_data_dtype()}; fsaverage betas are float32 percent signal "
                         "change (int16 = PSC x 300 is the func1pt8mm volume format, not read here)")
    out = np.empty((trials_per_session, vertices.size), dtype=np.float32)
    i = 0
    while i < vertices.size:
        lo = int(vertices[i])
        j = int(np.searchsorted(vertices, lo + chunk))
        hi = int(vertices[j - 1]) + 1
        block = np.asarray(img.dataobj[lo:hi], dtype=np.float32).reshape(hi - lo, trials_per_session)
        out[:, i:j] = block[vertices[i:j] - lo].T
        i = j
    return out


def zscore_session(betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Z-score each column over the session's trials (ddof 0). Returns (z, bad) where bad marks
    columns with any NaN/inf or zero variance (their z is set to 0; they are dropped later)."""
    finite = np.isfinite(betas).all(axis=0)
    mean = betas.mean(axis=0, dtype=np.float64)
    std = betas.std(axis=0, dtype=np.float64)
    bad = ~finite | ~(std > 0)
    z = ((betas - mean) / np.where(bad, 1.0, std)).astype(np.float32)
    z[:, bad] = 0.0
    return z, bad


# ----------------------------------------------------------------------------- loader
def _parse_names(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.replace("+", ",").split(",") if v.strip()]
    return list(value)


def load_nsd(root: str, subject: int = 1, split: str = "train", rois="nsdgeneral",
             trials_per_session: int = TRIALS_PER_SESSION, sessions: int | None = None, betas: str = BETAS,
             nan: str = "drop", hemis=HEMIS, surface: str = "sphere", mesh_dir: str | None = None,
             stimuli: str | None = None, roi_labels=None, zscore: bool = True, chunk: int = 16384) -> Subject:
    """Read one subject of the raw NSD layout on fsaverage as a :class:`Subject`.

    root: the NSD root (holding nsddata/, nsddata_betas/, nsddata_stimuli/). subject: 1..8.
    split: 'train' (every image but the shared 1000), 'test' (the shared 1000 this subject saw) or
    'all'. rois: the vertex set, a ROI selection (:func:`factortopy.data.rois.parse_roi_spec`, the
    grammar of every data kind): ``<atlas>`` (label > 0, e.g. 'nsdgeneral', the default),
    ``<atlas>/<name>`` (the label the atlas's .mgz.ctab names, e.g. 'streams/early'), several joined
    by '+' or ',' (their union), 'all' = whole fsaverage; group atlases come from
    nsddata/freesurfer/fsaverage/label, per-subject classes through the subject's transform
    (:func:`factortopy.data.rois.nsd_label`). An unknown atlas or name is an error listing the
    valid ones. trials_per_session: 750 in NSD
    (a parameter for tiny test files). sessions: how many sessions to expect (default the subject's:
    40, 40, 32, 30, 40, 32, 40, 30); missing trailing sessions are tolerated with a warning.
    nan: 'drop' (drop vertices with NaN/inf or zero variance in any session, with a warning
    naming the count) or 'error'. stimuli: path of nsd_stimuli.hdf5 (default: in root).
    roi_labels: atlases summarised in ``extra['rois']`` (default: the group atlases nsdgeneral,
    streams, Kastner2015 and the per-subject prf-visualrois and floc-* present; each label is
    ``<atlas>/<name>``). mesh_dir: full fsaverage mesh (default
    nsddata/freesurfer/fsaverage/surf when present). zscore: False keeps percent signal change
    (averaged over repeats, not z-scored; for inspection - fits expect z-scored responses).

    Each session is read (masked, in vertex blocks), z-scored per vertex over its trials, and
    accumulated; repeats of an image are averaged. Rows are images sorted by NSD id (as Algonauts).

    Returns a Subject with responses (n_images, n_vertices) float32, image_ids 0-based NSD ids and
    ``extra``: ``split``, ``subject``, ``test_mask`` (n_images,) bool (shared-1000 images),
    ``n_repeats`` (n_images,) int (trials averaged), ``sessions`` (used), ``dropped_vertices``
    {hemi: fsaverage indices}, ``vertex_set`` (the selection's canonical text), ``rois``
    {'<atlas>/<name>': (n_vertices,) bool}, and where ``{lh,rh}.ncsnr.mgh``
    exist, ``ncsnr`` (n_vertices,) and ``noise_ceiling`` (n_vertices,) as a 0-1 FRACTION for these
    images' repeat counts (the NSD formula gives percent; divided by 100 here).
    """
    from factortopy.data.rois import ALL, nsd_label_masks, nsd_roi_names, nsd_roi_vertices, roi_spec_text

    root = os.path.abspath(os.path.expanduser(root))
    subject = int(subject)
    if subject not in NSD_SESSIONS:
        raise ValueError(f"NSD subject must be 1..8, got {subject}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if nan not in ("drop", "error"):
        raise ValueError(f"nan must be 'drop' or 'error', got {nan!r}")
    trials_per_session = int(trials_per_session)
    hemis = parse_hemis(hemis)
    subj = f"subj{subject:02d}"
    betas_dir = _require(os.path.join(root, "nsddata_betas", "ppdata", subj, "fsaverage", betas), "betas folder")
    design = read_expdesign(os.path.join(root, "nsddata", "experiments", "nsd", "nsd_expdesign.mat"))
    if design.subjectim.shape[0] < subject:
        raise ValueError(f"subjectim has {design.subjectim.shape[0]} rows; no subject {subject}")

    # trials -> images, split
    used = present_sessions(betas_dir, int(sessions or NSD_SESSIONS[subject]), hemis)
    n_trials = len(used) * trials_per_session
    trial_ids = design.trial_images(subject, n_trials)
    trial_test = np.isin(trial_ids, design.shared_ids)
    take = {"train": ~trial_test, "test": trial_test, "all": np.ones(n_trials, bool)}[split]
    image_ids = np.unique(trial_ids[take])
    if image_ids.size == 0:
        raise ValueError(f"{subj}: no {split} trials in sessions 1..{len(used)}")
    trial_row = np.searchsorted(image_ids, trial_ids)

    # vertices: the ROI selection (data.rois grammar), per hemisphere (ascending fsaverage index)
    vertex_set = roi_spec_text(rois if rois is not None else ALL)
    vertices = {h: np.flatnonzero(nsd_roi_vertices(root, subject, vertex_set, h)).astype(np.int64) for h in hemis}
    n_cols = [vertices[h].size for h in hemis]
    if sum(n_cols) == 0:
        raise ValueError(f"the ROI selection {vertex_set!r} selects no vertex of {', '.join(hemis)}")

    # stream sessions: read masked, z-score, accumulate per image
    sums = np.zeros((image_ids.size, sum(n_cols)), dtype=np.float32)
    counts = np.zeros(image_ids.size, dtype=np.int64)
    bad = np.zeros(sum(n_cols), dtype=bool)
    for k, s in enumerate(used):
        z = np.concatenate([read_session(_session_file(betas_dir, h, s), vertices[h], trials_per_session, chunk)
                            for h in hemis], axis=1)
        if zscore:
            z, bad_s = zscore_session(z)
        else:
            bad_s = ~np.isfinite(z).all(axis=0)
            z[:, bad_s] = 0.0
        bad |= bad_s
        t = k * trials_per_session + np.arange(trials_per_session)
        t = t[take[t]]
        rows, z = trial_row[t], z[take[k * trials_per_session:(k + 1) * trials_per_session]]
        if np.unique(rows).size == rows.size:
            sums[rows] += z
        else:  # an image repeated within the session: add one trial at a time
            for r, zi in zip(rows, z):
                sums[r] += zi
        np.add.at(counts, rows, 1)
        del z

    hemi = np.concatenate([np.full(n, h) for h, n in zip(hemis, n_cols)])
    vertex = np.concatenate([vertices[h] for h in hemis])
    dropped = {h: vertex[(hemi == h) & bad] for h in hemis}
    if bad.any():
        detail = ", ".join(f"{dropped[h].size} {h}" for h in hemis)
        msg = (f"{subj}: {int(bad.sum())} of {bad.size} vertices ({detail}) have NaN/inf or zero variance "
               f"in at least one of sessions 1..{len(used)}")
        if nan == "error":
            raise ValueError(msg + "; pass nan='drop' to drop them")
        warnings.warn(msg + "; dropped", stacklevel=2)
    keep = ~bad
    responses = sums[:, keep] / counts[:, None].astype(np.float32)
    del sums
    vertex, hemi = vertex[keep], hemi[keep]

    extra = {"split": split, "subject": subject, "test_mask": np.isin(image_ids, design.shared_ids),
             "n_repeats": counts, "sessions": used, "dropped_vertices": dropped,
             "trials_per_session": trials_per_session, "vertex_set": vertex_set}
    ncsnr_files = [os.path.join(betas_dir, f"{h}.ncsnr.mgh") for h in hemis]
    if all(os.path.isfile(f) for f in ncsnr_files):
        import nibabel as nib

        ncsnr = np.concatenate([np.asarray(nib.load(f).dataobj, dtype=np.float32).ravel()[vertices[h]]
                                for f, h in zip(ncsnr_files, hemis)])[keep]
        extra["ncsnr"] = ncsnr
        extra["noise_ceiling"] = ncsnr_ceiling(ncsnr, counts)

    rois_out = {}
    for name in (_parse_names(roi_labels) if roi_labels is not None else nsd_roi_names(root, subject)):
        for key, mask in nsd_label_masks(root, subject, name, vertex, hemi).items():
            rois_out.setdefault(key, mask)
    extra["rois"] = rois_out

    if mesh_dir is None and not os.environ.get("FACTORTOPY_FSAVERAGE_DIR"):
        nsd_surf = os.path.join(root, "nsddata", "freesurfer", "fsaverage", "surf")
        mesh_dir = nsd_surf if os.path.isfile(os.path.join(nsd_surf, f"lh.{surface}")) else None
    stim_path = stimuli or os.path.join(root, "nsddata_stimuli", "stimuli", "nsd", "nsd_stimuli.hdf5")
    return Subject(
        images=NSDStimuli(stim_path, image_ids),
        responses=responses,
        vertex=vertex,
        hemi=hemi,
        coords=cortical_coordinates(vertex, hemi, surface, mesh_dir),
        image_ids=image_ids,
        name=f"nsd-{subj}",
        extra=extra,
    )
