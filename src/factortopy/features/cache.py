"""On-disk feature cache: extract once (streaming, batch by batch), reuse in later fits.

One HDF5 file per (backbone, weights, layers, input size, normalisation, grid, image set, factortopy
version): the file name ends in a digest of all of them, and the full key is stored in the file and
compared on open, so a change of any of them never reuses stale features.

Layout: dataset ``tokens`` (n_images, L, grid^2 + 1, C_max) float16, chunked per image; attributes
``key`` (JSON), ``n_done`` (images written, updated after every batch) and ``complete`` (set last).
A file whose ``complete`` is not set was interrupted: it is resumed from ``n_done`` (or rebuilt if
it cannot be read), never read as valid.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import torch

from factortopy.backbones.spec import backbone_identity
from factortopy.features.extract import Features, images_to_tokens, prepare_batch, to_storage

CACHE_FORMAT = 2  # 2: keyed on the backbone identity (backbones.spec)


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


def read_cache(path) -> Features:
    """A complete cache file -> Features (tokens in memory, float16). Raises if incomplete."""
    import h5py

    with h5py.File(path, "r") as f:
        if not f.attrs.get("complete", False):
            raise ValueError(f"feature cache {path} is incomplete (interrupted write)")
        key = json.loads(f.attrs["key"])
        tokens = torch.from_numpy(f["tokens"][...])
    return Features(tokens, key["backbone"]["layer_names"], key["backbone"]["channels"], key["grid"])


def _state(path: Path, key_json: str, shape: tuple) -> tuple[str, int]:
    """('complete' | 'partial' | 'rebuild' | 'absent', images done) of an existing file."""
    import h5py

    if not path.exists():
        return "absent", 0
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("key") != key_json or f["tokens"].shape != shape:
                return "rebuild", 0  # a digest collision or a foreign file: never trust it
            n_done = int(f.attrs.get("n_done", 0))
            if f.attrs.get("complete", False) and n_done == shape[0]:
                return "complete", n_done
            return "partial", max(0, min(n_done, shape[0]))
    except Exception:  # truncated / corrupt (the process died inside a write)
        return "rebuild", 0


@torch.no_grad()
def load_or_extract(backbone, images, cache_dir, image_key: str, grid: int = 8, batch_size: int = 32,
                    device: str = "cpu", progress: bool = True) -> Features:
    """Features of ``images`` under ``backbone``, from ``cache_dir`` when cached, else extracted now.

    images: a sequence of (H, W, 3) uint8 arrays. image_key: the image set's identity, from
    :func:`factortopy.data.images.image_set_key` (``subject.image_key``): content and absolute
    paths, never a name a loader picked.
    Returns :class:`Features` with tokens (n_images, L, grid^2 + 1, C_max) float16 in memory.
    An interrupted extraction resumes where its last completed batch ended.
    """
    import h5py
    from tqdm.auto import tqdm

    if not image_key:
        raise ValueError("image_key must name the image set (it is part of the cache key)")
    n = len(images)
    info = backbone.info
    key = cache_key(backbone, image_key, grid, n)
    key_json = json.dumps(key, sort_keys=True)
    path = cache_path(cache_dir, key)
    shape = (n, len(info.layer_names), grid * grid + 1, max(info.channels))
    state, start = _state(path, key_json, shape)
    if state == "complete":
        features = read_cache(path)
        features.backbone = backbone_identity(backbone)
        return features
    os.makedirs(cache_dir, exist_ok=True)
    if state == "rebuild":
        path.unlink()
    if state in ("absent", "rebuild"):
        with h5py.File(path, "w") as f:
            f.attrs["key"] = key_json
            f.attrs["complete"] = False
            f.attrs["n_done"] = 0
            f.create_dataset("tokens", shape=shape, dtype="float16", chunks=(1,) + shape[1:])
        start = 0

    backbone = backbone.to(device).eval()
    autocast = str(device).startswith("cuda")
    bar = tqdm(total=n, initial=start, desc=f"features {info.name}", unit="img", disable=not progress)
    with h5py.File(path, "r+") as f:
        ds = f["tokens"]
        for lo in range(start, n, batch_size):
            hi = min(lo + batch_size, n)
            batch = prepare_batch(backbone, images, lo, hi, device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                tokens = images_to_tokens(backbone, batch, grid)
            ds[lo:hi] = to_storage(tokens, torch.float16).numpy()
            f.flush()  # the data is on disk before the counter says so
            f.attrs["n_done"] = hi
            f.flush()
            bar.update(hi - lo)
        f.attrs["complete"] = True
        tokens = torch.from_numpy(ds[...])
    bar.close()
    return Features(tokens, list(info.layer_names), [int(c) for c in info.channels], grid, backbone_identity(backbone))
