"""Fit FactorTopy on a subject: features once, then epochs over cached tokens (method.md, "Training")."""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from factortopy import __version__
from factortopy.fitting.distributed import rank_world
from factortopy.fitting.memory import CPU_BATCH_SIZE, auto_batch_size, free_device_bytes, place_tokens
from factortopy.fitting.schedule import REFERENCE_FADE_STEPS, regularizer_weight
from factortopy.data.split import nested_train_subset, split_indices
from factortopy.model.kernel import RECEPTIVE_FIELDS


@dataclass
class FitConfig:
    """Every setting of a fit (saved in config.json). Defaults follow the reference recipe except
    where a planted-truth measurement chose otherwise (see docs/method.md)."""

    epochs: int = 10
    batch_size: int | str = 8  # or "auto": the largest power of two that fits in GPU memory
    lr: float = 1e-3
    weight_decay: float = 0.01
    grad_clip: float = 0.5
    smooth_l1_beta: float = 0.1
    reg_weight: float = 0.1
    reg_fade: str = "fraction"  # 'fraction' of all steps, or 'steps' (reference: 2,000)
    reg_fade_value: float = 0.3
    val_fraction: float = 0.1  # early stopping: these images pick the best epoch
    heldout_fraction: float = 0.1  # the headline score: images that chose nothing (0: none held out)
    # fMRI-data scaling: train on only N of the training images (a seeded, nested subset; the
    # validation and held-out images stay those of the full fit: data.split.nested_train_subset)
    train_images: int | None = None
    seed: int = 0
    patience: int | None = 5  # epochs without a better validation r before stopping
    dim: int = 128
    hidden: int = 128
    grid: int = 8
    device: str = "cpu"
    amp: bool = True  # bf16 autocast on CUDA; ignored on the CPU
    amp_dtype: str = "bfloat16"  # the GEMM's autocast dtype on CUDA (reference: float16)
    feature_batch_size: int = 32
    eval_batch_size: int = 64
    # deviations from the reference code, each a setting (docs/method.md, "Deviations")
    readout_init: str = "normal"  # reference: "uniform" (+-1/sqrt(D), like nn.Linear)
    token_scale: bool = True  # fixed per-layer 1/RMS of the tokens; reference: none (False)
    positional_encoding: str = "ours"  # reference: "reference" (1000^(-k/32), sin/cos interleaved)
    # what a vertex reads around (x, y): "point" (the paper's bilinear sample) or "gaussian" (a pool
    # of learned per-vertex size; docs/method.md, "Receptive fields of every size")
    receptive_field: str = "point"

    def __post_init__(self):
        check_fit_config(self)  # every way of making a FitConfig is checked before any work

    @classmethod
    def reference(cls, **overrides) -> "FitConfig":
        """The published recipe and model: batch 8, lr 1e-3, the regulariser fading over a fixed
        2,000 steps, uniform readout init, no token scale, the reference positional encoding,
        float16 autocast. (Data and backbone choices of the reference: docs/method.md.)"""
        return cls(**{**REFERENCE_SETTINGS, **overrides})


def _whole(low):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _number(low, strict=True):
    return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and \
        (v > low if strict else v >= low)


#: FitConfig field -> (test, what it must be). A new field with a range adds one row.
FIT_CHECKS = {
    "epochs": (_whole(1), "a whole number >= 1"),
    "batch_size": (lambda v: v == "auto" or _whole(1)(v), "a whole number >= 1 or 'auto'"),
    "lr": (_number(0), "a finite number > 0"),
    "weight_decay": (_number(0, strict=False), "a finite number >= 0"),
    "grad_clip": (_number(0), "a finite number > 0"),
    "smooth_l1_beta": (_number(0, strict=False), "a finite number >= 0"),
    "reg_weight": (_number(0, strict=False), "a finite number >= 0"),
    "reg_fade": (lambda v: v in ("fraction", "steps"), "'fraction' or 'steps'"),
    "reg_fade_value": (_number(0, strict=False), "a finite number >= 0"),
    "val_fraction": (lambda v: _number(0)(v) and v < 1, "a fraction in (0, 1)"),
    "heldout_fraction": (lambda v: _number(0, strict=False)(v) and v < 1, "a fraction in [0, 1)"),
    "train_images": (lambda v: v is None or _whole(1)(v), "a whole number >= 1 (or None: every training image)"),
    "seed": (_whole(0), "a whole number >= 0"),
    "patience": (lambda v: v is None or _whole(1)(v), "a whole number >= 1 (or None: never stop early)"),
    "dim": (_whole(1), "a whole number >= 1"),
    "hidden": (_whole(1), "a whole number >= 1"),
    "grid": (_whole(1), "a whole number >= 1"),
    "device": (lambda v: isinstance(v, str) and re.fullmatch(r"cpu|mps|cuda(:\d+)?", v) is not None,
               "cpu, cuda, cuda:N or mps"),
    "amp_dtype": (lambda v: v in ("bfloat16", "float16"), "'bfloat16' or 'float16'"),
    "receptive_field": (lambda v: v in RECEPTIVE_FIELDS, " or ".join(map(repr, RECEPTIVE_FIELDS))),
    "feature_batch_size": (_whole(1), "a whole number >= 1"),
    "eval_batch_size": (_whole(1), "a whole number >= 1"),
}


