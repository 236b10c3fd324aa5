"""factortopy.predict and `factortopy predict`: a saved run's responses to the user's own images."""
import os
import warnings

import numpy as np
import pytest
from PIL import Image

import factortopy
from factortopy.cli import main
from factortopy.data.algonauts import load_algonauts
from factortopy.datasets.planted import PLANTED_BACKBONE, make_planted_subject
from factortopy.runs import open_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pred")
    folder = str(root / "subj01")
    make_planted_subject(folder, n_images=48, pole_fraction=0.01, img_size=64, image_size=64, dim=8, progress=False)
    out = str(root / "run")
    factortopy.fit(load_algonauts(folder), backbone="resnet18", img_size=64,
                   weights=os.path.join(folder, PLANTED_BACKBONE), epochs=1, dim=8, batch_size=16, progress=False,
                   out=out)
    return out


def _pictures(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 50, 70, 3), dtype=np.uint8)


def test_read_only_arrays_give_the_numbers_of_a_writable_copy_without_warnings(run_dir, tmp_path):
    imgs = _pictures()
    ro = imgs.copy()
    ro.setflags(write=False)
    mixed = [ro[0], ro[1, :40, :33]]  # different sizes: each image goes through on its own
    for arr in mixed:
        assert not arr.flags.writeable
    files = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]  # Pillow hands out read-only buffers
    Image.fromarray(imgs[0]).save(files[0])
    Image.fromarray(imgs[1, :40, :33]).save(files[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's "The given NumPy array is not writable"
        got = factortopy.predict(run_dir, ro)
        got_mixed = factortopy.predict(run_dir, mixed)
        got_files = factortopy.predict(run_dir, files)
        got_pil = factortopy.predict(run_dir, [Image.open(f) for f in files])
    # torch warns only once per process, so check the cause as well: every image handed on is writable
    from factortopy.data.images import UserImages

    for seq in (ro, mixed, files, [Image.open(f) for f in files]):
        assert all(UserImages(seq)[i].flags.writeable for i in range(len(seq)))
    np.testing.assert_array_equal(got_files, got_mixed)
    np.testing.assert_array_equal(got_pil, got_mixed)
    np.testing.assert_array_equal(got, factortopy.predict(run_dir, imgs.copy()))
    np.testing.assert_array_equal(got_mixed, factortopy.predict(run_dir, [imgs[0].copy(), imgs[1, :40, :33].copy()]))
    assert got.shape == (3, len(open_run(run_dir).vertex)) and got.dtype == np.float32


def test_files_pil_images_and_arrays_of_the_same_pixels_predict_the_same(run_dir, tmp_path):
    run = open_run(run_dir)
    rgb = _pictures(1)[0]
    grey = _pictures(1, seed=1)[0][..., 0]
    alpha = np.dstack([rgb, np.full(rgb.shape[:2], 77, np.uint8)])
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(grey).save(tmp_path / "grey.png")  # mode L
    Image.fromarray(alpha).save(tmp_path / "rgba.png")  # mode RGBA: alpha is dropped, as Pillow's convert
    reference = run.predict([rgb, np.repeat(grey[..., None], 3, 2), rgb])  # what the run does, given RGB uint8
    cases = {
        "files": [tmp_path / "rgb.png", str(tmp_path / "grey.png"), str(tmp_path / "rgba.png")],
        "arrays": [rgb, grey, alpha],
        "pil": [Image.open(tmp_path / "rgb.png"), Image.open(tmp_path / "grey.png"), Image.open(tmp_path / "rgba.png")],
        "floats in [0, 1]": [rgb / 255.0, (grey / 255.0).astype(np.float32), alpha / 255.0],
        "single channel": [rgb, grey[..., None], rgb],
    }
    for name, images in cases.items():
        np.testing.assert_allclose(factortopy.predict(run, images), reference, atol=1e-6, err_msg=name)


def test_a_batch_of_mixed_sizes_equals_each_image_alone(run_dir):
    imgs = [_pictures(1, s)[0][: 30 + 10 * s, : 90 - 15 * s] for s in range(3)]
    together = factortopy.predict(run_dir, imgs, batch_size=3)
    alone = np.concatenate([factortopy.predict(run_dir, [im]) for im in imgs])
    # equal up to float32 rounding: a batch of 3 and of 1 run different GEMM orders, and the readout
    # refitted in closed form has weights of a few units (a 1e-6 bound was met by chance before)
    scale = float(np.abs(alone).max())
    np.testing.assert_allclose(together, alone, rtol=0, atol=2e-5 * max(scale, 1.0))


def test_a_ridge_run_predicts_new_images_too(run_dir, tmp_path):
    from factortopy.baselines.run import fit_ridge_baseline

    folder = os.path.join(os.path.dirname(run_dir), "subj01")
    out = str(tmp_path / "ridge")
    fit_ridge_baseline(load_algonauts(folder), "resnet18", img_size=64, weights=os.path.join(folder, PLANTED_BACKBONE),
                       cv=2, out=out)
    imgs = _pictures(2)
    np.testing.assert_allclose(factortopy.predict(out, list(imgs)), open_run(out).predict(imgs), atol=1e-6)


def test_bad_images_are_clear_errors(run_dir, tmp_path):
    img = _pictures(1)[0]
    cases = [
        (img, "reads as one \\(H, W, C\\) image"),
        ([img / 255.0 * 2], "values in \\[0, 1\\]"),
        ([img.astype(np.uint16)], "uint8 \\(0..255\\) or float"),
        ([np.zeros((4, 5, 6, 3), np.uint8)], "must be \\(H, W\\)"),
        ([str(tmp_path / "missing.png")], "missing.png not found"),
        ([], "empty"),
    ]
    for images, message in cases:
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            factortopy.predict(run_dir, images)


def test_predict_command_writes_npy_and_npz(run_dir, tmp_path, capsys):
    folder = tmp_path / "pics"
    folder.mkdir()
    imgs = _pictures(3)
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    extra = tmp_path / "extra.png"
    Image.fromarray(_pictures(1, seed=5)[0]).save(extra)
    expected = factortopy.predict(run_dir, [*imgs, _pictures(1, seed=5)[0]])

    out = tmp_path / "pred.npz"
    assert main(["predict", run_dir, str(folder), str(extra), "--out", str(out), "--quiet"]) == 0
    with np.load(out) as z:
        np.testing.assert_allclose(z["predictions"], expected, atol=1e-6)
        run = open_run(run_dir)
        np.testing.assert_array_equal(z["vertex"], run.vertex)
        np.testing.assert_array_equal(z["hemi"], run.hemi)
        assert [os.path.basename(p) for p in z["images"]] == ["0.png", "1.png", "2.png", "extra.png"]
    npy = tmp_path / "pred.npy"
    assert main(["predict", run_dir, str(extra), "--out", str(npy), "--quiet"]) == 0
    np.testing.assert_allclose(np.load(npy), expected[3:], atol=1e-6)
    capsys.readouterr()

    assert main(["predict", run_dir, str(extra), "--out", str(npy), "--quiet"]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert main(["predict", run_dir, str(extra), "--out", str(tmp_path / "p.csv")]) == 2
    assert ".npy or .npz" in capsys.readouterr().err
    assert main(["predict", run_dir, str(tmp_path / "nope.png"), "--out", str(tmp_path / "q.npy")]) == 2
    assert "nope.png not found" in capsys.readouterr().err
    assert not (tmp_path / "q.npy").exists()


def test_predict_on_a_file_that_is_not_an_image_is_one_line(run_dir, tmp_path, capsys):
    """Reproduction: a text file named .png gave a 49-line PIL.UnidentifiedImageError traceback."""
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    assert main(["predict", run_dir, str(fake), "--out", str(tmp_path / "p.npy"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(fake) in err and "not an image file" in err, err
    assert not (tmp_path / "p.npy").exists()
