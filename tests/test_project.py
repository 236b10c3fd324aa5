"""Project-level checks that run with the test suite (and so in CI): the package layering of
docs/architecture.md, and the documentation site building with warnings as errors."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _need(module: str):
    """Skip where a tool is not installed, but never in CI, where skipping would hide a failure."""
    if os.environ.get("CI"):
        return __import__(module)
    return pytest.importorskip(module)


def test_the_layering_in_docs_architecture_holds():
    _need("importlinter")
    exe = shutil.which("lint-imports") or "lint-imports"
    out = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def _layers() -> dict:
    """package -> row of the layering contract in pyproject.toml (0 = top)."""
    tomllib = pytest.importorskip("tomllib")
    contract = tomllib.load(open(os.path.join(ROOT, "pyproject.toml"), "rb"))["tool"]["importlinter"]["contracts"][0]
    return {name.strip(): row for row, line in enumerate(contract["layers"]) for name in line.split("|")}


def test_no_module_names_a_package_above_it_in_a_string():
    """importlib / "module:attr" strings are imports the layering check cannot see: none may name a
    package above (or beside) its own. factortopy/__init__.py, the root above every layer, declares
    the lazy public names and the built-in plug-ins (the mirror of pyproject.toml's entry points)."""
    import ast
    import re

    layers = _layers()
    target = re.compile(r"^factortopy\.(\w+)(\.\w+)*(:[\w.]+)?$")
    src = os.path.join(ROOT, "src", "factortopy")
    upward = []
    for folder, _, files in os.walk(src):
        for name in files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, src)
            if not name.endswith(".py") or rel == "__init__.py":
                continue
            own = rel.split(os.sep)[0].removesuffix(".py")
            assert own in layers or own == "__main__", f"{rel}: package {own!r} is missing from the layering contract"
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    m = target.match(node.value)
                    if m and m.group(1) != own and m.group(1) in layers and own in layers \
                            and layers[m.group(1)] <= layers[own]:
                        upward.append(f"{rel}:{node.lineno} names {node.value!r}")
    assert not upward, upward


def test_the_docs_build_with_warnings_as_errors(tmp_path):
    _need("sphinx")
    _need("myst_parser")
    out = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-a", "-q", "-b", "html",
                          os.path.join(ROOT, "docs"), str(tmp_path / "html")],
                         capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"})
    assert out.returncode == 0, out.stderr[-4000:]
    assert (tmp_path / "html" / "index.html").is_file() and (tmp_path / "html" / "api.html").is_file()


def test_viz_reads_no_run_config():
    """What a painter or exporter needs of a run comes with its maps (Run.describe: title, grid,
    kind, data, backbone); no viz module opens a config.json or reads a maps dict's config."""
    import re

    viz = os.path.join(ROOT, "src", "factortopy", "viz")
    found = []
    for name in sorted(os.listdir(viz)):
        if name.endswith(".py"):
            text = open(os.path.join(viz, name)).read()
            found += [f"{name}: {m.group(0)}" for m in re.finditer(r"read_config|\bCONFIG\b|config\.json|\[\"config\"\]|"
                                                                   r"get\(\"config\"\)", text)]
    assert not found, found
