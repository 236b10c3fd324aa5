"""``factortopy export`` / ``factortopy.export_run`` / ``viz.surface_images``: every map and score
read back with nibabel (GIfTI, MGH, annot), nilearn and a plain XML parser equals the run's arrays at
the run's vertices, NaN / 0 elsewhere; label tables name the layers; ``paint`` paints the same set."""
import json
import os

import numpy as np
import pytest

from freesurfer_files import gifti_arrays, gifti_header, read_lut, write_fsaverage_surf

pytest.importorskip("nilearn")


def _write_eval(run_dir, maps, split, seed, score=True):
    """eval_<split>.npz as `factortopy evaluate` writes it, in a shuffled column order (matched by (hemi, vertex))."""
    rng = np.random.default_rng(seed)
    n = len(maps["vertex"])
    perm = rng.permutation(n)
    vals = {"r": rng.uniform(-0.2, 0.8, n).astype(np.float32), "r2": rng.uniform(-0.5, 0.6, n).astype(np.float32)}
    if score:
        vals["score"] = rng.uniform(0, 100, n)
    np.savez(os.path.join(run_dir, f"eval_{split}.npz"), vertex=maps["vertex"][perm],
             hemi=maps["hemi"][perm].astype("<U2"), **{k: v[perm] for k, v in vals.items()})
    return {f"{split}_{k}": v for k, v in vals.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, write_run):
    base = tmp_path_factory.mktemp("export")
    small = write_run(base / "small", n_per=300, L=5, seed=3)  # fsaverage5 indices
    small.update(_write_eval(base / "small", small, "test", 1))
    full = write_run(base / "full", n_per=200, L=4, seed=4, full=True)  # full fsaverage indices
    full.update(_write_eval(base / "full", full, "heldout", 2))
    full.update(_write_eval(base / "full", full, "test", 5, score=False))
    return base, {"small": small, "full": full}


def _expected(maps):
    """Each map, computed here from the stored arrays (not by factortopy)."""
    p = maps["layer_probs"].astype(float)
    L = p.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log(p), 0).sum(1)
    out = {"layer_expected": p @ np.arange(L) / (L - 1), "layer_confidence": 1 - entropy / np.log(L),
           "layer_argmax": p.argmax(1) + 1, "layer_probs": p, "space_x": maps["space_xy"][:, 0],
           "space_y": maps["space_xy"][:, 1], "scale": maps["scale"]}
    out.update({k: v for k, v in maps.items() if k.startswith(("test_", "heldout_"))})
    out["r"], out["r2"] = maps["r"], maps["r"] ** 2  # scores.npz as the fixture writes it: r2 = r^2
    return out


def _at_run(arr, maps, hemi):
    sel = maps["hemi"] == hemi
    return arr[maps["vertex"][sel]], sel


