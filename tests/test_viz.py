"""factortopy.viz: the pictures mean what they say (colours, legends, masking, vertex routing)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
pytest.importorskip("nilearn")

from factortopy.viz import colors as C  # noqa: E402
from factortopy.viz import maps as M  # noqa: E402
from factortopy import surface as fsmesh  # noqa: E402
from factortopy.surface import mesh as surface_mesh  # noqa: E402
from factortopy.viz.render import build_polys, face_colors, panels, project  # noqa: E402

N5 = 10242


def one_ring(hemi="lh", k=0):
    """Vertex k and its neighbours on fsaverage5."""
    f = fsmesh.fsaverage5()[hemi].faces
    return np.unique(f[(f == k).any(1)])


def render(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float) / 255


def pixel_at(fig, ax, xy):
    """Image [row, col] of data point xy in a drawn figure."""
    x, y = ax.transData.transform(xy)
    h = fig.canvas.get_width_height()[1]
    return int(round(h - y - 0.5)), int(round(x - 0.5))


# ------------------------------------------------------------------------------ import cost

def test_import_is_light():
    code = ("import sys, factortopy, factortopy.viz, factortopy.analysis; "
            "print([m for m in ('matplotlib', 'nilearn', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------ colour codes

def test_layer_colour_of_known_probs():
    p = np.array([[1, 0, 0, 0], [0, 0, 0, 1], [0.25, 0.25, 0.25, 0.25]])
    rgba = C.layer_colors(p)
    cool = matplotlib.colormaps["coolwarm"]
    np.testing.assert_allclose(rgba[0, :3], cool(0.0)[:3])          # first layer, confident: full blue
    np.testing.assert_allclose(rgba[1, :3], cool(1.0)[:3])          # last layer, confident: full red
    np.testing.assert_allclose(rgba[2, :3], np.asarray(cool(0.5)[:3]) * C.LAYER_DIM_FLOOR)  # uniform: dimmest
    assert np.all(rgba[:, 3] == 1)


def test_layer_legend_spans_layers_and_confidence():
    img = C.layer_legend_image(32)
    cool = matplotlib.colormaps["coolwarm"]
    np.testing.assert_allclose(img[0, 0], cool(0.0)[:3])    # top-left: first layer, confidence 1
    np.testing.assert_allclose(img[0, -1], cool(1.0)[:3])   # top-right: last layer, confidence 1
    np.testing.assert_allclose(img[-1, -1], np.asarray(cool(1.0)[:3]) * C.LAYER_DIM_FLOOR)  # bottom: confidence 0
    # the drawn legend labels the first and last layers at the ends of its x-axis
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    M._layer_legend(["conv1", "b1", "b2", "head"])(ax)
    assert ax.get_xlim() == (0.0, 1.0) and ax.get_ylim() == (0.0, 1.0)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "conv1" and labels[-1] == "head"
    np.testing.assert_allclose(ax.get_xticks()[[0, -1]], [0, 1])


def test_wheel_colours_and_legend_orientation():
    # hue = angle with y pointing down: right = red, image top (y = -1) = hue 0.25
    from matplotlib.colors import rgb_to_hsv

    hsv = rgb_to_hsv(C.wheel_rgb(np.array([1.0, 0.0, -1.0, 0.0]), np.array([0.0, -1.0, 0.0, 1.0])))
    np.testing.assert_allclose(hsv[:, 0], [0.0, 0.25, 0.5, 0.75], atol=1e-6)
    np.testing.assert_allclose(hsv[:, 1], 1.0)
    np.testing.assert_allclose(C.wheel_rgb(0.0, 0.0), [1, 1, 1])  # centre: white
    img = C.wheel_legend_image(65)
    np.testing.assert_allclose(img[0, 32, :3], C.wheel_rgb(0.0, -1.0))  # top row = image top
    np.testing.assert_allclose(img[32, -1, :3], C.wheel_rgb(1.0, 0.0))  # right column = image right
    assert img[0, 0, 3] == 0  # outside the disc: transparent
    rgba = C.space_colors(np.array([[0.5, 0.5]]))
    np.testing.assert_allclose(rgba[0, :3], C.wheel_rgb(0.5, 0.5))


def test_value_colours_and_colorbar_range():
    v = np.array([0.0, 0.5, 1.0, np.nan])
    rgba = C.value_colors(v, "viridis", 0.0, 1.0)
    np.testing.assert_allclose(rgba[:3, :3], matplotlib.colormaps["viridis"]([0.0, 0.5, 1.0])[:, :3])
    assert rgba[3, 3] == 0  # NaN: not shown
    assert C.value_range(np.array([-0.2, 0.6])) == (-0.6, 0.6)  # both signs: symmetric
    p = M.value_painting(np.arange(3), ["lh"] * 3, np.array([0.1, 0.2, 0.7]), label="r")
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    p.legend(ax)
    lo, hi = ax.get_ylim()
    assert (lo, hi) == pytest.approx((0.1, 0.7))
    assert p.info["vmin"] == pytest.approx(0.1) and p.info["vmax"] == pytest.approx(0.7)


def test_scale_colours_are_the_diverging_map():
    rgba = C.scale_colors(np.array([0.0, 1.0]))
    cm = matplotlib.colormaps[C.SCALE_CMAP]
    np.testing.assert_allclose(rgba[:, :3], cm([0.0, 1.0])[:, :3])


def test_categorical_palette_has_no_grey():
    pal = C.categorical_palette(40)
    assert len(np.unique(np.round(pal, 3), axis=0)) == 40
    assert np.all(pal.max(1) - pal.min(1) > 0.05)  # not confusable with the grey background


# ------------------------------------------------------------------------------ mesh routing

def test_vertex_on_fsaverage5_lands_on_same_index_and_far_ones_are_dropped():
    surface_mesh._NOTED_DROP = False
    vertex = np.array([7, 5000, 10241, 10242, 150000])
    hemi = np.array(["lh", "rh", "lh", "lh", "rh"])
    p = M.value_painting(vertex, hemi, np.array([0.0, 0.25, 0.5, 0.75, 1.0]), "viridis", 0, 1)
    with pytest.warns(UserWarning, match="not drawn"):
        on = p.on_mesh(fsmesh.fsaverage5())
    cm = matplotlib.colormaps["viridis"]
    np.testing.assert_allclose(on["lh"][7], cm(0.0))
    np.testing.assert_allclose(on["rh"][5000], cm(0.25))
    np.testing.assert_allclose(on["lh"][10241], cm(0.5))
    assert (on["lh"][:, 3] > 0).sum() == 2 and (on["rh"][:, 3] > 0).sum() == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the note is shown once
        p.on_mesh(fsmesh.fsaverage5())


def test_full_mesh_draws_all_vertices():
    # a stand-in 'full' mesh: fsaverage5 geometry padded with extra vertices
    base = fsmesh.fsaverage5()
    hemis = {}
    for h in ("lh", "rh"):
        hm = base[h]
        coords = np.concatenate([hm.coords, np.zeros((163842 - N5, 3))])
        hemis[h] = fsmesh.Hemi(coords, np.asarray(hm.faces), None)
    full = fsmesh.Mesh(hemis, "inflated")
    p = M.value_painting(np.array([150000]), np.array(["rh"]), np.array([1.0]), "viridis", 0, 1)
    on = p.on_mesh(full)
    assert on["rh"][150000, 3] == 1 and on["rh"].shape == (163842, 4)


def test_bad_inputs_have_clear_errors():
    with pytest.raises(ValueError, match="valid views: lateral"):
        panels("sideways")
    with pytest.raises(ValueError, match="different lengths"):
        M.layer_painting([1, 2], ["lh"], np.ones((2, 3)) / 3)
    with pytest.raises(ValueError, match="layer_probs has 3 rows"):
        M.layer_painting([1, 2], ["lh", "lh"], np.ones((3, 3)) / 3)
    with pytest.raises(ValueError, match="'lh' or 'rh'"):
        M.scale_painting([1, 2], ["lh", "left"], np.ones(2))
    with pytest.raises(ValueError, match="0..163841"):
        fsmesh.to_mesh_index(np.array([163842]), N5)
    with pytest.raises(ValueError, match="layer names"):
        M.layer_painting([1], ["lh"], np.ones((1, 2)) / 2, ["a"])


# ------------------------------------------------------------------------------ faces and pixels

def test_face_colours_inside_a_planted_patch():
    ring = one_ring("lh", 0)
    value = 0.8
    p = M.value_painting(ring, ["lh"] * len(ring), np.full(len(ring), value), "viridis", 0, 1)
    m = fsmesh.fsaverage5()
    on = p.on_mesh(m)
    rgb, painted = face_colors(m["lh"].faces, on["lh"])
    inside = np.isin(m["lh"].faces, ring).all(1)
    assert inside.sum() >= 5
    np.testing.assert_allclose(rgb[inside], np.tile(matplotlib.colormaps["viridis"](value)[:3], (inside.sum(), 1)))
    assert painted[inside].all()
    none = ~np.isin(m["lh"].faces, ring).any(1)
    assert not painted[none].any()


def test_categorical_faces_never_blend():
    faces = np.array([[0, 1, 2], [1, 2, 3]])
    rgba = np.zeros((4, 4))
    rgba[:, 3] = 1
    rgba[0, :3] = [1, 0, 0]
    rgba[1, :3] = [0, 1, 0]
    rgba[2, :3] = [0, 1, 0]
    rgba[3, :3] = [0, 0, 1]
    rgb, _ = face_colors(faces, rgba, "mode")
    np.testing.assert_allclose(rgb, [[0, 1, 0], [0, 1, 0]])


def _lateral_patch(k_rings=2):
    """Vertices around the most lateral point of the lh inflated surface (surely visible laterally)."""
    m = fsmesh.fsaverage5()
    hm = m["lh"]
    _, depth = project(hm.coords, "lateral", "lh")
    centre = int(np.argmax(depth))
    patch = {centre}
    for _ in range(k_rings):
        patch = set(np.unique(hm.faces[np.isin(hm.faces, list(patch)).any(1)]).tolist())
    return centre, np.array(sorted(patch))


def test_rendered_pixel_has_the_colour_of_the_value():
    from matplotlib.figure import Figure

    from factortopy.viz.render import draw_panel

    centre, patch = _lateral_patch()
    probs = np.zeros((len(patch), 6))
    probs[:, 5] = 1.0  # last layer, fully confident -> coolwarm(1)
    p = M.layer_painting(patch, ["lh"] * len(patch), probs)
    m = fsmesh.fsaverage5()
    fig = Figure(figsize=(4, 3), dpi=100)
    ax = fig.add_subplot()
    draw_panel(ax, m, ("lh",), "lateral", p.on_mesh(m), mode=p.mode)
    img = render(fig)
    xy, _ = project(m["lh"].coords[[centre]], "lateral", "lh")
    r, c = pixel_at(fig, ax, xy[0])
    expected = np.asarray(matplotlib.colormaps["coolwarm"](1.0)[:3])
    np.testing.assert_allclose(img[r, c], expected, atol=2.5 / 255)
    # far from the patch: grey cortex (R = G = B), not a data colour
    allxy, depth = project(m["lh"].coords, "lateral", "lh")
    far = np.where((depth > depth.max() - 5) & (np.linalg.norm(allxy - xy[0], axis=1) > 30))[0][0]
    fr, fc = pixel_at(fig, ax, allxy[far])  # a facing vertex 30 mm away from the patch
    px = img[fr, fc]
    assert np.ptp(px) < 2 / 255 and px[0] < 0.95


def test_vertices_outside_the_fit_are_transparent_over_the_background():
    m = fsmesh.fsaverage5()
    ring = one_ring("rh", 100)
    p = M.scale_painting(ring, ["rh"] * len(ring), np.zeros(len(ring)))
    tris, cols, is_data = build_polys(m, ("lh", "rh"), "posterior", p.on_mesh(m))
    assert 0 < is_data.sum() <= 6
    bg = cols[~is_data, :3]
    np.testing.assert_allclose(bg[:, 0], bg[:, 1])
    np.testing.assert_allclose(bg[:, 1], bg[:, 2])  # background faces are grey (sulcal shading)
    assert np.all(cols[:, 3] == 1)


# ------------------------------------------------------------------------------ figures

def test_each_map_figure(tmp_path, write_run):
    maps = write_run(tmp_path / "run", n_per=300)
    v, h = maps["vertex"], maps["hemi"]
    figs = [
        M.layer_map(v, h, maps["layer_probs"], list(maps["layer_names"]), views=("lateral", "flat")),
        M.space_map(v, h, maps["space_xy"], views="ventral", hemis="lh"),
        M.scale_map(v, h, maps["scale"], views=("medial",)),
        M.channel_map(v, h, maps["readout"], n_clusters=5, views=("posterior",)),
        M.value_map(v, h, maps["r"], label="r", views=("dorsal", "anterior")),
        M.value_map(v, h, np.arange(len(v)) % 3, categorical=True, label_names=["V1", "V2", "V3"], views="lateral"),
    ]
    for i, fig in enumerate(figs):
        fig.savefig(tmp_path / f"f{i}.png", dpi=50)
        assert (tmp_path / f"f{i}.png").stat().st_size > 1000


def test_load_maps_run_dir_and_planted_truth(tmp_path, write_run):
    from factortopy.viz import load_maps

    maps = write_run(tmp_path / "run")
    got = load_maps(tmp_path / "run")
    np.testing.assert_array_equal(got["vertex"], maps["vertex"])
    assert list(got["hemi"][:2]) == ["lh", "lh"] and got["hemi"].dtype.kind == "U"
    np.testing.assert_allclose(got["r"], maps["r"], rtol=1e-6)  # matched by (hemi, vertex)
    assert got["title"] == "vit_test | planted:subj01"
    assert got["layer_names"][0] == "blocks.0"
    subj = tmp_path / "subj"
    subj.mkdir()
    shutil.copy(tmp_path / "run" / "selectors.npz", subj / "planted_truth.npz")
    truth = load_maps(subj / "planted_truth.npz")  # a maps file
    assert truth.title == "subj (planted truth)" and "r" not in truth and truth.grid is None
    assert got.grid == 8 and got.kind == "factortopy" and got.title == got["title"]  # typed and a dict
    from factortopy.datasets.planted import load_truth

    assert load_truth(subj).title == "subj (planted truth)"
    with pytest.raises(FileNotFoundError, match="not a RUN_DIR; it holds planted_truth.npz: pass"):
        load_maps(subj)


def test_compare_figure_grid(tmp_path, write_run):
    from factortopy.viz import compare_figure, load_maps

    write_run(tmp_path / "a", seed=0)
    write_run(tmp_path / "b", seed=1)
    cols = {"planted truth": load_maps(tmp_path / "a"), "recovered": load_maps(tmp_path / "b")}
    fig = compare_figure(cols, rows=("layer", "space", "scale"), view="posterior")
    titles = [ax.get_title() for ax in fig.axes]
    assert "planted truth" in titles and "recovered" in titles
    # 3 rows x 2 columns x 1 panel (posterior shows both hemispheres) + one legend per row
    assert len(fig.axes) == 3 * 2 + 3
    fig.savefig(tmp_path / "grid.png", dpi=50)
    fig2 = compare_figure(cols, rows=("layer", "r"), view="lateral")
    assert len(fig2.axes) == 2 * 2 + 2  # one Axes per cell, the two lateral panels side by side in it
    m = fsmesh.fsaverage5()
    n_faces = sum(len(build_polys(m, (h,), "lateral", {})[0]) for h in ("lh", "rh"))
    assert len(fig2.axes[0].collections[0].get_paths()) == n_faces
    with pytest.raises(ValueError, match="no 'readout'"):
        compare_figure({"x": {k: v for k, v in cols["recovered"].items() if k != "readout"}}, rows=("channel",))


def test_value_rows_share_one_colour_range(tmp_path):
    from factortopy.viz.grid import _shared

    shared = _shared("r", {"a": {"r": np.array([0.1, 0.5])}, "b": {"r": np.array([-0.9, 0.2])}}, 20)
    assert (shared["vmin"], shared["vmax"]) == (-0.9, 0.9)


# ------------------------------------------------------------------------------ interactive

def _chromium():
    return shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


_CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                   "--hide-scrollbars", "--window-size=800,600", "--virtual-time-budget=10000"]


def test_interactive_html_in_headless_chromium(tmp_path):
    pytest.importorskip("plotly")
    from factortopy.viz.interactive import interactive_html

    m = fsmesh.fsaverage5()
    # paint the whole posterior half so the surface colours dominate the screenshot
    vs, hs, vals = [], [], []
    for h in ("lh", "rh"):
        idx = np.where(m[h].coords[:, 1] < 0)[0]
        vs.append(idx)
        hs += [h] * len(idx)
        vals.append(np.ones(len(idx)))
    p = M.value_painting(np.concatenate(vs), hs, np.concatenate(vals), "autumn", 0, 1)  # pure yellow
    out = interactive_html(p, tmp_path / "map.html", title="test map", description="legend words here")
    text = open(out, encoding="utf-8").read()
    assert "plotly" in text and "<html" in text.lower()
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", text)  # self-contained: plotly.js inlined
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium not installed")
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, *_CHROMIUM_FLAGS, f"--screenshot={shot}", f"file://{out}"],
                   capture_output=True, timeout=90, check=False)
    assert shot.exists(), "chromium wrote no screenshot"
    import matplotlib.image as mpimg

    img = mpimg.imread(str(shot))[..., :3]
    yellowish = (img[..., 0] > 0.6) & (img[..., 1] > 0.6) & (img[..., 2] < 0.35)
    greyish = (np.ptp(img, axis=-1) < 0.03) & (img.mean(-1) < 0.9) & (img.mean(-1) > 0.3)
    assert yellowish.sum() > 2000, "the painted surface is not visible in the screenshot"
    assert greyish.sum() > 2000, "the unpainted cortex is not visible in the screenshot"
    # the legend (autumn colour bar: red at 0) is drawn right of the brain; the brain has no red
    right = img[:, int(0.8 * img.shape[1]):]
    red = (right[..., 0] > 0.8) & (right[..., 1] < 0.35) & (right[..., 2] < 0.3)
    assert red.sum() > 30, "the legend is not visible in the screenshot"
    dom = subprocess.run([chromium, *_CHROMIUM_FLAGS, "--dump-dom", f"file://{out}"], capture_output=True,
                         text=True, timeout=90, check=False).stdout
    assert "legend words here" in dom and "data:image/png;base64" in dom  # rendered by plotly in the page


def test_interactive_page_has_legend_and_hover_fields(tmp_path, write_run):
    pytest.importorskip("plotly")
    from factortopy.viz import load_maps
    from factortopy.viz.interactive import hover_text, interactive_html
    from factortopy.viz.paint_runs import painting_from_maps

    write_run(tmp_path / "run", n_per=50)
    maps = load_maps(tmp_path / "run")
    n = len(maps["vertex"])
    roi = {"V1v": np.arange(n) < 10, "early": np.arange(n) < 30}  # the loaders' dict: overlapping masks
    p = painting_from_maps(maps, "scale")
    lines = hover_text(p, maps, roi)
    i = 3
    k = int(np.argmax(maps["layer_probs"][i]))
    x, y = maps["space_xy"][i]
    expected = [f"vertex {maps['vertex'][i]}, left hemisphere (lh)", "ROI: V1v, early",
                f"layer: blocks.{k} (p = {maps['layer_probs'][i][k]:.2f})",
                f"position: x = {x:+.2f}, y = {y:+.2f} (image -1..1, y down)",
                f"scale: {maps['scale'][i]:.2f} (0 local, 1 global)"]
    assert lines[i].split("<br>")[:5] == expected
    assert "ROI: none" in lines[40] and "right hemisphere (rh)" in lines[n - 1]
    out = interactive_html(p, tmp_path / "m.html", maps=maps, roi=roi, description="scale: local to global")
    text = open(out, encoding="utf-8").read()
    assert '"name":"legend"' in text and "data:image/png;base64," in text and "scale: local to global" in text
    assert "ROI: V1v, early" in text and "(p = " in text and "position: x = " in text
    assert ": no data" in text  # vertices outside the fit say so


def test_interactive_without_plotly_says_what_to_install(monkeypatch):
    import builtins

    from factortopy.viz import interactive

    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("plotly"):
            raise ImportError("no plotly")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match="pip install plotly"):
        interactive._plotly()


# ------------------------------------------------------------------------------ map kinds

def test_paint_and_run_grid_accept_the_same_registered_names(tmp_path, write_run):
    from factortopy.cli import paint as cli_paint
    from factortopy.viz import MAP_KINDS, run_grid
    from factortopy.viz.paint_runs import paint

    write_run(tmp_path / "a", seed=0)
    write_run(tmp_path / "b", seed=1)
    for name in ("layer", "space", "scale", "channel", "r", "r2"):
        assert name in MAP_KINDS
    runs = [tmp_path / "a", tmp_path / "b"]
    # 'score' is the validation r: the same name in a single painting, a grid and run_grid
    single = paint(runs[0], what="r", views="posterior")
    grid = run_grid(runs, rows=("r",), view="posterior")
    r_a = np.load(tmp_path / "a" / "scores.npz")["r"]
    legend = single.axes[-1]
    assert legend.get_title() == "r" and grid.axes[-1].get_title() == "r"
    assert legend.get_ylim() == pytest.approx(C.value_range(r_a))
    import argparse

    parser = argparse.ArgumentParser()
    cli_paint.add_arguments(parser)
    what = next(a for a in parser._actions if a.dest == "what")
    # every registered kind is offered (the run's single-number maps too, so no fixed choices)
    shown = parser.format_help().replace("\n", " ")  # argparse's rendering ('%' escaped in the source)
    assert all(f"{name}:" in shown for name in MAP_KINDS) and "% of the noise ceiling" in what.help % {}
    with pytest.raises(ValueError, match="unknown map 'layr'; valid: layer, space"):
        run_grid(runs, rows=("layr",))


def test_a_new_map_kind_is_one_entry(tmp_path, write_run):
    """Registering a kind makes it paintable by paint, run_grid and the CLI, with nothing else edited."""
    import argparse

    from factortopy.cli import paint as cli_paint
    from factortopy.viz import MAP_KINDS
    from factortopy.viz.kinds import MapKind, register_map_kind
    from factortopy.viz.paint_runs import paint

    write_run(tmp_path / "a", seed=0)
    kind = MapKind("first_layer_p", ("layer_probs",),
                   lambda m, o: M.value_painting(m["vertex"], m["hemi"], m["layer_probs"][:, 0], "viridis", 0, 1,
                                                 label="p(first layer)"),
                   "probability of the first layer")
    register_map_kind(kind)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_map_kind(kind)
        parser = argparse.ArgumentParser()
        cli_paint.add_arguments(parser)
        out = tmp_path / "new.png"
        assert cli_paint.run(parser.parse_args([str(tmp_path / "a"), "--what", "first_layer_p", "--out", str(out),
                                                "--view", "posterior", "--dpi", "30"])) == 0
        assert out.stat().st_size > 1000
        fig = paint([tmp_path / "a", tmp_path / "a"], what=["first_layer_p"])
        assert fig.axes[-1].get_title() == "p(first layer)"
    finally:
        del MAP_KINDS["first_layer_p"]


# ------------------------------------------------------------------------------ notebooks: your own Axes

def test_plotting_functions_draw_into_given_axes(tmp_path, write_run):
    from matplotlib.figure import Figure

    from factortopy.viz import compare_figure, load_maps, paint
    from factortopy.viz.profiles import plot_layer_profiles

    maps = write_run(tmp_path / "a", n_per=200)
    v, h = maps["vertex"], maps["hemi"]
    fig = Figure()
    axes = fig.subplots(1, 2)
    got = M.layer_map(v, h, maps["layer_probs"], views=("lateral", "posterior"), axes=axes)
    assert got is fig and len(fig.axes) == 2 and len(axes[1].child_axes) == 1  # the legend: an inset of the last
    m = fsmesh.fsaverage5()
    n_lateral = sum(len(build_polys(m, (hh,), "lateral", {})[0]) for hh in ("lh", "rh"))
    assert len(axes[0].collections[0].get_paths()) == n_lateral
    assert len(axes[1].collections[0].get_paths()) == len(build_polys(m, ("lh", "rh"), "posterior", {})[0])
    fig1 = Figure()
    ax = fig1.add_subplot()
    assert M.scale_map(v, h, maps["scale"], views="ventral", ax=ax, legend=False) is fig1 and not ax.child_axes
    with pytest.raises(ValueError, match="draws 2 panel"):
        M.scale_map(v, h, maps["scale"], views=("ventral", "dorsal"), ax=ax)
    fig2 = Figure()
    cells = fig2.subplots(2, 1)
    cols = {"a": load_maps(tmp_path / "a")}
    assert compare_figure(cols, rows=("layer", "r"), axes=cells) is fig2
    assert cells[0].get_title() == "a" and [len(c.child_axes) for c in cells] == [1, 1]  # one legend per row
    import factortopy.viz.paint_runs  # noqa: F401  (the module that defines paint: must not shadow it)

    fig3 = Figure()
    assert paint(tmp_path / "a", what="space", views="posterior", ax=fig3.add_subplot()) is fig3
    fig4 = Figure()
    ax4 = fig4.add_subplot()
    rows = [{"roi": "V1", "n": 3, "selected": np.array([1.0, 0]), "expected_mean": 0.0, "layer_names": ["a", "b"]}]
    assert plot_layer_profiles(rows, ax=ax4) is fig4 and ax4.images


# ------------------------------------------------------------------------------ notebooks: attributes, progress

def test_subpackages_are_lazy_attributes_listed_by_dir():
    code = ("import sys, factortopy; names = dir(factortopy); "
            "assert {'viz', 'analysis', '__version__'} <= set(names), names; "
            "heavy = lambda: [m for m in ('matplotlib', 'nilearn', 'torch') if m in sys.modules]; "
            "assert factortopy.viz.layer_map and factortopy.analysis.expected_layer; "
            "assert factortopy.viz is sys.modules['factortopy.viz']; print(heavy())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_progress_bar_in_a_notebook_without_ipywidgets_is_quiet():
    # a Jupyter kernel without ipywidgets: tqdm.auto warns "IProgress not found"; ours falls back silently
    code = """
import sys, types, warnings
sys.modules['ipykernel.zmqshell'] = types.ModuleType('ipykernel.zmqshell')
sys.modules['ipywidgets'] = None
import IPython
IPython.get_ipython = lambda: types.SimpleNamespace()
import tqdm.std
from factortopy._progress import progress_bar, progress_class
with warnings.catch_warnings(record=True) as ours:
    warnings.simplefilter('always')
    assert progress_class() is tqdm.std.tqdm
    assert list(progress_bar(range(3), desc='x', file=sys.stdout)) == [0, 1, 2]
with warnings.catch_warnings(record=True) as auto:
    warnings.simplefilter('always')
    import tqdm.auto
print('ours', len(ours), 'auto', [str(w.message)[:19] for w in auto])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # no warning from ours; tqdm.auto itself does warn in this set-up (the check is live)
    assert "ours 0 auto ['IProgress not found'" in out.stdout
