"""Algonauts 2023 layout on tiny files with planted answers."""
import os

import numpy as np
import pytest

from factortopy.data import load_subject
from factortopy.data.algonauts import list_split_images, load_algonauts
from factortopy.data.fake import decode_id, write_fake_algonauts
from factortopy.data.fsaverage import fsaverage5_surface
from factortopy.data.rois import load_rois, read_mapping


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


def test_test_split_with_fmri_and_noise_ceiling_fraction(alg):
    subj = load_algonauts(alg["path"], split="test")
    np.testing.assert_array_equal(subj.image_ids, alg["test_ids"])
    np.testing.assert_array_equal(subj.responses, alg["test"])
    assert subj.extra["test_mask"].all()
    # written in percent, returned as a 0-1 fraction
    np.testing.assert_allclose(subj.extra["noise_ceiling"], alg["noise_ceiling"], rtol=1e-6)


def test_test_split_without_fmri(tmp_path):
    truth = write_fake_algonauts(str(tmp_path), test_fmri=False, noise_ceiling=False)
    with pytest.raises(FileNotFoundError, match="Only later Algonauts 2023 releases"):
        load_algonauts(truth["path"], split="test")
    images, ids = list_split_images(truth["path"], "test")
    np.testing.assert_array_equal(ids, truth["test_ids"])
    assert decode_id(images[0]) == truth["test_ids"][0]


def test_rois_challenge_and_fsaverage_space_agree(alg):
    assert read_mapping(alg["path"], "prf-visualrois") == {0: "Unknown", 1: "V1v", 2: "V1d"}
    for space in ("challenge", "fsaverage"):
        rois = load_rois(alg["path"], "prf-visualrois", space)
        assert sorted(rois) == ["V1d", "V1v"]
        for name in rois:
            np.testing.assert_array_equal(rois[name], alg["rois"][name])
    subj = load_algonauts(alg["path"])
    assert set(subj.extra["rois"]) == {"V1v", "V1d", "early"}
    np.testing.assert_array_equal(subj.extra["rois"]["early"], alg["rois"]["early"])


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
