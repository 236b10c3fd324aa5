"""Receptive fields of every size (issue 13): what a Gaussian head buys over the point head, measured.

Plants a subject (``--subject graded``: :func:`factortopy.datasets.planted.make_graded_subject`,
Gaussian pools of graded size + a compressive response, not built from the model; ``--subject demo``:
:func:`~factortopy.datasets.planted.make_planted_subject`, the model's own point samples) with the
shipped backbone, then fits every (receptive field, grid) asked for on the same split, seed and
epochs, and optionally the layer-wise ridge baseline on the same split. Prints one row per fit:
held-out r (images that chose nothing), layer-order Spearman, position error, the recovered
receptive-field size's Spearman with the planted one (graded subject), seconds per epoch. Seconds are
only comparable within one run on one machine.

    OMP_NUM_THREADS=1 python benchmarks/rf_recovery.py --subject graded --heads point,gaussian --ridge
    OMP_NUM_THREADS=1 python benchmarks/rf_recovery.py --subject graded --heads gaussian --grids 8,12,16
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src"))

from factortopy.data.algonauts import load_algonauts  # noqa: E402
from factortopy.datasets import planted as P  # noqa: E402


def plant(kind: str, folder: str, args) -> str:
    backbone, weights = P.shipped_backbone()
    common = dict(n_images=args.images, pole_fraction=args.pole_fraction, backbone=backbone, weights=weights,
                  img_size=args.img_size, image_size=args.image_size, dim=args.plant_dim, seed=args.seed,
                  progress=False)
    if kind == "graded":
        return P.make_graded_subject(folder, noise_sd=args.noise_sd, **common)
    return P.make_planted_subject(folder, noise_sd=args.noise_sd, **common)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subject", choices=("graded", "demo"), default="graded")
    p.add_argument("--heads", default="point,gaussian", help="receptive fields to fit, comma-separated")
    p.add_argument("--grids", default="8", help="token grids to fit, comma-separated")
    p.add_argument("--ridge", action="store_true", help="also fit the layer-wise ridge baseline (grid 8)")
    p.add_argument("--images", type=int, default=600)
    p.add_argument("--pole-fraction", type=float, default=0.08)
    p.add_argument("--img-size", type=int, default=96)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--plant-dim", type=int, default=16)
    p.add_argument("--noise-sd", type=float, default=0.5)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the rows here")
    args = p.parse_args(argv)

    import torch

    from factortopy.backbones import load_backbone
    from factortopy.features.extract import extract_features
    from factortopy.fitting.fit import fit

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = plant(args.subject, os.path.join(tmp, "subj01"), args)
        subject, truth = load_algonauts(folder), P.load_truth(folder)
        info = json.load(open(os.path.join(folder, P.PLANTED_INFO)))
        bb = load_backbone(info["backbone"], img_size=args.img_size, weights=os.path.join(folder, P.PLANTED_BACKBONE))
        print(f"{args.subject} subject: {subject.n_images} images, {subject.n_vertices} vertices, "
              f"{len(info['layers'])} layers, ceiling r {info['ceiling_r']:.3f}"
              + (f", planted sigma {truth['rf_size'].min():.3f}-{truth['rf_size'].max():.3f} image widths"
                 if "rf_size" in truth else ""), flush=True)
        for grid in [int(g) for g in args.grids.split(",")]:
            feats = extract_features(bb, subject.images, grid=grid, progress=False)
            for head in args.heads.split(","):
                res = fit(subject, features=feats, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          dim=args.dim, grid=grid, receptive_field=head, seed=args.seed, patience=None,
                          progress=False)
                rec = P.score_recovery(truth, res.selectors, res.heldout_r)
                per_epoch = res.metrics["train_seconds"] / res.metrics["epochs"]
                rows.append(dict(head=head, grid=grid, heldout_r=float(res.heldout_r.mean()), **rec,
                                 rf_size_median=float(np.median(res.selectors["rf_size"])),
                                 seconds_per_epoch=per_epoch))
                print(json.dumps(rows[-1]), flush=True)
        if args.ridge:
            from scipy.stats import spearmanr

            from factortopy.baselines.run import fit_ridge_baseline

            t0 = time.time()
            ridge = fit_ridge_baseline(subject, bb, val_fraction=0.1, heldout_fraction=0.1, seed=args.seed)
            order = P.rows_of(truth, dict(vertex=subject.vertex, hemi=subject.hemi))
            L = truth["layer_probs"].shape[1]
            rows.append(dict(head="ridge", grid=8, heldout_r=float(ridge.val_r.mean()),
                             layer_spearman=float(spearmanr(truth["layer_probs"][order] @ np.arange(L),
                                                            ridge.model.best_layer_)[0]),
                             seconds=time.time() - t0))
            print(json.dumps(rows[-1]), flush=True)
    keys = ("head", "grid", "heldout_r", "layer_spearman", "position_error_median", "rf_size_spearman",
            "rf_size_median", "seconds_per_epoch")
    print("| " + " | ".join(keys) + " |")
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.3f}" if isinstance(r.get(k), float) else str(r.get(k, "-")) for k in keys)
              + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
