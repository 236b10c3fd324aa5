"""Metrics, noise ceilings (percent vs fraction), ROI tables."""
import numpy as np
import pytest

from factortopy.evaluation import (algonauts_score, format_table, noise_ceiling_fraction, noise_ceiling_percent,
                                   roi_table)
from factortopy.evaluation.run import evaluate_predictions


def test_algonauts_score_known_values():
    r = np.array([0.5, -0.2, 0.9, 0.3, 0.6])
    nc = np.array([0.5, 0.5, 0.5, 0.0, 0.36])
    s = algonauts_score(r, nc)
    np.testing.assert_allclose(s[[0, 1, 2, 4]], [50.0, 0.0, 100.0, 100.0])  # 0.81/0.5 = 162 -> capped at 100
    assert np.isnan(s[3])  # NC = 0: undefined, not inf


def test_algonauts_score_refuses_percent():
    with pytest.raises(ValueError, match="looks like percent"):
        algonauts_score(np.array([0.5]), np.array([50.0]))


def test_noise_ceiling_from_ncsnr_units():
    ncsnr = np.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(noise_ceiling_percent(ncsnr, 3), [0, 75, 100 * 4 / (4 + 1 / 3)], rtol=1e-6)
    np.testing.assert_allclose(noise_ceiling_fraction(ncsnr, 1), [0, 0.5, 0.8], rtol=1e-6)
    # images averaged over 3 and 1 trials: 1/n is the mean of 1/3 and 1
    np.testing.assert_allclose(noise_ceiling_percent(np.array([1.0]), [3, 1]), [100 / (1 + 2 / 3)], rtol=1e-6)


def test_roi_table_and_text():
    rows = roi_table({"r": np.array([0.1, 0.3, np.nan, 0.5])}, {"A": np.array([1, 1, 0, 0], bool),
                                                               "B": np.array([0, 0, 1, 0], bool)})
    assert rows[0] == {"roi": "all", "n_vertices": 4, "r_mean": pytest.approx(0.3), "r_median": pytest.approx(0.3)}
    assert rows[1]["r_mean"] == pytest.approx(0.2) and rows[2]["r_mean"] is None
    text = format_table(rows)
    assert text.splitlines()[0].split() == ["roi", "n_vertices", "r_mean", "r_median"] and " - " in text
    with pytest.raises(ValueError, match="3 entries but there are 4"):
        roi_table({"r": np.zeros(4)}, {"A": np.zeros(3, bool)})


def test_evaluate_predictions_perfect_and_noise_ceiling():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(20, 3)).astype(np.float32)
    res = evaluate_predictions(y, y, noise_ceiling=np.array([1.0, 0.5, 0.25]), rois={"x": np.array([1, 0, 1], bool)})
    np.testing.assert_allclose(res["r"], 1, rtol=1e-5)
    np.testing.assert_allclose(res["r2"], 1, rtol=1e-5)
    np.testing.assert_allclose(res["score"], 100, rtol=1e-4)
    assert [row["roi"] for row in res["table"]] == ["all", "x"]
