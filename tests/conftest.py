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


# ---- read-only places, as a user meets them (issue 22) ----------------------------------------------
_CAP_DAC_OVERRIDE = 1  # linux/capability.h: root bypasses file modes with it


def _capabilities():
    """(libc, header, data) of this thread's capabilities (Linux capget), or None."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
    if libc.capget(ctypes.byref(header), data) != 0:
        return None
    return libc, header, data


@pytest.fixture
def read_only():
    """``with read_only(folder, ...):`` the folders cannot be written by this process, as for a
    user: their modes lose every write bit, and when the tests run as root (CI does; a mode stops
    no write of root's) this thread also drops CAP_DAC_OVERRIDE from its effective capabilities,
    so the kernel applies the modes to root as to anyone (a real EACCES from the real write, no
    patched function). Modes and capabilities are restored after."""
    import contextlib
    import ctypes
    import stat

    @contextlib.contextmanager
    def refuse_writes(*folders):
        modes = {f: stat.S_IMODE(os.stat(f).st_mode) for f in map(str, folders)}
        caps = None
        if os.geteuid() == 0:
            caps = _capabilities()
            if caps is None:
                pytest.skip("running as root without Linux capabilities: a read-only folder cannot be made")
        for f, mode in modes.items():
            os.chmod(f, mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        saved = None
        try:
            if caps is not None:
                libc, header, data = caps
                saved = data[0].effective
                data[0].effective &= ~(1 << _CAP_DAC_OVERRIDE)
                if libc.capset(ctypes.byref(header), data) != 0:
                    saved = None
                    pytest.skip(f"cannot drop CAP_DAC_OVERRIDE (errno {ctypes.get_errno()})")
            probe = os.path.join(str(folders[0]), ".write-probe")
            with pytest.raises(PermissionError):  # the place really refuses a write
                open(probe, "w").close()
            yield
        finally:
            if saved is not None:
                libc, header, data = caps
                data[0].effective = saved
                assert libc.capset(ctypes.byref(header), data) == 0, "could not restore CAP_DAC_OVERRIDE"
            for f, mode in modes.items():
                os.chmod(f, mode)

    return refuse_writes


@pytest.fixture
def hdf5_disk_full_at(monkeypatch):
    """``hdf5_disk_full_at(n)``: the n-th write of HDF5 data (a feature-cache batch's tokens or
    CRCs) raises ENOSPC, as on a full disk; ``monkeypatch.undo()`` gives the disk back."""
    import errno

    import h5py

    real = h5py.Dataset.__setitem__

    def arm(n: int) -> None:
        seen = {"n": 0}

        def full_disk(self, key, value):
            seen["n"] += 1
            if seen["n"] == n:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(self, key, value)

        monkeypatch.setattr(h5py.Dataset, "__setitem__", full_disk)

    return arm
