"""open_clip image towers through forward hooks (``open_clip:ARCH[:PRETRAINED]``; optional package).

Examples: ``open_clip:ViT-B-32:openai``, ``open_clip:ViT-L-14:laion2b_s32b_b82k``,
``open_clip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K``, or a local folder
``open_clip:local-dir:PATH`` holding ``open_clip_config.json`` (``{"model_cfg": ...}``; offline, and how
the tests build tiny random towers) and, for ``pretrained``, its weights file. Most hub models are
also in timm (see the friendly names); this one is for checkpoints only open_clip has.
"""
from __future__ import annotations

from factortopy.backbones.hook_backbone import HookBackbone
from factortopy.backbones.tokens import TokenLayout
from factortopy.backbones.weights import hub_load_error, load_weights_file

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _import():
    from factortopy._progress import quiet_tqdm_auto

    quiet_tqdm_auto()  # before a library that imports tqdm.auto (a warning in a kernel)
    try:
        import open_clip
    except ImportError:
        raise ImportError("open_clip backbones need the open_clip package: pip install open_clip_torch") from None
    return open_clip


#: open_clip's own name schemas: the whole name goes to open_clip, no pretrained tag
SCHEMAS = ("hf-hub:", "local-dir:")


def parse_name(spec: str) -> tuple[str, str | None]:
    """'ViT-B-32:openai' -> ('ViT-B-32', 'openai'); 'hf-hub:org/repo' -> ('hf-hub:org/repo', None);
    'local-dir:/path' -> ('local-dir:/path', None)."""
    if spec.startswith(SCHEMAS):
        return spec, None
    arch, _, tag = spec.partition(":")
    return arch, (tag or None)


def default_layers(visual) -> tuple[list[str], TokenLayout | str]:
    if hasattr(visual, "transformer"):  # VisionTransformer: residual blocks, class token first
        n = len(visual.transformer.resblocks)
        batch_first = getattr(visual.transformer, "batch_first", True)  # old open_clip: (N, B, C)
        return [f"transformer.resblocks.{i}" for i in range(n)], TokenLayout(1, 0, batch_first=batch_first)
    if all(hasattr(visual, f"layer{i}") for i in range(1, 5)):  # ModifiedResNet
        return [f"layer{i}" for i in range(1, 5)], "map"
    raise ValueError(f"no default layers for open_clip tower {type(visual).__name__}: pass layers=[...]")


def load_open_clip(spec: str, layers=None, weights: str | None = None, pretrained: bool = False,
                   img_size: int | None = None, token_layout=None, remap: str = "auto") -> HookBackbone:
    open_clip = _import()
    arch, tag = parse_name(spec)
    local = arch[len("local-dir:"):] if arch.startswith("local-dir:") else None
    try:
        # load_weights=False: a schema'd name (local-dir:, hf-hub:) loads its folder's weights by itself
        model = open_clip.create_model(arch, pretrained=tag if pretrained else None, load_weights=bool(pretrained))
    except Exception as err:
        if pretrained:
            raise hub_load_error(f"open_clip weights {spec!r}", err,
                                 fetch=f"import open_clip; open_clip.create_model('{arch}', pretrained='{tag}')") from None
        raise ValueError(f"open_clip could not create {arch!r}: {err}; see open_clip.list_models()") from None
    weights_id = f"hub:open_clip:{arch}:{tag}" if pretrained else None
    if pretrained and local is not None:
        from factortopy.backbones.hf_backbone import local_weights_id

        weights_id = local_weights_id(local)
    if weights is not None:
        weights_id = load_weights_file(model, weights, remap=remap)
    visual = model.visual.eval()
    default, layout = default_layers(visual)
    size = getattr(visual, "image_size", 224)
    size = size if isinstance(size, int) else tuple(size)
    if img_size is not None:
        size = img_size
    backbone = HookBackbone(
        visual, layers or default, input_size=size,
        mean=tuple(getattr(visual, "image_mean", None) or OPENAI_MEAN),
        std=tuple(getattr(visual, "image_std", None) or OPENAI_STD),
        token_layout=token_layout if token_layout is not None else layout,
        name=f"open_clip:{spec}", weights=weights_id,
    )
    backbone.info.extra["source"] = "open_clip"
    return backbone


def build_open_clip(target: str, spec) -> HookBackbone:
    """The open_clip source\'s builder (an entry point in ``factortopy.backbone_sources``)."""
    return load_open_clip(target, layers=list(spec.layers) if spec.layers else None, weights=spec.weights,
                    pretrained=spec.pretrained, img_size=spec.img_size, token_layout=spec.token_layout,
                    remap=spec.remap)


#: the optional spec fields this source honours (any other is refused before building)
build_open_clip.options = ("token_layout",)
