"""FactorTopy against the layer-wise ridge baseline on the demo's planted subject: the table of
docs/baseline.md, regenerated.

Both models are fitted on the same split (seed 0: 80 % training, 10 % early stopping, 10 % held
out) and scored on the held-out images, which chose nothing for either. Prints the markdown table
(and the ridge / FactorTopy time ratio, measured in this run):

    OMP_NUM_THREADS=1 python benchmarks/baseline.py --out /tmp/baseline

``--out`` keeps the demo and the ridge run: a rerun reuses the finished demo (as `factortopy demo`
does) and the finished ridge run; pass ``--overwrite`` to refit both.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import numpy as np  # noqa: E402


def stored_parameters(run_dir: str) -> int:
    """Numbers a run stores for predicting: model.safetensors (FactorTopy) or ridge.npz's coefficients."""
    if os.path.isfile(os.path.join(run_dir, "model.safetensors")):
        from safetensors.numpy import load_file

        return int(sum(v.size for v in load_file(os.path.join(run_dir, "model.safetensors")).values()))
    with np.load(os.path.join(run_dir, "ridge.npz")) as z:
        return int(sum(z[k].size for k in z.files if k.startswith("coef_")))


def best_layer_agreement(run_dir: str, truth: dict) -> float:
    """Share of vertices whose most probable layer is the planted one."""
    from factortopy.datasets.planted import rows_of
    from factortopy.runs.maps import load_maps

    maps = load_maps(run_dir)
    rows = rows_of(truth, maps)
    return float((maps["layer_probs"].argmax(1) == truth["layer_probs"][rows].argmax(1)).mean())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="baseline_out", help="folder for the demo and the ridge run")
    p.add_argument("--overwrite", action="store_true", help="refit both")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from factortopy.cli import main as cli
    from factortopy.datasets.planted import load_truth

    subject_dir = os.path.join(args.out, "subject", "subj01")
    ridge_dir = os.path.join(args.out, "ridge")
    extra = ["--overwrite"] if args.overwrite else []
    t0 = time.time()
    if cli(["demo", "--out", args.out, "--no-figures", "--quiet", *extra]) != 0:
        return 1
    t_demo = time.time() - t0
    if args.overwrite or not os.path.isfile(os.path.join(ridge_dir, "config.json")):
        info = json.load(open(os.path.join(subject_dir, "planted.json")))
        if cli(["baseline", "--data", f"algonauts:{os.path.abspath(subject_dir)}", "--backbone", info["backbone"],
                "--img-size", str(info["img_size"]), "--weights", os.path.join(subject_dir, info["weights"]),
                "--out", ridge_dir, *extra]) != 0:
            return 1
    truth = load_truth(subject_dir)
    ceiling = float(np.mean(truth["ceiling_r"]))
    rows = []
    for name, run_dir in (("FactorTopy (demo settings)", os.path.join(args.out, "run")),
                          ("layer-wise ridge (2 x 2 pooled grid + global token, per-vertex alpha by CV)", ridge_dir)):
        m = json.load(open(os.path.join(run_dir, "metrics.json")))
        r = m["heldout_pearson_mean"]
        seconds = m.get("seconds", float("nan"))
        feats = m.get("feature_seconds")
        rows.append(dict(name=name, r=r, ratio=r / ceiling, layer=best_layer_agreement(run_dir, truth),
                         params=stored_parameters(run_dir), seconds=seconds, features=feats,
                         n_heldout=m.get("n_heldout"), n_train=m.get("n_train")))
    info = json.load(open(os.path.join(subject_dir, "planted.json")))
    print(f"# {datetime.date.today()}: {info['n_images']} images, {info['n_vertices']} vertices, {info['backbone']} "
          f"at {info['img_size']} px, planted ceiling r = {ceiling:.3f}; held-out images: {rows[0]['n_heldout']}, "
          f"training: {rows[0]['n_train']}; {torch.get_num_threads()} torch thread(s); demo step {t_demo:.0f} s")
    print("| | mean held-out r | r / planted ceiling | best layer = planted layer | parameters stored | time (features + fit) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        t = f"{row['seconds']:.0f} s" + (f" ({row['features']:.0f} s + {row['seconds'] - row['features']:.0f} s)"
                                        if row["features"] is not None else "")
        print(f"| {row['name']} | {row['r']:.3f} | {row['ratio']:.2f} | {100 * row['layer']:.1f} % | "
              f"{row['params']:,} | {t} |")
    print(f"ridge / FactorTopy time: {rows[1]['seconds'] / rows[0]['seconds']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
