"""The backbone spec and identity: a backbone is rebuilt exactly, or the rebuild names what differs."""
import json

import numpy as np
import pytest
import torch

from factortopy.backbones import BackboneSpec, HookBackbone, load_backbone
from factortopy.backbones.spec import backbone_identity, check_identity, rebuild
from factortopy.backbones.timm_backbone import TimmBackbone

TINY_VIT = dict(depth=2, embed_dim=32, num_heads=2)


def _save_weights(backbone, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in backbone.model.state_dict().items()}, str(path))
    return str(path)


def test_friendly_name_with_weights_is_rebuilt_at_the_size_it_was_fitted(tmp_path):
    """Reproduction: `fit --backbone dinov2-vit-s-14 --weights W` extracted at 224 px and evaluation
    rebuilt the backbone at timm's 518 px, and the weights-only check passed."""
    src = load_backbone("dinov2-vit-s-14", random_init=True, **TINY_VIT)
    weights = _save_weights(src, tmp_path / "w.safetensors")
    fitted = load_backbone("dinov2-vit-s-14", weights=weights, **TINY_VIT)
    assert fitted.info.input_size == (224, 224)  # the registry entry's default, resolved at build time
    identity = json.loads(json.dumps(backbone_identity(fitted)))  # as config.json stores it
    rebuilt = rebuild(identity)
    again = backbone_identity(rebuilt)
    for key in identity:  # field by field, not only the weights
        assert again[key] == identity[key], key
    x = torch.rand(1, 3, 224, 224)
    for a, b in zip(fitted(x)[0], rebuilt(x)[0]):
        torch.testing.assert_close(a, b)


def test_a_recorded_field_that_differs_is_named(tmp_path):
    src = load_backbone("resnet18", random_init=True, img_size=32)
    identity = backbone_identity(src)
    for key, value in (("input_size", [518, 518]), ("mean", [0.5, 0.5, 0.5]), ("layer_names", ["layer1"])):
        tampered = {**identity, key: value}
        with pytest.raises(ValueError, match=key):
            check_identity(tampered, src)
    # friendly-name overrides of mean/std are kept in the spec and honoured by the rebuild
    custom = load_backbone("resnet-18", random_init=True, img_size=32, mean=0.5, std=0.25)
    assert custom.info.mean == (0.5, 0.5, 0.5) and custom.info.std == (0.25, 0.25, 0.25)
    assert rebuild(backbone_identity(custom)).info.mean == (0.5, 0.5, 0.5)


def test_a_timm_instance_built_by_hand_is_rebuilt_with_its_own_size_and_statistics():
    """Reproduction: an instance built at 32 px with mean 0.5 was rebuilt at 224 px with ImageNet stats."""
    hand = TimmBackbone("resnet18", img_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    rebuilt = rebuild(backbone_identity(hand))
    assert rebuilt.info.input_size == (32, 32) and rebuilt.info.mean == (0.5, 0.5, 0.5)
    assert backbone_identity(rebuilt)["weights"] == backbone_identity(hand)["weights"]  # same seeded init


def test_a_module_wrapped_by_hand_cannot_be_rebuilt_from_a_config():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.ReLU())
    hb = HookBackbone(net, ["0"], input_size=16)
    identity = backbone_identity(hb)
    assert identity["spec"] is None
    with pytest.raises(ValueError, match="built by hand"):
        rebuild(identity)
    assert check_identity(identity, hb)["name"] == "Sequential"  # the same object passes the check


def test_non_timm_sources_refuse_options_they_do_not_take():
    """load_backbone used to drop keyword arguments for non-timm sources without a word."""
    with pytest.raises(ValueError, match="does not take model_args"):
        load_backbone("torchvision:resnet18", random_init=True, depth=2)


