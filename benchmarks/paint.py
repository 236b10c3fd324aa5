"""`factortopy paint` wall time, a fresh process per call (what a user waits for), against the same
command with torch imported first (what every paint did before it stopped importing torch), in
alternating rounds in this run; plus the in-process phases (first paint, a repeat, savefig).

    OMP_NUM_THREADS=1 python benchmarks/paint.py --rounds 3

Uses a RUN_DIR of random maps on fsaverage5 (800 vertices), or ``--run RUN_DIR``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, os.path.join(ROOT, "tests"))


def _seconds(code: str, env: dict) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=None, help="a RUN_DIR (default: random maps)")
    p.add_argument("--what", default="layer")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="paint-bench-")
    run = args.run
    if run is None:
        from conftest import _write_run

        run = os.path.join(tmp, "run")
        _write_run(run, n_per=400)
    out = os.path.join(tmp, "map.png")
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src"), "MPLBACKEND": "Agg"}
    call = f"from factortopy.cli import main; main(['paint', {run!r}, '--what', {args.what!r}, '--out', {out!r}])"
    now, before = [], []
    _seconds(call, env)  # warm the disk cache
    for _ in range(args.rounds):
        now.append(_seconds(call, env))
        before.append(_seconds("import torch; " + call, env))
    with open("/proc/loadavg") if os.path.exists("/proc/loadavg") else open(os.devnull) as f:
        load = f.read().split()[:1]
    print(f"factortopy paint --what {args.what} (4 views, fresh process), median of {args.rounds}, load {load}:")
    print(f"  now (no torch import): {sorted(now)[len(now) // 2]:.2f} s   {['%.2f' % t for t in now]}")
    print(f"  with torch imported:   {sorted(before)[len(before) // 2]:.2f} s   {['%.2f' % t for t in before]}")
    print(f"  ratio before / now: {sorted(before)[len(before) // 2] / sorted(now)[len(now) // 2]:.2f}")

    from factortopy.viz.paint_runs import paint_run

    for label in ("first paint in this process", "repeat"):
        t = time.perf_counter()
        fig = paint_run(run, args.what)
        t1 = time.perf_counter()
        fig.savefig(out, dpi=150)
        print(f"  {label}: figure {t1 - t:.2f} s, savefig {time.perf_counter() - t1:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
