"""Benchmark the FactorTopy head: forward + backward + AdamW step, tent-kernel GEMM vs per-layer grid_sample.

Defaults are NSD scale (37,984 vertices, 12 layers of 768 channels, D = 128, 8 x 8 grid). Both
implementations share one set of parameters and are measured in the same run; the script first checks
that their fp32 outputs agree (max |a - b| / max |b| <= 1e-3) and stops if they do not.

    # GPU (the targets in benchmarks/RESULTS.md)
    python benchmarks/head.py --device cuda --batch-sizes 8,32,128 --dtypes fp32,bf16
    # CPU, reduced sizes
    python benchmarks/head.py --device cpu --vertices 2000 --layers 4 --channels 64 --batch-sizes 8,32

Memory: on CUDA ``torch.cuda.max_memory_allocated`` (reset per configuration; counts the resident model
and batch too); on the CPU the peak resident set size of the process during the configuration (VmHWM,
reset through /proc/self/clear_refs) minus the resident size before it (optimizer state, activations,
gradients). Give --cpu-mem to force large allocations through mmap, so that freed memory leaves the
RSS and the number means something (this slows the CPU timings); without it, it is a lower bound.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src"))

from factortopy.model.factortopy import FactorTopy  # noqa: E402
from factortopy.model.selectors import SELECTORS  # noqa: E402


class GridSampleHead(nn.Module):
    """The reference formulation of the same math, layer by layer, sharing ``model``'s parameters:
    1x1-conv projection of each layer's map, grid_sample at every vertex's (x, y), global-token
    projection, scale and layer mixing, readout with the mean over D."""

    def __init__(self, model: FactorTopy):
        super().__init__()
        self.model = model  # shared: optimising either module's parameters moves both

    def forward_tokens(self, tokens: torch.Tensor, selectors=None) -> torch.Tensor:
        m = self.model
        sel = m.selectors() if selectors is None else selectors
        B, L, T, _ = tokens.shape
        g, n_cells, N = m.grid, m.grid * m.grid, sel.space.shape[0]
        if not torch.is_autocast_enabled(tokens.device.type):
            tokens = tokens.to(m.local_proj.dtype)
        where = sel.space.view(1, N, 1, 2).expand(B, N, 1, 2)
        v = 0
        for l, c in enumerate(m.layer_channels):
            scale = m.token_scale[l]
            loc = tokens[:, l, :n_cells, :c].transpose(1, 2).reshape(B, c, g, g)  # (B, C_l, g, g)
            proj = torch.einsum("bchw,cd->bdhw", loc, m.local_proj[l, :c] * scale)
            # Sampled in the selectors' dtype (float32 under autocast too), as the reference code does.
            sampled = F.grid_sample(proj.to(where.dtype), where, mode="bilinear", padding_mode="zeros",
                                    align_corners=False)[..., 0].transpose(1, 2)  # (B, N, D)
            glob = (tokens[:, l, n_cells, :c] @ (m.global_proj[l, :c] * scale))[:, None, :]  # (B, 1, D)
            p = sel.layer_probs[:, l][None, :, None]
            s = sel.scale[None]
            v = v + p * ((1 - s) * sampled + s * glob)
        return (v * m.readout_weight).mean(-1) + m.readout_bias


def randomise_selectors(model: FactorTopy, seed: int = 0) -> None:
    """Move the selectors off their zero init (centre, uniform layers) so the check covers them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for spec in SELECTORS:
            if not spec.used_by(model):  # e.g. a point model has no receptive-field-size MLP
                continue
            mlp = model.get_submodule(spec.module)
            mlp[-1].weight.copy_(torch.randn(mlp[-1].weight.shape, generator=g) * 0.5)


