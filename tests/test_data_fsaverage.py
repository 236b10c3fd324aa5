"""fsaverage meshes: fsaverage5 offline, full meshes checked for nesting."""
import numpy as np
import pytest

from factortopy.datasets.fixtures import write_full_mesh
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


def test_surface_imports_nothing_else_from_factortopy():
    import subprocess
    import sys

    code = ("import sys, factortopy.surface; "
            "print(sorted(m for m in sys.modules if m.startswith('factortopy.') and not m.startswith('factortopy.surface')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['factortopy._lazy']"


def test_one_reader_for_meshes_and_coordinates(nested, monkeypatch, tmp_path):
    """The mesh drawn on and the coordinates fitted on come from the same files and the same reader."""
    import shutil

    import nibabel as nib

    from factortopy.surface import fsaverage5, load_freesurfer_mesh, read_surface

    monkeypatch.delenv(ENV_MESH_DIR, raising=False)
    full = load_freesurfer_mesh(nested, "sphere")
    assert full.n_vertices == 163842 and full["lh"].sulc is None
    v = np.array([5, 10241, 10242, 150000])
    np.testing.assert_allclose(cortical_coordinates(v, np.array(["lh"] * 4), mesh_dir=nested), full["lh"].coords[v],
                               atol=1e-4)
    # nilearn (GIfTI) naming works for both: fsaverage5 copied under nilearn's names
    f5 = fsaverage5("sphere")
    gii = tmp_path / "gii"
    gii.mkdir()
    for h, side in (("lh", "left"), ("rh", "right")):
        img = nib.gifti.GiftiImage(darrays=[
            nib.gifti.GiftiDataArray(np.asarray(f5[h].coords, np.float32), intent="NIFTI_INTENT_POINTSET"),
            nib.gifti.GiftiDataArray(np.asarray(f5[h].faces, np.int32), intent="NIFTI_INTENT_TRIANGLE")])
        nib.save(img, str(gii / f"sphere_{side}.gii"))
    mesh = load_freesurfer_mesh(gii, "sphere")
    np.testing.assert_array_equal(mesh["rh"].faces, f5["rh"].faces)
    np.testing.assert_allclose(read_surface(str(gii / "sphere_left.gii"))[0], f5["lh"].coords)
    np.testing.assert_array_equal(fsaverage5_surface("lh")[0], f5["lh"].coords.astype(np.float32))
    with pytest.raises(FileNotFoundError, match="lh.inflated"):
        load_freesurfer_mesh(gii, "inflated")
    shutil.rmtree(gii)


def test_cached_meshes_are_read_only():
    from factortopy.surface import fsaverage5

    with pytest.raises(ValueError, match="read-only"):
        fsaverage5_surface("lh")[0][0, 0] = 1.0  # a caller's edit would corrupt every later coordinate
    with pytest.raises(ValueError, match="read-only"):
        fsaverage5("inflated")["rh"].coords[0, 0] = 1.0
