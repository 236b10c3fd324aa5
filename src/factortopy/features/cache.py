"""On-disk feature cache: extract once (streaming, batch by batch), reuse in later fits.

One HDF5 file per (backbone, weights, layers, input size, normalisation, grid, image set, factortopy
version): the file name ends in a digest of all of them, and the full key is stored in the file and
compared on open, so a change of any of them never reuses stale features.

Layout: dataset ``tokens`` (n_images, L, grid^2 + 1, C_max) float16, chunked per image; dataset
``crc32`` (n_images,) uint32, the CRC-32 of each image's stored bytes; attributes ``key`` (JSON),
``n_done`` (images written, updated after every batch) and ``complete`` (set last).

Writing (docs/reliability.md): under a lock file of our own (``<name>.h5.lock``, the ``filelock``
package: HDF5's own locking is often off on cluster file systems, and two writers then broke the
file), into ``<name>.partial.h5``, renamed to ``<name>.h5`` only when complete. An interrupted
partial file resumes from ``n_done`` (its finished rows checked against their CRCs); a complete
file whose rows do not match their CRCs (garbled bytes) is rebuilt, never read as valid.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from factortopy.backbones.spec import backbone_identity
from factortopy.features.extract import Features, token_rows

CACHE_FORMAT = 3  # 2: keyed on the backbone identity (backbones.spec); 3: per-image CRC-32


def cache_key(backbone, image_key: str, grid: int, n_images: int) -> dict:
    """Everything the cached tokens depend on: the backbone's resolved identity (weights
    fingerprint, layers, channels, global tokens, input size, mean, std; see
    :func:`factortopy.backbones.spec.backbone_identity`), the image set's key, grid and count."""
    from factortopy import __version__
    from factortopy.backbones.spec import RESOLVED_FIELDS

    identity = backbone_identity(backbone)
    return dict(format=CACHE_FORMAT, factortopy=__version__, model=identity["name"],
                backbone={k: identity[k] for k in RESOLVED_FIELDS}, grid=int(grid), images=str(image_key),
                n_images=int(n_images), dtype="float16")


def _slug(text: str, n: int) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:n] or "x"


