"""What a backbone IS: the spec it is built from, and the identity a run records.

:class:`BackboneSpec` holds every choice needed to build the same backbone again (source and
model name, layers, weights file, pretrained, input size, mean/std, token layout, extra model
arguments, the seed of a random init). Every Backbone made by
:func:`factortopy.backbones.load_backbone` carries its spec (``backbone.spec``).

:func:`backbone_identity` is the spec plus what building it resolved (input size, mean, std,
layer names, channels, global tokens, a fingerprint of the weights). It is what a run records in
config.json, what the feature cache is keyed on, and what :func:`rebuild` compares in full, so a
backbone rebuilt for evaluation can never differ silently from the one a run was fitted with.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import asdict, dataclass, field, fields

#: the largest input size accepted (pixels per side): the tokens are resized to an 8 x 8 grid anyway,
#: the usual pretrained backbones take 224 to 518 px, and one 2048 x 2048 image already takes
#: gigabytes of activations in a ViT (16,384 patch tokens); beyond it a fit only runs out of memory
MAX_IMG_SIZE = 2048
_EXAMPLE = {"mean": "0.485,0.456,0.406", "std": "0.229,0.224,0.225"}

#: the spec fields a user sets; everything else in an identity is resolved by building
_JSON_SCALARS = (str, int, float, bool, type(None))


def _jsonable(value, what: str):
    """A JSON-serialisable copy of ``value`` (tuples become lists), or a clear error."""
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, what) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, what) for k, v in value.items()}
    raise TypeError(f"{what} must be made of numbers, strings, lists and dicts (it is saved with the run), "
                    f"not {type(value).__name__}")


def _layout_to_json(layout):
    """A token layout as JSON: None, a LAYOUTS name, an int, a field dict, or {layer: layout}."""
    from factortopy.backbones.tokens import TokenLayout

    if isinstance(layout, TokenLayout):
        return _jsonable(asdict(layout), "token_layout")
    if isinstance(layout, dict) and layout and all(isinstance(v, (TokenLayout, str, int, dict, type(None)))
                                                   for v in layout.values()) \
            and not set(layout) <= {f.name for f in fields(TokenLayout)}:
        return {k: _layout_to_json(v) for k, v in layout.items()}  # per layer
    return _jsonable(layout, "token_layout")


@dataclass(frozen=True)
class BackboneSpec:
    """Everything needed to build the same backbone again.

    name: a friendly name (``clip-vit-b-16``), a timm name (``resnet50``, ``vit_base_patch16_224.mae``)
      or a prefixed name (``timm:NAME``, ``torchvision:NAME``, ``hf:ORG/NAME``, ``open_clip:ARCH[:TAG]``).
    layers: hooked layer names in order (None: the source's default set).
    weights: a local weights file (.safetensors or a torch state dict); stored as an absolute path.
    pretrained: the hub weights of the name's pretrained tag (from the hub cache offline). None (the
      default) means True unless ``weights`` or ``random_init`` is given: a name means its trained
      weights, never silently a random network.
    random_init: random weights, drawn under ``seed`` (only when asked for, and then every title,
      legend and config says "random init").
    img_size: square input size in pixels (None: the source's / registry entry's default).
    mean, std: per-RGB-channel normalisation overrides for [0, 1] images.
    token_layout: how hooked token sequences are read (hook-based sources; see backbones.tokens).
    remap: how a weights file's keys are matched ('auto', 'position', 'none').
    model_args: extra keyword arguments for the model constructor (timm only, e.g. depth=2).
    """

    name: str
    layers: tuple | None = None
    weights: str | None = None
    pretrained: bool | None = None
    random_init: bool = False
    seed: int = 0
    img_size: int | None = None
    mean: tuple | None = None
    std: tuple | None = None
    token_layout: object = None
    remap: str = "auto"
    model_args: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"a backbone name must be a non-empty string, not {self.name!r}")
        layers = self.layers
        if isinstance(layers, str):
            layers = [l.strip() for l in layers.split(",")]
            if not any(layers):
                raise ValueError(f"layers {self.layers!r} names no layer; give comma-separated names "
                                 "(see `factortopy layers NAME`)")
            layers = [l for l in layers if l]
        if layers is not None:
            layers = tuple(str(l) for l in layers)
            if not layers:
                raise ValueError("layers is empty: leave it out for the default set, or name layers")
            if len(set(layers)) != len(layers):
                raise ValueError(f"duplicate layers in {list(layers)}")
        object.__setattr__(self, "layers", layers)
        if self.weights is not None:
            object.__setattr__(self, "weights", os.path.abspath(os.fspath(self.weights)))
        for key in ("mean", "std"):
            value = getattr(self, key)
            if value is not None:
                try:
                    value = tuple(float(v) for v in (value if isinstance(value, (list, tuple)) else [value] * 3))
                except (TypeError, ValueError):
                    raise ValueError(f"{key} (--{key}) needs three numbers, one per RGB channel, e.g. "
                                     f"{_EXAMPLE[key]}; got {getattr(self, key)!r}") from None
                if len(value) != 3:
                    raise ValueError(f"{key} (--{key}) needs one value per RGB channel (3), got {len(value)}")
                # the pixels are (x - mean) / std: a non-finite value or a std of 0 makes every token NaN/inf
                if not all(math.isfinite(v) for v in value) or (key == "std" and min(value) <= 0):
                    raise ValueError(f"{key} (--{key}) must be finite numbers{' > 0' if key == 'std' else ''}, "
                                     f"one per RGB channel (e.g. {_EXAMPLE[key]}); got {list(value)}")
                object.__setattr__(self, key, value)
        if self.img_size is not None:
            if isinstance(self.img_size, bool) or not isinstance(self.img_size, (int, float)) or \
                    int(self.img_size) != self.img_size or not 1 <= int(self.img_size) <= MAX_IMG_SIZE:
                raise ValueError(f"img_size (--img-size) must be a whole number of pixels from 1 to {MAX_IMG_SIZE}, "
                                 f"got {self.img_size!r}")
            object.__setattr__(self, "img_size", int(self.img_size))
        if self.remap not in ("auto", "position", "none"):
            raise ValueError(f"remap must be 'auto', 'position' or 'none', not {self.remap!r}")
        object.__setattr__(self, "token_layout", _layout_to_json(self.token_layout))
        object.__setattr__(self, "model_args", _jsonable(dict(self.model_args or {}), "model_args"))
        if self.random_init and (self.pretrained or self.weights is not None):
            raise ValueError("random_init=True contradicts pretrained / weights: choose one")
        if self.pretrained and self.weights is not None:
            raise ValueError("give either pretrained=True (hub weights) or weights=FILE, not both")
        if self.pretrained is None:
            object.__setattr__(self, "pretrained", self.weights is None and not self.random_init)
        if not (self.pretrained or self.random_init or self.weights is not None):
            raise ValueError(f"{self.name}: pretrained=False with no weights file: choose the weights: "
                             "weights=FILE (--weights FILE), pretrained=True (--pretrained), or "
                             "random_init=True (--random-init) for a random network")

    # ---- weights choice --------------------------------------------------------------------------
    @property
    def weights_label(self) -> str:
        """How the weights were chosen, for titles and summaries: 'random init', 'pretrained',
        or the weights file's name."""
        if self.weights is not None:
            return os.path.basename(self.weights)
        if self.pretrained:
            return "pretrained"
        return "random init"

    @property
    def label(self) -> str:
        """``name`` with ``(random init)`` when it is one: a title never reads as trained weights."""
        return f"{self.name} (random init)" if self.random_init else self.name

    # ---- JSON -----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["layers"] = list(self.layers) if self.layers is not None else None
        for key in ("mean", "std"):
            out[key] = list(out[key]) if out[key] is not None else None
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "BackboneSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown backbone spec field(s) {unknown}; known: {', '.join(sorted(known))}")
        return cls(**d)

    def replace(self, **changes) -> "BackboneSpec":
        return BackboneSpec.from_dict({**self.to_dict(), **changes})

    def build(self):
        """The Backbone this spec describes (see :func:`factortopy.backbones.load_backbone`)."""
        from factortopy.backbones import load_backbone

        return load_backbone(self)


