"""One ROI selection grammar for every data kind, at load time (``rois=``) and on a Subject
(``subject.subset``): ``<atlas>/<name>``, ``<atlas>`` (the union of its regions), several joined
by '+' (issue 20).

Reproductions: ``algonauts:...?rois=streams/early`` was accepted and ignored (every column loaded),
and ``nsd:...&rois=streams/early`` looked for a file named ``lh.streams/early.mgz``.

The two fixtures share their vertices and their streams atlas (the Algonauts streams files are
rewritten here, in the release's own format, with NSD's streams values at the same vertices), so
one spec must select the same (hemi, vertex) set from both; the expected sets come from
tests/release_readers.py, which reads the files as the datasets document them.
"""
import os
import warnings

import numpy as np
import pytest

from factortopy.data import load_subject, with_options
from factortopy.datasets.fixtures import write_fake_algonauts, write_fake_nsd
from release_readers import nsd_group_label, read_algonauts

T = 6
SPECS = ["streams/early", "streams", "streams/early+streams/ventral", "streams/ventral,streams/early"]


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    root = tmp_path_factory.mktemp("twins")
    alg = write_fake_algonauts(str(root / "alg"), n_train=12, n_test=5)
    nsd = write_fake_nsd(str(root / "nsd"), subject=1, n_sessions=2, trials_per_session=T,
                         lh_vertices=tuple(alg["vertex"]["lh"]), rh_vertices=tuple(alg["vertex"]["rh"]),
                         full_mesh=False)
    roi_dir = os.path.join(alg["path"], "roi_masks")
    for h in ("lh", "rh"):  # the release's streams files, holding NSD's streams values
        values = nsd["streams"][h]
        np.save(os.path.join(roi_dir, f"{h}.streams_fsaverage_space.npy"), values.astype(np.int32))
        np.save(os.path.join(roi_dir, f"{h}.streams_challenge_space.npy"), values[alg["vertex"][h]].astype(np.int32))
    return alg, nsd


def _nsd_spec(nsd, **opts):
    return with_options(f"nsd:{nsd['root']}", subject=1, sessions=2, trials_per_session=T, **opts)


def _load(spec):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_subject(spec)


def _columns(subject) -> set:
    return set(zip(np.asarray(subject.hemi).tolist(), np.asarray(subject.vertex).tolist()))


def _expected(nsd_root, spec) -> set:
    """The (hemi, vertex) pairs a selection names, read from NSD's label files independently."""
    out = set()
    for h in ("lh", "rh"):
        values, ctab = nsd_group_label(nsd_root, "streams", h)
        keep = np.zeros(values.size, bool)
        for part in spec.replace(",", "+").split("+"):
            atlas, _, name = part.partition("/")
            assert atlas == "streams"
            keep |= values > 0 if not name else values == {v: k for k, v in ctab.items()}[name]
        out |= {(h, int(v)) for v in np.flatnonzero(keep)}
    return out


@pytest.mark.parametrize("spec", SPECS)
def test_the_same_spec_selects_the_same_vertices_from_algonauts_and_nsd(twins, spec):
    alg, nsd = twins
    a = _load(with_options(f"algonauts:{alg['path']}", rois=spec))
    n = _load(_nsd_spec(nsd, rois=spec))
    expected = _expected(nsd["root"], spec)
    assert 0 < len(expected) <= 16 and (len(expected) < 16 or spec != "streams/early")
    assert _columns(a) == _columns(n) == expected
    # the Algonauts columns kept are the release's columns of those vertices, responses included
    ref = read_algonauts(alg["path"])
    full = np.concatenate([ref["fmri"]["lh"], ref["fmri"]["rh"]], axis=1)
    pairs = [("lh", v) for v in ref["vertices"]["lh"]] + [("rh", v) for v in ref["vertices"]["rh"]]
    cols = [i for i, p in enumerate(pairs) if (p[0], int(p[1])) in expected]
    np.testing.assert_array_equal(a.responses, full[:, cols])
    assert a.extra["vertex_set"] == f"nsdgeneral+RSC & {spec.replace(',', '+')}"
    assert n.extra["vertex_set"] == spec.replace(",", "+")
    assert f"vertex_set=nsdgeneral+RSC & {spec.replace(',', '+')}" in repr(a)
    # the ROI masks follow the kept columns
    assert all(m.shape == (a.n_vertices,) for m in a.extra["rois"].values())
    assert a.extra["rois"]["streams/early"].sum() == len({p for p in expected if p in _expected(nsd["root"], "streams/early")})


