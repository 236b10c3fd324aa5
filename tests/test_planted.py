"""A planted subject is a function of its arguments alone (reproducible, and the caller's RNG untouched)."""
import numpy as np
import torch

from factortopy.datasets.planted import make_planted_subject


def test_same_seed_same_subject_and_the_global_rng_is_left_alone(tmp_path):
    """The planted projections were once drawn from the global RNG: two plants differed by up to 6.7."""
    def plant(name, seed=0):
        folder = str(tmp_path / name)
        make_planted_subject(folder, n_images=24, pole_fraction=0.01, img_size=32, image_size=32, dim=4,
                             seed=seed, progress=False)
        return np.load(f"{folder}/training_split/training_fmri/lh_training_fmri.npy")

    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = plant("a")
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(7)  # whatever ran before
    np.testing.assert_array_equal(a, plant("b"))
    assert not np.array_equal(a, plant("c", seed=1))


def test_the_planted_roi_classes_are_the_releases_overlapping_and_follow_the_planted_depth(tmp_path):
    """The six Algonauts classes, written as the release writes them (read back by the independent
    reader), overlapping as the release's do, and placed along the planted hierarchy."""
    import release_readers as rr

    from factortopy.data.rois import ALGONAUTS_ROI_NAMES
    from factortopy.datasets.planted import cap_position, occipital_vertices, planted_rois, write_algonauts_subject

    vertex = np.concatenate([occipital_vertices(h, 0.05) for h in ("lh", "rh")])
    hemi = np.concatenate([np.full(occipital_vertices(h, 0.05).size, h) for h in ("lh", "rh")])
    images = [np.zeros((8, 8, 3), np.uint8)] * 4
    write_algonauts_subject(str(tmp_path), images, np.zeros((4, len(vertex)), np.float32), vertex, hemi,
                            rois=planted_rois(vertex, hemi))
    ref = rr.read_algonauts(str(tmp_path))
    mask = {label: np.concatenate([m["lh"], m["rh"]]) for label, m in ref["rois"].items()}
    assert {label.split("/")[0] for label in mask} == set(ALGONAUTS_ROI_NAMES)  # all six classes
    for cls, names in ALGONAUTS_ROI_NAMES.items():  # the release's label order
        mapping = np.load(tmp_path / "roi_masks" / f"mapping_{cls}.npy", allow_pickle=True).item()
        assert mapping == {0: "Unknown", **{k + 1: n for k, n in enumerate(names)}}
    for a, b in (("prf-visualrois/hV4", "floc-faces/OFA"), ("floc-faces/OFA", "floc-words/OWFA"),
                 ("floc-faces/FFA-2", "floc-words/VWFA-1"), ("prf-visualrois/V1v", "streams/early")):
        assert (mask[a] & mask[b]).any(), (a, b)  # overlaps as in the release
    assert np.logical_or.reduce([m for label, m in mask.items() if label.startswith("streams/")]).all()
    t = cap_position(vertex, hemi)[0]  # the planted depth: the layer a vertex reads follows it
    depth = [t[mask[f"prf-visualrois/{n}"]].mean() for n in ("V1v", "V2v", "V3v", "hV4")]
    assert depth == sorted(depth)
    late = [t[mask[label]].mean() for label in ("floc-faces/FFA-1", "floc-words/VWFA-1", "floc-places/PPA")]
    assert min(late) > t[mask["floc-faces/OFA"]].mean() > depth[0]
