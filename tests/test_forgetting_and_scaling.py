"""The fine-tuning study's forgetting (issue 17 part 4) and scaling on both axes (part 6), on planted
truths: a probe that a destroyed network fails and a lightly tuned one passes; map change read on
local vertices against a refit's noise floor; the relation across base networks; nested subsets of
the training images scored on the same held-out images; pretraining data sizes per friendly name.

One study (two bases, four fine-tuned versions, a probe set, two data-scaling subsets) is fitted
once for the module on a tiny planted subject; the rest are hand-built fixtures with known answers.
"""
import json
import math
import os
import warnings

import numpy as np
import pytest

from factortopy.datasets.planted import PLANTED_BACKBONE, make_planted_subject

pytestmark = pytest.mark.filterwarnings("ignore:the (validation|held-out) set has only")

TINY_FIT = dict(epochs=2, batch_size=16, lr=3e-3, dim=8, hidden=16)
SUBSETS = [20, 40]


# --- hand-built fixtures ---------------------------------------------------------------------------

def _maps(layer_probs, space_xy, scale, vertex=None, hemi=None):
    n = len(scale)
    return dict(vertex=np.arange(n) if vertex is None else vertex, hemi=np.array(["lh"] * n) if hemi is None else hemi,
                layer_probs=np.asarray(layer_probs, float), space_xy=np.asarray(space_xy, float),
                scale=np.asarray(scale, float), layer_names=["a", "b", "c"])


def test_map_change_counts_only_local_vertices():
    """Local vertices move by one layer step (0.5 of the depth) and 0.3 in x; global ones jump from
    the first to the last layer and across the image: only the local shift counts."""
    from factortopy.study.forgetting import local_vertices, map_change

    eye = np.eye(3)
    n = 8
    local = np.arange(n) < 5
    base = _maps(np.where(local[:, None], eye[0], eye[0]), np.zeros((n, 2)), np.where(local, 0.2, 0.9))
    moved_xy = np.where(local[:, None], [0.3, 0.0], [1.8, 1.8])
    other = _maps(np.where(local[:, None], eye[1], eye[2]), moved_xy, np.where(local, 0.1, 0.9))
    other["vertex"], other["hemi"] = other["vertex"][::-1], other["hemi"][::-1]  # another column order
    for k in ("layer_probs", "space_xy", "scale"):
        other[k] = other[k][::-1]
    mask = local_vertices(base, 0.5)
    assert mask.tolist() == local.tolist()
    rois = {"early": np.arange(n) < 3, "late": np.arange(n) >= 3}
    out = map_change(base, other, rois, vertices=mask)
    assert out["n_local"] == 5
    assert out["map_change"] == pytest.approx(0.5)  # local only; every vertex would give (5 * 0.5 + 3 * 1) / 8
    assert out["map_change_space"] == pytest.approx(0.3)
    assert out["map_change_scale"] == pytest.approx(5 * 0.1 / 8)  # the scale shift counts everywhere
    assert out["d_layer:early"] == pytest.approx(0.5) and out["d_layer:late"] == pytest.approx(0.5)
    every = map_change(base, other, rois)
    assert every["map_change"] == pytest.approx((5 * 0.5 + 3 * 1.0) / 8) and every["d_layer:late"] == pytest.approx(0.8)
    with pytest.warns(UserWarning, match="raise local_threshold"):
        none = local_vertices(base, 0.1)
    assert math.isnan(map_change(base, other, vertices=none)["map_change"])
    assert local_vertices({"vertex": np.arange(4)}, 0.5).all()  # no scale map: every vertex


