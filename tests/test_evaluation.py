"""Metrics, noise ceilings (percent vs fraction), ROI tables."""
import numpy as np
import pytest

from factortopy.evaluation import (algonauts_score, format_table, ncsnr_ceiling, ncsnr_ceiling_percent, roi_table,
                                   score_deviations)
from factortopy.evaluation.run import evaluate_predictions


def official_score(r, nc):
    """The official Algonauts 2023 scorer's steps, transcribed (data-formats.md)."""
    r, nc = np.array(r, dtype=np.float64), np.array(nc, dtype=np.float64)
    r[r < 0] = 0
    r2 = r ** 2
    nc[nc == 0] = 1e-14
    s = np.divide(r2, nc) * 100
    s[s > 100] = 100
    return s


def test_algonauts_score_known_values():
    r = np.array([0.5, -0.2, 0.9, 0.3, 0.6, 0.0, -0.4])
    nc = np.array([0.5, 0.5, 0.5, 0.0, 0.36, 0.0, 0.0])
    s = algonauts_score(r, nc)
    # 0.81/0.5 = 162 -> capped at 100; NC = 0 scores 100 where r > 0 and 0 otherwise, as officially
    np.testing.assert_allclose(s, [50.0, 0.0, 100.0, 100.0, 100.0, 0.0, 0.0])
    np.testing.assert_allclose(s, official_score(r, nc))
    rng = np.random.default_rng(1)
    r, nc = rng.uniform(-1, 1, 500), rng.uniform(0, 1, 500) * (rng.random(500) > 0.1)
    np.testing.assert_allclose(algonauts_score(r, nc), official_score(r, nc))


def test_score_deviations_say_where_we_differ():
    nc = np.array([0.0, np.nan, 0.5, 0.5])
    pred = np.array([[1.0, 2, 3, 5], [1.0, 3, 4, 6], [1.0, 4, 5, 5]])
    notes = score_deviations(nc, pred, pred + np.array([0, 0, 0, 1.0]))
    assert len(notes) == 3
    assert notes[0].startswith("1 vertices have noise ceiling 0") and "official" in notes[0]
    assert "NaN noise ceiling" in notes[1] and "1 vertices" in notes[2] and "constant" in notes[2]
    assert score_deviations(np.array([0.5, 0.2])) == []


def test_algonauts_score_refuses_percent():
    with pytest.raises(ValueError, match="looks like percent"):
        algonauts_score(np.array([0.5]), np.array([50.0]))


def test_noise_ceiling_from_ncsnr_units():
    ncsnr = np.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(ncsnr_ceiling_percent(ncsnr, 3), [0, 75, 100 * 4 / (4 + 1 / 3)], rtol=1e-6)
    np.testing.assert_allclose(ncsnr_ceiling(ncsnr, 1), [0, 0.5, 0.8], rtol=1e-6)
    # images averaged over 3 and 1 trials: 1/n is the mean of 1/3 and 1
    np.testing.assert_allclose(ncsnr_ceiling_percent(np.array([1.0]), [3, 1]), [100 / (1 + 2 / 3)], rtol=1e-6)


def test_data_never_imports_evaluation():
    """Layering: the noise-ceiling formulas live in data/; evaluation imports data, never the reverse."""
    import ast
    import pathlib

    import factortopy.data

    root = pathlib.Path(factortopy.data.__file__).parent
    for f in root.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(n.startswith("factortopy.evaluation") for n in names), f"{f.name} imports {names}"


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
