"""Any timm model through its uniform ``forward_intermediates`` / ``feature_info`` API."""
from __future__ import annotations

import contextlib
import inspect

import torch

from factortopy.backbones.base import Backbone, BackboneInfo, unknown_layer_error
from factortopy._progress import quiet_tqdm_auto
from factortopy.backbones.weights import hub_load_error, load_weights_file

quiet_tqdm_auto()  # timm imports huggingface_hub, which imports tqdm.auto (a warning in a kernel)


def check_timm_name(name: str) -> None:
    import timm

    if not timm.is_model(name):
        stem = name.split(".")[0].split("_")[0]
        close = timm.list_models(f"*{stem}*")[:20] if len(stem) > 2 else []
        raise ValueError(
            f"unknown timm model {name!r}"
            + (f"; similar names: {', '.join(close)}" if close else "")
            + " (see timm.list_models() for all names, or `factortopy layers --list` for friendly names)"
        )


def create_timm_model(name: str, pretrained: bool = False, img_size: int | None = None,
                      device=None, **model_kwargs):
    """timm.create_model with clear errors for unknown names and offline hubs.

    img_size: square input size for models that take one (ViTs rebuild their patch grid, and timm
    resamples pretrained position embeddings); CNNs take any size and ignore it.
    device: 'meta' builds the module without memory (layer listing only).
    """
    import timm

    check_timm_name(name)
    kwargs = dict(model_kwargs)
    if img_size is not None:
        kwargs["img_size"] = img_size
    try:
        with torch.device(device) if device is not None else contextlib.nullcontext():
            try:
                model = timm.create_model(name, pretrained=pretrained, **kwargs)
            except TypeError as err:
                if img_size is not None and "img_size" in str(err):
                    kwargs.pop("img_size")  # CNNs take any input size
                    model = timm.create_model(name, pretrained=pretrained, **kwargs)
                else:
                    raise
    except Exception as err:
        if pretrained:
            raise hub_load_error(f"pretrained weights for {name!r}", err,
                                 fetch=f"import timm; timm.create_model('{name}', pretrained=True)") from None
        raise
    return model.eval()


def timm_layers(model) -> list[dict]:
    """``feature_info`` of a timm model as dicts(name, channels, stride)."""
    return [dict(name=f["module"], channels=int(f["num_chs"]), stride=int(f["reduction"]))
            for f in model.feature_info]


def build_timm(target: str, spec) -> "TimmBackbone":
    """The timm source\'s builder (an entry point in ``factortopy.backbone_sources``)."""
    return TimmBackbone(target, layers=spec.layers, weights=spec.weights, pretrained=spec.pretrained,
                        img_size=spec.img_size, mean=spec.mean, std=spec.std, remap=spec.remap, seed=spec.seed,
                        **spec.model_args)


#: the optional spec fields this source honours (any other is refused before building)
build_timm.options = ("model_args",)


