"""Hugging Face transformers vision models through forward hooks (``hf:ORG/NAME``; optional package).

Examples: ``hf:facebook/dinov2-base``, ``hf:openai/clip-vit-base-patch16`` (its vision tower),
``hf:google/vit-base-patch16-224``, or a local folder ``hf:PATH`` holding ``config.json`` (offline: a
config saved with ``transformers.Dinov2Config(...).save_pretrained(PATH)`` builds a random tower, as
the tests do; with ``pretrained`` the folder's weights load too). Encoder layers output
(B, prefix + h w, C) as the first element of a tuple; the prefix is the class token (if the model
has one) followed by register tokens.
"""
from __future__ import annotations

import inspect
import os

from factortopy.backbones.hook_backbone import IMAGENET_MEAN, IMAGENET_STD, HookBackbone
from factortopy.backbones.tokens import TokenLayout
from factortopy.backbones.weights import hub_load_error, load_weights_file


def _import():
    from factortopy._progress import quiet_tqdm_auto

    quiet_tqdm_auto()  # before a library that imports tqdm.auto (a warning in a kernel)
    try:
        import transformers
    except ImportError:
        raise ImportError("hf: backbones need the transformers package: pip install transformers") from None
    return transformers


def local_weights_id(folder: str) -> str:
    """The weights identity of a local model folder: a whole-file digest of each weights file in it
    (a folder's name says nothing about its content)."""
    from factortopy._digest import file_digest

    files = sorted(f for f in os.listdir(folder) if f.endswith((".safetensors", ".bin", ".pt", ".pth")))
    if not files:
        raise FileNotFoundError(f"{folder} holds no weights file (.safetensors/.bin/.pt/.pth): pass "
                                "random_init=True (--random-init) for a random network, or add the weights")
    return "local:" + ",".join(f"{f}:{file_digest(os.path.join(folder, f))}" for f in files)


def vision_tower(model):
    """The image encoder of a model (CLIP-like dual encoders keep it in ``vision_model``)."""
    return getattr(model, "vision_model", model)


def encoder_layers(tower) -> list[str]:
    names = dict(tower.named_modules())
    for path in ("encoder.layer", "encoder.layers", "encoder.blocks", "blocks", "layers"):  # "layers": transformers 5 ViT
        if path in names:
            return [f"{path}.{n}" for n, _ in names[path].named_children()]
    raise ValueError(f"cannot find the encoder blocks of {type(tower).__name__}: pass layers=[...] "
                     "(see `factortopy layers hf:NAME`)")


def token_layout_for(tower, config) -> TokenLayout:
    emb = getattr(tower, "embeddings", None)
    has_cls = emb is not None and (hasattr(emb, "cls_token") or hasattr(emb, "class_embedding"))
    n_reg = int(getattr(config, "num_register_tokens", 0) or 0)
    return TokenLayout(num_prefix=int(has_cls) + n_reg, cls_index=0 if has_cls else None)


def load_hf(name: str, layers=None, weights: str | None = None, pretrained: bool = False,
            img_size: int | None = None, token_layout=None, remap: str = "auto") -> HookBackbone:
    transformers = _import()
    try:
        if pretrained:
            model = transformers.AutoModel.from_pretrained(name)
        else:
            model = transformers.AutoModel.from_config(transformers.AutoConfig.from_pretrained(name))
    except Exception as err:
        raise hub_load_error(f"Hugging Face model {name!r}", err,
                             fetch=f"import transformers; transformers.AutoModel.from_pretrained('{name}')") from None
    weights_id = f"hub:hf:{name}@{getattr(model.config, '_commit_hash', None)}" if pretrained else None
    if pretrained and os.path.isdir(name):  # a local folder: its files' content, not its name
        weights_id = local_weights_id(name)
    if weights is not None:
        weights_id = load_weights_file(model, weights, remap=remap)
    tower = vision_tower(model).eval()
    config = getattr(tower, "config", model.config)
    config = getattr(config, "vision_config", config)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    try:
        proc = transformers.AutoImageProcessor.from_pretrained(name)
        mean, std = tuple(proc.image_mean), tuple(proc.image_std)
    except Exception:  # no processor config: ImageNet statistics
        pass
    size = img_size or getattr(config, "image_size", 224)
    kwargs = {}
    if "interpolate_pos_encoding" in inspect.signature(tower.forward).parameters:
        kwargs["interpolate_pos_encoding"] = True  # any input size

    def forward_fn(m, x):
        return m(pixel_values=x, **kwargs)

    backbone = HookBackbone(
        tower, layers or encoder_layers(tower), input_size=size, mean=mean, std=std,
        token_layout=token_layout if token_layout is not None else token_layout_for(tower, config),
        name=f"hf:{name}", weights=weights_id, forward_fn=forward_fn,
    )
    backbone.info.extra["source"] = "hf"
    return backbone


def build_hf(target: str, spec) -> HookBackbone:
    """The hf source\'s builder (an entry point in ``factortopy.backbone_sources``)."""
    return load_hf(target, layers=list(spec.layers) if spec.layers else None, weights=spec.weights,
                    pretrained=spec.pretrained, img_size=spec.img_size, token_layout=spec.token_layout,
                    remap=spec.remap)


#: the optional spec fields this source honours (any other is refused before building)
build_hf.options = ("token_layout",)
