"""The generic layout for your own data."""
import os

import numpy as np
import pytest
from PIL import Image

from factortopy.data import load_subject
from factortopy.datasets.fixtures import decode_id, id_image


def test_generic_folder(tmp_path):
    os.makedirs(tmp_path / "images")
    for i in (2, 0, 1):  # created out of order; sorted by name
        Image.fromarray(id_image(i)).save(tmp_path / "images" / f"img{i:03d}.png")
    resp = np.arange(12, dtype=np.float32).reshape(3, 4) ** 2
    np.save(tmp_path / "responses.npy", resp)
    np.save(tmp_path / "vertices.npy", np.array([[0, 1], [0, 5], [1, 2], [1, 9]]))
    subj = load_subject(f"generic:{tmp_path}")
    assert [decode_id(subj.images[i]) for i in range(3)] == [0, 1, 2]
    z = (resp - resp.mean(0)) / resp.std(0)
    np.testing.assert_allclose(subj.responses, z, rtol=1e-5)
    assert subj.hemi.tolist() == ["lh", "lh", "rh", "rh"] and subj.vertex.tolist() == [1, 5, 2, 9]


def test_generic_npz_with_coords(tmp_path):
    f = tmp_path / "mine.npz"
    np.savez(f, images=np.stack([id_image(i) for i in range(5)]), responses=np.random.rand(5, 3),
             coords=np.random.rand(3, 3), test_mask=np.array([0, 0, 0, 1, 1], bool))
    subj = load_subject(f"generic:{f}?zscore=false")
    assert load_subject(f"generic:{f}?split=test").extra["test_mask"].all()
    assert subj.vertex.tolist() == [-1, -1, -1] and subj.extra["test_mask"].sum() == 0 and subj.n_images == 3
    with pytest.raises(ValueError, match="coords must be"):
        np.savez(f, images=np.stack([id_image(i) for i in range(5)]), responses=np.ones((5, 3)), coords=np.ones((2, 3)))
        load_subject(f"generic:{f}")
