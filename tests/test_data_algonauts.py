"""Algonauts 2023 layout on tiny files with planted answers, checked against an independent reader."""
import os

import numpy as np
import pytest

from factortopy.data import load_subject
from factortopy.data.algonauts import list_split_images, load_algonauts
from factortopy.datasets.fixtures import ALGONAUTS_MAPPINGS, decode_id, write_fake_algonauts
from factortopy.surface import FSAVERAGE_N, fsaverage5_surface
from factortopy.data.rois import load_rois, read_mapping, read_mapping_file

from release_readers import read_algonauts


@pytest.fixture(scope="module")
def alg(tmp_path_factory):
    return write_fake_algonauts(str(tmp_path_factory.mktemp("alg")), n_train=12, n_test=5, n_lh=7, n_rh=9)


def test_training_split_exact(alg):
    subj = load_subject(f"algonauts:{alg['path']}")
    np.testing.assert_array_equal(subj.image_ids, alg["train_ids"])
    np.testing.assert_array_equal(subj.responses, alg["train"])
    # files were created in shuffled order: image i must still be NSD id image_ids[i]
    assert [decode_id(subj.images[i]) for i in range(subj.n_images)] == alg["train_ids"].tolist()
    np.testing.assert_array_equal(subj.vertex, np.concatenate([alg["vertex"]["lh"], alg["vertex"]["rh"]]))
    np.testing.assert_allclose(subj.coords[:7], fsaverage5_surface("lh", "sphere")[0][alg["vertex"]["lh"]])
    assert subj.extra["split"] == "training" and not subj.extra["test_mask"].any()
    assert "noise_ceiling" not in subj.extra  # the released ceiling belongs to the test images' repeats


@pytest.mark.parametrize("split", ["training", "test"])
def test_loader_agrees_with_the_independent_release_reader(alg, split):
    ref = read_algonauts(alg["path"], split)
    subj = load_algonauts(alg["path"], split=split)
    np.testing.assert_array_equal(subj.image_ids, ref["ids"])
    for i in range(subj.n_images):
        np.testing.assert_array_equal(subj.images[i], ref["images"][i])
    np.testing.assert_array_equal(subj.responses, np.concatenate([ref["fmri"]["lh"], ref["fmri"]["rh"]], axis=1))
    np.testing.assert_array_equal(subj.vertex, np.concatenate([ref["vertices"]["lh"], ref["vertices"]["rh"]]))
    assert set(subj.extra["rois"]) == set(ref["rois"]) and len(ref["rois"]) == sum(
        len(v) for v in ALGONAUTS_MAPPINGS.values())  # every region of all six classes
    for label, masks in ref["rois"].items():
        both = np.concatenate([masks["lh"], masks["rh"]])
        np.testing.assert_array_equal(subj.extra["rois"][label], both)
        np.testing.assert_array_equal(both, np.concatenate([ref["rois_fsaverage"][label]["lh"],
                                                            ref["rois_fsaverage"][label]["rh"]]))
    if split == "test":
        nc = np.concatenate([ref["noise_ceiling"]["lh"], ref["noise_ceiling"]["rh"]])
        assert nc.dtype == np.float64 and nc.max() <= 1  # the release's form
        np.testing.assert_array_equal(subj.extra["noise_ceiling"], nc)


def test_noise_ceiling_is_read_where_the_release_keeps_it(alg):
    assert os.path.isfile(os.path.join(alg["path"], "test_split", "noise_ceiling", "lh_noise_ceiling.npy"))
    subj = load_algonauts(alg["path"], split="test")
    np.testing.assert_array_equal(subj.image_ids, alg["test_ids"])
    np.testing.assert_array_equal(subj.responses, alg["test"])
    assert subj.extra["test_mask"].all()
    np.testing.assert_array_equal(subj.extra["noise_ceiling"], alg["noise_ceiling"])  # a 0-1 fraction, as stored


