"""Progress bars that render in Jupyter and fall back quietly elsewhere.

``tqdm.auto`` picks the notebook widget inside a Jupyter kernel, but without ipywidgets it warns
"IProgress not found" (once per session) before falling back. :func:`progress_bar` asks for the
widget only when ipywidgets is importable, so a notebook without it gets the plain text bar, silently.
"""
from __future__ import annotations

import importlib.util


def progress_class():
    """The tqdm class to use: ``tqdm.auto.tqdm`` when ipywidgets is importable, else ``tqdm.std.tqdm``."""
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm


def progress_bar(iterable=None, **kwargs):
    """A tqdm progress bar (same arguments as ``tqdm.tqdm``: ``total``, ``desc``, ``unit``, ``disable``, ...)."""
    return progress_class()(iterable, **kwargs)
