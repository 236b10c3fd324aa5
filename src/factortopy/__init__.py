"""factortopy: map any pre-trained vision network onto the human brain.

FactorTopy ("Brain Decodes Deep Nets", Yang, Gee & Shi, CVPR 2024) predicts each fMRI vertex's
response from a frozen backbone's hooked features through factorised selectors over
space x layer x scale x channel that are smooth functions of the vertex's cortical position.

Heavy dependencies (torch, timm, nilearn) are imported lazily: ``import factortopy`` is cheap and
the public names below are resolved on first use.
"""
from __future__ import annotations

from factortopy._lazy import lazy_attributes

__version__ = "0.1.0"

# public name -> module that defines it (resolved lazily, see __getattr__)
_LAZY = {
    "FactorTopy": "factortopy.model.factortopy",
    "PositionalEncoding": "factortopy.model.encoding",
    "fit": "factortopy.fitting.fit",
    "FitResult": "factortopy.fitting.fit",
    "load_run": "factortopy.fitting.run",
    "open_run": "factortopy.runs",
    "BackboneSpec": "factortopy.backbones.spec",
    "load_backbone": "factortopy.backbones",
    "load_algonauts": "factortopy.data.algonauts",
    "load_subject": "factortopy.data",
    "load_nsd": "factortopy.data.nsd",
    "evaluate_run": "factortopy.evaluation",
    "fit_ridge_baseline": "factortopy.baselines.run",
    "list_layers": "factortopy.backbones",
    "make_planted_subject": "factortopy.datasets.planted",
    "FactorTopyEncoder": "factortopy.estimator",
    "predict": "factortopy.estimator",
    "export_run": "factortopy.viz.export",
    # subpackages for notebooks: ``factortopy.viz.layer_map(...)`` after a plain ``import factortopy``
    "viz": "factortopy.viz",
    "analysis": "factortopy.analysis",
    "study": "factortopy.study",
}

# factortopy's own plug-ins, by entry-point group: the same table as [project.entry-points] in
# pyproject.toml (tests/test_plugins.py keeps them equal). Read from here, never from the installed
# metadata, so the built-ins work from a fresh clone or a stale editable install (factortopy._plugins).
_BUILTIN_PLUGINS = {
    "factortopy.backbone_sources": {
        "timm": "factortopy.backbones.timm_backbone:build_timm",
        "torchvision": "factortopy.backbones.torchvision_backbone:build_torchvision",
        "hf": "factortopy.backbones.hf_backbone:build_hf",
        "open_clip": "factortopy.backbones.open_clip_backbone:build_open_clip",
    },
    "factortopy.data_kinds": {
        "algonauts": "factortopy.data.algonauts:load_algonauts",
        "nsd": "factortopy.data.nsd:load_nsd",
        "generic": "factortopy.data.generic:load_generic",
    },
    "factortopy.map_kinds": {  # the selectors' maps (layer, space, scale, rf-size) come from their rows
        "channel": "factortopy.viz.kinds:CHANNEL",
        "r": "factortopy.viz.kinds:R",
        "r2": "factortopy.viz.kinds:R2",
        "score": "factortopy.viz.kinds:SCORE",
        "ceiling_r": "factortopy.viz.kinds:CEILING_R",
    },
    "factortopy.run_kinds": {
        "factortopy": "factortopy.fitting.run:FactorTopyRun",
        "ridge": "factortopy.baselines.run:RidgeRun",
    },
}

__all__ = sorted(_LAZY) + ["__version__"]


__getattr__, _lazy_dir = lazy_attributes('factortopy', _LAZY, globals())


def __dir__():
    return _lazy_dir() + ["__version__"]
