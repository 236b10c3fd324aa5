"""Backbone adapters: any vision network -> per-layer local maps and global tokens.

``load_backbone(name, ...)`` returns a :class:`~factortopy.backbones.base.Backbone`. ``name`` is

- a friendly name from the registry (``clip-vit-b-16``, ``dinov2-reg-vit-b-14``, ``sam-vit-b``, ...;
  see :func:`list_models`),
- any timm model name (``resnet50``, ``vit_base_patch16_224.mae``),
- or a prefixed name: ``timm:NAME``, ``torchvision:NAME``, ``hf:ORG/NAME``, ``open_clip:ARCH[:TAG]``,
  or ``SOURCE:NAME`` of any installed plug-in source (entry-point group
  ``factortopy.backbone_sources``; :func:`sources` lists them).

Any other ``nn.Module``: :class:`HookBackbone` (module names + a :class:`TokenLayout`).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from factortopy.backbones import registry
from factortopy.backbones.base import Backbone, BackboneInfo
from factortopy.backbones.hook_backbone import HookBackbone, list_module_layers
from factortopy.backbones.registry import register
from factortopy.backbones.spec import BackboneSpec, as_spec, backbone_identity, check_identity, rebuild
from factortopy.backbones.tokens import LAYOUTS, TokenLayout

__all__ = ["Backbone", "BackboneInfo", "BackboneSpec", "HookBackbone", "TokenLayout", "LAYOUTS", "as_spec",
           "backbone_identity", "check_identity", "load_backbone", "list_layers", "list_models",
           "list_module_layers", "rebuild", "register", "register_source", "resolve", "sources", "SOURCES"]


@dataclass(frozen=True)
class Source:
    """A backbone source: ``builder`` ("module:function", imported on use) is called as
    ``builder(target, spec)`` and returns a Backbone; ``options`` are the optional spec fields it
    honours (a spec setting any other is refused, never silently dropped; None: the builder's
    ``options`` attribute, read when it is loaded). ``distribution`` / ``version``: the installed
    distribution that provides it (None for one registered in this process)."""

    name: str
    builder: str
    options: frozenset | None
    prefixes: tuple = ()
    distribution: str | None = None
    version: str | None = None

    def load(self):
        """(builder function, the options it honours)."""
        from factortopy._plugins import Plugin

        builder = Plugin("factortopy.backbone_sources", self.name, self.builder, self.distribution,
                         self.version).load()
        options = self.options if self.options is not None else frozenset(getattr(builder, "options", ()))
        return builder, options

    def record(self) -> dict | None:
        """What a run records of the source's distribution (None for factortopy's own or this process's)."""
        if self.distribution in (None, "factortopy"):
            return None
        return {"distribution": self.distribution, "version": self.version}


#: sources registered in this process (:func:`register_source`): name -> Source. Installed sources
#: (entry points, factortopy's own included) are found by :func:`sources`.
SOURCES: dict[str, Source] = {}
#: name prefix (lower case) -> source name, for this process's sources and their aliases
_PREFIXES: dict[str, str] = {}
#: other spellings of the built-in sources' prefixes
ALIASES = {"tv": "torchvision", "huggingface": "hf", "openclip": "open_clip", "open-clip": "open_clip"}
#: spec fields whose meaning is the same for every source (applied by load_backbone itself)
_COMMON = frozenset({"name", "layers", "weights", "pretrained", "random_init", "seed", "img_size", "mean", "std",
                     "remap"})


def register_source(name: str, builder: str, options=(), aliases=()) -> Source:
    """Add a backbone source in this process only (e.g. a notebook; see :class:`Source`);
    ``aliases`` are extra name prefixes. A source other processes can rebuild (``factortopy
    evaluate``, ``paint``, a study worker) is an entry point in the group
    ``factortopy.backbone_sources`` of an installed distribution (docs/architecture.md)."""
    src = Source(name, builder, frozenset(options), (name,) + tuple(aliases))
    SOURCES[name] = src
    for prefix in src.prefixes:
        _PREFIXES[prefix.lower()] = name
    return src


def sources() -> dict[str, Source]:
    """Every backbone source by name: the installed entry points (factortopy's own: timm,
    torchvision, hf, open_clip), then those registered in this process, which win."""
    from factortopy._plugins import plugins

    table = {name: Source(name, p.target, None, (name,), p.distribution, p.version)
             for name, p in plugins("backbone_sources").items()}
    table.update(SOURCES)
    return table


def _source_named(prefix: str) -> str | None:
    """The source a name prefix selects (case-insensitive), or None."""
    low = prefix.lower()
    if low in _PREFIXES:
        return _PREFIXES[low]
    low = ALIASES.get(low, low)
    return next((name for name in sources() if name.lower() == low), None)


