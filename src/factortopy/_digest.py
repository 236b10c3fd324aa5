"""Content digests of files, computed once: a streamed SHA-256 of the whole file, remembered by
(absolute path, size, mtime_ns, inode, ctime_ns) so that a file read again costs a ``stat``, not a
re-hash.

Why more than the modification time: ``cp -p``, ``rsync -a`` and ``tar x`` rewrite a file and then
set its mtime back to the source's, so new weights of the same size kept the old digest (and a fit
recorded the old fingerprint). The change time (ctime) cannot be set back by a user: any write,
rename or ``utime`` moves it to now, and a file replaced by rename has another inode.

Used wherever an identity must follow a file's content (weights files, image files): a digest of
part of a file misses edits in the rest (negating tensors in the middle of a weights file left an
old first-MiB fingerprint valid), and a name misses edits in place.

The memo lives in memory and, when writable, in ``$FACTORTOPY_CACHE_DIR/digests.json`` (default
``~/.cache/factortopy``), so a 37 GB ``nsd_stimuli.hdf5`` is hashed once per machine, not per run.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import os
import threading
import time

_CHUNK = 1 << 22  # 4 MiB: large enough to run at disk speed, small enough to stay off the heap
_MEMO: dict[str, str] = {}
_LOCK = threading.Lock()
_loaded = False
_dirty = False
_last_save = 0.0
_SAVE_EVERY = 2.0  # seconds: 10,000 image files must not rewrite the memo 10,000 times


def _memo_path() -> str:
    root = os.environ.get("FACTORTOPY_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "factortopy")
    return os.path.join(root, "digests.json")


def _load_memo() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    try:
        with open(_memo_path()) as f:
            stored = json.load(f)
        if isinstance(stored, dict):
            _MEMO.update({str(k): str(v) for k, v in stored.items()})
    except (OSError, ValueError):
        pass  # no memo yet, or an unreadable one: digests are recomputed, never trusted blindly


def _save_memo() -> None:
    global _dirty, _last_save
    if not _dirty:
        return
    _dirty, _last_save = False, time.monotonic()
    path = _memo_path()
    try:
        from factortopy._files import write_text

        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_text(path, json.dumps(_MEMO), durable=False)  # a lost memo costs a re-hash, never a wrong digest
    except OSError:
        pass  # a read-only home: the in-memory memo still saves the re-hash within this process


def sha256_file(path) -> str:
    """SHA-256 (hex) of the whole file, streamed and computed afresh (no memo)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path, length: int = 16) -> str:
    """SHA-256 (hex, first ``length`` characters) of the whole file at ``path``.

    The key of the memo is the absolute path with the file's size, modification and change times in
    nanoseconds and inode: a rewrite moves the ctime even when the mtime is set back (``cp -p``,
    ``rsync -a``), so a stale digest is never returned.
    """
    global _dirty
    path = os.path.abspath(os.fspath(path))
    st = os.stat(path)
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_ctime_ns}"
    with _LOCK:
        _load_memo()
        hit = _MEMO.get(key)
    if hit is None:
        hit = sha256_file(path)
        with _LOCK:
            # forget older versions of the same file so the memo does not grow with every rewrite
            for k in [k for k in _MEMO if k.startswith(path + "|")]:
                del _MEMO[k]
            _MEMO[key] = hit
            _dirty = True
            if time.monotonic() - _last_save > _SAVE_EVERY:
                _save_memo()
    return hit[:length]


atexit.register(lambda: _save_memo())  # what the last batch of digests added


def bytes_digest(*parts, length: int = 16) -> str:
    """SHA-256 (hex) of the given bytes-like or str parts, in order, with separators."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else memoryview(p).cast("B"))
        h.update(b"\x00")
    return h.hexdigest()[:length]
