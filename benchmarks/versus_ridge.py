"""FactorTopy against the layer-wise ridge baseline on planted brains that are not its model (issue 21).

Plants each subject asked for, then fits FactorTopy under each setting asked for and the ridge
baseline (``fit_ridge_baseline``: per-layer himalaya ridge, per-vertex alpha, best layer) on the same
split (seed: 80 % training, 10 % early stopping, 10 % held out) and prints held-out r and layer
recovery side by side, in one run:

- ``misspecified``: :func:`factortopy.datasets.misspecified.make_misspecified_subject`, the
  development pair (the brain reads ImageNet EfficientNet-Lite0, the fit uses MobileNetV2);
- ``heldout``: the held-out pair (the brain reads MobileNetV2 at 112 px, the fit uses
  EfficientNet-Lite0 at 96 px): a check, never used to choose a setting;
- ``rectified``: the development pair with rectified subunits (a harder brain);
- ``graded``: :func:`factortopy.datasets.planted.make_graded_subject` (MobileNetV2 both; graded
  receptive fields and a compressive response, a random projection to 16 channels);
- ``demo``: the demo's planted subject at a reduced size (FactorTopy's own forward model).

Layer recovery: for a brain of another network, by stage (``score_stage_recovery``: Spearman of the
expected stage, log2 stride, and the share of vertices whose most probable layer has the planted
stride); for a brain of the fitted network, the layer-order Spearman and the exact argmax share.

    OMP_NUM_THREADS=1 python benchmarks/versus_ridge.py                          # misspecified + graded
    OMP_NUM_THREADS=1 python benchmarks/versus_ridge.py --subjects heldout
    OMP_NUM_THREADS=1 python benchmarks/versus_ridge.py --subjects misspecified --seeds 0,1,2

Settings: ``default`` (``FitConfig()``), ``trained-readout`` / ``lr-only`` (``readout_refit="none"``:
the readout as trained), ``refit-only`` (lr 1e-3 with the refit), ``before-issue-21`` (lr 1e-3 and the
readout as trained: the defaults before issue 21), ``lr-3e-3``, ``d32`` / ``d256`` (the channel
bottleneck), ``gaussian`` (receptive field), ``pearson`` / ``mse`` (the loss), ``reference``
(``FitConfig.reference()``), each with ``--epochs`` (20, the issue's protocol) and no
early stopping unless ``--patience``. Seconds are
wall clock on whatever machine runs it: compare them within one run.
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

#: subject -> how it is planted and which network the fit uses
SUBJECTS = {
    "misspecified": dict(kind="misspecified", brain="efficientnet_lite0", brain_img_size=96,
                         fitted="mobilenetv2_100", img_size=96),
    "heldout": dict(kind="misspecified", brain="mobilenetv2_100", brain_img_size=112,
                    fitted="efficientnet_lite0", img_size=96),
    "rectified": dict(kind="misspecified", brain="efficientnet_lite0", brain_img_size=96, subunit="rectified",
                      fitted="mobilenetv2_100", img_size=96),
    "graded": dict(kind="graded", fitted="mobilenetv2_100", img_size=96),
    "demo": dict(kind="demo", fitted="mobilenetv2_100", img_size=96),
}
#: FactorTopy settings: FitConfig overrides, or "reference" for FitConfig.reference()
SETTINGS = {"default": {}, "trained-readout": dict(readout_refit="none"),
            "before-issue-21": dict(lr=1e-3, readout_refit="none"), "lr-only": dict(readout_refit="none"),
            "refit-only": dict(lr=1e-3), "lr-3e-3": dict(lr=3e-3), "d32": dict(dim=32), "d256": dict(dim=256),
            "gaussian": dict(receptive_field="gaussian"), "pearson": dict(loss="pearson"), "mse": dict(loss="mse"),
            "reference": "reference"}


def plant(name: str, folder: str, args, seed: int):
    """Plant subject ``name`` in ``folder``; return (folder, the backbone the fit uses)."""
    from factortopy.backbones import load_backbone
    from factortopy.datasets import planted as P
    from factortopy.datasets.misspecified import make_misspecified_subject

    s = SUBJECTS[name]
    common = dict(n_images=args.images, pole_fraction=args.pole_fraction, image_size=128, noise_sd=args.noise_sd,
                  seed=seed, progress=False)
    if s["kind"] == "misspecified":
        make_misspecified_subject(folder, brain=s["brain"], img_size=s["brain_img_size"],
                                  subunit=s.get("subunit", "linear"), **common)
        return folder, load_backbone(s["fitted"], img_size=s["img_size"], weights=P.offline_weights(s["fitted"]))
    backbone, weights = P.shipped_backbone()
    make = P.make_graded_subject if s["kind"] == "graded" else P.make_planted_subject
    make(folder, backbone=backbone, weights=weights, img_size=s["img_size"], dim=16, **common)
    return folder, load_backbone(backbone, img_size=s["img_size"], weights=os.path.join(folder, P.PLANTED_BACKBONE))


def layer_recovery(truth: dict, maps: dict, strides) -> dict:
    """Stage recovery (a brain of another network) or layer recovery (of the fitted one)."""
    if "layer_strides" in truth:
        from factortopy.datasets.misspecified import score_stage_recovery

        s = score_stage_recovery(truth, maps, strides)
        return dict(layer_rho=s["stage_spearman"], layer_match=s["stride_match"])
    from scipy.stats import spearmanr

    from factortopy.datasets.planted import rows_of

    rows = rows_of(truth, maps)
    p, q = truth["layer_probs"][rows], np.asarray(maps["layer_probs"])
    L = np.arange(p.shape[1])
    return dict(layer_rho=float(spearmanr(p @ L, q @ L)[0]), layer_match=float((p.argmax(1) == q.argmax(1)).mean()))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subjects", default="misspecified,graded", help=f"comma-separated: {', '.join(SUBJECTS)}")
    p.add_argument("--settings", default="default,before-issue-21",
                   help=f"comma-separated: {', '.join(SETTINGS)}")
    p.add_argument("--seeds", default="0", help="seeds of the plant and the fit (the split, init and batch order)")
    p.add_argument("--images", type=int, default=600)
    p.add_argument("--pole-fraction", type=float, default=0.08)
    p.add_argument("--noise-sd", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--patience", type=int, default=0, help="0: no early stopping (every epoch is run)")
    p.add_argument("--no-ridge", action="store_true")
    p.add_argument("--json", default=None, help="write the rows here")
    args = p.parse_args(argv)

    import torch

    from factortopy.data.algonauts import load_algonauts
    from factortopy.datasets.misspecified import load_misspecified_truth
    from factortopy.datasets.planted import load_truth
    from factortopy.features.extract import extract_features
    from factortopy.fitting.fit import FitConfig, fit

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rows = []
    for name in args.subjects.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.time()
                folder, bb = plant(name, os.path.join(tmp, "subj01"), args, seed)
                truth = (load_misspecified_truth if SUBJECTS[name]["kind"] == "misspecified" else load_truth)(folder)
                subject = load_algonauts(folder)
                feats = extract_features(bb, subject.images, grid=8, progress=False)
                print(f"{name} (seed {seed}): {subject.n_images} images, {subject.n_vertices} vertices, fitted "
                      f"{bb.info.name} at {bb.info.input_size[0]} px, ceiling r {truth['ceiling_r'].mean():.3f} "
                      f"({time.time() - t0:.0f} s to plant and extract)", flush=True)
                for setting in args.settings.split(","):
                    given = dict(epochs=args.epochs, patience=args.patience or None, seed=seed)
                    cfg = FitConfig.reference(**given) if SETTINGS[setting] == "reference" else \
                        FitConfig(**{**given, **SETTINGS[setting]})
                    t0 = time.time()
                    res = fit(subject, features=feats, config=cfg, progress=False)
                    rows.append(dict(subject=name, seed=seed, model=f"FactorTopy {setting}",
                                     heldout_r=float(res.heldout_r.mean()),
                                     **layer_recovery(truth, res.selectors, bb.info.strides),
                                     seconds=time.time() - t0,
                                     refit_seconds=res.metrics.get("readout_refit_seconds", 0.0)))
                    print(json.dumps(rows[-1]), flush=True)
                if not args.no_ridge:
                    from factortopy.baselines.run import fit_ridge_baseline

                    t0 = time.time()
                    ridge = fit_ridge_baseline(subject, bb, val_fraction=0.1, heldout_fraction=0.1, seed=seed)
                    L = len(bb.info.strides)
                    maps = dict(vertex=subject.vertex, hemi=subject.hemi, layer_probs=np.eye(L)[ridge.model.best_layer_])
                    rows.append(dict(subject=name, seed=seed, model="layer-wise ridge", heldout_r=float(ridge.val_r.mean()),
                                     **layer_recovery(truth, maps, bb.info.strides), seconds=time.time() - t0))
                    print(json.dumps(rows[-1]), flush=True)
    print("\n| subject | seed | model | held-out r | layer (stage) Spearman | argmax (stride) match | seconds |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['subject']} | {r['seed']} | {r['model']} | {r['heldout_r']:.3f} | {r['layer_rho']:.3f} | "
              f"{r['layer_match']:.3f} | {r['seconds']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
