"""The loss table (factortopy.fitting.losses), each loss checked against an independent computation."""
import numpy as np
import pytest
import torch
from scipy.stats import pearsonr

from factortopy.fitting.config import FitConfig
from factortopy.fitting.losses import LOSSES, loss_for


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(6, 5))
    target = 0.5 * pred + rng.normal(scale=0.3, size=(6, 5))
    target[:, 4] = 1.5  # a constant column
    return pred, target


def _loss(name, pred, target, n_global=None, **cfg):
    p = torch.tensor(pred, dtype=torch.float64)
    t = torch.tensor(target, dtype=torch.float64)
    return float(LOSSES[name].fn(p, t, pred.size if n_global is None else n_global, FitConfig(**cfg)))


def test_smooth_l1_is_the_huber_formula(batch):
    pred, target = batch
    beta = 0.1
    d = np.abs(pred - target)
    expected = np.where(d < beta, 0.5 * d ** 2 / beta, d - 0.5 * beta).mean()
    assert _loss("smooth_l1", pred, target, smooth_l1_beta=beta) == pytest.approx(expected, rel=1e-12)
    # the global count, not the local one: two halves of a batch sum to the whole batch's mean
    halves = _loss("smooth_l1", pred[:3], target[:3], pred.size) + _loss("smooth_l1", pred[3:], target[3:], pred.size)
    assert halves == pytest.approx(expected, rel=1e-12)


def test_mse_is_the_mean_square(batch):
    pred, target = batch
    assert _loss("mse", pred, target) == pytest.approx(((pred - target) ** 2).mean(), rel=1e-12)


def test_pearson_is_one_minus_the_mean_per_vertex_r(batch):
    pred, target = batch
    r = [pearsonr(pred[:, j], target[:, j])[0] for j in range(4)] + [0.0]  # constant column: r = 0, not NaN
    assert _loss("pearson", pred, target) == pytest.approx(1 - np.mean(r), rel=1e-10)
    # finite gradients even for the constant column
    p = torch.tensor(pred, requires_grad=True)
    LOSSES["pearson"].fn(p, torch.tensor(target), pred.size, FitConfig()).backward()
    assert torch.isfinite(p.grad).all() and torch.all(p.grad[:, 4] == 0)
    # invariant to each vertex's offset and scale, unlike the additive losses
    assert _loss("pearson", 3 * pred + 2, target) == pytest.approx(_loss("pearson", pred, target), rel=1e-10)


def test_a_loss_needing_the_whole_batch_is_refused_under_torchrun():
    assert loss_for("pearson", world=1) is LOSSES["pearson"]
    with pytest.raises(ValueError, match="pearson loss needs each batch whole.*smooth_l1, mse"):
        loss_for("pearson", world=2)
    with pytest.raises(ValueError, match="loss .* must be 'smooth_l1' or 'mse' or 'pearson'"):
        FitConfig(loss="l1")


@pytest.mark.parametrize("loss", ["mse", "pearson"])
def test_a_fit_with_each_loss_learns(loss, tmp_path):
    """Planted linear responses: every loss reaches a held-out r well above chance, and the run
    records its loss."""
    from factortopy.estimator import FactorTopyEncoder

    rng = np.random.default_rng(1)
    levels = rng.uniform(0, 1, (200, 4, 4))  # images of 4 x 4 grey blocks; vertex j sees one block
    images = (np.kron(levels, np.ones((8, 8)))[..., None].repeat(3, -1) * 255).astype(np.uint8)
    responses = (levels.reshape(200, 16)[:, [0, 5, 10, 15, 3, 12]]
                 + 0.1 * rng.standard_normal((200, 6))).astype(np.float32)
    enc = FactorTopyEncoder("resnet18", random_init=True, img_size=32, layers=["act1"], epochs=10, dim=8,
                            batch_size=16, lr=1e-2, loss=loss, threads=1, patience=None, val_fraction=0.2,
                            heldout_fraction=0.2)
    enc.fit(images, responses, vertices=np.arange(6), hemi="lh", out=str(tmp_path / "run"))
    assert enc.run_.config["fit"]["loss"] == loss
    # 40 held-out images x 6 vertices: chance is 0 +- ~0.07; measured 0.47 (mse), 0.32 (pearson)
    assert enc.metrics_["heldout_pearson_mean"] > 0.2, enc.metrics_
