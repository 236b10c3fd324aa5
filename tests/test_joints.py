"""The joints between parts, end to end: what once went silently wrong where two parts meet."""
import os

import numpy as np
import pytest

from factortopy.data import load_subject
from factortopy.datasets.fixtures import write_fake_algonauts
from factortopy.features.cache import load_or_extract
from factortopy.backbones import load_backbone


def test_two_image_sets_in_same_named_folders_never_share_cached_features(tmp_path):
    """Reproduction: the Algonauts key hashed the folder's basename plus ids, so a second subj01 with
    other pixels but the same ids silently reused the first one's features."""
    a = write_fake_algonauts(str(tmp_path / "site_a"), "subj01", seed=0)
    b = write_fake_algonauts(str(tmp_path / "site_b"), "subj01", seed=0)  # same ids, same names
    b_images = os.path.join(b["path"], "training_split", "training_images")
    for name in sorted(os.listdir(b_images)):  # other pixels, same file names
        from PIL import Image

        path = os.path.join(b_images, name)
        with Image.open(path) as im:
            pixels = 255 - np.asarray(im.convert("RGB"))
        Image.fromarray(pixels).save(path)
    sa, sb = load_subject(f"algonauts:{a['path']}"), load_subject(f"algonauts:{b['path']}")
    assert os.path.basename(a["path"]) == os.path.basename(b["path"]) and (sa.image_ids == sb.image_ids).all()
    assert sa.image_key != sb.image_key
    bb = load_backbone("resnet18", random_init=True, layers=["layer1"], img_size=32)
    cache = str(tmp_path / "cache")
    fa = load_or_extract(bb, sa.images, cache, sa.image_key, grid=2, progress=False)
    fb = load_or_extract(bb, sb.images, cache, sb.image_key, grid=2, progress=False)
    assert not np.allclose(fa.tokens.float().numpy(), fb.tokens.float().numpy())
    direct = load_or_extract(bb, sb.images, str(tmp_path / "fresh"), sb.image_key, grid=2, progress=False)
    np.testing.assert_array_equal(fb.tokens.numpy(), direct.tokens.numpy())


def test_a_friendly_name_run_is_evaluated_with_the_backbone_it_was_fitted_with(tmp_path, monkeypatch):
    """Reproduction: a run fitted through a friendly name recorded the timm name without the registry
    entry's defaults, and evaluation rebuilt another backbone while the weights check passed."""
    from factortopy.datasets.planted import PLANTED_BACKBONE, make_planted_subject
    from factortopy.evaluation import evaluate_run
    from factortopy.fitting.fit import fit
    from factortopy.runs import open_run

    folder = str(tmp_path / "subj01")
    make_planted_subject(folder, n_images=60, pole_fraction=0.01, img_size=32, image_size=32, dim=4, progress=False)
    out = str(tmp_path / "run")
    result = fit(load_subject(f"algonauts:{folder}"), backbone="resnet-18", weights=os.path.join(folder, PLANTED_BACKBONE),
                 img_size=32, layers="layer1,layer2", out=out, data_spec=f"algonauts:{folder}", epochs=1, dim=4,
                 hidden=8, progress=False)
    recorded = open_run(out).config["backbone"]
    assert recorded["spec"]["name"] == "resnet-18" and recorded["input_size"] == [32, 32]
    rebuilt = open_run(out).backbone()
    assert rebuilt.spec.name == "resnet-18" and list(rebuilt.info.input_size) == [32, 32]
    monkeypatch.chdir(tmp_path.parent)  # evaluation needs nothing from the working directory
    res = evaluate_run(out, write=False)
    np.testing.assert_allclose(res["r"], result.heldout_r, atol=2e-3)


def test_a_new_selector_reaches_the_painter_through_a_real_run_dir(tmp_path, monkeypatch):
    """The rf-size map was tested on hand-built dicts while the run reader listed the keys it
    loaded by hand and left rf_size out: `paint --what rf-size` failed on every real run."""
    from factortopy.cli import main
    from factortopy.datasets.planted import PLANTED_BACKBONE, make_planted_subject
    from factortopy.fitting.fit import fit
    from factortopy.runs import open_run

    folder = str(tmp_path / "subj01")
    make_planted_subject(folder, n_images=60, pole_fraction=0.01, img_size=32, image_size=32, dim=4, progress=False)
    out = str(tmp_path / "run")
    fit(load_subject(f"algonauts:{folder}"), backbone="resnet18", weights=os.path.join(folder, PLANTED_BACKBONE),
        img_size=32, out=out, epochs=1, dim=4, hidden=8, receptive_field="gaussian", progress=False)
    maps = open_run(out).maps()
    assert maps["rf_size"].shape == (len(maps["vertex"]),) and (maps["rf_size"] > 0).all()
    png = tmp_path / "rf.png"
    assert main(["paint", out, "--what", "rf-size", "--out", str(png)]) == 0
    assert png.stat().st_size > 1000
    # one maps reader: typed (grid and title from the run, read without building the model) and a
    # dict; the channel clusters were computed once, when the run was written
    from factortopy.analysis.clusters import cluster_readouts
    from factortopy.viz.kinds import painting

    assert maps.grid == 8 and maps.kind == "factortopy" and maps.title == open_run(out).title
    assert "layer_probs" in maps and maps.get("nothing") is None and isinstance(maps, dict)
    np.testing.assert_array_equal(maps["channel_clusters"], cluster_readouts(maps["readout"]))

    def no_clustering(*a, **k):
        raise AssertionError("the stored clusters were not used")

    monkeypatch.setattr("factortopy.analysis.clusters.cluster_readouts", no_clustering)
    p = painting(maps, "channel")
    np.testing.assert_array_equal(p.info["labels"], maps["channel_clusters"])
    with pytest.raises(AssertionError, match="stored clusters"):  # another number of clusters: computed afresh
        painting(maps, "channel", n_clusters=5)
