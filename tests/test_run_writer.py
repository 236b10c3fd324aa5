"""The one run writer (factortopy.runs.writer): declared files only, a checksum for every file,
config.json last with its data spec absolute, one headline key, files that follow the umask."""
import hashlib
import json
import os
import stat

import numpy as np
import pytest

from factortopy.runs import CHECKSUMS, CONFIG, METRICS, SCORES, SELECTORS
from factortopy.runs.writer import RunWriter


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _write_factortopy_files(writer, n=4):
    import torch

    from factortopy.fitting.run import MODEL, RESPONSE_STATS, TRAIN_LOG, save_model

    vertex, hemi = np.arange(n), np.array(["lh"] * n)
    writer.file(MODEL, lambda tmp: save_model(tmp, torch.nn.Linear(2, 2)))  # safetensors: 0600 by itself
    writer.npz(RESPONSE_STATS, mean=np.zeros(n), std=np.ones(n))
    writer.npz(SELECTORS, vertex=vertex, hemi=hemi, layer_probs=np.ones((n, 1)))
    writer.npz(SCORES, vertex=vertex, hemi=hemi, r=np.zeros(n), r2=np.zeros(n))
    writer.metrics(dict(heldout_pearson_mean=0.5, headline="heldout_pearson_mean"))
    writer.jsonl(TRAIN_LOG, [dict(epoch=1, train_loss=0.1)])


@pytest.mark.parametrize("umask", [0o002, 0o027])
def test_every_run_file_follows_the_umask(tmp_path, umask):
    """model.safetensors was 0600 whatever the umask (safetensors' own choice): a lab-mate could not
    predict from a shared run. Every file of a run gets what open() gives: 0o666 less the umask."""
    from factortopy.fitting.run import FactorTopyRun

    before = os.umask(umask)
    try:
        writer = RunWriter(str(tmp_path / "run"), FactorTopyRun)
        _write_factortopy_files(writer)
        writer.finish(dict(data=None, model={}))
    finally:
        os.umask(before)
    names = sorted(os.listdir(tmp_path / "run"))
    assert "model.safetensors" in names and CONFIG in names and CHECKSUMS in names
    for name in names:
        mode = stat.S_IMODE(os.stat(tmp_path / "run" / name).st_mode)
        assert mode == 0o666 & ~umask, (name, oct(mode))


def test_checksums_record_every_file_and_config_comes_last(tmp_path, monkeypatch):
    from factortopy.fitting.run import FactorTopyRun

    out = tmp_path / "run"
    writer = RunWriter(str(out), FactorTopyRun)
    _write_factortopy_files(writer)
    assert not (out / CONFIG).exists()  # not finished yet
    sums = json.load(open(out / CHECKSUMS))
    assert sorted(sums) == sorted(FactorTopyRun.files + (SELECTORS, SCORES, METRICS))
    assert all(sums[n] == _sha(out / n) for n in sums)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "subj").mkdir()
    config = writer.finish(dict(data="generic:subj?split=train", model={}))
    assert config["kind"] == "factortopy"
    recorded = json.load(open(out / CONFIG))
    assert recorded["data"] == f"generic:{tmp_path / 'subj'}?split=train"  # absolute, options kept


def test_the_writer_takes_only_the_kinds_files_and_finishes_only_when_all_are_there(tmp_path):
    from factortopy.fitting.run import FactorTopyRun

    writer = RunWriter(str(tmp_path / "run"), FactorTopyRun)
    with pytest.raises(ValueError, match="has no file 'ridge.npz'.*Run.files"):
        writer.npz("ridge.npz", a=np.zeros(1))
    writer.npz(SELECTORS, vertex=np.arange(2), hemi=np.array(["lh", "lh"]))
    with pytest.raises(ValueError, match="needs scores.npz, metrics.json, model.safetensors"):
        writer.finish({})
    assert not (tmp_path / "run" / CONFIG).exists()
    with pytest.raises(ValueError, match="headline"):
        writer.metrics(dict(heldout_pearson_mean=0.5, headline="heldout_pearson_mean: images that chose nothing"))


def test_a_failed_write_leaves_no_file_behind(tmp_path):
    from factortopy.fitting.run import FactorTopyRun

    writer = RunWriter(str(tmp_path / "run"), FactorTopyRun)

    def broken(tmp):
        open(tmp, "w").write("half")
        raise OSError(28, "No space left on device")

    # named with what to do, the errno kept (issue 22: one line on the command line)
    with pytest.raises(OSError, match=r"cannot write .*model\.safetensors \(the disk is full\)") as err:
        writer.file("model.safetensors", broken)
    assert err.value.errno == 28 and os.listdir(tmp_path / "run") == []


def test_overwrite_removes_exactly_the_recorded_files(tmp_path):
    """--overwrite removes what the old run's writer recorded (the kind's own files included), once
    the new run is finished; files that are not a run's stay."""
    from factortopy.baselines.run import RIDGE, RidgeRun
    from factortopy.fitting.run import FactorTopyRun
    from factortopy.runs.directory import claim_run_dir, run_dir_state

    out = str(tmp_path / "run")
    writer = RunWriter(out, FactorTopyRun)
    _write_factortopy_files(writer)
    writer.finish(dict(data=None, model={"grid": 8}))
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert run_dir_state(out) == "finished"
    claim = claim_run_dir(out, overwrite=True)
    try:
        assert claim.state == "finished" and claim.replacing
        new = RunWriter(claim.path, RidgeRun)  # a run of another kind, with other files of its own
        new.npz(RIDGE, w=np.zeros(2))
        new.npz(SELECTORS, vertex=np.arange(2), hemi=np.array(["lh", "lh"]))
        new.npz(SCORES, vertex=np.arange(2), hemi=np.array(["lh", "lh"]), r=np.zeros(2), r2=np.zeros(2))
        new.metrics(dict(heldout_pearson_mean=0.5, headline="heldout_pearson_mean"))
        new.finish(dict(data=None))
        claim.finish()
    finally:
        claim.release()
    assert sorted(os.listdir(out)) == sorted([RIDGE, SELECTORS, SCORES, METRICS, CHECKSUMS, CONFIG, "notes.txt"])
    assert json.load(open(os.path.join(out, CONFIG)))["kind"] == "ridge"
