"""Backbone adapters: registry, timm families, hook path, torchvision, errors, CLI.

Tiny random-init models at small input sizes keep this fast on 2 CPU cores.
"""
import os
import time

import pytest
import torch

from factortopy.backbones.timm_backbone import TimmBackbone
from factortopy.backbones import (HookBackbone, TokenLayout, list_layers, list_models, load_backbone,
                                  registry, resolve)

TINY_VIT = dict(depth=3, embed_dim=32, num_heads=2)


def _images(n=2, size=32, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _manual_vit_tokens(model, x):
    """Per block: the full token sequence (B, prefix + h w, C), through timm's own pieces."""
    t = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
    seqs = []
    for blk in model.blocks:
        t = blk(t)
        seqs.append(t)
    return seqs


# --- registry ------------------------------------------------------------------------------------

def test_every_friendly_name_maps_to_a_timm_model():
    import timm

    entries = registry.entries()
    assert len(entries) >= 30
    families = {e.family for e in entries}
    for fam in ("OpenAI CLIP", "LAION CLIP", "DataComp CLIP", "DINOv2", "DINOv2 + registers", "MAE",
                "SAM", "supervised ImageNet ViT", "supervised ImageNet ResNet",
                "supervised ImageNet ConvNeXt", "MoCo v3"):
        assert fam in families
    for e in entries:
        assert e.source == "timm"
        assert timm.is_model(e.target), e
        if not e.weights_required:
            assert "." in e.target, f"{e.name}: pin a pretrained tag"
            assert e.target in timm.list_pretrained(e.target), e
    openai = [e for e in entries if e.family == "OpenAI CLIP"]
    assert all("clip_quickgelu" in e.target and e.target.endswith(".openai") for e in openai)


def test_resolve_names_and_prefixes():
    assert resolve("clip-vit-b-16")[:2] == ("timm", "vit_base_patch16_clip_quickgelu_224.openai")
    assert resolve("CLIP_ViT_B_16")[1] == "vit_base_patch16_clip_quickgelu_224.openai"
    assert resolve("resnet50") == ("timm", "resnet50", None)
    assert resolve("timm:resnet50")[:2] == ("timm", "resnet50")
    assert resolve("torchvision:resnet50")[:2] == ("torchvision", "resnet50")
    assert resolve("hf:facebook/dinov2-base")[:2] == ("hf", "facebook/dinov2-base")
    assert resolve("open_clip:ViT-B-32:openai")[:2] == ("open_clip", "ViT-B-32:openai")
    with pytest.raises(ValueError, match="unknown backbone 'clip-vit-b-61'.*clip-vit-b-16"):
        resolve("clip-vit-b-61")
    rows = list_models("dinov2")
    assert {r["name"] for r in rows} >= {"dinov2-vit-b-14", "dinov2-reg-vit-b-14"}


def test_list_layers_friendly_names_without_building_weights():
    t = time.time()
    rows = list_layers("sam-vit-h")  # 632M parameters: listed on the meta device
    assert len(rows) == 32 and rows[0] == dict(name="blocks.0", channels=1280, stride=16)
    assert [r["name"] for r in list_layers("resnet-50")] == ["act1", "layer1", "layer2", "layer3", "layer4"]
    assert [r["stride"] for r in list_layers("resnet-50")] == [2, 4, 8, 16, 32]
    assert len(list_layers("dinov2-reg-vit-l-14")) == 24
    assert time.time() - t < 15


def test_moco_needs_a_weights_file():
    with pytest.raises(ValueError, match="--weights"):
        load_backbone("mocov3-vit-b")


def test_unknown_model_and_layer_errors():
    with pytest.raises(ValueError, match="unknown backbone"):
        load_backbone("no_such_net_xyz")
    with pytest.raises(ValueError, match="valid layers are: act1, layer1, layer2, layer3, layer4"):
        load_backbone("resnet18", random_init=True, layers=["layer9"], img_size=32)
    with pytest.raises(ValueError, match="unknown torchvision model"):
        load_backbone("torchvision:resnet_nope")


def test_pretrained_fails_fast_offline():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    for name in ("timm:resnet18.a1_in1k", "torchvision:resnet18"):
        t = time.time()
        try:
            load_backbone(name, pretrained=True, img_size=32)
        except RuntimeError as err:
            assert "weights" in str(err) and "--weights" in str(err)
        else:  # cached on this machine: fine, nothing to test
            continue
        assert time.time() - t < 10


# --- timm: ViT, DINOv2 with registers, SAM, CNN --------------------------------------------------

def test_timm_vit_class_token_and_grid_match_a_manual_forward():
    b = load_backbone("vit_tiny_patch16_224", random_init=True, img_size=32, **TINY_VIT)
    info = b.info
    assert info.layer_names == ["blocks.0", "blocks.1", "blocks.2"]
    assert info.channels == [32] * 3 and info.strides == [16] * 3 and info.input_size == (32, 32)
    assert info.global_kind == ["class_token"] * 3
    x = _images()
    local, glob = b(x)
    with torch.no_grad():
        seqs = _manual_vit_tokens(b.model, x)
    for l, g, s in zip(local, glob, seqs):
        assert l.shape == (2, 32, 2, 2) and g.shape == (2, 32)
        torch.testing.assert_close(g, s[:, 0])
        torch.testing.assert_close(l.flatten(2).transpose(1, 2), s[:, 1:])


def test_timm_layer_subset_keeps_the_requested_order():
    b = load_backbone("vit_tiny_patch16_224", random_init=True, layers="blocks.2,blocks.0", img_size=32, **TINY_VIT)
    full = TimmBackbone("vit_tiny_patch16_224", img_size=32, model=b.model)
    x = _images()
    (l2, l0), (g2, g0) = b(x)
    fl, fg = full(x)
    torch.testing.assert_close(l2, fl[2])
    torch.testing.assert_close(g0, fg[0])


def test_dinov2_registers_are_not_patches_and_class_token_is_prefix_0():
    b = load_backbone("dinov2-reg-vit-s-14", random_init=True, img_size=42, **TINY_VIT)  # patch 14: 3 x 3 grid
    m = b.model
    assert m.num_prefix_tokens == 5 and b.info.strides == [14] * 3
    assert b.info.global_kind == ["class_token"] * 3
    assert b.info.mean == (0.485, 0.456, 0.406)
    x = _images(size=42)
    local, glob = b(x)
    with torch.no_grad():
        seqs = _manual_vit_tokens(m, x)
    for l, g, s in zip(local, glob, seqs):
        assert l.shape == (2, 32, 3, 3)
        torch.testing.assert_close(g, s[:, 0])
        torch.testing.assert_close(l.flatten(2).transpose(1, 2), s[:, 5:])  # registers 1..4 dropped
    # the same through hooks with a 1 + 4 prefix layout
    h = HookBackbone(m, b.info.layer_names, 42, token_layout=TokenLayout(num_prefix=5, cls_index=0))
    hl, hg = h(x)
    for a, c in zip(local + glob, hl + hg):
        torch.testing.assert_close(a, c)


def test_dinov2_default_size_is_224_for_friendly_names():
    rows = list_layers("dinov2-vit-b-14")
    assert len(rows) == 12 and rows[0]["stride"] == 14
    import timm
    with torch.device("meta"):
        assert timm.create_model("vit_base_patch14_dinov2").patch_embed.img_size == (518, 518)


def test_sam_vit_has_no_class_token_global_is_the_map_mean():
    b = load_backbone("sam-vit-b", random_init=True, img_size=64, depth=2, embed_dim=32, num_heads=2, global_attn_indexes=(1,))
    assert b.info.global_kind == ["avg_pool", "avg_pool"]
    assert b.info.channels == [32, 32] and b.info.strides == [16, 16]
    x = _images(size=64)
    local, glob = b(x)
    assert local[0].shape == (2, 32, 4, 4)  # block outputs, before the neck
    for l, g in zip(local, glob):
        torch.testing.assert_close(g, l.mean(dim=(2, 3)))
    # SAM blocks output (B, h, w, C): the hook path reads them as channels-last maps
    h = HookBackbone(b.model, b.info.layer_names, 64, token_layout="map_nhwc")
    hl, hg = h(x)
    for a, c in zip(local + glob, hl + hg):
        torch.testing.assert_close(a, c)


def test_timm_cnn_and_hook_path_agree():
    b = load_backbone("resnet18", random_init=True, img_size=64)
    info = b.info
    assert info.layer_names == ["act1", "layer1", "layer2", "layer3", "layer4"]
    assert info.channels == [64, 64, 128, 256, 512] and info.strides == [2, 4, 8, 16, 32]
    assert info.global_kind == ["avg_pool"] * 5
    x = _images(size=64)
    local, glob = b(x)
    assert [tuple(l.shape[-2:]) for l in local] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    h = HookBackbone(b.model, info.layer_names, 64)
    assert h.info.channels == info.channels and h.info.strides == info.strides
    hl, hg = h(x)
    for a, c in zip(local + glob, hl + hg):
        torch.testing.assert_close(a, c)


def test_hook_on_timm_vit_agrees_with_forward_intermediates():
    b = load_backbone("vit_tiny_patch16_224", random_init=True, img_size=48, **TINY_VIT)
    h = HookBackbone(b.model, ["blocks.0", "blocks.1", "blocks.2"], 48, mean=b.info.mean, std=b.info.std,
                     token_layout="cls")
    assert h.info.channels == b.info.channels and h.info.strides == b.info.strides
    assert h.info.global_kind == b.info.global_kind
    x = _images(size=48)
    for a, c in zip(sum(b(x), []), sum(h(x), [])):
        torch.testing.assert_close(a, c)


def test_clip_and_mae_configs():
    b = load_backbone("clip-vit-b-16", random_init=True, img_size=32, **TINY_VIT)
    assert b.info.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert b.info.global_kind == ["class_token"] * 3
    assert b.info.extra["friendly_name"] == "clip-vit-b-16"
    b = load_backbone("mae-vit-b-16", random_init=True, img_size=32, **TINY_VIT)
    assert b.info.global_kind == ["class_token"] * 3


def test_preprocess_resizes_whole_image_and_normalises():
    b = load_backbone("resnet18", random_init=True, img_size=32)
    img = torch.full((1, 20, 50, 3), 255, dtype=torch.uint8)
    x = b.preprocess(img)
    assert x.shape == (1, 3, 32, 32)
    expect = (1 - torch.tensor(b.info.mean)) / torch.tensor(b.info.std)
    torch.testing.assert_close(x[0, :, 5, 5], expect)


# --- torchvision and any nn.Module through hooks -------------------------------------------------

def test_torchvision_vit_tokens_cls_first():
    import torchvision

    m = torchvision.models.VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=2,
                                             hidden_dim=32, mlp_dim=64).eval()
    layers = ["encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_1"]
    h = HookBackbone(m, layers, 32, token_layout="cls", name="tv-vit")
    assert h.info.channels == [32, 32] and h.info.strides == [16, 16]
    assert h.info.global_kind == ["class_token"] * 2
    x = _images()
    local, glob = h(x)
    with torch.no_grad():  # torchvision's own forward, step by step
        t = m._process_input(x)
        t = torch.cat([m.class_token.expand(2, -1, -1), t], dim=1) + m.encoder.pos_embedding
        for i, layer in enumerate(m.encoder.layers):
            t = layer(t)
            torch.testing.assert_close(glob[i], t[:, 0])
            torch.testing.assert_close(local[i].flatten(2).transpose(1, 2), t[:, 1:])