@pytest.mark.parametrize("which, n_mesh", [("small", 10242), ("full", 163842)])
def test_every_map_reads_back_equal_at_the_run_vertices(runs, tmp_path, which, n_mesh):
    import nibabel as nib

    from factortopy import export_run
    from factortopy.analysis.clusters import cluster_readouts

    base, all_maps = runs
    maps = all_maps[which]
    manifest = export_run(base / which, tmp_path / "out")
    out = tmp_path / "out"
    expect = _expected(maps)
    expect["channel_cluster"] = cluster_readouts(maps["readout"], 20) + 1
    names = [m["name"] for m in manifest["maps"]]
    assert set(expect) == set(names), names  # every stored map and score, nothing else
    assert manifest["mesh"] == ("fsaverage5" if which == "small" else "fsaverage")
    for entry in manifest["maps"]:
        name, label = entry["name"], entry["kind"] == "label"
        for hemi in ("lh", "rh"):
            gii = out / f"{hemi}.{name}.{'label' if label else 'func'}.gii"
            arrays = gifti_arrays(gii)
            data = np.stack([a[2] for a in arrays], 1) if len(arrays) > 1 else arrays[0][2]
            mgh = np.asarray(nib.load(out / f"{hemi}.{name}.mgz").dataobj)
            assert mgh.shape[:3] == (n_mesh, 1, 1)
            mgh = mgh.reshape(n_mesh, -1).squeeze(1) if mgh.ndim == 3 or mgh.shape[3] == 1 else mgh.reshape(n_mesh, -1)
            for got in (data, mgh):
                assert got.shape[0] == n_mesh
                at, sel = _at_run(got, maps, hemi)
                np.testing.assert_allclose(at, np.asarray(expect[name], float)[sel], rtol=1e-5, atol=1e-6, err_msg=name)
                outside = np.ones(n_mesh, bool)
                outside[maps["vertex"][sel]] = False
                if label:
                    assert got.dtype.kind == "i" and np.all(got[outside] == 0)
                    assert arrays[0][0] == "NIFTI_INTENT_LABEL"
                else:
                    assert np.all(np.isnan(got[outside])) and np.all(np.isfinite(at) | np.isnan(expect[name][sel]))
            meta, table = gifti_header(gii)
            assert meta["AnatomicalStructurePrimary"] == {"lh": "CortexLeft", "rh": "CortexRight"}[hemi]
            assert meta["Name"] == name and json.loads(meta["factortopy:layer_names"]) == list(maps["layer_names"])
            assert meta["factortopy:run"] == str(base / which)
            if name == "layer_argmax":
                assert table[0][0] == "???" and [table[k][0] for k in range(1, len(table))] == list(maps["layer_names"])
                annot_labels, _, annot_names = nib.freesurfer.read_annot(str(out / f"{hemi}.{name}.annot"))
                at, sel = _at_run(annot_labels, maps, hemi)
                named = [annot_names[i].decode() for i in at]
                assert named == [maps["layer_names"][k] for k in maps["layer_probs"][sel].argmax(1)]
            if name == "layer_probs":
                assert [a[1] for a in arrays] == list(maps["layer_names"])  # one named frame per layer
    # the FreeSurfer colour table names the same labels in the same colours as the GIfTI table
    lut = read_lut(out / "layer_argmax.mgz.ctab")
    _, table = gifti_header(out / "lh.layer_argmax.label.gii")
    assert [lut[k][0] for k in sorted(lut)] == ["Unknown"] + list(maps["layer_names"])
    assert all(lut[k][1] == tuple(round(255 * c) for c in table[k][1][:3]) for k in range(1, len(table)))
    # the label colours are the painted maps': layers blue -> red, clusters the channel map's palette
    assert table[1][1][2] > table[1][1][0] and table[len(table) - 1][1][0] > table[len(table) - 1][1][2]
    from factortopy.viz.colors import categorical_palette

    _, table = gifti_header(out / "lh.channel_cluster.label.gii")
    k = len(table) - 1
    assert [table[i + 1][0] for i in range(k)] == [f"c{i}" for i in range(k)]
    np.testing.assert_allclose([table[i + 1][1][:3] for i in range(k)], categorical_palette(k), atol=1e-6)


def test_nilearn_surface_images_hold_the_same_values(runs, tmp_path, monkeypatch):
    from nilearn.surface import SurfaceImage

    from factortopy.viz import surface_images

    base, all_maps = runs
    maps = all_maps["small"]
    images = surface_images(base / "small", maps=["layer_expected", "layer_argmax", "test_score"])
    expect = _expected(maps)
    for name, img in images.items():
        assert isinstance(img, SurfaceImage) and img.mesh.parts["left"].n_vertices == 10242
        for hemi, part in (("lh", "left"), ("rh", "right")):
            at, sel = _at_run(np.asarray(img.data.parts[part]), maps, hemi)
            np.testing.assert_allclose(at, np.asarray(expect[name], float)[sel], rtol=1e-5)
    # they work in nilearn's own tools: a labels masker finds the layers, the plot draws
    from nilearn.maskers import SurfaceLabelsMasker
    from nilearn.plotting import plot_surf_stat_map

    assert SurfaceLabelsMasker(labels_img=images["layer_argmax"]).fit().n_elements_ == maps["layer_probs"].shape[1]
    plot_surf_stat_map(stat_map=images["layer_expected"], hemi="left", view="ventral", engine="matplotlib")
    # full fsaverage: the mesh comes from where the user keeps it ($SUBJECTS_DIR here)
    for var in ("FACTORTOPY_FSAVERAGE_DIR", "NSD_ROOT", "FREESURFER_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SUBJECTS_DIR", str(tmp_path))
    monkeypatch.setenv("NILEARN_DATA", str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match=r"looked at.*\$SUBJECTS_DIR/fsaverage"):
        surface_images(base / "full", maps=["scale"])
    write_fsaverage_surf(str(tmp_path / "fsaverage" / "surf"))
    img = surface_images(base / "full", maps=["heldout_score"])["heldout_score"]
    full = all_maps["full"]
    at, sel = _at_run(np.asarray(img.data.parts["right"]), full, "rh")
    assert img.mesh.parts["right"].n_vertices == 163842
    np.testing.assert_allclose(at, full["heldout_score"][sel], rtol=1e-5)


