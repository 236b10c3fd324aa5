"""Per-vertex maps of a RUN_DIR (selectors.npz + scores.npz) or of a planted truth."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from factortopy.runs import (CONFIG, PLANTED_TRUTH, SCORES, SELECTORS, eval_files, eval_splits, read_json, read_npz,
                             run_title)
from factortopy.runs.columns import match_columns

#: arrays of selectors.npz / planted_truth.npz that are not per-vertex maps
_NOT_MAPS = ("vertex", "hemi", "layer_names")


def load_maps(path) -> dict:
    """Load per-vertex maps from a RUN_DIR, a selectors.npz or a planted_truth.npz (or its folder).

    Returns a dict with ``vertex`` (N,) int64, ``hemi`` (N,) str, ``layer_names`` list[str],
    ``layer_probs`` (N, L), ``space_xy`` (N, 2), ``scale`` (N,), ``readout`` (N, D) when stored,
    ``r`` / ``r2`` (N,) the held-out Pearson r and R^2 from scores.npz when present, and for each
    split ``factortopy evaluate`` scored (eval_<split>.npz) ``<split>_r``, ``<split>_r2`` and, where
    the data carry a noise ceiling, ``<split>_score`` (the noise-normalised Algonauts score, %)
    (all NaN for vertices a file lacks), ``config`` (dict or None), ``title`` (str) and ``path``.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist (expected a RUN_DIR or a {SELECTORS} / {PLANTED_TRUTH})")
    if p.is_dir():
        for name in (SELECTORS, PLANTED_TRUTH):
            if (p / name).exists():
                npz, run_dir = p / name, p
                break
        else:
            raise FileNotFoundError(f"{p} has neither {SELECTORS} nor {PLANTED_TRUTH}: not a RUN_DIR")
    else:
        npz, run_dir = p, p.parent
    raw = read_npz(npz)
    missing = [k for k in ("vertex", "hemi") if k not in raw]
    if missing:
        raise ValueError(f"{npz} lacks {', '.join(missing)}")
    out = {"vertex": raw["vertex"].astype(np.int64), "hemi": raw["hemi"].astype(str)}
    n = len(out["vertex"])
    if len(out["hemi"]) != n:
        raise ValueError(f"{npz}: vertex ({n}) and hemi ({len(out['hemi'])}) lengths differ")
    # every stored array is read: a selector added to model.selectors.SELECTORS (one row, one saved
    # key) reaches the painters without a list here to keep in step
    for k, value in raw.items():
        if k in _NOT_MAPS:
            continue
        if value.ndim and value.shape[0] != n:
            raise ValueError(f"{npz}: {k} has {value.shape[0]} rows for {n} vertices")
        out[k] = value
    if "layer_names" in raw:
        out["layer_names"] = [str(x) for x in raw["layer_names"]]
    elif "layer_probs" in raw:
        out["layer_names"] = [f"layer {i}" for i in range(raw["layer_probs"].shape[1])]
    if npz.name == SELECTORS:
        # the fit's held-out scores as r / r2; evaluate's as <split>_r, <split>_r2, <split>_score
        scored = [(SCORES, "")] if (run_dir / SCORES).exists() else []
        scored += [(eval_files(split)[0], f"{split}_") for split in eval_splits(run_dir)]
        for name, prefix in scored:
            sc = read_npz(run_dir / name)
            idx = match_columns(out["vertex"], out["hemi"], sc["vertex"], sc["hemi"])
            for k in ("r", "r2", "score"):
                if k in sc and (prefix or k != "score"):
                    vals = np.full(n, np.nan)
                    vals[idx >= 0] = sc[k][idx[idx >= 0]]
                    out[prefix + k] = vals
    config = read_json(run_dir / CONFIG) if (run_dir / CONFIG).exists() else None
    out["config"] = config
    fallback = run_dir.name if npz.name == SELECTORS else f"{run_dir.name} (planted truth)"
    out["title"] = run_title(config, fallback) if npz.name == SELECTORS else fallback
    out["path"] = str(p)
    return out