def test_torchvision_by_name_default_layers():
    b = load_backbone("torchvision:resnet18", random_init=True, img_size=64)
    assert b.info.layer_names == ["relu", "layer1", "layer2", "layer3", "layer4"]
    assert b.info.strides == [2, 4, 8, 16, 32]
    local, glob = b(_images(size=64))
    assert local[-1].shape == (2, 512, 2, 2) and glob[-1].shape == (2, 512)
    rows = list_layers("torchvision:resnet18", img_size=64, all_modules=True)
    names = {r["name"]: r for r in rows}
    assert names["layer3"]["default"] and names["layer3"]["channels"] == 256
    assert "layer2.0" in names and not names["layer2.0"]["default"]


def test_hook_backbone_sequence_first_layout_and_bad_layers():
    class SeqFirst(torch.nn.Module):  # emits (1 + h w, B, C), like nn.MultiheadAttention layers
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Conv2d(3, 8, 8, stride=8)
            self.cls = torch.nn.Parameter(torch.randn(1, 1, 8))
            self.block = torch.nn.Identity()

        def forward(self, x):
            t = self.proj(x).flatten(2).permute(2, 0, 1)  # (hw, B, C)
            t = torch.cat([self.cls.expand(1, x.shape[0], -1), t])
            return self.block(t)

    m = SeqFirst()
    h = HookBackbone(m, ["block"], 32, token_layout="cls_seq_first")
    (l,), (g,) = h(_images())
    assert l.shape == (2, 8, 4, 4)
    torch.testing.assert_close(g, m.cls[0, 0].expand(2, -1))
    torch.testing.assert_close(l, m.proj(_images()))
    with pytest.raises(ValueError, match="valid layers are: .*proj"):
        HookBackbone(m, ["nope"], 32)
    with pytest.raises(ValueError, match="cannot lay"):  # wrong prefix count
        HookBackbone(m, ["block"], 32, token_layout=TokenLayout(num_prefix=2))


