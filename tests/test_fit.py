"""fit(): the run directory, resuming, determinism, the CLI and its errors, on tiny planted subjects."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from factortopy.cli import main
from factortopy.data.algonauts import load_algonauts
from factortopy.datasets.planted import PLANTED_BACKBONE, make_planted_subject
from factortopy.fitting.fit import FitConfig, fit
from factortopy.fitting.run import load_run
from factortopy.fitting.schedule import regularizer_weight
from factortopy.data.split import train_val_split

TINY_FIT = dict(epochs=3, batch_size=16, lr=3e-3, dim=8, hidden=16, patience=None)


@pytest.fixture(scope="module")
def tiny_subject(tmp_path_factory):
    """96 images, ~200 vertices, a random resnet18 at 64 px: fast mechanics, not recovery."""
    folder = str(tmp_path_factory.mktemp("planted") / "subj01")
    make_planted_subject(folder, n_images=96, pole_fraction=0.01, img_size=64, image_size=64, dim=8,
                         progress=False)
    return folder


def _fit(folder, **kw):
    subject = load_algonauts(folder)
    return fit(subject, backbone="resnet18", img_size=64, weights=os.path.join(folder, PLANTED_BACKBONE),
               progress=False, **{**TINY_FIT, **kw})


def test_run_dir_contents_and_reload(tiny_subject, tmp_path):
    out = str(tmp_path / "run")
    res = _fit(tiny_subject, out=out)
    for name in ("model.safetensors", "config.json", "selectors.npz", "scores.npz", "metrics.json",
                 "train_log.jsonl", "response_stats.npz"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert not os.path.exists(os.path.join(out, "checkpoint.pt"))
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert {"heldout_pearson_mean", "val_pearson_mean", "n_train", "n_val", "epochs", "seconds"} <= set(metrics)
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_heldout"] == 96 and metrics["epochs"] == 3
    # three disjoint roles: the held-out images chose nothing (not the epoch, not the weights)
    roles = [set(res.train_index.tolist()), set(res.val_index.tolist()), set(res.heldout_index.tolist())]
    assert all(not (a & b) for i, a in enumerate(roles) for b in roles[i + 1:]) and all(roles)
    config = json.load(open(os.path.join(out, "config.json")))
    ids = load_algonauts(tiny_subject).image_ids
    assert config["split"]["heldout_image_ids"] == ids[res.heldout_index].tolist()
    sel = np.load(os.path.join(out, "selectors.npz"))
    subject = load_algonauts(tiny_subject)
    n = subject.n_vertices
    assert sel["layer_probs"].shape == (n, 5) and sel["space_xy"].shape == (n, 2) and sel["scale"].shape == (n,)
    np.testing.assert_array_equal(sel["vertex"], subject.vertex)
    assert list(sel["hemi"][:1]) == ["lh"] and sel["hemi"][-1] == "rh"
    assert list(sel["layer_names"]) == ["act1", "layer1", "layer2", "layer3", "layer4"]
    np.testing.assert_allclose(sel["layer_probs"].sum(1), 1, atol=1e-5)
    # The reloaded model reproduces the saved selectors and the validation scores.
    run = load_run(out)
    with torch.no_grad():
        np.testing.assert_allclose(run.model.selectors().space.numpy(), sel["space_xy"], atol=1e-6)
    from factortopy.evaluation.metrics import pearson_r
    pred = run.predict_subject(subject, image_index=res.heldout_index)
    r = pearson_r(pred, subject.responses[res.heldout_index])
    np.testing.assert_allclose(r, np.load(os.path.join(out, "scores.npz"))["r"], atol=2e-3)


def test_same_seed_same_result_and_the_seed_matters(tiny_subject):
    a = _fit(tiny_subject, epochs=1)
    b = _fit(tiny_subject, epochs=1)
    c = _fit(tiny_subject, epochs=1, seed=1)
    np.testing.assert_array_equal(a.selectors["layer_probs"], b.selectors["layer_probs"])
    assert not np.array_equal(a.val_index, c.val_index)


def test_interrupted_fit_resumes_to_the_same_result(tiny_subject, tmp_path, monkeypatch):
    full = _fit(tiny_subject, out=str(tmp_path / "full"))
    out = str(tmp_path / "interrupted")
    calls = {"n": 0}
    real_step = torch.optim.AdamW.step

    def step_then_interrupt(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 8:  # inside the second epoch (5 steps per epoch)
            raise KeyboardInterrupt
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", step_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _fit(tiny_subject, out=out)
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    assert os.path.isfile(os.path.join(out, "checkpoint.pt"))
    resumed = _fit(tiny_subject, out=out, eval_batch_size=7)  # how work is chunked is not a setting that blocks a resume
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    np.testing.assert_allclose(resumed.selectors["layer_probs"], full.selectors["layer_probs"], atol=1e-6)
    np.testing.assert_allclose(resumed.val_r, full.val_r, atol=1e-6)


def test_fit_command_end_to_end_and_errors(tiny_subject, tmp_path, capsys):
    out = str(tmp_path / "cli_run")
    weights = os.path.join(tiny_subject, PLANTED_BACKBONE)
    args = ["fit", "--data", f"algonauts:{tiny_subject}", "--backbone", "resnet18", "--img-size", "64",
            "--weights", weights, "--epochs", "1", "--batch-size", "32", "--dim", "8", "--quiet", "--out", out]
    assert main(args) == 0
    assert json.load(open(os.path.join(out, "config.json")))["data"] == f"algonauts:{tiny_subject}"
    # Unknown layer: the message lists the valid ones.
    assert main(args[:-2] + ["--layers", "layer9", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "layer9" in err and "layer4" in err and "act1" in err
    assert not os.path.exists(tmp_path / "x")  # a fit that failed before training leaves nothing behind
    # Unknown model name.
    bad = args[:-2] + ["--out", str(tmp_path / "z")]
    bad[bad.index("resnet18")] = "resnet_does_not_exist"
    assert main(bad) == 2
    assert "unknown" in capsys.readouterr().err
    # Missing subject folder.
    assert main(["fit", "--data", f"algonauts:{tmp_path}/nope", "--backbone", "resnet18", "--random-init",
                 "--out", str(tmp_path / "y")]) == 2
    assert "not found" in capsys.readouterr().err
    # --backbone has no default: a fit never silently picks a network.
    with pytest.raises(SystemExit):
        main(["fit", "--data", f"algonauts:{tiny_subject}", "--out", str(tmp_path / "w")])
    assert "--backbone" in capsys.readouterr().err


def test_a_finished_run_is_never_overwritten_silently(tiny_subject, tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["fit", "--data", f"algonauts:{tiny_subject}", "--backbone", "resnet18", "--img-size", "64",
            "--weights", os.path.join(tiny_subject, PLANTED_BACKBONE), "--epochs", "1", "--batch-size", "32",
            "--dim", "8", "--quiet", "--out", out]
    assert main(args) == 0
    with open(os.path.join(out, "eval_val.json"), "w") as f:
        f.write("{}")  # an evaluation of the old model
    before = open(os.path.join(out, "config.json")).read()
    assert main(args + ["--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert "already holds a finished run" in err and "--overwrite" in err
    assert open(os.path.join(out, "config.json")).read() == before
    assert main(args + ["--seed", "3", "--overwrite"]) == 0
    assert json.load(open(os.path.join(out, "config.json")))["fit"]["seed"] == 3
    assert not os.path.exists(os.path.join(out, "eval_val.json"))  # it described the old model
    # A folder of the user's own files is refused whatever the flags.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(args[:-1] + [str(mine), "--overwrite"]) == 2
    assert "other files" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep me"


def test_nan_responses_and_column_mismatch_are_clear_errors(tiny_subject, tmp_path):
    import shutil

    bad = str(tmp_path / "subj_nan")
    shutil.copytree(tiny_subject, bad)
    path = os.path.join(bad, "training_split", "training_fmri", "lh_training_fmri.npy")
    data = np.load(path)
    data[3, 7] = np.nan
    np.save(path, data)
    with pytest.raises(ValueError, match="NaN"):
        load_algonauts(bad)
    np.save(path, data[:, :-1])
    with pytest.raises(ValueError, match="columns"):
        load_algonauts(bad)


def test_regularizer_fade_schedules():
    assert regularizer_weight(0, 1000) == pytest.approx(0.1)
    assert regularizer_weight(150, 1000, fade_value=0.3) == pytest.approx(0.05)
    assert regularizer_weight(300, 1000, fade_value=0.3) == 0.0
    # The reference: a fixed 2,000 steps, whatever the run length.
    assert regularizer_weight(1000, 700, fade="steps", fade_value=2000) == pytest.approx(0.05)
    assert FitConfig.reference().reg_fade == "steps" and FitConfig.reference().batch_size == 8
    with pytest.raises(ValueError, match="fade"):
        regularizer_weight(0, 10, fade="linear")


def test_split_is_seeded_disjoint_and_complete():
    tr, va = train_val_split(100, 0.2, seed=3)
    tr2, va2 = train_val_split(100, 0.2, seed=3)
    np.testing.assert_array_equal(va, va2)
    assert len(va) == 20 and len(set(tr) | set(va)) == 100 and not set(tr) & set(va)
    assert not np.array_equal(va, train_val_split(100, 0.2, seed=4)[1])


def test_import_and_help_stay_light():
    code = ("import sys, factortopy, factortopy.cli; factortopy.cli.build_parser(); "
            "print(','.join(m for m in ('torch', 'timm', 'nilearn', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_auto_batch_size_follows_memory():
    from factortopy.fitting.memory import auto_batch_size, fixed_step_bytes, step_bytes_per_image

    kw = dict(n_vertices=37984, n_layers=12, grid=8, dim=128, c_max=768, n_train=9000)
    per_image = step_bytes_per_image(37984, 12, 8, 128, 768)
    fixed = fixed_step_bytes(37984, 12, 8)
    # Exactly room for 100 images in half of the free memory -> 64 (the power of two below).
    assert auto_batch_size(free_bytes=2 * (fixed + 100 * per_image), **kw) == 64
    assert auto_batch_size(free_bytes=2 * (fixed + 3 * per_image), **kw) == 2
    assert auto_batch_size(free_bytes=10**15, **kw) == 512  # capped
    assert auto_batch_size(free_bytes=10**15, **{**kw, "n_train": 40}) == 32  # not more than the data
    assert auto_batch_size(free_bytes=1, **kw) == 1


def test_fit_accepts_auto_batch_size_on_cpu(tiny_subject):
    res = _fit(tiny_subject, epochs=1, batch_size="auto")
    assert res.config["fit"]["batch_size"] == "auto"  # the setting, in the resume key
    assert res.metrics["batch_size"] == 32  # what it resolved to: the CPU default


def test_random_init_backbone_is_rebuilt_identically_or_refused(tiny_subject, tmp_path):
    """A run fitted on a random-initialised backbone is evaluated with exactly those weights."""
    subject = load_algonauts(tiny_subject)
    out = str(tmp_path / "random_run")
    fit(subject, backbone="resnet18", random_init=True, img_size=64, out=out, progress=False,
        **{**TINY_FIT, "epochs": 1, "seed": 5})
    run = load_run(out)
    torch.manual_seed(123)  # whatever ran before, the rebuild is seeded by the spec
    rebuilt = run.backbone()
    assert run.config["backbone"]["weights"].startswith("params:")
    assert run.config["backbone"]["label"] == "resnet18 (random init)"
    # Tampered record: the rebuilt weights no longer match and the rebuild is refused.
    run.config["backbone"]["spec"]["seed"] = 6
    with pytest.raises(ValueError, match="not the one .* was fitted with: weights"):
        run.backbone()
    assert rebuilt.info.layer_names == ["act1", "layer1", "layer2", "layer3", "layer4"]


def test_features_beyond_float16_are_refused():
    from factortopy.features.extract import to_storage

    ok = torch.tensor([1.0, -60000.0])
    assert to_storage(ok).dtype == torch.float16
    with pytest.raises(ValueError, match="range of torch.float16"):
        to_storage(torch.tensor([1.0, 1e6]))


def test_fit_leaves_the_callers_global_random_state_alone(tiny_subject):
    """fit() used to seed numpy's and torch's global generators behind the caller's back."""
    torch.manual_seed(11)
    np.random.seed(11)
    torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()
    _fit(tiny_subject, epochs=1)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
