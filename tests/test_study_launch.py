"""Studies on a cluster (factortopy.study.launch): through submitit's local executor a study gives the
in-process study's summary, a job killed hard resumes its fit from the checkpoint when resubmitted
(taking over its own stale lock, and only its own), a second run refits nothing; SLURM options reach
the sbatch script; the settings and the study file's [launcher] section are checked."""
import json
import os
import re
import stat
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("submitit")
pytestmark = pytest.mark.filterwarnings("ignore:the (validation|held-out) set has only")

LAYERS = ["layer1", "layer2"]
FIT = dict(epochs=3, batch_size=8, dim=4, hidden=8, patience=None, val_fraction=0.2, heldout_fraction=0.2)


@pytest.fixture(scope="module")
def subject_dir(tmp_path_factory):
    """48 images, ~100 vertices with stream ROIs, planted through a random resnet18 at 32 px."""
    from factortopy.datasets.planted import make_planted_subject

    folder = str(tmp_path_factory.mktemp("planted") / "subj01")
    make_planted_subject(folder, n_images=48, pole_fraction=0.005, img_size=32, image_size=32, dim=4, progress=False)
    return folder


def _study(subject_dir):
    return {"study": {"n_boot": 20, "name": "two seeds"},
            "subjects": [{"name": "subj01", "data": f"algonauts:{subject_dir}"}],
            "backbones": [{"label": "random a", "name": "resnet18", "random_init": True, "img_size": 32,
                           "layers": LAYERS},
                          {"label": "random b", "name": "resnet18", "random_init": True, "seed": 2, "img_size": 32,
                           "layers": LAYERS}],
            "fit": FIT}


def _files(folder):
    return {f: os.stat(os.path.join(folder, f)).st_mtime_ns for f in sorted(os.listdir(folder))}


def _interrupted_fit(pair, out, monkeypatch):
    """The pair's fit killed inside epoch 2: its RUN_DIR keeps the checkpoint of epoch 1."""
    from factortopy.study.worker import job_for, run_job

    real, calls = torch.optim.AdamW.step, []

    def step(opt, *a, **k):
        calls.append(1)
        if len(calls) == 6:  # 29 training images / batch 8: 4 steps per epoch
            raise KeyboardInterrupt("killed")
        return real(opt, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    with pytest.raises(KeyboardInterrupt):
        run_job(job_for(pair, out, "cpu"))
    monkeypatch.undo()
    assert sorted(os.listdir(pair.run_dir)) == ["checkpoint.pt"]


def test_local_launcher_gives_the_in_process_summary_resumes_killed_jobs_and_refits_nothing(
        subject_dir, tmp_path, monkeypatch, capsys):
    import factortopy.study
    from factortopy.runs.directory import LOCK
    from factortopy.study.config import load_study, pairs
    from factortopy.study.launch import _pair_key

    here = factortopy.study(_study(subject_dir), tmp_path / "here", progress=False, figures=False)
    out = str(tmp_path / "cluster")
    first, second = pairs(load_study(_study(subject_dir)), out)
    jobs = os.path.join(out, "jobs")
    os.makedirs(jobs)
    # pair 1: its job was killed hard after a checkpoint, on a node now gone: a checkpoint and a lock
    # naming that job's process, which the job recorded as its attempt
    _interrupted_fit(first, out, monkeypatch)
    ckpt_path = os.path.join(first.run_dir, "checkpoint.pt")
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert [h["epoch"] for h in ckpt["history"]] == [1]
    ckpt["history"][0]["train_loss"] = 12345.0  # a mark only a fit resumed from this checkpoint carries
    torch.save(ckpt, ckpt_path)
    key = _pair_key(first, out)
    with open(os.path.join(first.run_dir, LOCK), "w") as f:
        f.write("gone-node 4242")
    for name, record in ((f"{key}.attempt.json", {"holder": "gone-node 4242"}),
                         (f"{key}.submitted.json", {"launcher": "local", "job_id": "4242", "host": "gone-node"})):
        with open(os.path.join(jobs, name), "w") as f:
            json.dump(record, f)
    # pair 2: a lock held by someone else: never taken over, the job fails and says so
    os.makedirs(second.run_dir)
    with open(os.path.join(second.run_dir, LOCK), "w") as f:
        f.write("other-node 99")
    with pytest.raises(RuntimeError, match=r"1 fit\(s\) did not finish: random b on subj01 .*log .*\.err"):
        factortopy.study(_study(subject_dir), out, progress=False, figures=False, launcher="local")
    with open(os.path.join(first.run_dir, "train_log.jsonl")) as f:
        log = [json.loads(line) for line in f]
    assert [e["epoch"] for e in log] == [1, 2, 3] and log[0]["train_loss"] == 12345.0  # resumed, not restarted
    assert not os.path.exists(os.path.join(first.run_dir, LOCK))
    with open(os.path.join(second.run_dir, LOCK)) as f:
        assert f.read() == "other-node 99"  # untouched
    # the other writer went away: the study run again fits that pair only, and gives the same table
    os.remove(os.path.join(second.run_dir, LOCK))
    kept = _files(first.run_dir)
    cluster = factortopy.study(_study(subject_dir), out, progress=False, figures=False, launcher="local")
    assert cluster["fitted"] == 1 and _files(first.run_dir) == kept
    assert len(cluster["summary"]) == len(here["summary"]) == 2
    for a, b in zip(here["summary"], cluster["summary"]):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], float):
                assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6), k
            else:
                assert a[k] == b[k], k
    # a second run: nothing submitted, nothing touched
    records = _files(jobs)
    runs = {p.run_dir: _files(p.run_dir) for p in (first, second)}
    again = factortopy.study(_study(subject_dir), out, progress=True, figures=False, launcher="local")
    assert again["fitted"] == 0 and "submitted" not in capsys.readouterr().out
    assert _files(jobs) == records and {p.run_dir: _files(p.run_dir) for p in (first, second)} == runs