def test_a_subject_subset_is_the_selection_made_at_load_time(twins):
    alg, _ = twins
    full = _load(f"algonauts:{alg['path']}?split=test")
    sub = full.subset("streams/early+prf-visualrois/V1v")
    loaded = _load(with_options(f"algonauts:{alg['path']}", split="test", rois="streams/early+prf-visualrois/V1v"))
    assert _columns(sub) == _columns(loaded) and sub.n_vertices < full.n_vertices
    keep = full.extra["rois"]["streams/early"] | full.extra["rois"]["prf-visualrois/V1v"]
    np.testing.assert_array_equal(sub.responses, full.responses[:, keep])
    np.testing.assert_array_equal(sub.extra["noise_ceiling"], full.extra["noise_ceiling"][keep])
    np.testing.assert_array_equal(sub.coords, full.coords[keep])
    assert sub.images is full.images and sub.image_key == full.image_key  # the features are shared
    assert "vertex_set=nsdgeneral+RSC & streams/early+prf-visualrois/V1v" in repr(sub)
    # an atlas alone is the union of its regions (Algonauts stores only <atlas>/<name> masks)
    union = np.any([m for k, m in full.extra["rois"].items() if k.startswith("prf-visualrois/")], axis=0)
    assert full.subset("prf-visualrois").n_vertices == int(union.sum())
    # a boolean mask works too, and names how many vertices it chose
    assert "vertex_set=nsdgeneral+RSC & 3 chosen vertices" in repr(full.subset(np.arange(full.n_vertices) < 3))
    assert full.subset("all") is full


def test_an_unknown_roi_or_option_is_an_error_listing_the_valid_ones(twins):
    alg, nsd = twins
    with pytest.raises(ValueError, match=r"unknown ROI 'streams/nope'.*valid: .*streams.*streams/early"):
        _load(with_options(f"algonauts:{alg['path']}", rois="streams/nope"))
    with pytest.raises(ValueError, match=r"unknown ROI 'nope'.*prf-visualrois"):
        _load(with_options(f"algonauts:{alg['path']}", rois="nope"))
    with pytest.raises(ValueError, match=r"unknown ROI 'streams/nope'.*streams/early.*streams/ventral"):
        _load(_nsd_spec(nsd, rois="streams/nope"))
    with pytest.raises(ValueError, match=r"unknown ROI atlas 'nope'.*nsdgeneral.*streams.*Kastner2015"):
        _load(_nsd_spec(nsd, rois="nope"))
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['roi'\].*rois"):
        _load(f"algonauts:{alg['path']}?roi=streams")
    with pytest.raises(ValueError, match="names no region"):
        _load(with_options(f"algonauts:{alg['path']}", rois="+"))
    full = _load(f"algonauts:{alg['path']}")
    with pytest.raises(ValueError, match=r"unknown ROI 'streams/nope'.*streams/early"):
        full.subset("streams/nope")


def test_the_cli_reports_an_unknown_roi_in_one_line(twins, tmp_path, capsys):
    from factortopy.cli import main

    alg, _ = twins
    assert main(["fit", "--data", f"algonauts:{alg['path']}?rois=streams/nope", "--backbone", "resnet18",
                 "--random-init", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "streams/early" in err, err


def test_your_own_data_takes_the_same_selection(twins, tmp_path):
    """generic: ROI masks in rois.npz (a folder) or roi:<label> keys (an .npz), selected by rois= as
    for Algonauts and NSD; here the Algonauts twin's masks, so the same spec keeps the same vertices."""
    alg, nsd = twins
    full = _load(f"algonauts:{alg['path']}")
    folder = tmp_path / "mine"
    folder.mkdir()
    np.save(folder / "images.npy", np.zeros((full.n_images, 8, 8, 3), np.uint8))
    np.save(folder / "responses.npy", full.responses)
    np.save(folder / "vertices.npy", np.stack([(full.hemi == "rh").astype(int), full.vertex], 1))
    np.savez(folder / "rois.npz", **{k: m for k, m in full.extra["rois"].items() if k.startswith("streams/")})
    for spec in SPECS:
        mine = _load(with_options(f"generic:{folder}", rois=spec))
        assert _columns(mine) == _expected(nsd["root"], spec)
        assert mine.extra["vertex_set"] == f"as given & {spec.replace(',', '+')}"
    np.savez(tmp_path / "mine.npz", images=np.zeros((full.n_images, 8, 8, 3), np.uint8), responses=full.responses,
             vertices=np.stack([(full.hemi == "rh").astype(int), full.vertex], 1),
             **{"roi:streams/early": full.extra["rois"]["streams/early"]})
    assert _columns(_load(f"generic:{tmp_path / 'mine.npz'}?rois=streams/early")) == _expected(nsd["root"], "streams/early")
    with pytest.raises(ValueError, match=r"unknown ROI 'prf-visualrois'.*valid: streams, streams/early"):
        _load(f"generic:{tmp_path / 'mine.npz'}?rois=prf-visualrois")
