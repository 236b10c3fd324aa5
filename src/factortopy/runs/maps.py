"""Per-vertex maps: the one reader of a run's maps (``Run.maps()``) and of a maps file.

A :class:`Maps` is what painting, comparing and analysing take: the response columns (``vertex``,
``hemi``), ``layer_names``, one array per stored map (a selector row's key, ``readout``,
``channel_clusters``, a kind's own such as a ridge run's ``layer_r``), the held-out ``r`` / ``r2``
from scores.npz, and what a painter needs to know about the run (``grid``, ``title``), so that no
painter reads a run's config. It is a ``dict`` too: ``maps["layer_probs"]``, ``"r" in maps``,
``maps.get("scale")`` keep working for code written against the dict form.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from factortopy.runs import CONFIG, SCORES, SELECTORS, eval_files, eval_splits, read_npz
from factortopy.runs.columns import match_columns

#: arrays of a maps file that are not per-vertex maps
_NOT_MAPS = ("vertex", "hemi", "layer_names")
#: keys of a Maps that describe it rather than hold a per-vertex array
META_KEYS = ("vertex", "hemi", "layer_names", "grid", "title", "path", "kind", "data", "backbone")


class Maps(dict):
    """Per-vertex maps of one run (or a planted truth), in the run's column order.

    vertex (N,) int64 fsaverage index within its hemisphere; hemi (N,) str ``'lh'``/``'rh'``;
    layer_names list[str] (L,); per-vertex arrays by name (``arrays``): ``layer_probs`` (N, L),
    ``space_xy`` (N, 2), ``scale`` (N,), ``rf_size`` (N,), ``readout`` (N, D), ``channel_clusters``
    (N,) int as stored, ``r`` / ``r2`` (N,) the fit's held-out scores (scores.npz) and for each split
    ``factortopy evaluate`` scored (eval_<split>.npz) ``<split>_r``, ``<split>_r2`` and, where the
    data carry a noise ceiling, ``<split>_score`` (the noise-normalised Algonauts score, %) (all NaN
    for vertices a file lacks);
    grid: the token-grid side the run was fitted on (None when unknown, e.g. a planted truth);
    title: a short name for figures; path: where it was read from; kind: the run kind, data: its
    data spec, backbone: its backbone's label (each None outside a run; :meth:`Run.describe`).
    """

    @property
    def vertex(self) -> np.ndarray:
        return self["vertex"]

    @property
    def hemi(self) -> np.ndarray:
        return self["hemi"]

    @property
    def layer_names(self) -> list:
        return self.get("layer_names") or []

    @property
    def grid(self) -> int | None:
        return self.get("grid")

    @property
    def title(self) -> str:
        return self.get("title") or ""

    @property
    def path(self) -> str:
        return self.get("path") or ""

    @property
    def kind(self) -> str | None:
        return self.get("kind")

    @property
    def data(self) -> str | None:
        return self.get("data")

    @property
    def backbone(self) -> str | None:
        return self.get("backbone")

    @property
    def arrays(self) -> dict:
        """name -> per-vertex array (every key but the descriptive ones)."""
        return {k: v for k, v in self.items() if k not in META_KEYS}

    @property
    def n_vertices(self) -> int:
        return len(self["vertex"])

    def __repr__(self) -> str:
        return f"<Maps {self.title!r}: {self.n_vertices} vertices, {', '.join(self.arrays)}>"


def scored_files(run_dir, model: str | None = None) -> list:
    """(path, key prefix) of a run's per-vertex score files: the fit's scores.npz as ``r`` / ``r2``,
    each ``factortopy evaluate`` split's eval_<split>.npz as ``<split>_r``, ``<split>_r2``, ``<split>_score``.
    model: the run's :func:`~factortopy.runs.model_digest`; an evaluation of another model (the
    folder was refitted since) is left out, with a warning."""
    run_dir = Path(run_dir)
    out = [(run_dir / SCORES, "")] if (run_dir / SCORES).exists() else []
    return out + [(run_dir / eval_files(split)[0], f"{split}_") for split in eval_splits(run_dir)
                  if model is None or eval_is_current(run_dir / eval_files(split)[0], model)]


def eval_is_current(path, model: str) -> bool:
    """Whether the eval_<split>.npz at ``path`` scored the model whose digest is ``model`` (one from
    before evaluations were keyed counts as current); warns when it did not."""
    recorded = read_npz(path).get("model_digest")
    if recorded is None or str(recorded) == model:
        return True
    import warnings

    warnings.warn(f"{path} scored another model than the one now in its folder (it was refitted since): its "
                  "scores are left out; run factortopy evaluate again", stacklevel=3)
    return False


def read_maps_file(npz, title: str | None = None, grid: int | None = None, kind: str | None = None,
                   scored=(), data: str | None = None, backbone: str | None = None, path=None) -> Maps:
    """A :class:`Maps` from a maps file (a run's selectors.npz, a planted truth, any .npz with
    ``vertex``, ``hemi`` and per-vertex arrays), with the per-vertex scores of ``scored`` ((path,
    key prefix) pairs, :func:`scored_files`); ``path``: what the maps are said to come from (a run's
    folder; default the file). Arrays are read without unpickling and checked
    against the run's checksums; every stored array is kept, so a selector added to the table
    reaches the painters without a list here to keep in step."""
    npz = Path(npz)
    raw = read_npz(npz)
    missing = [k for k in ("vertex", "hemi") if k not in raw]
    if missing:
        raise ValueError(f"{npz} lacks {', '.join(missing)}: not a maps file")
    out = Maps(vertex=raw["vertex"].astype(np.int64), hemi=raw["hemi"].astype(str))
    n = len(out["vertex"])
    if len(out["hemi"]) != n:
        raise ValueError(f"{npz}: vertex ({n}) and hemi ({len(out['hemi'])}) lengths differ")
    for k, value in raw.items():
        if k in _NOT_MAPS:
            continue
        if value.ndim and value.shape[0] != n:
            raise ValueError(f"{npz}: {k} has {value.shape[0]} rows for {n} vertices")
        out[k] = value
    if "layer_names" in raw:
        out["layer_names"] = [str(x) for x in raw["layer_names"]]
    elif "layer_probs" in raw:
        out["layer_names"] = [f"layer {i}" for i in range(raw["layer_probs"].shape[1])]
    for scores_file, prefix in scored:
        sc = read_npz(scores_file)
        idx = match_columns(out["vertex"], out["hemi"], sc["vertex"], sc["hemi"])
        for k in ("r", "r2", "score"):
            if k in sc and (prefix or k != "score"):
                vals = np.full(n, np.nan)
                vals[idx >= 0] = sc[k][idx[idx >= 0]]
                out[prefix + k] = vals
    out.update(grid=None if grid is None else int(grid), title=title or npz.stem, path=str(path or npz), kind=kind,
               data=data, backbone=backbone)
    return out


def _run_of(path: Path):
    """(run folder, its config) when ``path`` is a RUN_DIR or its selectors.npz, else None."""
    folder = path if path.is_dir() else path.parent
    if (folder / CONFIG).exists() and (path.is_dir() or path.name == SELECTORS):
        from factortopy.runs import read_config

        return folder, read_config(str(folder))
    return None


def _kind_class(config, where: str):
    from factortopy.runs import run_class

    return run_class(config["kind"], what=f"{where}: ")


def describe_run(path) -> dict:
    """:meth:`Run.describe` of the RUN_DIR ``path`` (or of the run a selectors.npz belongs to)
    without reading its arrays; for a maps file outside a run, its title and None elsewhere."""
    p = Path(path)
    run = _run_of(p) if p.exists() else None
    if run is None:
        return dict(kind=None, data=None, title=_file_title(p), grid=None, backbone=None)
    folder, config = run
    return _kind_class(config, str(folder)).describe(str(folder), config)


def _file_title(p: Path) -> str:
    return f"{p.resolve().parent.name} ({p.stem.replace('_', ' ')})"


def load_maps(path) -> Maps:
    """The :class:`Maps` of a RUN_DIR (any kind: ``Run.maps()`` without building the run's model)
    or of a maps file (e.g. a run's selectors.npz, or a planted subject's ``planted_truth.npz``)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist (expected a RUN_DIR or a maps .npz file)")
    run = _run_of(p)
    if run is not None:
        folder, config = run
        return _kind_class(config, str(folder)).maps_of(str(folder), config)
    if p.is_dir():
        found = sorted(n for n in os.listdir(p) if n.endswith(".npz"))
        hint = f"; it holds {', '.join(found[:4])}: pass one of those files" if found else ""
        raise FileNotFoundError(f"{p} has no {CONFIG}: not a RUN_DIR{hint}")
    return read_maps_file(p, title=_file_title(p))