def test_relation_across_networks_spearman_permutation_and_two_network_difference():
    from scipy.stats import pearsonr, spearmanr

    from factortopy.study.forgetting import relation

    x = np.array([0.1, 0.4, 0.2, 0.9, 0.6])
    y = np.array([0.5, 0.2, 0.4, 0.05, 0.1])  # planted: more aligned, less forgetting (monotone)
    rel = relation(x, y, n_boot=200)
    assert rel["relation_n"] == 5 and rel["relation_spearman"] == pytest.approx(-1.0)
    assert rel["relation_pearson"] == pytest.approx(pearsonr(x, y)[0])
    assert rel["relation_p"] == pytest.approx(2 / 120)  # exact: only the identity and its reverse reach |rho| = 1
    assert rel["relation_ci_low"] == pytest.approx(-1.0) and rel["relation_ci_high"] == pytest.approx(-1.0)
    noisy = np.array([0.3, 0.35, 0.1, 0.2, 0.25])
    rel2 = relation(x, noisy, n_boot=300)
    assert rel2["relation_spearman"] == pytest.approx(spearmanr(x, noisy)[0])
    assert rel2["relation_ci_low"] < rel2["relation_spearman"] < rel2["relation_ci_high"]
    assert 0.05 < rel2["relation_p"] <= 1
    # NaNs drop out; two networks: no rank correlation, the paired difference with its interval
    draws = np.stack([np.full(50, 0.3), np.linspace(0.0, 0.2, 50)], axis=1)
    two = relation([0.2, 0.8, math.nan], [0.3, 0.1, 0.5], y_draws=np.column_stack([draws, np.zeros(50)]))
    assert two["relation_n"] == 2 and math.isnan(two["relation_spearman"])
    assert two["relation_difference"] == pytest.approx(0.1 - 0.3)  # the more aligned one forgot 0.2 less
    assert two["relation_difference_ci_low"] == pytest.approx(np.percentile(draws[:, 1] - 0.3, 2.5))
    assert math.isnan(relation([0.5], [0.1])["relation_spearman"])


