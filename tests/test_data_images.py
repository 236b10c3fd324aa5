"""Image identity (the feature-cache key), image decoding, and what every Subject checks."""
import os
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from factortopy.data import load_subject
from factortopy.datasets.fixtures import decode_id, id_image, write_fake_algonauts, write_fake_nsd
from factortopy.data.images import ImageArray, ImageFiles, image_set_key, read_image
from factortopy.data.subject import Subject


def _rewrite_images(folder, offset):
    """Rewrite every image in place with other pixels (same names, same count), as a later edit."""
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        st = os.stat(path)
        Image.fromarray(id_image(offset + decode_id(read_image(path)))).save(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later write, not the same clock tick


def test_same_named_folders_with_other_images_get_other_keys(tmp_path):
    a = write_fake_algonauts(str(tmp_path / "a"), seed=1)
    b = str(tmp_path / "b" / "subj01")  # same folder name, same ids and count, other pixels
    shutil.copytree(a["path"], b)
    _rewrite_images(os.path.join(b, "training_split", "training_images"), offset=1)
    ka, kb = load_subject(f"algonauts:{a['path']}").image_key, load_subject(f"algonauts:{b}").image_key
    assert ka != kb
    assert load_subject(f"algonauts:{a['path']}").image_key == ka  # stable for the same files
    assert load_subject(f"algonauts:{a['path']}?split=test").image_key != ka


def test_images_rewritten_in_place_get_a_new_key(tmp_path):
    truth = write_fake_algonauts(str(tmp_path), seed=3)
    before = load_subject(f"algonauts:{truth['path']}")
    key = before.image_key
    _rewrite_images(os.path.join(truth["path"], "training_split", "training_images"), offset=1)
    after = load_subject(f"algonauts:{truth['path']}")
    assert after.n_images == before.n_images and after.image_key != key


def test_an_identical_copy_elsewhere_gets_its_own_key(tmp_path):
    truth = write_fake_algonauts(str(tmp_path / "a"), seed=4)
    copy = str(tmp_path / "b" / "subj01")
    shutil.copytree(truth["path"], copy)
    a, b = load_subject(f"algonauts:{truth['path']}"), load_subject(f"algonauts:{copy}")
    assert a.image_key != b.image_key  # absolute paths are part of the key (see image_set_key)


def test_nsd_key_follows_the_stimulus_file_content_and_ids(tmp_path):
    import h5py

    truth = write_fake_nsd(str(tmp_path), n_sessions=1, trials_per_session=6, lh_vertices=(5,), rh_vertices=(2,),
                           full_mesh=False)
    spec = f"nsd:{tmp_path}?subject=1&sessions=1&trials_per_session=6&split=all"
    key = load_subject(spec).image_key
    assert load_subject(spec.replace("split=all", "split=train")).image_key != key  # other ids
    brick = os.path.join(truth["root"], "nsddata_stimuli", "stimuli", "nsd", "nsd_stimuli.hdf5")
    st = os.stat(brick)
    with h5py.File(brick, "r+") as f:
        f["imgBrick"][0] = 255 - f["imgBrick"][0]
    os.utime(brick, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert load_subject(spec).image_key != key


def test_in_memory_arrays_are_keyed_by_their_bytes():
    imgs = np.stack([id_image(i) for i in range(4)])
    assert image_set_key(ImageArray(imgs)) == image_set_key(ImageArray(imgs.copy()))
    other = imgs.copy()
    other[2, 0, 0, 0] += 1
    assert image_set_key(ImageArray(other)) != image_set_key(ImageArray(imgs))
    assert image_set_key(list(imgs)) != image_set_key(list(other))  # any sequence: hashed image by image


def test_subject_key_is_derived_not_trusted():
    imgs = np.stack([id_image(i) for i in range(3)])
    cols = dict(responses=np.zeros((3, 2), np.float32), vertex=np.array([1, 2]), hemi=np.array(["lh", "lh"]),
                coords=np.zeros((2, 3), np.float32), image_ids=np.arange(3))
    a = Subject(images=ImageArray(imgs), image_key="tiny", **cols)
    b = Subject(images=ImageArray(imgs[::-1].copy()), image_key="tiny", **cols)
    assert a.image_key.startswith("tiny-") and a.image_key != b.image_key
    b.images = ImageArray(imgs)  # other images assigned: their key
    assert b.image_key == a.image_key


def _png16(path, array, color_type):
    h, w = array.shape[:2]
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16_bit_pngs_are_scaled_by_bit_depth_not_clipped(tmp_path):
    grey = (np.arange(16).reshape(4, 4) * 4369).astype(np.uint16)  # 0 .. 65535
    _png16(str(tmp_path / "g.png"), grey, 0)
    img = ImageFiles([tmp_path / "g.png"])[0]
    assert img.shape == (4, 4, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[..., 0], np.rint(grey / 257.0).astype(np.uint8))
    assert (img == 255).mean() < 0.1  # Pillow's convert('RGB') clips nearly all of them to 255
    rgb = np.stack([grey, grey[::-1], np.full_like(grey, 40000)], -1)
    _png16(str(tmp_path / "c.png"), rgb, 2)
    np.testing.assert_allclose(read_image(str(tmp_path / "c.png")).astype(int), rgb / 257.0, atol=1)


def test_decompression_bomb_gets_our_message(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10000 pixels > 2 x limit: a "bomb"
    with pytest.raises(ValueError, match=r"big.png: too many pixels.*MAX_IMAGE_PIXELS"):
        read_image(str(tmp_path / "big.png"))


def _generic(tmp_path, vertices=None, hemi=None, coords=None):
    np.save(tmp_path / "images.npy", np.stack([id_image(i) for i in range(3)]))
    np.save(tmp_path / "responses.npy", np.random.default_rng(0).normal(size=(3, 3)))
    for name, value in (("vertices", vertices), ("hemi", hemi), ("coords", coords)):
        if value is not None:
            np.save(tmp_path / f"{name}.npy", np.asarray(value))
    return f"generic:{tmp_path}"


def test_duplicate_vertex_ids_are_refused(tmp_path):
    with pytest.raises(ValueError, match="lh vertex 5 appears 2 times"):
        load_subject(_generic(tmp_path, vertices=[[0, 5], [0, 5], [1, 5]]))


def test_hemisphere_codes_outside_lh_rh_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"hemi holds codes \[2\]"):
        load_subject(_generic(tmp_path, coords=np.zeros((3, 3)), hemi=[0, 1, 2]))
    cols = dict(responses=np.zeros((1, 2), np.float32), vertex=np.array([1, 2]), coords=np.zeros((2, 3)),
                image_ids=np.arange(1), images=[np.zeros((2, 2, 3), np.uint8)])
    with pytest.raises(ValueError, match=r"hemisphere codes \['left'\]"):
        Subject(hemi=np.array(["lh", "left"]), **cols)


def test_subject_repr_is_one_line(tmp_path):
    truth = write_fake_algonauts(str(tmp_path))
    text = repr(load_subject(f"algonauts:{truth['path']}"))
    assert "\n" not in text and len(text) < 200
    assert text == ("Subject('subj01', 12 images, 16 vertices (lh 7, rh 9), split=training, "
                    "vertex_set=nsdgeneral+RSC)")
