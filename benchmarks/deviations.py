"""Measure each deviation from the reference code on one planted subject (docs/method.md,
"Deviations from the reference code").

Plants ONE subject with the shipped ImageNet MobileNetV2 (factortopy.datasets.planted), extracts its
features once, then fits it on the same split with the same seed under:
- ours: FitConfig's defaults, with the base recipe below (batch, lr, D, epochs);
- one row per deviation: ours with only that setting switched to the reference value;
- all model deviations: the four switched together, the base recipe otherwise;
- FitConfig.reference(): the whole published recipe (batch 8, lr 1e-3 as well).
Each row prints the layer-order Spearman, the exact argmax layer, the median position error over
mostly-local vertices, the held-out r (images that chose nothing) and r / the planted ceiling.
``--seeds 0,1`` repeats every row with another fit seed (split, init and batch order) to show
the spread. Precision (float16 vs bfloat16 autocast) applies on CUDA only: on the CPU it is
reported as not measurable.

    # the numbers in docs/method.md (shared 2-core CPU, about 15 minutes)
    OMP_NUM_THREADS=1 python benchmarks/deviations.py --seeds 0,1,2 --json rows.json
    python benchmarks/deviations.py --summarise rows.json   # the summary again, from the rows
    # a quick look
    OMP_NUM_THREADS=1 python benchmarks/deviations.py --images 300 --epochs 5 --settings ours,reference
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src"))

from factortopy.fitting.fit import REFERENCE_SETTINGS  # noqa: E402

#: row name -> (FitConfig fields switched to the reference value, what the row is).
#: None: the whole FitConfig.reference() (its batch size and lr replace the base recipe's too).
SETTINGS = {
    "ours": ({}, "our defaults"),
    "readout_init": ({"readout_init": "uniform"}, "readout init uniform +-1/sqrt(D)"),
    "token_scale": ({"token_scale": False}, "no per-layer token scale"),
    "positional_encoding": ({"positional_encoding": "reference"}, "reference positional encoding"),
    "reg_fade": ({"reg_fade": "steps", "reg_fade_value": REFERENCE_SETTINGS["reg_fade_value"]},
                 "regulariser fade over 2,000 steps"),
    "amp_dtype": ({"amp_dtype": "float16"}, "float16 autocast (CUDA only)"),
    "readout_refit": ({"readout_refit": "none"}, "the readout as trained (no closed-form refit)"),
    "model": ({k: REFERENCE_SETTINGS[k] for k in ("readout_init", "token_scale", "positional_encoding",
                                                   "reg_fade", "reg_fade_value")},
              "the four above together, base batch/lr"),
    "reference": (None, "FitConfig.reference() (batch 8, lr 1e-3)"),
}
COLUMNS = ("layer_spearman", "layer_argmax_exact", "position_error_median", "heldout_r", "r_over_ceiling")


def plant(folder: str, args) -> None:
    """The planted subject in ``folder`` (reused when its planted.json matches these sizes)."""
    from factortopy.datasets.planted import PLANTED_INFO, make_planted_subject, shipped_backbone

    backbone, weights = shipped_backbone()
    want = dict(backbone=backbone, n_images=args.images, img_size=args.img_size, dim=args.dim,
                seed=args.subject_seed, noise_sd=args.noise_sd)
    info_path = os.path.join(folder, PLANTED_INFO)
    if os.path.isfile(info_path):
        with open(info_path) as f:
            info = json.load(f)
        if all(info.get(k) == v for k, v in want.items()):
            return
    make_planted_subject(folder, n_images=args.images, pole_fraction=args.pole_fraction, backbone=backbone,
                         weights=weights, img_size=args.img_size, image_size=args.image_size, dim=args.dim,
                         noise_sd=args.noise_sd, seed=args.subject_seed, progress=False)


def run_row(name, subject, features, truth, args, seed) -> dict:
    """Fit one setting; its recovery scores and held-out r."""
    from factortopy.datasets.planted import score_recovery
    from factortopy.fitting.fit import FitConfig, fit

    switched, _ = SETTINGS[name]
    shared = dict(dim=args.dim, epochs=args.epochs, patience=None, seed=seed, device=args.device)
    if switched is None:
        cfg = FitConfig.reference(**shared)
    else:
        cfg = FitConfig(batch_size=args.batch_size, lr=args.lr, **shared, **switched)
    t0 = time.time()
    result = fit(subject, features=features, config=cfg, progress=False)
    rec = score_recovery(truth, result.selectors, result.heldout_r)
    return dict(setting=name, seed=seed, layer_spearman=rec["layer_spearman"],
                layer_argmax_exact=rec["layer_argmax_exact"], position_error_median=rec["position_error_median"],
                heldout_r=rec["pearson_mean"], r_over_ceiling=rec["r_over_ceiling"],
                steps=result.metrics["steps"], batch_size=cfg.batch_size, lr=cfg.lr, seconds=time.time() - t0)


def summarise(rows: list[dict], names) -> None:
    """With more than one seed: each setting's mean over seeds (spread = max - min), and its paired
    difference from ``ours`` on the same seed (mean, min..max): the noise a comparison must beat."""
    seeds = sorted({r["seed"] for r in rows})
    if len(seeds) < 2:
        return
    by = {(r["setting"], r["seed"]): r for r in rows}
    print(f"\nmean over seeds {seeds} (spread = max - min)")
    print(f"| {'setting':<20} | " + " | ".join(COLUMNS) + " |")
    for name in names:
        mine = [by[name, s] for s in seeds if (name, s) in by]
        if mine:
            print(f"| {name:<20} | " + " | ".join(
                f"{np.mean([r[c] for r in mine]):.3f} ({np.ptp([r[c] for r in mine]):.3f})" for c in COLUMNS) + " |")
    print("\nminus ours on the same seed: mean (min..max)")
    for name in names:
        pairs = [(by[name, s], by["ours", s]) for s in seeds if (name, s) in by and ("ours", s) in by]
        if pairs and name != "ours":
            diffs = {c: [a[c] - b[c] for a, b in pairs] for c in COLUMNS}
            print(f"| {name:<20} | " + " | ".join(
                f"{np.mean(d):+.3f} ({min(d):+.3f}..{max(d):+.3f})" for d in diffs.values()) + " |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=600, help="planted images (default 600)")
    p.add_argument("--pole-fraction", type=float, default=0.08, help="occipital cap share (default 0.08)")
    p.add_argument("--img-size", type=int, default=96, help="backbone input size (default 96)")
    p.add_argument("--image-size", type=int, default=128, help="synthetic image size (default 128)")
    p.add_argument("--dim", type=int, default=16, help="planted and fitted channel width D (default 16)")
    p.add_argument("--noise-sd", type=float, default=0.7, help="planted noise sd (default 0.7)")
    p.add_argument("--subject-seed", type=int, default=0, help="seed of the planted subject (default 0)")
    p.add_argument("--epochs", type=int, default=15, help="epochs of every fit (default 15)")
    p.add_argument("--batch-size", type=int, default=32, help="base recipe batch size (default 32)")
    p.add_argument("--lr", type=float, default=3e-3, help="base recipe lr (default 3e-3)")
    p.add_argument("--seeds", default="0", help="fit seeds, comma-separated (default 0)")
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"rows to run (default all: {','.join(SETTINGS)})")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--subject-dir", default=None, help="plant here and reuse (default: a temporary folder)")
    p.add_argument("--json", default=None, help="write the rows to this file")
    p.add_argument("--summarise", default=None, metavar="JSON", help="only print the summary of an earlier --json")
    args = p.parse_args(argv)
    if args.summarise:
        with open(args.summarise) as f:
            rows = json.load(f)["rows"]
        summarise(rows, list(dict.fromkeys(r["setting"] for r in rows)))
        return 0
    torch.set_num_threads(args.threads)
    names = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        p.error(f"unknown settings {unknown}; choose from {','.join(SETTINGS)}")
    seeds = [int(s) for s in args.seeds.split(",")]

    from factortopy.data.algonauts import load_algonauts
    from factortopy.datasets.planted import PLANTED_BACKBONE, PLANTED_INFO, load_truth
    from factortopy.backbones.spec import as_spec
    from factortopy.features.extract import extract_features

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.subject_dir or os.path.join(tmp, "subj01")
        t0 = time.time()
        plant(folder, args)
        subject = load_algonauts(folder)
        truth = load_truth(folder)
        with open(os.path.join(folder, PLANTED_INFO)) as f:
            info = json.load(f)
        # The features once, from the planted backbone itself; every fit gets them.
        bb = as_spec(info["backbone"], img_size=info["img_size"],
                     weights=os.path.join(folder, PLANTED_BACKBONE)).build()
        features = extract_features(bb, subject.images, grid=8, device=args.device, progress=False)
        print(f"planted subject: {subject.n_images} images x {subject.n_vertices} vertices, {info['backbone']} "
              f"{len(features.layer_names)} layers, ceiling r {info['ceiling_r']:.3f} ({time.time() - t0:.0f} s)")
        print(f"base recipe: batch {args.batch_size}, lr {args.lr}, D {args.dim}, {args.epochs} epochs, "
              f"no early stopping; seeds {seeds}")
        header = f"| {'setting':<20} | seed | " + " | ".join(COLUMNS) + " | steps | s |"
        print(header)
        print("|" + "|".join("---" for _ in range(header.count("|") - 1)) + "|")
        rows = []
        for seed in seeds:
            for name in names:
                if name == "amp_dtype" and not args.device.startswith("cuda"):
                    print(f"| {name:<20} | {seed} | not measurable on the CPU: autocast dtype applies on CUDA only |")
                    continue
                row = run_row(name, subject, features, truth, args, seed)
                rows.append(row)
                print(f"| {name:<20} | {seed} | " + " | ".join(f"{row[c]:.3f}" for c in COLUMNS)
                      + f" | {row['steps']} | {row['seconds']:.0f} |", flush=True)
    summarise(rows, names)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(args=vars(args), rows=rows), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
