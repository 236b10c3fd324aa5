"""Run folders that travel and are shared (issue 23): no clobbered files, no silent substitution,
nothing lost. Each test reproduces a failure the issue found on a folder prepared as an attacker
(or an unlucky lab-mate) would, and checks it can no longer happen."""
import hashlib
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from factortopy.runs.directory import LOCK


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# ---- the write primitive ---------------------------------------------------------------------------
def test_a_planted_link_is_replaced_never_written_through(tmp_path):
    from factortopy import _files

    victim = tmp_path / "elsewhere.txt"
    victim.write_text("precious")
    folder = tmp_path / "run"
    folder.mkdir()
    writers = {
        "a.npz": lambda p: _files.write_npz(p, dict(x=np.arange(3))),
        "b.npy": lambda p: _files.write_npy(p, np.arange(3)),
        "c.json": lambda p: _files.write_text(p, "{}"),
        "d.bin": lambda p: _files.write_bytes(p, b"\0" * 10),
        "e.pt": lambda p: _files.write_torch(p, {"x": 1}),
        "f.safetensors": lambda p: _files.write_safetensors(p, {"x": __import__("torch").zeros(2)}),
        "g.mgh": lambda p: _files.replace_file(p, lambda tmp: open(tmp, "w").write("by path"), by_path=True),
    }
    for name, write in writers.items():
        (folder / name).symlink_to(victim)
        write(str(folder / name))
        assert not (folder / name).is_symlink() and (folder / name).is_file(), name
    assert victim.read_text() == "precious"
    assert sorted(os.listdir(folder)) == sorted(writers)  # no temporary file left behind
    mode = os.stat(folder / "f.safetensors").st_mode & 0o777
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask  # the umask's mode, not safetensors' 0600


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    from factortopy import _files

    path = tmp_path / "x.json"
    path.write_text("old")

    def fail(f):
        f.write(b"half")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        _files.replace_file(path, fail)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["x.json"]


@pytest.fixture(scope="module")
def run_dir(subject_dir, tmp_path_factory):
    """A finished FactorTopy run of the module's small Algonauts subject."""
    from factortopy.data import load_subject
    from factortopy.fitting.fit import fit

    out = str(tmp_path_factory.mktemp("runs") / "run")
    fit(load_subject(f"algonauts:{subject_dir}"), out=out, **FIT)
    return out


def _copy(src, tmp_path, name="copy"):
    import shutil

    dst = tmp_path / name
    shutil.copytree(src, dst, symlinks=True)
    return dst


def test_a_planted_link_at_an_evaluation_file_leaves_its_target_untouched(run_dir, tmp_path):
    """``factortopy evaluate RUN`` wrote its npz through a planted eval_heldout.npz link (issue 23)."""
    from factortopy.cli import main

    run = _copy(run_dir, tmp_path)
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"not yours")
    for name in ("eval_heldout.npz", "eval_heldout.json"):
        (run / name).symlink_to(victim)
    assert main(["evaluate", str(run)]) == 0
    assert victim.read_bytes() == b"not yours"
    assert not (run / "eval_heldout.npz").is_symlink() and np.load(run / "eval_heldout.npz")["r"].size > 0


def test_planted_links_in_a_shared_feature_cache_are_not_written_through(tmp_path):
    """The cache folder is shared: its partial file and lock file are the cache's own, never a
    link's target (a partial opened for writing through a link truncated the target)."""
    from factortopy.backbones import load_backbone
    from factortopy.features.cache import _partial_path, cache_key, cache_path, load_or_extract

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (20, 20, 3), dtype=np.uint8) for _ in range(4)]
    vit = load_backbone("vit_tiny_patch16_224", random_init=True, img_size=32, depth=1, embed_dim=16, num_heads=2)
    path = cache_path(tmp_path, cache_key(vit, "set", 2, len(images)))
    victim, nowhere = tmp_path / "victim", tmp_path / "not-yet-a-file"
    victim.write_bytes(b"precious")
    path.with_name(path.name + ".lock").symlink_to(victim)
    _partial_path(path).symlink_to(nowhere)  # a dangling link: opening it for writing creates its target
    load_or_extract(vit, images, tmp_path, "set", grid=2, batch_size=4, progress=False)
    assert victim.read_bytes() == b"precious" and not nowhere.exists()
    assert path.is_file() and not path.is_symlink()