def sphere_coords(n: int, seed: int = 0) -> torch.Tensor:
    """Two radius-100 spheres side by side (fsaverage-like layout), n points in all."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    x = 100 * x / x.norm(dim=1, keepdim=True)
    x[n // 2:, 0] += 300
    return x


class CpuPeak:
    """Peak RSS over a block (VmHWM after a reset via /proc/self/clear_refs), minus RSS at its start."""

    @staticmethod
    def _status(field: str) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    def __enter__(self):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak RSS (Linux >= 4.0)
            self.resettable = True
        except OSError:
            self.resettable = False
        self.start = self._status("VmRSS")
        return self

    def __exit__(self, *exc):
        self.peak = self._status("VmHWM") - self.start


def measure(impl, model, tokens, target, steps, warmup, dtype, device):
    """images/s of ``steps`` training steps (after ``warmup``) of ``impl`` and the peak memory of the
    configuration (optimizer state, activations and gradients; on CUDA also the resident model and
    batch, as max_memory_allocated counts everything allocated)."""
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    peak_ctx = None if cuda else CpuPeak().__enter__()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    amp = dtype == "bf16"

    def step():
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=amp):
            sel = model.selectors()
            pred = impl.forward_tokens(tokens if amp else tokens.float(), selectors=sel)
            loss = F.smooth_l1_loss(pred.float(), target, beta=0.1) + 0.01 * model.regularizer(sel)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    del opt
    if cuda:
        peak = torch.cuda.max_memory_allocated()
    else:
        peak_ctx.__exit__()
        peak = peak_ctx.peak
    return tokens.shape[0] * steps / seconds, peak


def check_equal(model, ref, tokens, amp: bool = False) -> float:
    """max |fast - grid_sample| / max |grid_sample| of the outputs; grid_sample in fp32, the tent
    GEMM in fp32 or (amp) under bf16 autocast."""
    with torch.no_grad():
        sel = model.selectors()
        with torch.autocast(tokens.device.type, dtype=torch.bfloat16, enabled=amp):
            fast = model.forward_tokens(tokens if amp else tokens.float(), selectors=sel).float()
        slow = ref.forward_tokens(tokens.float(), selectors=sel)
    return float((fast - slow).abs().max() / slow.abs().max())


def main(argv=None) -> int:
    if "--cpu-mem" in sys.argv and "MALLOC_MMAP_THRESHOLD_" not in os.environ and argv is None:
        # Large tensors straight from mmap and back on free: the RSS then follows live memory, so
        # the per-configuration peak RSS means something. Re-run this script once with that set.
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu | cuda")
    p.add_argument("--vertices", type=int, default=37984)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--channels", type=int, default=768)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--grid", type=int, default=8)
    p.add_argument("--batch-sizes", default="8,32,128")
    p.add_argument("--dtypes", default="fp32,bf16", help="fp32 and/or bf16 (autocast)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--skip-reference-above", type=int, default=None,
                   help="do not time grid_sample above this batch size (it may not fit in memory)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--cpu-mem", action="store_true",
                   help="CPU: make the peak-RSS column meaningful (large allocations through mmap, so freed "
                        "memory leaves the RSS); the extra page faults slow both implementations' timings")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda but torch sees no GPU")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    dtypes = [d.strip() for d in args.dtypes.split(",")]

    torch.manual_seed(0)
    model = FactorTopy(sphere_coords(args.vertices), [args.channels] * args.layers, dim=args.dim,
                       grid=args.grid).to(device)
    randomise_selectors(model)
    ref = GridSampleHead(model)
    T = args.grid * args.grid + 1
    g = torch.Generator().manual_seed(1)
    check_tokens = torch.randn(4, args.layers, T, args.channels, generator=g).half().to(device)
    rel = check_equal(model, ref, check_tokens)
    rel_bf16 = check_equal(model, ref, check_tokens, amp=True) if "bf16" in args.dtypes else None
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    mem_kind = ("torch.cuda.max_memory_allocated (absolute)" if device.startswith("cuda") else
                "peak RSS during the configuration minus RSS before it (VmHWM; CPU)" + (
                    "" if args.cpu_mem else ": a lower bound without --cpu-mem (freed heap stays resident)"))
    print(f"device: {name}; torch {torch.__version__}")
    print(f"sizes: N={args.vertices} vertices, L={args.layers} x C={args.channels}, D={args.dim}, "
          f"grid {args.grid}x{args.grid}; {args.steps} timed steps after {args.warmup} warm-up")
    print(f"fp32 outputs, tent-kernel GEMM vs grid_sample: max rel diff {rel:.2e} (limit 1e-3)")
    if rel_bf16 is not None:
        print(f"bf16-autocast tent-kernel GEMM vs fp32 grid_sample: max rel diff {rel_bf16:.2e} (information)")
    if not rel <= 1e-3:
        print("MISMATCH: the two implementations disagree; not timing")
        return 1
    print(f"memory: {mem_kind}")
    print(f"{'dtype':5} {'batch':>5} | {'grid_sample img/s':>17} {'mem MiB':>9} | {'tent GEMM img/s':>17} "
          f"{'mem MiB':>9} | speed-up vs grid_sample measured in this run")
    rows = []
    for dtype in dtypes:
        for B in batch_sizes:
            tokens = torch.randn(B, args.layers, T, args.channels, generator=g).half().to(device)
            target = torch.randn(B, args.vertices, generator=g).to(device)
            row = dict(dtype=dtype, batch=B, device=name, memory=mem_kind)
            for label, impl in (("grid_sample", ref), ("tent", model)):
                if label == "grid_sample" and args.skip_reference_above and B > args.skip_reference_above:
                    row[label] = None
                    continue
                try:
                    ips, peak = measure(impl, model, tokens, target, args.steps, args.warmup, dtype, device)
                    row[label] = dict(img_s=ips, peak_bytes=peak)
                except torch.OutOfMemoryError:
                    row[label] = "OOM"
                    torch.cuda.empty_cache()

            def fmt(r):
                if r is None:
                    return f"{'skipped':>17} {'':>9}"
                if r == "OOM":
                    return f"{'OOM':>17} {'':>9}"
                return f"{r['img_s']:17,.1f} {r['peak_bytes'] / 2**20:9,.0f}"

            a, b = row["grid_sample"], row["tent"]
            ratio = b["img_s"] / a["img_s"] if isinstance(a, dict) and isinstance(b, dict) else None
            row["speedup"] = ratio
            print(f"{dtype:5} {B:5d} | {fmt(a)} | {fmt(b)} | " + (f"{ratio:.1f}x" if ratio else "-"), flush=True)
            rows.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(args=vars(args), check_rel_diff=rel, check_rel_diff_bf16=rel_bf16, rows=rows), f,
                      indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
