"""Backbone adapters: any vision network -> per-layer local maps and global tokens.

``load_backbone(name, ...)`` returns a :class:`~factortopy.backbones.base.Backbone`. ``name`` is

- a friendly name from the registry (``clip-vit-b-16``, ``dinov2-reg-vit-b-14``, ``sam-vit-b``, ...;
  see :func:`list_models`),
- any timm model name (``resnet50``, ``vit_base_patch16_224.mae``),
- or a prefixed name: ``timm:NAME``, ``torchvision:NAME``, ``hf:ORG/NAME``, ``open_clip:ARCH[:TAG]``.

Any other ``nn.Module``: :class:`HookBackbone` (module names + a :class:`TokenLayout`).
"""
from __future__ import annotations

import difflib

from factortopy.backbones import registry
from factortopy.backbones.base import Backbone, BackboneInfo
from factortopy.backbones.hook_backbone import HookBackbone, list_module_layers
from factortopy.backbones.registry import register
from factortopy.backbones.tokens import LAYOUTS, TokenLayout

__all__ = ["Backbone", "BackboneInfo", "HookBackbone", "TokenLayout", "LAYOUTS", "load_backbone",
           "list_layers", "list_models", "list_module_layers", "register", "resolve"]

SOURCES = ("timm", "torchvision", "hf", "open_clip")
_ALIASES = {"tv": "torchvision", "openclip": "open_clip", "open-clip": "open_clip", "huggingface": "hf"}


def resolve(name: str) -> tuple[str, str, "registry.Entry | None"]:
    """name -> (source, source's own model name, registry entry or None). Raises for unknown names."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a backbone name must be a non-empty string, not {name!r}")
    head, sep, rest = name.partition(":")
    if sep and head.lower() in SOURCES + tuple(_ALIASES):
        return _ALIASES.get(head.lower(), head.lower()), rest, None
    entry = registry.get(name)
    if entry is not None:
        return entry.source, entry.target, entry
    import timm

    if timm.is_model(name):
        return "timm", name, None
    close = difflib.get_close_matches(name.lower(), registry.names(), n=5, cutoff=0.6)
    close += timm.list_models(f"*{name.split('.')[0]}*")[:8]
    raise ValueError(
        f"unknown backbone {name!r}"
        + (f"; did you mean: {', '.join(close)}?" if close else ".")
        + " Use a friendly name (factortopy.backbones.list_models()), a timm name, or a prefixed "
        "name: timm:NAME, torchvision:NAME, hf:ORG/NAME, open_clip:ARCH[:TAG]."
    )


def load_backbone(name: str, layers=None, weights: str | None = None, pretrained: bool = False,
                  img_size: int | None = None, **kwargs) -> Backbone:
    """A frozen backbone adapter for ``name`` (see the module docstring for accepted names).

    layers: hooked layer names, a list or a comma-separated string (default: the source's usual
      set: timm ``feature_info`` modules, all ViT blocks, torchvision stages / encoder layers).
    weights: a local .safetensors or torch file (keys matched by name, a wrapper prefix stripped,
      or remapped by position; missing/unexpected keys are reported). pretrained: use the hub
      weights (from the cache when HF_HUB_OFFLINE is set; fails fast when absent).
    img_size: square input size in pixels (ViTs rebuild their patch grid; CNNs take any size).
    kwargs: passed to the source (timm: model kwargs such as depth=2; ``remap``; ``token_layout``
      for torchvision/hf/open_clip; ``mean``/``std`` overrides for timm).
    """
    if isinstance(layers, str):
        layers = [l.strip() for l in layers.split(",") if l.strip()]
    source, target, entry = resolve(name)
    if entry is not None:
        if entry.weights_required and weights is None:
            raise ValueError(f"{entry.name} ({entry.family}) needs a local checkpoint on timm "
                             f"{entry.target}: {entry.weights_required}")
        if entry.weights_required:
            pretrained = False  # the architecture's hub weights are not this checkpoint
        img_size = img_size if img_size is not None else entry.img_size
        kwargs.setdefault("mean", entry.mean)
        kwargs.setdefault("std", entry.std)
    if source == "timm":
        from factortopy.backbones.timm_backbone import TimmBackbone

        backbone = TimmBackbone(target, layers=layers, weights=weights, pretrained=pretrained,
                                img_size=img_size, **kwargs)
        if entry is not None:
            backbone.info.extra["friendly_name"] = entry.name
        return backbone
    kwargs = {k: v for k, v in kwargs.items() if k in ("token_layout", "remap")}
    if source == "torchvision":
        from factortopy.backbones.torchvision_backbone import load_torchvision as load
    elif source == "hf":
        from factortopy.backbones.hf_backbone import load_hf as load
    else:
        from factortopy.backbones.open_clip_backbone import load_open_clip as load
    return load(target, layers=layers, weights=weights, pretrained=pretrained, img_size=img_size, **kwargs)


def list_layers(name: str, img_size: int | None = None, all_modules: bool = False) -> list[dict]:
    """The hookable layers of ``name``: dicts with ``name``, ``channels``, ``stride``.

    timm: the model's ``feature_info`` (built on the meta device: no memory, no weights).
    Hook-based sources (torchvision, hf, open_clip): the default layers; ``all_modules=True`` lists
    every named non-leaf module with its output ``shape`` from one probe forward, any of which can
    be hooked.
    """
    source, target, entry = resolve(name)
    if entry is not None and img_size is None:
        img_size = entry.img_size
    if source == "timm":
        from factortopy.backbones.timm_backbone import create_timm_model, timm_layers

        return timm_layers(create_timm_model(target, img_size=img_size, device="meta"))
    backbone = load_backbone(name, img_size=img_size)  # random init: listing needs no weights
    if all_modules:
        backbone.remove_hooks()  # probe the plain module
        rows = list_module_layers(backbone.model, backbone.info.input_size, include=backbone.info.layer_names)
        default = set(backbone.info.layer_names)
        for r in rows:
            r["default"] = r["name"] in default
        return rows
    info = backbone.info
    return [dict(name=n, channels=c, stride=s) for n, c, s in zip(info.layer_names, info.channels, info.strides)]


def list_models(family: str | None = None) -> list[dict]:
    """The friendly names: dicts(name, family, timm, global_token, weights_required)."""
    rows = [dict(name=e.name, family=e.family, target=e.target, source=e.source,
                 global_token=e.global_token, img_size=e.img_size,
                 weights_required=bool(e.weights_required)) for e in registry.entries()]
    if family:
        rows = [r for r in rows if family.lower() in r["family"].lower()]
    return rows
