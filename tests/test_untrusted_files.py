"""No code runs from a data file (issue 12, items 1 and 3).

Every kind of file the library reads gets a pickle payload whose ``__reduce__`` creates a marker
folder when unpickled. Each reader must refuse the file with an error naming it, and the marker
must never appear. ``test_the_payload_is_live`` proves the payload does run when unpickled, so a
reader that unpickled it would fail these tests.
"""
import io
import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from factortopy.data import load_subject
from factortopy.data.algonauts import load_algonauts
from factortopy.fitting.fit import fit
from factortopy.runs import open_run

pytestmark = pytest.mark.filterwarnings("ignore:the (validation|held-out) set has only")

FIT = dict(backbone="resnet18", random_init=True, img_size=32, layers=["layer1", "layer2"], epochs=1,
           batch_size=16, dim=4, hidden=8, patience=None, val_fraction=0.2, heldout_fraction=0.2, progress=False)


class Payload:
    """Unpickling it runs ``os.makedirs(marker)``: the marker's existence proves code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def hostile_array(marker) -> np.ndarray:
    """An object array whose pickle holds the payload (what ``np.save(..., allow_pickle=True)`` writes)."""
    a = np.empty(3, dtype=object)
    a[:] = [Payload(marker), 1, 2]
    return a


@pytest.fixture
def marker(tmp_path):
    m = tmp_path / "PAYLOAD_RAN"
    yield m
    assert not m.exists(), "a data file executed code"


@pytest.fixture(scope="module")
def run_dir(subject_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("runs") / "run")
    fit(load_algonauts(subject_dir), out=out, **FIT)
    return out


def _copy(src, tmp_path, name="copy"):
    dst = str(tmp_path / name)
    shutil.copytree(src, dst)
    return dst


def test_the_payload_is_live(tmp_path):
    m = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(m)))
    assert m.exists()
    np.save(tmp_path / "a.npy", hostile_array(tmp_path / "ran2"), allow_pickle=True)
    np.load(tmp_path / "a.npy", allow_pickle=True)
    assert (tmp_path / "ran2").exists()


# ---- checkpoints and weights -----------------------------------------------------------------------
def test_hostile_checkpoint_is_a_clear_error_not_a_restart(subject_dir, tmp_path, marker):
    out = tmp_path / "interrupted"
    out.mkdir()
    torch.save({"resume_key": "x", "model": Payload(marker), "epoch": 1}, out / "checkpoint.pt")
    with pytest.raises(ValueError, match="checkpoint.pt cannot be read.*holds Python objects") as err:
        fit(load_algonauts(subject_dir), out=str(out), **FIT)
    assert (out / "checkpoint.pt").exists() and not (out / "config.json").exists()  # nothing restarted
    assert "weights_only" not in str(err.value)  # torch's text went on to advise weights_only=False (issue 22)


def test_hostile_weights_file_is_refused(tmp_path, marker):
    from factortopy.backbones import load_backbone

    path = tmp_path / "weights.pth"
    torch.save({"conv1.weight": Payload(marker)}, path)
    with pytest.raises(ValueError, match="holds Python objects .* never unpickled") as err:
        load_backbone("resnet18", weights=str(path), img_size=32)
    assert "weights_only" not in str(err.value)  # never torch's advice to set weights_only=False (issue 22)


def test_hostile_weights_through_the_command_line(subject_dir, tmp_path, marker, capsys):
    from factortopy.cli import main

    path = tmp_path / "weights.pth"
    torch.save({"conv1.weight": Payload(marker)}, path)
    assert main(["fit", "--data", f"algonauts:{subject_dir}", "--backbone", "resnet18", "--img-size", "32",
                 "--weights", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "weights.pth" in capsys.readouterr().err


# ---- data files ------------------------------------------------------------------------------------
def _rois(space):
    from factortopy.data.rois import load_rois

    return lambda folder: load_rois(folder, "floc-faces", space=space)


ALGONAUTS_FILES = {  # file -> the reader that must refuse it
    "training_split/training_fmri/lh_training_fmri.npy": load_algonauts,
    "roi_masks/lh.all-vertices_fsaverage_space.npy": load_algonauts,
    "roi_masks/lh.prf-visualrois_challenge_space.npy": load_algonauts,
    "roi_masks/mapping_floc-bodies.npy": load_algonauts,
    "roi_masks/rh.floc-faces_challenge_space.npy": _rois("challenge"),
    "roi_masks/rh.floc-faces_fsaverage_space.npy": _rois("fsaverage"),
    "test_split/noise_ceiling/lh_noise_ceiling.npy": lambda folder: load_algonauts(folder, split="test"),
}


@pytest.mark.parametrize("rel", list(ALGONAUTS_FILES))
def test_hostile_algonauts_files(rel, subject_dir, tmp_path, marker):
    folder = _copy(subject_dir, tmp_path)
    np.save(os.path.join(folder, rel), hostile_array(marker), allow_pickle=True)
    with pytest.raises((ValueError, OSError)):
        ALGONAUTS_FILES[rel](folder)


def _raw_bytes_object_array(path) -> None:
    """A mapping_<cls>.npy whose pickle has numpy build a 0-d object array from 8 raw bytes: an
    object dtype whose pickled state drops its list-pickle flag (flags 0x3d, not 0x3f), then the
    bytes 0x41 x 8 as the array's data, a pointer the file chose (written by hand: no object can
    pickle to this). numpy's own reconstruction of it dereferences the pointer: a segfault."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": ()})
    body = b"".join([
        b"\x80\x04",
        b"\x8c\x16numpy._core.multiarray\x94\x8c\x0c_reconstruct\x94\x93\x94",  # _reconstruct
        b"\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94",  # numpy.ndarray
        b"K\x00\x85\x94C\x01b\x94\x87\x94R\x94",  # _reconstruct(ndarray, (0,), b'b')
        b"(K\x01)",  # state: (1, (), ...
        b"\x8c\x05numpy\x94\x8c\x05dtype\x94\x93\x94\x8c\x02O8\x94\x89\x88\x87\x94R\x94",  # dtype('O8')
        b"(K\x03\x8c\x01|\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK=t\x94b",  # its state, flags 0x3d
        b"\x89C\x08AAAAAAAA",  # ... False, b'AAAAAAAA')
        b"t\x94b.",
    ])
    with open(path, "wb") as f:
        f.write(header.getvalue() + body)