def check_fit_config(cfg) -> None:
    """Raise ValueError naming the first setting of ``cfg`` outside its range (:data:`FIT_CHECKS`)."""
    for name, (ok, what) in FIT_CHECKS.items():
        value = getattr(cfg, name, None)
        if not ok(value):
            raise ValueError(f"{name} (--{name.replace('_', '-')}) must be {what}, got {value!r}")
    if cfg.val_fraction + cfg.heldout_fraction >= 1:
        raise ValueError(f"val_fraction + heldout_fraction must leave training images, got "
                         f"{cfg.val_fraction} + {cfg.heldout_fraction} >= 1")


def check_outputs(out=None, cache_dir=None) -> None:
    """Refuse an ``out`` or ``cache_dir`` that is an existing file, before any work."""
    for option, path in (("--out", out), ("--cache-dir", cache_dir)):
        if path and os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"{option} {path} is an existing file, not a folder: choose a folder")


#: Pearson r over fewer images carries no information (1 image: undefined, 2: always +-1), so
#: neither choosing the best epoch nor the headline score can rest on it
MIN_EVAL_IMAGES = 3
#: below this, a vertex's r has a standard error 1/sqrt(n - 3) above 0.24 (Fisher z), larger than
#: typical visual-cortex encoding r: the epoch choice and the score are mostly noise
WARN_EVAL_IMAGES = 20


def check_split_sizes(parts: dict, cfg) -> None:
    """Refuse a validation (or held-out) set under :data:`MIN_EVAL_IMAGES`, warn under
    :data:`WARN_EVAL_IMAGES` (docs/reliability.md)."""
    for role, name, option, fraction in (("val", "validation", "--val-fraction", cfg.val_fraction),
                                         ("heldout", "held-out", "--heldout-fraction", cfg.heldout_fraction)):
        n = len(parts[role])
        if role == "heldout" and fraction == 0:
            continue
        if n < MIN_EVAL_IMAGES:
            raise ValueError(f"the {name} set has {n} image(s) ({option} {fraction}); Pearson r needs at least "
                             f"{MIN_EVAL_IMAGES}: raise {option} or use more images")
        if n < WARN_EVAL_IMAGES:
            warnings.warn(f"the {name} set has only {n} images ({option} {fraction}): per-vertex r has a standard "
                          f"error above {1 / math.sqrt(WARN_EVAL_IMAGES - 3):.2f}, so the "
                          f"{'best epoch' if role == 'val' else 'held-out score'} is mostly noise; use at least "
                          f"{WARN_EVAL_IMAGES} images", stacklevel=3)


def warn_constant_columns(std: np.ndarray, vertex, hemi) -> None:
    """Warn about response columns constant over the training images: no model can predict them,
    and their r is 0 by construction, not a measurement."""
    const = np.flatnonzero(std <= 1e-8)
    if len(const):
        where = ", ".join(f"{hemi[i]} {vertex[i]}" for i in const[:5]) + (", ..." if len(const) > 5 else "")
        warnings.warn(f"{len(const)} of {len(std)} response columns are constant over the training images "
                      f"({where}): their r is 0 by construction; drop them from the data", stacklevel=3)


class DivergedError(ValueError):
    """Training produced a non-finite loss or weights."""