def as_spec(backbone, **kwargs) -> BackboneSpec:
    """A BackboneSpec from a spec, a dict (a spec's fields) or a name plus keyword fields."""
    if isinstance(backbone, BackboneSpec):
        return backbone.replace(**kwargs) if kwargs else backbone
    if isinstance(backbone, dict):
        return BackboneSpec.from_dict({**backbone, **kwargs})
    if isinstance(backbone, str):
        known = {f.name for f in fields(BackboneSpec)}
        model_args = {k: kwargs.pop(k) for k in list(kwargs) if k not in known}
        if model_args:
            kwargs["model_args"] = {**kwargs.get("model_args", {}), **model_args}
        return BackboneSpec(name=backbone, **kwargs)
    raise TypeError(f"a backbone is a name, a BackboneSpec or a dict of its fields, not {type(backbone).__name__}")


# ---- identity -------------------------------------------------------------------------------------
def weights_fingerprint(backbone) -> str:
    """The backbone's weights identity: the identity its adapter recorded (a whole-file digest of a
    weights file, a hub tag) or, without one (random init, a user's module), a digest of every
    parameter and buffer, so two different random inits never pass for each other."""
    if backbone.info.weights:
        return str(backbone.info.weights)
    import torch

    h = hashlib.sha256()
    for name, t in backbone.state_dict().items():
        h.update(name.encode())
        if t.numel():
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return "params:" + h.hexdigest()[:16]


