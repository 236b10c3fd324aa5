"""Image sets read lazily, and their identity (the feature cache's key).

Every image sequence is ``len()`` + ``[i] -> (H, W, 3) uint8 RGB``. Its identity is computed by ONE
function, :func:`image_set_key`, from what the sequence really reads: resolved absolute paths and
the files' content digests (``factortopy._digest.file_digest``), or the bytes of in-memory arrays.
A sequence class takes part by defining ``identity() -> JSON-able`` built from those; anything
else is hashed image by image. Loaders never name their image set themselves.

A user's images (the estimator's ``fit`` / ``predict``, :func:`factortopy.predict`) may be file
paths, PIL images, or arrays of any size: :class:`UserImages` wraps them as such a sequence and
:func:`as_rgb_uint8` converts each on access.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib

import numpy as np

from factortopy._digest import bytes_digest, file_digest  # whole-file SHA-256, memoised (path, size, times, inode)


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
#: the most pixels (width x height) an image file may have; beyond it the file is refused before it
#: is decoded. 8192 x 8192: 200 MB as RGB bytes, far above any stimulus set (NSD's are 425 x 425) and
#: any backbone's input, and a bound on what a small file can make us allocate (a 117 kB PNG can
#: declare 11,000 x 11,000 pixels: 363 MB as RGB, gigabytes once converted). Raise it with
#: ``$FACTORTOPY_MAX_IMAGE_PIXELS`` (or this attribute, from Python). It replaces Pillow's warning
#: between its limit and twice it; beyond twice ``PIL.Image.MAX_IMAGE_PIXELS`` Pillow itself
#: refuses (179 million pixels by default), so a higher limit here needs that one raised too.
MAX_IMAGE_PIXELS = 8192 * 8192
MAX_PIXELS_ENV = "FACTORTOPY_MAX_IMAGE_PIXELS"


def max_image_pixels() -> int:
    """The pixel limit in force: ``$FACTORTOPY_MAX_IMAGE_PIXELS`` when set, else :data:`MAX_IMAGE_PIXELS`."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return int(MAX_IMAGE_PIXELS)
    try:
        value = int(float(text)) if text.lower() != "inf" else -1
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"${MAX_PIXELS_ENV}={text!r}: give the most pixels (width x height) an image may have, "
                         f"a whole number >= 1 (default {MAX_IMAGE_PIXELS})")
    return value


#: what Pillow raises while decoding a damaged file (a truncated JPEG or PNG: OSError; broken
#: chunks: SyntaxError; a short header: EOFError; bad structures: struct.error / zlib.error; a
#: ValueError of Pillow's is handled beside our own)
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, IndexError, TypeError, struct.error, zlib.error)


def _damaged(path, err) -> ValueError:
    why = " ".join(str(err).split()) or type(err).__name__
    return ValueError(f"image {path} is damaged or truncated ({why}): replace the file, or remove it from the "
                      "image set")


def read_image(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file.

    16-bit greyscale (Pillow modes ``I;16``/``I``) is scaled by its bit depth (x * 255 / 65535,
    rounded), not clipped at 255 as Pillow's ``convert('RGB')`` would; 16-bit colour PNGs are already
    reduced to their high byte by Pillow. Every failure is a ValueError naming the file and what to
    do (docs/reliability.md): a folder, an empty file, a file Pillow cannot read, a damaged or
    truncated one, an image of zero size, or one with more pixels than :func:`max_image_pixels`
    (refused from its header, before anything is decoded). A missing or unreadable file stays an
    OSError naming it.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder, not an image file: move it out of the image folder (or rename it)")
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise ValueError(f"image {path} is an empty file (0 bytes): replace it, or remove it from the image set")
    limit = max_image_pixels()
    too_many = (f"more than the limit of {limit:,}: downscale it, or if you trust the file raise "
                f"${MAX_PIXELS_ENV}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our limit decides, below
            im = Image.open(path)
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not an image file Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP, ...): it "
                         "is damaged or of another kind; give image files") from None
    except OSError as err:
        if err.errno is not None:
            raise  # the system's: a missing or unreadable file names itself
        raise _damaged(path, err) from None  # Pillow's, reading the header ("Truncated File Read")
    except Image.DecompressionBombError as err:  # beyond twice Pillow's own limit (PIL.Image.MAX_IMAGE_PIXELS)
        raise ValueError(f"image {path}: too many pixels ({str(err).split(',')[0]}): Pillow refuses beyond twice "
                         "PIL.Image.MAX_IMAGE_PIXELS; downscale it, or if you trust the file raise that limit (and "
                         f"${MAX_PIXELS_ENV} where it is lower)") from None
    with im:
        width, height = im.size
        if width * height > limit:  # from the header: nothing is decoded yet
            raise ValueError(f"image {path} has {width} x {height} = {width * height:,} pixels, {too_many}")
        if width == 0 or height == 0:
            raise ValueError(f"image {path} has zero size ({width} x {height}): replace it, or remove it from the "
                             "image set")
        try:
            if im.mode in WIDE_MODES:
                a = np.asarray(im).astype(np.int64)
                top = (1 << WIDE_MODES[im.mode]) - 1
                if a.size and (a.min() < 0 or a.max() > top):
                    raise ValueError(f"{path}: Pillow mode {im.mode} holds values {a.min()}..{a.max()}, outside "
                                     f"the {WIDE_MODES[im.mode]}-bit range 0..{top}; convert it to 8-bit RGB")
                grey = np.rint(a * (255.0 / top)).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2)
            if im.mode == "F":
                raise ValueError(f"{path}: floating-point images (Pillow mode F) have no fixed range; "
                                 "convert it to 8-bit RGB")
            return np.asarray(im.convert("RGB"))
        except ValueError as err:
            if str(err).startswith(f"{path}: "):
                raise  # ours, above
            raise _damaged(path, err) from None
        except _DECODE_ERRORS as err:
            raise _damaged(path, err) from None


