"""The ridge baseline: estimator on planted layers, then CLI baseline -> RUN_DIR -> evaluate."""
import json
import os

import numpy as np
import pytest
import torch

pytest.importorskip("himalaya")

from factortopy.baselines.features import pool_tokens  # noqa: E402
from factortopy.baselines.ridge import LayerwiseRidgeCV  # noqa: E402
from factortopy.cli import main  # noqa: E402


def test_layerwise_ridge_recovers_planted_layer_and_roundtrips():
    rng = np.random.default_rng(0)
    n = 90
    Xs = [rng.normal(size=(n, 12)) for _ in range(3)]
    layer = np.array([0, 0, 1, 1, 2, 2, 2])
    Y = np.stack([Xs[l] @ rng.normal(size=12) for l in layer], 1) + 0.3 * rng.normal(size=(n, layer.size))
    m = LayerwiseRidgeCV(alphas=(0.1, 1, 10, 1e3), cv=3).fit([X[:70] for X in Xs], Y[:70])
    np.testing.assert_array_equal(m.best_layer_, layer)
    test = [X[70:] for X in Xs]
    # score is the mean R^2 over vertices, as FactorTopyEncoder.score and scikit-learn's regressors;
    # score_vertices per vertex (R^2, or Pearson r)
    from scipy.stats import pearsonr
    from sklearn.metrics import r2_score as sk_r2

    pred = m.predict(test)
    expected = sk_r2(Y[70:], pred, multioutput="raw_values")
    np.testing.assert_allclose(m.score_vertices(test, Y[70:]), expected, rtol=1e-4, atol=1e-5)
    assert isinstance(m.score(test, Y[70:]), float)
    assert m.score(test, Y[70:]) == pytest.approx(sk_r2(Y[70:], pred), rel=1e-4)
    r = [pearsonr(pred[:, j], Y[70:, j])[0] for j in range(Y.shape[1])]
    np.testing.assert_allclose(m.score_vertices(test, Y[70:], metric="r"), r, atol=1e-5)
    assert min(r) > 0.9
    assert m.layer_scores_.shape == (3, 7) and set(m.alpha_) <= {0.1, 1, 10, 1e3}
    again = LayerwiseRidgeCV.from_state(m.state())
    np.testing.assert_array_equal(again.predict(Xs), m.predict(Xs))


def test_layerwise_ridge_clones_like_a_scikit_learn_estimator():
    from sklearn.base import clone

    m = LayerwiseRidgeCV(alphas=(1.0, 10.0), cv=3, seed=4)
    twin = clone(m)
    assert twin.get_params() == m.get_params() and twin is not m
    twin.set_params(cv=4, standardize=False)
    assert (twin.cv, twin.standardize, m.cv) == (4, False, 3)
    with pytest.raises(ValueError, match="invalid parameter 'alpha'.*alphas"):
        twin.set_params(alpha=1.0)
    rng = np.random.default_rng(0)
    fitted = m.fit([rng.normal(size=(30, 4))], rng.normal(size=(30, 2)))
    assert not hasattr(clone(fitted), "coefs_")  # a clone is unfitted


def test_fitting_leaves_himalayas_global_backend_as_it_was():
    from himalaya.backend import get_backend, set_backend

    rng = np.random.default_rng(0)
    Xs, Y = [rng.normal(size=(30, 4))], rng.normal(size=(30, 2))
    set_backend("torch")
    try:
        LayerwiseRidgeCV(alphas=(1.0, 10.0), cv=3).fit(Xs, Y)
        assert get_backend().name == "torch"
    finally:
        set_backend("numpy")


