"""Figures returned by viz show in a plain Jupyter kernel, as images, exactly once (issue 20).

Reproduction: the viz functions built matplotlib Figures outside pyplot, so in a fresh kernel
(no ``%matplotlib inline``) a cell ending in one printed ``<Figure size 750x500 with 3 Axes>``.
"""
import base64

import nbformat
import pytest

from notebooks import execute, images

pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

_CELL = """\
import numpy as np
from factortopy import viz
vertex = np.arange(300)
hemi = np.array(["lh"] * 150 + ["rh"] * 150)
rows = [dict(roi="a", n=3, selected=[0.5, 0.5], mean_probs=[0.5, 0.5], expected_mean=0.5, layer_names=["x", "y"])]
"""


@pytest.mark.parametrize("magic", ["", "%matplotlib inline"], ids=["plain kernel", "with %matplotlib inline"])
def test_a_returned_figure_displays_as_one_image(tmp_path, magic):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(magic + "\n" + _CELL),
                nbformat.v4.new_code_cell("viz.value_map(vertex, hemi, np.linspace(0, 1, 300), views='posterior')"),
                nbformat.v4.new_code_cell("fig = viz.compare_figure({'a': dict(vertex=vertex, hemi=hemi, r=np.ones(300))},"
                                          " rows=('r',))\nfig"),
                nbformat.v4.new_code_cell("viz.plot_layer_profiles(rows)"),
                nbformat.v4.new_code_cell("fig2 = viz.value_map(vertex, hemi, np.ones(300), views='ventral')  # not shown")]
    nb = execute(nb, str(tmp_path))
    for cell in (1, 2, 3):
        shown = images(nb, cell)
        assert len(shown) == 1, (cell, nb.cells[cell].outputs)
        png = base64.b64decode(shown[0]["data"]["image/png"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert images(nb, 4) == []  # a figure assigned, not returned, stays quiet (as matplotlib's own Figure)


def test_the_figure_class_is_a_matplotlib_figure_that_pickles():
    import pickle

    import numpy as np
    from matplotlib.figure import Figure

    from factortopy import viz

    fig = viz.value_map(np.arange(50), np.array(["lh"] * 50), np.ones(50), views="posterior")
    assert isinstance(fig, Figure) and fig._repr_png_()[:4] == b"\x89PNG"
    again = pickle.loads(pickle.dumps(fig))
    assert type(again) is type(fig) and len(again.axes) == len(fig.axes)
