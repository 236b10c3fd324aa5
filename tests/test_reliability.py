"""What the library promises when things go wrong (issue 12; docs/reliability.md lists each promise
and the test here that proves it): locks, failed and diverged fits, bad settings, damaged files,
the feature cache under two writers, garbled bytes and a full disk, chunked evaluation, portable
data specs, ``$`` in titles."""
import json
import os
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from factortopy.cli import main
from factortopy.data import load_subject
from factortopy.data.algonauts import load_algonauts
from factortopy.datasets.fixtures import write_full_mesh
from factortopy.fitting.fit import DivergedError, FitConfig, fit
from factortopy.runs import open_run
from factortopy.runs.directory import LOCK, RunDirBusy, claim_run_dir, run_dir_state

pytestmark = pytest.mark.filterwarnings("ignore:the (validation|held-out) set has only")

FIT = dict(backbone="resnet18", random_init=True, img_size=32, layers=["layer1", "layer2"], epochs=3,
           batch_size=8, dim=4, hidden=8, patience=None, val_fraction=0.2, heldout_fraction=0.2, progress=False)


@pytest.fixture(scope="module")
def run_dir(subject_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("runs") / "run")
    fit(load_subject(f"algonauts:{subject_dir}"), out=out, **FIT)
    return out


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return str(dst)


class StepFails:
    """Patches AdamW.step to call ``action`` at global step ``at`` (18 training images / batch 8:
    3 steps per epoch, so step 5 is inside the second epoch)."""

    def __init__(self, monkeypatch, at, action):
        real = torch.optim.AdamW.step
        self.n = 0

        def step(opt, *a, **k):
            self.n += 1
            out = real(opt, *a, **k)
            if self.n == at:
                action(opt)
            return out

        monkeypatch.setattr(torch.optim.AdamW, "step", step)


def _error_lines(capsys) -> str:
    """stderr of a command without its progress notes (e.g. the busy-machine threads note)."""
    return "\n".join(l for l in capsys.readouterr().err.splitlines() if not l.startswith("note:"))


def _interrupt(_opt):
    raise KeyboardInterrupt