#: FitConfig fields that differ in the reference recipe
REFERENCE_SETTINGS = dict(batch_size=8, lr=1e-3, reg_fade="steps", reg_fade_value=REFERENCE_FADE_STEPS,
                          readout_init="uniform", token_scale=False, positional_encoding="reference",
                          amp_dtype="float16", receptive_field="point", grid=8)


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


def all_reduce_gradients(model) -> None:
    """Sum every gradient over processes in one flat all-reduce (data parallel, exact)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def _data_digest(responses: np.ndarray, coords) -> str:
    """A short digest of the targets and coordinates (hashed in place, no concatenated copy)."""
    h = hashlib.sha256(np.ascontiguousarray(responses).data)
    h.update(np.ascontiguousarray(coords, dtype=np.float32).data)
    return h.hexdigest()[:16]


def _evaluate(model, tokens, targets, batch_size, device):
    from factortopy.evaluation.metrics import pearson_r, r2_score
    from factortopy.fitting.predict import predict_tokens

    pred = predict_tokens(model, tokens, batch_size, device)
    target = targets.to(device)
    return pearson_r(pred, target).cpu().numpy(), r2_score(pred, target).cpu().numpy()


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


# ---- stage 3: training ---------------------------------------------------------------------------
#: FitConfig fields that decide where and in how large chunks work runs, not what is learned: a
#: resume on another device (another GPU, more memory for evaluation) continues instead of refusing
_NOT_IN_RESUME_KEY = ("device", "feature_batch_size", "eval_batch_size")


def _resume_key(run_config: dict) -> str:
    """Digest of everything that decides the fitted model: backbone identity, data, split, model and
    fit settings (``batch_size='auto'`` stays 'auto' here; the resolved size lives in the checkpoint)."""
    fit_ = {k: v for k, v in run_config["fit"].items() if k not in _NOT_IN_RESUME_KEY}
    keyed = {**run_config, "fit": fit_}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()



def _load_checkpoint(path: str, device: str) -> dict:
    """A checkpoint read without unpickling code (``weights_only``): tensors and plain types only."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} cannot be read as a factortopy checkpoint ({type(err).__name__}: "
                         f"{str(err)[:200]}): remove it to start the fit afresh, or fit with overwrite "
                         "(--overwrite)") from None


def _save_checkpoint(path: str, state: dict) -> None:
    """Write the checkpoint atomically (a temporary file renamed into place); a full disk is an
    error naming the path, and the previous checkpoint stays valid."""
    try:
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)
    except OSError as err:
        try:
            os.remove(path + ".tmp")
        except OSError:
            pass
        raise OSError(err.errno, f"cannot write the checkpoint {path} ({err.strerror or err}): free space "
                      "there (or choose another --out) and rerun; the fit resumes from its last checkpoint") from None


def _check_finite(model, train_loss: float, epoch: int, cfg, ckpt_path) -> None:
    """Stop a diverged fit before its weights are checkpointed or saved: the last good checkpoint
    (if any) stays, and no non-finite weights ever become a finished run."""
    if math.isfinite(train_loss) and all(torch.isfinite(p).all() for p in model.parameters()):
        return
    kept = (f"the checkpoint of epoch {epoch} (the last finite one) stays in {ckpt_path}" if ckpt_path
            else "nothing was saved")
    raise DivergedError(f"training diverged in epoch {epoch + 1} (train loss {train_loss}, weights no longer "
                        f"finite): lower the learning rate (--lr, now {cfg.lr}) and rerun with --overwrite; {kept}")


def _resume_state(ckpt_path, resume_key: str, model, optimizer, gen, device) -> dict | None:
    """The saved loop state of an interrupted fit with identical settings, loaded into model,
    optimizer and generator; None when there is none. Other settings are refused, never discarded."""
    if not (ckpt_path and os.path.isfile(ckpt_path)):
        return None
    ckpt = _load_checkpoint(ckpt_path, device)
    if ckpt.get("resume_key") != resume_key:
        raise ValueError(f"{ckpt_path} belongs to an interrupted fit with other settings (backbone, data, "
                         "split or fit options differ): rerun it with the same settings to resume, choose "
                         "another --out, or pass --overwrite to discard it")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    gen.set_state(ckpt["generator"])
    return ckpt