def test_weights_must_be_chosen_and_random_init_is_said(tmp_path):
    with pytest.raises(ValueError, match="choose the weights"):
        BackboneSpec("resnet18", pretrained=False)
    with pytest.raises(ValueError, match="contradicts"):
        BackboneSpec("resnet18", random_init=True, pretrained=True)
    spec = BackboneSpec("resnet-18", random_init=True)
    assert spec.label == "resnet-18 (random init)" and BackboneSpec("resnet-18").pretrained is True
    # a random init is a function of the spec alone: the global RNG neither decides nor changes
    torch.manual_seed(1)
    state = torch.random.get_rng_state()
    a = load_backbone(spec.replace(img_size=32))
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(2)
    b = load_backbone(spec.replace(img_size=32))
    assert backbone_identity(a)["weights"] == backbone_identity(b)["weights"]
    c = load_backbone(spec.replace(img_size=32, seed=1))
    assert backbone_identity(a)["weights"] != backbone_identity(c)["weights"]


def test_weights_fingerprint_covers_the_whole_file(tmp_path):
    """Negating tensors in the middle of a weights file left the first-MiB fingerprint unchanged."""
    from safetensors.torch import load_file, save_file

    src = load_backbone("resnet18", random_init=True, img_size=32)
    path = _save_weights(src, tmp_path / "w.safetensors")
    before = backbone_identity(load_backbone("resnet18", weights=path, img_size=32))["weights"]
    state = load_file(path)
    keys = sorted(state, key=lambda k: -state[k].numel())
    middle = keys[len(keys) // 2]
    state[middle] = -state[middle]
    save_file(state, path)
    after = backbone_identity(load_backbone("resnet18", weights=path, img_size=32))["weights"]
    assert before != after


def test_spec_round_trips_through_json():
    spec = BackboneSpec("vit_tiny_patch16_224", layers="blocks.1,blocks.0", random_init=True, img_size=32,
                        mean=[0.5] * 3, model_args=TINY_VIT, token_layout={"num_prefix": 1, "cls_index": 0})
    assert BackboneSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.layers == ("blocks.1", "blocks.0")
    with pytest.raises(ValueError, match="unknown backbone spec field"):
        BackboneSpec.from_dict({"name": "resnet18", "colour": "red"})
    with pytest.raises(ValueError, match="names no layer"):
        BackboneSpec("resnet18", layers=",", random_init=True)
    assert np.isclose(spec.mean[0], 0.5)


def test_a_friendly_name_means_its_pretrained_weights_or_says_how_to_get_them():
    """`load_backbone("clip-vit-b-16")` used to build a random network that read as CLIP."""
    with pytest.raises(RuntimeError) as err:
        load_backbone("clip-vit-b-16")
    msg = str(err.value)
    assert "timm.create_model('vit_base_patch16_clip_quickgelu_224.openai', pretrained=True)" in msg
    assert "--weights FILE" in msg and "--random-init" in msg


def test_a_registered_source_that_builds_a_random_network_is_recorded_as_random_init(tmp_path, monkeypatch):
    """Reproduction (issue 20): a name means pretrained weights, so the spec of a registered source
    whose builder makes a random network said ``pretrained: true`` in every run config."""
    import sys
    import types

    from factortopy.backbones import SOURCES, _PREFIXES, register_source

    module = types.ModuleType("toy_source_for_test")

    def build(target, spec):
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.ReLU())  # random, under spec.seed
        return HookBackbone(net, ["0"], input_size=16, name=f"toy:{target}")

    module.build = build
    monkeypatch.setitem(sys.modules, "toy_source_for_test", module)
    monkeypatch.setattr("factortopy.backbones.SOURCES", dict(SOURCES))
    monkeypatch.setattr("factortopy.backbones._PREFIXES", dict(_PREFIXES))
    register_source("toy", "toy_source_for_test:build")
    backbone = load_backbone("toy:net")
    assert backbone.spec.pretrained  # what was asked: the name's default
    identity = backbone_identity(backbone)
    assert identity["spec"]["pretrained"] is False and identity["spec"]["random_init"] is True
    assert identity["label"] == "toy:net (random init)"
    again = rebuild(identity)  # the record rebuilds the same network
    assert backbone_identity(again)["weights"] == identity["weights"]
    # a hand-built module has no spec, so it claims nothing about its weights
    assert backbone_identity(HookBackbone(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), ["0"], input_size=16))["spec"] is None
