"""The examples/ notebooks run top to bottom (at the tiny size), and the docs name what exists."""
import argparse
import glob
import os
import re

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


#: figures each notebook shows (cells ending in a viz call): each must come out as exactly one image
FIGURES = {"01_paint_a_network.py": 2, "02_fit_an_algonauts_subject.py": 0, "03_compare_backbones.py": 1,
           "04_predict_new_images.py": 0, "05_hierarchy_and_rois.py": 2}


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_example_runs_in_a_plain_jupyter_kernel_and_shows_its_figures(path, workdir):
    """As a user runs them: the jupytext notebook opened in Jupyter and run top to bottom by a fresh
    python3 kernel (nbclient), with no magic and no MPLBACKEND. A cell error fails the test; so does
    a warning printed by the library (the script runs used -W error::UserWarning)."""
    jupytext = pytest.importorskip("jupytext")
    pytest.importorskip("nbclient")
    from notebooks import execute, images, stderr_text

    nb = jupytext.read(path)
    env = {"FACTORTOPY_EXAMPLE_SIZE": "tiny", "FACTORTOPY_EXAMPLE_DIR": workdir, "HF_HUB_OFFLINE": "1",
           "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", "FACTORTOPY_ALGONAUTS_SUBJECT": ""}  # the planted stand-in
    nb = execute(nb, workdir, env=env, timeout=300)
    name = os.path.basename(path)
    assert len(images(nb)) == FIGURES[name], f"{name}: {len(images(nb))} images shown, {FIGURES[name]} expected"
    assert "Warning" not in stderr_text(nb), f"{name} warned:\n{stderr_text(nb)[-3000:]}"


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
