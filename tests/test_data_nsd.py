"""Raw NSD loader on tiny files with planted answers (factortopy.datasets.fixtures)."""
import os
import pickle
import warnings

import numpy as np
import pytest

from factortopy.data import load_subject, parse_spec, with_options
from factortopy.data.ceiling import ncsnr_ceiling_percent
from factortopy.datasets.fixtures import decode_id, write_fake_nsd
from factortopy.data.nsd import NSDStimuli, read_expdesign, read_session, zscore_session

import release_readers as rr

T = 6


@pytest.fixture(scope="module")
def nsd(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("nsd"))
    # lh vertex 50 is NaN in session 2 only: it must be dropped (not kept, not silently)
    return write_fake_nsd(root, subject=1, n_sessions=3, trials_per_session=T, nan_vertices=[("lh", 50, 2)])


def spec(truth, **opts):
    return with_options(f"nsd:{truth['root']}", subject=1, sessions=3, trials_per_session=T, **opts)


def reference(truth, split, zscore=True):
    """Naive, independent reading: every index converted by hand, one trial at a time."""
    mo, sim, shared = truth["masterordering"], truth["subjectim"], set((truth["sharedix"] - 1).tolist())
    n_trials = truth["n_sessions_written"] * T
    betas = np.concatenate([truth["betas"]["lh"], truth["betas"]["rh"]], axis=1)[:n_trials].astype(np.float64)
    if zscore:
        for s in range(truth["n_sessions_written"]):
            b = betas[s * T:(s + 1) * T]
            betas[s * T:(s + 1) * T] = (b - b.mean(0)) / b.std(0)
    per_image = {}
    for t in range(n_trials):
        slot_1based = int(mo[t])
        nsd_id = int(sim[0][slot_1based - 1]) - 1
        if split == "all" or (split == "test") == (nsd_id in shared):
            per_image.setdefault(nsd_id, []).append(betas[t])
    ids = sorted(per_image)
    return np.array(ids), np.stack([np.mean(per_image[i], axis=0) for i in ids]), np.array([len(per_image[i]) for i in ids])


