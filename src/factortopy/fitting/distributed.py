"""Several GPUs: data-parallel fitting under torchrun, and sweeps of independent jobs (docs/scaling.md).

Data parallel (one fit, many processes)::

    torchrun --nproc_per_node 4 -m factortopy fit --data ... --device cuda --out RUN_DIR

``factortopy fit`` calls :func:`init_from_env`; :func:`factortopy.fitting.fit.fit` then gives each
process its share ``idx[rank::world]`` of every global batch, sums gradients over processes and lets
only rank 0 write. The result equals a one-process fit with the same seed and global batch (up to
floating-point summation order; tests/test_distributed.py).

Sweep (many fits, one process per GPU)::

    python -m factortopy.fitting.distributed sweep --gpus 0,1,2,3 --each resnet18,vit_b16,clip_b16 -- \\
        factortopy fit --data algonauts:/data/subj01 --backbone {} --device cuda --out runs/{}
    python -m factortopy.fitting.distributed sweep --gpus 0,1 --jobs jobs.txt   # one command a line

Each job runs with ``CUDA_VISIBLE_DEVICES`` set to its GPU (so it sees one device, ``cuda``); at
most one job per GPU at a time; jobs start in order as GPUs free up.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from typing import Sequence

from factortopy._files import open_fresh


def init_from_env(device: str = "cpu") -> str:
    """Join the torchrun process group if there is one; returns the device this process should use.

    With ``WORLD_SIZE`` > 1 in the environment (torchrun sets it, with RANK, LOCAL_RANK,
    MASTER_ADDR and MASTER_PORT): initialise the default process group (NCCL for a CUDA device,
    gloo for the CPU) and, on CUDA, pick ``cuda:LOCAL_RANK``. Otherwise return ``device`` unchanged.
    Safe to call twice.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return device
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
    cuda = device.startswith("cuda")
    if cuda:
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch sees no GPU; use --device cpu")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible")
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo", init_method="env://")
    return device


def is_main_process() -> bool:
    """True in a single process and on rank 0 of a process group (the one that prints and writes)."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return True
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def rank_world() -> tuple[int, int]:
    """(rank, world size): of the initialised process group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def cleanup() -> None:
    """Destroy the process group if this process joined one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def run_sweep(jobs: Sequence[Sequence[str]], gpus: Sequence[int | str], log_dir: str | None = None,
              env: dict | None = None, poll: float = 0.1, verbose: bool = True) -> list[int]:
    """Run independent commands, at most one per GPU at a time; returns their exit codes in order.

    jobs: commands as argument lists (no shell). gpus: device ids (each job gets
    ``CUDA_VISIBLE_DEVICES=<id>``; any labels work on a CPU machine, where they only bound the
    concurrency). log_dir: write each job's stdout+stderr to ``job_<i>.log`` there (else inherited).
    env: extra environment variables for every job. A failing job does not stop the others.
    """
    gpus = [str(g) for g in gpus]
    if not gpus:
        raise ValueError("run_sweep needs at least one GPU id")
    if len(set(gpus)) != len(gpus):
        raise ValueError(f"GPU ids repeat: {gpus}")
    jobs = [list(j) for j in jobs]
    for i, j in enumerate(jobs):
        if not j:
            raise ValueError(f"job {i} is an empty command")
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
    codes: list[int | None] = [None] * len(jobs)
    free = list(gpus)
    running: dict[int, tuple[subprocess.Popen, str, object, float]] = {}
    pending = list(range(len(jobs)))
    try:
        while pending or running:
            while pending and free:
                i, gpu = pending.pop(0), free.pop(0)
                job_env = {**os.environ, **(env or {}), "CUDA_VISIBLE_DEVICES": gpu}
                # a fresh file: a planted link at the log's name is removed, never written through
                log = open_fresh(os.path.join(log_dir, f"job_{i}.log")) if log_dir else None
                if verbose:
                    print(f"[sweep] job {i} on GPU {gpu}: {shlex.join(jobs[i])}", flush=True)
                try:
                    proc = subprocess.Popen(jobs[i], env=job_env, stdout=log, stderr=subprocess.STDOUT if log else None)
                except OSError as err:  # command not found: record and go on
                    if log:
                        log.write(f"could not start: {err}\n")
                        log.close()
                    if verbose:
                        print(f"[sweep] job {i} could not start: {err}", flush=True)
                    codes[i] = 127
                    free.append(gpu)
                    continue
                running[i] = (proc, gpu, log, time.time())
            done = [i for i, (p, *_ ) in running.items() if p.poll() is not None]
            for i in done:
                proc, gpu, log, t = running.pop(i)
                codes[i] = proc.returncode
                if log:
                    log.close()
                free.append(gpu)
                if verbose:
                    print(f"[sweep] job {i} on GPU {gpu} exited {proc.returncode} after {time.time() - t:.1f} s",
                          flush=True)
            if not done:
                time.sleep(poll)
    finally:  # interrupted: stop the jobs this sweep started
        for proc, _, log, _ in running.values():
            proc.terminate()
        for proc, _, log, _ in running.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            if log:
                log.close()
    return [int(c) for c in codes]


def expand_template(template: Sequence[str], values: Sequence[str]) -> list[list[str]]:
    """One job per value: every ``{}`` in the template's arguments replaced by the value."""
    if not any("{}" in a for a in template):
        raise ValueError("the command template has no '{}' to fill in")
    return [[a.replace("{}", v) for a in template] for v in values]


def read_jobs(path: str) -> list[list[str]]:
    """A jobs file: one shell-quoted command a line; blank lines and '#' comments skipped."""
    with open(path) as f:
        return [shlex.split(line) for line in f if line.strip() and not line.lstrip().startswith("#")]


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    argv = list(sys.argv[1:] if argv is None else argv)
    template: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, template = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(prog="python -m factortopy.fitting.distributed",
                                description="run many independent jobs, one per GPU at a time")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sweep", help="run jobs across GPUs (CUDA_VISIBLE_DEVICES per job)")
    s.add_argument("--gpus", required=True, help="comma-separated GPU ids, e.g. 0,1,2,3")
    s.add_argument("--each", default=None, help="comma-separated values; the command after -- has {} for the value")
    s.add_argument("--jobs", default=None, help="a file with one command a line (instead of --each)")
    s.add_argument("--log-dir", default=None, help="write job_<i>.log files here")
    args = p.parse_args(argv)
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()]
    if args.jobs:
        if args.each or template:
            p.error("give either --jobs FILE or --each VALUES -- TEMPLATE, not both")
        jobs = read_jobs(args.jobs)
    elif args.each is not None and template:
        jobs = expand_template(template, [v.strip() for v in args.each.split(",") if v.strip()])
    else:
        p.error("give --jobs FILE, or --each VALUES -- COMMAND TEMPLATE WITH {}")
    codes = run_sweep(jobs, gpus, log_dir=args.log_dir)
    failed = [i for i, c in enumerate(codes) if c != 0]
    print(f"[sweep] {len(jobs) - len(failed)}/{len(jobs)} jobs succeeded" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
