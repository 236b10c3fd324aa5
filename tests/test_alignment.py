"""Brain-network alignment (factortopy.analysis.alignment), the ROI ranking schemes
(factortopy.analysis.roi_hierarchy) and the interval helpers (factortopy.analysis.intervals),
against independent computations and the release's ROI classes with their overlaps."""
from __future__ import annotations

import numpy as np
import pytest

from factortopy import analysis as A
from factortopy.analysis.alignment import AlignmentData
from factortopy.analysis.intervals import block_counts, bootstrap_p, iter_block_counts, t_interval

import release_readers as rr

#: the paper's ROI groups (paper-protocol.md: the authors' code order), written out here by hand
PAPER = {"V1v": "V1", "V1d": "V1", "V2v": "V2", "V2d": "V2", "V3v": "V3", "V3d": "V3", "hV4": "V4", "EBA": "EBA",
         "FBA-1": "FBA", "FBA-2": "FBA", "OFA": "OFA", "FFA-1": "FFA", "FFA-2": "FFA", "OPA": "OPA", "PPA": "PPA",
         "OWFA": "OWFA", "VWFA-1": "VWFA", "VWFA-2": "VWFA"}
ORDER = ["V1", "V2", "V3", "V4", "EBA", "FBA", "OFA", "FFA", "OPA", "PPA", "OWFA", "VWFA"]


def onehot(idx, L):
    p = np.zeros((len(idx), L))
    p[np.arange(len(idx)), idx] = 1
    return p


# --- the line --------------------------------------------------------------------------------------

def test_vertex_fit_is_ordinary_least_squares_with_a_known_answer():
    from scipy.stats import linregress

    # layer = 2 + 4 x exactly (9 layers, normalised by 8): slope 0.5, b0 0.25, b1 0.75
    x = np.array([0, 0, 0.25, 0.5, 0.5, 0.75, 1.0, 1.0])
    layers = (2 + 4 * x).astype(int)
    res = A.brain_network_alignment(onehot(layers, 9), position=x, n_boot=50)
    assert (res["slope"], res["b0"], res["b1"]) == pytest.approx((0.5, 0.25, 0.75))
    # noisy: against scipy's linregress and numpy's polyfit on the same points
    rng = np.random.default_rng(0)
    x = rng.choice(np.linspace(0, 1, 12), 200)
    layers = np.clip(np.round(11 * (0.2 + 0.6 * x) + rng.normal(0, 2, 200)), 0, 11).astype(int)
    res = A.brain_network_alignment(onehot(layers, 12), position=x, n_boot=200)
    lr = linregress(x, layers / 11)
    slope, b0 = np.polyfit(x, layers / 11, 1)
    assert res["slope"] == pytest.approx(lr.slope) == pytest.approx(slope)
    assert res["b0"] == pytest.approx(lr.intercept) and res["b1"] == pytest.approx(b0 + slope)
    assert res["slope_ci_low"] < res["slope"] < res["slope_ci_high"]
    assert res["n"] == 200 and res["layer"] == "argmax" and res["fit"] == "vertex"


def test_expected_layer_and_roi_mean_fit():
    p = np.array([[0.5, 0.5, 0, 0], [0, 0, 0.2, 0.8], [0.1, 0.9, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]])
    x = np.array([0, 1, 0, 1, 0.5])
    expected = p @ np.arange(4) / 3
    res = A.brain_network_alignment(p, position=x, layer="expected", n_boot=20)
    assert res["slope"] == pytest.approx(np.polyfit(x, expected, 1)[0])
    argmax = p.argmax(1) / 3  # first maximum on a tie: vertex 0 reads layer 0
    assert A.brain_network_alignment(p, position=x, n_boot=20)["slope"] == pytest.approx(np.polyfit(x, argmax, 1)[0])
    # the ROI fit: one point per group (its mean), every group weighted alike
    means = [argmax[x == g].mean() for g in (0, 0.5, 1)]
    roi = A.brain_network_alignment(p, position=x, fit="roi", n_boot=20)
    assert roi["slope"] == pytest.approx(np.polyfit([0, 0.5, 1], means, 1)[0]) and roi["n_groups"] == 3
    with pytest.raises(ValueError, match="two positions"):
        A.brain_network_alignment(p, position=np.array([0.5, 0.5, np.nan, 0.5, 0.5]))


def test_a_bootstrap_draw_is_the_fit_on_the_resampled_vertices():
    """Weighting each vertex by how often its block was drawn = fitting the duplicated vertices."""
    rng = np.random.default_rng(1)
    n, k = 60, 7
    x = rng.choice([0, 0.3, 0.6, 1.0], n)
    y = 0.1 + 0.7 * x + rng.normal(0, 0.1, n)
    group = (x * 10).astype(int)
    labels = rng.integers(0, k, n)
    counts = block_counts(k, 5, seed=3)
    for fit in ("vertex", "roi"):
        lines = AlignmentData(y, x, group, labels, k, fit).lines(counts)
        for d, c in enumerate(counts):
            take = np.concatenate([np.flatnonzero(labels == b) for b in range(k) for _ in range(c[b])])
            if fit == "vertex":
                expect = np.polyfit(x[take], y[take], 1)
            else:
                gs = np.unique(group[take])
                expect = np.polyfit([x[take][group[take] == g][0] for g in gs],
                                    [y[take][group[take] == g].mean() for g in gs], 1)
            assert lines["slope"][d] == pytest.approx(expect[0]) and lines["b0"][d] == pytest.approx(expect[1])


