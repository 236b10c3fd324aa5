"""The run directory (RUN_DIR; docs/run-dir.md): the files every kind shares, and the one way to read one.

Every fit writes a RUN_DIR through :class:`factortopy.runs.writer.RunWriter`; every reader
(evaluate, paint, compare, the analyses) calls :func:`open_run`, which reads ``config.json`` and
returns the :class:`Run` of its ``kind``. Run kinds are plug-ins (entry-point group
``factortopy.run_kinds``, :mod:`factortopy._plugins`), so this package names none of them: the
``factortopy`` and ``ridge`` kinds are declared like any other. A new kind is one Run subclass (its
``kind``, its own ``files``, ``predict``) and one entry point.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile

import numpy as np

from factortopy.runs.columns import align_columns, column_keys, match_columns

__all__ = ["CONFIG", "SELECTORS", "SCORES", "METRICS", "CHECKPOINT", "CHECKSUMS", "COMMON_FILES", "KINDS", "RUN_FORMAT",
           "Run", "RunConfig", "align_columns", "check_record", "column_keys", "eval_files", "eval_splits",
           "json_ready", "match_columns", "model_digest", "open_run", "plugin_records", "read_config", "read_json",
           "read_npz", "recorded_sums", "register_kind", "run_class", "verify_checksum", "write_json"]

# ---- file names every run kind shares (the only place they are spelled) ---------------------------
# A kind's own files are declared by its Run class (``Run.files``) in the kind's module.
CONFIG = "config.json"  # everything needed to rebuild the model and redo the run; written last
SELECTORS = "selectors.npz"  # per-vertex maps (one array per selector row, or what a kind has of them)
SCORES = "scores.npz"  # per-vertex scores on the held-out images
METRICS = "metrics.json"  # summary numbers; "headline" names the one honest score
CHECKSUMS = "checksums.json"  # SHA-256 of every file the run's writer wrote, kept current as it writes
CHECKPOINT = "checkpoint.pt"  # only while a fit runs: what an interrupted fit resumes from
#: the files every run kind writes (through :class:`factortopy.runs.writer.RunWriter`) besides
#: config.json and checksums.json
COMMON_FILES = (SELECTORS, SCORES, METRICS)
#: config.json's ``run_format`` from this version on: checksums.json records every file the writer
#: wrote, config.json included, so a run of this format without it (or without a file's entry) is
#: an error; a run without ``run_format`` comes from before and is read unchecked, with a warning
RUN_FORMAT = 2


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


def json_ready(obj):
    """``obj`` with numpy values, tuples and sets as plain JSON types; NaN/inf refused (naming where)."""
    obj = json.loads(json.dumps(obj, default=_json_default))  # numpy -> plain types
    _finite(obj)
    return obj


def write_json(path: str, obj) -> None:
    """Write ``obj`` as strict JSON, replacing ``path`` (:mod:`factortopy._files`: a temporary file
    renamed into place, never written through an existing file or link). Files of a run folder are
    written by :mod:`factortopy.runs.writer` instead."""
    from factortopy._files import write_text

    write_text(path, json.dumps(json_ready(obj), indent=2, allow_nan=False) + "\n")


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number (strict JSON has no NaN or Infinity)")


def read_json(path: str) -> dict:
    """A JSON file written by :func:`write_json`, or an error naming the file and what to do.
    Strict JSON, as written: ``NaN``, ``Infinity`` and ``-Infinity`` (which Python's json module
    accepts by default) are refused."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, parse_constant=_no_constant)
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
    """The run's config.json, checked against checksums.json (:func:`check_record`); a clear error
    when ``run_dir`` is not a RUN_DIR."""
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a factortopy run directory")
    config = read_json(path)
    if not isinstance(config, dict) or not isinstance(config.get("kind"), str):
        raise ValueError(f"{path} is not a factortopy run config (a JSON object with a 'kind'): the file is "
                         "damaged or not ours; refit the run")
    check_record(run_dir, config)
    return RunConfig(config, path)


# ---- checksums -------------------------------------------------------------------------------------
_UNCHECKED_WARNED: set = set()


