"""Running a study: fine-tuning checkpoints, then every (subject, backbone) fit not done yet, then
the table, figures and page (docs/studies.md).

Layout of the study directory ``DIR``::

    DIR/study.json                      the resolved study: pairs, their RUN_DIRs and digests
    DIR/runs/<subject>/<label>-<digest> one RUN_DIR per pair (factortopy.study.config: naming), and per
                                        noise-floor refit and data-scaling subset (their own digests)
    DIR/features/                       the feature cache: once per (backbone, image set)
    DIR/finetune/<label>-<digest>.safetensors (+ .json log)  checkpoints the study fine-tuned
    DIR/summary.csv, DIR/profiles.json  one row per run, per-ROI layer profiles (factortopy.study.summary)
    DIR/alignment.csv                   per backbone, pooled over subjects and seeds (factortopy.study.inference)
    DIR/comparisons.csv                 per measure and pair of backbones: paired differences
    DIR/finetune.csv                    the fine-tuning study's table (factortopy.study.forgetting)
    DIR/probe/                          probe features, per (backbone, probe images, layer)
    DIR/scaling.csv                     the data-scaling table (factortopy.study.scaling)
    DIR/figures/*.png, DIR/index.html   figures and the self-contained page

Fits run one after another in this process on a CPU or one GPU; with several GPUs, one process
per GPU through :func:`factortopy.fitting.distributed.run_sweep` (each job is
``python -m factortopy.study.worker JOB.json``). A killed study run again skips finished runs,
resumes interrupted ones (their checkpoints) and reuses the feature cache.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict

from factortopy.fitting.fit import fit
from factortopy.study.config import Pair, Study, load_study, pairs, slug


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(f"[study] {msg}", flush=True)


def make_checkpoints(study: Study, out: str, progress: bool = True) -> None:
    """Fine-tune each version that names an image folder (once: its checkpoint is named by a digest
    of base spec, weights, images and settings) and point its spec at the checkpoint."""
    from factortopy.study.finetune import FinetuneConfig, checkpoint_name, finetune

    if study.finetune is not None and study.finetune.probe is not None:
        from factortopy.study.probe import check_disjoint, probe_set

        # before any fine-tuning: a probe that shares images with a fine-tuning set measures nothing
        check_disjoint(probe_set(study.finetune.probe, study.finetune.probe_test_fraction, study.finetune.probe_seed),
                       [b.finetune["images"] for b in study.backbones if b.finetune])
    for b in study.backbones:
        if not b.finetune:
            continue
        settings = dict(b.finetune)
        images = settings.pop("images")
        cfg = FinetuneConfig(**settings)
        path = os.path.join(out, "finetune", f"{slug(b.label)}-{checkpoint_name(b.spec, images, cfg)}")
        if os.path.isfile(path):
            _log(f"fine-tuned checkpoint of {b.label!r} exists: {path}", progress)
        else:
            _log(f"fine-tuning {b.label!r} ({cfg.steps} steps on {images})", progress)
            log = finetune(b.spec, images, path, cfg, device=study.device, progress=progress)
            from factortopy._files import replacing

            with replacing(path[: -len(".safetensors")] + ".json", "w") as f:
                json.dump(log, f, indent=1)
        # the checkpoint is the network's own state dict (its own key names): never remapped by position
        # as the base's weights file may have been
        b.spec = b.spec.replace(weights=path, pretrained=None, random_init=False, remap="auto")
        b.finetune = None


def auxiliary_pairs(study: Study, out: str, main: list) -> list:
    """Fits the study needs beside its pairs: the fine-tuning study's noise-floor refits and the
    data-scaling subsets (each with its own fit settings, so its own RUN_DIR); one that is the same
    fit as a pair (same RUN_DIR) is not listed twice."""
    from factortopy.study.forgetting import noise_floor_pairs
    from factortopy.study.scaling import scaling_pairs

    seen = {p.run_dir for p in main}
    extra = []
    for p in noise_floor_pairs(study, out) + scaling_pairs(study, out):
        if p.run_dir not in seen:
            seen.add(p.run_dir)
            extra.append(p)
    return extra


def _pair_record(p: Pair, out: str) -> dict:
    return dict(subject=p.subject, label=p.backbone.label, seed=p.seed, family=p.backbone.family,
                method=p.backbone.method, finetune_of=p.backbone.finetune_of, null=p.backbone.null,
                spec=p.spec.to_dict(), run_dir=os.path.relpath(p.run_dir, out))


def is_finished(pair: Pair) -> bool:
    """True when the pair's RUN_DIR holds a finished run of exactly this spec and these settings."""
    from factortopy.runs import CONFIG, read_config

    if not os.path.isfile(os.path.join(pair.run_dir, CONFIG)):
        return False
    config = read_config(pair.run_dir)
    recorded = (config.get("backbone") or {}).get("spec")
    fitcfg = config.get("fit") or {}
    same = recorded == pair.spec.to_dict() and config.get("data") == pair.data and \
        all(fitcfg.get(k) == v for k, v in pair.fit.items() if k != "device")
    if not same:  # the folder's digest says these settings, its config says others: never reuse it
        raise ValueError(f"{pair.run_dir} holds a run of another spec or settings than its name says; "
                         "move it away and run the study again")
    return True


