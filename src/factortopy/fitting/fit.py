"""Fit FactorTopy on a subject: the orchestrator (method.md, "Training").

:func:`fit` runs named stages, each in its own room:

1. features (:func:`prepare_features`: extracted once, or from the on-disk cache);
2. the model (:func:`init_model`: seeded init, token scale from the training images);
3. training (:mod:`factortopy.fitting.train`: the loop, the loss table
   :mod:`factortopy.fitting.losses`, checkpoints :mod:`factortopy.fitting.checkpoint`);
4. the run (:func:`factortopy.fitting.run.write_factortopy_run`, through the one run writer).

The settings and their checks live in :mod:`factortopy.fitting.config` (re-exported here:
``from factortopy.fitting.fit import FitConfig, fit``).
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from factortopy import __version__
from factortopy.data.split import nested_train_subset, split_indices
from factortopy.data.subject import data_digest
from factortopy.fitting.checkpoint import resume_key as _resume_key
from factortopy.fitting.config import (REFERENCE_SETTINGS, DivergedError, FitConfig, check_outputs,  # noqa: F401
                                       check_split_sizes, response_stats, unknown_settings, warn_constant_columns)
from factortopy.fitting.distributed import rank_world
from factortopy.fitting.train import evaluate, resolve_batch_size, train

__all__ = ["DivergedError", "FitConfig", "FitResult", "REFERENCE_SETTINGS", "check_outputs", "fit", "init_model",
           "prepare_features"]


@dataclass
class FitResult:
    """What :func:`fit` returns. Per-vertex arrays follow the subject's column order.

    val_r / val_r2: Pearson r and R^2 on the early-stopping images (they chose the best epoch, so
    they are optimistic). heldout_r / heldout_r2: on the held-out images, which chose nothing: the
    honest score (None when ``heldout_fraction=0``).
    """

    model: object  # FactorTopy (best validation weights)
    config: dict
    metrics: dict
    selectors: dict
    val_r: np.ndarray
    val_r2: np.ndarray
    train_index: np.ndarray
    val_index: np.ndarray
    history: list = field(default_factory=list)
    run_dir: str | None = None
    heldout_r: np.ndarray | None = None
    heldout_r2: np.ndarray | None = None
    heldout_index: np.ndarray | None = None


# ---- stage 1: features ---------------------------------------------------------------------------
def prepare_features(subject, backbone, features, cache_dir, cfg: FitConfig, progress: bool):
    """(Features of the subject's images, the backbone's identity).

    backbone: a BackboneSpec / name / dict (built here), a Backbone, or None when ``features`` are
    given (they carry the identity of the backbone that made them; a given backbone must match).
    Under torchrun, rank 0 fills the cache first; the others then read it.
    """
    from factortopy.backbones.spec import as_spec, backbone_identity, check_identity

    rank, world = rank_world()
    if features is not None:
        identity = getattr(features, "backbone", None)
        if backbone is not None and not isinstance(backbone, (str, dict)) and hasattr(backbone, "info"):
            identity = check_identity(identity, backbone, "the given features") if identity else \
                backbone_identity(backbone)
        elif backbone is not None:
            spec = as_spec(backbone)
            if identity is None or identity.get("spec") != spec.to_dict():
                raise ValueError("the given features were not made by the given backbone spec: pass the "
                                 "backbone that made them, or no backbone")
        if identity is None:
            raise ValueError("the given features carry no backbone identity (extract them with "
                             "factortopy.features.extract.extract_features), or pass the Backbone that made them")
        return features, identity
    bb = backbone if hasattr(backbone, "info") else as_spec(backbone).build()
    if cache_dir:
        from factortopy.features.cache import load_or_extract

        if world > 1 and rank != 0:
            torch.distributed.barrier()
        features = load_or_extract(bb, subject.images, cache_dir, image_key=subject.image_key, grid=cfg.grid,
                                   batch_size=cfg.feature_batch_size, device=cfg.device, progress=progress)
        if world > 1 and rank == 0:
            torch.distributed.barrier()
    else:
        from factortopy.features.extract import extract_features

        features = extract_features(bb, subject.images, grid=cfg.grid, batch_size=cfg.feature_batch_size,
                                    device=cfg.device, progress=progress)
    return features, features.backbone


# ---- stage 2: the model --------------------------------------------------------------------------
def init_model(coords, features, train_idx, cfg: FitConfig):
    """A FactorTopy for these features, initialised under ``cfg.seed`` (the global RNG is left as it
    was), with its per-layer token_scale fixed from the training images' token RMS."""
    from factortopy.model.factortopy import FactorTopy

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # the init depends on the seed alone, not on what ran before
        model = FactorTopy(coords, features.channels, dim=cfg.dim, grid=cfg.grid, hidden=cfg.hidden,
                           layer_names=features.layer_names, readout_init=cfg.readout_init,
                           token_scale=cfg.token_scale, positional_encoding=cfg.positional_encoding,
                           receptive_field=cfg.receptive_field)
    with torch.no_grad():
        model.calibrate_token_scale(features.tokens[torch.as_tensor(train_idx[:512])])
    return model