def recorded_sums(run_dir: str) -> dict | None:
    """checksums.json of ``run_dir`` ({file name: SHA-256}), or None when there is none."""
    path = os.path.join(run_dir, CHECKSUMS)
    if not os.path.isfile(path):
        return None
    sums = read_json(path)
    if not isinstance(sums, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in sums.items()):
        raise ValueError(f"{path} is not a record of checksums ({{file: SHA-256}}): the file is damaged; refit the "
                         "run (or restore the file)")
    return sums


def check_record(run_dir: str, config: dict) -> None:
    """The checks every read of a run starts with. A run written by this version (``run_format``
    >= :data:`RUN_FORMAT`) must have checksums.json recording config.json, the files every kind
    writes and its kind's own files, and config.json must match its entry; a run from before
    (no ``run_format``) without checksums.json is read unchecked, with a warning (once per folder)."""
    sums = recorded_sums(run_dir)
    current = isinstance(config.get("run_format"), int) and config["run_format"] >= RUN_FORMAT
    where = os.path.join(run_dir, CHECKSUMS)
    if sums is None:
        if current:
            raise ValueError(f"{where} is missing: a run written by this version of factortopy always records the "
                             "checksums of its files, so this folder was changed after the fit (a file replaced or "
                             "removed?); refit the run (or restore the file)")
        key = os.path.abspath(run_dir)
        if key not in _UNCHECKED_WARNED:
            _UNCHECKED_WARNED.add(key)
            import warnings

            warnings.warn(f"{run_dir} has no {CHECKSUMS} (a run from an earlier factortopy): its files are read "
                          "unchecked, so a damaged or substituted file goes unnoticed; refit it to record them",
                          stacklevel=3)
        return
    if not current:
        return  # an earlier version recorded its arrays (verify_checksum checks those), not its config
    needed = [CONFIG, *COMMON_FILES]
    try:
        needed += list(run_class(config["kind"]).files)
    except ValueError:
        pass  # a kind not installed here: opening it fails anyway, naming what to install
    missing = [n for n in needed if n not in sums]
    if missing:
        raise ValueError(f"{where} records no checksum of {', '.join(missing)}: a run written by this version "
                         "records every file it wrote, so the record was changed after the fit; refit the run "
                         "(or restore the file)")
    verify_checksum(os.path.join(run_dir, CONFIG))


def verify_checksum(path: str) -> None:
    """Raise when ``path`` differs from the SHA-256 its RUN_DIR's checksums.json records (a file the
    run did not record passes: :func:`check_record` makes sure a current run records all of its own;
    runs from before checksums were recorded pass, with its warning)."""
    from factortopy._digest import sha256_file

    run_dir, name = os.path.split(os.path.abspath(path))
    sums = recorded_sums(run_dir)
    expected = sums.get(name) if sums is not None else None
    if expected is not None and sha256_file(path) != expected:
        raise ValueError(f"{path} does not match the SHA-256 recorded in {os.path.join(run_dir, CHECKSUMS)}: the "
                         "file is damaged (or was changed after the fit); refit the run (or restore the file)")


