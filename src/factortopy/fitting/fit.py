"""Fit FactorTopy on a subject: features once, then epochs over cached tokens (method.md, "Training")."""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from factortopy import __version__
from factortopy.features.cache import weights_fingerprint
from factortopy.fitting.distributed import rank_world
from factortopy.fitting.memory import CPU_BATCH_SIZE, auto_batch_size, free_device_bytes, place_tokens
from factortopy.fitting.run_dir import save_model, selector_arrays, write_json
from factortopy.fitting.schedule import REFERENCE_FADE_STEPS, regularizer_weight
from factortopy.fitting.split import train_val_split

CHECKPOINT_FILE = "checkpoint.pt"


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
    val_fraction: float = 0.1
    seed: int = 0
    patience: int | None = 5  # epochs without a better validation r before stopping
    dim: int = 128
    hidden: int = 128
    grid: int = 8
    device: str = "cpu"
    amp: bool = True  # bf16 autocast on CUDA; ignored on the CPU
    feature_batch_size: int = 32
    eval_batch_size: int = 64

    @classmethod
    def reference(cls, **overrides) -> "FitConfig":
        """The published recipe: batch 8, lr 1e-3, regulariser fading over a fixed 2,000 steps."""
        return cls(**{**dict(batch_size=8, lr=1e-3, reg_fade="steps", reg_fade_value=REFERENCE_FADE_STEPS), **overrides})


@dataclass
class FitResult:
    """What :func:`fit` returns. Per-vertex arrays follow the subject's column order."""

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


def _seed_everything(seed: int) -> torch.Generator:
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


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


def _token_rms(tokens: torch.Tensor, channels: list[int]) -> torch.Tensor:
    """(L,) RMS of each layer's real (unpadded) channels over the given images."""
    sample = tokens.float()
    return torch.stack([sample[:, l, :, :c].pow(2).mean().sqrt().clamp_min(1e-6) for l, c in enumerate(channels)])


def _evaluate(model, tokens, targets, batch_size, device):
    from factortopy.evaluation.metrics import pearson_r, r2_score
    from factortopy.fitting.predict import predict_tokens

    pred = predict_tokens(model, tokens, batch_size, device)
    target = targets.to(device)
    return pearson_r(pred, target).cpu().numpy(), r2_score(pred, target).cpu().numpy()


