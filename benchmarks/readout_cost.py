"""What the closed-form readout refit (issue 21) costs, against the fit as it was, in one run.

Fits random tokens of the demo's shape (``factortopy demo``: 3,486 vertices, MobileNetV2's five
layers of 16-320 channels on the 8 x 8 grid, 960 training images, D = 32, batch 32) with
``readout_refit="none"`` (the trained readout) and ``"ridge"`` (the default) in alternating rounds,
and prints the training step time of each (the model and its step are the same, so the ratio
should be 1), the refit's seconds, and the whole fit's time ratio at the demo's length (20 epochs):
(training + refit) / training. Also at FitConfig's own D 128 and batch 8 (``--dims``, ``--batch-sizes``).

    OMP_NUM_THREADS=1 python benchmarks/readout_cost.py
    OMP_NUM_THREADS=1 python benchmarks/readout_cost.py --dims 32,128 --batch-sizes 32,8 --rounds 3

Seconds are wall clock on a possibly shared machine: the ratios within one run are the result.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src"))

DEMO_CHANNELS = (16, 24, 32, 96, 320)  # mobilenetv2_100 blocks.0, 1, 2, 4, 6


def make_subject(n_images: int, n_vertices: int, seed: int = 0):
    """Random tokens of the demo's layout and responses planted as a noisy random linear read of them."""
    import torch

    from factortopy.data.subject import Subject
    from factortopy.features.extract import Features

    rng = np.random.default_rng(seed)
    tokens = torch.from_numpy(rng.standard_normal((n_images, len(DEMO_CHANNELS), 65, max(DEMO_CHANNELS)),
                                                  dtype=np.float32)).half()
    for l, c in enumerate(DEMO_CHANNELS):
        tokens[:, l, :, c:] = 0
    w = rng.standard_normal((max(DEMO_CHANNELS), n_vertices)).astype(np.float32) / 20
    cell = rng.integers(0, 65, n_vertices)
    layer = rng.integers(0, len(DEMO_CHANNELS), n_vertices)
    picked = tokens.float().numpy()[:, layer, cell]  # (n, N, C): each vertex's own token
    responses = np.einsum("nvc,cv->nv", picked, w) + rng.standard_normal((n_images, n_vertices)).astype(np.float32)
    x = rng.standard_normal((n_vertices, 3))
    coords = 100 * x / np.linalg.norm(x, axis=1, keepdims=True)
    coords[n_vertices // 2:, 0] += 300
    subject = Subject(images=[np.zeros((8, 8, 3), np.uint8)] * n_images, responses=responses.astype(np.float32),
                      vertex=np.arange(n_vertices), hemi=np.where(np.arange(n_vertices) < n_vertices // 2, "lh", "rh"),
                      coords=coords.astype(np.float32), image_ids=np.arange(n_images), name="bench", image_key="bench")
    feats = Features(tokens, [f"layer{l}" for l in range(len(DEMO_CHANNELS))], list(DEMO_CHANNELS), 8,
                     backbone=dict(name="random tokens"))
    return subject, feats


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=1200, help="images (80 %% train: the demo's 960)")
    p.add_argument("--vertices", type=int, default=3486)
    p.add_argument("--dims", default="32")
    p.add_argument("--batch-sizes", default="32")
    p.add_argument("--epochs", type=int, default=2, help="epochs timed per fit")
    p.add_argument("--demo-epochs", type=int, default=20, help="the fit length the time ratio is given for")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)

    import torch

    from factortopy.fitting.fit import fit

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    subject, feats = make_subject(args.images, args.vertices)
    print(f"{args.vertices} vertices, {args.images} images, layers {DEMO_CHANNELS}; {torch.get_num_threads()} "
          f"thread(s); load average at start {os.getloadavg()[0]:.1f}")
    print("| D | batch | step, trained readout (ms) | step, refit (ms) | step ratio | refit (s) | refit in steps | "
          f"{args.demo_epochs}-epoch fit: with refit / without |")
    print("|---|---|---|---|---|---|---|---|")
    for dim, batch in zip([int(d) for d in args.dims.split(",")], [int(b) for b in args.batch_sizes.split(",")]):
        step = {"none": [], "ridge": []}
        refit = []
        for _ in range(args.rounds):  # alternating: the machine's load falls on both alike
            for kind in ("none", "ridge"):
                res = fit(subject, features=feats, epochs=args.epochs, batch_size=batch, dim=dim, lr=2e-3,
                          patience=None, progress=False, readout_refit=kind)
                # training time per step, the validation passes included as in a real fit
                step[kind].append(res.metrics["train_seconds"] / res.metrics["steps"])
                if kind == "ridge":
                    refit.append(res.metrics["readout_refit_seconds"])
        s_none, s_ridge = np.median(step["none"]), np.median(step["ridge"])
        t_refit = float(np.median(refit))
        steps = args.demo_epochs * int(np.ceil(res.metrics["n_train"] / batch))
        print(f"| {dim} | {batch} | {1e3 * s_none:.1f} | {1e3 * s_ridge:.1f} | {s_ridge / s_none:.2f} | {t_refit:.1f} | "
              f"{t_refit / s_none:.0f} | {(steps * s_ridge + t_refit) / (steps * s_none):.2f} |", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
