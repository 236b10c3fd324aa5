"""Friendly names for the backbone families people bring, mapped to timm ``arch.tag`` names.

The tag selects timm's pretrained config (mean/std, input size) and hub weights. Entries with
``weights_required`` have no hub weights in timm: the user passes a local checkpoint for the
matching timm architecture (e.g. MoCo v3). Add entries with :func:`register`.
"""
from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Entry:
    """A friendly name's target. source: 'timm' (others may be registered: 'torchvision', 'hf',
    'open_clip'). global_token: what the adapter's global token is, for the docs table."""

    name: str
    target: str
    family: str
    source: str = "timm"
    global_token: str = "class token"
    img_size: int | None = None  # default input size when it differs from the timm config's
    mean: tuple | None = None  # override timm's config (a checkpoint trained with other stats)
    std: tuple | None = None
    weights_required: str | None = None  # message: where to get the checkpoint
    #: pretraining data size: distinct training images (image-text pairs for CLIP-style models) of
    #: the weights the name selects, as the dataset's paper or card states it (the source is in a
    #: comment at each entry); None = not stated anywhere we could read (never an estimate)
    pretraining_images: int | None = None


_REGISTRY: dict[str, Entry] = {}


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register(name: str, target: str, family: str, **kwargs) -> Entry:
    entry = Entry(name=name, target=target, family=family, **kwargs)
    _REGISTRY[_key(name)] = entry
    return entry


def get(name: str) -> Entry | None:
    """The entry for a friendly name (case-insensitive; '_' and '-' are the same), or None."""
    return _REGISTRY.get(_key(name))


def entries() -> list[Entry]:
    return list(_REGISTRY.values())


def names() -> list[str]:
    return [e.name for e in _REGISTRY.values()]


def _sizes(family, pattern, sizes, **kwargs):
    for size, target in sizes:
        register(pattern.format(size), target, family, **kwargs)


#: ImageNet-1k's training set (ILSVRC-2012: 1,281,167 images; Russakovsky et al. 2015, IJCV, Table 2)
IMAGENET_1K_IMAGES = 1_281_167

# --- CLIP (OpenAI weights need QuickGELU: the *_clip_quickgelu_* variants) -----------------------
# WIT: 400 million (image, text) pairs (Radford et al. 2021, "Learning Transferable Visual Models
# From Natural Language Supervision", section 2.2)
_sizes("OpenAI CLIP", "clip-vit-{}", [
    ("b-32", "vit_base_patch32_clip_quickgelu_224.openai"),
    ("b-16", "vit_base_patch16_clip_quickgelu_224.openai"),
    ("l-14", "vit_large_patch14_clip_quickgelu_224.openai"),
    ("l-14-336", "vit_large_patch14_clip_quickgelu_336.openai"),
], pretraining_images=400_000_000)
# LAION-2B-en, the English part of LAION-5B: 2.32 billion pairs (Schuhmann et al. 2022, LAION-5B;
# the timm laion2b tags are OpenCLIP's laion2b_s3*b_b*k weights)
_sizes("LAION CLIP", "laion-clip-vit-{}", [
    ("b-32", "vit_base_patch32_clip_224.laion2b"),
    ("b-16", "vit_base_patch16_clip_224.laion2b"),
    ("l-14", "vit_large_patch14_clip_224.laion2b"),
    ("h-14", "vit_huge_patch14_clip_224.laion2b"),
], pretraining_images=2_320_000_000)
# LAION-400M: 400 million pairs (Schuhmann et al. 2021, "LAION-400M: Open Dataset of CLIP-Filtered
# 400 Million Image-Text Pairs")
_sizes("LAION-400M CLIP", "laion400m-clip-vit-{}", [
    ("b-32", "vit_base_patch32_clip_224.laion400m_e32"),
    ("b-16", "vit_base_patch16_clip_224.laion400m_e32"),
    ("l-14", "vit_large_patch14_clip_224.laion400m_e32"),
], pretraining_images=400_000_000)
# DataComp-1B: 1.4 billion pairs (Gadre et al. 2023, "DataComp"; timm's datacompxl tags are
# OpenCLIP's datacomp_xl_s13b_b90k weights, trained on DataComp-1B)
_sizes("DataComp CLIP", "datacomp-clip-vit-{}", [
    ("b-32", "vit_base_patch32_clip_224.datacompxl"),
    ("b-16", "vit_base_patch16_clip_224.datacompxl"),
    ("l-14", "vit_large_patch14_clip_224.datacompxl"),
], pretraining_images=1_400_000_000)
# --- DINOv2 (patch 14; timm defaults to 518 px, we default to 224 px = a 16 x 16 grid) -----------
# LVD-142M: 142 million images (Oquab et al. 2023, "DINOv2", section 3)
_sizes("DINOv2", "dinov2-vit-{}-14", [
    ("s", "vit_small_patch14_dinov2.lvd142m"),
    ("b", "vit_base_patch14_dinov2.lvd142m"),
    ("l", "vit_large_patch14_dinov2.lvd142m"),
    ("g", "vit_giant_patch14_dinov2.lvd142m"),
], img_size=224, pretraining_images=142_000_000)
_sizes("DINOv2 + registers", "dinov2-reg-vit-{}-14", [
    ("s", "vit_small_patch14_reg4_dinov2.lvd142m"),
    ("b", "vit_base_patch14_reg4_dinov2.lvd142m"),
    ("l", "vit_large_patch14_reg4_dinov2.lvd142m"),
    ("g", "vit_giant_patch14_reg4_dinov2.lvd142m"),
], img_size=224, global_token="class token (prefix[:, 0]; the 4 registers are dropped)",
    pretraining_images=142_000_000)  # LVD-142M too (Darcet et al. 2024, "Vision Transformers Need Registers")