def train(model, tokens, y, train_idx, val_idx, cfg: FitConfig, batch_size: int, ckpt_path=None,
          resume_key: str = "", progress: bool = True):
    """The epoch loop: AdamW on smooth L1 + the fading regulariser, validation r after each epoch,
    checkpoints for resuming, early stopping. Returns (history, best) with ``best`` holding the
    best epoch's ``state``; the model is left at its last epoch's weights."""
    from factortopy._progress import progress_bar as tqdm  # renders in Jupyter, else a plain bar

    rank, world = rank_world()
    device = cfg.device
    gen = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    tokens = place_tokens(tokens, device)  # on the GPU when they fit, else pinned host memory
    y_dev = y.to(device)
    train_t = torch.as_tensor(train_idx, device=tokens.device)
    val_tokens, val_y = tokens[torch.as_tensor(val_idx, device=tokens.device)], y[val_idx]  # selected once
    steps_per_epoch = int(np.ceil(len(train_idx) / batch_size))
    total_steps = steps_per_epoch * cfg.epochs
    start_epoch, step, history = 0, 0, []
    best = dict(r=-np.inf, state=None, epoch=-1)
    ckpt = _resume_state(ckpt_path, resume_key, model, optimizer, gen, device)
    if ckpt is not None:
        start_epoch, step, history, best = ckpt["epoch"], ckpt["step"], ckpt["history"], ckpt["best"]
        if progress:
            print(f"resuming from epoch {start_epoch} ({ckpt_path})")
    amp = cfg.amp and device.startswith("cuda")
    # float16 has bfloat16's precision but not its range: its gradients need loss scaling
    scaler = torch.amp.GradScaler("cuda", enabled=amp and cfg.amp_dtype == "float16")
    bad_epochs = 0 if not history else len(history) - 1 - best["epoch"]
    bar = tqdm(total=total_steps, initial=step, desc="fit", unit="step", disable=not progress)
    t0 = time.time()
    try:
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            order = train_t[torch.randperm(len(train_idx), generator=gen).to(train_t.device)]
            losses = []
            for b in range(steps_per_epoch):
                idx = order[b * batch_size:(b + 1) * batch_size]
                n_global = idx.numel() * model.n_vertices
                idx = idx[rank::world]  # this process's share of the global batch
                batch = tokens[idx].to(device, non_blocking=True)
                target = y_dev[idx]
                with torch.autocast("cuda", dtype=getattr(torch, cfg.amp_dtype), enabled=amp):
                    sel = model.selectors()
                    pred = model.forward_tokens(batch if amp else batch.float(), selectors=sel)
                    # Sum / global count: summed over processes this is the global batch's mean.
                    loss = torch.nn.functional.smooth_l1_loss(pred.float(), target, beta=cfg.smooth_l1_beta,
                                                              reduction="sum") / n_global
                    w = regularizer_weight(step, total_steps, cfg.reg_weight, cfg.reg_fade, cfg.reg_fade_value)
                    total = loss + (w / world) * model.regularizer(sel) if w > 0 else loss
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(total).backward()
                if world > 1:
                    all_reduce_gradients(model)
                    torch.distributed.all_reduce(loss.detach())
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                step += 1
                losses.append(loss.detach())
                bar.update(1)
            train_loss = float(torch.stack(losses).mean())
            _check_finite(model, train_loss, epoch, cfg, ckpt_path if history else None)
            val_r, _ = _evaluate(model, val_tokens, val_y, cfg.eval_batch_size, device)
            mean_r = float(val_r.mean())
            history.append(dict(epoch=epoch + 1, step=step, train_loss=train_loss,
                                val_pearson_mean=mean_r, seconds=time.time() - t0))
            bar.set_postfix(val_r=f"{mean_r:.3f}")
            if mean_r > best["r"]:
                best = dict(r=mean_r, epoch=epoch, state={k: v.detach().clone() for k, v in model.state_dict().items()})
                bad_epochs = 0
            else:
                bad_epochs += 1
            if ckpt_path and rank == 0:
                _save_checkpoint(ckpt_path, dict(
                    resume_key=resume_key, model=model.state_dict(), optimizer=optimizer.state_dict(),
                    epoch=epoch + 1, step=step, history=history, best=best, generator=gen.get_state(),
                    batch_size=batch_size))
            if cfg.patience is not None and bad_epochs >= cfg.patience:
                break
    finally:
        bar.close()
    return history, best, step