def test_noise_ceiling_in_percent_is_refused_unless_declared(tmp_path):
    truth = write_fake_algonauts(str(tmp_path))
    for h, sl in (("lh", slice(0, 7)), ("rh", slice(7, None))):
        np.save(os.path.join(truth["path"], "test_split", "noise_ceiling", f"{h}_noise_ceiling.npy"),
                100 * truth["noise_ceiling"][sl])
    with pytest.raises(ValueError, match="looks like percent"):
        load_algonauts(truth["path"], split="test")
    subj = load_subject(f"algonauts:{truth['path']}?split=test&nc_unit=percent")
    np.testing.assert_allclose(subj.extra["noise_ceiling"], truth["noise_ceiling"], rtol=1e-12)


def test_test_split_without_fmri(tmp_path):
    truth = write_fake_algonauts(str(tmp_path), test_fmri=False, noise_ceiling=False)
    with pytest.raises(FileNotFoundError, match="Only later Algonauts 2023 releases"):
        load_algonauts(truth["path"], split="test")
    images, ids = list_split_images(truth["path"], "test")
    np.testing.assert_array_equal(ids, truth["test_ids"])
    assert decode_id(images[0]) == truth["test_ids"][0]


def test_rois_challenge_and_fsaverage_space_agree_and_name_their_class(alg):
    names = ALGONAUTS_MAPPINGS["prf-visualrois"]
    assert read_mapping(alg["path"], "prf-visualrois") == {0: "Unknown", **{k + 1: n for k, n in enumerate(names)}}
    for space in ("challenge", "fsaverage"):
        rois = load_rois(alg["path"], "prf-visualrois", space)
        assert sorted(rois) == sorted(names)
        for name in rois:
            np.testing.assert_array_equal(rois[name], alg["rois"][f"prf-visualrois/{name}"])
    subj = load_algonauts(alg["path"])
    assert set(subj.extra["rois"]) == set(alg["rois"])
    assert "prf-visualrois/V1v" in subj.extra["rois"] and "streams/early" in subj.extra["rois"]
    assert subj.extra["roi_classes"]["floc-places/RSC"] == "floc-places"
    np.testing.assert_array_equal(subj.extra["rois"]["streams/early"], alg["rois"]["streams/early"])


