"""The training loop of a fit (method.md, "Training"): AdamW on a loss from the loss table plus
the fading selector regulariser, validation r after each epoch, checkpoints to resume from, early
stopping, and the batch size. Data-parallel under torchrun (:func:`all_reduce_gradients`).
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from factortopy.fitting.checkpoint import load_checkpoint, resume_state, save_checkpoint
from factortopy.fitting.config import DivergedError, FitConfig
from factortopy.fitting.distributed import rank_world
from factortopy.fitting.losses import loss_for
from factortopy.fitting.memory import CPU_BATCH_SIZE, auto_batch_size, free_device_bytes, place_tokens
from factortopy.fitting.schedule import regularizer_weight


def all_reduce_gradients(model) -> None:
    """Sum every gradient over processes in one flat all-reduce (data parallel, exact)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def evaluate(model, tokens, targets, batch_size, device):
    from factortopy.evaluation.metrics import pearson_r, r2_score
    from factortopy.fitting.predict import predict_tokens

    pred = predict_tokens(model, tokens, batch_size, device)
    target = targets.to(device)
    return pearson_r(pred, target).cpu().numpy(), r2_score(pred, target).cpu().numpy()


def check_finite(model, train_loss: float, epoch: int, cfg, ckpt_path) -> None:
    """Stop a diverged fit before its weights are checkpointed or saved: the last good checkpoint
    (if any) stays, and no non-finite weights ever become a finished run."""
    if math.isfinite(train_loss) and all(torch.isfinite(p).all() for p in model.parameters()):
        return
    kept = (f"the checkpoint of epoch {epoch} (the last finite one) stays in {ckpt_path}" if ckpt_path
            else "nothing was saved")
    raise DivergedError(f"training diverged in epoch {epoch + 1} (train loss {train_loss}, weights no longer "
                        f"finite): lower the learning rate (--lr, now {cfg.lr}) and rerun with --overwrite; {kept}")


def train(model, tokens, y, train_idx, val_idx, cfg: FitConfig, batch_size: int, ckpt_path=None,
          resume_key: str = "", progress: bool = True):
    """The epoch loop: AdamW on ``cfg.loss`` (:data:`factortopy.fitting.losses.LOSSES`) + the fading
    regulariser, validation r after each epoch, checkpoints for resuming, early stopping. Returns
    (history, best, steps) with ``best`` holding the best epoch's ``state``; the model is left at
    its last epoch's weights."""
    from factortopy._progress import progress_bar as tqdm  # renders in Jupyter, else a plain bar

    rank, world = rank_world()
    loss_fn = loss_for(cfg.loss, world)
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
    ckpt = resume_state(ckpt_path, resume_key, model, optimizer, gen, device)
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
                    # additive losses: sum / global count, summed over processes the global batch's mean
                    loss = loss_fn.fn(pred.float(), target, n_global, cfg)
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
            check_finite(model, train_loss, epoch, cfg, ckpt_path if history else None)
            val_r, _ = evaluate(model, val_tokens, val_y, cfg.eval_batch_size, device)
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
                save_checkpoint(ckpt_path, dict(
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
        saved = load_checkpoint(ckpt_path, "cpu").get("batch_size")
        if saved:
            return int(saved)
    free = free_device_bytes(cfg.device)
    if free is None:
        return CPU_BATCH_SIZE
    return auto_batch_size(model.n_vertices, model.n_layers, cfg.grid, cfg.dim, c_max, free, n_train)