# ---- item 7: one writer per RUN_DIR ----------------------------------------------------------------
def test_a_live_writer_holds_the_run_dir(subject_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        (out / LOCK).write_text(f"{socket.gethostname()} {holder.pid}")
        with pytest.raises(RunDirBusy, match=f"another fit .*{holder.pid}"):
            fit(load_algonauts(subject_dir), out=str(out), **FIT)
        assert sorted(os.listdir(out)) == [LOCK]  # nothing written, the holder's lock untouched
        assert (out / LOCK).read_text() == f"{socket.gethostname()} {holder.pid}"
    finally:
        holder.stdin.close()
        holder.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text(f"{socket.gethostname()} {dead.pid}")
    claim = claim_run_dir(str(out))
    try:
        assert claim.state == "new" and (out / LOCK).read_text() == f"{socket.gethostname()} {os.getpid()}"
        with pytest.raises(RunDirBusy, match=str(os.getpid())):  # and now it is ours: a second claim fails
            claim_run_dir(str(out))
    finally:
        claim.release()
    assert not (out / LOCK).exists()


# ---- item 8: a failed fit leaves nothing half-written ------------------------------------------------
def test_a_fit_failing_before_its_first_checkpoint_leaves_no_folder(subject_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    StepFails(monkeypatch, 2, _interrupt)  # inside the first epoch
    with pytest.raises(KeyboardInterrupt):
        fit(load_algonauts(subject_dir), out=str(out), **FIT)
    assert not out.exists()


def test_a_fit_failing_after_a_checkpoint_keeps_it_and_resumes(subject_dir, tmp_path, monkeypatch):
    full = fit(load_algonauts(subject_dir), **FIT)
    out = tmp_path / "run"
    StepFails(monkeypatch, 5, _interrupt)
    with pytest.raises(KeyboardInterrupt):
        fit(load_algonauts(subject_dir), out=str(out), **FIT)
    monkeypatch.undo()
    assert run_dir_state(str(out)) == "interrupted" and sorted(os.listdir(out)) == ["checkpoint.pt"]
    resumed = fit(load_algonauts(subject_dir), out=str(out), **FIT)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    np.testing.assert_allclose(resumed.val_r, full.val_r, atol=1e-6)


def test_overwrite_discards_an_interrupted_run_of_other_settings(subject_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    StepFails(monkeypatch, 5, _interrupt)
    with pytest.raises(KeyboardInterrupt):
        fit(load_algonauts(subject_dir), out=str(out), **FIT)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="other settings"):
        fit(load_algonauts(subject_dir), out=str(out), **{**FIT, "seed": 1})
    res = fit(load_algonauts(subject_dir), out=str(out), overwrite=True, **{**FIT, "seed": 1})
    assert [h["epoch"] for h in res.history] == [1, 2, 3] and run_dir_state(str(out)) == "finished"


# ---- item 9: bad settings are refused before any work ------------------------------------------------
@pytest.mark.parametrize("field, value, option", [
    ("epochs", 0, "--epochs"), ("epochs", -2, "--epochs"), ("patience", -1, "--patience"), ("dim", 0, "--dim"),
    ("device", "tpu", "--device"), ("lr", float("nan"), "--lr"), ("batch_size", 0, "--batch-size"),
    ("val_fraction", 0.0, "--val-fraction"), ("eval_batch_size", 0, "--eval-batch-size"),
])
def test_fit_config_refuses_out_of_range_settings(field, value, option):
    with pytest.raises(ValueError, match=option):
        FitConfig(**{field: value})


def test_fractions_must_leave_training_images():
    with pytest.raises(ValueError, match="leave training images"):
        FitConfig(val_fraction=0.5, heldout_fraction=0.5)


@pytest.mark.parametrize("extra, expect", [
    (["--epochs", "0"], "--epochs"), (["--epochs", "-3"], "--epochs"), (["--patience", "-1"], "--patience"),
    (["--dim", "0"], "--dim"), (["--device", "tpu"], "--device"), (["--layers", ","], "--layers"),
    (["--out", "IS_A_FILE"], "--out"), (["--cache-dir", "IS_A_FILE"], "--cache-dir"),
])
def test_fit_command_refuses_bad_options_in_one_line_before_work(extra, expect, tmp_path, capsys):
    afile = tmp_path / "a_file"
    afile.write_text("mine")
    extra = [str(afile) if e == "IS_A_FILE" else e for e in extra]
    # the data do not exist: an error about the option proves nothing was read first
    args = ["fit", "--data", f"algonauts:{tmp_path}/nope", "--backbone", "resnet18", "--random-init",
            "--out", str(tmp_path / "o"), "--quiet"] + extra
    assert main(args) == 2
    err = _error_lines(capsys)
    assert expect in err and "not found" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists() and afile.read_text() == "mine"


def test_img_size_zero_and_demo_images_zero_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--data", "algonauts:x", "--backbone", "resnet18", "--img-size", "0", "--out", "o"])
    assert "--img-size" in capsys.readouterr().err
    assert main(["demo", "--images", "0", "--out", str(tmp_path / "demo")]) == 2
    assert "--images" in capsys.readouterr().err and not (tmp_path / "demo").exists()


# ---- item 10: divergence -----------------------------------------------------------------------------
def test_divergence_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(subject_dir, tmp_path,
                                                                                 monkeypatch):
    def blow_up(opt):  # what lr 1e30 does, made deterministic: the weights leave float range
        with torch.no_grad():
            for group in opt.param_groups:
                for p in group["params"]:
                    p.mul_(float("inf"))

    out = tmp_path / "run"
    StepFails(monkeypatch, 5, blow_up)  # in epoch 2
    with pytest.raises(DivergedError, match=r"diverged in epoch 2.*--lr.*checkpoint of epoch 1"):
        fit(load_algonauts(subject_dir), out=str(out), **FIT)
    assert sorted(os.listdir(out)) == ["checkpoint.pt"]  # no finished run with non-finite weights
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_a_huge_learning_rate_is_caught(subject_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(DivergedError, match="diverged in epoch 1"):
        fit(load_algonauts(subject_dir), out=str(out), **{**FIT, "lr": 1e30})
    assert not out.exists()  # it failed before any checkpoint


# ---- item 11: too few evaluation images, constant responses ------------------------------------------
def test_too_small_validation_sets_are_refused_or_warned(subject_dir):
    subject = load_algonauts(subject_dir)  # 30 images
    with pytest.raises(ValueError, match="validation set has 2 image"):
        fit(subject, **{**FIT, "val_fraction": 0.05})
    with pytest.raises(ValueError, match="held-out set has 1 image"):
        fit(subject, **{**FIT, "heldout_fraction": 0.04})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(subject, **{**FIT, "epochs": 1})
    assert any("validation set has only 6 images" in str(w.message) for w in caught)


def test_constant_response_columns_are_warned_about(subject_dir):
    subject = load_algonauts(subject_dir)
    subject.responses = subject.responses.copy()
    subject.responses[:, [2, 5]] = 3.0
    with pytest.warns(UserWarning, match=r"2 of 16 response columns are constant .*lh %d" % subject.vertex[2]):
        res = fit(subject, **{**FIT, "epochs": 1})
    assert res.val_r[2] == 0 and res.val_r[5] == 0


# ---- item 12: evaluation in bounded memory -----------------------------------------------------------
def test_prediction_chunked_by_memory_equals_unchunked(run_dir, monkeypatch):
    from factortopy.fitting.predict import predict_tokens

    model = open_run(run_dir).model
    tokens = torch.randn(7, model.n_layers, model.grid ** 2 + 1, max(model.layer_channels)).half()
    whole = predict_tokens(model, tokens, batch_size=64, max_bytes=1 << 40)
    # independent: one forward over everything
    with torch.no_grad():
        ref = model.forward_tokens(tokens.float())
    torch.testing.assert_close(whole, ref, atol=1e-5, rtol=1e-5)
    shapes = []
    real = type(model).forward_tokens

    def spy(self, batch, index=None, selectors=None):
        shapes.append((batch.shape[0], self.n_vertices if index is None else len(index)))
        return real(self, batch, index=index, selectors=selectors)

    monkeypatch.setattr(type(model), "forward_tokens", spy)
    per_vertex, per_pair = 8 * model.n_layers * (model.grid ** 2 + 1), 8 * model.dim
    budget = 5 * (per_vertex + per_pair)  # room for 5 vertices of one image
    small = predict_tokens(model, tokens, batch_size=64, max_bytes=budget)
    torch.testing.assert_close(small, whole, atol=1e-6, rtol=1e-6)
    assert shapes and all(b * (per_pair) + v * per_vertex <= budget or (b, v) == (1, 1) for b, v in shapes)
    assert max(v for _, v in shapes) == 5 and max(b for b, _ in shapes) == 1
    assert sum(b * v for b, v in shapes) == 7 * model.n_vertices  # every (image, vertex) once


# ---- item 15: damaged run files ----------------------------------------------------------------------
def _truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def _garble(path):
    """Flip bytes near the end (tensor / array data), keeping the size."""
    data = bytearray(open(path, "rb").read())
    for i in range(len(data) - 40, len(data) - 8):
        data[i] ^= 0x5A
    open(path, "wb").write(bytes(data))


@pytest.mark.parametrize("name", ["model.safetensors", "selectors.npz", "scores.npz", "response_stats.npz",
                                  "config.json"])
@pytest.mark.parametrize("damage", [_truncate, _garble])
def test_damaged_run_files_are_errors_naming_the_file(name, damage, run_dir, tmp_path):
    folder = _copy(run_dir, tmp_path / "copy")
    damage(os.path.join(folder, name))
    with pytest.raises(ValueError, match=name) as err:
        run = open_run(folder)
        run.selectors()
        run.scores()
    assert "refit" in str(err.value)


def test_garbled_model_bytes_are_caught_by_the_recorded_checksum(run_dir, tmp_path, capsys):
    import hashlib

    sums = json.load(open(os.path.join(run_dir, "checksums.json")))
    assert sums["model.safetensors"] == hashlib.sha256(
        open(os.path.join(run_dir, "model.safetensors"), "rb").read()).hexdigest()
    folder = _copy(run_dir, tmp_path / "copy")
    _garble(os.path.join(folder, "model.safetensors"))
    from safetensors.torch import load_file

    load_file(os.path.join(folder, "model.safetensors"))  # the damage still parses: only the digest sees it
    assert main(["evaluate", folder, "--split", "val", "--no-write"]) == 2
    err = _error_lines(capsys)
    assert "model.safetensors" in err and "SHA-256" in err and len(err.splitlines()) == 1


def _rewrite_config(folder, config) -> None:
    """config.json replaced with its checksum recorded too (a consistent run of another version: the
    keys' messages are tested here, not the checksum's, which test_shared_run_folders.py tests)."""
    import hashlib

    text = json.dumps(config)
    open(os.path.join(folder, "config.json"), "w").write(text)
    sums = json.load(open(os.path.join(folder, "checksums.json")))
    sums["config.json"] = hashlib.sha256(text.encode()).hexdigest()
    json.dump(sums, open(os.path.join(folder, "checksums.json"), "w"))


def test_missing_config_key_names_the_key_and_the_file(run_dir, tmp_path):
    folder = _copy(run_dir, tmp_path / "copy")
    config = json.load(open(os.path.join(folder, "config.json")))
    del config["model"]
    del config["backbone"]["layer_names"]
    _rewrite_config(folder, config)
    with pytest.raises(KeyError, match=r"config.json lacks the key 'model'"):
        open_run(folder)
    config = json.load(open(os.path.join(run_dir, "config.json")))
    del config["backbone"]["layer_names"]
    _rewrite_config(folder, config)
    with pytest.raises(KeyError, match=r"lacks the key 'backbone.layer_names'"):
        open_run(folder).config["backbone"]["layer_names"]


@pytest.mark.parametrize("damage", [_truncate, _garble])
def test_damaged_checkpoint_is_an_error_naming_it(damage, subject_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    StepFails(monkeypatch, 5, _interrupt)
    with pytest.raises(KeyboardInterrupt):
        fit(load_algonauts(subject_dir), out=str(out), **FIT)
    monkeypatch.undo()
    damage(str(out / "checkpoint.pt"))
    with pytest.raises(ValueError, match="checkpoint.pt cannot be read.*--overwrite"):
        fit(load_algonauts(subject_dir), out=str(out), **FIT)
    assert (out / "checkpoint.pt").exists()  # refused, not silently restarted


# ---- item 5: the feature cache -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(6)]


@pytest.fixture(scope="module")
def cnn():
    from factortopy.backbones import load_backbone

    return load_backbone("resnet18", random_init=True, img_size=32, layers=["layer1", "layer2"])


def _calls(backbone):
    n = {"n": 0}

    def hook(*_):
        n["n"] += 1

    return n, backbone.register_forward_pre_hook(hook)


def test_cache_writes_wait_for_the_lock_of_another_process(tmp_path, images, cnn):
    from factortopy.features.cache import cache_key, cache_path, load_or_extract

    path = cache_path(tmp_path, cache_key(cnn, "set", 2, len(images)))
    code = ("import sys; from filelock import FileLock; l = FileLock(sys.argv[1]); l.acquire(); "
            "print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, f"{path}.lock"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    n, handle = _calls(cnn)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match="being written by another process"):
            load_or_extract(cnn, images, tmp_path, "set", grid=2, batch_size=4, progress=False, lock_timeout=0.2)
        assert n["n"] == 0 and not path.exists()
    finally:
        holder.stdin.close()
        holder.wait()
    out = load_or_extract(cnn, images, tmp_path, "set", grid=2, batch_size=4, progress=False, lock_timeout=5)
    handle.remove()
    assert n["n"] == 2 and path.exists() and out.tokens.shape[0] == 6


def test_garbled_bytes_in_a_complete_cache_are_detected_and_rebuilt(tmp_path, images, cnn):
    import h5py

    from factortopy.features.cache import load_or_extract, read_cache
    from factortopy.features.extract import extract_features

    load_or_extract(cnn, images, tmp_path, "set", grid=2, batch_size=4, progress=False)
    (path,) = tmp_path.glob("*.h5")
    with h5py.File(path, "r") as f:
        info = f["tokens"].id.get_chunk_info(3)  # image 3's stored bytes
    with open(path, "r+b") as fh:  # garble them behind HDF5's back; the file stays "complete"
        fh.seek(info.byte_offset + 16)
        fh.write(bytes(64))
    with pytest.raises(ValueError, match="damaged: 1 image"):
        read_cache(path)
    n, handle = _calls(cnn)
    with pytest.warns(UserWarning, match="rebuilding"):
        out = load_or_extract(cnn, images, tmp_path, "set", grid=2, batch_size=4, progress=False)
    handle.remove()
    assert n["n"] == 2  # rebuilt, not read as valid
    ref = extract_features(cnn, images, grid=2, batch_size=4, progress=False)
    torch.testing.assert_close(out.tokens, ref.tokens)
    torch.testing.assert_close(read_cache(path).tokens, ref.tokens)


def test_disk_full_names_the_path_and_a_rerun_completes(tmp_path, images, cnn, monkeypatch, hdf5_disk_full_at):
    from factortopy.features.cache import load_or_extract
    from factortopy.features.extract import extract_features

    hdf5_disk_full_at(3)  # the second batch's tokens
    with pytest.raises(OSError, match=r"feature cache .*partial\.h5 \(the disk is full\).*--cache-dir"):
        load_or_extract(cnn, images, tmp_path, "set", grid=2, batch_size=4, progress=False)
    monkeypatch.undo()
    assert not list(tmp_path.glob("*[!l].h5"))  # nothing passes for a complete cache
    n, handle = _calls(cnn)
    out = load_or_extract(cnn, images, tmp_path, "set", grid=2, batch_size=4, progress=False)
    handle.remove()
    assert n["n"] == 1  # resumed after the first batch
    torch.testing.assert_close(out.tokens, extract_features(cnn, images, grid=2, batch_size=4, progress=False).tokens)


# ---- item 16: portable data specs, --mesh-dir, $ in titles ----------------------------------------------
def test_a_resume_with_the_path_written_relative_then_absolute_continues(subject_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.chdir(os.path.dirname(subject_dir))
    relative = f"algonauts:{os.path.basename(subject_dir)}"
    StepFails(monkeypatch, 5, _interrupt)
    with pytest.raises(KeyboardInterrupt):
        fit(load_subject(relative), out=str(out), data_spec=relative, **FIT)
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    absolute = f"algonauts:{subject_dir}"
    res = fit(load_subject(absolute), out=str(out), data_spec=absolute, **FIT)
    assert [h["epoch"] for h in res.history] == [1, 2, 3]
    assert json.load(open(out / "config.json"))["data"] == absolute


def test_a_run_fitted_from_python_records_its_data_and_evaluates_anywhere(run_dir, subject_dir, tmp_path,
                                                                          monkeypatch):
    from factortopy.evaluation.run import evaluate_run

    assert json.load(open(os.path.join(run_dir, "config.json")))["data"] == f"algonauts:{subject_dir}"
    monkeypatch.chdir(tmp_path)
    res = evaluate_run(run_dir, write=False)  # the held-out images, found from the recorded spec
    assert res["n_images"] == 6
    np.testing.assert_allclose(res["r"], open_run(run_dir).scores()["r"], atol=2e-3)


def test_fit_takes_mesh_dir_and_records_it(subject_dir, tmp_path, capsys):
    mesh = write_full_mesh(str(tmp_path / "mesh"))
    out = tmp_path / "run"
    args = ["fit", "--data", f"algonauts:{subject_dir}", "--backbone", "resnet18", "--random-init", "--img-size",
            "32", "--layers", "layer1", "--epochs", "1", "--dim", "4", "--val-fraction", "0.2", "--quiet"]
    assert main(args + ["--mesh-dir", mesh, "--out", str(out)]) == 0
    assert json.load(open(out / "config.json"))["data"] == f"algonauts:{subject_dir}?mesh_dir={mesh}"
    assert main(args + ["--mesh-dir", str(tmp_path / "nomesh"), "--out", str(tmp_path / "r2")]) == 2
    assert "no full fsaverage sphere surface" in capsys.readouterr().err


@pytest.mark.parametrize("title", ["cost $x^$ run", "a $_{$ b", "$$"])
def test_dollar_signs_in_titles_are_drawn_literally(title):
    import io

    from matplotlib.figure import Figure

    from factortopy.viz import layer_map

    bad = Figure()
    bad.suptitle(title)
    with pytest.raises(ValueError):  # what matplotlib does with the raw text
        bad.savefig(io.BytesIO(), format="png")
    vertex = np.arange(30)
    fig = layer_map(vertex, np.array(["lh"] * 30), np.eye(3)[vertex % 3], [f"{title} {i}" for i in range(3)],
                    views=("lateral",), title=title)
    fig.savefig(io.BytesIO(), format="png")
    assert fig._suptitle.get_text().replace("\\$", "$") == title
