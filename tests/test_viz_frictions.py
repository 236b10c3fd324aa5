"""Small frictions of painting (issue 20): labels cut at the figure's edge, a black rf-size map
without a word, titles that differ only by "(2)", and a paint command that imported torch."""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from factortopy import viz


def test_saved_figures_keep_row_labels_and_colour_bar_labels(tmp_path, write_run):
    """Reproduction: the view names left of the brains ("lateral", "medial") and the rf-size colour
    bar's "0.15 = 1.2 cells" labels reached beyond the figure and were cut from the PNG."""
    run = tmp_path / "run"
    maps = write_run(str(run), n_per=50)
    fig = viz.paint_run(str(run), "layer")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    texts = [t for ax in fig.axes for t in ax.texts if t.get_text() in ("lateral", "medial")]
    assert texts and min(t.get_window_extent(renderer).x0 for t in texts) < 0  # outside the figure box
    tight = fig.get_tightbbox(renderer)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    width, height = Image.open(buf).size
    pad = 2 * 0.1  # savefig's pad_inches on each side
    assert abs(width - (tight.width + pad) * 100) <= 3 and abs(height - (tight.height + pad) * 100) <= 3  # nothing cut
    # the same on a long-labelled colour bar
    p = viz.maps.rf_size_painting(maps["vertex"], maps["hemi"], np.linspace(0, 0.15, len(maps["vertex"])), grid=8)
    fig = viz.plot_painting(p, views="posterior")
    renderer = FigureCanvasAgg(fig).get_renderer()
    labels = [t for ax in fig.axes for t in ax.get_yticklabels() if "cells" in t.get_text()]
    assert labels and max(t.get_window_extent(renderer).x1 for t in labels) > fig.bbox.width  # beyond the edge
    tight = fig.get_tightbbox(renderer)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    assert abs(Image.open(buf).size[0] - (tight.width + pad) * 100) <= 3


def test_an_rf_size_map_of_a_point_run_says_why_it_is_uniform():
    vertex, hemi = np.arange(20), np.array(["lh"] * 20)
    with pytest.warns(UserWarning, match="point receptive field.*--receptive-field gaussian"):
        p = viz.maps.rf_size_painting(vertex, hemi, np.zeros(20), grid=8)
    fig = viz.plot_painting(p, views="posterior")
    assert any("0 everywhere" in ax.get_title() for ax in fig.axes)


def test_runs_with_the_same_title_are_told_apart_by_their_folders(tmp_path, write_run):
    """Reproduction: two runs of one backbone were titled 'vit_test | planted:subj01' and
    'vit_test | planted:subj01 (2)'."""
    from factortopy.viz.grid import distinct_titles

    for name in ("seed0", "seed1"):
        write_run(str(tmp_path / name), n_per=30)
    fig = viz.run_grid([str(tmp_path / "seed0"), str(tmp_path / "seed1")], rows=("layer",))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert "vit_test | planted:subj01 (seed0)" in titles and "vit_test | planted:subj01 (seed1)" in titles
    assert distinct_titles(["a", "a", "b"], ["x/run", "y/run", "z/run"]) == ["a (x/run)", "a (y/run)", "b"]
    assert distinct_titles(["a", "a"], ["x/run", "x/run"]) == ["a (1)", "a (2)"]


def test_the_paint_command_never_imports_torch(tmp_path, write_run):
    """Importing torch (to set its threads) was most of a paint command's 6-9 s."""
    run = tmp_path / "run"
    write_run(str(run), n_per=30)
    out = tmp_path / "map.png"
    code = ("import sys; from factortopy.cli import main; "
            f"rc = main(['paint', {str(run)!r}, '--view', 'posterior', '--out', {str(out)!r}]); "
            "assert rc == 0 and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.stat().st_size > 1000
