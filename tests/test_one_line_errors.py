"""Every failure of the disk, the files or the data is one line (issue 22; docs/reliability.md,
"The command line"). Each test reproduces a failure that ended in a Python traceback, a misleading
message or a silently wrong result, and checks: exit code 2, one line naming the file or option
and what to do, no traceback, and nothing half-written left behind (except what a rerun resumes
from). Read-only places are real ones (the ``read_only`` fixture: modes, and as root no
CAP_DAC_OVERRIDE); full disks are simulated where the write happens (an ENOSPC from it)."""
import errno
import io
import json
import os
import shutil
import struct
import sys
import zlib

import numpy as np
import pytest

from factortopy.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:the (validation|held-out|test) set has only")

FIT = dict(backbone="resnet18", random_init=True, img_size=32, layers=["layer1", "layer2"], epochs=2, batch_size=8,
           dim=4, hidden=8, patience=None, val_fraction=0.2, heldout_fraction=0.2, progress=False)
FIT_ARGS = ["--backbone", "resnet18", "--random-init", "--img-size", "32", "--layers", "layer1,layer2", "--epochs",
            "1", "--dim", "4", "--val-fraction", "0.2", "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def run_dir(subject_dir, tmp_path_factory):
    from factortopy import fit
    from factortopy.data import load_subject

    out = str(tmp_path_factory.mktemp("runs") / "run")
    fit(load_subject(f"algonauts:{subject_dir}"), out=out, **FIT)
    return out


def _one_line(capsys, *needles) -> str:
    """The command's error: exactly one line (besides progress notes and one-line warnings), no
    traceback, holding every needle."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [l for l in err.splitlines() if not l.startswith(("note:", "warning:"))]
    assert len(lines) == 1 and lines[0].startswith("factortopy ") and ": error: " in lines[0], err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _copy_subject(subject_dir, tmp_path) -> str:
    dst = str(tmp_path / "subj01")
    shutil.copytree(subject_dir, dst)
    return dst


def _train_image(subject) -> str:
    folder = os.path.join(subject, "training_split", "training_images")
    return os.path.join(folder, sorted(os.listdir(folder))[4])


# ---- the error path itself ---------------------------------------------------------------------------
def test_errors_are_one_line_and_debug_shows_the_traceback(run_dir, subject_dir, tmp_path, capsys, monkeypatch):
    """Reproduction: an OSError other than FileNotFoundError (here an --out inside a file, found
    after every prediction was made) ended in a traceback, and a traceback could not be asked for."""
    (tmp_path / "a_file").write_text("mine")
    args = ["predict", run_dir, _train_image(subject_dir), "--out", str(tmp_path / "a_file" / "p.npy"), "--quiet",
            "--threads", "1"]
    assert main(args) == 2
    _one_line(capsys, "--out", str(tmp_path / "a_file"), "is a file, not a folder")
    with pytest.raises(NotADirectoryError):  # --debug: the exception itself, with its traceback
        main(args + ["--debug"])
    monkeypatch.setenv("FACTORTOPY_DEBUG", "1")
    with pytest.raises(NotADirectoryError):
        main(args)
    assert (tmp_path / "a_file").read_text() == "mine"


def test_a_bug_keeps_its_traceback_and_running_out_of_memory_is_one_line(tmp_path, write_run, capsys,
                                                                         monkeypatch):
    """An unexpected error is a bug to report: never hidden in one line. Running out of memory is
    the machine's limit: one line saying what to lower."""
    import factortopy.viz.export

    write_run(str(tmp_path / "run"), n_per=20, L=2)
    args = ["export", str(tmp_path / "run"), "--out", str(tmp_path / "maps")]

    def fails(error):
        def export_run(*a, **k):
            raise error
        return export_run

    monkeypatch.setattr(factortopy.viz.export, "export_run", fails(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(args)
    monkeypatch.setattr(factortopy.viz.export, "export_run", fails(MemoryError()))
    assert main(args) == 2
    _one_line(capsys, "out of memory", "--batch-size")

    def warns(*a, **k):  # how a warning reads while a command runs (pytest records the warnings themselves)
        import warnings

        sys.stderr.write(warnings.formatwarning("two\nlines", UserWarning, __file__, 1))
        return {"maps": [], "mesh": "fsaverage5"}

    monkeypatch.setattr(factortopy.viz.export, "export_run", warns)
    assert main(args) == 0
    assert capsys.readouterr().err == "warning: two lines\n"


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as code:
        main(["fit", "--img-size", "0"])
    assert code.value.code == 2
    _one_line(capsys, "--img-size", "positive")


@pytest.mark.parametrize("option, needle", [
    (["--std", "0,0,0"], "--std"), (["--std", "nan,1,1"], "--std"), (["--mean", "nan,0.5,0.5"], "--mean"),
    (["--mean", "a,b,c"], "--mean"), (["--img-size", "100000"], "--img-size"),
])
def test_normalisation_and_input_size_are_checked_before_work(option, needle, tmp_path, capsys):
    """Reproduction: --std 0,0,0 or NaN ran the whole extraction into NaN features (a message about
    dtypes), and --img-size 100000 ended in an allocation traceback."""
    args = ["fit", "--data", f"algonauts:{tmp_path}/nope", "--out", str(tmp_path / "o"), *FIT_ARGS[:2], *option,
            "--threads", "1"]
    assert main(args) == 2
    err = _one_line(capsys, needle)
    assert "not found" not in err  # refused before the data were read
    assert not (tmp_path / "o").exists()


# ---- read-only destinations ----------------------------------------------------------------------------
def test_predict_into_a_read_only_folder_is_refused_before_any_prediction(run_dir, subject_dir, tmp_path,
                                                                           read_only, capsys, monkeypatch):
    """Reproduction: every prediction was computed, then np.save raised PermissionError (a traceback)."""
    import factortopy.estimator

    calls = []
    monkeypatch.setattr(factortopy.estimator, "predict", lambda *a, **k: calls.append(1))
    out = tmp_path / "ro"
    out.mkdir()
    image = _train_image(subject_dir)
    with read_only(out):
        assert main(["predict", run_dir, image, "--out", str(out / "p.npy"), "--quiet", "--threads", "1"]) == 2
    _one_line(capsys, "--out", str(out / "p.npy"), "permission denied")
    assert calls == [] and os.listdir(out) == []


def test_evaluate_on_a_read_only_run_suggests_no_write(run_dir, tmp_path, read_only, capsys):
    """Reproduction: the run was scored, then writing eval_heldout.npz raised PermissionError."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = sorted(os.listdir(run))
    with read_only(run):
        assert main(["evaluate", str(run), "--threads", "1"]) == 2
        _one_line(capsys, str(run), "--no-write")
        assert main(["evaluate", str(run), "--no-write", "--threads", "1"]) == 0
    assert "heldout split" in capsys.readouterr().out and sorted(os.listdir(run)) == before


def test_paint_and_export_into_a_read_only_folder(tmp_path, write_run, read_only, capsys):
    """Reproduction: the figure was drawn, then savefig raised PermissionError (a traceback)."""
    write_run(str(tmp_path / "run"), n_per=50, L=3)
    out = tmp_path / "ro"
    out.mkdir()
    with read_only(out):
        assert main(["paint", str(tmp_path / "run"), "--out", str(out / "map.png")]) == 2
        _one_line(capsys, "--out", "map.png", "permission denied")
        assert main(["export", str(tmp_path / "run"), "--out", str(out / "maps")]) == 2
        _one_line(capsys, "--out", "maps", "permission denied")
    assert os.listdir(out) == []


def test_a_study_into_a_read_only_folder_is_refused_before_any_fit(subject_dir, tmp_path, read_only, capsys):
    study = tmp_path / "study.toml"
    study.write_text(f'[[subjects]]\ndata = "algonauts:{subject_dir}"\n[[backbones]]\nname = "resnet18"\n'
                     'random_init = true\n')
    out = tmp_path / "ro"
    out.mkdir()
    with read_only(out):
        assert main(["study", str(study), "--out", str(out / "s"), "--threads", "1"]) == 2
    _one_line(capsys, "--out", "permission denied")
    assert os.listdir(out) == []


# ---- full disks ------------------------------------------------------------------------------------------
def test_predict_refuses_a_disk_too_small_and_leaves_nothing_when_it_fills(run_dir, subject_dir, tmp_path,
                                                                          capsys, monkeypatch):
    import factortopy._destination as destination

    image = _train_image(subject_dir)
    out = tmp_path / "p.npz"
    monkeypatch.setattr(destination, "free_bytes", lambda path: 100)  # less than the predictions take
    assert main(["predict", run_dir, image, image, "--out", str(out), "--quiet", "--threads", "1"]) == 2
    _one_line(capsys, "--out", "needs about", "100 bytes free")
    monkeypatch.undo()

    real = np.savez

    def fills_up(f, *args, **kwargs):  # the disk fills while the file is written
        f.write(b"PK\x03\x04 half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", fills_up)
    assert main(["predict", run_dir, image, "--out", str(out), "--quiet", "--threads", "1"]) == 2
    _one_line(capsys, f"cannot write {out} (the disk is full)", "free space")
    assert os.listdir(tmp_path) == []  # neither the file nor its temporary
    monkeypatch.setattr(np, "savez", real)
    assert main(["predict", run_dir, image, "--out", str(out), "--quiet", "--threads", "1"]) == 0


def test_a_full_disk_during_feature_extraction_is_one_line_and_resumes(subject_dir, tmp_path, capsys,
                                                                       monkeypatch, hdf5_disk_full_at):
    """Reproduction: the cache's own "disk is full" message came inside a traceback (the command
    caught only some OSErrors)."""
    hdf5_disk_full_at(1)  # the first batch's tokens
    cache, out = tmp_path / "cache", tmp_path / "run"
    args = ["fit", "--data", f"algonauts:{subject_dir}", *FIT_ARGS, "--cache-dir", str(cache), "--out", str(out)]
    assert main(args) == 2
    _one_line(capsys, "feature cache", "the disk is full", "--cache-dir")
    assert not out.exists()
    assert [p.name.endswith(".partial.h5") for p in cache.glob("*.h5")] == [True]  # what a rerun resumes from
    monkeypatch.undo()
    assert main(args) == 0


def test_a_cache_dir_without_room_for_the_features_is_refused_before_extraction(subject_dir, tmp_path, capsys,
                                                                                monkeypatch):
    import factortopy._destination as destination

    monkeypatch.setattr(destination, "free_bytes", lambda path: 1000)
    cache = tmp_path / "cache"
    assert main(["fit", "--data", f"algonauts:{subject_dir}", *FIT_ARGS, "--cache-dir", str(cache),
                 "--out", str(tmp_path / "run")]) == 2
    _one_line(capsys, "--cache-dir", "needs about", "free")
    assert not list(cache.glob("*.h5")) and not (tmp_path / "run").exists()


# ---- images ----------------------------------------------------------------------------------------------
def _png_header(path, width, height):
    """A PNG whose header declares width x height pixels over a tiny compressed body (117 kB made
    11,000 x 11,000 pixels in the issue; this one is 100 bytes)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    body = zlib.compress(b"\0" * 64)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def _damage(kind, path):
    """Turn the image file at ``path`` into a bad one of ``kind``."""
    from PIL import Image

    if kind == "truncated JPEG":
        buf = io.BytesIO()
        Image.open(path).convert("RGB").save(buf, format="JPEG")
        data = buf.getvalue()
        open(path, "wb").write(data[: len(data) // 2])  # a JPEG cut short, under the .png name it had
    elif kind == "truncated PNG":
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
    elif kind == "empty":
        open(path, "wb").close()
    elif kind == "zero size":
        _png_header(path, 0, 0)
    elif kind == "too many pixels":
        _png_header(path, 11000, 11000)
    elif kind == "a folder":
        os.remove(path)
        os.mkdir(path)


BAD_IMAGES = {"truncated JPEG": "damaged", "truncated PNG": "damaged",
              "empty": "empty file", "zero size": "not an image file Pillow can read",
              "too many pixels": "FACTORTOPY_MAX_IMAGE_PIXELS", "a folder": "folder"}


@pytest.mark.parametrize("kind", BAD_IMAGES)
def test_a_bad_image_in_a_training_set_is_one_line_naming_it(kind, subject_dir, tmp_path, capsys):
    """Reproduction: a truncated image or a folder named like one ended in a traceback mid-extraction
    (a truncated image even read as a feature-cache write error)."""
    subject = _copy_subject(subject_dir, tmp_path)
    bad = _train_image(subject)
    _damage(kind, bad)
    out, cache = tmp_path / "run", tmp_path / "cache"
    assert main(["fit", "--data", f"algonauts:{subject}", *FIT_ARGS, "--cache-dir", str(cache),
                 "--out", str(out)]) == 2
    _one_line(capsys, bad, BAD_IMAGES[kind])
    assert not out.exists() and not [p for p in cache.glob("*.h5") if not p.name.endswith(".partial.h5")]


@pytest.mark.parametrize("kind", BAD_IMAGES)
def test_a_bad_image_given_to_predict_is_one_line_naming_it(kind, run_dir, subject_dir, tmp_path, capsys):
    good = tmp_path / "good.png"
    shutil.copy(_train_image(subject_dir), good)
    bad = tmp_path / "bad.png"
    shutil.copy(good, bad)
    _damage(kind, str(bad))
    out = tmp_path / "out" / "p.npy"
    given = [str(tmp_path)] if kind == "a folder" else [str(good), str(bad)]  # a folder: found by listing
    assert main(["predict", run_dir, *given, "--out", str(out), "--quiet", "--threads", "1"]) == 2
    _one_line(capsys, str(bad), BAD_IMAGES[kind])
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_the_pixel_limit_is_explicit_and_configurable(tmp_path, monkeypatch):
    from PIL import Image

    from factortopy.data.images import MAX_IMAGE_PIXELS, read_image

    path = str(tmp_path / "a.png")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(path)
    assert read_image(path).shape == (20, 30, 3) and MAX_IMAGE_PIXELS == 8192 * 8192
    monkeypatch.setenv("FACTORTOPY_MAX_IMAGE_PIXELS", "599")
    with pytest.raises(ValueError, match=r"a.png has 30 x 20 = 600 pixels, more than the limit of 599"):
        read_image(path)
    monkeypatch.setenv("FACTORTOPY_MAX_IMAGE_PIXELS", "600")
    assert read_image(path).shape == (20, 30, 3)
    monkeypatch.setenv("FACTORTOPY_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match=r"FACTORTOPY_MAX_IMAGE_PIXELS='lots'"):
        read_image(path)


# ---- the minimum-evaluation-images rule, everywhere a score is made ---------------------------------------
def test_evaluate_refuses_a_test_set_of_two_images(run_dir, subject_dir, tmp_path, capsys):
    """Reproduction: two test images (r is +-1 by construction) were scored without a word."""
    data = _copy_subject(subject_dir, tmp_path)
    images = os.path.join(data, "test_split", "test_images")
    for name in sorted(os.listdir(images))[2:]:
        os.remove(os.path.join(images, name))
    for hemi in ("lh", "rh"):
        path = os.path.join(data, "test_split", "test_fmri", f"{hemi}_test_fmri.npy")
        np.save(path, np.load(path)[:2])
    assert main(["evaluate", run_dir, "--split", "test", "--data", f"algonauts:{data}?split=test", "--no-write",
                 "--threads", "1"]) == 2
    _one_line(capsys, "the test set has 2 image(s)", "at least 3")


# ---- study files: validated completely before the first fit ------------------------------------------------
STUDY = """
[study]
{study}
[[subjects]]
name = "s1"
data = "algonauts:{subject}"
[[backbones]]
label = "a"
name = "resnet18"
random_init = true
img_size = 32
layers = ["layer1", "layer2"]
{backbones}
[fit]
epochs = 1
dim = 4
val_fraction = 0.2
{fit}
{more}
"""

BAD_STUDIES = {
    "n_boot 1": (dict(study="n_boot = 1"), "[study] n_boot"),
    "n_boot 1.5": (dict(study="n_boot = 1.5"), "[study] n_boot"),
    "n_boot 1e9": (dict(study="n_boot = 1_000_000_000"), "[study] n_boot"),
    "n_boot abc": (dict(study='n_boot = "abc"'), "[study] n_boot"),
    "view": (dict(study='view = "sideways"'), "[study] view"),
    "device": (dict(study='device = "tpu"'), "[study] device"),
    "gpus": (dict(study='gpus = "0,1"'), "[study] gpus"),
    "seeds": (dict(study='seeds = "0"'), "[study] seeds"),
    "null_reference": (dict(study='null_reference = "yes"'), "[study] null_reference"),
    "min_ceiling": (dict(study="min_ceiling = 2"), "[study] min_ceiling"),
    "two labels, one folder": (dict(backbones='[[backbones]]\nlabel = "a?"\nname = "resnet18"\nrandom_init = true\n'
                                              'seed = 1'), "map to one folder name"),
    "finetune bases": (dict(more='[finetune]\nbases = ["b"]\n[[finetune.versions]]\nimages = "."'),
                       "[finetune] base 'b'"),
    "finetune probe": (dict(more='[finetune]\nbases = ["a"]\nprobe = "nope/"\n[[finetune.versions]]\nimages = "."'),
                       "[finetune] probe folder"),
    "finetune steps": (dict(more='[finetune]\nbases = ["a"]\n[[finetune.versions]]\nimages = "."\nsteps = "abc"'),
                       "[[finetune.versions]] #1 steps"),
    "finetune probe_c": (dict(more='[finetune]\nbases = ["a"]\nprobe_c = "x"\n[[finetune.versions]]\nimages = "."'),
                         "[finetune] probe_c"),
    "scaling threshold": (dict(more='[scaling]\ntrain_images = [5, "all"]\nlocal_threshold = "x"'),
                          "[scaling] local_threshold"),
    "scaling subset": (dict(more='[scaling]\ntrain_images = [500, "all"]'), "train_images 500 is more than"),
    "launcher time": (dict(more='[launcher]\nkind = "local"\ntime = "forever"'), "[launcher]: time 'forever'"),
    "launcher gpus": (dict(more='[launcher]\nkind = "local"\ngpus_per_job = 1'), "gpus_per_job = 1"),
    "held-out set": (dict(fit="heldout_fraction = 0.025"), "the held-out set has 1 image(s)"),
    "std": (dict(backbones="std = [0, 0, 0]"), "[[backbones]] #1: std"),
}


@pytest.mark.parametrize("case", BAD_STUDIES)
def test_a_bad_study_file_is_one_line_before_the_first_fit(case, subject_dir, tmp_path, capsys, monkeypatch):
    """Reproduction: most of these fitted first and failed (or wrote a wrong interval) after."""
    import factortopy.study.run

    monkeypatch.setattr(factortopy.study.run, "fit", lambda *a, **k: pytest.fail("a fit started"))
    parts, needle = BAD_STUDIES[case]
    parts = {k: parts.get(k, "") for k in ("study", "backbones", "fit", "more")}
    if "n_boot" not in parts["study"]:
        parts["study"] += "\nn_boot = 20"
    path = tmp_path / "study.toml"
    path.write_text(STUDY.format(subject=subject_dir, **parts))
    assert main(["study", str(path), "--out", str(tmp_path / "out"), "--quiet", "--threads", "1"]) == 2
    _one_line(capsys, needle)
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.parametrize("key", ["label", "method", "family"])
def test_dollar_signs_in_study_labels_are_drawn_literally(key):
    """Reproduction: `$\\macro$` in a label, method or family crashed the scaling and profile figures
    after every fit (matplotlib parsed it as mathtext)."""
    from factortopy.study.figures import profile_figure, scaling_figure

    text = r"$\macro$ net"
    row = {**dict(label="a", method="m", family="f", params=1e6, alignment_slope=0.5, alignment_slope_ci_low=0.4,
                  alignment_slope_ci_high=0.6), key: text}
    profile = dict(label=row["label"], family=row["family"], subject="s1", seed=0,
                   rois=[dict(roi=r"$\roi$", expected_mean=0.3), dict(roi="V4", expected_mean=None)])
    texts = []
    for fig in (scaling_figure([row]), profile_figure([profile])):
        fig.savefig(io.BytesIO(), format="png")
        texts += [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]
    assert any(text in t for t in texts) and any(r"$\roi$" in t for t in texts)  # drawn as written


def test_profiles_json_is_strict_json(run_dir, subject_dir, tmp_path):
    """Reproduction: an ROI group without vertices (this subject has six) wrote bare NaN into
    profiles.json, which strict JSON readers refuse."""
    from factortopy.study.config import Pair, load_study
    from factortopy.study.summary import PROFILES, write_summary

    study = load_study({"study": {"n_boot": 20}, "subjects": [{"name": "s1", "data": f"algonauts:{subject_dir}"}],
                        "backbones": [{"label": "a", "name": "resnet18", "random_init": True}]})
    pair = Pair(subject="s1", data=study.subjects["s1"], backbone=study.backbones[0], run_dir=run_dir, fit={})
    write_summary(study, [pair], str(tmp_path), figures=False, progress=False)

    def no_constants(name):
        raise AssertionError(f"{name} in {PROFILES}: not JSON")

    with open(tmp_path / PROFILES) as f:
        profiles = json.loads(f.read(), parse_constant=no_constants)
    empty = [r for r in profiles[0]["rois"] if r["n"] == 0]
    assert empty and all(r["mean_probs"] is None and r["expected_mean"] is None for r in empty)


# ---- fit and baseline: outputs, checkpoints, the model, the responses -------------------------------------
@pytest.mark.parametrize("option", ["--out", "--cache-dir"])
def test_fit_into_a_read_only_folder_is_refused_before_work(option, subject_dir, tmp_path, read_only, capsys):
    """Reproduction: --cache-dir failed after the backbone was built, --out when the run folder was made."""
    ro = tmp_path / "ro"
    ro.mkdir()
    places = {"--out": str(tmp_path / "run"), "--cache-dir": str(tmp_path / "cache"), option: str(ro / "x")}
    with read_only(ro):
        assert main(["fit", "--data", f"algonauts:{subject_dir}", *FIT_ARGS, "--out", places["--out"],
                     "--cache-dir", places["--cache-dir"]]) == 2
    _one_line(capsys, option, str(ro / "x"), "permission denied")
    assert os.listdir(ro) == [] and not os.path.exists(tmp_path / "run") and not os.path.exists(tmp_path / "cache")


def test_baseline_into_a_read_only_folder_and_with_one_held_out_image(subject_dir, tmp_path, read_only, capsys):
    """Reproduction: --heldout-fraction 0.025 (one held-out image) wrote a finished run whose held-out
    r was 0 by construction, and a read-only --out failed after the features."""
    pytest.importorskip("himalaya")
    args = ["baseline", "--data", f"algonauts:{subject_dir}", *FIT_ARGS[:7], "--threads", "1"]
    assert main(args + ["--heldout-fraction", "0.025", "--out", str(tmp_path / "run")]) == 2
    _one_line(capsys, "the held-out set has 1 image(s)", "--heldout-fraction 0.025", "at least 3")
    assert not (tmp_path / "run").exists()
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):
        assert main(args + ["--out", str(ro / "run")]) == 2
    _one_line(capsys, "--out", "permission denied")


def _fit_in_a_subprocess(args, file_size_limit):
    """``factortopy`` ARGS in a child whose files may not grow beyond ``file_size_limit`` bytes
    (RLIMIT_FSIZE): every write past it fails with EFBIG, as on a full disk, and the libraries
    report it their own way (torch: ``RuntimeError: [enforce fail at inline_container.cc ...]``)."""
    import subprocess
    import sys

    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({file_size_limit}, resource.RLIM_INFINITY)); "
            "from factortopy.cli import main; sys.exit(main(sys.argv[1:]))")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=600)


def test_a_checkpoint_that_does_not_fit_on_the_disk_is_one_line(subject_dir, tmp_path):
    """Reproduction: torch reports a failed write as ``RuntimeError: [enforce fail at
    inline_container.cc ...]``, which the checkpoint writer's OSError handler missed: a traceback."""
    out = tmp_path / "run"
    done = _fit_in_a_subprocess(["fit", "--data", f"algonauts:{subject_dir}", *FIT_ARGS, "--out", str(out)], 20_000)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "inline_container" not in done.stderr, done.stderr
    lines = [l for l in done.stderr.splitlines() if not l.startswith(("note:", "warning:"))]
    assert len(lines) == 1 and "checkpoint.pt" in lines[0] and "too large" in lines[0], done.stderr
    assert not out.exists()  # failed before its first checkpoint: no folder, no .tmp


def test_a_model_that_does_not_fit_keeps_the_checkpoint_and_a_rerun_finishes(subject_dir, tmp_path, capsys,
                                                                            monkeypatch):
    """Reproduction: safetensors reports a full disk as its own SafetensorError: a traceback."""
    import safetensors.torch
    from safetensors import SafetensorError

    real = safetensors.torch.save_file

    def full_disk(state, path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"\0" * 100)  # what got written before the disk filled up
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    out = tmp_path / "run"
    args = ["fit", "--data", f"algonauts:{subject_dir}", *FIT_ARGS, "--out", str(out)]
    assert main(args) == 2
    _one_line(capsys, "model.safetensors", "the disk is full", "resumes from its last checkpoint")
    assert (out / "checkpoint.pt").exists() and not (out / "config.json").exists()
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    assert main(args) == 0 and (out / "config.json").exists() and not (out / "checkpoint.pt").exists()


@pytest.mark.parametrize("content", [[1, 2, 3], "a string", {"epoch": 1}])
def test_a_checkpoint_holding_something_else_is_one_line(content, subject_dir, tmp_path, capsys):
    """Reproduction: a checkpoint.pt holding a list or a string raised AttributeError (.get)."""
    import torch

    out = tmp_path / "run"
    out.mkdir()
    torch.save(content, out / "checkpoint.pt")
    assert main(["fit", "--data", f"algonauts:{subject_dir}", *FIT_ARGS, "--out", str(out)]) == 2
    _one_line(capsys, "checkpoint.pt is not a factortopy checkpoint", type(content).__name__, "--overwrite")
    assert os.listdir(out) == ["checkpoint.pt"]  # refused, never restarted over


def test_responses_out_of_float32_range_name_the_column(subject_dir, tmp_path, capsys):
    """Reproduction: finite values near 3e38 overflowed float32 z-scoring and the fit reported
    "training diverged ... lower the learning rate"; the cause is the data."""
    from factortopy.data.algonauts import load_algonauts

    subject = _copy_subject(subject_dir, tmp_path)
    path = os.path.join(subject, "training_split", "training_fmri", "lh_training_fmri.npy")
    fmri = np.load(path)
    fmri[:, 2] = np.random.default_rng(0).uniform(2e38, 3e38, len(fmri)).astype(fmri.dtype)  # finite, out of scale
    np.save(path, fmri)
    vertex = load_algonauts(subject).vertex[2]
    cache = tmp_path / "cache"
    assert main(["fit", "--data", f"algonauts:{subject}", *FIT_ARGS, "--cache-dir", str(cache),
                 "--out", str(tmp_path / "run")]) == 2
    err = _one_line(capsys, f"1 response column(s) (lh {vertex}; column 2", "overflow float32", "out of scale")
    assert "diverged" not in err and "--lr" not in err
    assert not cache.exists() and not (tmp_path / "run").exists()  # found before any feature was extracted


def test_a_generic_data_set_of_huge_values_is_z_scored_in_range(tmp_path):
    """The generic loader z-scores columns itself: in float32 a column near 3e38 became NaN there."""
    from factortopy.data.generic import zscore_columns

    x = np.random.default_rng(0).uniform(2e38, 3e38, (30, 3)).astype(np.float32)
    z = zscore_columns(x)
    ref = (x.astype(np.float64) - x.astype(np.float64).mean(0)) / x.astype(np.float64).std(0)
    np.testing.assert_allclose(z, ref, rtol=1e-5, atol=1e-5)
