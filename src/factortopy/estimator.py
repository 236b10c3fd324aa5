"""A scikit-learn-style face over :func:`factortopy.fit`, and predictions of a saved run on new images.

For people who think in himalaya / scikit-learn terms::

    from factortopy import FactorTopyEncoder
    enc = FactorTopyEncoder("resnet-18", epochs=20, dim=64)
    enc.fit(images, responses, vertices=vertex, hemi=hemi)   # or enc.fit(subject)
    pred = enc.predict(new_images)                           # (n_images, n_vertices), responses' units
    enc.score(test_images, test_responses)                   # mean R^2 over vertices (sklearn's convention)
    enc.save("runs/mine")                                    # a RUN_DIR; FactorTopyEncoder.load(...) reads it

and for a saved run, without the estimator: ``factortopy.predict(RUN_DIR, images)`` (the
``factortopy predict`` command). Images may be file paths, PIL images, or arrays of any size:
(H, W) grey, (H, W, 3) RGB, (H, W, 4) RGBA (alpha dropped, as Pillow's ``convert('RGB')`` does)
in uint8 or floats in [0, 1]; a stacked (n, H, W[, C]) array is n images. Read-only arrays are fine.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import weakref

import numpy as np

from factortopy._threads import torch_threads
# the image conversion the estimator applies lives with the images; re-exported for old imports
from factortopy.data.images import UserImages, as_rgb_uint8

__all__ = ["FactorTopyEncoder", "UserImages", "as_rgb_uint8", "predict", "torch_threads"]


# ---- predictions of a saved run ------------------------------------------------------------------
def predict(run, images, batch_size: int = 32, device: str = "cpu", progress: bool = False,
            threads: int | None = None, backbone=None) -> np.ndarray:
    """Predicted responses of a saved run to new images.

    run: a RUN_DIR path (any run kind :func:`factortopy.open_run` reads) or an opened Run.
    images: file paths, PIL images or arrays of any size (see :class:`UserImages`); each is
      resized and normalised by the run's backbone exactly as the training images were.
    batch_size: images per forward pass. device: torch device. threads: torch CPU threads for the
      call (None: leave torch's setting). backbone: the run's backbone if already built (checked
      against the recorded identity), else it is rebuilt from config.json.

    Returns (n_images, n_vertices) float32 in the units of the training responses; columns are the
    run's ``vertex`` / ``hemi`` (``open_run(run_dir).vertex``).
    """
    from factortopy.runs import Run, open_run

    run = run if isinstance(run, Run) else open_run(run)
    images = UserImages(images)
    with torch_threads(threads):
        out = run.predict(images, batch_size=batch_size, device=device, progress=progress, backbone=backbone)
    return np.asarray(out, dtype=np.float32)


# ---- the estimator ------------------------------------------------------------------------------------
#: estimator parameters that are not FitConfig fields (name -> default)
_OWN_PARAMS = dict(backbone=None, layers=None, weights=None, random_init=False, img_size=None, threads=None,
                   progress=False, cache_dir=None)
#: of those, the backbone spec's fields (as in :func:`factortopy.fit`)
_SPEC_PARAMS = ("layers", "weights", "random_init", "img_size")


def _fit_fields() -> dict:
    from dataclasses import fields

    from factortopy.fitting.fit import FitConfig

    return {f.name: getattr(FitConfig(), f.name) for f in fields(FitConfig)}


def _not_fitted(name: str):
    from sklearn.exceptions import NotFittedError  # an AttributeError and ValueError, as sklearn raises

    return NotFittedError(f"this FactorTopyEncoder is not fitted yet: call fit(...) or FactorTopyEncoder.load(RUN_DIR) "
                          f"before {name}")


class FactorTopyEncoder:
    """A FactorTopy encoding model with the scikit-learn estimator interface.

    Parameters (stored as given, no work done here; ``get_params`` / ``set_params`` read and change
    them, so ``sklearn.base.clone`` works):

    backbone: a name (friendly, timm, or ``SOURCE:NAME``; it means its pretrained weights), a
      :class:`~factortopy.backbones.BackboneSpec`, or a built Backbone.
    layers, weights, random_init, img_size: backbone spec fields, as in :func:`factortopy.fit`
      (``random_init=True`` for a random network, ``weights=FILE`` for a local checkpoint).
    threads: torch CPU threads during fit / predict (None: leave torch's setting).
    progress: show progress bars. cache_dir: on-disk feature cache (HDF5), reused across fits.
    ``**settings``: any :class:`~factortopy.fitting.fit.FitConfig` field (``epochs``, ``batch_size``,
      ``lr``, ``dim``, ``seed``, ``val_fraction``, ``heldout_fraction``, ``device``, ...); the
      published recipe: ``FactorTopyEncoder(name, **factortopy.fitting.fit.REFERENCE_SETTINGS)``.

    Fitted attributes (trailing underscore; docs/estimator.md):
    ``run_`` the :class:`~factortopy.runs.Run` holding the fitted model (``run_.path`` its RUN_DIR),
    ``model_`` the FactorTopy module, ``vertex_`` / ``hemi_`` (N,) the response columns,
    ``n_vertices_``, ``layer_names_`` (L,), ``selectors_`` dict of per-vertex selector arrays, and
    one attribute per selector row (``<key>_``, model/selectors.py): ``layer_probs_`` (N, L) (rows
    sum to 1), ``space_xy_`` (N, 2) image position in [-1, 1], ``scale_`` (N,) token scale (0 local,
    1 global), ``rf_size_`` (N,) receptive-field sigma in image widths (0 = a point), ``metrics_``
    (metrics.json), ``scores_`` the
    per-vertex scores the fit saved (``r``, ``r2`` on the split named by ``split``),
    ``backbone_`` the built backbone (after fit, or on first predict after load).
    """

    _estimator_type = "regressor"

    def __init__(self, backbone=None, *, layers=None, weights=None, random_init: bool = False, img_size=None,
                 threads: int | None = None, progress: bool = False, cache_dir: str | None = None, **settings):
        known = _fit_fields()
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise TypeError(f"FactorTopyEncoder got unknown setting(s) {unknown}; settings are the FitConfig "
                            f"fields: {', '.join(known)}")
        self.backbone, self.layers, self.weights = backbone, layers, weights
        self.random_init, self.img_size = random_init, img_size
        self.threads, self.progress, self.cache_dir = threads, progress, cache_dir
        for name, default in known.items():
            setattr(self, name, settings.get(name, default))

    # ---- parameters -------------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        return list(_OWN_PARAMS) + list(_fit_fields())

    def get_params(self, deep: bool = True) -> dict:
        """Every parameter (name -> value), as ``__init__`` takes them."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> "FactorTopyEncoder":
        """Change parameters (takes effect at the next fit); returns self."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for FactorTopyEncoder; valid: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {**_OWN_PARAMS, **_fit_fields()}
        shown = [f"{k}={v!r}" for k, v in self.get_params().items()
                 if k == "backbone" or not _same(v, defaults.get(k))]
        return f"FactorTopyEncoder({', '.join(shown)})"

    def _fit_settings(self) -> dict:
        return {name: getattr(self, name) for name in _fit_fields()}

    # ---- fitting --------------------------------------------------------------------------------
    def _subject(self, X, y, vertices, hemi, coords, image_ids, name):
        from factortopy.data.subject import Subject

        if isinstance(X, Subject):
            if any(v is not None for v in (y, vertices, hemi, coords, image_ids)):
                raise ValueError("fit(subject) takes the subject alone: its responses, vertices and coordinates "
                                 "come with it")
            return X
        if y is None:
            raise ValueError("fit(images, responses, vertices=..., hemi=...) needs the responses "
                             "(n_images, n_vertices), or pass a Subject: fit(subject)")
        images = UserImages(X)
        responses = np.asarray(y, dtype=np.float32)
        if responses.ndim == 1:
            responses = responses[:, None]
        if responses.ndim != 2:
            raise ValueError(f"responses must be (n_images, n_vertices), got shape {responses.shape}")
        n_img, n_vox = responses.shape
        if len(images) != n_img:
            raise ValueError(f"{len(images)} images but {n_img} response rows: one row per image")
        if hemi is None:
            raise ValueError("hemi= is needed: 'lh', 'rh', or an (n_vertices,) array of them")
        hemi = np.full(n_vox, hemi) if isinstance(hemi, str) else np.asarray(hemi).astype(str)
        if vertices is None:
            if coords is None:
                raise ValueError("give vertices= (fsaverage index of each response column) or coords= "
                                 "((n_vertices, 3) cortical coordinates)")
            vertex = np.full(n_vox, -1, dtype=np.int64)  # coordinates only: no fsaverage vertex to paint
        else:
            vertex = np.asarray(vertices)
            if vertex.shape != (n_vox,) or not np.issubdtype(vertex.dtype, np.integer):
                raise ValueError(f"vertices must be ({n_vox},) integer fsaverage indices (one per response "
                                 f"column), got {vertex.shape} {vertex.dtype}")
            vertex = vertex.astype(np.int64)
        if hemi.shape != (n_vox,):
            raise ValueError(f"hemi must be 'lh'/'rh' or ({n_vox},) of them, got shape {hemi.shape}")
        if coords is None:
            from factortopy.surface import cortical_coordinates

            coords = cortical_coordinates(vertex, hemi)
        coords = np.asarray(coords, dtype=np.float32)
        if coords.shape != (n_vox, 3):
            raise ValueError(f"coords must be ({n_vox}, 3), got {coords.shape}")
        image_ids = np.arange(n_img) if image_ids is None else np.asarray(image_ids)
        return Subject(images=images, responses=responses, vertex=vertex, hemi=hemi, coords=coords,
                       image_ids=image_ids.astype(np.int64), name=name, extra={"vertex_set": "as given"})

    def _build_backbone(self):
        if self.backbone is None:
            raise ValueError("FactorTopyEncoder needs a backbone: FactorTopyEncoder('resnet-18', ...) (a name means "
                             "its pretrained weights; random_init=True for a random network)")
        given = {k: getattr(self, k) for k in _SPEC_PARAMS if getattr(self, k) not in (None, False)}
        if hasattr(self.backbone, "info"):  # a built Backbone
            if given:
                raise ValueError(f"{sorted(given)} apply to a backbone name or spec, not to a built Backbone")
            return self.backbone
        from factortopy.backbones.spec import as_spec

        return as_spec(self.backbone, **given).build()

    def fit(self, X, y=None, *, vertices=None, hemi=None, coords=None, image_ids=None, out: str | None = None,
            overwrite: bool = False, name: str = "subject") -> "FactorTopyEncoder":
        """Fit on images and responses, or on a :class:`~factortopy.data.subject.Subject`.

        X: images (n_images; see :class:`UserImages`) or a Subject (then nothing else).
        y: responses (n_images, n_vertices), in any units: predictions come back in the same units
          (the fit z-scores each column with training-image statistics and undoes it).
        vertices: (n_vertices,) fsaverage vertex index of each column (within its hemisphere).
        hemi: 'lh' / 'rh' for all columns, or (n_vertices,) of them.
        coords: (n_vertices, 3) cortical coordinates (default: fsaverage sphere coordinates of
          ``vertices``, :func:`factortopy.surface.cortical_coordinates`); with coords, vertices may be
          left out (then nothing can be painted on fsaverage).
        image_ids: (n_images,) int ids recorded in the run (default 0..n-1).
        out: the RUN_DIR to write (default: a temporary folder removed with the estimator; keep the
          run with :meth:`save`). overwrite: replace a finished run in ``out``.
        """
        from factortopy.fitting.fit import fit
        from factortopy.runs import open_run

        subject = self._subject(X, y, vertices, hemi, coords, image_ids, name)
        if out is None:
            previous = getattr(self, "_tmp_cleanup", None)
            if previous is not None:
                previous()  # a refit replaces the previous temporary run
            tmp = tempfile.mkdtemp(prefix="factortopy-encoder-")
            self._tmp_cleanup = weakref.finalize(self, shutil.rmtree, tmp, ignore_errors=True)
            out = os.path.join(tmp, "run")
        with torch_threads(self.threads):
            backbone = self._build_backbone()
            fit(subject, backbone=backbone, out=out, overwrite=overwrite, cache_dir=self.cache_dir,
                progress=self.progress, **self._fit_settings())
        self._set_fitted(open_run(out), backbone)
        return self

    def _set_fitted(self, run, backbone=None) -> None:
        self.run_ = run
        self.model_ = run.model
        self.backbone_ = backbone
        self.vertex_, self.hemi_ = run.vertex, run.hemi
        self.n_vertices_ = int(len(run.vertex))
        self.layer_names_ = list(run.config["backbone"]["layer_names"])
        self.selectors_ = run.selectors()
        from factortopy.model.selectors import SELECTORS

        for spec in SELECTORS:  # one attribute per selector row: layer_probs_, space_xy_, scale_, rf_size_
            setattr(self, f"{spec.key}_", self.selectors_[spec.key])
        self.metrics_ = run.metrics
        self.scores_ = run.scores()

    # ---- predicting and scoring -----------------------------------------------------------------
    def _check_fitted(self, what: str):
        if getattr(self, "run_", None) is None:
            raise _not_fitted(what)
        if self.backbone_ is None:
            self.backbone_ = self.run_.backbone()  # rebuilt once from config.json and checked in full
        return self.run_

    def predict(self, X) -> np.ndarray:
        """(n_images, n_vertices) float32 predicted responses to images ``X`` (see :class:`UserImages`),
        in the units of the training responses; columns follow ``vertex_`` / ``hemi_``."""
        run = self._check_fitted("predict")
        return predict(run, X, batch_size=self.feature_batch_size, device=self.device, progress=self.progress,
                       threads=self.threads, backbone=self.backbone_)

    def score_vertices(self, X, y, metric: str = "r2") -> np.ndarray:
        """(n_vertices,) per-vertex score of the predictions for ``X`` against responses ``y``
        (n_images, n_vertices): ``metric='r2'`` the coefficient of determination 1 - SS_res / SS_tot
        (SS_tot around y's own mean, as sklearn), ``'r'`` Pearson r. A constant column scores 0.
        (:func:`factortopy.evaluation.metrics.vertex_scores`, shared with ``LayerwiseRidgeCV``.)"""
        from factortopy.evaluation.metrics import VERTEX_METRICS, vertex_scores

        if metric not in VERTEX_METRICS:  # before the predictions are computed
            raise ValueError(f"metric must be one of {sorted(VERTEX_METRICS)}, not {metric!r}")
        return vertex_scores(self.predict(X), y, metric)

    def score(self, X, y) -> float:
        """The mean over vertices of R^2 (coefficient of determination, not Pearson r), following
        scikit-learn's convention for regressors: equals ``sklearn.metrics.r2_score(y, predict(X))``
        (uniform average over columns), except that a constant column of ``y`` scores 0 here.
        Per vertex: :meth:`score_vertices`. ``LayerwiseRidgeCV.score`` means the same."""
        return float(np.mean(self.score_vertices(X, y, "r2")))

    def __getstate__(self):
        # a pickled copy keeps the model in memory but not the temporary folder's finalizer: the
        # folder goes with the original; persist a fit with save() / load()
        return {k: v for k, v in self.__dict__.items() if k != "_tmp_cleanup"}

    # ---- saving -------------------------------------------------------------------------------------
    def save(self, path: str, overwrite: bool = False) -> str:
        """Write the fitted run to ``path`` as a RUN_DIR (docs/run-dir.md), readable by
        :meth:`load`, :func:`factortopy.open_run` and every command. A finished run already there is
        refused unless ``overwrite=True``. Returns ``path``."""
        from factortopy.runs import COMMON_FILES
        from factortopy.runs.directory import writing_run
        from factortopy.runs.writer import RunWriter, write_run_file

        run = getattr(self, "run_", None)
        if run is None:
            raise _not_fitted("save")
        path = os.fspath(path)
        if os.path.abspath(path) == os.path.abspath(run.path):
            return path
        # a finished run there stays until this one is written; through the run writer, like every
        # run: checksums recorded, config.json last
        with writing_run(path, overwrite=overwrite, resume=False) as claim:
            writer = RunWriter(claim.path, type(run))
            for name in COMMON_FILES + type(run).files:
                writer.copy(name, os.path.join(run.path, name))
            writer.finish(dict(run.config))
            for name in sorted(os.listdir(run.path)):  # its evaluations come along, as into any finished run
                if name.startswith("eval_") and name.endswith((".npz", ".json")):
                    write_run_file(claim.path, name,
                                   lambda tmp, n=name: shutil.copyfile(os.path.join(run.path, n), tmp))
        return path

    @classmethod
    def load(cls, path: str) -> "FactorTopyEncoder":
        """A fitted estimator from a FactorTopy RUN_DIR (written by :meth:`save`, ``factortopy fit``
        or :func:`factortopy.fit`): parameters from its config.json, fitted attributes from its files."""
        from factortopy.backbones.spec import BackboneSpec
        from factortopy.fitting.run import load_run

        run = load_run(path)
        spec = run.config["backbone"].get("spec")
        known = _fit_fields()
        settings = {k: v for k, v in (run.config.get("fit") or {}).items() if k in known}
        est = cls(backbone=BackboneSpec.from_dict(spec) if spec else None, **settings)
        est._set_fitted(run)
        return est


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # arrays and the like: shown
        return False