def _fake_slurm(bin_dir, states):
    """srun, sbatch (keeps each script it is given) and sacct (answers ``states`` in turn) on PATH."""
    os.makedirs(bin_dir)
    py = sys.executable
    scripts = {
        "srun": "#!/bin/sh\nexit 0\n",
        "sbatch": f"""#!{py}
import os, shutil, sys
here = os.path.dirname(os.path.abspath(__file__))
n = len([f for f in os.listdir(here) if f.startswith("submitted_")])
shutil.copy(sys.argv[-1], os.path.join(here, f"submitted_{{n}}.sh"))
print("Submitted batch job 4711")
""",
        "sacct": f"""#!{py}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
states = {json.dumps(states)}
count = os.path.join(here, "sacct_calls")
n = int(open(count).read()) if os.path.exists(count) else 0
open(count, "w").write(str(n + 1))
print("JobID|State|NodeList")
for job in sys.argv[sys.argv.index("-j") + 1].split(","):
    print(job + "|" + states[min(n, len(states) - 1)] + "|node1")
""",
    }
    for name, text in scripts.items():
        path = os.path.join(bin_dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)


def test_slurm_options_reach_sbatch_and_a_running_job_is_never_submitted_twice(subject_dir, tmp_path, monkeypatch,
                                                                                capsys):
    import factortopy.study
    import factortopy.study.launch as launch
    from factortopy.cli import main

    bin_dir = str(tmp_path / "bin")
    _fake_slurm(bin_dir, ["FAILED"])
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ["PATH"])
    monkeypatch.setitem(launch.POLL_S, "slurm", 0.05)
    fit = "\n".join(f"{k} = {json.dumps(v)}" for k, v in FIT.items() if v is not None)
    toml = tmp_path / "study.toml"
    toml.write_text(f"""
[study]
n_boot = 20
[[subjects]]
name = "subj01"
data = "algonauts:{subject_dir}"
[[backbones]]
label = "random a"
name = "resnet18"
random_init = true
img_size = 32
layers = {json.dumps(LAYERS)}
[fit]
{fit}
[launcher]
kind = "slurm"
partition = "gpu"
time = "1:30:00"
mem = "8G"
account = "lab"
""")
    out = str(tmp_path / "out")
    # the command's options go over the file's; the (fake) job fails, and the study says which and where
    # (one line, exit code 2: the command's error path, issue 22)
    assert main(["study", str(toml), "--out", out, "--quiet", "--no-figures", "--device", "cuda", "--qos", "high",
                 "--gpus-per-job", "1", "--cpus-per-job", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(r"did not finish: random a on subj01 \(job 4711.*log ", err), err
    with open(os.path.join(bin_dir, "submitted_0.sh")) as f:
        script = f.read()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --mem=8G", "#SBATCH --account=lab",
                 "#SBATCH --qos=high", "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --job-name=factortopy-subj01__random_a-"):
        assert line in script, (line, script)
    assert "--signal=USR2@" in script  # submitit's signal before the time limit: the job requeues itself
    # a study killed while its job (4800) still runs, run again: the job is waited for, not submitted again
    records = [f for f in os.listdir(os.path.join(out, "jobs")) if f.endswith(".submitted.json")]
    assert len(records) == 1
    with open(os.path.join(out, "jobs", records[0]), "w") as f:
        json.dump({"launcher": "slurm", "job_id": "4800", "host": "login1"}, f)
    os.remove(os.path.join(bin_dir, "sacct_calls"))
    _fake_slurm(str(tmp_path / "bin2"), ["RUNNING", "RUNNING", "COMPLETED"])
    os.replace(str(tmp_path / "bin2" / "sacct"), os.path.join(bin_dir, "sacct"))
    with pytest.raises(RuntimeError, match=r"did not finish: random a on subj01 \(job 4800"):
        factortopy.study(str(toml), out, progress=False, figures=False, device="cuda", launcher={"gpus_per_job": 1})
    assert not os.path.exists(os.path.join(bin_dir, "submitted_1.sh"))
    with open(os.path.join(bin_dir, "sacct_calls")) as f:
        assert int(f.read()) >= 3  # asked until it ended


def test_settings_are_checked_and_the_study_file_section_is_read(subject_dir, tmp_path):
    from factortopy.study.config import load_study
    from factortopy.study.launch import check_settings, executor_parameters, parse_time, settings_for

    assert [parse_time(v) for v in (90, "90", "5:30", "1:30:00", "2-0", "1-2:30", "0:0:01")] == \
        [90, 90, 6, 90, 2880, 1590, 1]
    for bad, match in ((dict(kind="pbs"), "must be one of process, local, slurm"),
                       (dict(partitoin="gpu"), r"unknown key\(s\) \['partitoin'\]"),
                       (dict(mem="lots"), "mem 'lots'"), (dict(time="soon"), "not a SLURM time"),
                       (dict(gpus_per_job=-1), "gpus_per_job"), (dict(gpus_per_job=2), "torchrun")):
        with pytest.raises(ValueError, match=match):
            check_settings(bad)
    s = settings_for({"kind": "slurm", "partition": "a", "mem": "4G"}, partition="b", time=None)
    assert (s.kind, s.partition, s.mem, s.time) == ("slurm", "b", "4G", None)
    with pytest.raises(ValueError, match="device is 'cpu'"):
        executor_parameters(check_settings({"gpus_per_job": 1}), "cpu")
    with pytest.raises(ValueError, match="no GPU"):
        executor_parameters(check_settings({"gpus_per_job": 0}), "cuda")
    params = executor_parameters(s, "cpu")
    assert params["timeout_min"] == 240 and params["slurm_partition"] == "b" and params["gpus_per_node"] == 0
    study = _study(subject_dir)
    study["launcher"] = {"kind": "local", "time": 30}
    assert load_study(study).launcher == {"kind": "local", "time": 30}
    study["launcher"] = {"kind": "local", "tmie": 30}
    with pytest.raises(ValueError, match=r"\[launcher\]: unknown key\(s\) \['tmie'\]"):
        load_study(study)
