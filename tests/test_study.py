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

pytestmark = pytest.mark.filterwarnings("ignore:the (validation|held-out) set has only")

TINY_FIT = dict(epochs=2, batch_size=16, lr=3e-3, dim=8, hidden=16)


@pytest.fixture(scope="module")
def subject_dir(tmp_path_factory):
    """96 images, ~200 vertices with stream ROIs, planted through a random resnet18 at 64 px."""
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


def _independent_rho(run_dir, subject):
    """Spearman of expected layer vs stream rank (early 0 < midventral 1 < ventral 2), from the files."""
    from scipy.stats import spearmanr

    sel = np.load(os.path.join(run_dir, "selectors.npz"))
    p = sel["layer_probs"].astype(float)
    expected = p @ np.arange(p.shape[1]) / (p.shape[1] - 1)
    rank = np.full(subject.n_vertices, np.nan)
    for name, mask in subject.extra["rois"].items():
        rank[np.asarray(mask, bool)] = {"early": 0, "midventral": 1, "ventral": 2}[name.rsplit("/", 1)[-1]]
    assert np.array_equal(sel["vertex"], subject.vertex)  # same column order as the subject
    ok = np.isfinite(rank)
    return spearmanr(expected[ok], rank[ok])[0]


def test_summary_table_and_the_scaling_plot_points_equal_the_hierarchy_scores(study_dir, subject_dir):
    import timm

    from factortopy.data.algonauts import load_algonauts
    from factortopy.study import load_summary
    from factortopy.study.figures import scaling_figure

    out = study_dir["out"]
    table = load_summary(out)
    assert list(table["label"]) == ["planted resnet18", "random resnet18", "random resnet10t"]
    subject = load_algonauts(subject_dir)
    for _, row in table.iterrows():
        run_dir = os.path.join(out, row["run"])
        assert row["hierarchy_rho"] == pytest.approx(_independent_rho(run_dir, subject), abs=1e-9)
        assert row["hierarchy_ci_low"] <= row["hierarchy_rho"] <= row["hierarchy_ci_high"]
        metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
        assert row["heldout_r"] == pytest.approx(metrics["heldout_pearson_mean"])
        n_params = sum(p.numel() for p in timm.create_model(row["backbone"]).parameters())
        assert row["params"] == n_params
        assert {"layer:streams/early", "layer:streams/midventral", "layer:streams/ventral"} <= set(row.index)
    assert np.isnan(table["noise_normalised"]).all()  # the planted subject carries no noise ceiling
    assert list(table["method"]) == ["planted", "random init", "random init"]
    # the plot: every run one point, at (its parameter count, its hierarchy score)
    fig = scaling_figure(study_dir["resumed"]["summary"])
    points = {(x, y) for line in fig.axes[0].lines for x, y in zip(*line.get_data()) if line.get_marker() == "o"}
    expect = {(float(p), float(r)) for p, r in zip(table["params"], table["hierarchy_rho"])}
    assert {(float(x), float(y)) for x, y in points} == expect
    methods = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert methods == ["planted", "random init"]  # one line per training method


def test_figures_and_self_contained_page(study_dir):
    out = study_dir["out"]
    for name in ("maps_subj01.png", "scaling.png", "profiles.png", "pretraining.png"):
        assert os.path.getsize(os.path.join(out, "figures", name)) > 5000
    page = open(os.path.join(out, "index.html"), encoding="utf-8").read()
    assert page.count("data:image/png;base64,") == 4
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