def built_spec(backbone) -> "BackboneSpec | None":
    """The spec as built: the backbone's ``spec`` (None for a user's own instance), with its
    weights choice corrected to what building did. A spec that asked for pretrained weights (the
    default for a name) whose adapter recorded none (``info.weights`` empty: no hub weights, no
    file; e.g. a registered source whose builder makes a random network) is recorded as the random
    init it is, so no run, title or summary calls a random network pretrained. Rebuilding it draws
    the same weights (the builder runs under the spec's seed)."""
    spec = getattr(backbone, "spec", None)
    if spec is not None and spec.pretrained and not backbone.info.weights:
        spec = spec.replace(pretrained=False, random_init=True)
    return spec


def backbone_identity(backbone) -> dict:
    """The spec the backbone was built from (:func:`built_spec`; None for a user's own instance) and
    everything building it resolved. JSON-serialisable; compared field by field by :func:`check_identity`."""
    info = backbone.info
    spec = built_spec(backbone)
    plugin = info.extra.get("distribution")  # a plug-in source's distribution (absent for factortopy's own)
    return dict(
        **({"distribution": dict(plugin)} if plugin else {}),
        spec=spec.to_dict() if spec is not None else None,
        label=spec.label if spec is not None else info.name,
        name=info.name,
        source=info.extra.get("source"),
        layer_names=[str(l) for l in info.layer_names],
        channels=[int(c) for c in info.channels],
        global_kind=[str(g) for g in info.global_kind],
        input_size=[int(s) for s in info.input_size],
        mean=[float(m) for m in info.mean],
        std=[float(s) for s in info.std],
        weights=weights_fingerprint(backbone),
    )


#: identity fields that decide the features (``label`` and the spec's own wording do not)
RESOLVED_FIELDS = ("name", "source", "layer_names", "channels", "global_kind", "input_size", "mean", "std",
                   "weights")


def identity_differences(recorded: dict, found: dict, fields_=RESOLVED_FIELDS) -> list[str]:
    """'field: recorded X, found Y' for every resolved field that differs."""
    out = []
    for key in fields_:
        a, b = recorded.get(key), found.get(key)
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            same = len(a) == len(b) and all(
                abs(x - y) <= 1e-9 * max(1.0, abs(x)) if isinstance(x, float) or isinstance(y, float) else x == y
                for x, y in zip(a, b))
        else:
            same = a == b
        if not same:
            out.append(f"{key}: recorded {a!r}, found {b!r}")
    return out


def check_identity(recorded: dict, backbone, what: str = "the run") -> dict:
    """Raise unless ``backbone`` is the one ``recorded`` describes; returns its identity."""
    found = backbone_identity(backbone)
    diffs = identity_differences(recorded, found)
    if diffs:
        raise ValueError(f"the backbone is not the one {what} was fitted with: " + "; ".join(diffs)
                         + ". Pass the original backbone (or its weights file), or refit.")
    return found


def rebuild(identity: dict, what: str = "the run", **spec_changes):
    """Build the backbone an identity records from its spec, and check it is the same in full.

    spec_changes: fields to change before building (e.g. ``weights=NEW_PATH`` for a weights file
    that moved); the rebuilt backbone must still match every recorded field.
    """
    spec = identity.get("spec")
    if spec is None:
        raise ValueError(f"{what} was fitted with a backbone instance built by hand ({identity.get('name')}), "
                         "which cannot be rebuilt from its config: pass the same backbone object "
                         "(backbone=...) to evaluate or predict")
    source = identity.get("source")
    if source:
        from factortopy.backbones import sources

        if source not in sources():
            from factortopy._plugins import missing_message

            raise ValueError(f"{what} was fitted with the backbone {identity.get('label') or spec.get('name')!r}: "
                             + missing_message("backbone source", source, identity.get("distribution"))
                             + ("" if identity.get("distribution") else
                                "; a source registered with register_source lives only in the process that "
                                "registered it: register it again, or install it as a plug-in package"))
    backbone = as_spec(spec, **spec_changes).build()
    check_identity(identity, backbone, what)
    return backbone