def image_files(folder: str, extensions) -> list[str]:
    """The image files of ``folder`` whose names end in one of ``extensions`` (case-insensitive),
    sorted by name. A folder named like an image is an error naming it (never read as a file, never
    skipped silently: the rows of a data set follow these names)."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(tuple(extensions)))
    folders = [n for n in names if os.path.isdir(os.path.join(folder, n))]
    if folders:
        raise ValueError(f"{os.path.join(folder, folders[0])} is a folder named like an image ({len(folders)} such in "
                         f"{folder}): move it out of the image folder (or rename it)")
    return [os.path.join(folder, n) for n in names]


class ImageFiles:
    """A sequence of image files; ``images[i]`` is an (H, W, 3) uint8 array (RGB, :func:`read_image`)."""

    def __init__(self, paths):
        self.paths = [os.path.abspath(str(p)) for p in paths]
        for p in self.paths:  # a stat each: a folder named like an image is named now, not mid-extraction
            if os.path.isdir(p):
                raise ValueError(f"{p} is a folder named like an image: move it out of the image folder (or "
                                 "rename it)")

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


# ----------------------------------------------------------------------------- a user's images
def _is_pil(obj) -> bool:
    # checked by module name: PIL is imported only when the user already handed us a PIL image
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "mode") and hasattr(obj, "convert")


def as_rgb_uint8(image, what: str = "image") -> np.ndarray:
    """One image -> a writable (H, W, 3) uint8 RGB array (a new array where the input was read-only).

    image: a file path; a PIL image; an array (H, W) grey, (H, W, 1), (H, W, 3) RGB or (H, W, 4)
    RGBA (alpha dropped), uint8 or float in [0, 1] (scaled by 255 and rounded). what: named in errors.
    """
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{what}: image file {path} not found")
        a = read_image(path)  # (H, W, 3) uint8 (read-only when Pillow's buffer backs it); a folder: an error
    elif _is_pil(image):
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            raise ValueError(f"{what}: a PIL image in mode {image.mode} (more than 8 bits per pixel): pass its "
                             "file path (16-bit greys are scaled by their bit depth) or convert it to 'RGB'")
        a = np.asarray(image.convert("RGB"))
    else:
        a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    elif a.ndim != 3 or a.shape[-1] not in (3, 4):
        raise ValueError(f"{what}: an image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    a = a[..., :3]
    if a.dtype == np.uint8:
        pass
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValueError(f"{what}: float image holds NaN/inf")
        lo, hi = float(a.min()), float(a.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(f"{what}: a float image must hold values in [0, 1], got {lo:.4g}..{hi:.4g}; "
                             "divide by 255 (or pass uint8)")
        a = np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    else:
        raise ValueError(f"{what}: image arrays must be uint8 (0..255) or float in [0, 1], not {a.dtype}; "
                         "e.g. (image / image.max()).astype('float32') or image.astype('uint8') after scaling")
    # torch.from_numpy warns on read-only memory and needs a plain layout: hand on a writable copy
    if not (a.flags.writeable and a.flags.c_contiguous):
        a = np.array(a, order="C")
    return a


class UserImages:
    """A user's images as the sequence every extractor reads: ``images[i]`` -> (H, W, 3) uint8,
    converted on access by :func:`as_rgb_uint8` (paths are read lazily).

    images: a list/tuple of paths, PIL images or arrays; a single path or PIL image (one image); or a stacked array (n, H, W), (n, H, W, 3) or (n, H, W, 4).
    """

    def __init__(self, images):
        if isinstance(images, UserImages):
            images = images.items
        elif isinstance(images, (str, os.PathLike)) or _is_pil(images):
            images = [images]
        elif isinstance(images, np.ndarray):
            if images.ndim == 3 and images.shape[-1] in (3, 4):
                raise ValueError(f"images: an array of shape {images.shape} reads as one (H, W, C) image; pass "
                                 "a list [image] or image[None] for one image ((n, H, W) is n grey images)")
            if images.ndim not in (3, 4):
                raise ValueError(f"images: a stacked array must be (n, H, W) or (n, H, W, C), got {images.shape}; "
                                 "wrap a single image in a list")
        elif not hasattr(images, "__len__") or not hasattr(images, "__getitem__"):
            raise TypeError(f"images must be a sequence (list of paths / PIL images / arrays, or a stacked "
                            f"array), not {type(images).__name__}")
        if len(images) == 0:
            raise ValueError("images is empty: give at least one image")
        self.items = images

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> np.ndarray:
        return as_rgb_uint8(self.items[i], what=f"image {i}")
