"""The run directory (RUN_DIR; docs/run-dir.md): its file names, and the one way to read one.

Every fit writes a RUN_DIR; every reader (evaluate, paint, compare, the analyses) calls
:func:`open_run`, which reads ``config.json`` and returns the :class:`Run` of its ``kind``. Run
kinds register themselves in :data:`KINDS` ("kind" -> "module:Class", imported on use), so this
package depends on none of them: ``factortopy`` runs live in ``factortopy.fitting.run``, ridge
runs in ``factortopy.baselines.run``. A new kind is one new class plus one :func:`register_kind`.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import zipfile

import numpy as np

from factortopy.runs.columns import align_columns, column_keys, match_columns

__all__ = ["CONFIG", "MODEL", "SELECTORS", "SCORES", "METRICS", "TRAIN_LOG", "RESPONSE_STATS", "CHECKPOINT",
           "CHECKSUMS", "RIDGE", "PLANTED_TRUTH", "KINDS", "Run", "RunConfig", "align_columns", "column_keys",
           "eval_files", "eval_splits", "match_columns", "open_run", "read_config", "read_json", "read_npz",
           "register_kind", "verify_checksum", "write_checksums", "write_json"]

# ---- file names (the only place they are spelled) ------------------------------------------------
CONFIG = "config.json"  # everything needed to rebuild the model and redo the run
MODEL = "model.safetensors"  # FactorTopy state dict
SELECTORS = "selectors.npz"  # per-vertex maps
SCORES = "scores.npz"  # per-vertex validation scores
METRICS = "metrics.json"
TRAIN_LOG = "train_log.jsonl"
RESPONSE_STATS = "response_stats.npz"  # the training responses' z-scoring
CHECKPOINT = "checkpoint.pt"  # only while a fit runs
RIDGE = "ridge.npz"  # the fitted ridge of a ridge run
PLANTED_TRUTH = "planted_truth.npz"  # a planted subject's truth (same keys as selectors.npz)
CHECKSUMS = "checksums.json"  # SHA-256 of the run's data files, written just before config.json


def eval_files(split: str) -> tuple[str, str]:
    """(per-vertex .npz, summary .json) names written by ``factortopy evaluate --split SPLIT``."""
    return f"eval_{split}.npz", f"eval_{split}.json"


def eval_splits(run_dir) -> list[str]:
    """The splits ``factortopy evaluate`` has scored in ``run_dir`` (those with an eval_<split>.npz), sorted."""
    prefix, suffix = eval_files("\0")[0].split("\0")
    names = os.listdir(run_dir) if os.path.isdir(run_dir) else []
    return sorted(n[len(prefix):-len(suffix)] for n in names
                  if n.startswith(prefix) and n.endswith(suffix) and len(n) > len(prefix) + len(suffix))


# ---- JSON ----------------------------------------------------------------------------------------
def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (tuple, set)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _finite(obj, path="$"):
    """Raise on NaN/inf anywhere in ``obj``: JSON has no such numbers (a bare NaN is invalid JSON)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"refusing to write a non-finite number ({obj}) at {path} into JSON")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _finite(v, f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _finite(v, f"{path}[{i}]")


def write_json(path: str, obj) -> None:
    """Write ``obj`` as strict JSON, atomically (a temporary file renamed into place)."""
    obj = json.loads(json.dumps(obj, default=_json_default))  # numpy -> plain types
    _finite(obj)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)  # never leave a half-written file behind


def read_json(path: str) -> dict:
    """A JSON file written by :func:`write_json`, or an error naming the file and what to do."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}): the file is damaged; refit the run "
                         "(or restore the file)") from None


class RunConfig(dict):
    """config.json read back: a dict whose missing keys are errors naming the key and the file
    (a damaged or hand-edited config otherwise fails later with a bare ``KeyError: 'model'``)."""

    def __init__(self, data: dict, path: str, where: str = ""):
        super().__init__({k: RunConfig(v, path, f"{where}{k}.") if isinstance(v, dict) else v
                          for k, v in data.items()})
        self._path, self._where = path, where

    def __missing__(self, key):
        raise KeyError(f"{self._path} lacks the key '{self._where}{key}': the file is damaged or from another "
                       "version; refit the run (or restore the file)")


def read_config(run_dir: str) -> RunConfig:
    """The run's config.json; a clear error when ``run_dir`` is not a RUN_DIR."""
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a factortopy run directory")
    config = read_json(path)
    if not isinstance(config, dict) or not isinstance(config.get("kind"), str):
        raise ValueError(f"{path} is not a factortopy run config (a JSON object with a 'kind'): the file is "
                         "damaged or not ours; refit the run")
    return RunConfig(config, path)


# ---- checksums -------------------------------------------------------------------------------------
def write_checksums(run_dir: str, names) -> None:
    """Record the SHA-256 of the run's files ``names`` in checksums.json (before config.json, so a
    finished run always has them)."""
    from factortopy._digest import sha256_file  # afresh, unmemoised: bit rot keeps size and mtime

    write_json(os.path.join(run_dir, CHECKSUMS), {n: sha256_file(os.path.join(run_dir, n)) for n in names})


