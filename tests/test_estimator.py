"""FactorTopyEncoder: the scikit-learn face over fit(), on a tiny planted subject."""
import os

import numpy as np
import pytest

from factortopy.data.algonauts import load_algonauts
from factortopy.datasets.planted import PLANTED_BACKBONE, make_planted_subject
from factortopy.estimator import FactorTopyEncoder

SETTINGS = dict(img_size=64, epochs=2, dim=8, batch_size=16, heldout_fraction=0.1)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("est") / "subj01")
    make_planted_subject(folder, n_images=64, pole_fraction=0.01, img_size=64, image_size=64, dim=8,
                         progress=False)
    subject = load_algonauts(folder)
    images = np.stack([subject.images[i] for i in range(subject.n_images)])
    return subject, images, os.path.join(folder, PLANTED_BACKBONE)


def _encoder(weights, **kw):
    return FactorTopyEncoder("resnet18", weights=weights, **{**SETTINGS, **kw})


def test_predictions_come_back_in_the_units_of_the_training_responses(planted):
    subject, images, weights = planted
    y = subject.responses
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 4.0, y.shape[1]).astype(np.float32)  # per-vertex gain and offset: other units
    b = rng.uniform(-10, 10, y.shape[1]).astype(np.float32)
    enc = _encoder(weights).fit(images, y, vertices=subject.vertex, hemi=subject.hemi)
    scaled = _encoder(weights).fit(images, y * a + b, vertices=subject.vertex, hemi=subject.hemi)
    p, q = enc.predict(images[:8]), scaled.predict(images[:8])
    assert p.shape == (8, subject.n_vertices) and p.dtype == np.float32
    # both fits see the same z-scored targets, so the second prediction is the first in the new units
    np.testing.assert_allclose(q, p * a + b, rtol=1e-3, atol=1e-3 * np.abs(b).max())
    # fitted attributes describe the fitted columns
    assert enc.n_vertices_ == subject.n_vertices
    np.testing.assert_array_equal(enc.vertex_, subject.vertex)
    np.testing.assert_array_equal(enc.hemi_, subject.hemi)
    assert enc.layer_probs_.shape == (subject.n_vertices, len(enc.layer_names_))
    np.testing.assert_allclose(enc.layer_probs_.sum(1), 1.0, atol=1e-5)
    assert enc.space_xy_.shape == (subject.n_vertices, 2) and np.abs(enc.space_xy_).max() <= 1 + 1e-6
    assert len(enc.scale_) == subject.n_vertices
    assert set(enc.selectors_) >= {"layer_probs", "space_xy", "scale"}
    assert "heldout_pearson_mean" in enc.metrics_ and enc.scores_["r"].shape == (subject.n_vertices,)


def test_score_is_sklearns_mean_r2_and_score_vertices_per_vertex(planted):
    from sklearn.metrics import r2_score

    subject, images, weights = planted
    enc = _encoder(weights).fit(images, subject.responses, vertices=subject.vertex, hemi=subject.hemi)
    x, y = images[40:], subject.responses[40:] * 2.0 + 1.0  # not the training units: R^2 is not scale-free
    pred = enc.predict(x)
    assert enc.score(x, y) == pytest.approx(r2_score(y, pred), abs=1e-6)
    np.testing.assert_allclose(enc.score_vertices(x, y), r2_score(y, pred, multioutput="raw_values"), atol=1e-6)
    r = np.array([np.corrcoef(pred[:, j], y[:, j])[0, 1] for j in range(y.shape[1])])
    np.testing.assert_allclose(enc.score_vertices(x, y, metric="r"), r, atol=1e-5)
    with pytest.raises(ValueError, match="metric"):
        enc.score_vertices(x, y, metric="mse")
    with pytest.raises(ValueError, match="shape"):
        enc.score(x, y[:, :3])


def test_save_load_round_trip_gives_identical_predictions(planted, tmp_path):
    from factortopy.runs import open_run

    subject, images, weights = planted
    enc = _encoder(weights).fit(subject)
    path = enc.save(str(tmp_path / "run"))
    loaded = FactorTopyEncoder.load(path)
    np.testing.assert_array_equal(loaded.predict(images[:10]), enc.predict(images[:10]))
    np.testing.assert_array_equal(loaded.layer_probs_, enc.layer_probs_)
    assert loaded.layer_names_ == enc.layer_names_
    assert {k: loaded.get_params()[k] for k in SETTINGS if k != "img_size"} == \
        {k: v for k, v in SETTINGS.items() if k != "img_size"}
    assert open_run(path).config["backbone"] == enc.run_.config["backbone"]  # an ordinary RUN_DIR
    with pytest.raises(ValueError, match="finished run"):
        enc.save(path)
    enc.save(path, overwrite=True)
    with pytest.raises(FileNotFoundError, match="not a factortopy run directory"):
        FactorTopyEncoder.load(str(tmp_path))


def test_fit_on_a_subject_equals_fit_on_its_arrays(planted):
    subject, images, weights = planted
    a = _encoder(weights).fit(subject)
    b = _encoder(weights).fit(list(images), subject.responses, vertices=subject.vertex, hemi=subject.hemi)
    np.testing.assert_allclose(a.predict(images[:6]), b.predict(images[:6]), atol=1e-6)


def test_params_clone_and_clear_errors(planted):
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    subject, images, weights = planted
    enc = _encoder(weights, lr=2e-3)
    params = enc.get_params()
    assert params["lr"] == 2e-3 and params["backbone"] == "resnet18" and params["patience"] == 5  # a default
    twin = clone(enc)
    assert twin.get_params() == params and not hasattr(twin, "run_")
    assert enc.set_params(epochs=3) is enc and enc.epochs == 3
    with pytest.raises(ValueError, match="invalid parameter 'epoch'"):
        enc.set_params(epoch=3)
    with pytest.raises(TypeError, match="unknown setting"):
        FactorTopyEncoder("resnet18", epoch=3)
    with pytest.raises(NotFittedError, match="not fitted"):
        enc.predict(images[:2])
    with pytest.raises(ValueError, match="needs a backbone"):
        FactorTopyEncoder(**SETTINGS).fit(subject)
    bad = dict(vertices=subject.vertex, hemi=subject.hemi)
    with pytest.raises(ValueError, match="images but 63 response rows"):
        enc.fit(images, subject.responses[:63], **bad)
    with pytest.raises(ValueError, match="vertices must be"):
        enc.fit(images, subject.responses, vertices=subject.vertex[:-1], hemi=subject.hemi)
    with pytest.raises(ValueError, match="fit\\(subject\\) takes the subject alone"):
        enc.fit(subject, subject.responses)


def test_the_temporary_run_goes_with_the_estimator_and_with_a_refit(planted, tmp_path):
    import gc

    subject, images, weights = planted
    enc = _encoder(weights, epochs=1).fit(subject)
    first = enc.run_.path
    assert os.path.isfile(os.path.join(first, "config.json"))
    enc.fit(subject)  # a refit replaces the previous temporary run
    second = enc.run_.path
    assert not os.path.exists(first) and os.path.isdir(second)
    kept = enc.save(str(tmp_path / "kept"))
    del enc
    gc.collect()
    assert not os.path.exists(second) and os.path.isfile(os.path.join(kept, "config.json"))