def test_probe_split_is_stratified_seeded_and_the_probes_read_planted_labels(tmp_path):
    from PIL import Image

    from factortopy.study.probe import chance_accuracy, check_disjoint, knn_probe, linear_probe, probe_set

    folder = tmp_path / "probe"
    rng = np.random.default_rng(0)
    for label, n in (("a", 7), ("b", 5)):
        os.makedirs(folder / label)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / label / f"{i}.png")
    ps = probe_set(str(folder), 0.5, seed=3)
    assert set(ps.train).isdisjoint(ps.test) and len(ps.train) + len(ps.test) == 12
    assert sorted(np.bincount(ps.labels[ps.test]).tolist()) == [2, 4]  # round(7/2) = 4, round(5/2) = 2
    again = probe_set(str(folder), 0.5, seed=3)
    assert np.array_equal(again.test, ps.test) and not np.array_equal(probe_set(str(folder), 0.5, seed=4).test, ps.test)
    assert chance_accuracy(ps) == pytest.approx(4 / 6)  # 'a' is the larger training class
    # planted: the label is the sign of feature 0; features 1..9 are noise
    x = rng.normal(size=(200, 10))
    y = (x[:, 0] > 0).astype(int)
    assert (linear_probe(x[:100], y[:100], x[100:]) == y[100:]).mean() > 0.9
    assert (knn_probe(x[:100, :1], y[:100], x[100:, :1], k=3) == y[100:]).mean() > 0.9
    const = np.zeros((200, 10))  # a destroyed network: every image alike
    assert (linear_probe(const[:100], y[:100], const[100:]) == y[100:]).mean() < 0.65
    # a probe image that is also a fine-tuning image is refused, by content
    tune = tmp_path / "tune"
    os.makedirs(tune / "x")
    os.makedirs(tune / "y")
    Image.open(folder / "a" / "0.png").save(tune / "x" / "copy.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tune / "y" / "other.png")
    with pytest.raises(ValueError, match="no fine-tuning saw"):
        check_disjoint(ps, [str(tune)])


def test_layer_drift_of_a_constant_layer_is_one():
    import torch

    from factortopy.features.extract import Features
    from factortopy.study.cka import layer_drift

    tokens = torch.randn(6, 2, 5, 4)
    dead = tokens.clone()
    dead[:, 1] = 0.0
    base, other = Features(tokens, ["a", "b"], [4, 4], 2), Features(dead, ["a", "b"], [4, 4], 2)
    with pytest.warns(UserWarning, match="layer b is constant"):
        drift = layer_drift(base, other)
    assert drift[0] == pytest.approx(0.0, abs=1e-6) and drift[1] == 1.0


def test_nested_train_subsets_nest_and_leave_validation_and_heldout_alone():
    from factortopy.data.split import nested_train_subset, split_indices

    parts = split_indices(300, 0.1, 0.1, seed=4)
    subsets = {n: nested_train_subset(parts["train"], n, seed=4) for n in (30, 100, 240)}
    assert set(subsets[30]) < set(subsets[100]) < set(subsets[240]) == set(parts["train"])
    assert all(len(s) == n and np.all(np.diff(s) > 0) for n, s in subsets.items())
    assert np.array_equal(nested_train_subset(parts["train"], 100, seed=4), subsets[100])  # seeded
    assert not np.array_equal(nested_train_subset(parts["train"], 100, seed=5), subsets[100])
    with pytest.raises(ValueError, match="more than the 240 training images"):
        nested_train_subset(parts["train"], 241, seed=4)
    from factortopy.fitting.fit import FitConfig

    with pytest.raises(ValueError, match="train_images"):
        FitConfig(train_images=0)


def test_pretraining_data_size_for_every_friendly_name():
    from factortopy.backbones import registry
    from factortopy.backbones.spec import as_spec
    from factortopy.study.scaling import pretraining_images

    entries = registry.entries()
    assert all(e.pretraining_images is None or isinstance(e.pretraining_images, int) and e.pretraining_images > 0
               for e in entries)
    size = {e.name: e.pretraining_images for e in entries}
    # the published sizes (the dataset papers), written out here rather than read from the registry
    assert size["clip-vit-b-16"] == 400_000_000 and size["laion-clip-vit-h-14"] == 2_320_000_000
    assert size["dinov2-vit-b-14"] == 142_000_000 and size["sam-vit-b"] == 11_000_000
    assert size["mae-vit-b-16"] == size["resnet-50"] == size["dino-vit-b-16"] == 1_281_167
    assert size["siglip-vit-b-16"] is None  # not stated: unknown, not guessed
    assert pretraining_images(as_spec("clip-vit-b-16")) == 400_000_000
    assert pretraining_images(as_spec(dict(name="clip-vit-b-16", random_init=True))) == 0
    assert pretraining_images(as_spec(dict(name="resnet-50", weights="/x/mine.pth"))) is None  # a local file: unknown
    assert pretraining_images(as_spec(dict(name="mocov3-vit-b", weights="/x/moco.pth"))) == 1_281_167
    assert pretraining_images(as_spec(dict(name="resnet18", weights="/x/w.pth")), given=5) == 5


def test_study_file_forms_of_the_fine_tuning_and_scaling_sections(tmp_path):
    from factortopy.study.config import load_study

    (tmp_path / "w.pt").write_bytes(b"x")
    os.makedirs(tmp_path / "labelled")
    os.makedirs(tmp_path / "probe")  # the folders a study file names must exist (checked at load, issue 22)
    base = {"subjects": [{"name": "s", "data": "algonauts:/nowhere/subj01"}],
            "backbones": [{"label": "A", "name": "resnet18", "random_init": True},
                          {"label": "B", "name": "resnet10t", "random_init": True, "pretraining_images": 1000}]}
    old = load_study({**base, "finetune": {"base": "A", "versions": [{"label": "v", "weights": "w.pt"}]}},
                     base_dir=str(tmp_path))  # the single-base form of before stays valid
    assert [b.label for b in old.backbones] == ["A", "B", "v"] and old.finetune.bases == ["A"]
    assert old.backbone("v").finetune_of == "A" and old.finetune.measure == "map_change_over_floor"
    assert old.backbone("B").pretraining_images == 1000 and old.backbone("A").pretraining_images == 0
    many = load_study({**base, "finetune": {"bases": ["A", "B"], "probe": "probe", "versions": [
        {"label": "light", "images": "labelled", "steps": 1}, {"label": "ckpt", "base": "B", "weights": "w.pt"}]},
        "scaling": {"train_images": [300, "all", 100]}}, base_dir=str(tmp_path))
    versions = [(b.label, b.finetune_of, b.recipe) for b in many.backbones if b.finetune_of]
    assert versions == [("A: light", "A", "light"), ("B: light", "B", "light"), ("ckpt", "B", "ckpt")]
    assert many.finetune.probe == str(tmp_path / "probe") and many.finetune.measure == "probe_drop"
    assert many.scaling.subsets == [100, 300] and many.backbone("B: light").pretraining_images == 1000
    bad = [({"bases": ["A", "B"], "versions": [{"weights": "w.pt"}]}, "belongs to one base"),
           ({"base": "A", "bases": ["A"], "versions": [{"weights": "w.pt"}]}, "not both"),
           ({"base": "Z", "versions": [{"weights": "w.pt"}]}, "not a backbone label"),
           ({"base": "A", "local_treshold": 0.3, "versions": [{"weights": "w.pt"}]}, "unknown key"),
           ({"base": "A", "forgetting": "knn_drop", "versions": [{"weights": "w.pt"}]}, "it needs a probe set")]
    for section, message in bad:
        with pytest.raises(ValueError, match=message):
            load_study({**base, "finetune": section}, base_dir=str(tmp_path))
    for section, message in (({"train_images": [0]}, "neither a whole number"), ({"train_images": [5, 5]}, "repeat"),
                             ({"train_images": [5], "backbones": ["Z"]}, "not a backbone label")):
        with pytest.raises(ValueError, match=message):
            load_study({**base, "scaling": section}, base_dir=str(tmp_path))


# --- one fine-tuning + scaling study on a planted subject ---------------------------------------------

def _save_images(folder, images, labels):
    from PIL import Image

    for i, (im, lab) in enumerate(zip(images, labels)):
        os.makedirs(os.path.join(folder, lab), exist_ok=True)
        Image.fromarray(im).save(os.path.join(folder, lab, f"{i:03d}.png"))
    return folder


def _planted_probe(folder, weights, n=64):
    """A probe set whose labels ARE an ability of the base network: the sign of the first principal
    component of its last-layer pooled features (computed here with timm, not with factortopy)."""
    import timm
    import torch
    from safetensors.torch import load_file

    from factortopy.datasets.photos import make_images

    images = make_images(n, size=64, seed=11)
    model = timm.create_model("resnet18", num_classes=0)
    model.load_state_dict({k: v for k, v in load_file(weights).items() if not k.startswith("fc.")}, strict=False)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        f = model.eval()(x).double().numpy()
    f -= f.mean(0)
    score = f @ np.linalg.svd(f, full_matrices=False)[2][0]
    return _save_images(folder, images, np.where(score > np.median(score), "up", "down"))


def _destroyed(weights, out):
    """The base's checkpoint with its last stage (layer4) zeroed: that layer computes nothing."""
    from safetensors.torch import load_file, save_file

    state = load_file(weights)
    save_file({k: (v * 0 if k.startswith("layer4.") else v).contiguous() for k, v in state.items()}, out)
    return out


@pytest.fixture(scope="module")
def ft_study(tmp_path_factory):
    import factortopy.study
    from factortopy.datasets.photos import make_images

    root = tmp_path_factory.mktemp("ftscale")
    subject = make_planted_subject(str(root / "subj01"), n_images=96, pole_fraction=0.01, img_size=64, image_size=64,
                                   dim=8, progress=False)
    weights = os.path.join(subject, PLANTED_BACKBONE)
    tune = make_images(24, size=64, seed=5)
    cut = np.median([im.mean() for im in tune])
    labelled = _save_images(str(root / "labelled"), tune, ["bright" if im.mean() > cut else "dark" for im in tune])
    study = {
        "study": {"n_boot": 200, "name": "forgetting and scaling"},
        "subjects": [{"name": "subj01", "data": f"algonauts:{subject}"}],
        "backbones": [
            {"label": "planted resnet18", "name": "resnet18", "weights": weights, "img_size": 64, "method": "planted"},
            {"label": "random resnet18", "name": "resnet18", "random_init": True, "seed": 1, "img_size": 64},
        ],
        "fit": TINY_FIT,
        "finetune": {
            "bases": ["planted resnet18", "random resnet18"], "probe": _planted_probe(str(root / "probe"), weights),
            "local_threshold": 1.0,  # (see scaling below)
            "versions": [
                {"label": "light", "images": labelled, "steps": 2, "lr": 1e-5, "batch_size": 8},
                {"label": "hard", "base": "planted resnet18", "images": labelled, "steps": 25, "lr": 1e-2,
                 "batch_size": 8},
                {"label": "destroyed", "base": "planted resnet18",
                 "weights": _destroyed(weights, str(root / "destroyed.safetensors"))},
            ]},
        # a 2-epoch fit leaves every scale selector near its initial 0.5: count every vertex here (the
        # local-only reading is checked on hand-built maps and below with a threshold inside the range)
        "scaling": {"train_images": SUBSETS + ["all"], "backbones": ["planted resnet18"], "local_threshold": 1.0},
    }
    out = str(root / "out")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = factortopy.study(study, out, progress=False)
    return dict(study=study, out=out, res=res, subject=subject, warnings=[str(w.message) for w in caught])


def test_a_destroyed_version_loses_the_probe_and_a_light_one_keeps_it(ft_study):
    rows = {r["label"]: r for r in ft_study["res"]["finetune"]}
    assert set(rows) == {"planted resnet18: light", "random resnet18: light", "hard", "destroyed"}
    light, destroyed = rows["planted resnet18: light"], rows["destroyed"]
    assert light["probe_layer"] == "layer4" and light["probe_n_test"] == 32
    assert light["base_probe_acc"] >= 0.8 and light["base_knn_acc"] >= 0.75  # the planted ability is there
    for kind in ("probe", "knn"):
        assert abs(light[f"{kind}_drop" if kind == "knn" else "probe_drop"]) <= 0.07
        assert destroyed[f"{kind}_acc"] <= destroyed["probe_chance"] + 0.15  # back to chance
    assert destroyed["probe_drop"] >= 0.25 and destroyed["probe_drop_ci_low"] > 0
    assert destroyed["knn_drop"] >= 0.2 and destroyed["knn_drop_ci_low"] > 0
    assert light["probe_drop_ci_low"] <= light["probe_drop"] <= light["probe_drop_ci_high"]
    assert destroyed["drift:layer4"] == 1.0  # the zeroed stage keeps none of the base's structure
    # fine-tuning harder moves features and the map further (issue 11's check, kept)
    hard = rows["hard"]
    assert hard["drift"] > light["drift"] and hard["drift:act1"] > light["drift:act1"]
    assert hard["map_change"] > light["map_change"]


def test_the_noise_floor_is_the_refits_map_change_on_local_vertices(ft_study):
    from factortopy.data.algonauts import load_algonauts
    from factortopy.study.config import load_study, pairs
    from factortopy.study.forgetting import finetune_table
    from factortopy.study.summary import load_summary

    out = ft_study["out"]
    record = json.load(open(os.path.join(out, "study.json")))
    refits = {a["label"]: a for a in record["auxiliary"] if a["fit"].get("seed") is not None}
    assert set(refits) == {"planted resnet18", "random resnet18"}
    assert all(a["fit"] == {"seed": 1} for a in refits.values())  # the study's seed 0, plus one
    base_run = os.path.join(out, [p for p in record["pairs"] if p["label"] == "planted resnet18"][0]["run_dir"])
    refit_run = os.path.join(out, refits["planted resnet18"]["run_dir"])
    assert json.load(open(os.path.join(refit_run, "config.json")))["fit"]["seed"] == 1

    def expected_layer(run):
        sel = np.load(os.path.join(run, "selectors.npz"))
        p = sel["layer_probs"].astype(float)
        return p @ np.arange(p.shape[1]) / (p.shape[1] - 1), sel["scale"].astype(float)

    (base_layer, base_scale), (refit_layer, _) = expected_layer(base_run), expected_layer(refit_run)
    shift = np.abs(refit_layer - base_layer)  # both runs in the subject's column order
    rows = [r for r in ft_study["res"]["finetune"] if r["base"] == "planted resnet18"]
    for r in rows:  # threshold 1: every vertex is local
        assert r["floor_map_change"] == pytest.approx(shift.mean(), abs=1e-6)
        assert r["n_local"] == len(shift) and r["refit_seed"] == 1
        assert r["map_change_over_floor"] == pytest.approx(r["map_change"] / r["floor_map_change"])
    # the same study read with a threshold inside the base's scale range: only those vertices count
    study = load_study(ft_study["study"])
    from factortopy.study.run import make_checkpoints

    make_checkpoints(study, out, progress=False)  # the checkpoints exist: this only points the specs at them
    threshold = float(np.median(base_scale))
    study.finetune.local_threshold = threshold
    summary = load_summary(out).to_dict("records")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = finetune_table(study, pairs(study, out), summary, str(out))
    local = base_scale <= threshold
    assert 0 < local.sum() < len(local)
    for r in (r for r in again if r["base"] == "planted resnet18"):
        assert r["n_local"] == local.sum() and r["local_threshold"] == threshold
        assert r["floor_map_change"] == pytest.approx(shift[local].mean(), abs=1e-6)
    assert load_algonauts(ft_study["subject"]).n_vertices == len(shift)


def test_relation_across_bases_in_the_table_the_csv_and_the_page(ft_study):
    from factortopy.study.summary import read_csv

    out, rows = ft_study["out"], ft_study["res"]["finetune"]
    light = [r for r in rows if r["recipe"] == "light"]
    assert {r["base"] for r in light} == {"planted resnet18", "random resnet18"}
    for r in light:  # two bases: the paired statement, not a rank correlation
        assert r["relation_n"] == 2 and math.isnan(r["relation_spearman"])
        assert r["relation_forgetting"] == "probe_drop" and r["relation_alignment"] == "alignment_slope"
        by_base = {x["base"]: x for x in light}
        more = max(by_base.values(), key=lambda x: x["base_alignment"])
        less = min(by_base.values(), key=lambda x: x["base_alignment"])
        assert r["relation_difference"] == pytest.approx(more["probe_drop"] - less["probe_drop"])
        assert r["relation_difference_ci_low"] <= r["relation_difference"] <= r["relation_difference_ci_high"]
    summary = {r["label"]: r for r in ft_study["res"]["summary"]}
    assert all(r["base_alignment"] == summary[r["base"]]["alignment_slope"] for r in rows)  # the paper's measure
    assert not any("no column 'alignment_slope'" in w for w in ft_study["warnings"])  # no fallback needed
    table = read_csv(os.path.join(out, "finetune.csv"))
    assert list(table["label"]) == [r["label"] for r in rows]
    assert table["probe_drop"].tolist() == pytest.approx([r["probe_drop"] for r in rows])
    page = open(os.path.join(out, "index.html"), encoding="utf-8").read()
    assert "Alignment and forgetting across base networks" in page and "relation_difference" in page
    assert "Scaling: fMRI training images" in page
    for name in ("forgetting.png", "data_scaling.png", "pretraining.png", "finetune.png"):
        assert os.path.getsize(os.path.join(out, "figures", name)) > 3000


def test_nested_subsets_score_on_identical_heldout_images_and_scaling_csv(ft_study):
    from factortopy.study.summary import read_csv

    out = ft_study["out"]
    table = read_csv(os.path.join(out, "scaling.csv")).to_dict("records")
    assert [r["train_images"] for r in table] == [str(n) for n in SUBSETS] + ["all"]
    configs = [json.load(open(os.path.join(out, r["run"], "config.json"))) for r in table]
    assert len({r["run"] for r in table}) == 3  # one RUN_DIR per subset
    main = [r for r in ft_study["res"]["summary"] if r["label"] == "planted resnet18"][0]
    assert table[-1]["run"] == main["run"] and table[-1]["map_change_vs_all"] == 0
    held = [c["split"]["heldout_image_ids"] for c in configs]
    assert held[0] == held[1] == held[2] and len(held[0]) > 0
    assert configs[0]["split"]["val_image_ids"] == configs[2]["split"]["val_image_ids"]
    train = [set(c["split"].get("train_image_ids", [])) for c in configs[:2]]
    from factortopy.data.algonauts import load_algonauts

    ids = load_algonauts(ft_study["subject"]).image_ids.tolist()  # the release's image ids
    all_train = set(ids) - set(held[0]) - set(configs[2]["split"]["val_image_ids"])
    assert train[0] < train[1] < all_train and [len(t) for t in train] == SUBSETS  # nested
    assert [r["n_train"] for r in table] == SUBSETS + [len(all_train)]
    for r, c in zip(table, configs):
        assert r["heldout_r"] == pytest.approx(json.load(open(os.path.join(out, r["run"], "metrics.json")))
                                               ["heldout_pearson_mean"])
        assert c["fit"]["train_images"] == (None if r["train_images"] == "all" else int(r["train_images"]))
    assert table[0]["map_change_vs_all"] > 0 and table[-1]["heldout_r_fraction_of_all"] == pytest.approx(1.0)
    # the pretraining axis: recorded beside the parameter count (a local weights file on a timm name:
    # unknown; random init: none)
    summary = read_csv(os.path.join(out, "summary.csv")).to_dict("records")
    by_label = {r["label"]: r for r in summary}
    assert math.isnan(by_label["planted resnet18"]["pretraining_images"])
    assert by_label["random resnet18"]["pretraining_images"] == 0
    assert list(summary[0]).index("pretraining_images") == list(summary[0]).index("params") + 1


def test_the_study_run_again_fits_nothing(ft_study):
    import factortopy.study

    again = factortopy.study(ft_study["study"], ft_study["out"], progress=False, figures=False)
    assert again["fitted"] == 0
    assert [r["probe_drop"] for r in again["finetune"]] == [r["probe_drop"] for r in ft_study["res"]["finetune"]]


def test_a_fine_tuned_checkpoint_of_a_base_loaded_by_position_builds(tmp_path):
    """A base whose weights file needs remap = 'position' (another library's key names): its
    fine-tuned checkpoint holds the network's own names, sorted by safetensors, so it must load by
    name (found when EfficientNet-Lite0 was fine-tuned in the docs' study)."""
    import torch
    from PIL import Image
    from safetensors.torch import load_file, save_file

    from factortopy.datasets.photos import make_images
    from factortopy.study.config import load_study
    from factortopy.study.run import make_checkpoints

    model = __import__("timm").create_model("resnet18")
    own = [v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    renamed = {f"t{i:04d}": v for i, v in enumerate(own)}  # another library's names, in the model's order
    save_file({k: v.contiguous() for k, v in renamed.items()}, str(tmp_path / "other_names.safetensors"))
    for i, im in enumerate(make_images(8, size=32, seed=2)):
        os.makedirs(tmp_path / "tune" / "ab"[i % 2], exist_ok=True)
        Image.fromarray(im).save(tmp_path / "tune" / "ab"[i % 2] / f"{i}.png")
    study = load_study({"subjects": [{"name": "s", "data": "algonauts:/nowhere/subj01"}],
                        "backbones": [{"label": "A", "name": "resnet18", "weights": "other_names.safetensors",
                                       "remap": "position", "img_size": 32}],
                        "finetune": {"base": "A", "versions": [{"label": "v", "images": "tune", "steps": 1,
                                                                "batch_size": 4}]}}, base_dir=str(tmp_path))
    make_checkpoints(study, str(tmp_path / "out"), progress=False)
    version = study.backbone("v")
    built = version.spec.build().model.state_dict()
    saved = load_file(version.spec.weights)
    assert version.spec.remap == "auto" and all(torch.equal(built[k], saved[k]) for k in saved)
