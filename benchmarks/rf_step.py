"""Cost per training step of the Gaussian receptive field vs the point (issue 13), measured in one run.

Replays fit()'s step (selectors, forward_tokens, smooth L1 + regulariser, backward, gradient clipping,
AdamW) for two models that differ only in ``receptive_field`` ("point": the tent kernel, "gaussian":
the tent convolved with a per-vertex Gaussian plus its size selector), same sizes, same tokens. The
two are timed in alternating rounds (so that a busy shared machine slows both alike) and the ratio
of their median round times is printed, with the kernel alone (selectors -> kernel, forward +
backward) timed the same way. Absolute times depend on the machine and its load; the ratio is the
result.

    python benchmarks/rf_step.py --device cuda                                  # NSD scale
    OMP_NUM_THREADS=1 python benchmarks/rf_step.py --device cpu --threads 1 --vertices 2000 --layers 4 --channels 64 \
        --grids 8,12,16
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from head import randomise_selectors, sphere_coords  # noqa: E402

from factortopy.model.factortopy import FactorTopy  # noqa: E402


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--vertices", type=int, default=37984)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--channels", type=int, default=768)
    p.add_argument("--grids", default="8", help="token grids, comma-separated; ratios are to the first grid's point")
    p.add_argument("--batch-sizes", default="8,32")
    p.add_argument("--rounds", type=int, default=15, help="alternating timing rounds")
    p.add_argument("--steps", type=int, default=3, help="steps per model per round")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    amp = device.startswith("cuda")
    grids = [int(g) for g in args.grids.split(",")]
    configs = [(grid, kind) for grid in grids for kind in ("point", "gaussian")]
    models = {}
    for grid, kind in configs:
        torch.manual_seed(0)  # identical parameters apart from the size selector
        m = FactorTopy(sphere_coords(args.vertices), [args.channels] * args.layers, grid=grid,
                       receptive_field=kind).to(device)
        randomise_selectors(m)
        models[grid, kind] = m
    name = torch.cuda.get_device_name() if amp else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; N={args.vertices}, L={args.layers} x C={args.channels}, D=128, grids {grids}; "
          f"{'bf16 autocast' if amp else 'fp32'}; {args.rounds} alternating rounds of {args.steps} steps")
    g = torch.Generator().manual_seed(1)
    for B in [int(b) for b in args.batch_sizes.split(",")]:
        tokens = {grid: torch.randn(B, args.layers, grid * grid + 1, args.channels, generator=g).half().to(device)
                  for grid in grids}
        tokens = {k: (t if amp else t.float()) for k, t in tokens.items()}
        target = torch.randn(B, args.vertices, generator=g).to(device)

        def make_step(model, x):
            opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)

            def step():
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    sel = model.selectors()
                    pred = model.forward_tokens(x, selectors=sel)
                    loss = F.smooth_l1_loss(pred.float(), target, beta=0.1, reduction="sum") / target.numel()
                    total = loss + 0.05 * model.regularizer(sel)
                opt.zero_grad(set_to_none=True)
                total.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
                opt.step()
            return step

        def make_kernel(model, x):
            def kernel():
                model.kernel(model.selectors()).sum().backward()
            return kernel

        for label, make in (("training step", make_step), ("selectors + kernel fwd+bwd", make_kernel)):
            fns = {k: make(m, tokens[k[0]]) for k, m in models.items()}
            for fn in fns.values():  # warm-up
                fn()
            rounds = {k: [] for k in fns}
            for _ in range(args.rounds):
                for k, fn in fns.items():
                    _sync(device)
                    t = time.perf_counter()
                    for _ in range(args.steps):
                        fn()
                    _sync(device)
                    rounds[k].append((time.perf_counter() - t) / args.steps)
            med = {k: statistics.median(v) for k, v in rounds.items()}
            base = med[grids[0], "point"]
            for grid in grids:
                per_round = [gs / ps for gs, ps in zip(rounds[grid, "gaussian"], rounds[grid, "point"])]
                print(f"batch {B}, grid {grid}, {label}: gaussian / point = "
                      f"{med[grid, 'gaussian'] / med[grid, 'point']:.3f} (per-round median "
                      f"{statistics.median(per_round):.3f}, range {min(per_round):.3f}-{max(per_round):.3f}); "
                      f"vs grid {grids[0]} point: point {med[grid, 'point'] / base:.2f}x, "
                      f"gaussian {med[grid, 'gaussian'] / base:.2f}x", flush=True)
        for m in models.values():
            m.zero_grad(set_to_none=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
