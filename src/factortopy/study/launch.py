"""Studies on a cluster: each (subject, backbone) fit of a study as its own job, through submitit.

``factortopy study FILE --launcher slurm`` (or ``[launcher] kind = "slurm"`` in the study file)
submits every pending fit as one SLURM job (:class:`FitJob`, which runs the worker's job,
:func:`factortopy.study.worker.run_job`), waits for them, and then writes the summary as an
in-process study does. ``--launcher local`` runs the same path with submitit's local executor (one
process per job, on this machine): what the tests use. The default, ``process``, fits in this
process (or one process per GPU; :mod:`factortopy.study.run`).

What survives what:

- a finished fit is never submitted again (its RUN_DIR holds a finished run of its settings);
- a job killed, timed out or pre-empted leaves its fit's checkpoint: SLURM requeues a timed-out or
  pre-empted job (:meth:`FitJob.checkpoint`, submitit's requeue), and running the study again
  resubmits any other unfinished fit; either way the fit resumes from its checkpoint;
- a job killed hard leaves its RUN_DIR lock behind, naming a process on a node that is gone; the
  next attempt of the same pair takes that lock over, and only that one (the lock must name the
  attempt this pair's previous job recorded in ``DIR/jobs/<pair>.attempt.json``);
- a study run again while its jobs still run submits nothing twice: it waits for the jobs it
  recorded (``DIR/jobs/<pair>.submitted.json``) that SLURM still lists as pending or running;
- two study processes on one study directory: the second is refused (a lock on ``DIR``).

Job files live in ``DIR/jobs/``: ``<pair>.json`` (the worker's job), the records above, and
submitit's folder ``DIR/jobs/submitit/`` (job scripts, ``<job id>_0_log.out`` / ``.err``).
"""
from __future__ import annotations

import os
import re
import socket
import sys
import time
from dataclasses import dataclass, fields


class FitsFailed(RuntimeError):
    """Fits of a study that did not finish (the message names each and its log): rerunning the
    study retries them. The command line prints it as one line (exit code 2)."""


#: where a study's fits run: in this process (or one per GPU), submitit's local executor, SLURM
LAUNCHERS = ("process", "local", "slurm")
#: default wall-clock limit of a job, minutes (a job that runs out resumes from its checkpoint)
DEFAULT_TIME_MIN = 240
#: seconds between two looks at the jobs (SLURM's accounting is asked at most this often)
POLL_S = {"local": 1.0, "slurm": 30.0}


@dataclass
class LaunchSettings:
    """Where and with what a study's fits run (the ``[launcher]`` section of a study file, or the
    command's options, which override it).

    kind: 'process' (default), 'local' or 'slurm'. partition, account, qos: SLURM's ``--partition``,
    ``--account``, ``--qos``. gpus_per_job: GPUs per fit, 0 or 1 (default 1 when the study's device
    is cuda, else 0). cpus_per_job: CPU cores per fit. time: wall-clock limit per job, minutes or SLURM's
    ``[D-]H:MM:SS`` (default 4 h). mem: memory per job, SLURM's form (``32G``, ``500M``).
    """

    kind: str = "process"
    partition: str | None = None
    gpus_per_job: int | None = None
    cpus_per_job: int | None = None
    time: int | str | None = None
    mem: str | None = None
    account: str | None = None
    qos: str | None = None


#: the keys of a study file's [launcher] section
SETTING_KEYS = tuple(f.name for f in fields(LaunchSettings))