def verify_checksum(path: str) -> None:
    """Raise when ``path`` differs from the SHA-256 its RUN_DIR's checksums.json records (files
    the run did not record, and runs without checksums.json, pass unchecked)."""
    from factortopy._digest import sha256_file

    run_dir, name = os.path.split(os.path.abspath(path))
    sums_path = os.path.join(run_dir, CHECKSUMS)
    if not os.path.isfile(sums_path):
        return
    sums = read_json(sums_path)
    expected = sums.get(name) if isinstance(sums, dict) else None
    if expected is not None and sha256_file(path) != expected:
        raise ValueError(f"{path} does not match the SHA-256 recorded in {sums_path}: the file is damaged "
                         "(or was changed after the fit); refit the run (or restore the file)")


def read_npz(path) -> dict:
    """Every array of an .npz (never unpickling: ``allow_pickle=False``), checked against the
    run's checksums.json; a damaged file is an error naming it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found (the run did not finish, or the file was removed)")
    verify_checksum(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise ValueError(f"{path} cannot be read ({type(err).__name__}: {err}): the file is damaged or holds "
                         "pickled objects, which are never loaded; refit the run") from None


# ---- the Run interface and its registry ------------------------------------------------------------
class Run:
    """A fitted run read back from its RUN_DIR. Subclasses implement :meth:`predict`.

    path: the RUN_DIR. config: config.json. vertex, hemi: (N,) the run's response columns.
    """

    kind = "?"

    def __init__(self, path: str, config: dict):
        self.path = os.fspath(path)
        self.config = config
        cols = self._read_npz(SCORES) if os.path.isfile(self.file(SCORES)) else self._read_npz(SELECTORS)
        self.vertex = np.asarray(cols["vertex"], dtype=np.int64)
        self.hemi = np.asarray(cols["hemi"]).astype(str)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.title!r}: {len(self.vertex)} vertices, {self.path}>"

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _read_npz(self, name: str) -> dict:
        return read_npz(self.file(name))

    @property
    def title(self) -> str:
        return run_title(self.config, os.path.basename(os.path.normpath(self.path)))

    @property
    def metrics(self) -> dict:
        return read_json(self.file(METRICS))

    def maps(self) -> dict:
        """Per-vertex maps (see :func:`factortopy.runs.maps.load_maps`)."""
        from factortopy.runs.maps import load_maps

        return load_maps(self.path)

    def scores(self) -> dict:
        """Validation scores saved by the fit: ``vertex``, ``hemi``, ``r``, ``r2`` (N,)."""
        return self._read_npz(SCORES)

    def backbone(self, **spec_changes):
        """The run's backbone, rebuilt from its recorded spec and checked in full against the
        recorded identity (a difference in any field is an error naming it)."""
        from factortopy.backbones.spec import rebuild

        return rebuild(self.config["backbone"], what=self.path, **spec_changes)

    def predict(self, images, batch_size: int = 32, device: str = "cpu", progress: bool = False,
                backbone=None):
        """(n_images, N) predicted responses to ``images`` (a sequence of (H, W, 3) uint8 arrays),
        in the units of the training responses. backbone: the backbone to use instead of rebuilding
        it (checked against the recorded identity)."""
        raise NotImplementedError

    def predict_subject(self, subject, image_index=None, **kwargs):
        """Predictions for the subject's images (all, or ``image_index``), in the run's columns."""
        images = subject.images
        if image_index is not None:
            from factortopy.data.images import ImageSubset

            images = ImageSubset(images, image_index)
        return self.predict(images, **kwargs)

    def _backbone_for(self, backbone):
        if backbone is None:
            return self.backbone()
        from factortopy.backbones.spec import check_identity

        check_identity(self.config["backbone"], backbone, what=self.path)
        return backbone


#: run kind -> "module:Class" (imported on use)
KINDS: dict[str, str] = {}


def register_kind(kind: str, target: str) -> None:
    """Register a Run class for ``config["kind"] == kind`` as ``"module:Class"``."""
    KINDS[kind] = target


register_kind("factortopy", "factortopy.fitting.run:FactorTopyRun")
register_kind("ridge", "factortopy.baselines.run:RidgeRun")


def open_run(path) -> Run:
    """The :class:`Run` in RUN_DIR ``path``, of whatever kind its config.json names."""
    config = read_config(os.fspath(path))
    kind = config["kind"]
    if kind not in KINDS:
        raise ValueError(f"{path}: unknown run kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}")
    module, _, name = KINDS[kind].partition(":")
    cls = getattr(importlib.import_module(module), name)
    return cls(os.fspath(path), config)


def run_title(config: dict | None, fallback: str = "") -> str:
    """A short title from a run's config.json: backbone label (says "random init" when it is one),
    data, kind."""
    if not config:
        return fallback
    parts = []
    bb = config.get("backbone") or {}
    if isinstance(bb, dict) and (bb.get("label") or bb.get("name")):
        parts.append(str(bb.get("label") or bb["name"]))
    data = config.get("data")
    if isinstance(data, dict):
        data = data.get("spec") or data.get("subject")
    if data:
        parts.append(os.path.basename(str(data).split("?")[0].rstrip("/")) or str(data))
    if config.get("kind") and config.get("kind") != "factortopy":
        parts.append(str(config["kind"]))
    return " | ".join(parts) if parts else fallback