def test_interval_helpers_against_scipy():
    from scipy import stats

    v = np.array([0.2, 0.5, 0.1, 0.4])
    mean, lo, hi = t_interval(v)
    ref = stats.t.interval(0.95, 3, loc=v.mean(), scale=stats.sem(v))
    assert mean == pytest.approx(v.mean()) and (lo, hi) == pytest.approx(ref)
    assert np.isnan(t_interval([1.0])[1])
    counts = block_counts(9, 40, seed=2)
    assert counts.shape == (40, 9) and (counts.sum(1) == 9).all()
    chunked = np.concatenate(list(iter_block_counts(9, 40, seed=2, max_cells=20)))
    np.testing.assert_array_equal(chunked, counts)  # the same draws however they are chunked
    assert bootstrap_p(np.array([1.0, 2.0, 3.0, -1.0])) == pytest.approx(0.5)


# --- ROI schemes -----------------------------------------------------------------------------------

def test_the_paper_scheme_never_mixes_ranks_of_two_schemes():
    n = 6
    rois = {"prf-visualrois/hV4": np.eye(n, dtype=bool)[0],  # V4: 3 of 11 in the paper's order
            "streams/ventral": np.eye(n, dtype=bool)[1],  # late in the streams scheme only
            "streams/early": np.eye(n, dtype=bool)[2] | np.eye(n, dtype=bool)[3],
            "prf-visualrois/V1d": np.eye(n, dtype=bool)[3],  # V1 inside streams/early
            "Kastner2015/V1v": np.eye(n, dtype=bool)[4],  # a group atlas with the prf names
            "HCP_MMP1/V1": np.eye(n, dtype=bool)[5]}
    h = A.hierarchy_positions(rois, n, "paper")
    assert list(h["group"]) == ["V4", "", "", "V1", "", ""]
    np.testing.assert_allclose(h["position"], [3 / 11, np.nan, np.nan, 0, np.nan, np.nan])
    streams = A.hierarchy_positions(rois, n, "streams")
    assert list(streams["group"]) == ["", "ventral", "early", "early", "", ""]
    assert list(A.hierarchy_positions(rois, n, "kastner2015")["group"]) == ["", "", "", "", "V1", ""]
    assert list(A.hierarchy_positions(rois, n, "hcp_mmp1")["group"]) == ["", "", "", "", "", "V1"]
    # an unqualified name belongs to the one scheme member of that name, a qualified one never
    assert A.roi_position(np.array(["V1v", "hV4", "early"], dtype=object)).tolist()[:2] == [0, 3 / 11]
    assert np.isnan(A.roi_position(np.array(["Kastner2015/V1v"], dtype=object))[0])


def test_every_vertex_is_counted_once_and_overlaps_follow_the_rule():
    e = np.eye(7, dtype=bool)
    rois = {"prf-visualrois": e[0] | e[1] | e[2],  # an atlas's union: a whole-brain mask
            "nsdgeneral": np.ones(7, bool), "nsdgeneral/nsdgeneral": np.ones(7, bool),
            "prf-visualrois/V2v": e[0], "floc-faces/OFA": e[1] | e[2], "floc-words/OWFA": e[2],
            "floc-faces/FFA-2": e[3], "floc-words/VWFA-1": e[3], "floc-faces/mTL-faces": e[4],
            "streams/lateral": e[5]}
    for rule, groups in (("earliest", ["V2", "OFA", "OFA", "FFA", "", "", ""]),
                         ("latest", ["V2", "OFA", "OWFA", "VWFA", "", "", ""]),
                         ("exclude", ["V2", "OFA", "", "", "", "", ""])):
        h = A.hierarchy_positions(rois, 7, overlap=rule)
        assert list(h["group"]) == groups, rule
        c = h["counts"]
        assert c["ranked"] + c["excluded"] + c["unranked"] + c["no_roi"] == c["n"] == 7  # nobody lost
        assert c["unranked"] == 2 and c["no_roi"] == 1  # mTL-faces and a stream; vertex 6 in none
        assert c["overlaps" if rule != "exclude" else "excluded"] == 2
    with pytest.raises(ValueError, match="overlap must be"):
        A.hierarchy_positions(rois, 7, overlap="first")
    with pytest.raises(ValueError, match="unknown ROI scheme"):
        A.hierarchy_positions(rois, 7, "Paper")


