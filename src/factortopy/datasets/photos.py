"""Offline photographs for planted subjects (not an image reader: readers of image files live in
factortopy.data.images): crops of the sample photos that ship with
scikit-learn and matplotlib, jittered, mixed with procedural textures. No downloads."""
from __future__ import annotations

import numpy as np


def _sample_photos() -> list[np.ndarray]:
    """The bundled photos and maps as (H, W, 3) uint8 arrays."""
    import matplotlib
    from matplotlib import cbook
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = [np.asarray(im) for im in load_sample_images().images]  # china, flower
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png"):
        with Image.open(cbook.get_sample_data(name, asfileobj=False)) as im:
            photos.append(np.asarray(im.convert("RGB")))
    for name, key in (("jacksboro_fault_dem.npz", "elevation"), ("topobathy.npz", "topo")):
        with np.load(cbook.get_sample_data(name, asfileobj=False)) as f:
            z = np.asarray(f[key], dtype=np.float64)
        z = (z - z.min()) / max(np.ptp(z), 1e-9)
        photos.append((matplotlib.colormaps["terrain"](z)[..., :3] * 255).astype(np.uint8))
    return photos


def _crop(photo: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    from PIL import Image

    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.25, 1.0))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    im = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)
    out = np.asarray(im, dtype=np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    out = out[..., rng.permutation(3)] if rng.random() < 0.3 else out  # hue jitter
    out = (out - out.mean()) * rng.uniform(0.6, 1.4) + out.mean() + rng.uniform(-30, 30)  # contrast, brightness
    return np.clip(out, 0, 255).astype(np.uint8)


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A grating, checkerboard, blob field or 1/f noise, placed in a random window."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    kind = rng.integers(4)
    if kind == 0:  # oriented grating
        theta, freq = rng.uniform(0, np.pi), rng.uniform(2, 20)
        base = np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + rng.uniform(0, 6.3))
    elif kind == 1:  # checkerboard
        n = rng.integers(2, 12)
        base = np.where((np.floor(xx * n) + np.floor(yy * n)) % 2 == 0, 1.0, -1.0)
    elif kind == 2:  # gaussian blobs
        base = np.zeros_like(xx)
        for _ in range(rng.integers(1, 6)):
            cx, cy, s = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.03, 0.2)
            base += rng.choice([-1, 1]) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
    else:  # 1/f noise
        f = np.fft.fftfreq(size)
        amp = 1 / np.maximum(np.hypot(*np.meshgrid(f, f)), 1 / size) ** rng.uniform(0.8, 2.0)
        base = np.real(np.fft.ifft2(amp * np.exp(2j * np.pi * rng.random((size, size)))))
        base /= np.abs(base).max() + 1e-9
    # Texture only inside a random window: image content varies with position.
    cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.7)
    window = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)) ** 2)
    colour_a, colour_b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = colour_a + (colour_b - colour_a) * (0.5 + 0.5 * (base * window)[..., None])
    return np.clip(img, 0, 255).astype(np.uint8)


def make_images(n: int, size: int = 160, seed: int = 0, photo_fraction: float = 0.6) -> list[np.ndarray]:
    """``n`` (size, size, 3) uint8 images, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    photos = _sample_photos()
    return [_crop(photos[rng.integers(len(photos))], rng, size) if rng.random() < photo_fraction
            else _texture(rng, size) for _ in range(n)]