# --- DINO (v1) -----------------------------------------------------------------------------------
# ImageNet-1k training images, labels unused (Caron et al. 2021, "Emerging Properties in
# Self-Supervised Vision Transformers")
_sizes("DINO", "dino-vit-{}", [
    ("s-16", "vit_small_patch16_224.dino"),
    ("b-16", "vit_base_patch16_224.dino"),
    ("b-8", "vit_base_patch8_224.dino"),
], pretraining_images=IMAGENET_1K_IMAGES)
# --- MAE -----------------------------------------------------------------------------------------
# ImageNet-1k training images (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners")
_sizes("MAE", "mae-vit-{}", [
    ("b-16", "vit_base_patch16_224.mae"),
    ("l-16", "vit_large_patch16_224.mae"),
    ("h-14", "vit_huge_patch14_224.mae"),
], pretraining_images=IMAGENET_1K_IMAGES)
# --- SAM image encoders (no class token; 1024 px by default) -------------------------------------
# SA-1B: 11 million images (Kirillov et al. 2023, "Segment Anything", section 5); the image encoder
# starts from an MAE ImageNet-1k checkpoint, not counted here
_sizes("SAM", "sam-vit-{}", [
    ("b", "samvit_base_patch16.sa1b"),
    ("l", "samvit_large_patch16.sa1b"),
    ("h", "samvit_huge_patch16.sa1b"),
], global_token="average of the patch map (no class token)", pretraining_images=11_000_000)
# --- SigLIP (no class token: attention-pool head, not used) --------------------------------------
# the English image-text pairs of WebLI (Zhai et al. 2023; the model card): how many is not stated
_sizes("SigLIP", "siglip-vit-{}", [
    ("b-16", "vit_base_patch16_siglip_224.webli"),
], global_token="average of the patch map (no class token)", pretraining_images=None)
# --- supervised ImageNet -------------------------------------------------------------------------
# augreg: ImageNet-21k, 14 million images, then fine-tuned on ImageNet-1k, a subset of it (Steiner
# et al. 2022, "How to train your ViT?", section 3)
_sizes("supervised ImageNet ViT", "vit-{}", [
    ("s-16", "vit_small_patch16_224.augreg_in21k_ft_in1k"),
    ("b-16", "vit_base_patch16_224.augreg2_in21k_ft_in1k"),
    ("b-32", "vit_base_patch32_224.augreg_in21k_ft_in1k"),
    ("l-16", "vit_large_patch16_224.augreg_in21k_ft_in1k"),
], pretraining_images=14_000_000)
# tv_in1k / fb_in1k: ImageNet-1k training images (torchvision's and the ConvNeXt paper's recipes)
_sizes("supervised ImageNet ResNet", "resnet-{}", [
    ("18", "resnet18.tv_in1k"),
    ("34", "resnet34.tv_in1k"),
    ("50", "resnet50.tv_in1k"),
    ("101", "resnet101.tv_in1k"),
], global_token="average of the feature map", pretraining_images=IMAGENET_1K_IMAGES)
_sizes("supervised ImageNet ConvNeXt", "convnext-{}", [
    ("t", "convnext_tiny.fb_in1k"),
    ("s", "convnext_small.fb_in1k"),
    ("b", "convnext_base.fb_in1k"),
    ("l", "convnext_large.fb_in1k"),
], global_token="average of the feature map", pretraining_images=IMAGENET_1K_IMAGES)
# --- checkpoints timm does not host: bring a local file on the matching architecture -------------
# MoCo v3's released checkpoints: ImageNet-1k training images (Chen, Xie & He 2021, "An Empirical
# Study of Training Self-Supervised Vision Transformers"); another checkpoint: say so in the study
_MOCO = ("MoCo v3 weights are not on the timm hub: download the checkpoint from "
         "https://github.com/facebookresearch/moco-v3 (CONFIG.md) and pass weights=PATH / --weights FILE")
_sizes("MoCo v3", "mocov3-{}", [
    ("vit-s", "vit_small_patch16_224"),
    ("vit-b", "vit_base_patch16_224"),
], weights_required=_MOCO, mean=IMAGENET_MEAN, std=IMAGENET_STD, pretraining_images=IMAGENET_1K_IMAGES)
register("mocov3-resnet50", "resnet50", "MoCo v3", weights_required=_MOCO, mean=IMAGENET_MEAN,
         std=IMAGENET_STD, global_token="average of the feature map", pretraining_images=IMAGENET_1K_IMAGES)
