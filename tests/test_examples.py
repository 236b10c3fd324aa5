"""The examples/ notebooks run top to bottom (at the tiny size), and the docs name what exists."""
import argparse
import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "[0-9][0-9]_*.py")))
TOPICS = ("paint", "algonauts", "compare_backbones", "predict", "hierarchy")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    # one folder for all examples: the planted subject each one writes when missing is then reused
    return str(tmp_path_factory.mktemp("examples"))


def test_every_topic_has_a_percent_format_notebook():
    assert len(EXAMPLES) == len(TOPICS)
    for topic in TOPICS:
        assert any(topic in os.path.basename(p) for p in EXAMPLES), topic
    for path in EXAMPLES:
        text = open(path).read()
        assert "format_name: percent" in text or "formats: py:percent" in text, path
        assert text.count("# %%") >= 3 and "# %% [markdown]" in text, path
        assert "FACTORTOPY_EXAMPLE_SIZE" in text, path


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_example_runs_top_to_bottom_at_the_tiny_size(path, workdir):
    env = {**os.environ, "FACTORTOPY_EXAMPLE_SIZE": "tiny", "FACTORTOPY_EXAMPLE_DIR": workdir,
           "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("FACTORTOPY_ALGONAUTS_SUBJECT", None)  # the planted stand-in
    proc = subprocess.run([sys.executable, "-W", "error::UserWarning", path], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{os.path.basename(path)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"


def _doc_backbone_names(text: str) -> set:
    names = set(re.findall(r"--backbone\s+([^\s\\{}]+)", text))
    names |= set(re.findall(r"backbone\s*=\s*[\"']([^\"']+)[\"']", text))
    for group in re.findall(r"--each\s+(\S+)", text):
        names |= set(group.split(","))
    return names


def test_scaling_docs_name_backbones_that_exist():
    from factortopy.backbones import resolve

    names = _doc_backbone_names(open(os.path.join(ROOT, "docs", "scaling.md")).read())
    assert len(names) >= 4, names
    for name in sorted(names):
        resolve(name)  # raises for a name that is neither a friendly name nor a timm model
    assert _doc_backbone_names("--backbone vit_b16 --each a,b") == {"vit_b16", "a", "b"}


def test_demo_help_shows_the_demo_defaults():
    from factortopy.cli import build_parser
    from factortopy.cli.demo import DEMO_FIT

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    demo = {a.dest: a.help for a in sub.choices["demo"]._actions}
    for key, value in DEMO_FIT.items():
        shown = 0 if value is None else value  # patience None is the CLI's 0 (= never stop early)
        assert f"default {shown}" in demo[key], (key, demo[key])
    fit = {a.dest: a.help for a in sub.choices["fit"]._actions}
    assert "default 10" in fit["epochs"]  # the fit command keeps FitConfig's
