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