def parse_time(value) -> int:
    """A wall-clock limit in minutes, from minutes (int) or SLURM's forms: ``MM``, ``MM:SS``,
    ``H:MM:SS``, ``D-H``, ``D-H:MM``, ``D-H:MM:SS`` (seconds rounded up)."""
    if isinstance(value, bool):
        raise ValueError(f"time {value!r}: give minutes or [D-]H:MM:SS")
    if isinstance(value, int):
        minutes = value
    else:
        m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", str(value).strip())
        if not m:
            raise ValueError(f"time {value!r} is not a SLURM time: give minutes, H:MM:SS or D-H:MM:SS")
        days, a, b, c = m.groups()
        parts = [int(x) for x in (a, b, c) if x is not None]
        if days is not None:  # D-H[:MM[:SS]]
            h, mi, s = (parts + [0, 0])[:3]
            seconds = ((int(days) * 24 + h) * 60 + mi) * 60 + s
        elif len(parts) == 3:
            seconds = (parts[0] * 60 + parts[1]) * 60 + parts[2]
        elif len(parts) == 2:
            seconds = parts[0] * 60 + parts[1]
        else:
            seconds = parts[0] * 60
        minutes = -(-seconds // 60)
    if minutes < 1:
        raise ValueError(f"time {value!r} is under a minute: give the wall-clock limit of one fit")
    return int(minutes)


def check_settings(section: dict, where: str = "[launcher]") -> LaunchSettings:
    """A :class:`LaunchSettings` from a study file's section (or the command's options): unknown
    keys and bad values are errors naming them."""
    bad = sorted(set(section) - set(SETTING_KEYS))
    if bad:
        raise ValueError(f"{where}: unknown key(s) {bad}; known: {', '.join(SETTING_KEYS)}")
    s = LaunchSettings(**section)
    if s.kind not in LAUNCHERS:
        raise ValueError(f"{where}: kind (--launcher) must be one of {', '.join(LAUNCHERS)}; got {s.kind!r}")
    for name, low in (("gpus_per_job", 0), ("cpus_per_job", 1)):
        value = getattr(s, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ValueError(f"{where}: {name} must be a whole number >= {low}; got {value!r}")
    if s.gpus_per_job is not None and s.gpus_per_job > 1:
        raise ValueError(f"{where}: gpus_per_job = {s.gpus_per_job}, but a study's fit runs on one GPU (the others "
                         "would idle): use 1, and run one fit on several GPUs with torchrun (docs/scaling.md)")
    if s.time is not None:
        try:
            parse_time(s.time)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    if s.mem is not None and not re.fullmatch(r"\d+[KMGT]?", str(s.mem)):
        raise ValueError(f"{where}: mem {s.mem!r} is not SLURM's form: give e.g. 32G or 500M")
    for name in ("partition", "account", "qos"):
        value = getattr(s, name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{where}: {name} must be a string; got {value!r}")
    return s


def settings_for(section: dict | None, **overrides) -> LaunchSettings:
    """The study file's settings with the command's options (those not None) on top."""
    merged = dict(section or {})
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return check_settings(merged, "the launcher settings" if overrides else "[launcher]")


def executor_parameters(s: LaunchSettings, device: str) -> dict:
    """submitit's ``update_parameters`` for these settings and the study's device (the local
    executor ignores the slurm_* ones); a device without GPUs, or GPUs without a cuda device, is an error."""
    gpus = s.gpus_per_job if s.gpus_per_job is not None else (1 if device.startswith("cuda") else 0)
    if gpus and not device.startswith("cuda"):
        raise ValueError(f"gpus_per_job = {gpus} but the study's device is {device!r}: set device = 'cuda' "
                         "(--device cuda) to fit on the GPUs, or gpus_per_job = 0")
    if device.startswith("cuda") and not gpus:
        raise ValueError("the study's device is cuda but gpus_per_job = 0: a job would have no GPU")
    params = dict(timeout_min=parse_time(s.time) if s.time is not None else DEFAULT_TIME_MIN, gpus_per_node=gpus,
                  tasks_per_node=1, nodes=1)
    if s.cpus_per_job:
        params["cpus_per_task"] = s.cpus_per_job
    for key in ("partition", "mem", "account", "qos"):
        if getattr(s, key) is not None:
            params[f"slurm_{key}"] = getattr(s, key)
    return params


# ---- the job ---------------------------------------------------------------------------------------
def _attempt_path(job_path: str) -> str:
    return job_path[: -len(".json")] + ".attempt.json"


def _me() -> str:
    """This process as a RUN_DIR lock names its holder (:class:`factortopy.runs.directory.RunDirLock`
    writes ``host pid``): the fit this process runs will hold the lock under this name."""
    return f"{socket.gethostname()} {os.getpid()}"


class FitJob:
    """A study's fit as a submitit job: ``FitJob()(job_path)`` fits the worker's job at ``job_path``.

    submitit calls :meth:`checkpoint` when SLURM times the job out or pre-empts it and requeues the
    same call; the fit then resumes from the checkpoint its RUN_DIR holds.
    """

    def __call__(self, job_path: str) -> str:
        from factortopy.runs import read_json, write_json
        from factortopy.study.worker import run_job

        job = read_json(job_path)
        self._take_over_own_lock(job_path, job["out"])
        write_json(_attempt_path(job_path), dict(holder=_me(), job_id=_job_id(), started=time.time()))
        print(f"fitting {job['out']} ({_me()})", flush=True)
        run_job(job)
        print(f"finished {job['out']}", flush=True)
        return job["out"]

    @staticmethod
    def _take_over_own_lock(job_path: str, out: str) -> None:
        """Remove ``out``'s lock when it names this pair's previous attempt: that attempt is over (a
        requeued job's previous run has ended; the launcher resubmits only jobs SLURM no longer lists).
        Any other holder stays, and the fit reports it. The take-over is atomic
        (:func:`~factortopy.runs.directory.take_over_lock`): two attempts racing, one wins."""
        from factortopy.runs import read_json
        from factortopy.runs.directory import LOCK, RunDirLock, take_over_lock

        lock, attempt = os.path.join(out, LOCK), _attempt_path(job_path)
        if not (os.path.isfile(lock) and os.path.isfile(attempt)):
            return
        holder = RunDirLock(out).holder()
        if holder and holder == read_json(attempt).get("holder") and take_over_lock(out, holder):
            print(f"took over {lock}, left by this fit's previous attempt ({holder})", flush=True)

    def checkpoint(self, *args, **kwargs):
        """Requeue the same job after a timeout or pre-emption (the fit resumes from its checkpoint)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def _job_id() -> str:
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID") or str(os.getpid())


# ---- the launcher ----------------------------------------------------------------------------------
#: SLURM states of a job that may still run
_ACTIVE = ("PENDING", "READY", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "PREEMPTED", "CONFIGURING",
           "COMPLETING", "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING")


def _pair_key(pair, out: str) -> str:
    from factortopy.study.config import slug

    return slug(os.path.relpath(pair.run_dir, os.path.join(out, "runs")).replace(os.sep, "__"))


def _still_running(record: dict, folder: str) -> bool:
    """Whether a job submitted by an earlier study run may still run (then it is waited for, never
    submitted twice). SLURM: what sacct says; a state it cannot tell is an error naming the record."""
    if record.get("launcher") == "local":
        if record.get("host") != socket.gethostname():
            return False  # another machine's local process cannot be writing ... nor be asked
        try:
            os.kill(int(record["job_id"]), 0)
        except (ProcessLookupError, ValueError):
            return False
        except PermissionError:
            return True
        return True
    import submitit

    job_id = str(record["job_id"])
    state = (submitit.SlurmJob(folder, job_id).watcher.get_state(job_id, mode="force") or "UNKNOWN").split()[0].upper()
    if state == "UNKNOWN":
        raise FitsFailed(f"SLURM cannot tell the state of job {record['job_id']} (recorded in "
                           f"{record.get('_path')}): if it no longer runs, remove that file and run the study again")
    return state in _ACTIVE


class _Adopted:
    """A job submitted by an earlier study run, waited for until its fit is finished or it no longer runs."""

    def __init__(self, record: dict, folder: str, pair):
        self.record, self.folder, self.pair, self.job_id = record, folder, pair, str(record["job_id"])

    def done(self) -> bool:
        from factortopy.study.run import is_finished

        return is_finished(self.pair) or not _still_running(self.record, self.folder)


def launch(pending: list, out: str, settings: LaunchSettings, device: str, progress: bool = True,
           poll_s: float | None = None) -> None:
    """Fit every pair of ``pending`` as a job of ``settings.kind`` ('local' or 'slurm'), wait for all,
    and raise naming the fits that did not finish (with their logs). Jobs an earlier study run
    submitted and SLURM still runs are waited for, not submitted again."""
    import submitit

    from factortopy.runs import read_json, write_json
    from factortopy.runs.directory import RunDirBusy, RunDirLock
    from factortopy.study.run import is_finished
    from factortopy.study.worker import job_for

    if settings.kind not in ("local", "slurm"):
        raise ValueError(f"launch() runs jobs through submitit: kind must be 'local' or 'slurm', got {settings.kind!r}")
    params = executor_parameters(settings, device)  # a mismatch of device and GPUs fails before any job
    job_dir = os.path.join(out, "jobs")
    folder = os.path.join(job_dir, "submitit")
    os.makedirs(folder, exist_ok=True)
    try:
        study_lock = RunDirLock(job_dir).acquire()
    except RunDirBusy as err:
        raise RunDirBusy(f"another study process is launching the fits of {out} ({err}); wait for it") from None
    try:
        try:
            executor = submitit.AutoExecutor(folder=folder, cluster=settings.kind, slurm_max_num_timeout=20)
        except RuntimeError as err:  # submitit: no srun / sbatch here
            raise ValueError(f"--launcher {settings.kind} cannot submit from this machine ({err}): run the study "
                             "on the cluster's login node, or use --launcher local to run the jobs here") from None
        entries = []  # (pair, job)
        for pair in pending:
            key = _pair_key(pair, out)
            job_path, record_path = os.path.join(job_dir, f"{key}.json"), os.path.join(job_dir, f"{key}.submitted.json")
            if os.path.isfile(record_path):
                record = dict(read_json(record_path), _path=record_path)
                if _still_running(record, folder):
                    _log(f"{pair.backbone.label} on {pair.subject}: job {record['job_id']} still runs; waiting for it",
                         progress)
                    entries.append((pair, _Adopted(record, folder, pair)))
                    continue
            write_json(job_path, job_for(pair, out, device))
            executor.update_parameters(**{**params, "name": f"factortopy-{key}"})
            job = executor.submit(FitJob(), job_path)
            write_json(record_path, dict(launcher=settings.kind, job_id=str(job.job_id), host=socket.gethostname(),
                                         submitted=time.time()))
            _log(f"submitted {pair.backbone.label} on {pair.subject} as {settings.kind} job {job.job_id}", progress)
            entries.append((pair, job))
        _wait([e[1] for e in entries], poll_s if poll_s is not None else POLL_S[settings.kind], progress)
    finally:
        study_lock.release()
    failed = []
    for pair, job in entries:
        if is_finished(pair):
            continue
        log = getattr(getattr(job, "paths", None), "stderr", None) or os.path.join(folder, f"{job.job_id}_0_log.err")
        reason = ""
        if hasattr(job, "paths") and job.paths.result_pickle.exists():  # else it was killed: the log says more
            err = job.exception()
            reason = f": {str(err).strip().splitlines()[-1]}" if err is not None else ""
        failed.append(f"{pair.backbone.label} on {pair.subject} (job {job.job_id}{reason}; log {log})")
    if failed:
        raise FitsFailed(f"{len(failed)} fit(s) did not finish: " + "; ".join(failed) + ". Run the study again "
                           "to resubmit them (finished runs are kept; interrupted ones resume from their checkpoint)")


def _wait(jobs: list, poll_s: float, progress: bool) -> None:
    """Until every job has ended (whatever its outcome: the RUN_DIRs say which fits finished)."""
    waiting, ended = list(jobs), 0
    while waiting:
        still = []
        for job in waiting:
            if job.done():
                ended += 1
                _log(f"job {job.job_id} ended ({ended} of {len(jobs)})", progress)
            else:
                still.append(job)
        waiting = still
        if waiting:
            time.sleep(poll_s)


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(f"[study] {msg}", file=sys.stdout, flush=True)
