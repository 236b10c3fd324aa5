"""The ridge baseline end to end: subject -> features -> LayerwiseRidgeCV -> RUN_DIR.

Writes a RUN_DIR (docs/run-dir.md) with ``kind: "ridge"`` through the same run writer as a
FactorTopy fit, so that the two are compared side by side on the same split (``split_indices``
with the same seed and fractions). Files: config.json, checksums.json, scores.npz, metrics.json,
selectors.npz (``vertex``, ``hemi``, ``layer_names``, ``layer_probs`` one-hot at the best layer,
``layer_r`` (N, L) the inner-validation r of every layer; NO ``space_xy``, ``scale``, ``readout``),
ridge.npz (the fitted weights, this kind's own file).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from factortopy.baselines.ridge import DEFAULT_ALPHAS, LayerwiseRidgeCV
from factortopy.evaluation.metrics import pearson_r, r2_score
from factortopy.data.split import split_indices
from factortopy.data.subject import data_digest
from factortopy.runs import SCORES, SELECTORS, Run

RIDGE = "ridge.npz"  # this kind's own file: the fitted LayerwiseRidgeCV


@dataclass
class RidgeResult:
    """What :func:`fit_ridge_baseline` returns; per-vertex arrays follow the subject's columns."""

    model: LayerwiseRidgeCV
    config: dict
    metrics: dict
    val_r: np.ndarray
    val_r2: np.ndarray
    train_index: np.ndarray
    val_index: np.ndarray
    layer_names: list
    run_dir: str | None = None


def fit_ridge_baseline(subject, backbone, layers=None, weights: str | None = None,
                       pretrained: bool | None = None, img_size: int | None = None, val_fraction: float = 0.1,
                       heldout_fraction: float = 0.1, seed: int = 0, alphas=DEFAULT_ALPHAS, cv: int = 5, inner_val_fraction: float = 0.2,
                       pool: int = 2, grid: int = 8, out: str | None = None, data_spec: str | None = None,
                       device: str = "cpu", batch_size: int = 32, progress: bool = False,
                       random_init: bool = False, overwrite: bool = False) -> RidgeResult:
    """Fit the layer-wise ridge baseline on ``subject``'s training images, score the validation images.

    backbone: a BackboneSpec, a name (with the spec fields as keyword arguments, as in
    ``factortopy.fit``) or a built backbone (``factortopy.backbones.load_backbone``). The split is
    ``split_indices(subject.n_images, val_fraction, heldout_fraction, seed)``, exactly as in
    ``factortopy.fit``: the ridge trains on FactorTopy's training and early-stopping images (its own
    inner split of them chooses the layer, as the early-stopping images choose FactorTopy's epoch)
    and is scored on the same held-out images. out: a RUN_DIR to write.
    """
    from factortopy.backbones.spec import as_spec, backbone_identity
    from factortopy.evaluation.metrics import check_scored_images

    t0 = time.time()
    # the images scored: the held-out ones, or without them the validation ones; by the rule every
    # score follows (refused under 3 images, a warning under 20), before the backbone is built
    parts = split_indices(subject.n_images, val_fraction, heldout_fraction, seed)
    name, option = ("held-out", "--heldout-fraction") if heldout_fraction > 0 else ("validation", "--val-fraction")
    fraction = heldout_fraction if heldout_fraction > 0 else val_fraction
    check_scored_images(len(parts["heldout" if heldout_fraction > 0 else "val"]), name, f"{option} {fraction}",
                        "the baseline's score", f"raise {option} or use more images")
    if hasattr(backbone, "info"):
        bb = backbone
    else:
        given = dict(layers=layers, weights=weights, pretrained=pretrained, img_size=img_size)
        bb = as_spec(backbone, **{k: v for k, v in given.items() if v is not None},
                     **({"random_init": True} if random_init else {})).build()
    info = bb.info
    from factortopy.runs.directory import writing_run

    with writing_run(out, overwrite) as claim:  # a finished run is replaced only by a finished one
        result = _fit_ridge(subject, bb, backbone_identity(bb), info, t0, val_fraction, heldout_fraction, seed, alphas,
                            cv, inner_val_fraction, pool, grid, claim.path if claim else None, data_spec, device,
                            batch_size, progress)
    result.run_dir = out
    return result


