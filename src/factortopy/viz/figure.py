"""The Figure every viz function returns: a matplotlib Figure that Jupyter shows by itself.

matplotlib's pyplot figures appear in a notebook through the inline backend's hooks (and are kept in
pyplot's list of open figures until closed). A ``matplotlib.figure.Figure`` built outside pyplot, as
ours are (so that painting in a loop leaks nothing and never opens a window), has no such hook: in
a plain Jupyter kernel it printed as ``<Figure size 750x500 with 3 Axes>``. :class:`Figure` adds
IPython's rich-display method ``_repr_png_``, so a returned figure shows as an image in any kernel,
with or without ``%matplotlib inline``, and exactly once (it is not in pyplot's list, so the inline
backend's end-of-cell flush does not show it a second time; where ``%matplotlib inline`` registered
its own PNG printer for Figures, IPython uses that one instead of this method: still one image).

This module imports matplotlib; the viz functions import it only when they draw.
"""
from __future__ import annotations

import io

import matplotlib.figure


class Figure(matplotlib.figure.Figure):
    """A :class:`matplotlib.figure.Figure` with a PNG representation for Jupyter / IPython.

    Everything else is matplotlib's: ``fig.savefig(...)``, ``fig.axes``, ``fig.suptitle(...)``.
    """

    #: resolution of the notebook image (dots per inch); savefig keeps its own ``dpi=``
    repr_dpi = 100

    def savefig(self, fname, **kwargs):
        """matplotlib's savefig, cropped to what is drawn by default (``bbox_inches="tight"``): row
        labels left of the brains and long colour-bar labels are never cut at the figure's edge.
        Pass ``bbox_inches=None`` for the figure's own size."""
        kwargs.setdefault("bbox_inches", "tight")
        return super().savefig(fname, **kwargs)

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        # tight (savefig's default here), as the inline backend does
        self.savefig(buf, format="png", dpi=self.repr_dpi)
        return buf.getvalue()


def new_figure(**kwargs) -> Figure:
    """A new :class:`Figure` (keyword arguments as ``matplotlib.figure.Figure``'s: figsize, layout, ...)."""
    return Figure(**kwargs)
