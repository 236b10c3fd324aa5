"""Benchmark an end-to-end fit on an NSD-sized planted subject: feature extraction, then fit().

Defaults are NSD scale: 9,841 images, 39,548 vertices, ViT-B/16 at 224 with all 12 blocks, 10 epochs
with validation after each, batch 8 (FitConfig's). The subject is built in memory (synthetic images
from factortopy.datasets.photos.make_images, coordinates on two radius-100 spheres side by side,
responses planted from the extracted tokens: each vertex reads one layer, cell and channel, plus
noise), so nothing is written to disk.

    # GPU (the target in benchmarks/RESULTS.md)
    python benchmarks/fit.py --device cuda
    python benchmarks/fit.py --device cuda --batch-size 64 --whole-cortex
    # CPU, reduced sizes
    python benchmarks/fit.py --device cpu --images 200 --vertices 2000 --backbone vit_tiny_patch16_224 --epochs 1

Prints: time to extract features (and, on a subset, the same-run extraction with F.interpolate per map
instead of the resize matrix, as a ratio, with a breakdown into preprocessing, network and resize),
time per epoch (training + validation), total, and peak memory (torch.cuda.max_memory_allocated on
CUDA; the process's peak RSS on the CPU).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src"))

WHOLE_CORTEX = 327_684  # fsaverage, both hemispheres


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def sphere_coords(n: int, rng) -> np.ndarray:
    x = rng.standard_normal((n, 3))
    x = 100 * x / np.linalg.norm(x, axis=1, keepdims=True)
    x[n // 2:, 0] += 300  # the right hemisphere beside the left
    return x.astype(np.float32)


def tokens_with_interpolate(backbone, batch, grid):
    """The slow baseline of images_to_tokens: F.interpolate per layer map."""
    local, global_ = backbone(batch)
    c_max = max(backbone.info.channels)
    out = batch.new_zeros(batch.shape[0], len(local), grid * grid + 1, c_max)
    for l, (maps, glob) in enumerate(zip(local, global_)):
        c = maps.shape[1]
        small = F.interpolate(maps.float(), size=(grid, grid), mode="bilinear", align_corners=False)
        out[:, l, : grid * grid, :c] = small.flatten(2).transpose(1, 2).to(out.dtype)
        out[:, l, grid * grid, :c] = glob.float().to(out.dtype)
    return out


@torch.no_grad()
def extraction_breakdown(backbone, images, n, batch_size, grid, device):
    """Seconds for preprocessing, the network, and the two resize paths over the first n images, and
    the max difference between the two paths' tokens."""
    from factortopy.features.extract import images_to_tokens, load_batch
    from factortopy.features.resize import resize_to_tokens

    amp = device.startswith("cuda")
    t = dict(preprocess=0.0, network=0.0, resize_matrix=0.0, resize_interpolate=0.0,
             extract_matrix=0.0, extract_interpolate=0.0)
    diff = 0.0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        t0 = time.perf_counter()
        batch = backbone.preprocess(load_batch(images, start, stop)).to(device)
        sync(device)
        t["preprocess"] += time.perf_counter() - t0
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            t0 = time.perf_counter()
            local, _ = backbone(batch)
            sync(device)
            t["network"] += time.perf_counter() - t0
            maps = [m.float() for m in local]
            sync(device)
            t0 = time.perf_counter()
            for m in maps:
                resize_to_tokens(m, grid)
            sync(device)
            t["resize_matrix"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            for m in maps:
                F.interpolate(m, size=(grid, grid), mode="bilinear", align_corners=False)
            sync(device)
            t["resize_interpolate"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            a = images_to_tokens(backbone, batch, grid)
            sync(device)
            t["extract_matrix"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            b = tokens_with_interpolate(backbone, batch, grid)
            sync(device)
            t["extract_interpolate"] += time.perf_counter() - t0
        diff = max(diff, float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12)))
    return t, diff


def plant_responses(tokens: torch.Tensor, channels, n_vertices: int, rng, noise: float = 1.0) -> np.ndarray:
    """Each vertex reads one (layer, cell, channel) of the tokens, plus Gaussian noise (z-scored)."""
    L, T = tokens.shape[1], tokens.shape[2]
    layer = rng.integers(0, L, n_vertices)
    cell = rng.integers(0, T - 1, n_vertices)
    chan = np.array([rng.integers(0, channels[l]) for l in layer])
    out = np.empty((tokens.shape[0], n_vertices), np.float32)
    for s in range(0, n_vertices, 4096):  # bounded memory at whole-cortex size
        e = min(s + 4096, n_vertices)
        sig = tokens[:, torch.as_tensor(layer[s:e]), torch.as_tensor(cell[s:e]), torch.as_tensor(chan[s:e])].float().numpy()
        sig = (sig - sig.mean(0)) / (sig.std(0) + 1e-6)
        out[:, s:e] = sig + noise * rng.standard_normal(sig.shape).astype(np.float32)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--images", type=int, default=9841)
    p.add_argument("--image-size", type=int, default=425, help="side of the synthetic images in pixels (NSD: 425)")
    p.add_argument("--unique-images", type=int, default=512,
                   help="distinct synthetic images, repeated to --images (generation at 425 px takes ~27 ms each)")
    p.add_argument("--vertices", type=int, default=39548)
    p.add_argument("--whole-cortex", action="store_true", help=f"{WHOLE_CORTEX:,} vertices (fsaverage, both hemispheres)")
    p.add_argument("--backbone", default="vit_base_patch16_224")
    p.add_argument("--layers", default=None, help="comma-separated layers (default: all blocks)")
    p.add_argument("--img-size", type=int, default=224, help="backbone input size")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--feature-batch-size", type=int, default=None, help="default: 256 on CUDA, 32 on the CPU")
    p.add_argument("--baseline-images", type=int, default=256,
                   help="images for the same-run extraction breakdown (0: skip)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda but torch sees no GPU")
    n_vertices = WHOLE_CORTEX if args.whole_cortex else args.vertices
    fbs = args.feature_batch_size or (256 if device.startswith("cuda") else 32)
    os.environ.setdefault("TQDM_DISABLE", "1")

    from factortopy.backbones import load_backbone
    from factortopy.data.subject import Subject
    from factortopy.datasets.photos import make_images
    from factortopy.features.extract import extract_features
    from factortopy.fitting.fit import fit

    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}")
    print(f"sizes: {args.images:,} images ({args.image_size} px), {n_vertices:,} vertices, {args.backbone} at "
          f"{args.img_size}, {args.epochs} epochs, batch {args.batch_size}, feature batch {fbs}")
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    distinct = make_images(min(args.unique_images, args.images), size=args.image_size, seed=args.seed)
    images = [distinct[i % len(distinct)] for i in range(args.images)]
    t_images = time.perf_counter() - t0
    print(f"synthetic images: {len(distinct)} distinct, {t_images:.1f} s (not part of the fit)")
    layers = [l for l in args.layers.split(",") if l] if args.layers else None
    torch.manual_seed(args.seed)  # the random-init backbone's weights
    bb = load_backbone(args.backbone, layers=layers, img_size=args.img_size)
    info = bb.info
    print(f"backbone: {info.name}, {len(info.layer_names)} layers, channels {sorted(set(info.channels))}, "
          f"feature bytes per image {len(info.layer_names) * 65 * max(info.channels) * 2 / 1e6:.2f} MB")

    result = dict(args=vars(args), device=name, n_vertices=n_vertices)
    if args.baseline_images:
        n = min(args.baseline_images, args.images)
        bb.to(device).eval()
        extraction_breakdown(bb, images, min(n, fbs), fbs, 8, device)  # warm-up
        t, diff = extraction_breakdown(bb, images, n, fbs, 8, device)
        ratio = t["extract_interpolate"] / t["extract_matrix"]
        print(f"extraction breakdown over {n} images (img/s): preprocess {n / t['preprocess']:,.0f}, "
              f"network {n / t['network']:,.0f}, resize matrix {n / t['resize_matrix']:,.0f}, "
              f"resize F.interpolate {n / t['resize_interpolate']:,.0f}")
        print(f"extraction network+resize: resize matrix {n / t['extract_matrix']:,.0f} img/s, F.interpolate "
              f"{n / t['extract_interpolate']:,.0f} img/s: resize-matrix speed-up vs F.interpolate measured in this "
              f"run {ratio:.2f}x (resize alone {t['resize_interpolate'] / t['resize_matrix']:.2f}x); "
              f"tokens max rel diff {diff:.1e}")
        result["breakdown"] = dict(images=n, seconds=t, token_rel_diff=diff)

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    features = extract_features(bb, images, grid=8, batch_size=fbs, device=device, progress=False)
    sync(device)
    t_extract = time.perf_counter() - t0
    print(f"extract features: {t_extract:.2f} s ({args.images / t_extract:,.0f} img/s), tokens "
          f"{tuple(features.tokens.shape)} {features.tokens.numel() * 2 / 2**30:.2f} GiB")
    responses = plant_responses(features.tokens, features.channels, n_vertices, rng)
    subject = Subject(images=images, responses=responses, vertex=np.arange(n_vertices) % (n_vertices // 2 or 1),
                      hemi=np.where(np.arange(n_vertices) < n_vertices // 2, "lh", "rh"),
                      coords=sphere_coords(n_vertices, rng), image_ids=np.arange(args.images),
                      name="bench", image_key="bench")
    del images
    t0 = time.perf_counter()
    res = fit(subject, backbone=bb, features=features, epochs=args.epochs, batch_size=args.batch_size,
              device=device, patience=None, progress=False, seed=args.seed)
    sync(device)
    t_fit = time.perf_counter() - t0
    hist = res.history
    marks = [h["seconds"] for h in hist]  # since fit() started; the loop took train_seconds in all
    per_epoch = np.array([res.metrics["train_seconds"] - (marks[-1] - marks[0])] + list(np.diff(marks)))
    setup = t_fit - res.metrics["train_seconds"]
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else peak_rss()
    mem_kind = "torch.cuda.max_memory_allocated" if device.startswith("cuda") else "peak RSS of the process"
    steps = res.metrics["steps"]
    print(f"fit: {t_fit:.2f} s ({steps} steps, {steps / res.metrics['train_seconds']:.3g} steps/s, "
          f"{res.metrics['n_train'] * len(hist) / res.metrics['train_seconds']:,.3g} train img/s incl. validation); "
          f"per epoch (train + validation) {', '.join(f'{s:.2f}' for s in per_epoch)} s; "
          f"fit outside the epoch loop (setup, final evaluation, selectors) {setup:.2f} s")
    print(f"val r mean {res.metrics['val_pearson_mean']:.3f} (planted; noise sd 1)")
    print(f"total (extract + fit): {t_extract + t_fit:.2f} s; peak memory {peak / 2**30:.2f} GiB ({mem_kind})")
    result.update(extract_seconds=t_extract, fit_seconds=t_fit, epoch_seconds=per_epoch.tolist(),
                  total_seconds=t_extract + t_fit, peak_bytes=peak, memory=mem_kind,
                  val_r=res.metrics["val_pearson_mean"], steps=steps)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