def test_pool_tokens_average_and_global():
    grid, C = 4, 3
    tokens = torch.zeros(1, 1, grid * grid + 1, C)
    tokens[0, 0, :16, 0] = torch.arange(16.0)  # row-major cells
    tokens[0, 0, 16] = torch.tensor([7.0, 8.0, 9.0])
    (X,) = pool_tokens(tokens, [C], grid, pool=2)
    assert X.shape == (1, 5 * C)
    # top-left 2x2 block of cells 0,1,4,5 -> mean 2.5, in channel 0 of the first pooled cell
    assert X[0, 0] == pytest.approx(2.5) and X[0, 3 * C] == pytest.approx(12.5)  # cells 10, 11, 14, 15
    np.testing.assert_allclose(X[0, 4 * C:], [7, 8, 9])


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A generic subject whose responses are linear in one layer's pooled features (random resnet18)."""
    from factortopy.backbones import load_backbone
    from factortopy.baselines.features import pooled_features

    d = tmp_path_factory.mktemp("ridge")
    torch.manual_seed(0)
    bb = load_backbone("resnet18", random_init=True, layers=["layer1", "layer3"], img_size=32)
    weights = str(d / "w.pt")
    torch.save(bb.model.state_dict(), weights)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (80, 32, 32, 3), dtype=np.uint8)
    Xs = pooled_features(bb, images)
    layer = np.array([0, 0, 0, 1, 1, 1])
    Y = []
    pcs = []
    for X in Xs:  # plant in each layer's top principal components: what ridge can learn from 60 images
        X = (X - X.mean(0)) / (X.std(0) + 1e-6)
        pcs.append(np.linalg.svd(X, full_matrices=False)[0][:, :3])
    for l in layer:
        Y.append(pcs[l] @ rng.normal(size=3))
    Y = np.stack(Y, 1)
    Y = Y / Y.std(0) + 0.2 * rng.normal(size=Y.shape)
    test_mask = np.zeros(80, bool)
    test_mask[-10:] = True  # 70 for fitting, 10 held out
    path = str(d / "subject.npz")
    np.savez(path, images=images, responses=Y.astype(np.float32), vertices=np.c_[[0, 0, 0, 1, 1, 1], [1, 2, 3, 1, 2, 3]],
             test_mask=test_mask, noise_ceiling=np.full(6, 0.8))
    return dict(path=path, weights=weights, layer=layer, dir=d)


@pytest.fixture(scope="module")
def ridge_run(planted):
    """A ridge RUN_DIR written by `factortopy baseline` (each test that needs one gets it from here),
    fitted from the subject's folder with RELATIVE paths: the tests read and evaluate it from another
    working directory (the run must have recorded its data spec absolute)."""
    out = str(planted["dir"] / "run")
    before = os.getcwd()
    os.chdir(planted["dir"])
    try:
        rc = main(["baseline", "--data", "generic:subject.npz", "--backbone", "resnet18", "--layers",
                   "layer1,layer3", "--weights", "w.pt", "--img-size", "32", "--cv", "3",
                   "--val-fraction", "0.15", "--seed", "3", "--out", "run"])
    finally:
        os.chdir(before)
    assert rc == 0
    return out


def test_baseline_cli_writes_run_dir_and_evaluate_reproduces_it(planted, ridge_run, capsys):
    out = ridge_run
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["data"] == f"generic:{planted['path']}"  # recorded absolute: evaluated from any folder
    assert cfg["kind"] == "ridge" and cfg["split"]["seed"] == 3 and cfg["backbone"]["layer_names"] == ["layer1", "layer3"]
    sel = np.load(os.path.join(out, "selectors.npz"))
    assert {"space_xy", "scale", "readout"}.isdisjoint(sel.files)
    np.testing.assert_array_equal(sel["layer_probs"].argmax(1), planted["layer"])
    assert (sel["layer_probs"].sum(1) == 1).all()
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["heldout_pearson_mean"] > 0.6 and metrics["n_heldout"] == 7
    scores = np.load(os.path.join(out, "scores.npz"))
    # the ridge run is written by the same writer as a fit: every file checksummed, config last
    import hashlib

    sums = json.load(open(os.path.join(out, "checksums.json")))
    assert sorted(sums) == ["config.json", "metrics.json", "ridge.npz", "scores.npz", "selectors.npz"]
    assert all(sums[n] == hashlib.sha256(open(os.path.join(out, n), "rb").read()).hexdigest() for n in sums)
    assert metrics["headline"] == "heldout_pearson_mean"

    # the same split as `factortopy fit`: scored on split_indices(70, 0.15, 0.1, 3)'s held-out images
    from factortopy.data.split import split_indices

    assert cfg["split"]["heldout_image_ids"] == split_indices(70, 0.15, 0.1, 3)["heldout"].tolist()
    assert str(scores["split"]) == "heldout" and metrics["n_train"] == 63

    capsys.readouterr()
    assert os.getcwd() != str(planted["dir"])
    assert main(["evaluate", out]) == 0  # the default split: held-out; from another working directory
    assert "all" in capsys.readouterr().out
    ev = np.load(os.path.join(out, "eval_heldout.npz"))
    np.testing.assert_allclose(ev["r"], scores["r"], atol=1e-5)  # rebuilt backbone + ridge.npz = same predictions

    from factortopy.evaluation import evaluate_run

    res = evaluate_run(out, split="test", write=False)
    assert res["n_images"] == 10 and res["r"].mean() > 0.5
    np.testing.assert_allclose(res["score"], np.minimum(100 * res["r"] ** 2 / 0.8, 100), rtol=1e-5)


def test_evaluate_from_scores_only(ridge_run, capsys):
    assert main(["evaluate", ridge_run, "--from-scores"]) == 0
    assert "r_mean" in capsys.readouterr().out
