"""Per-vertex metrics on held-out images. Work on numpy arrays or torch tensors (any device)."""
from __future__ import annotations


def _xp(x):
    """The array library of ``x``: torch for tensors (keeps GPU work on the GPU), else numpy."""
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    import numpy

    return numpy


def _safe_ratio(xp, num, den, eps):
    ok = den > eps
    return xp.where(ok, num / xp.where(ok, den, 1.0), 0.0 * num)


def pearson_r(pred, target, eps: float = 1e-12):
    """Pearson r per column: pred, target (n_images, n_vertices) -> (n_vertices,).

    A column with zero variance gets r = 0 (not NaN).
    """
    xp = _xp(pred)
    p = pred - pred.mean(0)[None]
    t = target - target.mean(0)[None]
    return _safe_ratio(xp, (p * t).sum(0), xp.sqrt((p * p).sum(0) * (t * t).sum(0)), eps)


def r2_score(pred, target, eps: float = 1e-12):
    """Coefficient of determination per column: 1 - SS_res / SS_tot, (n_vertices,)."""
    xp = _xp(pred)
    ss_res = ((target - pred) ** 2).sum(0)
    ss_tot = ((target - target.mean(0)[None]) ** 2).sum(0)
    return xp.where(ss_tot > eps, 1 - _safe_ratio(xp, ss_res, ss_tot, eps), 0.0 * ss_res)


def algonauts_score(r, noise_ceiling, cap: float = 100.0):
    """Algonauts 2023 noise-normalised score per vertex: 100 x max(r, 0)^2 / NC, capped at ``cap``.

    r: (N,) Pearson r. noise_ceiling: (N,) a 0-1 FRACTION (percent is refused with a clear error:
    dividing by a percent would shrink scores 100-fold). Vertices with NC <= 0 get NaN (undefined);
    summaries use nan-aware means. numpy in, numpy out.
    """
    import numpy as np

    from factortopy.evaluation.ceiling import check_fraction

    r = np.asarray(r, dtype=np.float64)
    nc = check_fraction(noise_ceiling)
    if nc.shape != r.shape:
        raise ValueError(f"noise_ceiling has shape {nc.shape} but r has {r.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(nc > 0, 100.0 * np.maximum(r, 0.0) ** 2 / np.where(nc > 0, nc, 1.0), np.nan)
    return np.minimum(score, cap)