# --- optional sources ----------------------------------------------------------------------------

TINY_HF = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def _hf_folder(tmp_path, config_class, **kw):
    """A local Hugging Face model folder holding only a tiny config (no weights, no hub)."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / config_class
    getattr(transformers, config_class)(**TINY_HF, **kw).save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("config_class, extra, layers, prefix", [
    ("Dinov2Config", dict(patch_size=14, image_size=28), ["encoder.layer.0", "encoder.layer.1"], 1),
    ("Dinov2WithRegistersConfig", dict(patch_size=14, image_size=28, num_register_tokens=4),
     ["encoder.layer.0", "encoder.layer.1"], 5),  # class token, then 4 registers, then patches
    ("ViTConfig", dict(patch_size=8, image_size=32), None, 1),
    ("CLIPVisionConfig", dict(patch_size=8, image_size=32), ["encoder.layers.0", "encoder.layers.1"], 1),
])
def test_hf_towers_from_configs_match_the_models_hidden_states(tmp_path, config_class, extra, layers, prefix):
    folder = _hf_folder(tmp_path, config_class, **extra)
    b = load_backbone(f"hf:{folder}", random_init=True)
    if layers is not None:
        assert b.info.layer_names == layers
    assert len(b.info.layer_names) == 2 and b.info.global_kind == ["class_token"] * 2
    assert b.info.extra["source"] == "hf" and b.info.input_size == (extra["image_size"],) * 2
    x = _images(size=extra["image_size"])
    local, glob = b(x)
    with torch.no_grad():
        hidden = b.model(pixel_values=x, output_hidden_states=True).hidden_states  # embeddings, block 1, 2
    side = extra["image_size"] // extra["patch_size"]
    for i, (l, g) in enumerate(zip(local, glob)):
        assert l.shape == (2, 32, side, side)
        torch.testing.assert_close(g, hidden[i + 1][:, 0])  # the class token is prefix position 0
        torch.testing.assert_close(l.flatten(2).transpose(1, 2), hidden[i + 1][:, prefix:])  # registers dropped


def test_hf_token_grid_follows_a_non_square_input(tmp_path):
    folder = _hf_folder(tmp_path, "Dinov2WithRegistersConfig", patch_size=14, image_size=28, num_register_tokens=2)
    b = load_backbone(f"hf:{folder}", random_init=True)
    x = torch.randn(2, 3, 28, 56, generator=torch.Generator().manual_seed(1))
    local, glob = b(x)  # 2 x 4 patches of 14 px: rows follow the height, columns the width
    with torch.no_grad():
        hidden = b.model(pixel_values=x, output_hidden_states=True).hidden_states
    for i, l in enumerate(local):
        assert l.shape == (2, 32, 2, 4)
        seq = hidden[i + 1][:, 3:]  # 1 class + 2 registers
        torch.testing.assert_close(l[:, :, 1, 2], seq[:, 1 * 4 + 2])  # row-major: token r * w + c


def test_hf_local_folder_with_weights_loads_them_and_records_their_digest(tmp_path):
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "vit"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = transformers.ViTModel(transformers.ViTConfig(**TINY_HF, patch_size=8, image_size=32))
    model.save_pretrained(folder)
    b = load_backbone(f"hf:{folder}")  # a name means its weights: here the folder's
    assert b.info.weights.startswith("local:model.safetensors:")
    x = _images(size=32)
    with torch.no_grad():
        expect = model.eval()(pixel_values=x, output_hidden_states=True).hidden_states[2][:, 0]
    torch.testing.assert_close(b(x)[1][1], expect)
    config_only = _hf_folder(tmp_path, "ViTConfig", patch_size=8, image_size=32)
    with pytest.raises(Exception, match="weights|--random-init"):
        load_backbone(f"hf:{config_only}")


def test_open_clip_tower_from_a_local_config(tmp_path):
    pytest.importorskip("open_clip")
    import json

    folder = tmp_path / "tiny_clip"
    folder.mkdir()
    cfg = {"model_cfg": {"embed_dim": 16,
                         "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
                         "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 16, "heads": 2, "layers": 1}}}
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    b = load_backbone(f"open_clip:local-dir:{folder}", random_init=True)
    assert b.info.layer_names == ["transformer.resblocks.0", "transformer.resblocks.1"]
    assert b.info.global_kind == ["class_token"] * 2 and b.info.input_size == (32, 32)
    assert b.info.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    v = b.model
    x = _images(size=32)
    local, glob = b(x)
    with torch.no_grad():  # open_clip's own pieces, step by step: class token first, then 4 x 4 patches
        t = v.conv1(x).flatten(2).transpose(1, 2)
        t = torch.cat([v.class_embedding.expand(2, 1, -1), t], dim=1) + v.positional_embedding
        t = v.ln_pre(v.patch_dropout(t))
        for i, block in enumerate(v.transformer.resblocks):
            t = block(t)
            torch.testing.assert_close(glob[i], t[:, 0])
            torch.testing.assert_close(local[i].flatten(2).transpose(1, 2), t[:, 1:])


# --- command line --------------------------------------------------------------------------------

def test_cli_layers(capsys):
    import argparse

    from factortopy.cli import layers

    p = argparse.ArgumentParser()
    layers.add_arguments(p)
    assert layers.run(p.parse_args(["resnet-18"])) == 0
    out = capsys.readouterr().out
    assert "resnet18.tv_in1k" in out and "layer4" in out and "512" in out and "32" in out
    assert layers.run(p.parse_args(["dinov2-vit-s-14", "--img-size", "98"])) == 0
    assert "blocks.11" in capsys.readouterr().out
    assert layers.run(p.parse_args(["--list", "sam"])) == 0
    assert "samvit_huge_patch16.sa1b" in capsys.readouterr().out
    assert isinstance(layers.HELP, str) and "\n" not in layers.HELP