# ---- the orchestrator ----------------------------------------------------------------------------
def fit(subject, backbone=None, layers=None, weights: str | None = None, pretrained: bool | None = None,
        img_size: int | None = None, out: str | None = None, config: FitConfig | None = None,
        features=None, cache_dir: str | None = None, progress: bool = True, data_spec: str | None = None,
        resume: bool = True, overwrite: bool = False, random_init: bool = False, threads: int | None = None,
        **overrides) -> FitResult:
    """Fit a FactorTopy encoder of ``subject`` (a :class:`factortopy.data.subject.Subject`).

    backbone: a :class:`~factortopy.backbones.spec.BackboneSpec`, a name (with ``layers``,
    ``weights``, ``pretrained``, ``img_size``, ``random_init`` as its spec fields), or a Backbone.
    A name means its pretrained weights unless ``weights`` or ``random_init=True`` says otherwise.
    features: precomputed :class:`~factortopy.features.extract.Features` of the subject's images
    (skips extraction; no backbone needed). cache_dir: reuse/write the on-disk feature cache.
    out: a RUN_DIR to write (docs/run-dir.md); an interrupted fit with the same settings resumes
    from its last epoch; a finished run is refused unless ``overwrite=True``.
    threads: torch CPU threads during the fit (None: leave torch's setting), as ``--threads``.
    Other keyword arguments override :class:`FitConfig` fields (e.g. ``epochs=20``); any other
    name is a TypeError listing the fields.
    """
    from factortopy._threads import torch_threads

    unknown_settings(overrides)
    cfg = FitConfig(**{**asdict(config or FitConfig()), **overrides})  # checked (FitConfig.__post_init__)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no GPU; use --device cpu")
    check_outputs(out, cache_dir)
    from factortopy.data import absolute_spec

    # recorded absolute, so the run resumes and evaluates from any working directory
    data_spec = absolute_spec(data_spec) if data_spec else subject.extra.get("data_spec")
    parts = split_indices(subject.n_images, cfg.val_fraction, cfg.heldout_fraction, cfg.seed)
    if cfg.train_images is not None:
        parts["train"] = nested_train_subset(parts["train"], cfg.train_images, cfg.seed)
    check_split_sizes(parts, cfg)
    # the training images' statistics z-score the responses: checked before any work
    responses = np.asarray(subject.responses, dtype=np.float32)
    stats = response_stats(responses, parts["train"], subject.vertex, subject.hemi)
    backbone = _backbone_choice(backbone, features, dict(layers=layers, weights=weights, pretrained=pretrained,
                                                         img_size=img_size), random_init)
    rank, _ = rank_world()
    main_process = rank == 0  # one process reports and writes; every process resumes
    from factortopy.runs.directory import writing_run

    # a finished run being replaced (overwrite) stays whole until the new one is finished; a failed
    # fit leaves no replacement, and no new folder without a checkpoint to resume
    with writing_run(out if main_process else None, overwrite, resume) as claim, torch_threads(threads):
        result = _fit(subject, backbone, features, cfg, parts, responses, stats, claim.path if claim else out,
                      cache_dir, data_spec, progress and main_process, resume, main_process)
    result.run_dir = out
    return result


def _backbone_choice(backbone, features, spec_fields: dict, random_init: bool):
    """The backbone as fit takes it: a name becomes a BackboneSpec with the given spec fields."""
    if isinstance(backbone, str) or backbone is None and features is None:
        if backbone is None:
            raise ValueError("fit needs a backbone (a name, a BackboneSpec or a Backbone) or features")
        from factortopy.backbones.spec import as_spec

        return as_spec(backbone, **{k: v for k, v in spec_fields.items() if v is not None},
                       **({"random_init": True} if random_init else {}))
    return backbone