def test_a_mapping_whose_pickle_builds_an_object_array_from_raw_bytes_is_refused(subject_dir, tmp_path):
    """Crashed the process (exit 139) through the restricted unpickler (issue 23): run in a
    subprocess, so a regression fails this test instead of killing the suite."""
    folder = _copy(subject_dir, tmp_path)
    _raw_bytes_object_array(os.path.join(folder, "roi_masks", "mapping_floc-bodies.npy"))
    code = ("import sys\nfrom factortopy.data.algonauts import load_algonauts\n"
            "try:\n    load_algonauts(sys.argv[1])\nexcept ValueError as err:\n    print(err)\n    sys.exit(3)\n")
    done = subprocess.run([sys.executable, "-c", code, folder], capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, (done.returncode, done.stderr[-2000:])
    assert "mapping_floc-bodies.npy is not a ROI mapping" in done.stdout and "raw bytes" in done.stdout


def test_mapping_files_as_numpy_writes_them_are_read(tmp_path):
    """The stand-ins read what np.save writes: Python ints and strings, numpy integer keys and
    numpy string names (scalars pickled as their bytes)."""
    from factortopy.data.rois import read_mapping_file

    for mapping in ({0: "Unknown", 1: "V1v", 2: "hV4"},
                    {np.int64(0): np.str_("Unknown"), np.int32(-3): np.str_("V1v"), np.uint8(7): "FFA-1"}):
        np.save(tmp_path / "m.npy", np.array(mapping, dtype=object), allow_pickle=True)
        assert read_mapping_file(str(tmp_path / "m.npy")) == {int(k): str(v) for k, v in mapping.items()}


def test_hostile_generic_files(tmp_path, marker):
    rng = np.random.default_rng(0)
    good = dict(images=rng.integers(0, 255, (6, 8, 8, 3), dtype=np.uint8),
                responses=rng.normal(size=(6, 4)).astype(np.float32),
                vertices=np.array([[0, 1], [0, 2], [1, 3], [1, 4]]))
    np.savez(tmp_path / "data.npz", **{**good, "responses": hostile_array(marker)})
    with pytest.raises(ValueError):
        load_subject(f"generic:{tmp_path / 'data.npz'}")
    for name in good:  # the folder layout, one hostile file at a time
        folder = tmp_path / f"folder_{name}"
        folder.mkdir()
        for k, v in good.items():
            np.save(folder / f"{k}.npy", hostile_array(marker) if k == name else v, allow_pickle=True)
        with pytest.raises(ValueError):
            load_subject(f"generic:{folder}")


# ---- the RUN_DIR -----------------------------------------------------------------------------------
def _as_an_earlier_versions_run(folder) -> None:
    """The run as an earlier factortopy wrote it: no checksums.json, no run_format (read unchecked,
    with a warning); a run of this version without its checksums is an error before any reader runs."""
    os.remove(os.path.join(folder, "checksums.json"))
    path = os.path.join(folder, "config.json")
    config = json.load(open(path))
    config.pop("run_format")
    json.dump(config, open(path, "w"))


@pytest.mark.parametrize("name", ["selectors.npz", "scores.npz", "response_stats.npz"])
def test_hostile_run_arrays(name, run_dir, tmp_path, marker):
    folder = _copy(run_dir, tmp_path)
    np.savez(os.path.join(folder, name), vertex=hostile_array(marker), mean=hostile_array(marker),
             hemi=hostile_array(marker))
    _as_an_earlier_versions_run(folder)  # the reader itself must refuse, not the digest
    with pytest.raises(ValueError, match=name), pytest.warns(UserWarning, match="read unchecked"):
        run = open_run(folder)
        run.selectors()
        run.scores()


def test_hostile_maps_and_planted_truth(run_dir, tmp_path, marker):
    from factortopy.runs.maps import load_maps

    folder = _copy(run_dir, tmp_path)
    np.savez(os.path.join(folder, "selectors.npz"), layer_probs=hostile_array(marker))
    with pytest.raises(ValueError, match="selectors.npz"):
        load_maps(folder)
    truth = tmp_path / "planted_truth.npz"
    np.savez(truth, vertex=hostile_array(marker))
    with pytest.raises(ValueError, match="planted_truth.npz"):
        load_maps(truth)


def test_hostile_ridge_run(subject_dir, tmp_path, marker):
    pytest.importorskip("himalaya")
    from factortopy.baselines.run import fit_ridge_baseline

    out = str(tmp_path / "ridge")
    fit_ridge_baseline(load_algonauts(subject_dir), "resnet18", layers=["layer1"], random_init=True, img_size=32,
                       out=out, progress=False)
    with np.load(os.path.join(out, "ridge.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(os.path.join(out, "ridge.npz"), **{**arrays, next(iter(arrays)): hostile_array(marker)})
    with pytest.raises(ValueError, match="ridge.npz"):
        open_run(out)


@pytest.mark.parametrize("content, message", [
    ("[1, 2, 3]", "not a factortopy run config"),
    ('"kind"', "not a factortopy run config"),
    ('{"kind": "os:system"}', "unknown run kind"),
    ('{"kind": "factortopy"', "not valid JSON"),
    ("\x80\x81 not text", "not valid JSON"),
])
def test_hostile_config_json(content, message, run_dir, tmp_path):
    folder = _copy(run_dir, tmp_path)
    with open(os.path.join(folder, "config.json"), "w", encoding="latin-1") as f:
        f.write(content)
    with pytest.raises(ValueError, match=message) as err:
        open_run(folder)
    assert "config.json" in str(err.value) or "unknown run kind" in str(err.value)


def test_config_cannot_name_code_to_import(run_dir, tmp_path, marker):
    """A backbone spec in config.json names only registered sources: never a module to import."""
    folder = _copy(run_dir, tmp_path)
    path = os.path.join(folder, "config.json")
    config = json.load(open(path))
    config["backbone"]["spec"]["name"] = "os:makedirs"
    json.dump(config, open(path, "w"))
    with pytest.raises(ValueError):
        open_run(folder).backbone()


# ---- HTML ------------------------------------------------------------------------------------------
def test_hostile_names_are_escaped_in_the_interactive_page(tmp_path):
    pytest.importorskip("plotly")
    from factortopy.viz import interactive_html, layer_painting

    evil = "</script><script>document.title='owned'</script><img src=x onerror=alert(1)>"
    vertex = np.arange(20)
    hemi = np.array(["lh"] * 10 + ["rh"] * 10)
    probs = np.random.default_rng(0).dirichlet(np.ones(2), 20)
    painting = layer_painting(vertex, hemi, probs, [evil, "ok" + evil])
    path = tmp_path / "page.html"
    interactive_html(painting, str(path), title=evil, description=evil)
    html = path.read_text()
    assert "owned" in html  # the names are on the page ...
    assert evil not in html and "<script>document.title" not in html  # ... but never as markup
    assert "<img src=x" not in html


#: markup plotly renders from text (its pseudo-HTML): a link, styled text, bold; and HTML's own
HOSTILE = ('<a href="https://evil.example/x">link</a><span style="font-size:77px">styled</span><b>bold</b>'
           '<img src=x onerror="document.title=1">')
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
          "--hide-scrollbars", "--window-size=800,600", "--virtual-time-budget=10000"]
# After plotly has drawn the page, show the hover label of the first vertex with data through
# plotly's own hover renderer (Fx.loneHover, which a real hover on the 3-D scene calls with the
# trace's text), so the hover text is rendered too, not only the title and the legend's words.
_HOVER = """<script>
window.addEventListener("load", function () { setTimeout(function () {
  var gd = document.querySelector(".plotly-graph-div");
  var text = gd.data[0].text.find(function (t) { return t.indexOf("layer:") >= 0; });
  var layout = gd._fullLayout;
  Plotly.Fx.loneHover({x: 300, y: 300, text: text, name: "", color: "#444"},
                      {container: layout._hoverlayer.node(), outerContainer: layout._paper.node(), gd: gd});
}, 500); });
</script></body>"""


def _chromium_dom(page: str) -> str:
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if chromium is None:
        pytest.skip("chromium not installed: the page is not rendered")
    done = subprocess.run([chromium, *_FLAGS, "--dump-dom", f"file://{page}"], capture_output=True, text=True,
                          timeout=120, check=False)
    return done.stdout


def _assert_plain_text(dom: str, rendered_at_least: int) -> None:
    """No element made from the hostile markup (no link to it, no style from it, no bold, no
    image), read by an HTML parser from the rendered DOM; and its words are on the page as text."""
    from html.parser import HTMLParser

    class Elements(HTMLParser):
        def __init__(self):
            super().__init__()
            self.bad, self.text = [], []

        def handle_starttag(self, tag, attrs):
            a = {k: v or "" for k, v in attrs}
            if (tag == "a" and "evil.example" in a.get("href", "") + a.get("xlink:href", "")) or tag in ("b", "img") \
                    or "77px" in a.get("style", "") or "bold" in a.get("style", ""):
                self.bad.append((tag, a))

        def handle_data(self, data):
            self.text.append(data)

    parsed = Elements()
    parsed.feed(dom)
    assert not parsed.bad, f"elements made from a hostile string: {parsed.bad[:3]}"
    assert "".join(parsed.text).count('<a href="https://evil.example/x">') >= rendered_at_least, \
        "the hostile strings are not on the page as text"


def test_hostile_strings_render_as_plain_text_on_the_interactive_page(tmp_path):
    """plotly renders its own pseudo-HTML from titles, annotations and hover text: a layer name, ROI
    name or title holding <a href>/<span style>/<b> became a live link and styled text (issue 23)."""
    pytest.importorskip("plotly")
    from factortopy.viz import interactive_html, layer_painting

    vertex = np.arange(40)
    hemi = np.array(["lh"] * 20 + ["rh"] * 20)
    probs = np.random.default_rng(0).dirichlet(np.ones(2), 40)
    painting = layer_painting(vertex, hemi, probs, [HOSTILE, "late" + HOSTILE])
    path = tmp_path / "page.html"
    interactive_html(painting, str(path), hemis="lh", title="title" + HOSTILE, description="words" + HOSTILE,
                     roi={"roi" + HOSTILE: np.ones(40, bool)})
    page = path.read_text().replace("</body>", _HOVER)
    path.write_text(page)
    dom = _chromium_dom(str(path))
    assert 'class="hovertext"' in dom, "the hover label was not drawn"
    _assert_plain_text(dom, rendered_at_least=4)  # title, legend words, hover layer name and ROI


def test_hostile_strings_render_as_plain_text_on_the_study_page(tmp_path):
    """The study page (plain HTML, no plotly) escapes labels, names and cells too."""
    from types import SimpleNamespace

    from factortopy.study.page import write_page

    study = SimpleNamespace(name="study" + HOSTILE, alignment_layer="expected" + HOSTILE, hierarchy="h" + HOSTILE)
    rows = [{"label": "net" + HOSTILE, "subject": "subj01" + HOSTILE, "heldout_r": 0.5}]
    alignment = [{"label": "net" + HOSTILE, "method": HOSTILE, "alignment_slope": 0.3, "interval": HOSTILE}]
    path = write_page(study, rows, [], {}, str(tmp_path), alignment=alignment, comparisons=rows)
    _assert_plain_text(_chromium_dom(path), rendered_at_least=6)