def cache_path(cache_dir, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return Path(cache_dir) / f"{_slug(key['model'], 60)}-{_slug(key['images'], 40)}-{digest}.h5"


def _partial_path(path: Path) -> Path:
    return path.with_name(path.name[:-len(".h5")] + ".partial.h5")


def _unlink_if_link(path: Path) -> None:
    """Remove ``path`` when it is a symbolic link (the link, never its target): the cache folder
    may be shared, and a file the cache writes or locks must be its own."""
    if path.is_symlink():
        path.unlink()


def _row_crcs(rows: np.ndarray) -> np.ndarray:
    """(n,) uint32 CRC-32 of each row's bytes."""
    return np.array([zlib.crc32(np.ascontiguousarray(r).view(np.uint8)) for r in rows], dtype=np.uint32)


def _bad_rows(f, stop: int) -> np.ndarray:
    """Rows [0, stop) of an open cache file whose bytes differ from their stored CRC-32."""
    tokens, crcs = f["tokens"], f["crc32"]
    bad = []
    for lo in range(0, stop, 256):  # bounded memory: 256 images at a time
        hi = min(lo + 256, stop)
        bad.extend(lo + np.flatnonzero(_row_crcs(tokens[lo:hi]) != crcs[lo:hi]))
    return np.asarray(bad, dtype=np.int64)


def read_cache(path) -> Features:
    """A complete cache file -> Features (tokens in memory, float16). Raises ValueError if it is
    incomplete or any image's bytes differ from their CRC-32."""
    import h5py

    with h5py.File(path, "r") as f:
        if not f.attrs.get("complete", False):
            raise ValueError(f"feature cache {path} is incomplete (interrupted write)")
        key = json.loads(f.attrs["key"])
        tokens = f["tokens"][...]
        if "crc32" not in f:
            raise ValueError(f"feature cache {path} has no checksums (an older format): delete it")
        bad = np.flatnonzero(_row_crcs(tokens) != f["crc32"][...])
    if len(bad):
        raise ValueError(f"feature cache {path} is damaged: {len(bad)} image(s) (first: row {bad[0]}) differ from "
                         "their checksum; delete it (load_or_extract rebuilds it)")
    return Features(torch.from_numpy(tokens), key["backbone"]["layer_names"], key["backbone"]["channels"],
                    key["grid"])


def _state(path: Path, key_json: str, shape: tuple) -> tuple[str, int]:
    """('complete' | 'partial' | 'rebuild' | 'absent', images done) of an existing file (complete
    files are read in full by :func:`read_cache`, which checks every row)."""
    import h5py

    if not path.exists():
        return "absent", 0
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("key") != key_json or f["tokens"].shape != shape or "crc32" not in f:
                return "rebuild", 0  # a digest collision or a foreign file: never trust it
            n_done = max(0, min(int(f.attrs.get("n_done", 0)), shape[0]))
            if f.attrs.get("complete", False) and n_done == shape[0]:
                return "complete", n_done
            bad = _bad_rows(f, n_done)  # a partial file resumes only over rows that check out
            return "partial", int(bad[0]) if len(bad) else n_done
    except Exception:  # truncated / corrupt (the process died inside a write)
        return "rebuild", 0


def _read_valid(path: Path, key_json: str, shape: tuple) -> Features | None:
    """The features of a complete, intact cache at ``path``; None (after removing a damaged one)
    otherwise."""
    if _state(path, key_json, shape)[0] != "complete":
        return None
    try:
        return read_cache(path)
    except Exception as err:  # garbled bytes in a file marked complete: rebuilt, never used
        warnings.warn(f"{err}; rebuilding it", stacklevel=3)
        return None


def _write_error(err: OSError, path: Path, cache_dir) -> OSError:
    from factortopy._destination import NO_SPACE, write_failed

    if err.errno is None and "No space left" in str(err):  # HDF5's own report of a full disk
        err = OSError(errno.ENOSPC, str(err))
    todo = f"free space in {cache_dir}" if err.errno in NO_SPACE else f"make {cache_dir} writable"
    return write_failed(err, f"the feature cache {path}", f"{todo} (or choose another --cache-dir) and rerun; the "
                        "extraction resumes where it stopped")


@torch.no_grad()
def load_or_extract(backbone, images, cache_dir, image_key: str, grid: int = 8, batch_size: int = 32,
                    device: str = "cpu", progress: bool = True, lock_timeout: float = -1) -> Features:
    """Features of ``images`` under ``backbone``, from ``cache_dir`` when cached, else extracted now.

    images: a sequence of (H, W, 3) uint8 arrays. image_key: the image set's identity, from
    :func:`factortopy.data.images.image_set_key` (``subject.image_key``): content and absolute
    paths, never a name a loader picked.
    lock_timeout: seconds to wait for another process writing the same cache (-1: as long as it
    takes); past it, a ValueError naming the lock.
    Returns :class:`Features` with tokens (n_images, L, grid^2 + 1, C_max) float16 in memory.
    An interrupted extraction resumes where its last completed batch ended.
    """
    import h5py
    from filelock import FileLock, Timeout
    from factortopy._progress import progress_bar as tqdm  # renders in Jupyter, else a plain bar

    if not image_key:
        raise ValueError("image_key must name the image set (it is part of the cache key)")
    n = len(images)
    info = backbone.info
    key = cache_key(backbone, image_key, grid, n)
    key_json = json.dumps(key, sort_keys=True)
    path = cache_path(cache_dir, key)
    shape = (n, len(info.layer_names), grid * grid + 1, max(info.channels))
    identity = backbone_identity(backbone)
    # A complete file only ever appears by rename, so it is read without the lock.
    features = _read_valid(path, key_json, shape)
    if features is not None:
        features.backbone = identity
        return features
    os.makedirs(cache_dir, exist_ok=True)
    _unlink_if_link(Path(str(path) + ".lock"))  # a lock library that opens with O_TRUNC would truncate its target
    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if progress:
            print(f"waiting for another process writing the feature cache {path}")
        try:
            lock.acquire(timeout=lock_timeout)
        except Timeout:
            raise ValueError(f"the feature cache {path} is being written by another process (lock "
                             f"{lock.lock_file}): wait for it, or use another --cache-dir") from None
    try:
        features = _read_valid(path, key_json, shape)  # the other writer may have finished it
        if features is not None:
            features.backbone = identity
            return features
        tokens = _extract_into(_partial_path(path), backbone, images, key_json, shape, grid, batch_size, device,
                               progress, cache_dir, h5py, tqdm)
        if path.exists():
            path.unlink()  # a damaged complete file
        os.replace(_partial_path(path), path)
    finally:
        lock.release()
    return Features(tokens, list(info.layer_names), [int(c) for c in info.channels], grid, identity)


def _extract_into(partial: Path, backbone, images, key_json, shape, grid, batch_size, device, progress,
                  cache_dir, h5py, tqdm) -> torch.Tensor:
    """Fill (or resume) the partial file; returns its tokens. Caller holds the lock."""
    from factortopy._destination import check_destination

    n = shape[0]
    _unlink_if_link(partial)  # a planted link is replaced, never written through
    state, start = _state(partial, key_json, shape)
    if state in ("absent", "rebuild"):
        start = 0
    # the rows still to write (float16) and their CRCs: refused now, not after an hour of extraction
    check_destination(cache_dir, "--cache-dir", folder=True,
                      need_bytes=(n - start) * (int(np.prod(shape[1:])) * 2 + 4))
    reading = False
    try:
        if state == "rebuild":
            partial.unlink()
        if state in ("absent", "rebuild"):
            with h5py.File(partial, "x") as f:  # created here, never an existing file
                f.attrs["key"] = key_json
                f.attrs["complete"] = False
                f.attrs["n_done"] = 0
                f.create_dataset("tokens", shape=shape, dtype="float16", chunks=(1,) + shape[1:])
                f.create_dataset("crc32", shape=(n,), dtype="uint32")
            start = 0
        backbone = backbone.to(device).eval()
        bar = tqdm(total=n, initial=start, desc=f"features {backbone.info.name}", unit="img", disable=not progress)
        with h5py.File(partial, "r+") as f:
            ds, crcs = f["tokens"], f["crc32"]
            f.attrs["n_done"] = start
            for lo in range(start, n, batch_size):
                hi = min(lo + batch_size, n)
                reading = True  # an OSError now is the images' (a file that cannot be read), not the cache's
                rows = token_rows(backbone, images, lo, hi, grid, device, torch.float16).numpy()
                reading = False
                ds[lo:hi] = rows
                crcs[lo:hi] = _row_crcs(rows)
                f.flush()  # the data is on disk before the counter says so
                f.attrs["n_done"] = hi
                f.flush()
                bar.update(hi - lo)
            f.attrs["complete"] = True
            tokens = torch.from_numpy(ds[...])
        bar.close()
    except OSError as err:
        if reading:
            raise
        raise _write_error(err, partial, cache_dir) from None
    return tokens