def _fit(subject, backbone, features, cfg: FitConfig, parts: dict, responses: np.ndarray, stats: tuple, out,
         cache_dir, data_spec, progress: bool, resume: bool, main_process: bool) -> FitResult:
    """The stages, in a claimed RUN_DIR (or none). responses: (n_images, N) float32; stats: their
    training (mean, std) (:func:`~factortopy.fitting.config.response_stats`)."""
    from factortopy.model.selectors import selector_arrays
    from factortopy.runs import CHECKPOINT

    t0 = time.time()
    features, identity = prepare_features(subject, backbone, features, cache_dir, cfg, progress)  # stage 1
    t_features = time.time() - t0
    if len(features) != subject.n_images:
        raise ValueError(f"features hold {len(features)} images but the subject has {subject.n_images}")
    train_idx, val_idx, held_idx = parts["train"], parts["val"], parts["heldout"]
    mean, std = stats
    y = torch.from_numpy((responses - mean) / std)  # z-scored by the training images' statistics

    model = init_model(subject.coords, features, train_idx, cfg).to(cfg.device)  # stage 2
    ckpt_path = os.path.join(out, CHECKPOINT) if out else None
    batch_size = resolve_batch_size(cfg, model, len(train_idx), max(features.channels), ckpt_path if resume else None)
    run_config = _run_config(subject, data_spec, identity, model, cfg, parts, responses)
    history, best, step = train(model, features.tokens, y, train_idx, val_idx, cfg, batch_size,  # stage 3
                                ckpt_path=ckpt_path if main_process else None,
                                resume_key=_resume_key(run_config), progress=progress)
    train_seconds = time.time() - t0 - t_features

    if best["state"] is not None:  # the best epoch's weights, scored
        model.load_state_dict(best["state"])
    model.eval()
    refit = {}
    if cfg.readout_refit != "none":  # stage 3b: the readout in closed form on the training images (fitting/readout.py)
        from factortopy.fitting.readout import refit_metrics

        refit = refit_metrics(model, features.tokens, y, train_idx, best["r"], cfg, progress)
    val_r, val_r2 = evaluate(model, features.tokens[torch.as_tensor(val_idx)], y[val_idx], cfg.eval_batch_size,
                             cfg.device)
    held_r = held_r2 = None
    if len(held_idx):
        held_r, held_r2 = evaluate(model, features.tokens[torch.as_tensor(held_idx)], y[held_idx],
                                   cfg.eval_batch_size, cfg.device)
    model = model.cpu()
    metrics = dict(_score_metrics(val_r, val_r2, held_r, held_r2),
                   n_train=int(len(train_idx)), n_val=int(len(val_idx)), n_heldout=int(len(held_idx)),
                   n_vertices=int(subject.n_vertices), epochs=len(history), best_epoch=best["epoch"] + 1,
                   steps=step, batch_size=batch_size, seconds=time.time() - t0, feature_seconds=t_features,
                   train_seconds=train_seconds, **refit)
    result = FitResult(model=model, config=run_config, metrics=metrics, selectors={}, val_r=val_r, val_r2=val_r2,
                       train_index=train_idx, val_index=val_idx, history=history, run_dir=out,
                       heldout_r=held_r, heldout_r2=held_r2, heldout_index=held_idx)
    result.selectors = selector_arrays(model, subject.vertex, subject.hemi)
    if out and main_process:  # stage 4
        from factortopy.fitting.run import write_factortopy_run

        scores = ("heldout", held_r, held_r2) if held_r is not None else ("val", val_r, val_r2)
        result.config = write_factortopy_run(out, model, run_config, metrics, result.selectors, mean, std,
                                             subject.vertex, subject.hemi, scores, history)
        if os.path.isfile(ckpt_path):
            os.remove(ckpt_path)  # finished: the run directory is the result
    return result


def _run_config(subject, data_spec, identity: dict, model, cfg: FitConfig, parts: dict, responses) -> dict:
    """config.json of the run (also the resume key's content)."""
    train_idx, val_idx, held_idx = parts["train"], parts["val"], parts["heldout"]
    ids = np.asarray(subject.image_ids)
    return dict(
        factortopy_version=__version__,
        kind="factortopy",
        data=data_spec,
        subject=subject.name,
        data_digest=data_digest(responses, subject.coords),  # a resume never continues on other data
        vertex_set=subject.extra.get("vertex_set"),
        backbone=identity,
        model=model.config(),
        fit=asdict(cfg),
        split=dict(seed=cfg.seed, val_fraction=cfg.val_fraction, heldout_fraction=cfg.heldout_fraction,
                   n_train=len(train_idx), n_val=len(val_idx), n_heldout=len(held_idx),
                   val_image_ids=ids[val_idx].tolist(), heldout_image_ids=ids[held_idx].tolist(),
                   **({} if cfg.train_images is None else
                      dict(train_images=cfg.train_images, train_image_ids=ids[train_idx].tolist()))),
    )


def _score_metrics(val_r, val_r2, held_r, held_r2) -> dict:
    """The score summaries of metrics.json and its headline key: the held-out images chose nothing;
    without them (heldout_fraction=0) the early-stopping images' r is the headline, and optimistic."""
    out = dict(val_pearson_mean=float(val_r.mean()), val_pearson_median=float(np.median(val_r)),
               val_r2_mean=float(val_r2.mean()))
    if held_r is not None:
        out.update(heldout_pearson_mean=float(held_r.mean()), heldout_pearson_median=float(np.median(held_r)),
                   heldout_r2_mean=float(held_r2.mean()))
    out["headline"] = "heldout_pearson_mean" if held_r is not None else "val_pearson_mean"
    return out