def fit(subject, backbone="resnet18", layers=None, weights: str | None = None, pretrained: bool = False,
        img_size: int | None = None, out: str | None = None, config: FitConfig | None = None,
        features=None, cache_dir: str | None = None, progress: bool = True, data_spec: str | None = None,
        resume: bool = True, **overrides) -> FitResult:
    """Fit a FactorTopy encoder of ``subject`` (a :class:`factortopy.data.subject.Subject`).

    backbone: a name for :func:`factortopy.backbones.load_backbone` or a Backbone instance.
    features: precomputed :class:`~factortopy.features.extract.Features` of the subject's images
    (skips extraction). cache_dir: reuse/write the on-disk feature cache. out: a RUN_DIR to write
    (docs/run-dir.md); an interrupted fit with the same settings resumes from its last epoch.
    Other keyword arguments override :class:`FitConfig` fields (e.g. ``epochs=20``).
    """
    from tqdm.auto import tqdm

    from factortopy.model.factortopy import FactorTopy

    cfg = config or FitConfig()
    cfg = FitConfig(**{**asdict(cfg), **overrides})
    device = cfg.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no GPU; use --device cpu")
    t0 = time.time()
    gen = _seed_everything(cfg.seed)
    rank, world = rank_world()
    main_process = rank == 0  # one process reports and writes; every process resumes
    progress = progress and main_process

    # ---- features: once per image, reused by every epoch
    if isinstance(backbone, str):  # built even with given features: the config needs its metadata
        from factortopy.backbones import load_backbone

        bb = load_backbone(backbone, layers=layers, weights=weights, pretrained=pretrained, img_size=img_size)
    else:
        bb = backbone
    info = bb.info
    if features is None:
        if cache_dir:
            from factortopy.features.cache import load_or_extract

            # Under torchrun, rank 0 fills the cache first; the others then read it.
            if world > 1 and rank != 0:
                torch.distributed.barrier()
            features = load_or_extract(bb, subject.images, cache_dir, image_key=subject.image_key, grid=cfg.grid,
                                       batch_size=cfg.feature_batch_size, device=device, progress=progress)
            if world > 1 and rank == 0:
                torch.distributed.barrier()
        else:
            from factortopy.features.extract import extract_features

            features = extract_features(bb, subject.images, grid=cfg.grid, batch_size=cfg.feature_batch_size,
                                        device=device, progress=progress)
    t_features = time.time() - t0
    if len(features) != subject.n_images:
        raise ValueError(f"features hold {len(features)} images but the subject has {subject.n_images}")

    # ---- split and response normalisation (train statistics only)
    train_idx, val_idx = train_val_split(subject.n_images, cfg.val_fraction, cfg.seed)
    responses = np.asarray(subject.responses, dtype=np.float32)
    mean = responses[train_idx].mean(0)
    std = responses[train_idx].std(0)
    std = np.where(std > 1e-8, std, 1.0).astype(np.float32)
    y = torch.from_numpy((responses - mean) / std)
    tokens = place_tokens(features.tokens, device)  # on the GPU when they fit, else pinned host memory
    y_dev = y.to(device)
    train_t = torch.as_tensor(train_idx, device=tokens.device)
    val_tokens, val_y = tokens[torch.as_tensor(val_idx, device=tokens.device)], y[val_idx]  # selected once

    torch.manual_seed(cfg.seed)  # the init must not depend on what ran before (backbone init, extraction)
    model = FactorTopy(subject.coords, features.channels, dim=cfg.dim, grid=cfg.grid, hidden=cfg.hidden,
                       layer_names=features.layer_names)
    with torch.no_grad():
        model.token_scale.copy_(1.0 / _token_rms(features.tokens[torch.as_tensor(train_idx[:512])], features.channels))
    model = model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.batch_size == "auto":  # chosen by memory: the largest power of two that fits
        free = free_device_bytes(device)
        cfg.batch_size = CPU_BATCH_SIZE if free is None else auto_batch_size(
            model.n_vertices, model.n_layers, cfg.grid, cfg.dim, max(features.channels), free, len(train_idx))
    steps_per_epoch = int(np.ceil(len(train_idx) / cfg.batch_size))
    total_steps = steps_per_epoch * cfg.epochs

    run_config = dict(
        factortopy_version=__version__,
        kind="factortopy",
        data=data_spec,
        subject=subject.name,
        data_digest=_data_digest(responses, subject.coords),  # a resume never continues on other data
        backbone=dict(name=info.name, layers=list(info.layer_names), weights=weights_fingerprint(bb),
                      weights_file=os.path.abspath(weights) if weights else None, pretrained=pretrained,
                      img_size=img_size, input_size=list(info.input_size), channels=list(info.channels)),
        model=model.config(),
        fit=asdict(cfg),
        split=dict(seed=cfg.seed, val_fraction=cfg.val_fraction, n_train=len(train_idx), n_val=len(val_idx),
                   val_image_ids=np.asarray(subject.image_ids)[val_idx].tolist()),
    )

    # ---- resume an interrupted fit with identical settings
    start_epoch, step, history = 0, 0, []
    best = dict(r=-np.inf, state=None, epoch=-1)
    ckpt_path = os.path.join(out, CHECKPOINT_FILE) if out else None
    if out and main_process:
        os.makedirs(out, exist_ok=True)
    if resume and ckpt_path and os.path.isfile(ckpt_path):
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt["run_config"] == json.loads(json.dumps(run_config, default=str)):
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            start_epoch, step, history, best = ckpt["epoch"], ckpt["step"], ckpt["history"], ckpt["best"]
            gen.set_state(ckpt["generator"])
            if progress:
                print(f"resuming from epoch {start_epoch} ({ckpt_path})")
        else:
            warnings.warn(f"{ckpt_path} was written by a fit with other settings: starting afresh "
                          "(it will be overwritten)", stacklevel=2)

    amp = cfg.amp and device.startswith("cuda")
    bad_epochs = 0 if not history else len(history) - 1 - best["epoch"]
    bar = tqdm(total=total_steps, initial=step, desc="fit", unit="step", disable=not progress)
    t_train = time.time()
    try:
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            order = train_t[torch.randperm(len(train_idx), generator=gen).to(train_t.device)]
            losses = []
            for b in range(steps_per_epoch):
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                n_global = idx.numel() * model.n_vertices
                idx = idx[rank::world]  # this process's share of the global batch
                batch = tokens[idx].to(device, non_blocking=True)
                target = y_dev[idx]
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    sel = model.selectors()
                    pred = model.forward_tokens(batch if amp else batch.float(), selectors=sel)
                    # Sum / global count: summed over processes this is the global batch's mean.
                    loss = torch.nn.functional.smooth_l1_loss(pred.float(), target, beta=cfg.smooth_l1_beta,
                                                              reduction="sum") / n_global
                    w = regularizer_weight(step, total_steps, cfg.reg_weight, cfg.reg_fade, cfg.reg_fade_value)
                    total = loss + (w / world) * model.regularizer(sel) if w > 0 else loss
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                if world > 1:
                    all_reduce_gradients(model)
                    torch.distributed.all_reduce(loss.detach())
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                step += 1
                losses.append(loss.detach())
                bar.update(1)
            val_r, _ = _evaluate(model, val_tokens, val_y, cfg.eval_batch_size, device)
            mean_r = float(val_r.mean())
            history.append(dict(epoch=epoch + 1, step=step, train_loss=float(torch.stack(losses).mean()),
                                val_pearson_mean=mean_r, seconds=time.time() - t0))
            bar.set_postfix(val_r=f"{mean_r:.3f}")
            if mean_r > best["r"]:
                best = dict(r=mean_r, epoch=epoch, state={k: v.detach().clone() for k, v in model.state_dict().items()})
                bad_epochs = 0
            else:
                bad_epochs += 1
            if ckpt_path and main_process:
                torch.save(dict(run_config=json.loads(json.dumps(run_config, default=str)), model=model.state_dict(),
                                optimizer=optimizer.state_dict(), epoch=epoch + 1, step=step, history=history,
                                best=best, generator=gen.get_state()), ckpt_path + ".tmp")
                os.replace(ckpt_path + ".tmp", ckpt_path)
            if cfg.patience is not None and bad_epochs >= cfg.patience:
                break
    finally:
        bar.close()
    train_seconds = time.time() - t_train

    # ---- best weights, final scores
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    val_r, val_r2 = _evaluate(model, val_tokens, val_y, cfg.eval_batch_size, device)
    model = model.cpu()
    metrics = dict(
        val_pearson_mean=float(val_r.mean()), val_pearson_median=float(np.median(val_r)),
        val_r2_mean=float(val_r2.mean()), n_train=int(len(train_idx)), n_val=int(len(val_idx)),
        n_vertices=int(subject.n_vertices), epochs=len(history), best_epoch=best["epoch"] + 1,
        steps=step, seconds=time.time() - t0, feature_seconds=t_features, train_seconds=train_seconds,
    )
    result = FitResult(model=model, config=run_config, metrics=metrics, selectors={}, val_r=val_r, val_r2=val_r2,
                       train_index=train_idx, val_index=val_idx, history=history, run_dir=out)
    result.selectors = selector_arrays(model, subject.vertex, subject.hemi)
    if out and main_process:
        save_model(os.path.join(out, "model.safetensors"), model)
        write_json(os.path.join(out, "config.json"), run_config)
        np.savez(os.path.join(out, "response_stats.npz"), mean=mean, std=std)
        np.savez(os.path.join(out, "selectors.npz"), **result.selectors)
        np.savez(os.path.join(out, "scores.npz"), vertex=subject.vertex, hemi=np.asarray(subject.hemi).astype("<U2"),
                 r=val_r, r2=val_r2)
        write_json(os.path.join(out, "metrics.json"), metrics)
        with open(os.path.join(out, "train_log.jsonl"), "w") as f:
            f.writelines(json.dumps(h) + "\n" for h in history)
        if ckpt_path and os.path.isfile(ckpt_path):
            os.remove(ckpt_path)  # finished: the run directory is the result
    return result
