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


#: per-vertex scores an estimator's ``score_vertices(X, y, metric)`` offers (name -> function)
VERTEX_METRICS = {"r2": r2_score, "r": pearson_r}


def vertex_scores(pred, target, metric: str = "r2"):
    """(n_vertices,) per-vertex score of predictions against responses, both (n_images, n_vertices):
    ``"r2"`` the coefficient of determination (SS_tot around the target's own mean, as
    scikit-learn), ``"r"`` Pearson r; a constant target column scores 0. The one definition behind
    both estimators' ``score`` (the mean of ``"r2"``) and ``score_vertices``."""
    import numpy as np

    if metric not in VERTEX_METRICS:
        raise ValueError(f"metric must be one of {sorted(VERTEX_METRICS)}, not {metric!r}")
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if target.shape != pred.shape:
        raise ValueError(f"responses have shape {target.shape} but the predictions are {pred.shape} "
                         "(n_images, n_vertices)")
    return VERTEX_METRICS[metric](pred, target)


#: where :func:`algonauts_score` and its summaries knowingly differ from the official scorer
SCORE_DEVIATIONS = {
    "constant": "r of a column whose prediction or target is constant is 0 here (the official scorer's "
                "pearsonr gives NaN, and its mean becomes NaN)",
    "nan_ceiling": "vertices with a NaN noise ceiling score NaN and are left out of the means (the official "
                   "mean becomes NaN)",
}
OFFICIAL_ZERO_CEILING = 1e-14  # what the official scorer puts where NC = 0


def algonauts_score(r, noise_ceiling, cap: float = 100.0):
    """Algonauts 2023 noise-normalised score per vertex, as the official scorer computes it.

    r: (N,) Pearson r. noise_ceiling: (N,) a 0-1 FRACTION (percent is refused: dividing by a
    percent would shrink scores 100-fold). Negative r is set to 0; NC = 0 is replaced by 1e-14, so
    such a vertex scores 100 where r > 0 and 0 otherwise; score = 100 r^2 / NC, capped at ``cap``.
    A NaN r or NC gives NaN. Returns (N,) float64; numpy in, numpy out. See
    :func:`score_deviations` for where summaries of it knowingly differ from the official code.
    """
    import numpy as np

    from factortopy.data.ceiling import ceiling_as_fraction

    r = np.asarray(r, dtype=np.float64)
    nc = ceiling_as_fraction(noise_ceiling, "fraction", "noise_ceiling")
    if nc.shape != r.shape:
        raise ValueError(f"noise_ceiling has shape {nc.shape} but r has {r.shape}")
    nc = np.where(nc == 0, OFFICIAL_ZERO_CEILING, nc)
    r = np.where(r < 0, 0.0, r)  # NaN stays NaN, as in the official code
    return np.minimum(100.0 * r**2 / nc, cap)


def score_deviations(noise_ceiling, pred=None, target=None) -> list[str]:
    """Sentences for the output: what in THESE data is scored unlike, or notably like, the official
    scorer (empty when nothing applies). noise_ceiling: (N,) fraction; pred/target: (n, N) to
    count constant columns."""
    import numpy as np

    nc = np.asarray(noise_ceiling, dtype=np.float64)
    notes = []
    zero = int((nc == 0).sum())
    if zero:
        notes.append(f"{zero} vertices have noise ceiling 0: scored as the official scorer does (NC -> 1e-14, so "
                     "100 where r > 0, else 0)")
    n_nan = int(np.isnan(nc).sum())
    if n_nan:
        notes.append(f"{n_nan} vertices: {SCORE_DEVIATIONS['nan_ceiling']}")
    if pred is not None and target is not None:
        const = (np.ptp(np.asarray(pred), axis=0) == 0) | (np.ptp(np.asarray(target), axis=0) == 0)
        if const.any():
            notes.append(f"{int(const.sum())} vertices: {SCORE_DEVIATIONS['constant']}")
    return notes


# ---- how many images a score may rest on (fit, baseline, evaluate, study: docs/reliability.md) -------
#: Pearson r over fewer images carries no information (1 image: undefined, 2: always +-1), so
#: neither choosing the best epoch nor a score can rest on it
MIN_EVAL_IMAGES = 3
#: below this, a vertex's r has a standard error 1/sqrt(n - 3) above 0.24 (Fisher z), larger than
#: typical visual-cortex encoding r: the epoch choice and the score are mostly noise
WARN_EVAL_IMAGES = 20


def check_scored_images(n: int, name: str, how: str, rests: str, fix: str, stacklevel: int = 2) -> None:
    """The one rule for every set of images a score rests on: fewer than :data:`MIN_EVAL_IMAGES`
    is a ValueError, fewer than :data:`WARN_EVAL_IMAGES` a warning.

    name: the set ("held-out", "validation", "test"); how: how it was chosen, for the message
    ("--heldout-fraction 0.025"); rests: what rests on it ("the held-out score", "the best epoch");
    fix: what to do ("raise --heldout-fraction or use more images"). stacklevel: the warning's, as
    seen from the caller (2: the caller's caller)."""
    import math
    import warnings

    if n < MIN_EVAL_IMAGES:
        raise ValueError(f"the {name} set has {n} image(s) ({how}); Pearson r needs at least {MIN_EVAL_IMAGES}: "
                         f"{fix}")
    if n < WARN_EVAL_IMAGES:
        warnings.warn(f"the {name} set has only {n} images ({how}): per-vertex r has a standard error above "
                      f"{1 / math.sqrt(WARN_EVAL_IMAGES - 3):.2f}, so {rests} is mostly noise; use at least "
                      f"{WARN_EVAL_IMAGES} images", stacklevel=stacklevel + 1)