def test_the_export_command_never_imports_torch(runs, tmp_path):
    import subprocess
    import sys

    base, _ = runs
    code = ("import sys; from factortopy.cli import main; "
            f"rc = main(['export', {str(base / 'small')!r}, '--out', {str(tmp_path / 'o')!r}, '--maps', 'scale']); "
            "assert rc == 0 and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_resolution_choice_and_clear_refusals(runs, tmp_path, capsys):
    import nibabel as nib

    from factortopy.cli import main
    from factortopy.viz.export import export_run

    base, all_maps = runs
    maps = all_maps["small"]
    out = tmp_path / "o"
    assert main(["export", str(base / "small"), "--out", str(out), "--mesh", "fsaverage", "--maps", "scale",
                 "--format", "mgz"]) == 0
    assert "wrote 1 maps (2 files) on fsaverage" in capsys.readouterr().out
    data = np.asarray(nib.load(out / "lh.scale.mgz").dataobj).ravel()
    assert data.shape == (163842,) and np.isnan(data[10242:]).all()  # padded: nested, nothing moves
    assert sorted(os.listdir(out)) == ["export.json", "lh.scale.mgz", "rh.scale.mgz"]
    # a Run (the interface every run kind implements; this fixture has no model to open a kind with)
    from factortopy.runs import Run, read_config

    run = Run(str(base / "small"), read_config(str(base / "small")))
    export_run(run, tmp_path / "as_run", maps=["scale"], formats="mgz", resolution="fsaverage")
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "as_run" / "lh.scale.mgz").dataobj).ravel(), data)
    # an earlier export is replaced (its files removed); a folder of other files is refused
    export_run(base / "small", out, maps=["space_x"], formats="gifti")
    assert sorted(os.listdir(out)) == ["export.json", "lh.space_x.func.gii", "rh.space_x.func.gii"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    assert main(["export", str(base / "small"), "--out", str(tmp_path / "mine")]) == 2
    assert "holds other files" in capsys.readouterr().err
    with pytest.raises(ValueError, match="beyond fsaverage5"):
        export_run(base / "full", tmp_path / "x", resolution="fsaverage5")
    with pytest.raises(ValueError, match="no vertex map 'nothing'.*layer_expected"):
        export_run(base / "small", tmp_path / "y", maps=["nothing"])
    assert not (tmp_path / "y").exists()  # checked before anything is written
    generic = dict(maps, vertex=np.full(len(maps["vertex"]), -1))
    with pytest.raises(ValueError, match="no fsaverage vertex indices"):
        export_run(generic, tmp_path / "z")


def test_paint_paints_the_same_set_scores_included(runs, tmp_path, capsys):
    from factortopy.cli import main
    from factortopy.runs.maps import load_maps
    from factortopy.viz.kinds import painting
    from factortopy.viz.vertex_maps import available, vertex_map

    base, all_maps = runs
    maps = load_maps(base / "small")
    for name in available(maps):
        vmap = vertex_map(maps, name)
        if vmap.kind == "frames":
            with pytest.raises(ValueError, match="frames"):
                painting(maps, name)
            continue
        p = painting(maps, name)
        if vmap.kind == "label":  # each vertex in its label's table colour
            colours = np.array([vmap.labels[k][1] for k in vmap.values])
            np.testing.assert_allclose(p.rgba, colours)
        elif name in ("layer_expected", "test_score", "space_x"):
            np.testing.assert_allclose(p.info["values"], vmap.values, rtol=1e-6)
    # the noise-normalised score: one evaluated split -> it; several -> choose; none -> say how
    p = painting(maps, "score")
    np.testing.assert_allclose(p.info["values"], all_maps["small"]["test_score"])
    assert main(["paint", str(base / "small"), "--what", "score", "--view", "posterior", "--dpi", "30",
                 "--out", str(tmp_path / "s.png")]) == 0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the full run's vertices beyond fsaverage5 are not drawn (and said so)
        assert main(["paint", str(base / "full"), "--what", "score", "--view", "posterior", "--dpi", "30",
                     "--out", str(tmp_path / "f.png")]) == 0  # one split scored with a noise ceiling
    _write_eval(base / "full", all_maps["full"], "val", 9)
    try:
        assert main(["paint", str(base / "full"), "--what", "score", "--out", str(tmp_path / "f.png")]) == 2
        assert "choose one with --what heldout_score or --what val_score" in capsys.readouterr().err
    finally:
        os.remove(base / "full" / "eval_val.npz")
    bare = tmp_path / "bare"
    import shutil

    shutil.copytree(base / "small", bare)
    os.remove(bare / "eval_test.npz")
    assert main(["paint", str(bare), "--what", "score", "--out", str(tmp_path / "b.png")]) == 2
    assert "run `factortopy evaluate" in capsys.readouterr().err