class TimmBackbone(Backbone):
    """Wrap a timm model. Layers are ``feature_info`` module names (resnet: act1, layer1..layer4;
    ViT: blocks.0..blocks.N); the default is all of them.

    ViTs: ``forward_intermediates(return_prefix_tokens=True)`` gives the patch grid (B, C, h, w)
    with the prefix tokens (B, P, C) split off; the class token is prefix[:, 0] (registers follow
    it and are dropped). Models without a class token (SAM, SigLIP) and CNNs: global = map mean.

    name: a timm name (``arch`` or ``arch.tag``). model: an already built timm model (then
    pretrained/img_size/model_kwargs are not used, and the backbone has no spec to rebuild it
    from). mean/std: override the timm config's. seed: the seed of a random init.
    model_kwargs: passed to timm.create_model (e.g. depth=2 for tests).
    """

    def __init__(self, name: str, layers: list[str] | None = None, weights: str | None = None,
                 pretrained: bool = False, img_size: int | None = None, mean=None, std=None,
                 model=None, remap: str = "auto", seed: int = 0, **model_kwargs):
        super().__init__()
        if model is None:
            from factortopy.backbones.spec import BackboneSpec

            # built from a name: the spec rebuilds exactly this (size, statistics, arguments included)
            self.spec = BackboneSpec(name=f"timm:{name}", layers=layers, weights=weights, pretrained=pretrained,
                                     random_init=not pretrained and weights is None, img_size=img_size, mean=mean,
                                     std=std, remap=remap, seed=seed, model_args=model_kwargs)
            with torch.random.fork_rng(devices=[]):  # a random init is drawn under the spec's seed
                torch.manual_seed(seed)
                model = create_timm_model(name, pretrained=pretrained, img_size=img_size, **model_kwargs)
        if not hasattr(model, "forward_intermediates"):
            raise ValueError(f"timm model {name!r} has no forward_intermediates(); wrap it with "
                             "HookBackbone(model, layers=[...]) instead")
        cfg = model.pretrained_cfg
        weights_id = None
        if pretrained:
            arch, tag = cfg.get("architecture", name.split(".")[0]), cfg.get("tag")
            weights_id = f"hub:{arch}.{tag}" if tag else f"hub:{arch}"
        if weights is not None:
            weights_id = load_weights_file(model, weights, remap=remap)
        available = [l["name"] for l in timm_layers(model)]
        layers = list(available) if not layers else list(layers)
        unknown = [l for l in layers if l not in available]
        if unknown:
            raise unknown_layer_error(unknown, available, name)
        if len(set(layers)) != len(layers):
            raise ValueError(f"duplicate layers in {layers}")
        self.indices = [available.index(l) for l in layers]
        # forward_intermediates returns maps in network order: ask in that order, then reorder
        self._sorted = sorted(self.indices)
        params = inspect.signature(model.forward_intermediates).parameters
        self._stop_early = "stop_early" in params  # skip blocks after the deepest requested one
        self.model = model.requires_grad_(False)
        input_size = tuple(cfg.get("input_size", (3, 224, 224))[1:])
        if img_size is not None:
            input_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        pe = getattr(model, "patch_embed", None)
        if pe is not None and getattr(pe, "strict_img_size", False) and getattr(pe, "img_size", None) \
                and tuple(pe.img_size) != tuple(input_size):
            raise ValueError(f"{name} was built for {tuple(pe.img_size)} px inputs, not {input_size}: "
                             f"build it with img_size={input_size[0]}")
        self.num_prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)
        self.is_vit = hasattr(model, "num_prefix_tokens")
        has_cls = self.is_vit and getattr(model, "cls_token", None) is not None and self.num_prefix > 0
        info = timm_layers(model)
        self.info = BackboneInfo(
            name=name,
            layer_names=layers,
            channels=[info[i]["channels"] for i in self.indices],
            strides=[info[i]["stride"] for i in self.indices],
            input_size=input_size,
            mean=tuple(float(m) for m in (mean or cfg.get("mean", (0.485, 0.456, 0.406)))),
            std=tuple(float(s) for s in (std or cfg.get("std", (0.229, 0.224, 0.225)))),
            global_kind=["class_token" if has_cls else "avg_pool"] * len(layers),
            weights=weights_id,
            extra=dict(source="timm", num_prefix_tokens=self.num_prefix,
                       architecture=cfg.get("architecture")),
        )

    @torch.no_grad()
    def forward(self, images: torch.Tensor):
        """Normalised images (B, 3, H, W) -> ([L maps (B, C_l, h_l, w_l)], [L tokens (B, C_l)])."""
        kwargs = dict(indices=self._sorted, intermediates_only=True, norm=False)
        if self._stop_early:
            kwargs["stop_early"] = True
        if self.is_vit and self.num_prefix > 0:
            kwargs["return_prefix_tokens"] = True
        outs = self.model.forward_intermediates(images, **kwargs)
        by_index = dict(zip(self._sorted, outs))
        outs = [by_index[i] for i in self.indices]
        local, global_ = [], []
        for out, kind in zip(outs, self.info.global_kind):
            grid, prefix = out if isinstance(out, tuple) else (out, None)
            local.append(grid)
            # Prefix order in timm: class token first, then register tokens (which are neither
            # patches nor the class token).
            global_.append(prefix[:, 0] if kind == "class_token" else grid.mean(dim=(2, 3)))
        return local, global_
