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


def test_the_docs_build_with_warnings_as_errors(tmp_path):
    _need("sphinx")
    _need("myst_parser")
    out = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-a", "-q", "-b", "html",
                          os.path.join(ROOT, "docs"), str(tmp_path / "html")],
                         capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"})
    assert out.returncode == 0, out.stderr[-4000:]
    assert (tmp_path / "html" / "index.html").is_file() and (tmp_path / "html" / "api.html").is_file()
