"""Data-parallel fitting (2 CPU processes, gloo) equals a one-process fit; the GPU sweep runner.

The workers are this file run as a script (``python tests/test_distributed.py worker RANK ...``) with
the torchrun environment variables set by hand, so that ``init_from_env`` is exercised as well.
"""
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, "src"))
if SRC not in sys.path:  # when run as a worker script
    sys.path.insert(0, SRC)

CHANNELS = [8, 16, 12]
GRID = 8


class TinyBackbone(torch.nn.Module):
    """Metadata only: fit() reads ``info`` when features are given."""

    def __init__(self):
        super().__init__()
        from factortopy.backbones.base import BackboneInfo

        self.info = BackboneInfo(name="tiny", layer_names=["a", "b", "c"], channels=list(CHANNELS),
                                 strides=[None] * 3, input_size=(32, 32), mean=(0.5,) * 3, std=(0.5,) * 3,
                                 global_kind=["avg_pool"] * 3)


def tiny_problem(n_img=40, n_vox=60, seed=0):
    """An in-memory Subject and its precomputed Features; responses planted from the tokens."""
    from factortopy.data.subject import Subject
    from factortopy.features.extract import Features

    g = torch.Generator().manual_seed(seed)
    c_max = max(CHANNELS)
    tokens = torch.zeros(n_img, len(CHANNELS), GRID * GRID + 1, c_max)
    for l, c in enumerate(CHANNELS):
        tokens[:, l, :, :c] = torch.randn(n_img, GRID * GRID + 1, c, generator=g) * (l + 1)
    tokens = tokens.half()
    rng = np.random.default_rng(seed)
    layer = rng.integers(0, len(CHANNELS), n_vox)
    cell = rng.integers(0, GRID * GRID, n_vox)
    chan = rng.integers(0, min(CHANNELS), n_vox)
    t = tokens.float().numpy()
    responses = t[:, layer, cell, chan] + 0.5 * rng.standard_normal((n_img, n_vox))
    coords = rng.normal(size=(n_vox, 3)) * 50
    images = [np.zeros((4, 4, 3), np.uint8)] * n_img  # never read: features are given
    subject = Subject(images=images, responses=responses.astype(np.float32), vertex=np.arange(n_vox),
                      hemi=np.array(["lh"] * n_vox), coords=coords.astype(np.float32),
                      image_ids=np.arange(n_img), name="tiny", image_key="tiny")
    return subject, Features(tokens, ["a", "b", "c"], list(CHANNELS), GRID)


FIT_KW = dict(epochs=3, batch_size=7, lr=2e-3, val_fraction=0.2, patience=None, dim=16, hidden=32, seed=3,
              reg_fade="fraction", reg_fade_value=0.5, eval_batch_size=16)


def run_fit():
    from factortopy.fitting.fit import fit

    subject, features = tiny_problem()
    return fit(subject, backbone=TinyBackbone(), features=features, progress=False, device="cpu", **FIT_KW)


def summary(result) -> dict:
    out = {f"state.{k}": v.detach().cpu().numpy().copy() for k, v in result.model.state_dict().items()}
    out.update({f"sel.{k}": np.asarray(v) for k, v in result.selectors.items()})
    out["val_r"] = np.asarray(result.val_r)
    out["train_loss"] = np.array([h["train_loss"] for h in result.history])
    return out


def worker(rank: int, out_path: str) -> None:
    """One torchrun-like process: join the group through init_from_env, fit, rank 0 saves."""
    torch.set_num_threads(1)
    from factortopy.fitting.distributed import cleanup, init_from_env, is_main_process, rank_world

    device = init_from_env("cpu")
    assert device == "cpu" and rank_world() == (rank, 2), (device, rank_world())
    result = run_fit()
    if is_main_process():
        np.savez(out_path, **summary(result))
    cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_init_from_env_without_torchrun_is_a_no_op(monkeypatch):
    from factortopy.fitting.distributed import init_from_env, is_main_process

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert init_from_env("cpu") == "cpu"
    assert init_from_env("cuda:3") == "cuda:3"  # unchanged, nothing initialised
    assert not torch.distributed.is_initialized()
    assert is_main_process()


def test_data_parallel_fit_equals_single_process(tmp_path):
    out_path = str(tmp_path / "rank0.npz")
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1",
           "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "worker", str(r), out_path],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for r in range(2)]
    # Meanwhile, the one-process fit with the same seed and global batch.
    torch.set_num_threads(1)
    single = summary(run_fit())
    deadline = time.time() + 90
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=max(1.0, deadline - time.time()))[0].decode(errors="replace"))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("distributed workers did not finish within 90 s")
    for r, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == 0, f"rank {r} failed:\n{log[-3000:]}"
    dist = dict(np.load(out_path))
    assert set(dist) == set(single)
    # The fit moved the selectors away from their zero init (centre, uniform layers), so the
    # comparison covers every parameter's updates, not only the readout's.
    space = [k for k in single if k.startswith("state.space_mlp") and k.endswith("4.weight")]
    assert space and np.abs(single[space[0]]).max() > 1e-4
    for key in sorted(single):
        a, b = single[key], dist[key]
        if a.dtype.kind in "fc":
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5, err_msg=key)
        else:
            np.testing.assert_array_equal(b, a, err_msg=key)


def test_run_sweep_one_job_per_gpu_at_a_time(tmp_path):
    from factortopy.fitting.distributed import run_sweep

    # Each job records its CUDA_VISIBLE_DEVICES and start/stop times, then exits with its own code.
    code = ("import os, sys, time, json; t0 = time.time(); time.sleep(0.3); "
            "json.dump(dict(gpu=os.environ['CUDA_VISIBLE_DEVICES'], t0=t0, t1=time.time()), "
            "open(sys.argv[1], 'w')); sys.exit(int(sys.argv[2]))")
    jobs = [[sys.executable, "-c", code, str(tmp_path / f"{i}.json"), "3" if i == 4 else "0"] for i in range(5)]
    codes = run_sweep(jobs, gpus=[0, 1], log_dir=str(tmp_path / "logs"), verbose=False)
    assert codes == [0, 0, 0, 0, 3]
    import json

    recs = [json.load(open(tmp_path / f"{i}.json")) for i in range(5)]
    assert {r["gpu"] for r in recs} == {"0", "1"}
    for gpu in ("0", "1"):  # never two jobs on one GPU at once
        spans = sorted((r["t0"], r["t1"]) for r in recs if r["gpu"] == gpu)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert len(list((tmp_path / "logs").glob("job_*.log"))) == 5


def test_sweep_command_line_template(tmp_path):
    from factortopy.fitting.distributed import main

    rc = main(["sweep", "--gpus", "7", "--each", "a,b", "--", sys.executable, "-c",
               f"open(r'{tmp_path}/{{}}.txt', 'w').write('x')"])
    assert rc == 0
    assert sorted(p.name for p in tmp_path.glob("*.txt")) == ["a.txt", "b.txt"]
    jobs_file = tmp_path / "jobs.txt"
    jobs_file.write_text(f"# a comment\n{sys.executable} -c 'raise SystemExit(2)'\n\n")
    assert main(["sweep", "--gpus", "0", "--jobs", str(jobs_file)]) == 1


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "worker":
    worker(int(sys.argv[2]), sys.argv[3])