def _fit_ridge(subject, bb, identity, info, t0, val_fraction, heldout_fraction, seed, alphas, cv, inner_val_fraction,
               pool, grid, out, data_spec, device, batch_size, progress) -> RidgeResult:
    parts = split_indices(subject.n_images, val_fraction, heldout_fraction, seed)
    if len(parts["heldout"]):  # scored where FactorTopy's headline is scored
        train_idx, val_idx, split = np.sort(np.concatenate([parts["train"], parts["val"]])), parts["heldout"], "heldout"
    else:
        train_idx, val_idx, split = parts["train"], parts["val"], "val"
    Xs = pooled_features_for(bb, subject.images, grid, pool, batch_size, device, progress)
    t_features = time.time() - t0
    Y = np.asarray(subject.responses, dtype=np.float32)
    model = LayerwiseRidgeCV(alphas=alphas, cv=cv, inner_val_fraction=inner_val_fraction, seed=seed)
    model.fit([X[train_idx] for X in Xs], Y[train_idx])
    pred = model.predict([X[val_idx] for X in Xs])
    val_r, val_r2 = pearson_r(pred, Y[val_idx]), r2_score(pred, Y[val_idx])
    layer_names = list(info.layer_names)
    config = dict(
        factortopy_version=__import__("factortopy").__version__,
        kind="ridge",
        data=data_spec,
        subject=subject.name,
        data_digest=data_digest(Y, subject.coords),  # an evaluation with the recorded data spec checks it
        backbone=identity,
        model=dict(model.get_params(), alphas=[float(a) for a in model.alphas], pool=pool, grid=grid,
                   n_features=[int(X.shape[1]) for X in Xs]),
        fit=dict(seed=seed, val_fraction=val_fraction, heldout_fraction=heldout_fraction, device=device,
                 batch_size=batch_size),
        split=dict(seed=seed, val_fraction=val_fraction, heldout_fraction=heldout_fraction, scored=split,
                   n_train=len(train_idx), **{f"n_{split}": len(val_idx)},
                   **{f"{split}_image_ids": np.asarray(subject.image_ids)[val_idx].tolist()}),
    )
    metrics = dict(**{f"{split}_pearson_mean": float(val_r.mean()), f"{split}_pearson_median": float(np.median(val_r)),
                      f"{split}_r2_mean": float(val_r2.mean()), f"n_{split}": int(len(val_idx))},
                   headline=f"{split}_pearson_mean", n_train=int(len(train_idx)),
                   n_vertices=int(subject.n_vertices), epochs=0, seconds=time.time() - t0,
                   feature_seconds=t_features,
                   best_layer_counts={n: int((model.best_layer_ == l).sum()) for l, n in enumerate(layer_names)})
    result = RidgeResult(model, config, metrics, val_r, val_r2, train_idx, val_idx, layer_names, out)
    if out:
        result.config = write_ridge_run(out, result, subject)  # as recorded: data spec absolute
    return result


def pooled_features_for(backbone, images, grid, pool, batch_size, device, progress, index=None):
    from factortopy.baselines.features import pooled_features

    return pooled_features(backbone, images, index=index, grid=grid, pool=pool, batch_size=batch_size,
                           device=device, progress=progress)


def write_ridge_run(out: str, result: RidgeResult, subject) -> dict:
    """Write a ridge run through the run writer (checksums of every file, config.json last);
    returns the config as written."""
    from factortopy.runs.writer import RunWriter

    vertex = np.asarray(subject.vertex, dtype=np.int64)
    hemi = np.asarray(subject.hemi).astype("<U2")
    L = len(result.layer_names)
    probs = np.zeros((subject.n_vertices, L), np.float32)
    probs[np.arange(subject.n_vertices), result.model.best_layer_] = 1.0
    writer = RunWriter(out, RidgeRun)
    writer.npz(RIDGE, **result.model.state())
    writer.npz(SELECTORS, vertex=vertex, hemi=hemi, layer_names=np.asarray(result.layer_names), layer_probs=probs,
               layer_r=result.model.layer_scores_.T.astype(np.float32))
    writer.npz(SCORES, vertex=vertex, hemi=hemi, r=result.val_r, r2=result.val_r2,
               split=np.asarray(result.config["split"]["scored"]))
    writer.metrics(result.metrics)
    return writer.finish(result.config)


class RidgeRun(Run):
    """A ridge RUN_DIR read back (``open_run``, kind ``"ridge"``): ``model`` the fitted
    :class:`LayerwiseRidgeCV`."""

    kind = "ridge"
    files = (RIDGE,)

    def __init__(self, path: str, config: dict):
        super().__init__(path, config)
        self.model = LayerwiseRidgeCV.from_state(self._read_npz(RIDGE))

    def predict(self, images, batch_size: int = 32, device: str = "cpu", progress: bool = False, backbone=None):
        m = self.config["model"]
        Xs = pooled_features_for(self._backbone_for(backbone), images, m["grid"], m["pool"], batch_size, device,
                                 progress)
        return self.model.predict(Xs)


def load_ridge_run(run_dir: str) -> RidgeRun:
    """Read a ridge RUN_DIR written by :func:`fit_ridge_baseline` (``open_run``, refusing other kinds)."""
    from factortopy.runs import open_run

    run = open_run(run_dir)
    if not isinstance(run, RidgeRun):
        raise ValueError(f"{run_dir} holds a {run.kind!r} run, not a ridge baseline")
    return run