def test_a_sweep_log_is_a_fresh_file_never_written_through_a_planted_link(tmp_path):
    """A job's log is streamed as it runs (it cannot be written whole): whatever is at its name is
    removed first and the file created exclusively (_files.open_fresh)."""
    from factortopy.fitting.distributed import run_sweep

    logs, victim = tmp_path / "logs", tmp_path / "victim"
    logs.mkdir()
    victim.write_text("precious")
    (logs / "job_0.log").symlink_to(victim)
    assert run_sweep([[sys.executable, "-c", "print('from the job')"]], gpus=[0], log_dir=str(logs),
                     verbose=False) == [0]
    assert victim.read_text() == "precious" and not (logs / "job_0.log").is_symlink()
    assert "from the job" in (logs / "job_0.log").read_text()


FIT = dict(backbone="resnet18", random_init=True, img_size=32, layers=["layer1", "layer2"], epochs=1,
           batch_size=16, dim=4, hidden=8, patience=None, val_fraction=0.2, heldout_fraction=0.2, progress=False)


# ---- content digests --------------------------------------------------------------------------------
def test_a_file_rewritten_with_its_old_size_and_mtime_gets_a_new_digest(tmp_path):
    """``cp -p`` (like ``rsync -a``, ``tar x``) rewrote weights and set the mtime back: the memo keyed
    on (path, size, mtime) returned the old file's digest (issue 23)."""
    from factortopy._digest import file_digest

    path, new = tmp_path / "weights.bin", tmp_path / "other.bin"
    path.write_bytes(b"a" * 4096)
    before = file_digest(path)
    new.write_bytes(b"b" * 4096)
    st = path.stat()
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    time.sleep(0.02)  # a ctime tick apart, whatever the file system's clock granularity
    subprocess.run(["cp", "-p", str(new), str(path)], check=True)
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)  # what the old key saw
    assert file_digest(path) == hashlib.sha256(b"b" * 4096).hexdigest()[:16] != before


# ---- the RUN_DIR lock -------------------------------------------------------------------------------
_CONTENDER = r"""
import os, sys, time
from factortopy.runs.directory import RunDirBusy, RunDirLock

out, go, n = sys.argv[1], sys.argv[2], sys.argv[3]
stale = RunDirLock._stale
def slow_stale(holder):  # widen the window between judging the lock stale and acting on it
    verdict = stale(holder)
    time.sleep(0.3)
    return verdict
RunDirLock._stale = staticmethod(slow_stale)
open(os.path.join(os.path.dirname(go), f"ready{n}"), "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
try:
    RunDirLock(out).acquire()
except RunDirBusy:
    print("busy")
    sys.exit(0)
print("won", flush=True)
time.sleep(1.5)  # hold it while the others try (never released: the process exits holding it)
"""


