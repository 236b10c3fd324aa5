"""Plug-ins through entry points (factortopy._plugins): a package installed beside factortopy adds a
backbone source, a data kind and a map kind that every process finds, not only the one that fitted.

The plug-in package is written here as it would be installed: a module and a ``.dist-info`` folder
with ``METADATA`` and ``entry_points.txt``, on ``sys.path`` through ``PYTHONPATH`` (no pip).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import factortopy
from factortopy import _plugins

SRC = os.path.dirname(os.path.dirname(factortopy.__file__))

TOY_MODULE = '''
"""A plug-in package: a backbone source, a data kind and a map kind for factortopy."""
import numpy as np
import torch

from factortopy.backbones import HookBackbone


def build(target, spec):
    """A small random CNN (drawn under the spec's seed by load_backbone)."""
    width = {"net": 8, "wide": 16}[target]
    net = torch.nn.Sequential(torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(width, width, 3, stride=2, padding=1), torch.nn.ReLU())
    return HookBackbone(net, spec.layers or ["1", "3"], input_size=spec.img_size or 32, name=f"toy:{target}")


build.options = ()


def load(path, split="train"):
    """Reads the generic layout (a data kind of its own name)."""
    from factortopy.data.generic import load_generic

    return load_generic(path, split=split)


def _first_layer(maps, options):
    from factortopy.viz import maps as M

    return M.value_painting(maps["vertex"], maps["hemi"], maps["layer_probs"][:, 0], "viridis", 0, 1,
                            label="p(first layer)")


from factortopy.viz.kinds import MapKind  # noqa: E402

FIRST_LAYER = MapKind("first_layer_p", ("layer_probs",), _first_layer, "probability of the first layer")
'''


def _dist(site, name, version, entry_points: str, module: str | None = None):
    """Install distribution ``name`` into the folder ``site`` the way pip lays it out."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(entry_points)
    if module is not None:
        (site / f"{name}.py").write_text(module)
    return site


TOY_ENTRY_POINTS = """[factortopy.backbone_sources]
toy = toyplug:build

[factortopy.data_kinds]
toydata = toyplug:load

[factortopy.map_kinds]
first_layer_p = toyplug:FIRST_LAYER
"""


@pytest.fixture(scope="module")
def toy_site(tmp_path_factory):
    return _dist(tmp_path_factory.mktemp("site"), "toyplug", "1.0", TOY_ENTRY_POINTS, TOY_MODULE)


@pytest.fixture
def on_path(monkeypatch):
    """Put folders on sys.path for this process and forget the plug-ins found before and after."""
    def add(*folders):
        for f in folders:
            monkeypatch.syspath_prepend(str(f))
        _plugins.rescan()
    yield add
    monkeypatch.undo()
    _plugins.rescan()


def _run(args, site=None, cwd=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(([str(site)] if site else []) + [SRC]),
               OMP_NUM_THREADS="1", MPLBACKEND="Agg", TQDM_DISABLE="1", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd)


def _cli(*args, site=None):
    return _run(["-m", "factortopy", *args, "--threads", "1"], site)


def test_a_plugin_package_works_in_every_process(toy_site, tmp_path):
    """Fit with the plug-in's backbone and data kind in one process; evaluate, paint (with the
    plug-in's map kind) and predict in fresh ones: the evaluated r equals the fitted r."""
    from PIL import Image

    rng = np.random.default_rng(0)
    levels = rng.uniform(0, 1, (80, 4, 4))
    images = (np.kron(levels, np.ones((8, 8)))[..., None].repeat(3, -1) * 255).astype(np.uint8)
    responses = levels.reshape(80, 16)[:, :6] + 0.1 * rng.standard_normal((80, 6))
    np.savez(tmp_path / "subject.npz", images=images, responses=responses.astype(np.float32),
             vertices=np.c_[[0, 0, 0, 1, 1, 1], [1, 2, 3, 1, 2, 3]])
    run = str(tmp_path / "run")
    fitted = _cli("fit", "--data", f"toydata:{tmp_path / 'subject.npz'}", "--backbone", "toy:net", "--out", run,
                  "--epochs", "2", "--dim", "4", "--hidden", "8", "--val-fraction", "0.2", "--heldout-fraction",
                  "0.2", "--quiet", site=toy_site)
    assert fitted.returncode == 0, fitted.stderr
    config = json.load(open(os.path.join(run, "config.json")))
    assert config["backbone"]["source"] == "toy"
    assert config["backbone"]["distribution"] == {"distribution": "toyplug", "version": "1.0"}
    assert config["plugins"] == {"data_kinds:toydata": {"distribution": "toyplug", "version": "1.0"}}
    metrics = json.load(open(os.path.join(run, "metrics.json")))

    evaluated = _cli("evaluate", run, site=toy_site)  # a fresh process rebuilds the plug-in's backbone
    assert evaluated.returncode == 0, evaluated.stderr
    summary = json.load(open(os.path.join(run, "eval_heldout.json")))
    assert summary["pearson_mean"] == pytest.approx(metrics["heldout_pearson_mean"], abs=1e-5)

    png = tmp_path / "first.png"
    painted = _cli("paint", run, "--what", "first_layer_p", "--view", "posterior", "--out", str(png), site=toy_site)
    assert painted.returncode == 0, painted.stderr
    assert png.stat().st_size > 1000

    test_images = []
    for i in range(3):
        test_images.append(str(tmp_path / f"img{i}.png"))
        Image.fromarray(images[i]).save(test_images[-1])
    out = tmp_path / "pred.npy"
    predicted = _cli("predict", run, *test_images, "--out", str(out), site=toy_site)
    assert predicted.returncode == 0, predicted.stderr
    here = _run(["-c", "import sys, numpy as np, factortopy; "
                       f"print(np.asarray(factortopy.predict({run!r}, {test_images!r})).tolist())"], toy_site)
    assert here.returncode == 0, here.stderr
    np.testing.assert_allclose(np.load(out), json.loads(here.stdout), atol=1e-5)

    # without the package, every command says which distribution to install
    for args in (("evaluate", run), ("predict", run, test_images[0], "--out", str(tmp_path / "p2.npy"))):
        missing = _cli(*args)
        assert missing.returncode == 2
        assert "comes from the distribution 'toyplug' 1.0" in missing.stderr
        assert "pip install 'toyplug==1.0'" in missing.stderr, missing.stderr


def test_import_factortopy_scans_and_imports_no_plugin(toy_site):
    code = ("import sys, factortopy, factortopy.runs; "
            "print([m for m in ('factortopy._plugins', 'toyplug', 'importlib.metadata') if m in sys.modules])")
    out = _run(["-c", code], toy_site)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.replace("'", '"')) == []


def test_two_plugins_claiming_one_name_is_an_error(toy_site, tmp_path, on_path):
    other = _dist(tmp_path / "other", "otherplug", "2.0", "[factortopy.backbone_sources]\ntoy = otherplug:build\n")
    on_path(toy_site, other)
    from factortopy.backbones import sources

    with pytest.raises(_plugins.PluginError, match="two plug-ins claim the factortopy.backbone_sources name 'toy'"
                                                   ".*'(toyplug|otherplug)'.*'(otherplug|toyplug)'"):
        sources()
    _plugins.rescan()
    builtin = _dist(tmp_path / "third", "thirdplug", "1.0", "[factortopy.run_kinds]\nridge = thirdplug:Ridge\n")
    on_path(builtin)
    with pytest.raises(_plugins.PluginError, match="factortopy's built-in and the distribution 'thirdplug'"):
        _plugins.plugins("run_kinds")


def test_a_plugin_that_fails_to_import_names_its_distribution(tmp_path, on_path):
    broken = _dist(tmp_path / "broken", "brokenplug", "0.3", "[factortopy.backbone_sources]\nbroken = brokenplug:build\n",
                   "import a_module_that_is_not_installed\n")
    on_path(broken)
    from factortopy.backbones import load_backbone

    with pytest.raises(_plugins.PluginError, match="of the distribution 'brokenplug' cannot be loaded \\(ModuleNotFoundError"):
        load_backbone("broken:net")
    from factortopy.cli import main

    assert main(["layers", "broken:net"]) == 2  # a one-line message on the command line, not a traceback


def test_the_builtins_are_the_entry_points_pyproject_declares():
    tomllib = pytest.importorskip("tomllib")
    pyproject = os.path.join(os.path.dirname(SRC), "pyproject.toml")
    if not os.path.isfile(pyproject):
        pytest.skip("not a source checkout")
    declared = tomllib.load(open(pyproject, "rb"))["project"]["entry-points"]
    assert {g: dict(e) for g, e in declared.items() if g.startswith("factortopy.")} == factortopy._BUILTIN_PLUGINS
    assert set(factortopy._BUILTIN_PLUGINS) == set(_plugins.GROUPS.values())
    for group, entries in factortopy._BUILTIN_PLUGINS.items():  # each names something that exists
        for name, target in entries.items():
            assert _plugins.Plugin(group, name, target).load() is not None


def test_an_installed_factortopys_metadata_declares_the_builtins():
    """With a current install (CI installs from the README), importlib.metadata lists the built-ins
    too; a stale dist-info (an editable install older than the groups) is skipped, and works anyway."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("factortopy")
    except PackageNotFoundError:
        pytest.skip("factortopy is not installed (a clone on PYTHONPATH): the built-ins still work")
    declared = {}
    for ep in dist.entry_points:
        if ep.group in _plugins.GROUPS.values():
            declared.setdefault(ep.group, {})[ep.name] = ep.value
    if not declared:
        pytest.skip("factortopy's dist-info predates the plug-in groups (stale editable install)")
    assert declared == factortopy._BUILTIN_PLUGINS
