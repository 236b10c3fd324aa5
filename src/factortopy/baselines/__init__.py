"""Baselines to compare FactorTopy with on the same split.

``LayerwiseRidgeCV``: per-layer ridge (himalaya RidgeCV, per-vertex alpha), best layer per vertex.
``fit_ridge_baseline(subject, backbone=..., out=RUN_DIR)``: the whole baseline, writing a RUN_DIR.
Needs the optional extra ``pip install 'factortopy[ridge]'`` (himalaya).
"""
from __future__ import annotations

import importlib

_LAZY = {"LayerwiseRidgeCV": "factortopy.baselines.ridge", "fit_ridge_baseline": "factortopy.baselines.run",
         "load_ridge_run": "factortopy.baselines.run", "pool_tokens": "factortopy.baselines.features",
         "pooled_features": "factortopy.baselines.features"}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'factortopy.baselines' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
