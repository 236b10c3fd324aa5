"""Progress bars that render in Jupyter and fall back quietly elsewhere.

``tqdm.auto`` picks the notebook widget inside a Jupyter kernel, but without ipywidgets it warns
"IProgress not found" (once per session) before falling back. :func:`progress_bar` asks for the
widget only when ipywidgets is importable, so a notebook without it gets the plain text bar, silently.
Libraries we import import ``tqdm.auto`` themselves (huggingface_hub, through timm, transformers and
open_clip): :func:`quiet_tqdm_auto` imports it first with that warning silenced.
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


def quiet_tqdm_auto() -> None:
    """Import ``tqdm.auto`` once with its "IProgress not found" warning silenced, so a third-party
    import of it inside a Jupyter kernel without ipywidgets (timm -> huggingface_hub) prints nothing;
    the fallback text bar is the same either way. Call before importing such a library."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import tqdm.auto  # noqa: F401