def load(truth, **opts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_subject(spec(truth, **opts))


@pytest.mark.parametrize("split", ["train", "test", "all"])
def test_nsd_exact_values_ids_and_pixels(nsd, split):
    with pytest.warns(UserWarning, match=r"1 of 9 vertices \(1 lh, 0 rh\).*dropped"):
        subj = load_subject(spec(nsd, split=split))
    ids, expected, counts = reference(nsd, split)
    keep = np.ones(9, bool)
    keep[1] = False  # lh vertex 50 (second lh column) had NaN in session 2
    np.testing.assert_array_equal(subj.image_ids, ids)
    np.testing.assert_allclose(subj.responses, expected[:, keep], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(subj.extra["n_repeats"], counts)
    # image i shows NSD id image_ids[i]: pixels encode the id (catches 1-based/0-based slips)
    assert [decode_id(subj.images[i]) for i in range(len(subj.images))] == ids.tolist()
    np.testing.assert_array_equal(subj.vertex, [3, 1000, 10241, 20000, 0, 7, 5000, 12345])
    np.testing.assert_array_equal(subj.hemi, ["lh"] * 4 + ["rh"] * 4)
    assert subj.extra["dropped_vertices"]["lh"].tolist() == [50]
    assert subj.extra["test_mask"].tolist() == [split == "test" or i in set(nsd["sharedix"] - 1) for i in ids]


def test_nsd_splits_partition_and_shared_is_test(nsd):
    train, test, both = (load(nsd, split=s) for s in ("train", "test", "all"))
    assert not set(train.image_ids) & set(test.image_ids)
    assert sorted(set(train.image_ids) | set(test.image_ids)) == both.image_ids.tolist()
    assert set(test.image_ids) <= set((nsd["sharedix"] - 1).tolist())


def test_nsd_percent_signal_change_is_not_divided_by_300(nsd):
    subj = load(nsd, split="all", zscore=False)
    ids, expected, _ = reference(nsd, "all", zscore=False)
    keep = np.r_[True, False, [True] * 7]
    np.testing.assert_allclose(subj.responses, expected[:, keep], rtol=1e-5)
    assert subj.responses.mean() > 1.0  # planted PSC ~ 2..10; / 300 would give ~0.02


def test_nsd_nan_vertices_error_when_asked(nsd):
    with pytest.raises(ValueError, match=r"1 of 9 vertices.*nan='drop'"):
        load_subject(spec(nsd, nan="error"))


def test_nsd_noise_ceiling_uses_repeats_actually_averaged(nsd):
    subj = load(nsd, split="all")
    ncsnr = np.concatenate([nsd["ncsnr"]["lh"], nsd["ncsnr"]["rh"]])[np.r_[True, False, [True] * 7]]
    np.testing.assert_allclose(subj.extra["ncsnr"], ncsnr)
    inv_n = np.mean(1.0 / subj.extra["n_repeats"])
    np.testing.assert_allclose(subj.extra["noise_ceiling"], ncsnr**2 / (ncsnr**2 + inv_n), rtol=1e-5)
    assert subj.extra["noise_ceiling"].max() <= 1.0  # a fraction, not percent
    np.testing.assert_allclose(ncsnr_ceiling_percent(np.array([1.0]), 3), [75.0])


def test_nsd_rois_name_their_atlas_and_ctab_labels(nsd):
    subj = load(nsd)
    assert subj.n_vertices == 8 and subj.extra["vertex_set"] == "nsdgeneral"
    rois = subj.extra["rois"]
    assert rois["nsdgeneral"].all()
    col = {(h, v): i for i, (h, v) in enumerate(zip(subj.hemi, subj.vertex))}
    for name, k in (("streams/early", 1), ("streams/ventral", 5), ("Kastner2015/V1v", 1), ("Kastner2015/hV4", 7)):
        atlas = name.split("/")[0]
        for (h, v), i in col.items():
            assert rois[name][i] == (nsd[atlas][h][v] == k)
    assert all("/" in k or k in ("nsdgeneral", "streams", "Kastner2015") or k in ("prf-visualrois",) or
               k.startswith("floc-") for k in rois)
    assert not any(k in ("V1v", "early") for k in rois)  # no label without its atlas


def test_nsd_per_subject_rois_come_through_the_transform_never_from_kastner(nsd):
    """prf-visualrois/floc-* exist per subject only; the group atlas Kastner2015 has the same names."""
    subj = load(nsd)
    rois = subj.extra["rois"]
    for cls in ("prf-visualrois", "floc-faces"):
        ref = {h: rr.nsd_subject_label_on_fsaverage(nsd["root"], 1, cls, h) for h in ("lh", "rh")}
        for k, name in ref["lh"][1].items():
            if k == 0:
                continue
            expected = np.array([ref[h][0][v] == k for h, v in zip(subj.hemi, subj.vertex)])
            np.testing.assert_array_equal(rois[f"{cls}/{name}"], expected)
            np.testing.assert_array_equal(expected, [nsd["on_fsaverage"][cls][h][v] == k
                                                     for h, v in zip(subj.hemi, subj.vertex)])
    # same names, different regions: the atlas in the label keeps them apart
    assert not np.array_equal(rois["prf-visualrois/V1v"], rois["Kastner2015/V1v"])


def test_nsd_per_subject_rois_need_the_transform(tmp_path):
    truth = write_fake_nsd(str(tmp_path), n_sessions=1, trials_per_session=T, lh_vertices=(5,), rh_vertices=(2,),
                           full_mesh=False)
    os.remove(os.path.join(truth["root"], "nsddata", "ppdata", "subj01", "transforms", "rh.white-to-fsaverage.mgz"))
    with pytest.raises(FileNotFoundError, match="rh.white-to-fsaverage.mgz"):
        load_subject(f"nsd:{tmp_path}?subject=1&sessions=1&trials_per_session={T}")
    # without per-subject labels at all, no ROI of those classes appears, and none is substituted
    import shutil

    shutil.rmtree(os.path.join(truth["root"], "nsddata", "freesurfer", "subj01"))
    subj = load_subject(f"nsd:{tmp_path}?subject=1&sessions=1&trials_per_session={T}")
    assert not any(k.startswith(("prf-visualrois", "floc-")) for k in subj.extra["rois"])
    assert "Kastner2015/V1v" in subj.extra["rois"]
    with pytest.raises(FileNotFoundError, match="per-subject ROI label not found.*Kastner2015 is a different"):
        load_subject(f"nsd:{tmp_path}?subject=1&sessions=1&trials_per_session={T}&roi_labels=prf-visualrois")


def test_nsd_loader_agrees_with_the_independent_release_reader(nsd):
    """Every NSD fixture file read by code written from the data manual: design, stimulus table,
    betas, labels with their colour tables, transforms, stimuli, mesh."""
    design = rr.read_design(nsd["root"])
    n_trials = nsd["n_sessions_written"] * T
    trial_ids = rr.nsd_trial_images(nsd["root"], 1, n_trials)
    np.testing.assert_array_equal(trial_ids, nsd["trial_ids"][:n_trials])
    # nsd_stim_info_merged.csv agrees with the design: subject1_repN are 1-based trial numbers
    rows = {int(r["nsdId"]): r for r in rr.read_stim_info(nsd["root"])}
    for t, nsd_id in enumerate(trial_ids):
        r = rows[int(nsd_id)]
        assert r["subject1"] == "1" and str(t + 1) in (r["subject1_rep0"], r["subject1_rep1"], r["subject1_rep2"])
    shared = {i for i, r in rows.items() if r["shared1000"] == "True"}
    assert shared == set(design["sharedix0"].tolist())
    # responses: z-score each session per vertex, average repeats (the manual's recipe)
    subj = load(nsd, split="all")
    cols = {h: subj.vertex[subj.hemi == h] for h in ("lh", "rh")}
    z = []
    for s in range(1, nsd["n_sessions_written"] + 1):
        b = np.concatenate([rr.nsd_betas(nsd["root"], 1, h, s)[cols[h]].T for h in ("lh", "rh")], axis=1)
        z.append((b - b.mean(0)) / b.std(0))
    z = np.concatenate(z)
    expected = np.stack([z[trial_ids == i].mean(0) for i in subj.image_ids])
    np.testing.assert_allclose(subj.responses, expected, rtol=1e-4, atol=1e-5)
    assert subj.image_ids.tolist() == sorted(set(trial_ids.tolist()))
    for i in (0, len(subj.image_ids) - 1):
        np.testing.assert_array_equal(subj.images[i], rr.nsd_stimulus(nsd["root"], int(subj.image_ids[i])))
    # group labels with their ctabs
    for atlas in ("nsdgeneral", "streams", "Kastner2015"):
        for h in ("lh", "rh"):
            values, ctab = rr.nsd_group_label(nsd["root"], atlas, h)
            np.testing.assert_array_equal(values, nsd[atlas][h])
            assert set(np.unique(values)) <= set(ctab)
        assert set(np.unique(nsd["nsdgeneral"]["lh"])) == {0, 1}  # 0/1 on fsaverage
    surf = os.path.join(nsd["root"], "nsddata", "freesurfer", "fsaverage", "surf")
    i = int(np.where((subj.hemi == "lh") & (subj.vertex == 20000))[0][0])  # lh: no side-by-side offset
    np.testing.assert_allclose(subj.coords[i], rr.fsaverage_sphere(surf, "lh")[20000], atol=1e-4)


def test_nsd_coordinates_beyond_fsaverage5_come_from_nested_full_mesh(nsd):
    import nibabel as nib

    subj = load(nsd)
    surf = os.path.join(nsd["root"], "nsddata", "freesurfer", "fsaverage", "surf", "lh.sphere")
    full = nib.freesurfer.read_geometry(surf)[0]
    i = int(np.where((subj.hemi == "lh") & (subj.vertex == 20000))[0][0])
    np.testing.assert_allclose(subj.coords[i], full[20000], atol=1e-4)


def test_nsd_stimuli_are_lazy_pickle_and_fork_safe(nsd):
    subj = load(nsd)
    stim = subj.images
    assert isinstance(stim, NSDStimuli) and stim._file is None  # nothing opened yet
    first = stim[0]
    assert first.dtype == np.uint8 and first.shape == (4, 4, 3)
    clone = pickle.loads(pickle.dumps(stim))
    assert clone._file is None and decode_id(clone[0]) == subj.image_ids[0]
    stim._pid = -1  # as if in a forked child: must reopen, not reuse the parent's handle
    assert decode_id(stim[1]) == subj.image_ids[1] and stim._pid == os.getpid()


def test_nsd_30_session_subject_tolerates_missing_trailing_session(tmp_path):
    # subject 4 has 30 sessions; session 30 not released here. .mgz keeps the 58 files small.
    truth = write_fake_nsd(str(tmp_path), subject=4, n_sessions=30, n_sessions_written=29, trials_per_session=T,
                           n_slots=60, n_brick=600, lh_vertices=(5, 9), rh_vertices=(2,), ext=".mgz", full_mesh=False)
    with pytest.warns(UserWarning, match=r"sessions 30\.\.30 missing; using sessions 1\.\.29"):
        subj = load_subject(f"nsd:{tmp_path}?subject=4&trials_per_session={T}&split=all")
    assert subj.extra["sessions"] == list(range(1, 30))
    assert subj.extra["n_repeats"].sum() == 29 * T
    trial_ids = truth["trial_ids"][: 29 * T]
    np.testing.assert_array_equal(subj.image_ids, np.unique(trial_ids))


def test_nsd_gap_in_sessions_is_an_error(tmp_path):
    write_fake_nsd(str(tmp_path), n_sessions=3, trials_per_session=T, lh_vertices=(5,), rh_vertices=(2,),
                   full_mesh=False)
    os.remove(os.path.join(tmp_path, "nsddata_betas/ppdata/subj01/fsaverage/betas_fithrf_GLMdenoise_RR/"
                                     "rh.betas_session02.mgh"))
    with pytest.raises(FileNotFoundError, match="session 02 is missing"):
        load_subject(f"nsd:{tmp_path}?subject=1&sessions=3&trials_per_session={T}")


def test_nsd_trials_per_session_mismatch_is_clear(nsd):
    path = os.path.join(nsd["root"], "nsddata_betas/ppdata/subj01/fsaverage/betas_fithrf_GLMdenoise_RR/"
                                     "lh.betas_session01.mgh")
    with pytest.raises(ValueError, match="holds 6 trials but trials_per_session=750"):
        read_session(path, np.array([3]))
    np.testing.assert_allclose(read_session(path, np.array([3, 20000]), T, chunk=4)[:, 1],
                               nsd["betas"]["lh"][:T, 4])  # blocked reads across far-apart vertices


def test_expdesign_must_be_one_based(tmp_path):
    from scipy.io import savemat

    path = str(tmp_path / "d.mat")
    savemat(path, {"masterordering": np.array([[0, 1, 2]]), "subjectim": np.ones((8, 3)), "sharedix": np.array([[1]])})
    with pytest.raises(ValueError, match="1-based"):
        read_expdesign(path)


def test_zscore_session_flags_nan_and_constant_columns():
    b = np.array([[1, 5, np.nan, 2], [3, 5, 1, 4], [5, 5, 2, 6]], np.float32)
    z, bad = zscore_session(b)
    assert bad.tolist() == [False, True, True, False]
    np.testing.assert_allclose(z[:, 0], [-1.2247449, 0, 1.2247449], rtol=1e-6)
    assert np.isfinite(z).all()


def test_spec_parsing():
    assert parse_spec("nsd:/d/nsd?subject=2&split=test&rois=nsdgeneral,streams") == (
        "nsd", "/d/nsd", {"subject": 2, "split": "test", "rois": "nsdgeneral,streams"})
    # '+' is kept (the query parser used to turn it into a space)
    assert parse_spec("nsd:/d/nsd?rois=nsdgeneral+streams")[2] == {"rois": "nsdgeneral+streams"}
    assert parse_spec(with_options("nsd:/d/nsd?rois=a+b", mesh_dir="/m n/surf")) == (
        "nsd", "/d/nsd", {"rois": "a+b", "mesh_dir": "/m n/surf"})
    # a path containing '?': the options start after the '?' followed by key=value pairs
    assert parse_spec("algonauts:/d/what?/subj01?split=test") == ("algonauts", "/d/what?/subj01", {"split": "test"})
    assert parse_spec(with_options("algonauts:/d/what?/subj01?split=test", hemis="lh"))[1] == "/d/what?/subj01"
    with pytest.raises(ValueError, match="write it as %3F"):
        parse_spec("algonauts:/d/what?/subj01")
    assert with_options("algonauts:/a/subj01", split="test") == "algonauts:/a/subj01?split=test"
    with pytest.raises(ValueError, match="unknown option"):
        load_subject("nsd:/nowhere?subjekt=1")
    with pytest.raises(ValueError, match="KIND:PATH"):
        load_subject("/just/a/path")


def test_nsd_rois_a_plus_b_selects_the_union(nsd):
    subj = load(nsd, rois="nsdgeneral+Kastner2015")  # the spec keeps '+'
    with pytest.warns(UserWarning, match="dropped"):
        spec_subj = load_subject(spec(nsd) + "&rois=nsdgeneral+streams")
    assert subj.extra["vertex_set"] == "nsdgeneral+Kastner2015" and spec_subj.extra["vertex_set"] == "nsdgeneral+streams"
    assert spec_subj.n_vertices == 8


def test_nsd_hemis_names_the_bad_one(nsd):
    with pytest.raises(ValueError, match=r"'xh'.*'lh' and 'rh'"):
        load(nsd, hemis="lh,xh")
    assert set(load(nsd, hemis="rh").hemi) == {"rh"}


def test_a_path_with_a_question_mark_loads(tmp_path):
    root = tmp_path / "what?"
    write_fake_nsd(str(root), n_sessions=1, trials_per_session=T, lh_vertices=(5,), rh_vertices=(2,), full_mesh=False)
    subj = load_subject(f"nsd:{root}?subject=1&sessions=1&trials_per_session={T}")
    assert subj.n_vertices == 2
