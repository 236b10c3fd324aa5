"""Every `factortopy ...` command line quoted in a code block of README.md, docs/*.md and
examples/README.md is parsed by the real parser, and run on tiny data (issue 20: the docs had gone
stale). The stand-ins keep each command's shape and options and change only what cannot run here:
the data path (a tiny Algonauts-layout subject), the backbone (a random-init ResNet-18 at 32 px: the
named ones need hub weights), the device (cpu), the size (one epoch, a 40-image demo) and
placeholders (NAME, RUN_DIR, FILE, {}). `study` commands are parsed only (tests/test_study.py runs
studies)."""
import glob
import os
import re
import shlex
import shutil
import warnings

import numpy as np
import pytest

from factortopy.cli import build_parser, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))),
        os.path.join(ROOT, "examples", "README.md")]


def doc_commands() -> list[tuple[str, str]]:
    """(file, command) for each `factortopy` line in a shell code block (fenced or indented),
    continuation lines joined; also the `factortopy` part of an `install && factortopy ...` line."""
    out = []
    for path in DOCS:
        lines = open(path).read().splitlines()
        fence = None
        i = 0
        while i < len(lines):
            line, text = lines[i], lines[i].strip()
            if text.startswith("```"):
                fence = None if fence is not None else text[3:].strip()
                i += 1
                continue
            code = fence in ("", "bash", "sh", "console", "shell") if fence is not None else line.startswith("    ")
            command = None
            if code and re.match(r"^(\$ )?factortopy\s", text):
                command = text.removeprefix("$ ")
            elif code and "&& factortopy " in text:
                command = "factortopy " + text.split("&& factortopy ", 1)[1]
            if command is not None:
                while command.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    command = command[:-1] + " " + lines[i].strip()
                out.append((os.path.relpath(path, ROOT), command))
            i += 1
    return out


COMMANDS = doc_commands()


def _words(command: str) -> list[str]:
    """The arguments after `factortopy`, comments dropped, usage brackets ([--img-size N]) removed."""
    command = re.sub(r"\[[^\]]*\]", "", command)
    return shlex.split(command, comments=True)[1:]


def test_the_docs_quote_the_commands_users_need():
    used = {_words(c)[0] for _, c in COMMANDS}
    assert {"demo", "fit", "layers", "evaluate", "baseline", "paint", "predict", "study"} <= used, used
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("where, command", COMMANDS, ids=[f"{w}: {c[:60]}" for w, c in COMMANDS])
def test_every_quoted_command_line_parses(where, command):
    parser = build_parser()
    words = [w.replace("{}", "resnet18") for w in _words(command)]
    try:
        parser.parse_args(words)
    except SystemExit as err:  # argparse: unknown option, missing argument, bad choice
        pytest.fail(f"{where}: `{command}` does not parse (exit {err.code})")


# ---------------------------------------------------------------------------- running them
def _stand_ins(words: list[str], data: str) -> list[str]:
    out, skip = [], False
    for i, w in enumerate(words):
        if skip:
            skip = False
            continue
        if w == "--backbone":
            out += ["--backbone", "resnet18", "--random-init", "--img-size", "32"]
            skip = True
            continue
        if w == "--pretrained":
            continue
        if w == "cuda":
            w = "cpu"
        w = re.sub(r"^(algonauts:)/data/(algonauts_2023/)?subj01", r"\g<1>" + data, w)
        w = w.replace("{}", "resnet18")
        w = {"NAME": "resnet18", "RUN_DIR": "runs/clip_subj01", "FILE": "out.png"}.get(w, w)
        out.append(w)
    if out[0] == "fit":
        out += ["--epochs", "1"]
    if out[0] == "demo":
        out += ["--images", "40", "--epochs", "1", "--no-figures"]
    if out[0] in ("fit", "demo", "predict"):
        out.append("--quiet")
    return out


@pytest.mark.slow
def test_every_quoted_command_line_runs_on_tiny_data(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from factortopy.datasets.fixtures import write_fake_algonauts

    data = write_fake_algonauts(str(tmp_path / "data"), n_train=40, n_test=6)["path"]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    rng = np.random.default_rng(0)
    for name in ("my_images/a.png", "my_images/b.png", "more_images/c.png", "cat.png"):
        os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(name)
    ran, seen = [], set()
    for where, command in COMMANDS:
        words = _stand_ins(_words(command), data)
        if words[0] == "study" or tuple(words) in seen:
            continue
        seen.add(tuple(words))
        expanded = []
        for w in words:
            expanded += sorted(glob.glob(w)) if "*" in w else [w]
        for i, w in enumerate(expanded):  # a second run a command names: a copy of the first fit
            if re.fullmatch(r"runs/[\w-]+", w) and (i == 0 or expanded[i - 1] != "--out") and not os.path.exists(w) \
                    and os.path.exists("runs/clip_subj01"):
                shutil.copytree("runs/clip_subj01", w)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rc = main(expanded)
        err = capsys.readouterr().err
        assert rc == 0, f"{where}: `{command}` ran as `factortopy {' '.join(expanded)}` -> exit {rc}: {err[-1500:]}"
        ran.append(expanded[0])
    assert {"demo", "fit", "layers", "evaluate", "baseline", "paint", "predict"} <= set(ran), ran


def test_the_torch_range_the_readme_claims_is_the_one_ci_tests():
    """README "Install" names the supported torch range; .ci/run installs its two ends; pyproject's
    floor is the lower one."""
    readme = open(os.path.join(ROOT, "README.md")).read()
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    pyproject = open(os.path.join(ROOT, "pyproject.toml")).read()
    low, high = re.search(r"supports \*\*torch (\d+\.\d+) to (\d+\.\d+)\*\*", readme).groups()
    pins = re.findall(r"pip\"? install -q torch==(\d+\.\d+)\.\d+ torchvision==", ci)
    assert sorted(pins, key=lambda v: tuple(map(int, v.split(".")))) == [low, high], (pins, low, high)
    assert f'"torch>={low}"' in pyproject
    assert f"torch=={high}." in readme.split("## Install")[0]  # the commands at the top install the upper end
