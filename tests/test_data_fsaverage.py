"""fsaverage meshes: fsaverage5 offline, full meshes checked for nesting."""
import numpy as np
import pytest

from factortopy.data.fake import write_full_mesh
from factortopy.surface import (ENV_MESH_DIR, check_nesting, cortical_coordinates, full_mesh_dir,
                                fsaverage5_surface)


@pytest.fixture(scope="module")
def nested(tmp_path_factory):
    return write_full_mesh(str(tmp_path_factory.mktemp("fsavg") / "surf"), nested=True)


def test_nested_full_mesh_gives_coordinates_beyond_fsaverage5(nested, monkeypatch):
    import nibabel as nib

    monkeypatch.delenv(ENV_MESH_DIR, raising=False)
    full = nib.freesurfer.read_geometry(f"{nested}/lh.sphere")[0]
    v = np.array([5, 10241, 10242, 150000])
    xyz = cortical_coordinates(v, np.array(["lh"] * 4), mesh_dir=nested)
    np.testing.assert_allclose(xyz, full[v], atol=1e-4)
    np.testing.assert_allclose(xyz[:2], fsaverage5_surface("lh")[0][v[:2]], atol=1e-3)
    # the parent folder (with surf/) and the environment variable work too
    assert full_mesh_dir(str(nested)[: -len("/surf")]) == nested
    monkeypatch.setenv(ENV_MESH_DIR, nested)
    np.testing.assert_allclose(cortical_coordinates(v, np.array(["lh"] * 4)), xyz)


def test_non_nested_full_mesh_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_MESH_DIR, raising=False)
    bad = write_full_mesh(str(tmp_path / "surf"), nested=False)
    with pytest.raises(ValueError, match="not fsaverage5's"):
        check_nesting(bad, "lh")
    with pytest.raises(ValueError, match="not fsaverage5's"):
        cortical_coordinates(np.array([20000]), np.array(["rh"]), mesh_dir=bad)


def test_far_vertices_without_full_mesh_name_the_fix(monkeypatch, tmp_path):
    for var in (ENV_MESH_DIR, "SUBJECTS_DIR", "FREESURFER_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NILEARN_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="FACTORTOPY_FSAVERAGE_DIR"):
        cortical_coordinates(np.array([3, 20000]), np.array(["lh", "lh"]))
    with pytest.raises(FileNotFoundError, match="no full fsaverage sphere surface"):
        full_mesh_dir(str(tmp_path))


def test_hemispheres_side_by_side():
    xyz = cortical_coordinates(np.array([0, 0]), np.array(["lh", "rh"]))
    assert xyz[1, 0] > xyz[0, 0]