class _Payload:
    """Unpickling this would create ``marker``: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("payload", ["object", "value", "key"])
def test_crafted_mapping_file_runs_no_code(tmp_path, payload):
    truth = write_fake_algonauts(str(tmp_path / "d"))
    marker = str(tmp_path / "ran")
    evil = _Payload(marker)
    content = {"object": evil, "value": {0: "Unknown", 1: evil}, "key": {evil: "V1v"}}[payload]
    path = os.path.join(truth["path"], "roi_masks", "mapping_streams.npy")
    np.save(path, np.array(content, dtype=object) if payload == "object" else content, allow_pickle=True)
    with pytest.raises(ValueError, match="mapping_streams.npy is not a ROI mapping"):
        load_algonauts(truth["path"])
    assert not os.path.exists(marker)
    # the same file really runs code when unpickled naively: the test's payload is live
    np.load(path, allow_pickle=True)
    assert os.path.exists(marker)


def test_mapping_file_must_be_a_dict_of_int_to_str(tmp_path):
    path = str(tmp_path / "mapping_x.npy")
    np.save(path, {0: "Unknown", np.int64(1): np.str_("V1v")}, allow_pickle=True)  # numpy scalars are fine
    assert read_mapping_file(path) == {0: "Unknown", 1: "V1v"}
    for bad, what in (({"a": "V1v"}, "not int -> str"), ({1: 2.5}, "not int -> str"), ({"V1v"}, "holds a set, not a dict"),
                      (np.arange(3), "not a pickled dict")):
        np.save(path, bad, allow_pickle=True)
        with pytest.raises(ValueError, match=f"mapping_x.npy.*{what}"):
            read_mapping_file(path)


def _nsdgeneral_labels(folder, truth, inside):
    """NSD-style fsaverage nsdgeneral labels marking ``inside`` {hemi: fsaverage indices}."""
    import nibabel as nib

    os.makedirs(folder, exist_ok=True)
    for h in ("lh", "rh"):
        values = np.zeros(FSAVERAGE_N, np.int32)
        values[inside[h]] = 1
        nib.save(nib.MGHImage(values.reshape(-1, 1, 1), np.eye(4)), os.path.join(folder, f"{h}.nsdgeneral.mgz"))
    return folder


def test_vertex_sets_by_name(alg, tmp_path):
    subj = load_subject(f"algonauts:{alg['path']}")
    assert subj.extra["vertex_set"] == "nsdgeneral+RSC" and subj.n_vertices == 16  # the challenge space
    # nsdgeneral = the challenge space less RSC: drop 2 lh and 1 rh columns
    inside = {"lh": alg["vertex"]["lh"][2:], "rh": alg["vertex"]["rh"][1:]}
    labels = _nsdgeneral_labels(str(tmp_path / "label"), alg, inside)
    ng = load_subject(f"algonauts:{alg['path']}?vertex_set=nsdgeneral&nsdgeneral_dir={labels}")
    keep = np.r_[[False] * 2, [True] * 5, False, [True] * 8]
    assert ng.extra["vertex_set"] == "nsdgeneral" and ng.n_vertices == 13
    np.testing.assert_array_equal(ng.responses, alg["train"][:, keep])
    np.testing.assert_array_equal(ng.vertex, np.concatenate([inside["lh"], inside["rh"]]))
    np.testing.assert_array_equal(ng.extra["rois"]["streams/early"], alg["rois"]["streams/early"][keep])
    test = load_algonauts(alg["path"], split="test", vertex_set="nsdgeneral", nsdgeneral_dir=labels)
    np.testing.assert_array_equal(test.extra["noise_ceiling"], alg["noise_ceiling"][keep])
    with pytest.raises(ValueError, match="nsdgeneral_dir="):
        load_algonauts(alg["path"], vertex_set="nsdgeneral")
    with pytest.raises(ValueError, match=r"unknown vertex_set 'V1'.*nsdgeneral\+RSC, nsdgeneral"):
        load_algonauts(alg["path"], vertex_set="V1")


def test_one_hemisphere_by_spec_is_not_split_into_letters(alg):
    subj = load_subject(f"algonauts:{alg['path']}?hemis=lh")
    assert subj.n_vertices == 7 and set(subj.hemi) == {"lh"}
    with pytest.raises(ValueError, match="'xh'"):
        load_subject(f"algonauts:{alg['path']}?hemis=lh,xh")


def test_subject_with_other_vertex_counts(tmp_path):
    truth = write_fake_algonauts(str(tmp_path), subject="subj06", n_train=9, n_lh=4, n_rh=11, seed=6)
    subj = load_subject(f"algonauts:{truth['path']}")
    assert subj.responses.shape == (9, 15) and subj.name == "subj06"


def test_column_count_must_match_mask(tmp_path):
    truth = write_fake_algonauts(str(tmp_path))
    f = os.path.join(truth["path"], "training_split", "training_fmri", "rh_training_fmri.npy")
    np.save(f, np.load(f)[:, :-1])
    with pytest.raises(ValueError, match="8 columns but rh.all-vertices_fsaverage_space.npy marks 9"):
        load_algonauts(truth["path"])


def test_roi_file_length_must_match_columns(tmp_path):
    truth = write_fake_algonauts(str(tmp_path))
    f = os.path.join(truth["path"], "roi_masks", "lh.streams_challenge_space.npy")
    np.save(f, np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="3 entries but the lh fMRI has 7 columns"):
        load_rois(truth["path"], "streams")


def test_gap_in_running_numbers_is_an_error(tmp_path):
    truth = write_fake_algonauts(str(tmp_path))
    folder = os.path.join(truth["path"], "training_split", "training_images")
    os.remove(os.path.join(folder, sorted(os.listdir(folder))[3]))
    with pytest.raises(ValueError, match="running numbers"):
        load_algonauts(truth["path"])
