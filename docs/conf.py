"""Sphinx configuration of the factortopy documentation (build: docs/build.sh)."""
from __future__ import annotations

import os
import re
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src")))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network while autodoc imports the package
os.environ.setdefault("MPLBACKEND", "Agg")

import factortopy  # noqa: E402

project = "factortopy"
author = "factortopy developers"
copyright = "factortopy developers, BSD-3-Clause"
release = version = factortopy.__version__

# myst_nb reads Markdown (it includes myst_parser) and the examples/ notebooks (jupytext percent .py)
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.mathjax"]
exclude_patterns = ["_build", "README.md", "conf.py", "jupyter_execute"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
autosummary_generate = False
html_theme = "alabaster"
html_title = f"factortopy {release}"
html_static_path: list = []

# ---- the examples: ../examples/*.py (jupytext percent format), copied in and executed at build time,
# so the site shows their figures and a notebook that no longer runs fails the build (-W).
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_kernel_rgx_aliases = {".*": "python3"}
os.environ.setdefault("FACTORTOPY_EXAMPLE_SIZE", "tiny")  # the site's figures at the size CI runs
# No `%matplotlib inline` here: the kernels run as a user's plain Jupyter kernel, and the figures
# that the viz functions return show themselves (factortopy.viz.figure.Figure has _repr_png_).
_HERE = os.path.dirname(os.path.abspath(__file__))
_EXAMPLES = os.path.join(_HERE, "..", "examples")
_COPY = os.path.join(_HERE, "examples")  # ignored by git: a build product
os.makedirs(_COPY, exist_ok=True)
for _name in sorted(os.listdir(_EXAMPLES)):
    if _name.endswith(".py") and _name[:2].isdigit():
        with open(os.path.join(_EXAMPLES, _name)) as _src, open(os.path.join(_COPY, _name), "w") as _dst:
            _dst.write(_src.read())


_LITERAL = re.compile(r"(``.*?``|`[^`]*`)")
_TRAILING_UNDERSCORE = re.compile(r"(?<![\w\\])([A-Za-z]\w*)_(?![\w`])")


def _plain_docstring(app, what, name, obj, options, lines):
    """Read the project's docstring style as plain text, not as reStructuredText markup.

    Docstrings here use hanging indents (``name: text`` then deeper-indented continuation lines) and
    Python names with a trailing underscore (``global_``, ``selectors_``), which reST would take as a
    block quote and a hyperlink reference. Continuation lines are dedented to the line they continue
    (never after ``::``, a literal block) and trailing underscores outside literals are escaped.
    """
    out = []
    for line in lines:
        prev = out[-1] if out else ""
        indent = len(line) - len(line.lstrip())
        if (line.strip() and prev.strip() and not prev.rstrip().endswith("::")
                and indent > len(prev) - len(prev.lstrip())):
            bullet = prev.lstrip().startswith(("- ", "* "))  # a bullet's text continues 2 columns in
            line = " " * (len(prev) - len(prev.lstrip()) + 2 * bullet) + line.lstrip()
        parts = _LITERAL.split(line)
        line = "".join(p if i % 2 else _TRAILING_UNDERSCORE.sub(r"\1\\_", p) for i, p in enumerate(parts))
        out.append(line)
    lines[:] = out


def _map_kinds_directive():
    """``{factortopy-map-kinds}``: the table of registered map kinds, read from viz.kinds at build time,
    so the documented list is the list the code accepts."""
    from docutils import nodes
    from docutils.parsers.rst import Directive

    class MapKinds(Directive):
        def run(self):
            from factortopy.viz.kinds import MAP_KINDS

            table = nodes.table()
            group = nodes.tgroup(cols=3)
            table += group
            for width in (15, 25, 60):
                group += nodes.colspec(colwidth=width)

            def row(cells, header=False):
                r = nodes.row()
                for text in cells:
                    entry = nodes.entry()
                    entry += nodes.paragraph(text="", children=[nodes.literal(text=text)] if not header and
                                             text in MAP_KINDS else [nodes.Text(text)])
                    r += entry
                return r

            head = nodes.thead()
            head += row(["--what", "reads", "colours"], header=True)
            group += head
            body = nodes.tbody()
            for k in MAP_KINDS.values():
                body += row([k.name, ", ".join(k.needs), k.description])
            group += body
            return [table]

    return MapKinds


def setup(app):
    app.connect("autodoc-process-docstring", _plain_docstring)
    app.add_directive("factortopy-map-kinds", _map_kinds_directive())