def test_taking_over_a_dead_writers_lock_has_one_winner_under_contention(tmp_path):
    """Five processes find a lock left by a dead process at once: the take-over used to remove and
    recreate the file without a test-and-set, and several took the same folder (issue 23)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text(f"{socket.gethostname()} {dead.pid}")
    go, n = tmp_path / "go", 5
    procs = [subprocess.Popen([sys.executable, "-c", _CONTENDER, str(out), str(go), str(i)],
                              stdout=subprocess.PIPE, text=True) for i in range(n)]
    deadline = time.time() + 60
    while len(list(tmp_path.glob("ready*"))) < n and time.time() < deadline:
        time.sleep(0.02)
    go.touch()
    results = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(results) == ["busy"] * (n - 1) + ["won"], results


def test_a_study_job_takes_over_only_its_own_previous_attempts_lock(tmp_path):
    from factortopy.runs.directory import RunDirLock, take_over_lock

    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text("gone-node 4242")
    assert not take_over_lock(str(out), "other-node 1") and (out / LOCK).read_text() == "gone-node 4242"
    assert take_over_lock(str(out), "gone-node 4242") and not (out / LOCK).exists()
    live = RunDirLock(str(out)).acquire()  # a live holder (its flock held) is never taken over, whatever it says
    try:
        assert not take_over_lock(str(out), live.holder()) and (out / LOCK).exists()
    finally:
        live.release()


# ---- strict JSON ------------------------------------------------------------------------------------
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_read_json_refuses_nan_and_infinity(tmp_path, constant):
    """metrics.json holding NaN was read without complaint (Python's json accepts it; JSON does not)."""
    from factortopy.runs import read_json

    path = tmp_path / "metrics.json"
    path.write_text('{"headline": "heldout_pearson_mean", "heldout_pearson_mean": %s}' % constant)
    with pytest.raises(ValueError, match=f"metrics.json is not valid JSON.*{constant.lstrip('-')}"):
        read_json(str(path))


# ---- checksums: every file, config.json included, and never optional -----------------------------
def _digests(folder) -> dict:
    return {p.name: _sha(p) for p in sorted(folder.iterdir()) if p.is_file()}


def _as_an_earlier_versions_run(folder) -> None:
    """What an earlier factortopy wrote: no checksums.json and no run_format."""
    import json

    os.remove(folder / "checksums.json")
    config = json.loads((folder / "config.json").read_text())
    config.pop("run_format")
    (folder / "config.json").write_text(json.dumps(config))


def test_a_run_records_the_checksum_of_every_file_config_included(run_dir):
    import json

    from factortopy.runs import RUN_FORMAT

    folder = __import__("pathlib").Path(run_dir)
    sums = json.loads((folder / "checksums.json").read_text())
    assert sorted(sums) == sorted(n for n in os.listdir(folder) if n != "checksums.json")
    assert all(sums[n] == _sha(folder / n) for n in sums)  # config.json's too, recorded before it was written
    assert json.loads((folder / "config.json").read_text())["run_format"] == RUN_FORMAT


@pytest.fixture(scope="module")
def other_run(subject_dir, tmp_path_factory):
    """Another run of the same subject (another seed): a model that fits the first run's config."""
    from factortopy.data import load_subject
    from factortopy.fitting.fit import fit

    out = str(tmp_path_factory.mktemp("runs") / "other")
    fit(load_subject(f"algonauts:{subject_dir}"), out=out, **{**FIT, "seed": 1})
    return out


def _garble(path) -> None:
    data = bytearray(path.read_bytes())
    data[-100:] = bytes(100)  # tensor bytes: the file still parses
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["swapped", "garbled"])
def test_a_substituted_or_garbled_model_without_checksums_is_an_error(damage, run_dir, other_run, tmp_path, capsys):
    """model.safetensors swapped from another run (or garbled) and checksums.json removed: evaluate
    scored the other model without a word (issue 23)."""
    import shutil

    from factortopy.cli import main
    from factortopy.runs import open_run

    run = _copy(run_dir, tmp_path)
    if damage == "swapped":
        shutil.copyfile(os.path.join(other_run, "model.safetensors"), run / "model.safetensors")
    else:
        _garble(run / "model.safetensors")
    os.remove(run / "checksums.json")
    with pytest.raises(ValueError, match="checksums.json is missing: a run written by this version"):
        open_run(run)
    assert main(["evaluate", str(run)]) == 2
    assert "checksums.json is missing" in capsys.readouterr().err
    assert not (run / "eval_heldout.npz").exists()


@pytest.mark.parametrize("edit", ["mean", "data", "record"])
def test_an_edited_config_is_an_error_naming_it(edit, run_dir, tmp_path):
    """The backbone's mean edited in both the spec and the identity was accepted (r 0.006 -> 0.000),
    and so was data pointing at another subject (issue 23): config.json is in the checksums."""
    import json

    from factortopy.runs import open_run
    from factortopy.runs.maps import load_maps

    run = _copy(run_dir, tmp_path)
    config = json.loads((run / "config.json").read_text())
    if edit == "mean":
        config["backbone"]["mean"] = [0.0, 0.0, 0.0]
        config["backbone"]["spec"]["mean"] = [0.0, 0.0, 0.0]
    elif edit == "data":
        config["data"] = "algonauts:" + str(tmp_path / "another" / "subj02")
    (run / "config.json").write_text(json.dumps(config))
    if edit == "record":  # config.json untouched, its entry struck from the record
        sums = json.loads((run / "checksums.json").read_text())
        del sums["config.json"]
        (run / "checksums.json").write_text(json.dumps(sums))
        message = "records no checksum of config.json"
    else:
        message = "config.json does not match the SHA-256 recorded"
    for read in (open_run, load_maps):
        with pytest.raises(ValueError, match=message):
            read(run)


def test_an_earlier_versions_run_without_checksums_is_read_with_a_warning(run_dir, tmp_path):
    from factortopy.runs import open_run

    run = _copy(run_dir, tmp_path)
    _as_an_earlier_versions_run(run)
    with pytest.warns(UserWarning, match="no checksums.json .* read unchecked"):
        assert open_run(run).scores()["r"].size


