"""torchvision classification models through forward hooks (``torchvision:NAME``)."""
from __future__ import annotations

import difflib
import os

from factortopy.backbones.hook_backbone import IMAGENET_MEAN, IMAGENET_STD, HookBackbone
from factortopy.backbones.weights import WeightsNotAvailable, hub_offline, load_weights_file


def default_layers(model) -> tuple[list[str], object]:
    """(layer names, token layout) people usually read from a torchvision model."""
    kind = type(model).__name__
    if kind == "VisionTransformer":  # encoder layers output (B, 1 + h w, C), class token first
        return [f"encoder.layers.{n}" for n, _ in model.encoder.layers.named_children()], "cls"
    if all(hasattr(model, f"layer{i}") for i in range(1, 5)):  # ResNet / ResNeXt / Wide ResNet
        return ["relu", "layer1", "layer2", "layer3", "layer4"], "map"
    if kind == "SwinTransformer":  # stages output (B, h, w, C)
        return [f"features.{n}" for n, _ in model.features.named_children()], "map_nhwc"
    if hasattr(model, "features"):  # VGG, AlexNet, MobileNet, EfficientNet, ConvNeXt, DenseNet, ...
        return [f"features.{n}" for n, _ in model.features.named_children()], "map"
    raise ValueError(f"no default layers for torchvision model {kind}: pass layers=[...] "
                     "(see `factortopy layers torchvision:NAME`)")


def _weights_enum(name: str):
    import torchvision

    try:
        return torchvision.models.get_model_weights(name).DEFAULT
    except Exception as err:
        raise ValueError(f"torchvision has no pretrained weights for {name!r}: {err}") from None


def check_cached(weights_enum) -> None:
    """Fail fast offline instead of letting torch.hub try to download."""
    import torch

    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights_enum.url))
    if not os.path.isfile(path) and hub_offline():
        raise WeightsNotAvailable(
            f"torchvision weights {weights_enum} are not in the torch hub cache ({path}) and "
            "HF_HUB_OFFLINE is set; pass a local file with weights=PATH (--weights FILE) instead"
        )


def create_torchvision_model(name: str, pretrained: bool = False, img_size: int | None = None):
    import torchvision

    known = torchvision.models.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=8, cutoff=0.5)
        raise ValueError(f"unknown torchvision model {name!r}"
                         + (f"; similar: {', '.join(close)}" if close else "")
                         + " (see torchvision.models.list_models())")
    kwargs = {}
    weights = None
    if pretrained:
        weights = _weights_enum(name)
        check_cached(weights)
    if img_size is not None and name.startswith("vit_"):
        kwargs["image_size"] = img_size  # torchvision ViTs have a fixed position-embedding grid
    return torchvision.models.get_model(name, weights=weights, **kwargs).eval(), weights


def load_torchvision(name: str, layers=None, weights: str | None = None, pretrained: bool = False,
                     img_size: int | None = None, token_layout=None, remap: str = "auto") -> HookBackbone:
    """A :class:`HookBackbone` on torchvision model ``name`` (e.g. 'resnet50', 'vit_b_16')."""
    model, wenum = create_torchvision_model(name, pretrained=pretrained, img_size=img_size)
    try:
        default, layout = default_layers(model)
    except ValueError:
        if not layers:
            raise
        default, layout = None, None  # maps need no layout; sequences then need token_layout
    layers = layers or default
    token_layout = token_layout if token_layout is not None else layout
    weights_id = f"hub:torchvision:{name}.{wenum.name}" if wenum is not None else None
    if weights is not None:
        weights_id = load_weights_file(model, weights, remap=remap)
    mean, std, size = IMAGENET_MEAN, IMAGENET_STD, 224
    if wenum is None:
        wenum = _try_weights_enum(name)
    if wenum is not None:  # the normalisation and size torchvision's recipe uses
        t = wenum.transforms()
        mean, std = tuple(t.mean), tuple(t.std)
        size = t.crop_size[0] if isinstance(t.crop_size, (list, tuple)) else t.crop_size
    if img_size is not None:
        size = img_size
    if type(model).__name__ == "VisionTransformer":
        size = model.image_size
    backbone = HookBackbone(model, layers, input_size=size, mean=mean, std=std, token_layout=token_layout,
                            name=f"torchvision:{name}", weights=weights_id)
    backbone.info.extra["source"] = "torchvision"
    return backbone


def _try_weights_enum(name):
    try:
        return _weights_enum(name)
    except ValueError:
        return None


def build_torchvision(target: str, spec) -> HookBackbone:
    """The torchvision source\'s builder (an entry point in ``factortopy.backbone_sources``)."""
    return load_torchvision(target, layers=list(spec.layers) if spec.layers else None, weights=spec.weights,
                    pretrained=spec.pretrained, img_size=spec.img_size, token_layout=spec.token_layout,
                    remap=spec.remap)


#: the optional spec fields this source honours (any other is refused before building)
build_torchvision.options = ("token_layout",)