def _fit_here(study: Study, pending: list, out: str, device: str, progress: bool) -> None:
    from factortopy.data import load_subject

    subjects = {}
    for i, p in enumerate(pending):
        _log(f"fit {i + 1}/{len(pending)}: {p.backbone.label} (seed {p.seed}) on {p.subject} -> {p.run_dir}",
             progress)
        if p.data not in subjects:
            subjects = {p.data: load_subject(p.data)}  # one subject in memory at a time
        fit(subjects[p.data], backbone=p.spec, out=p.run_dir, data_spec=p.data, progress=progress,
            cache_dir=os.path.join(out, "features"),
            **{**p.fit, "device": device})


def check_subjects(study: Study) -> None:
    """Load each subject once, before any fine-tuning or fit, and raise now if a fit or the summary
    would fail on it: the summary cannot place its vertices in the hierarchy
    (:func:`factortopy.study.inference.subject_hierarchy`), the fit settings leave a validation or
    held-out set too small to score (:func:`factortopy.evaluation.metrics.check_scored_images`, the
    rule every scoring path applies), or a [scaling] subset asks for more training images than
    the split leaves."""
    from factortopy.data import load_subject
    from factortopy.data.split import nested_train_subset, split_indices
    from factortopy.fitting.config import check_refit_images
    from factortopy.fitting.fit import FitConfig, check_split_sizes
    from factortopy.study.inference import subject_hierarchy

    cfg = FitConfig(**study.fit)
    for name, data in study.subjects.items():
        subject = load_subject(data)
        subject_hierarchy(subject, study, name)
        where = f"subject {name!r} ({subject.n_images} images) with the [fit] settings"
        try:
            parts = split_indices(subject.n_images, cfg.val_fraction, cfg.heldout_fraction, study.base_seed)
            check_split_sizes(parts, cfg, option=lambda field: f"[fit] {field}")
            for n in (study.scaling.subsets if study.scaling is not None else []):
                check_refit_images(len(nested_train_subset(parts["train"], n, study.base_seed)), cfg,
                                   option=lambda field: f"[fit] {field}")
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None


def _fit_sweep(study: Study, pending: list, out: str, gpus: list, device: str, progress: bool) -> None:
    from factortopy.fitting.distributed import run_sweep
    from factortopy.runs import write_json
    from factortopy.study.worker import job_for

    job_dir = os.path.join(out, "jobs")
    os.makedirs(job_dir, exist_ok=True)
    jobs = []
    for i, p in enumerate(pending):
        path = os.path.join(job_dir, f"job_{i}.json")
        write_json(path, job_for(p, out, device))
        jobs.append([sys.executable, "-m", "factortopy.study.worker", path])
    codes = run_sweep(jobs, gpus, log_dir=job_dir, verbose=progress)
    failed = [f"{pending[i].backbone.label} (seed {pending[i].seed}) on {pending[i].subject} (log {job_dir}/job_{i}.log)"
              for i, c in enumerate(codes) if c != 0]
    if failed:
        from factortopy.study.launch import FitsFailed

        raise FitsFailed(f"{len(failed)} fit(s) failed: " + "; ".join(failed) + ". Run the study again to "
                           "retry them (finished runs are kept)")


