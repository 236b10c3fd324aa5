"""The ridge baseline end to end: subject -> features -> LayerwiseRidgeCV -> RUN_DIR.

Writes the same RUN_DIR as a FactorTopy fit (docs/run-dir.md) with ``kind: "ridge"`` so that the two
are compared side by side on the same split (``train_val_split`` with the same seed and validation
fraction). Files: config.json, scores.npz, metrics.json, selectors.npz (``vertex``, ``hemi``,
``layer_names``, ``layer_probs`` one-hot at the best layer, ``layer_r`` (N, L) the inner-validation r
of every layer; NO ``space_xy``, ``scale``, ``readout``), ridge.npz (the fitted weights). No
model.safetensors, response_stats.npz or train_log.jsonl.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import numpy as np

from factortopy.baselines.ridge import DEFAULT_ALPHAS, LayerwiseRidgeCV
from factortopy.evaluation.metrics import pearson_r, r2_score
from factortopy.features.cache import weights_fingerprint
from factortopy.fitting.split import train_val_split

RIDGE_FILE = "ridge.npz"


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


def _write_json(path, obj):
    from factortopy.fitting.run_dir import write_json

    write_json(path, obj)


def fit_ridge_baseline(subject, backbone="resnet18", layers=None, weights: str | None = None,
                       pretrained: bool = False, img_size: int | None = None, val_fraction: float = 0.1,
                       seed: int = 0, alphas=DEFAULT_ALPHAS, cv: int = 5, inner_val_fraction: float = 0.2,
                       pool: int = 2, grid: int = 8, out: str | None = None, data_spec: str | None = None,
                       device: str = "cpu", batch_size: int = 32, progress: bool = False) -> RidgeResult:
    """Fit the layer-wise ridge baseline on ``subject``'s training images, score the validation images.

    backbone: a timm name or a built backbone (``factortopy.backbones.load_backbone``). The split is
    ``train_val_split(subject.n_images, val_fraction, seed)``, exactly as in ``factortopy.fit``.
    The best layer is chosen on an inner split of the training images. out: a RUN_DIR to write.
    """
    t0 = time.time()
    if isinstance(backbone, str):
        import torch

        from factortopy.backbones import load_backbone

        torch.manual_seed(seed)  # a random init is then rebuilt identically for evaluation (as in fit)
        bb = load_backbone(backbone, layers=layers, weights=weights, pretrained=pretrained, img_size=img_size)
    else:
        bb = backbone
    info = bb.info
    train_idx, val_idx = train_val_split(subject.n_images, val_fraction, seed)
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
        backbone=dict(name=info.name, layers=layer_names, weights=weights_fingerprint(bb),
                      weights_file=os.path.abspath(weights) if weights else None, pretrained=pretrained,
                      img_size=img_size, input_size=list(info.input_size), channels=list(info.channels)),
        model=dict(model.get_params(), pool=pool, grid=grid, n_features=[int(X.shape[1]) for X in Xs]),
        fit=dict(seed=seed, val_fraction=val_fraction, device=device, batch_size=batch_size),
        split=dict(seed=seed, val_fraction=val_fraction, n_train=len(train_idx), n_val=len(val_idx),
                   val_image_ids=np.asarray(subject.image_ids)[val_idx].tolist()),
    )
    metrics = dict(val_pearson_mean=float(val_r.mean()), val_pearson_median=float(np.median(val_r)),
                   val_r2_mean=float(val_r2.mean()), n_train=int(len(train_idx)), n_val=int(len(val_idx)),
                   n_vertices=int(subject.n_vertices), epochs=0, seconds=time.time() - t0,
                   feature_seconds=t_features,
                   best_layer_counts={n: int((model.best_layer_ == l).sum()) for l, n in enumerate(layer_names)})
    result = RidgeResult(model, config, metrics, val_r, val_r2, train_idx, val_idx, layer_names, out)
    if out:
        write_ridge_run(out, result, subject)
    return result


def pooled_features_for(backbone, images, grid, pool, batch_size, device, progress, index=None):
    from factortopy.baselines.features import pooled_features

    return pooled_features(backbone, images, index=index, grid=grid, pool=pool, batch_size=batch_size,
                           device=device, progress=progress)


def write_ridge_run(out: str, result: RidgeResult, subject) -> None:
    os.makedirs(out, exist_ok=True)
    vertex = np.asarray(subject.vertex, dtype=np.int64)
    hemi = np.asarray(subject.hemi).astype("<U2")
    L = len(result.layer_names)
    probs = np.zeros((subject.n_vertices, L), np.float32)
    probs[np.arange(subject.n_vertices), result.model.best_layer_] = 1.0
    np.savez(os.path.join(out, RIDGE_FILE), **result.model.state())
    np.savez(os.path.join(out, "selectors.npz"), vertex=vertex, hemi=hemi,
             layer_names=np.asarray(result.layer_names), layer_probs=probs,
             layer_r=result.model.layer_scores_.T.astype(np.float32))
    np.savez(os.path.join(out, "scores.npz"), vertex=vertex, hemi=hemi, r=result.val_r, r2=result.val_r2)
    _write_json(os.path.join(out, "config.json"), result.config)
    _write_json(os.path.join(out, "metrics.json"), result.metrics)


@dataclass
class RidgeRun:
    """A ridge RUN_DIR read back: config, the fitted estimator, the per-vertex columns."""

    path: str
    config: dict
    model: LayerwiseRidgeCV
    vertex: np.ndarray
    hemi: np.ndarray

    def backbone(self):
        from factortopy.fitting.run_dir import rebuild_backbone

        return rebuild_backbone(self.config)

    def predict_subject(self, subject, image_index=None, batch_size: int = 32, device: str = "cpu",
                        progress: bool = False) -> np.ndarray:
        """(n_images, N) predictions for the subject's images (all, or ``image_index``)."""
        m = self.config["model"]
        Xs = pooled_features_for(self.backbone(), subject.images, m["grid"], m["pool"], batch_size, device,
                                 progress, index=image_index)
        return self.model.predict(Xs)


def load_ridge_run(run_dir: str) -> RidgeRun:
    """Read a ridge RUN_DIR written by :func:`fit_ridge_baseline`."""
    cfg_path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(cfg_path):
        raise FileNotFoundError(f"{cfg_path} not found: {run_dir} is not a factortopy run directory")
    with open(cfg_path) as f:
        config = json.load(f)
    if config.get("kind") != "ridge":
        raise ValueError(f"{run_dir} holds a {config.get('kind')!r} run, not a ridge baseline")
    with np.load(os.path.join(run_dir, RIDGE_FILE)) as state:
        model = LayerwiseRidgeCV.from_state(dict(state))
    with np.load(os.path.join(run_dir, "selectors.npz")) as sel:
        vertex, hemi = sel["vertex"], sel["hemi"]
    return RidgeRun(run_dir, config, model, vertex, hemi)