def resolve(name: str) -> tuple[str, str, "registry.Entry | None"]:
    """name -> (source, source's own model name, registry entry or None). Raises for unknown names."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a backbone name must be a non-empty string, not {name!r}")
    head, sep, rest = name.partition(":")
    source = _source_named(head) if sep else None
    if source is not None:
        return source, rest, None
    entry = registry.get(name)
    if entry is not None:
        return entry.source, entry.target, entry
    from factortopy._progress import quiet_tqdm_auto

    quiet_tqdm_auto()  # timm imports tqdm.auto (a warning in a Jupyter kernel without ipywidgets)
    import timm

    if timm.is_model(name):
        return "timm", name, None
    close = difflib.get_close_matches(name.lower(), registry.names(), n=5, cutoff=0.6)
    close += timm.list_models(f"*{name.split('.')[0]}*")[:8]
    raise ValueError(
        f"unknown backbone {name!r}"
        + (f"; did you mean: {', '.join(close)}?" if close else ".")
        + " Use a friendly name (factortopy.backbones.list_models()), a timm name, or a prefixed "
        "name: " + ", ".join(f"{s}:NAME" for s in sources()) + "."
        + (f" No installed source is called {head!r} (a plug-in package provides one as an entry point in "
           "factortopy.backbone_sources)." if sep else "")
    )


def _refuse_unsupported(spec: BackboneSpec, source: Source, options) -> None:
    defaults = BackboneSpec(name=spec.name, random_init=True)
    unused = [f for f in ("token_layout", "model_args")
              if f not in options and getattr(spec, f) != getattr(defaults, f)]
    if unused:
        raise ValueError(f"{spec.name}: the {source.name} source does not take {', '.join(unused)} "
                         f"(it takes {', '.join(sorted(options)) or 'none of the extra options'})")


def load_backbone(name, layers=None, weights: str | None = None, pretrained: bool | None = None,
                  img_size: int | None = None, **kwargs) -> Backbone:
    """A frozen backbone adapter, carrying the :class:`BackboneSpec` it was built from (``.spec``).

    name: a BackboneSpec, a dict of its fields, or a name (see the module docstring) with the
      spec's fields as keyword arguments:
    layers: hooked layer names, a list or a comma-separated string (default: the source's usual
      set: timm ``feature_info`` modules, all ViT blocks, torchvision stages / encoder layers).
    weights: a local .safetensors or torch file (keys matched by name, a wrapper prefix stripped,
      or remapped by position; missing/unexpected keys are reported). pretrained: the hub weights
      (from the cache when HF_HUB_OFFLINE is set; fails fast when absent); the default when neither
      ``weights`` nor ``random_init=True`` is given. random_init, seed: random weights drawn under
      ``seed`` (the global RNG is left as it was).
    img_size: square input size in pixels (ViTs rebuild their patch grid; CNNs take any size).
    kwargs: other spec fields (mean, std, token_layout, remap, model_args); any other keyword is a
      timm model argument (e.g. depth=2), refused by sources that take none.
    """
    import torch

    given = dict(layers=layers, weights=weights, pretrained=pretrained, img_size=img_size)
    spec = as_spec(name, **{k: v for k, v in given.items() if v is not None}, **kwargs)
    source_name, target, entry = resolve(spec.name)
    source = sources()[source_name]
    builder, options = source.load()
    _refuse_unsupported(spec, source, options)
    build_spec = spec
    if entry is not None:
        if entry.weights_required and spec.weights is None and not spec.random_init:
            raise ValueError(f"{entry.name} ({entry.family}) needs a local checkpoint on timm {entry.target}: "
                             f"{entry.weights_required}")
        # the entry's defaults apply where the spec is silent; the spec itself stays as the user wrote it
        build_spec = spec.replace(
            img_size=spec.img_size if spec.img_size is not None else entry.img_size,
            mean=spec.mean if spec.mean is not None else entry.mean,
            std=spec.std if spec.std is not None else entry.std)
    with torch.random.fork_rng(devices=[]):  # a random init is a function of the spec alone
        torch.manual_seed(spec.seed)
        backbone = builder(target, build_spec)
    info = backbone.info
    if build_spec.mean is not None:
        info.mean = tuple(build_spec.mean)
    if build_spec.std is not None:
        info.std = tuple(build_spec.std)
    info.extra.setdefault("source", source_name)
    if source.record() is not None:  # a plug-in's: recorded, so a run can say what to install
        info.extra["distribution"] = source.record()
    if entry is not None:
        info.extra["friendly_name"] = entry.name
    backbone.spec = spec
    return backbone


def list_layers(name, img_size: int | None = None, all_modules: bool = False) -> list[dict]:
    """The hookable layers of a backbone (a name or a :class:`BackboneSpec`): dicts with ``name``,
    ``channels``, ``stride``.

    timm: the model's ``feature_info`` (built on the meta device: no memory, no weights).
    Hook-based sources (torchvision, hf, open_clip): the default layers; ``all_modules=True`` lists
    every named non-leaf module with its output ``shape`` from one probe forward, any of which can
    be hooked. Listing needs no weights: the spec's weights choice is ignored.
    """
    spec = as_spec(name, **({"img_size": img_size} if img_size is not None else {}))
    spec = spec.replace(weights=None, pretrained=False, random_init=True)  # listing needs no weights
    source, target, entry = resolve(spec.name)
    if source == "timm":
        from factortopy.backbones.timm_backbone import create_timm_model, timm_layers

        size = spec.img_size if spec.img_size is not None else (entry.img_size if entry is not None else None)
        return timm_layers(create_timm_model(target, img_size=size, device="meta", **spec.model_args))
    backbone = load_backbone(spec)
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
