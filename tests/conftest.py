import hashlib
import json
import os
import tempfile

import numpy as np
import pytest

# No network at run time: the hub must fail at once, and figures render off-screen.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")
# The whole-file digest memo (factortopy._digest) goes to a private folder, never the user's ~/.cache.
os.environ.setdefault("FACTORTOPY_CACHE_DIR", tempfile.mkdtemp(prefix="factortopy-test-cache-"))


def _write_run(d, n_per=400, L=5, seed=0, full=False, name="vit_test", with_scores=True):
    """A RUN_DIR fixture following docs/run-dir.md: the maps of a run as an earlier factortopy wrote
    them (no ``run_format``; checksums.json records its arrays, not its config)."""
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(seed)
    top = 163842 if full else 10242  # full fsaverage, or fsaverage5
    vertex = np.concatenate([np.sort(rng.choice(top, n_per, replace=False)) for _ in range(2)]).astype(np.int64)
    hemi = np.array(["lh"] * n_per + ["rh"] * n_per)
    n = len(vertex)
    maps = dict(vertex=vertex, hemi=hemi, layer_names=np.array([f"blocks.{i}" for i in range(L)]),
                layer_probs=rng.dirichlet(np.ones(L), n).astype(np.float32),
                space_xy=rng.uniform(-0.99, 0.99, (n, 2)).astype(np.float32),
                scale=rng.uniform(0, 1, n).astype(np.float32), readout=rng.normal(size=(n, 8)).astype(np.float32))
    np.savez(os.path.join(d, "selectors.npz"), **maps)
    if with_scores:
        perm = rng.permutation(n)  # scores in another order: must be matched by (hemi, vertex)
        r = rng.uniform(-0.3, 0.9, n).astype(np.float32)
        np.savez(os.path.join(d, "scores.npz"), vertex=vertex[perm], hemi=hemi[perm], r=r[perm], r2=(r ** 2)[perm])
        maps["r"] = r
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"factortopy_version": "0.1.0", "kind": "factortopy", "data": "planted:subj01",
                   "backbone": {"name": name, "layers": [f"blocks.{i}" for i in range(L)]}, "model": {"grid": 8}}, f)
    arrays = [n for n in ("selectors.npz", "scores.npz") if os.path.exists(os.path.join(d, n))]
    with open(os.path.join(d, "checksums.json"), "w") as f:
        json.dump({n: hashlib.sha256(open(os.path.join(d, n), "rb").read()).hexdigest() for n in arrays}, f)
    return maps


@pytest.fixture(scope="session")
def write_run():
    """``write_run(folder, n_per=400, L=5, seed=0, full=False, name=..., with_scores=True)`` writes a
    RUN_DIR of random maps (docs/run-dir.md) and returns its maps dict."""
    return _write_run


@pytest.fixture(scope="module")
def subject_dir(tmp_path_factory):
    """A small Algonauts-layout subject (30 training, 6 test images) as the release lays it out."""
    from factortopy.datasets.fixtures import write_fake_algonauts

    return write_fake_algonauts(str(tmp_path_factory.mktemp("alg")), n_train=30, n_test=6)["path"]