def test_labelling_by_the_last_mask_was_the_bug():
    """The study once labelled a vertex by whichever mask came last: V1 became streams/early, an
    atlas's union overwrote everything (every position NaN on raw NSD)."""
    from factortopy.study.summary import roi_labels

    rois = {"prf-visualrois/V1v": np.array([1, 1, 0], bool), "streams/early": np.array([1, 1, 1], bool),
            "streams": np.ones(3, bool), "nsdgeneral": np.ones(3, bool)}
    assert list(roi_labels(rois, 3)) == ["V1", "V1", ""]
    assert list(roi_labels(rois, 3, scheme="streams")) == ["early", "early", "early"]
    # hand-made regions that do not overlap keep their own names
    assert list(roi_labels({"a": np.array([1, 0, 0], bool), "b": np.array([0, 1, 0], bool)}, 3)) == ["a", "b", ""]


def test_the_algonauts_release_classes_resolve_as_documented(subject_dir):
    """write_fake_algonauts's first columns carry the release's overlaps; read with the
    independent release reader, placed under the paper's scheme by hand, and by the library."""
    from factortopy.data.algonauts import load_algonauts
    from factortopy.datasets.fixtures import OVERLAP_COLUMNS

    ref = rr.read_algonauts(subject_dir)
    n_lh = len(ref["vertices"]["lh"])
    subject = load_algonauts(subject_dir)
    h = A.hierarchy_positions(subject.extra["rois"], subject.n_vertices)
    by_hand = []
    for j in range(subject.n_vertices):
        hemi, col = ("lh", j) if j < n_lh else ("rh", j - n_lh)
        names = [label.split("/", 1)[1] for label, m in ref["rois"].items() if m[hemi][col]]
        ranked = sorted((ORDER.index(PAPER[n]) for n in names if n in PAPER))
        by_hand.append(ORDER[ranked[0]] if ranked else "")
    assert list(h["group"]) == by_hand
    assert list(h["group"][:len(OVERLAP_COLUMNS)]) == ["V1", "V4", "OFA", "FFA", "", ""]
    assert h["counts"]["overlaps"] >= 3 and h["counts"]["no_roi"] >= 1 and h["counts"]["unranked"] >= 1
    assert sum(h["counts"][k] for k in ("ranked", "excluded", "unranked", "no_roi")) == subject.n_vertices


def test_nsd_atlases_whole_brain_masks_and_hcp(tmp_path):
    """Raw NSD: nsdgeneral and the atlas unions label nobody; prf/floc (per subject) rank under the
    paper's scheme, never Kastner2015's or HCP_MMP1's same-named regions, which have their own."""
    import warnings

    from factortopy.data import load_subject
    from factortopy.datasets.fixtures import write_fake_nsd

    truth = write_fake_nsd(str(tmp_path), n_sessions=3, trials_per_session=6, full_mesh=False,
                           lh_vertices=tuple(range(0, 400, 10)), rh_vertices=tuple(range(5, 400, 10)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        subject = load_subject(f"nsd:{tmp_path}?subject=1&sessions=3&trials_per_session=6"
                               "&roi_labels=nsdgeneral,streams,Kastner2015,HCP_MMP1,prf-visualrois,floc-faces")
    rois = subject.extra["rois"]
    assert {"nsdgeneral", "streams", "Kastner2015", "HCP_MMP1", "HCP_MMP1/V1"} <= set(rois)
    h = A.hierarchy_positions(rois, subject.n_vertices)
    on = truth["on_fsaverage"]
    for i, (hemi, v) in enumerate(zip(subject.hemi, subject.vertex)):
        prf, faces = on["prf-visualrois"][hemi][v], on["floc-faces"][hemi][v]
        prf_group = {1: "V1", 2: "V1", 3: "V2", 4: "V2", 5: "V3", 6: "V3", 7: "V4"}.get(int(prf), "")
        face_group = {1: "OFA", 2: "FFA", 3: "FFA"}.get(int(faces), "")
        assert h["group"][i] == (prf_group or face_group)  # pRF first (earlier in the order)
    hcp = A.hierarchy_positions(rois, subject.n_vertices, "hcp_mmp1")
    names = {1: "V1", 4: "V2", 5: "V3", 6: "V4"}  # HCP_MMP1's label values of V1-V4
    expect = [names.get(int(truth["HCP_MMP1"][hh][v]), "") for hh, v in zip(subject.hemi, subject.vertex)]
    assert list(hcp["group"]) == expect and hcp["counts"]["ranked"] > 0


def test_profiles_by_scheme_group():
    p = onehot(np.array([0, 0, 1, 2, 2]), 3)
    rois = {"prf-visualrois/V1v": np.array([1, 1, 0, 0, 0], bool), "streams/early": np.ones(5, bool),
            "floc-faces/FFA-1": np.array([0, 0, 0, 1, 1], bool)}
    rows = A.roi_layer_profiles(p, rois, scheme="paper")
    assert [r["roi"] for r in rows] == ORDER
    by = {r["roi"]: r for r in rows}
    assert by["V1"]["n"] == 2 and by["FFA"]["n"] == 2 and by["V2"]["n"] == 0
    assert by["FFA"]["expected_mean"] == pytest.approx(1.0)
