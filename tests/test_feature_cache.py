"""The on-disk feature cache: reuse, invalidation, interrupted writes."""
import numpy as np
import pytest
import torch

from factortopy.backbones.timm_backbone import TimmBackbone
from factortopy.backbones import load_backbone
from factortopy.features.cache import cache_key, cache_path, load_or_extract, read_cache
from factortopy.features.extract import extract_features

TINY_VIT = dict(depth=2, embed_dim=32, num_heads=2)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(10)]


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return load_backbone("vit_tiny_patch16_224", random_init=True, img_size=32, **TINY_VIT)


class CountCalls:
    """Counts forward calls of a backbone (a forward hook on the module); ``fail_at`` raises there."""

    def __init__(self, backbone, fail_at=None):
        self.n, self.fail_at = 0, fail_at
        self.handle = backbone.register_forward_pre_hook(self)

    def __call__(self, _module, _inputs):
        self.n += 1
        if self.fail_at is not None and self.n == self.fail_at:
            raise KeyboardInterrupt("simulated interruption")

    def remove(self):
        self.handle.remove()


def test_second_extraction_reads_the_cache(tmp_path, images, vit):
    calls = CountCalls(vit)
    a = load_or_extract(vit, images, tmp_path, "set-a", grid=4, batch_size=4, progress=False)
    assert calls.n == 3  # 10 images in batches of 4
    assert a.tokens.shape == (10, 2, 17, 32) and a.tokens.dtype == torch.float16
    assert a.layer_names == ["blocks.0", "blocks.1"] and a.channels == [32, 32] and a.grid == 4
    b = load_or_extract(vit, images, tmp_path, "set-a", grid=4, batch_size=4, progress=False)
    assert calls.n == 3  # nothing ran
    assert torch.equal(a.tokens, b.tokens)
    ref = extract_features(vit, images, grid=4, batch_size=4, progress=False)
    torch.testing.assert_close(a.tokens, ref.tokens)
    assert len(list(tmp_path.glob("*.h5"))) == 1
    calls.remove()


def test_changes_do_not_reuse_the_cache(tmp_path, images, vit):
    load_or_extract(vit, images, tmp_path, "set-a", grid=4, batch_size=8, progress=False)
    torch.manual_seed(0)
    variants = {
        "input size": load_backbone("vit_tiny_patch16_224", random_init=True, img_size=48, **TINY_VIT),
        "layers": TimmBackbone("vit_tiny_patch16_224", layers=["blocks.1"], img_size=32, model=vit.model),
        "normalisation": TimmBackbone("vit_tiny_patch16_224", img_size=32, model=vit.model,
                                       mean=(0.4, 0.4, 0.4)),
    }
    for what, backbone in variants.items():
        calls = CountCalls(backbone)
        out = load_or_extract(backbone, images, tmp_path, "set-a", grid=4, batch_size=8, progress=False)
        assert calls.n == 2, what
        assert out.layer_names == backbone.info.layer_names
        calls.remove()
    calls = CountCalls(vit)
    load_or_extract(vit, images, tmp_path, "set-a", grid=8, batch_size=8, progress=False)  # grid
    load_or_extract(vit, images, tmp_path, "set-b", grid=4, batch_size=8, progress=False)  # image set
    load_or_extract(vit, images[:5], tmp_path, "set-a", grid=4, batch_size=8, progress=False)  # count
    assert calls.n == 2 + 2 + 1
    calls.remove()
    assert len(list(tmp_path.glob("*.h5"))) == 7


def test_input_size_alone_changes_the_key(tmp_path, images):
    cnn = load_backbone("resnet18", random_init=True, img_size=32)
    bigger = TimmBackbone("resnet18", img_size=48, model=cnn.model)  # the same weights
    assert cache_key(cnn, "s", 4, 10)["backbone"]["weights"] == cache_key(bigger, "s", 4, 10)["backbone"]["weights"]
    load_or_extract(cnn, images, tmp_path, "s", grid=4, batch_size=10, progress=False)
    calls = CountCalls(bigger)
    load_or_extract(bigger, images, tmp_path, "s", grid=4, batch_size=10, progress=False)
    assert calls.n == 1
    with pytest.raises(ValueError, match="built for"):  # a fixed-size ViT cannot just change size
        TimmBackbone("vit_tiny_patch16_224", img_size=48, model=load_backbone(
            "vit_tiny_patch16_224", random_init=True, img_size=32, **TINY_VIT).model)


def test_weights_are_part_of_the_key(tmp_path, images, vit):
    other = load_backbone("vit_tiny_patch16_224", random_init=True, seed=1, img_size=32, **TINY_VIT)  # another init
    k1, k2 = (cache_key(b, "s", 4, 10) for b in (vit, other))
    assert k1["backbone"]["weights"] != k2["backbone"]["weights"] and cache_path(tmp_path, k1) != cache_path(tmp_path, k2)
    assert cache_key(vit, "s", 4, 10) == k1  # stable


def test_interrupted_write_is_never_read_as_valid_and_resumes(tmp_path, images, vit):
    calls = CountCalls(vit, fail_at=2)
    with pytest.raises(KeyboardInterrupt):
        load_or_extract(vit, images, tmp_path, "set-a", grid=4, batch_size=4, progress=False)
    calls.remove()
    (path,) = tmp_path.glob("*.h5")
    with pytest.raises(ValueError, match="incomplete"):
        read_cache(path)
    calls = CountCalls(vit)
    out = load_or_extract(vit, images, tmp_path, "set-a", grid=4, batch_size=4, progress=False)
    assert calls.n == 2  # resumed after the first batch of 4
    ref = extract_features(vit, images, grid=4, batch_size=4, progress=False)
    torch.testing.assert_close(out.tokens, ref.tokens)
    (done,) = tmp_path.glob("*.h5")  # the partial file, renamed into place once complete
    torch.testing.assert_close(read_cache(done).tokens, ref.tokens)
    calls.remove()


def test_corrupt_file_is_rebuilt(tmp_path, images, vit):
    load_or_extract(vit, images, tmp_path, "set-a", grid=4, batch_size=8, progress=False)
    (path,) = tmp_path.glob("*.h5")
    path.write_bytes(b"not an hdf5 file")
    calls = CountCalls(vit)
    out = load_or_extract(vit, images, tmp_path, "set-a", grid=4, batch_size=8, progress=False)
    assert calls.n == 2 and out.tokens.shape == (10, 2, 17, 32)
    calls.remove()


def test_mixed_image_sizes(tmp_path, vit):
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, (h, 30, 3), dtype=np.uint8) for h in (20, 30, 40)]
    out = load_or_extract(vit, imgs, tmp_path, "mixed", grid=2, batch_size=3, progress=False)
    ref = extract_features(vit, imgs, grid=2, batch_size=3, progress=False)
    torch.testing.assert_close(out.tokens, ref.tokens)
