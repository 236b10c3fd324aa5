"""Image sets read lazily, and their identity (the feature cache's key).

Every image sequence is ``len()`` + ``[i] -> (H, W, 3) uint8 RGB``. Its identity is computed by ONE
function, :func:`image_set_key`, from what the sequence really reads: resolved absolute paths and
the files' content digests (``factortopy._digest.file_digest``), or the bytes of in-memory arrays.
A sequence class takes part by defining ``identity() -> JSON-able`` built from those; anything
else is hashed image by image. Loaders never name their image set themselves.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from factortopy._digest import bytes_digest, file_digest  # whole-file SHA-256, remembered by path + size + mtime


def _array_digest(array) -> str:
    a = np.ascontiguousarray(array)
    return bytes_digest(a.dtype.str, str(a.shape), a.data, length=64)


def image_set_key(images) -> str:
    """The feature-cache key of an image set: 24 hex digits that change whenever the pixels can.

    From ``images.identity()`` where the sequence has it (files: resolved absolute paths + content
    digests; NSD's HDF5: its absolute path, whole-file digest, dataset and ids; arrays: their bytes,
    or the .npy file's digest when memory-mapped); otherwise from the bytes of every image.

    Consequences: two different image sets in folders with the same name get different keys
    (paths and content differ); images rewritten in place (same names and count) get a new key
    (content differs); an identical copy of a subject in ANOTHER folder gets a different key too,
    because the absolute paths are part of the key - its features are extracted once more rather
    than tying the cache to files elsewhere that may change independently.
    """
    identity = getattr(images, "identity", None)
    if callable(identity):
        parts = identity()
    else:
        parts = {"kind": "images", "digests": [_array_digest(np.asarray(images[i])) for i in range(len(images))]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


# ----------------------------------------------------------------------------- reading image files
#: Pillow modes holding more than 8 bits per pixel -> bits (scaled to 8 bits, never clipped)
WIDE_MODES = {"I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 16}


def read_image(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file.

    16-bit greyscale (Pillow modes ``I;16``/``I``) is scaled by its bit depth (x * 255 / 65535,
    rounded), not clipped at 255 as Pillow's ``convert('RGB')`` would; 16-bit colour PNGs are already
    reduced to their high byte by Pillow. An image beyond Pillow's decompression-bomb limit is a
    clear error naming the file and how to allow it.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in WIDE_MODES:
                a = np.asarray(im).astype(np.int64)
                top = (1 << WIDE_MODES[im.mode]) - 1
                if a.size and (a.min() < 0 or a.max() > top):
                    raise ValueError(f"{path}: Pillow mode {im.mode} holds values {a.min()}..{a.max()}, outside the "
                                     f"{WIDE_MODES[im.mode]}-bit range 0..{top}; convert it to 8-bit RGB")
                grey = np.rint(a * (255.0 / top)).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2)
            if im.mode == "F":
                raise ValueError(f"{path}: floating-point images (Pillow mode F) have no fixed range; "
                                 "convert it to 8-bit RGB")
            return np.asarray(im.convert("RGB"))
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not an image file Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP, ...): "
                         "give image files") from None
    except Image.DecompressionBombError as err:
        raise ValueError(f"{path}: too many pixels to decode safely ({err}); if you trust the file, raise "
                         "PIL.Image.MAX_IMAGE_PIXELS before loading, or downscale the image") from None


class ImageFiles:
    """A sequence of image files; ``images[i]`` is an (H, W, 3) uint8 array (RGB, :func:`read_image`)."""

    def __init__(self, paths):
        self.paths = [os.path.abspath(str(p)) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return read_image(self.paths[i])

    def identity(self) -> dict:
        return {"kind": "files", "files": [[p, file_digest(p)] for p in self.paths]}


class ImageArray:
    """A sequence view of an (n, H, W, 3) uint8 array (in memory or memory-mapped)."""

    def __init__(self, array):
        array = np.asarray(array) if not isinstance(array, np.memmap) else array
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
            raise ValueError(f"images must be an (n, H, W, 3) uint8 array, got {array.shape} {array.dtype}")
        self.array = array

    def __len__(self) -> int:
        return self.array.shape[0]

    def __getitem__(self, i: int) -> np.ndarray:
        return np.asarray(self.array[i])

    def identity(self) -> dict:
        a = self.array
        if isinstance(a, np.memmap) and getattr(a, "filename", None) and a.flags.c_contiguous:
            # the file's digest (cached by stat) instead of re-hashing gigabytes each run
            return {"kind": "npy", "path": os.path.abspath(a.filename), "digest": file_digest(a.filename),
                    "offset": int(a.offset), "shape": list(a.shape)}
        return {"kind": "array", "digest": _array_digest(a)}


class ImageSubset:
    """Positions ``index`` of an image sequence (e.g. a split)."""

    def __init__(self, images, index):
        self.images, self.index = images, np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return self.index.size

    def __getitem__(self, i: int) -> np.ndarray:
        return self.images[int(self.index[i])]

    def identity(self) -> dict:
        return {"kind": "subset", "of": image_set_key(self.images), "index": self.index.tolist()}