def choose_gpus(study: Study, gpus=None) -> list | None:
    """The GPUs to sweep over: given ones, the study file's, or every visible GPU when the device is
    CUDA and there are several; None means fitting in this process."""
    gpus = gpus if gpus is not None else study.gpus
    if gpus is None and study.device.startswith("cuda"):
        import torch

        n = torch.cuda.device_count()
        gpus = list(range(n)) if n > 1 else None
    return [str(g) for g in gpus] if gpus and len(gpus) > 1 else None


def run_study(source, out, progress: bool = True, gpus=None, device: str | None = None, figures: bool = True,
              base_dir: str | None = None, launcher=None) -> dict:
    """Run the study ``source`` (a TOML file or a dict; see :mod:`factortopy.study.config`) into
    the directory ``out``: fit what is not fitted, then write the table, figures and page.

    gpus: GPU ids to run one fit process on each (default: every visible GPU when the device is
    CUDA and there are several). device: overrides the study's. figures: False writes the tables
    only. launcher: where the fits run, over the study file's ``[launcher]``: 'process' (here),
    'local' or 'slurm' (one submitit job per fit), or a dict of
    :class:`~factortopy.study.launch.LaunchSettings` fields.
    Returns {'summary': rows (one per run), 'alignment': rows (one per backbone), 'comparisons':
    rows, 'finetune': rows or None, 'scaling': rows or None, 'page': path or None, 'fitted': n (runs
    fitted now, refits and data-scaling subsets included)}.
    """
    from factortopy.runs import write_json
    from factortopy.study.launch import settings_for
    from factortopy.study.summary import inference_settings, write_summary

    from factortopy._destination import check_destination
    from factortopy.fitting.fit import FitConfig
    from factortopy.study.launch import executor_parameters

    study = load_study(source, base_dir=base_dir)
    if device is not None:
        FitConfig(**{**study.fit, "device": device})  # --device checked like the study file's
        study.device = device
    launch_settings = settings_for(study.launcher,
                                   **({"kind": launcher} if isinstance(launcher, str) else dict(launcher or {})))
    if launch_settings.kind != "process":
        executor_parameters(launch_settings, study.device)  # GPUs per job against the device: said now
    out = os.path.abspath(os.fspath(out))
    check_destination(out, "--out", folder=True)
    check_subjects(study)  # the data the fits and the summary need, before any fine-tuning or fit
    os.makedirs(out, exist_ok=True)
    make_checkpoints(study, out, progress)
    todo = pairs(study, out)
    extra = auxiliary_pairs(study, out, todo)
    write_json(os.path.join(out, "study.json"),
               dict(name=study.name, subjects=study.subjects, fit=study.fit, seeds=study.seeds,
                    inference=inference_settings(study),
                    finetune=None if study.finetune is None else asdict(study.finetune),
                    scaling=None if study.scaling is None else asdict(study.scaling),
                    pairs=[_pair_record(p, out) for p in todo],
                    # noise-floor refits and data-scaling subsets: the fit settings that differ
                    auxiliary=[dict(_pair_record(p, out), fit={k: v for k, v in p.fit.items() if study.fit.get(k) != v})
                               for p in extra]))
    everything = todo + extra
    pending = [p for p in everything if not is_finished(p)]
    _log(f"{len(everything) - len(pending)} of {len(everything)} runs finished; fitting {len(pending)}", progress)
    sweep = choose_gpus(study, gpus) if launch_settings.kind == "process" else None
    if pending and launch_settings.kind != "process":
        from factortopy.study.launch import launch

        launch(pending, out, launch_settings, study.device, progress)
    elif pending and sweep:
        _fit_sweep(study, pending, out, sweep, study.device, progress)
    elif pending:
        _fit_here(study, pending, out, study.device, progress)
    result = write_summary(study, todo, out, figures=figures, progress=progress)
    result["fitted"] = len(pending)
    return result
