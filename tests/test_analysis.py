"""factortopy.analysis: hierarchy score, ROI profiles, run comparison, clusters, geodesics."""
from __future__ import annotations

import numpy as np
import pytest

from factortopy import analysis as A


def onehot(idx, L):
    p = np.zeros((len(idx), L))
    p[np.arange(len(idx)), idx] = 1
    return p


def test_expected_layer_and_confidence():
    p = np.array([[1, 0, 0], [0, 0, 1], [0.5, 0, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(A.expected_layer(p), [0, 1, 0.5, 0.5])
    np.testing.assert_allclose(A.layer_confidence(p), [1, 1, 1 - np.log(2) / np.log(3), 0], atol=1e-12)
    with pytest.raises(ValueError, match="probabilities"):
        A.expected_layer(np.array([[0.5, 0.2]]))


def test_hierarchy_score_matches_hand_computed_spearman():
    # 6 vertices, no ties: rho = 1 - 6 sum d^2 / (n (n^2 - 1))
    layers = np.array([0, 1, 3, 2, 5, 4])
    position = np.array([10.0, 20, 30, 40, 50, 60])
    d = np.argsort(np.argsort(layers)) - np.argsort(np.argsort(position))
    n = 6
    hand = 1 - 6 * (d ** 2).sum() / (n * (n ** 2 - 1))
    res = A.hierarchy_score(onehot(layers, 6), position, n_boot=200, seed=3)
    assert res["rho"] == pytest.approx(hand)
    assert res["n"] == 6 and res["method"] == "position"
    from scipy.stats import spearmanr

    assert A.spearman(layers, position) == pytest.approx(spearmanr(layers, position).statistic)


def test_hierarchy_score_with_roi_labels_and_ties():
    roi = np.array(["V1v", "V1d", "V2v", "hV4", "hV4", "", "V3d"])
    layers = np.array([0, 1, 1, 3, 2, 0, 2])
    res = A.hierarchy_score(onehot(layers, 4), roi=roi, n_boot=100)
    ok = roi != ""
    from scipy.stats import spearmanr

    group = {"V1v": 0, "V1d": 0, "V2v": 1, "hV4": 3, "V3d": 2}  # the paper's V1, V2, V3, V4 (of 12 groups)
    ranks = np.array([group[r] for r in roi[ok]])
    assert res["rho"] == pytest.approx(spearmanr(layers[ok], ranks).statistic)
    assert res["n"] == 6 and res["method"] == "roi:paper"
    # the loaders label ROIs '<class>/<name>': the same positions; the loaders' ROI dict alike
    qualified = np.array([f"prf-visualrois/{r}" if r else "" for r in roi], dtype=object)
    np.testing.assert_array_equal(A.roi_position(qualified), A.roi_position(roi))
    assert A.hierarchy_score(onehot(layers, 4), roi=qualified, n_boot=100)["rho"] == res["rho"]
    as_dict = {label: qualified == label for label in set(qualified) if label}
    assert A.hierarchy_score(onehot(layers, 4), roi=as_dict, n_boot=100)["rho"] == res["rho"]
    # a custom scheme {label: rank}
    assert A.hierarchy_score(onehot(layers, 4), roi=roi, roi_rank=group, n_boot=100)["rho"] == pytest.approx(res["rho"])


def test_bootstrap_ci_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 1, 300)
    layers = np.clip(np.round(pos * 7 + rng.normal(0, 1.5, 300)), 0, 7).astype(int)
    a = A.hierarchy_score(onehot(layers, 8), pos, n_boot=300, seed=1)
    b = A.hierarchy_score(onehot(layers, 8), pos, n_boot=300, seed=1)
    assert a == b
    assert a["ci_low"] <= a["rho"] <= a["ci_high"]
    assert 0.5 < a["rho"] < 1 and a["ci_high"] - a["ci_low"] < 0.3


def test_geodesic_distance_on_a_small_mesh_and_fsaverage5():
    coords = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    d = A.geodesic_distance(coords, faces, [0])
    np.testing.assert_allclose(d, [0, 1, np.sqrt(2), 1])
    # fsaverage5: the occipital pole is at 0, distances grow anteriorly
    from factortopy.surface import fsaverage5

    white = fsaverage5("white")["lh"].coords
    pole = int(np.argmin(white[:, 1]))
    front = int(np.argmax(white[:, 1]))
    dist = A.distance_from_seed(np.array([pole, front, 10242]), np.array(["lh", "lh", "lh"]))
    assert dist[0] == 0 and dist[1] > 100 and np.isnan(dist[2])
    res = A.hierarchy_score(onehot(np.array([0, 3, 1, 2]), 4), vertex=np.array([pole, front, 5, 6]),
                            hemi=np.array(["lh"] * 4), n_boot=50)
    assert res["method"] == "geodesic" and res["n"] == 4


def test_roi_layer_profiles_by_hand():
    p = onehot(np.array([0, 0, 1, 2, 2, 2]), 3)
    roi = np.array(["V1", "V1", "V1", "FFA", "FFA", ""])
    rows = A.roi_layer_profiles(p, roi, ["a", "b", "c"], roi_order=["V1", "FFA"])
    assert [r["roi"] for r in rows] == ["V1", "FFA"]
    np.testing.assert_allclose(rows[0]["selected"], [2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(rows[1]["selected"], [0, 0, 1])
    assert rows[0]["n"] == 3 and rows[1]["n"] == 2
    assert rows[0]["expected_mean"] == pytest.approx(1 / 6)
    from factortopy.viz.profiles import plot_layer_profiles

    plot_layer_profiles(rows).savefig("/dev/null", format="png", dpi=40)


def test_roi_labels_from_masks():
    masks = {"lh": np.zeros(163842, int), "rh": np.zeros(163842, int)}
    masks["lh"][5] = 1
    masks["rh"][9] = 2
    lab = A.roi_labels_from_masks([5, 6, 9], ["lh", "lh", "rh"], masks, {1: "V1v", 2: "hV4"})
    assert list(lab) == ["V1v", "", "hV4"]


def _run(seed, n=50, L=4):
    rng = np.random.default_rng(seed)
    return {"vertex": np.arange(n), "hemi": np.array(["lh"] * (n // 2) + ["rh"] * (n - n // 2)),
            "layer_probs": rng.dirichlet(np.ones(L), n), "space_xy": rng.uniform(-1, 1, (n, 2)),
            "scale": rng.uniform(0, 1, n)}


def test_compare_run_with_itself_is_zero():
    a = _run(0)
    roi = np.where(np.arange(50) < 20, "V1", "V4")
    c = A.compare_runs(a, a, roi=roi)
    assert c["n_matched"] == 50 and c["n_only_a"] == 0
    for k in ("d_layer", "d_space_dist", "d_scale"):
        np.testing.assert_array_equal(c[k], 0)
    assert all(r["d_layer"] == 0 and r["d_scale"] == 0 for r in c["per_roi"])
    assert [r["n"] for r in c["per_roi"]] == [20, 30]


def test_compare_matches_by_hemi_and_vertex():
    a = _run(0)
    b = {k: v.copy() for k, v in a.items()}
    b["scale"] = b["scale"] + 0.1
    b["space_xy"] = b["space_xy"] + np.array([0.3, -0.4])
    perm = np.random.default_rng(1).permutation(50)[:40]  # b: shuffled subset
    b = {k: v[perm] for k, v in b.items()}
    c = A.compare_runs(a, b)
    assert c["n_matched"] == 40 and c["n_only_a"] == 10 and c["n_only_b"] == 0
    np.testing.assert_allclose(c["d_scale"], 0.1)
    np.testing.assert_allclose(c["d_space_dist"], 0.5)
    np.testing.assert_allclose(c["d_layer"], 0, atol=1e-12)
    # same vertex index in the other hemisphere is a different vertex
    b2 = dict(a)
    b2["hemi"] = np.where(a["hemi"] == "lh", "rh", "lh")
    assert A.compare_runs(a, b2)["n_matched"] == 0


def test_cluster_readouts_recovers_planted_clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 32))
    truth = rng.integers(0, 3, 600)
    w = centres[truth] * rng.uniform(0.5, 2, (600, 1)) + 0.1 * rng.normal(size=(600, 32))  # cosine: scale-free
    lab = A.cluster_readouts(w, n_clusters=3, n_centroids=30)
    assert len(np.unique(lab)) == 3
    # a one-to-one relabelling of the truth
    pairs = set(zip(truth.tolist(), lab.tolist()))
    assert len(pairs) == 3
    counts = np.bincount(lab)
    assert np.all(np.diff(counts) <= 0)  # numbered by size


def test_roi_layer_profiles_take_the_loaders_roi_dict():
    # subject.extra["rois"]: {name: (N,) bool mask}; masks overlap (V1v is inside 'early')
    p = onehot(np.array([0, 0, 1, 2, 2, 2]), 3)
    rois = {"V1v": np.array([1, 1, 0, 0, 0, 0], bool), "early": np.array([1, 1, 1, 1, 0, 0], bool),
            "empty": np.zeros(6, bool)}
    rows = A.roi_layer_profiles(p, rois, ["a", "b", "c"])
    assert [r["roi"] for r in rows] == ["V1v", "early", "empty"]  # the loader's order
    np.testing.assert_allclose(rows[0]["selected"], [1, 0, 0])
    np.testing.assert_allclose(rows[1]["selected"], [0.5, 0.25, 0.25])
    assert rows[1]["n"] == 4 and rows[1]["expected_mean"] == pytest.approx((0 + 0 + 0.5 + 1) / 4)
    assert rows[2]["n"] == 0 and np.isnan(rows[2]["expected_mean"])
    # the same numbers as from per-vertex labels where the masks do not overlap
    by_label = A.roi_layer_profiles(p, np.array(["V1v", "V1v", "", "", "", ""]))
    np.testing.assert_allclose(by_label[0]["mean_probs"], rows[0]["mean_probs"])
    assert [r["roi"] for r in A.roi_layer_profiles(p, rois, roi_order=["early", "V1v"])] == ["early", "V1v"]
    with pytest.raises(ValueError, match="shape"):
        A.roi_layer_profiles(p, {"V1v": np.ones(5, bool)})
    with pytest.raises(ValueError, match="not in the ROI dict"):
        A.roi_layer_profiles(p, rois, roi_order=["FFA"])


def test_compare_runs_reads_paths_only_through_the_given_loader(tmp_path):
    a = _run(0)
    with pytest.raises(TypeError, match="load=factortopy.runs.maps.load_maps"):
        A.compare_runs(str(tmp_path / "a"), a)
    seen = []

    def load(path):
        seen.append(path)
        return a

    c = A.compare_runs("runs/a", a, load=load)
    assert seen == ["runs/a"] and c["n_matched"] == 50


def test_analysis_imports_neither_viz_nor_data():
    """analysis sits below viz and data: running its geodesic and hierarchy code loads only surface."""
    import subprocess
    import sys

    code = ("import sys, numpy as np, factortopy.analysis as A; "
            "v = np.arange(0, 600, 3); h = np.array(['lh', 'rh'] * 100); p = np.eye(4)[v % 4]; "
            "A.distance_from_seed(v, h); A.hierarchy_score(p, vertex=v, hemi=h, n_boot=5, n_blocks=5); "
            "A.compare_runs({'vertex': v, 'hemi': h}, {'vertex': v, 'hemi': h}); "
            "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('factortopy.')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['_lazy', 'analysis', 'runs', 'surface']"  # runs: the one column aligner
