"""The training losses, one table (method.md, "Training"; FitConfig ``loss``).

Each :class:`Loss` turns one step's predictions and targets, both (B, N) float32 z-scored
responses of this process's share of the batch, into the scalar the optimiser minimises.
``n_global`` is the number of (image, vertex) terms in the whole batch over every process.

An *additive* loss is a sum of per-(image, vertex) terms divided by ``n_global``: summed over
processes (the gradients' all-reduce) it is exactly the global batch's mean, so data-parallel
training equals one process. A loss that is not (a correlation needs the whole batch's means) is
refused under torchrun rather than computed on shards.

Adding a loss is one entry in :data:`LOSSES`; ``--loss`` and FitConfig's check list it.
No torch at import (the command line's ``--help`` reads the table).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


def smooth_l1(pred, target, n_global: int, cfg):
    """Smooth L1 (Huber / beta) summed over the batch / n_global: 0.5 d^2 / beta where abs(d) < beta,
    abs(d) - 0.5 beta beyond (``cfg.smooth_l1_beta``; the reference recipe's loss, beta 0.1)."""
    import torch

    return torch.nn.functional.smooth_l1_loss(pred, target, beta=cfg.smooth_l1_beta, reduction="sum") / n_global


def mse(pred, target, n_global: int, cfg):
    """Mean squared error: sum of d^2 over the batch / n_global."""
    import torch

    return torch.nn.functional.mse_loss(pred, target, reduction="sum") / n_global


#: a squared norm below this counts as zero variance (r = 0 there, with a zero gradient)
_EPS = 1e-12


def pearson(pred, target, n_global: int, cfg):
    """1 - the mean over vertices of Pearson r between predictions and targets over the batch's
    images (each vertex's r computed across the B images of the step). A vertex whose prediction or
    target is constant over the batch has r = 0. Insensitive to each vertex's offset and scale:
    the readout's bias and norm are then fixed by the initialisation and weight decay alone."""
    p = pred - pred.mean(0, keepdim=True)
    t = target - target.mean(0, keepdim=True)
    # clamp, not a where on sqrt(0): the gradient stays finite (zero) for constant columns
    r = (p * t).sum(0) / ((p * p).sum(0) * (t * t).sum(0)).clamp_min(_EPS).sqrt()
    return 1 - r.mean()


@dataclass(frozen=True)
class Loss:
    """fn: ``(pred (B, N), target (B, N), n_global, cfg) -> scalar``. additive: a sum of
    per-(image, vertex) terms / n_global (exact under data parallelism). description: one line."""

    fn: Callable
    additive: bool
    description: str


LOSSES: dict[str, Loss] = {
    "smooth_l1": Loss(smooth_l1, True, "smooth L1 with --smooth-l1-beta (the reference's)"),
    "mse": Loss(mse, True, "mean squared error"),
    "pearson": Loss(pearson, False, "1 - mean per-vertex Pearson r over each batch's images (one process only)"),
}


def loss_for(name: str, world: int = 1) -> Loss:
    """The loss ``name``; a non-additive one is refused when ``world`` > 1 processes share a batch."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    loss = LOSSES[name]
    if world > 1 and not loss.additive:
        additive = ", ".join(k for k, v in LOSSES.items() if v.additive)
        raise ValueError(f"the {name} loss needs each batch whole, but {world} processes share it (torchrun): "
                         f"fit it in one process, or use an additive loss ({additive})")
    return loss