def model_digest(run_dir: str, files) -> str:
    """SHA-256 over the files ``files`` of the run in ``run_dir`` (a kind's own files: its fitted
    model), from checksums.json where it records them (each file is checked against it when read),
    else from the files. An evaluation records it (``eval_<split>``'s ``model_digest``): its results
    belong to that model, and a folder refitted since (``fit --overwrite``) no longer shows them."""
    from factortopy._digest import sha256_file

    sums = recorded_sums(run_dir) or {}
    h = hashlib.sha256()
    for name in sorted(files):
        path = os.path.join(run_dir, name)
        h.update(f"{name}:{sums.get(name) or (sha256_file(path) if os.path.isfile(path) else '-')}\n".encode())
    return h.hexdigest()


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
    #: the kind's own files besides :data:`COMMON_FILES` (its writer accepts and requires these)
    files: tuple[str, ...] = ()

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

    def maps(self):
        """The run's per-vertex maps: a :class:`factortopy.runs.maps.Maps` (a dict too)."""
        return type(self).maps_of(self.path, self.config)

    @classmethod
    def grid_of(cls, config: dict) -> int | None:
        """The token-grid side a run of this kind was fitted on (None: the kind has none)."""
        return None

    @classmethod
    def describe(cls, path: str, config: dict) -> dict:
        """What a painter or exporter may know of the run in ``path`` besides its arrays: ``kind``,
        ``data`` (the data spec, or None), ``title``, ``grid`` (:meth:`grid_of`), ``backbone`` (its
        label, or None). Viz reads runs through this and :meth:`maps_of`, never their config."""
        bb = config.get("backbone") if isinstance(config.get("backbone"), dict) else {}
        data = config.get("data")
        return dict(kind=config.get("kind"), data=data if isinstance(data, str) else None,
                    title=run_title(config, os.path.basename(os.path.normpath(os.fspath(path)))),
                    grid=cls.grid_of(config), backbone=(bb.get("label") or bb.get("name")) if bb else None)

    @classmethod
    def maps_of(cls, path: str, config: dict):
        """The maps of the run in ``path`` without building it (no model, no torch): selectors.npz
        with the scores and :meth:`describe`'s fields. Painting and comparing read runs through this."""
        from factortopy.runs.maps import read_maps_file, scored_files

        path = os.fspath(path)
        scored = scored_files(path, model_digest(path, cls.model_files()))  # evaluations of this model only
        return read_maps_file(os.path.join(path, SELECTORS), scored=scored, path=path, **cls.describe(path, config))

    @classmethod
    def model_files(cls) -> tuple[str, ...]:
        """The files that hold the fitted model: the kind's own files (or, for a kind without any,
        the selectors)."""
        return tuple(cls.files) or (SELECTORS,)

    @property
    def model_digest(self) -> str:
        """:func:`model_digest` of this run: what an evaluation of it scored."""
        return model_digest(self.path, self.model_files())

    def check_data(self, subject, what: str = "") -> None:
        """Raise when ``subject`` (loaded from the run's recorded data spec) is not the data the run
        was fitted on: its responses and coordinates differ from the recorded ``data_digest``
        (the folder at the recorded path was replaced or changed). Runs without a digest pass."""
        recorded = self.config.get("data_digest")
        if not isinstance(recorded, str):
            return
        from factortopy.data.subject import data_digest

        found = data_digest(subject.responses, subject.coords)
        if found != recorded:
            raise ValueError(f"{what or self.path}: the data at {self.config.get('data')} are not the data this run "
                             f"was fitted on (their responses and coordinates have digest {found}, the run recorded "
                             f"{recorded}): the folder was replaced or changed since the fit. Restore it, or pass "
                             "--data (data=) to score the run on other data deliberately")

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


#: run kinds registered in this process (:func:`register_kind`): kind -> Run subclass
KINDS: dict[str, type] = {}


def register_kind(kind: str, cls) -> None:
    """Use the Run subclass ``cls`` for ``config["kind"] == kind`` in this process (e.g. a
    notebook). A kind other processes should read is an entry point in the group
    ``factortopy.run_kinds`` of an installed distribution (docs/architecture.md)."""
    KINDS[kind] = cls


def run_class(kind: str, recorded: dict | None = None, what: str = "") -> type:
    """The Run subclass of ``kind``: registered in this process, else the installed entry point.
    recorded: what the run recorded of its kind's distribution (config ``"plugins"``), named in
    the error when it is not installed."""
    from factortopy._plugins import missing_message, plugins

    if kind in KINDS:
        return KINDS[kind]
    found = plugins("run_kinds")
    if kind not in found:
        known = sorted(set(found) | set(KINDS))
        raise ValueError(f"{what}unknown run kind {kind!r}: {missing_message('run kind', kind, recorded)}; "
                         f"known kinds: {', '.join(known)}")
    return found[kind].load()


def plugin_records(config: dict) -> dict:
    """What a run recorded of the plug-in distributions it used: ``"GROUP:NAME"`` -> record."""
    return dict(config.get("plugins") or {})


def open_run(path) -> Run:
    """The :class:`Run` in RUN_DIR ``path``, of whatever kind its config.json names."""
    config = read_config(os.fspath(path))
    kind = config["kind"]
    cls = run_class(kind, plugin_records(config).get(f"run_kinds:{kind}"), what=f"{path}: ")
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
