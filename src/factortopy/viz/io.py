"""Read the maps of a RUN_DIR (selectors.npz, scores.npz, config.json) or of a planted_truth.npz."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

#: per-vertex keys read from selectors.npz / planted_truth.npz when present
MAP_KEYS = ("layer_probs", "space_xy", "scale", "readout", "ceiling_r", "noise_sd")


def _read_npz(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def run_title(config: dict | None, fallback: str = "") -> str:
    """A short column title from a run's config.json: backbone name, data, kind."""
    if not config:
        return fallback
    parts = []
    bb = config.get("backbone") or {}
    if isinstance(bb, dict) and bb.get("name"):
        parts.append(str(bb["name"]))
    data = config.get("data")
    if isinstance(data, dict):
        data = data.get("subject") or data.get("spec") or data.get("name") or data.get("path")
    if data:
        parts.append(os.path.basename(str(data).rstrip("/")) or str(data))
    if config.get("kind") and config.get("kind") != "factortopy":
        parts.append(str(config["kind"]))
    return " | ".join(parts) if parts else fallback


def _match(vertex, hemi, other_vertex, other_hemi) -> np.ndarray:
    """Index into the other set of each (hemi, vertex), -1 where absent. Shapes (N,) -> (N,)."""
    key = {(h, int(v)): i for i, (h, v) in enumerate(zip(np.asarray(other_hemi).astype(str), other_vertex))}
    return np.array([key.get((h, int(v)), -1) for h, v in zip(hemi, vertex)], dtype=np.int64)


def load_maps(path) -> dict:
    """Load per-vertex maps from a RUN_DIR, a selectors.npz or a planted_truth.npz (or its folder).

    Returns a dict with ``vertex`` (N,) int64, ``hemi`` (N,) str, ``layer_names`` list[str],
    ``layer_probs`` (N, L), ``space_xy`` (N, 2), ``scale`` (N,), ``readout`` (N, D) when stored,
    ``r`` / ``r2`` (N,) from scores.npz when present (NaN for vertices it lacks), ``config``
    (dict or None), ``title`` (str) and ``path``.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist (expected a RUN_DIR or a selectors.npz / planted_truth.npz)")
    if p.is_dir():
        for name in ("selectors.npz", "planted_truth.npz"):
            if (p / name).exists():
                npz, run_dir = p / name, p
                break
        else:
            raise FileNotFoundError(f"{p} has neither selectors.npz nor planted_truth.npz: not a RUN_DIR")
    else:
        npz, run_dir = p, p.parent
    raw = _read_npz(npz)
    missing = [k for k in ("vertex", "hemi") if k not in raw]
    if missing:
        raise ValueError(f"{npz} lacks {', '.join(missing)}")
    out = {"vertex": raw["vertex"].astype(np.int64), "hemi": raw["hemi"].astype(str)}
    n = len(out["vertex"])
    if len(out["hemi"]) != n:
        raise ValueError(f"{npz}: vertex ({n}) and hemi ({len(out['hemi'])}) lengths differ")
    for k in MAP_KEYS:
        if k in raw:
            if raw[k].ndim and raw[k].shape[0] != n:
                raise ValueError(f"{npz}: {k} has {raw[k].shape[0]} rows for {n} vertices")
            out[k] = raw[k]
    if "layer_names" in raw:
        out["layer_names"] = [str(x) for x in raw["layer_names"]]
    elif "layer_probs" in raw:
        out["layer_names"] = [f"layer {i}" for i in range(raw["layer_probs"].shape[1])]
    scores = run_dir / "scores.npz"
    if scores.exists() and npz.name == "selectors.npz":
        sc = _read_npz(scores)
        idx = _match(out["vertex"], out["hemi"], sc["vertex"], sc["hemi"])
        for k in ("r", "r2"):
            if k in sc:
                vals = np.full(n, np.nan)
                vals[idx >= 0] = sc[k][idx[idx >= 0]]
                out[k] = vals
    config = None
    cfg = run_dir / "config.json"
    if cfg.exists():
        with open(cfg) as f:
            config = json.load(f)
    out["config"] = config
    fallback = run_dir.name if npz.name == "selectors.npz" else f"{run_dir.name} (planted truth)"
    out["title"] = run_title(config, fallback) if npz.name == "selectors.npz" else fallback
    out["path"] = str(p)
    return out
