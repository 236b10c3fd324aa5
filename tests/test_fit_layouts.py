"""`factortopy fit` end to end on tiny fixtures of each on-disk layout (raw NSD, Algonauts 2023)."""
import json
import os

import numpy as np

from factortopy.cli import main
from factortopy.data import load_subject, with_options
from factortopy.datasets.fixtures import write_fake_algonauts, write_fake_nsd

FIT_ARGS = ["--backbone", "resnet18", "--random-init", "--img-size", "32", "--layers", "layer1,layer3", "--epochs", "2",
            "--batch-size", "4", "--dim", "8", "--val-fraction", "0.25", "--quiet"]


def _check_run(out, subject):
    config = json.load(open(os.path.join(out, "config.json")))
    sel = np.load(os.path.join(out, "selectors.npz"))
    np.testing.assert_array_equal(sel["vertex"], subject.vertex)
    np.testing.assert_array_equal(sel["hemi"], subject.hemi)
    assert list(sel["layer_names"]) == ["layer1", "layer3"]
    # The validation images are recorded by their (0-based) NSD ids, a subset of the subject's.
    assert set(config["split"]["val_image_ids"]) <= set(subject.image_ids.tolist())
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_heldout"] == subject.n_images
    assert np.isfinite(np.load(os.path.join(out, "scores.npz"))["r"]).all()


def test_fit_on_raw_nsd(tmp_path):
    truth = write_fake_nsd(str(tmp_path / "nsd"), subject=1, n_sessions=4, trials_per_session=10, n_slots=30)
    spec = with_options(f"nsd:{truth['root']}", subject=1, sessions=4, trials_per_session=10,
                        mesh_dir=os.path.join(truth["root"], "nsddata", "freesurfer", "fsaverage", "surf"))
    out = str(tmp_path / "run")
    assert main(["fit", "--data", spec, *FIT_ARGS, "--out", out]) == 0
    _check_run(out, load_subject(spec))


def test_fit_on_algonauts(tmp_path):
    write_fake_algonauts(str(tmp_path), "subj03", n_train=30)  # >= 3 held-out images (docs/reliability.md)
    spec = f"algonauts:{tmp_path}/subj03"
    out = str(tmp_path / "run")
    assert main(["fit", "--data", spec, *FIT_ARGS, "--out", out]) == 0
    _check_run(out, load_subject(spec))