def test_data_replaced_at_the_recorded_path_is_an_error_naming_what_differs(run_dir, subject_dir, tmp_path, capsys):
    """The recorded data digest is compared when the run is evaluated with its recorded data: a
    subject folder replaced by another subject's was scored without a word (issue 23)."""
    import json
    import shutil

    from factortopy.cli import main

    data = tmp_path / "data" / "subj01"
    shutil.copytree(subject_dir, data)
    run = _copy(run_dir, tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["data"] = f"algonauts:{data}"  # the run as fitted there (same data, the record kept consistent)
    text = json.dumps(config)
    (run / "config.json").write_text(text)
    sums = json.loads((run / "checksums.json").read_text())
    sums["config.json"] = hashlib.sha256(text.encode()).hexdigest()
    (run / "checksums.json").write_text(json.dumps(sums))
    assert main(["evaluate", str(run), "--no-write"]) == 0
    capsys.readouterr()
    for h in ("lh", "rh"):  # another subject's responses to the same images in its place (NSD's shared images)
        fmri = data / "training_split" / "training_fmri" / f"{h}_training_fmri.npy"
        np.save(fmri, np.random.default_rng(7).permutation(np.load(fmri), axis=0))
    assert main(["evaluate", str(run), "--no-write"]) == 2
    err = capsys.readouterr().err
    assert "are not the data this run was fitted on" in err and config["data_digest"] in err and "--data" in err


# ---- fit --overwrite: write aside, swap at the end --------------------------------------------------
def test_fit_overwrite_replaces_the_old_run_only_when_the_new_one_is_finished(run_dir, subject_dir, tmp_path,
                                                                               capsys):
    """A typo in --layers or a diverging --lr left an empty folder: --overwrite deleted the old run
    before the new fit could fail (issue 23)."""
    from factortopy.cli import main
    from factortopy.data import load_subject
    from factortopy.fitting.config import DivergedError
    from factortopy.fitting.fit import fit
    from factortopy.runs import open_run
    from factortopy.runs.directory import NEXT

    run = _copy(run_dir, tmp_path)
    assert main(["evaluate", str(run)]) == 0
    (run / "notes.txt").write_text("my notes")
    before = _digests(run)
    base = ["fit", "--data", f"algonauts:{subject_dir}", "--backbone", "resnet18", "--random-init", "--img-size", "32",
            "--epochs", "1", "--dim", "4", "--hidden", "8", "--out", str(run), "--overwrite", "--quiet"]
    assert main(base + ["--layers", "layer1,layr2"]) == 2  # a typo
    assert "layr2" in capsys.readouterr().err
    assert _digests(run) == before and not (run / NEXT).exists()
    with pytest.raises(DivergedError):
        fit(load_subject(f"algonauts:{subject_dir}"), out=str(run), overwrite=True, **{**FIT, "lr": 1e30})
    assert _digests(run) == before and not (run / NEXT).exists()
    assert open_run(run).scores()["r"].size  # the old run reads as before

    fit(load_subject(f"algonauts:{subject_dir}"), out=str(run), overwrite=True, **{**FIT, "seed": 3})
    after = _digests(run)
    assert after["notes.txt"] == before["notes.txt"]  # not a run's file: kept
    assert "eval_heldout.npz" not in after and "eval_heldout.json" not in after  # they scored the old model
    assert after["model.safetensors"] != before["model.safetensors"] and not (run / NEXT).exists()
    assert open_run(run).config["fit"]["seed"] == 3


# ---- evaluate racing fit --overwrite ---------------------------------------------------------------
def test_an_evaluation_racing_a_refit_never_leaves_the_old_models_results(run_dir, subject_dir, tmp_path,
                                                                          monkeypatch):
    """evaluate racing fit --overwrite left the old model's eval_heldout.json in the new run, which a
    study then reused (issue 23). The race, made certain: the refit happens while evaluate predicts."""
    import shutil

    from factortopy.data import load_subject
    from factortopy.evaluation.run import evaluate_run
    from factortopy.fitting.fit import fit
    from factortopy.fitting.run import FactorTopyRun
    from factortopy.runs.maps import load_maps

    run = _copy(run_dir, tmp_path)
    predict = FactorTopyRun.predict_subject

    def predict_while_refitted(self, *args, **kwargs):
        out = predict(self, *args, **kwargs)
        monkeypatch.setattr(FactorTopyRun, "predict_subject", predict)
        fit(load_subject(f"algonauts:{subject_dir}"), out=str(run), overwrite=True, **{**FIT, "seed": 5})
        return out
    monkeypatch.setattr(FactorTopyRun, "predict_subject", predict_while_refitted)
    with pytest.raises(ValueError, match="refitted while it was evaluated"):
        evaluate_run(str(run))
    assert not list(run.glob("eval_*"))
    # results of the old model put into the new run anyway (a copy, a race missed): never shown as its own
    old = _copy(run_dir, tmp_path, "old")
    evaluate_run(str(old))
    for name in ("eval_heldout.npz", "eval_heldout.json"):
        shutil.copyfile(old / name, run / name)
    with pytest.warns(UserWarning, match="scored another model"):
        maps = load_maps(run)
    assert "heldout_r" not in maps and "heldout_r" in load_maps(old)
