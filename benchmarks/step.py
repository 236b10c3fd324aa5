"""Where a fit() training step spends its time, and what proposed changes to fit.py / the model would buy.

Replays fit()'s step (selectors, forward_tokens, smooth L1 + faded regulariser, backward, gradient
clipping, AdamW) on random tokens, then variants, all in the same run:

- ``cached-encoding``: the sinusoidal encoding of the (fixed) coordinates computed once, not every
  step (it only depends on buffers);
- ``fused-adamw``: ``torch.optim.AdamW(..., fused=True)``;
- ``readout-nbd``: forward_tokens with V laid out (N, B, D) and the readout as a batched GEMV
  (:func:`forward_tokens_nbd`; checked equal to forward_tokens in the same run);
- ``all three``.

Also times the parts alone: selectors() forward+backward, and forward_tokens forward+backward with
fixed selectors.

    python benchmarks/step.py --device cuda                      # NSD scale, batch 8 and 128
    python benchmarks/step.py --device cpu --threads 1 --vertices 2000 --layers 4 --channels 64
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from head import randomise_selectors, sphere_coords  # noqa: E402

from factortopy.model.factortopy import FactorTopy, Selectors  # noqa: E402
from factortopy.model.selectors import SELECTORS  # noqa: E402


def selectors_from_encoding(model, e):
    """model.selectors() with the positional encoding ``e`` given (what a cached buffer would do)."""
    return model.selectors(encoding=e)


def forward_tokens_nbd(model, tokens, selectors):
    """Proposed forward_tokens: the same math with V laid out (N, B, D): one plain GEMM
    K (N, L*T) @ X (L*T, B*D) (X is small: no broadcast batch, no (B, N, D) transpose copy), then the
    readout mean_d(w_v * V_v) as a batched GEMV, so the (B, N, D) product w * V is never stored."""
    K = model.kernel(selectors)  # float32, as in forward_tokens
    X = model.project(tokens)  # (B, L, T, D)
    B, D, N = X.shape[0], model.dim, K.shape[0]
    Xt = X.reshape(B, -1, D).permute(1, 0, 2).reshape(-1, B * D)  # (L*T, B*D)
    V = torch.matmul(K.reshape(N, -1).to(X.dtype), Xt).view(N, B, D)
    y = torch.bmm(V, model.readout_weight.to(V.dtype)[:, :, None])[:, :, 0] / D  # (N, B)
    return y.t() + model.readout_bias.to(y.dtype)


def timeit(fn, steps, warmup, device):
    for _ in range(warmup):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--vertices", type=int, default=37984)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--channels", type=int, default=768)
    p.add_argument("--batch-sizes", default="8,128")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    amp = device.startswith("cuda")
    torch.manual_seed(0)
    model = FactorTopy(sphere_coords(args.vertices), [args.channels] * args.layers).to(device)
    randomise_selectors(model)
    enc = model.encoding(model.coords).detach()
    name = torch.cuda.get_device_name() if amp else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; N={args.vertices}, L={args.layers} x C={args.channels}, D=128; "
          f"{'bf16 autocast' if amp else 'fp32'} as fit() uses; {args.steps} steps after {args.warmup}")
    g = torch.Generator().manual_seed(1)
    for B in [int(b) for b in args.batch_sizes.split(",")]:
        tokens = torch.randn(B, args.layers, 65, args.channels, generator=g).half().to(device)
        target = torch.randn(B, args.vertices, generator=g).to(device)

        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            sel0 = model.selectors()
            a = model.forward_tokens(tokens if amp else tokens.float(), selectors=sel0).float()
            b = forward_tokens_nbd(model, tokens if amp else tokens.float(), sel0).float()
        rel = float((a - b).abs().max() / a.abs().max())

        def make_step(cached, fused, nbd=False):
            opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01, fused=fused or None)

            def step():
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    sel = selectors_from_encoding(model, enc) if cached else model.selectors()
                    fwd = forward_tokens_nbd if nbd else (lambda m, t, s: m.forward_tokens(t, selectors=s))
                    pred = fwd(model, tokens if amp else tokens.float(), sel)
                    loss = F.smooth_l1_loss(pred.float(), target, beta=0.1, reduction="sum") / target.numel()
                    total = loss + 0.05 * model.regularizer(sel)
                opt.zero_grad(set_to_none=True)
                total.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
                opt.step()
            return step

        times = {}
        for label, cached, fused, nbd in (("fit() step as now", False, False, False),
                                          ("cached-encoding", True, False, False),
                                          ("fused-adamw", False, True, False), ("readout-nbd", False, False, True),
                                          ("all three", True, True, True)):
            times[label] = timeit(make_step(cached, fused, nbd), args.steps, args.warmup, device)

        def sel_only():
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                sel = model.selectors()
                sum(getattr(sel, s.field).sum() for s in SELECTORS).float().backward()

        def head_only():
            with torch.no_grad():
                sel = model.selectors()
            sel = Selectors(**{s.field: getattr(sel, s.field).requires_grad_() for s in SELECTORS})
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                pred = model.forward_tokens(tokens if amp else tokens.float(), selectors=sel)
            pred.float().sum().backward()

        t_sel = timeit(sel_only, args.steps, args.warmup, device)
        t_head = timeit(head_only, args.steps, args.warmup, device)
        model.zero_grad(set_to_none=True)
        base = times["fit() step as now"]
        print(f"batch {B}: " + "; ".join(f"{k} {v * 1e3:.1f} ms ({B / v:,.0f} img/s, {base / v:.2f}x)"
                                         for k, v in times.items()))
        print(f"batch {B}: readout-nbd vs forward_tokens outputs: max rel diff {rel:.1e}")
        print(f"batch {B}: parts alone: selectors fwd+bwd {t_sel * 1e3:.1f} ms ({t_sel / base:.0%} of the step), "
              f"forward_tokens fwd+bwd {t_head * 1e3:.1f} ms ({t_head / base:.0%})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
