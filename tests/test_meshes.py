"""Meshes from where users keep them: full fsaverage (and fsaverage6) in FreeSurfer's format found from
an NSD release, $NSD_ROOT, $SUBJECTS_DIR or a given folder; `paint --mesh` says which; an nsd: run
paints on its release's fsaverage by default; when nothing is found the error lists where it looked."""
import importlib.util
import json
import os

import numpy as np
import pytest

from freesurfer_files import FAMILY, write_fsaverage_surf

pytest.importorskip("nilearn")

_ENV = ("FACTORTOPY_FSAVERAGE_DIR", "NSD_ROOT", "SUBJECTS_DIR", "FREESURFER_HOME", "NILEARN_DATA")


@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    """An NSD-layout root and a FreeSurfer SUBJECTS_DIR, each with fsaverage written as FreeSurfer lays it out."""
    base = tmp_path_factory.mktemp("homes")
    nsd = base / "nsd"
    write_fsaverage_surf(str(nsd / "nsddata" / "freesurfer" / "fsaverage" / "surf"), seed=1)
    subjects = base / "subjects"
    write_fsaverage_surf(str(subjects / "fsaverage" / "surf"), seed=2)
    write_fsaverage_surf(str(subjects / "fsaverage6" / "surf"), "fsaverage6", seed=3)
    return {"nsd": str(nsd), "subjects": str(subjects), "base": base}


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in _ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/nilearn_data
    return monkeypatch


def _first_vertex_beyond_fsaverage5(folder, surface="inflated"):
    import nibabel as nib

    return nib.freesurfer.read_geometry(os.path.join(folder, f"lh.{surface}"))[0][12345]


def test_found_from_an_nsd_root_and_from_subjects_dir_in_order(homes, clean_env):
    from factortopy.surface import find_fsaverage, load_fsaverage

    nsd_surf = os.path.join(homes["nsd"], "nsddata", "freesurfer", "fsaverage", "surf")
    subj_surf = os.path.join(homes["subjects"], "fsaverage", "surf")
    clean_env.setenv("SUBJECTS_DIR", homes["subjects"])
    where = find_fsaverage("fsaverage", "inflated")
    assert where.folder == subj_surf and "$SUBJECTS_DIR/fsaverage" in where.source
    # an NSD release comes first: the run's own, then $NSD_ROOT
    assert find_fsaverage("fsaverage", "inflated", nsd_root=homes["nsd"]).folder == nsd_surf
    clean_env.setenv("NSD_ROOT", homes["nsd"])
    where = find_fsaverage("fsaverage", "inflated")
    assert where.folder == nsd_surf and "$NSD_ROOT" in where.source
    mesh = load_fsaverage("fsaverage", "inflated")
    assert mesh.n_vertices == FAMILY["fsaverage"] and "NSD_ROOT" in mesh.name
    np.testing.assert_allclose(mesh["lh"].coords[12345], _first_vertex_beyond_fsaverage5(nsd_surf))
    # fsaverage6 from $SUBJECTS_DIR/fsaverage6 (NSD has none)
    six = load_fsaverage("fsaverage6", "pial")
    assert six.n_vertices == FAMILY["fsaverage6"] and "fsaverage6" in six.name
    # a given folder is the only place looked at
    assert find_fsaverage("fsaverage", "inflated", mesh_dir=subj_surf).folder == subj_surf
    with pytest.raises(FileNotFoundError, match="white"):
        find_fsaverage("fsaverage", "white", mesh_dir=subj_surf)
    # a folder of another member is refused by its vertex count
    with pytest.raises(ValueError, match="40962 vertices per hemisphere, which is not fsaverage"):
        load_fsaverage("fsaverage", "inflated", mesh_dir=os.path.join(homes["subjects"], "fsaverage6"))


def test_the_error_lists_where_it_looked(clean_env, tmp_path):
    from factortopy.surface import find_fsaverage

    clean_env.setenv("SUBJECTS_DIR", str(tmp_path / "subjects"))
    with pytest.raises(FileNotFoundError) as err:
        find_fsaverage("fsaverage", "inflated", nsd_root=str(tmp_path / "nsd"))
    msg = str(err.value)
    for place in ("the run's NSD release", "$NSD_ROOT/nsddata/freesurfer/fsaverage (not set)",
                  f"$SUBJECTS_DIR/fsaverage: {tmp_path / 'subjects' / 'fsaverage'} (absent)",
                  "$FREESURFER_HOME/subjects/fsaverage (not set)", "nilearn's data dir", "--mesh-dir"):
        assert place in msg, place


def _nsd_run(folder, write_run, root):
    maps = write_run(folder, n_per=150, seed=6, full=True)
    config = json.loads((folder / "config.json").read_text())
    config["data"] = f"nsd:{root}?subject=1"
    (folder / "config.json").write_text(json.dumps(config))
    return maps


def test_paint_mesh_says_which_and_nsd_runs_use_their_release(homes, clean_env, write_run, tmp_path, capsys):
    from factortopy.cli import main
    from factortopy.surface import mesh as surface_mesh
    from factortopy.viz.meshes import paint_mesh

    run = tmp_path / "nsd_run"
    _nsd_run(run, write_run, homes["nsd"])
    out = str(tmp_path / "m.png")
    args = ["--what", "scale", "--view", "posterior", "--dpi", "30", "--out", out]
    surface_mesh._NOTED_DROP = False
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no vertex dropped: every one is on NSD's full mesh
        assert main(["paint", str(run)] + args) == 0
    assert "mesh: fsaverage from the NSD release" in capsys.readouterr().out
    mesh, which = paint_mesh(None, "inflated", runs=[{"data": f"nsd:{homes['nsd']}?subject=1"}])
    assert mesh.n_vertices == FAMILY["fsaverage"] and "NSD release" in which
    if importlib.util.find_spec("plotly"):  # the interactive page stays light unless asked
        clean_env.setattr(surface_mesh, "_NOTED_DROP", True)  # its drop note is not what this checks
        assert main(["paint", str(run), "--what", "scale", "--out", str(tmp_path / "m.html")]) == 0
        assert "mesh: fsaverage5 (nilearn): the interactive page stays a few MB" in capsys.readouterr().out
    # --mesh fsaverage: the first found, named
    clean_env.setenv("SUBJECTS_DIR", homes["subjects"])
    other = tmp_path / "other_run"
    write_run(other, n_per=150, seed=7, full=True)
    assert main(["paint", str(other), "--mesh", "fsaverage"] + args) == 0
    said = capsys.readouterr().out
    assert f"mesh: fsaverage from $SUBJECTS_DIR/fsaverage: {homes['subjects']}/fsaverage/surf" in said
    surface_mesh._NOTED_DROP = False
    with pytest.warns(UserWarning, match="not on this 40962-vertex mesh"):  # a smaller member drops, and says so
        assert main(["paint", str(other), "--mesh", "fsaverage6", "--surface", "pial"] + args) == 0
    assert "mesh: fsaverage6 from $SUBJECTS_DIR/fsaverage6" in capsys.readouterr().out
    # without an NSD release or a mesh: fsaverage5, and an error listing the places for --mesh fsaverage
    clean_env.delenv("SUBJECTS_DIR")
    assert main(["paint", str(other)] + args) == 0
    assert "mesh: fsaverage5 (nilearn)" in capsys.readouterr().out
    assert main(["paint", str(other), "--mesh", "fsaverage"] + args) == 2
    assert "looked at, in order" in capsys.readouterr().err
