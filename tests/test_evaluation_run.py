"""evaluate_run on a FactorTopy RUN_DIR fitted on a tiny Algonauts-layout subject."""
import json
import os

import numpy as np
import pytest
import torch

from factortopy.datasets.fixtures import write_fake_algonauts


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from factortopy.backbones import load_backbone
    from factortopy.data import load_subject
    from factortopy.fitting.fit import fit

    d = tmp_path_factory.mktemp("evalrun")
    truth = write_fake_algonauts(str(d), n_train=30, n_test=8, n_lh=5, n_rh=6)
    torch.manual_seed(0)
    weights = str(d / "w.pt")
    torch.save(load_backbone("resnet18", random_init=True, layers=["layer1", "layer3"], img_size=32).model.state_dict(), weights)
    spec = f"algonauts:{truth['path']}"
    out = str(d / "run")
    fit(load_subject(spec), backbone="resnet18", layers=["layer1", "layer3"], weights=weights, img_size=32,
        out=out, data_spec=spec, epochs=1, val_fraction=0.2, dim=16, hidden=16, progress=False)
    return dict(out=out, truth=truth)


def test_val_split_reproduces_the_fit_scores(fitted):
    from factortopy.evaluation import evaluate_run

    res = evaluate_run(fitted["out"])  # the default: the held-out images, which scores.npz also holds
    scores = np.load(os.path.join(fitted["out"], "scores.npz"))
    assert str(scores["split"]) == "heldout"
    assert res["kind"] == "factortopy" and res["split"] == "heldout" and res["n_images"] == 3
    np.testing.assert_allclose(res["r"], scores["r"], atol=2e-3)
    assert os.path.isfile(os.path.join(fitted["out"], "eval_heldout.json"))
    assert evaluate_run(fitted["out"], split="val", write=False)["n_images"] == 6


def test_test_split_scores_rois_and_noise_ceiling(fitted, capsys):
    from factortopy.cli import main

    assert main(["evaluate", fitted["out"], "--split", "test", "--by-hemi"]) == 0
    text = capsys.readouterr().out
    assert "V1v" in text and "early lh" in text and "score_mean" in text
    summary = json.load(open(os.path.join(fitted["out"], "eval_test.json")))
    assert summary["n_images"] == 8 and summary["data"].endswith("split=test")
    ev = np.load(os.path.join(fitted["out"], "eval_test.npz"))
    np.testing.assert_array_equal(ev["image_ids"], fitted["truth"]["test_ids"])
    nc = fitted["truth"]["noise_ceiling"]
    np.testing.assert_allclose(ev["score"], np.minimum(100 * np.maximum(ev["r"], 0) ** 2 / nc, 100), rtol=1e-4)


def test_an_undefined_ceiling_is_scored_as_the_official_scorer_and_said(fitted):
    """NC = 0 used to become NaN and silently leave the mean; the official scorer uses 1e-14."""
    from factortopy.data import load_subject
    from factortopy.evaluation import evaluate_run

    subject = load_subject(f"algonauts:{fitted['truth']['path']}?split=test")
    subject.extra["noise_ceiling"] = np.asarray(subject.extra["noise_ceiling"]).copy()
    subject.extra["noise_ceiling"][:3] = 0.0
    res = evaluate_run(fitted["out"], split="test", subject=subject, write=False)
    expected = np.where(res["r"][:3] > 0, 100.0, 0.0)
    np.testing.assert_array_equal(res["score"][:3], expected)
    assert np.isfinite(res["score"]).all()
    assert any("noise ceiling 0" in n for n in res["notes"]) and "note: 3 vertices" in res["text"]



def test_training_data_is_never_scored_as_test(fitted):
    """--split test with training data (no test images) is refused, not scored on fitted images."""
    from factortopy.evaluation import evaluate_run

    spec = f"algonauts:{fitted['truth']['path']}"  # the training split: all images were fitted on
    with pytest.raises(ValueError, match="no test images"):
        evaluate_run(fitted["out"], data=spec, split="test")