def resolve_batch_size(cfg: FitConfig, model, n_train: int, c_max: int, ckpt_path=None) -> int:
    """``cfg.batch_size``, or for 'auto' the largest power of two that fits in the device's free
    memory. A resumed fit keeps the size it started with (read from its checkpoint), so 'auto'
    stays out of the resume key and a resume on another GPU continues."""
    if cfg.batch_size != "auto":
        return int(cfg.batch_size)
    if ckpt_path and os.path.isfile(ckpt_path):
        saved = _load_checkpoint(ckpt_path, "cpu").get("batch_size")
        if saved:
            return int(saved)
    free = free_device_bytes(cfg.device)
    if free is None:
        return CPU_BATCH_SIZE
    return auto_batch_size(model.n_vertices, model.n_layers, cfg.grid, cfg.dim, c_max, free, n_train)


# ---- the orchestrator ----------------------------------------------------------------------------
def fit(subject, backbone=None, layers=None, weights: str | None = None, pretrained: bool | None = None,
        img_size: int | None = None, out: str | None = None, config: FitConfig | None = None,
        features=None, cache_dir: str | None = None, progress: bool = True, data_spec: str | None = None,
        resume: bool = True, overwrite: bool = False, random_init: bool = False, **overrides) -> FitResult:
    """Fit a FactorTopy encoder of ``subject`` (a :class:`factortopy.data.subject.Subject`).

    backbone: a :class:`~factortopy.backbones.spec.BackboneSpec`, a name (with ``layers``,
    ``weights``, ``pretrained``, ``img_size``, ``random_init`` as its spec fields), or a Backbone.
    A name means its pretrained weights unless ``weights`` or ``random_init=True`` says otherwise.
    features: precomputed :class:`~factortopy.features.extract.Features` of the subject's images
    (skips extraction; no backbone needed). cache_dir: reuse/write the on-disk feature cache.
    out: a RUN_DIR to write (docs/run-dir.md); an interrupted fit with the same settings resumes
    from its last epoch; a finished run is refused unless ``overwrite=True``.
    Other keyword arguments override :class:`FitConfig` fields (e.g. ``epochs=20``).
    """
    from factortopy.model.selectors import selector_arrays
    from factortopy.runs import CHECKPOINT

    cfg = FitConfig(**{**asdict(config or FitConfig()), **overrides})  # checked (FitConfig.__post_init__)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no GPU; use --device cpu")
    check_outputs(out, cache_dir)
    from factortopy.data import absolute_spec

    # recorded absolute, so the run resumes and evaluates from any working directory
    data_spec = absolute_spec(data_spec) if data_spec else subject.extra.get("data_spec")
    parts = split_indices(subject.n_images, cfg.val_fraction, cfg.heldout_fraction, cfg.seed)
    check_split_sizes(parts, cfg)
    if cfg.train_images is not None:
        parts["train"] = nested_train_subset(parts["train"], cfg.train_images, cfg.seed)
    if isinstance(backbone, str) or backbone is None and features is None:
        if backbone is None:
            raise ValueError("fit needs a backbone (a name, a BackboneSpec or a Backbone) or features")
        from factortopy.backbones.spec import as_spec

        given = dict(layers=layers, weights=weights, pretrained=pretrained, img_size=img_size)
        backbone = as_spec(backbone, **{k: v for k, v in given.items() if v is not None},
                           **({"random_init": True} if random_init else {}))
    t0 = time.time()
    rank, _ = rank_world()
    main_process = rank == 0  # one process reports and writes; every process resumes
    progress = progress and main_process
    lock, state = None, None
    if out and main_process:
        from factortopy.runs.directory import claim_run_dir

        state, lock = claim_run_dir(out, overwrite=overwrite, resume=resume)
    try:
        features, identity = prepare_features(subject, backbone, features, cache_dir, cfg, progress)
        t_features = time.time() - t0
        if len(features) != subject.n_images:
            raise ValueError(f"features hold {len(features)} images but the subject has {subject.n_images}")

        # response normalisation (training statistics only)
        train_idx, val_idx, held_idx = parts["train"], parts["val"], parts["heldout"]
        responses = np.asarray(subject.responses, dtype=np.float32)
        mean = responses[train_idx].mean(0)
        std = responses[train_idx].std(0)
        warn_constant_columns(std, subject.vertex, subject.hemi)
        std = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        y = torch.from_numpy((responses - mean) / std)

        model = init_model(subject.coords, features, train_idx, cfg).to(cfg.device)
        ckpt_path = os.path.join(out, CHECKPOINT) if out else None
        batch_size = resolve_batch_size(cfg, model, len(train_idx), max(features.channels),
                                        ckpt_path if resume else None)
        run_config = dict(
            factortopy_version=__version__,
            kind="factortopy",
            data=data_spec,
            subject=subject.name,
            data_digest=_data_digest(responses, subject.coords),  # a resume never continues on other data
            vertex_set=subject.extra.get("vertex_set"),
            backbone=identity,
            model=model.config(),
            fit=asdict(cfg),
            split=dict(seed=cfg.seed, val_fraction=cfg.val_fraction, heldout_fraction=cfg.heldout_fraction,
                       n_train=len(train_idx), n_val=len(val_idx), n_heldout=len(held_idx),
                       val_image_ids=np.asarray(subject.image_ids)[val_idx].tolist(),
                       heldout_image_ids=np.asarray(subject.image_ids)[held_idx].tolist(),
                       **({} if cfg.train_images is None else
                          dict(train_images=cfg.train_images,
                               train_image_ids=np.asarray(subject.image_ids)[train_idx].tolist()))),
        )
        resume_key = _resume_key(run_config)
        history, best, step = train(model, features.tokens, y, train_idx, val_idx, cfg, batch_size,
                                    ckpt_path=ckpt_path if main_process else None,
                                    resume_key=resume_key, progress=progress)
        train_seconds = time.time() - t0 - t_features

        # best weights, final scores
        if best["state"] is not None:
            model.load_state_dict(best["state"])
        model.eval()
        val_r, val_r2 = _evaluate(model, features.tokens[torch.as_tensor(val_idx)], y[val_idx],
                                  cfg.eval_batch_size, cfg.device)
        held_r = held_r2 = None
        if len(held_idx):
            held_r, held_r2 = _evaluate(model, features.tokens[torch.as_tensor(held_idx)], y[held_idx],
                                        cfg.eval_batch_size, cfg.device)
        model = model.cpu()
        metrics = dict(
            val_pearson_mean=float(val_r.mean()), val_pearson_median=float(np.median(val_r)),
            val_r2_mean=float(val_r2.mean()),
            **({} if held_r is None else dict(heldout_pearson_mean=float(held_r.mean()),
                                              heldout_pearson_median=float(np.median(held_r)),
                                              heldout_r2_mean=float(held_r2.mean()))),
            # the one honest score: held-out images chose nothing; without them (heldout_fraction=0)
            # the early-stopping images' r, which is optimistic
            headline="heldout_pearson_mean" if held_r is not None else "val_pearson_mean",
            n_train=int(len(train_idx)), n_val=int(len(val_idx)), n_heldout=int(len(held_idx)),
            n_vertices=int(subject.n_vertices), epochs=len(history), best_epoch=best["epoch"] + 1,
            steps=step, batch_size=batch_size, seconds=time.time() - t0, feature_seconds=t_features,
            train_seconds=train_seconds,
        )
        result = FitResult(model=model, config=run_config, metrics=metrics, selectors={}, val_r=val_r, val_r2=val_r2,
                           train_index=train_idx, val_index=val_idx, history=history, run_dir=out,
                           heldout_r=held_r, heldout_r2=held_r2, heldout_index=held_idx)
        result.selectors = selector_arrays(model, subject.vertex, subject.hemi)
        if out and main_process:
            from factortopy.fitting.run import write_factortopy_run

            scores = ("heldout", held_r, held_r2) if held_r is not None else ("val", val_r, val_r2)
            write_factortopy_run(out, model, run_config, metrics, result.selectors, mean, std, subject.vertex,
                                 subject.hemi, scores, history)
            if os.path.isfile(ckpt_path):
                os.remove(ckpt_path)  # finished: the run directory is the result
        return result
    except BaseException:
        if lock is not None and state == "new":
            from factortopy.runs.directory import discard_unstarted

            discard_unstarted(out)  # a fit that failed before its first checkpoint leaves nothing behind
        raise
    finally:
        if lock is not None:
            lock.release()
