"""The baseline everyone knows: per-layer ridge regression, per-vertex alpha, best layer per vertex.

For each hooked layer, himalaya's ``RidgeCV`` (``KernelRidgeCV`` with a linear kernel when there
are fewer images than features; numpy backend) picks an alpha per vertex by K-fold
cross-validation. The best layer of each vertex is the one with the highest Pearson r on an inner
validation split of the TRAINING images (never the test images); each layer is then refit on all
training images for the vertices that chose it.
"""
from __future__ import annotations

import numpy as np

from factortopy.evaluation.metrics import pearson_r, vertex_scores
from factortopy.data.split import train_val_split

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-2, 8, 11))


class numpy_backend:
    """Run a block under himalaya's float64 numpy backend (exact, deterministic, CPU) and restore
    the caller's backend afterwards: a baseline never changes a global setting behind one's back."""

    def __enter__(self):
        from himalaya.backend import get_backend, set_backend

        self._previous = get_backend()
        set_backend("numpy", on_error="raise")
        return self

    def __exit__(self, *exc):
        from himalaya.backend import set_backend

        set_backend(self._previous, on_error="raise")


def _ridge_cv(alphas, cv, n_samples: int, n_features: int):
    """himalaya's RidgeCV, or its linear-kernel twin when there are fewer images than features
    (the same solution, computed in the n x n kernel space: faster)."""
    try:
        from himalaya.kernel_ridge import KernelRidgeCV
        from himalaya.ridge import RidgeCV
    except ImportError:
        raise ImportError("the ridge baseline needs himalaya: pip install 'factortopy[ridge]' "
                          "(or pip install himalaya)") from None
    alphas = np.asarray(alphas, dtype=np.float64)
    if n_samples < n_features:
        return KernelRidgeCV(alphas=alphas, kernel="linear", cv=cv, warn=False)
    return RidgeCV(alphas=alphas, cv=cv)


class LayerwiseRidgeCV:
    """Ridge per layer with a cross-validated alpha per vertex, then the best layer per vertex.

    Parameters: alphas (candidate ridge penalties), cv (folds for alpha), inner_val_fraction and
    seed (the inner split of the training images that chooses the layer), standardize (z-score
    features with training statistics).

    Fitted attributes: ``best_layer_`` (N,) int, ``alpha_`` (N,) the chosen alpha,
    ``layer_scores_`` (L, N) inner-validation Pearson r of every layer, ``coefs_`` list of L arrays
    (D_l, N_l) for the vertices whose best layer is l (``columns_[l]``), ``x_mean_``/``x_scale_``
    per layer (D_l,), ``y_mean_`` (N,), ``n_layers_``, ``n_targets_``.
    """

    def __init__(self, alphas=DEFAULT_ALPHAS, cv: int = 5, inner_val_fraction: float = 0.2, seed: int = 0,
                 standardize: bool = True):
        self.alphas = alphas
        self.cv = cv
        self.inner_val_fraction = inner_val_fraction
        self.seed = seed
        self.standardize = standardize

    _estimator_type = "regressor"
    _PARAMS = ("alphas", "cv", "inner_val_fraction", "seed", "standardize")

    # -- parameters (scikit-learn's protocol, so ``sklearn.base.clone`` works)
    def get_params(self, deep: bool = True) -> dict:
        """Every parameter (name -> value) as ``__init__`` took it."""
        return {name: getattr(self, name) for name in self._PARAMS}

    def set_params(self, **params) -> "LayerwiseRidgeCV":
        """Change parameters (takes effect at the next fit); returns self."""
        for name, value in params.items():
            if name not in self._PARAMS:
                raise ValueError(f"invalid parameter {name!r} for LayerwiseRidgeCV; valid: {', '.join(self._PARAMS)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        return f"LayerwiseRidgeCV({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    # -- helpers
    def _scale(self, X, mean, scale):
        return (np.asarray(X, dtype=np.float64) - mean) / scale

    def _stats(self, X):
        X = np.asarray(X, dtype=np.float64)
        mean = X.mean(0)
        scale = X.std(0) if self.standardize else np.ones(X.shape[1])
        return mean, np.where(scale > 1e-12, scale, 1.0)

    def _fit_layer(self, X, Y):
        mean, scale = self._stats(X)
        Xz = self._scale(X, mean, scale)
        model = _ridge_cv(self.alphas, self.cv, *Xz.shape)
        model.fit(Xz, Y - Y.mean(0))
        coef = model.get_primal_coef(Xz) if hasattr(model, "get_primal_coef") else model.coef_
        # himalaya reports alphas after a rescaling (round-off): snap back to the candidates
        grid = np.asarray(self.alphas, dtype=np.float64)
        best = np.asarray(model.best_alphas_, dtype=np.float64)
        best = grid[np.argmin(np.abs(np.log(best)[:, None] - np.log(grid)[None]), axis=1)]
        return np.asarray(coef, dtype=np.float64), best, mean, scale

    def _check(self, Xs, n=None):
        if isinstance(Xs, np.ndarray) and Xs.ndim == 2:
            Xs = [Xs]
        Xs = list(Xs)
        if not Xs:
            raise ValueError("no layers: pass a list of (n_images, n_features) arrays, one per layer")
        rows = {x.shape[0] for x in Xs}
        if len(rows) != 1 or (n is not None and rows != {n}):
            raise ValueError(f"every layer's features must have the same number of images ({n}); got {sorted(rows)}")
        return Xs

    # -- estimator API
    def fit(self, Xs, Y):
        """Xs: list of L arrays (n_images, D_l); Y: (n_images, N) responses."""
        with numpy_backend():
            return self._fit(Xs, Y)

    def _fit(self, Xs, Y):
        Y = np.asarray(Y, dtype=np.float64)
        Xs = self._check(Xs, Y.shape[0])
        n, N = Y.shape
        if n < 2 * self.cv:
            raise ValueError(f"{n} training images are too few for {self.cv}-fold alpha selection plus an inner "
                             "validation split; use more images or a smaller cv")
        inner_tr, inner_va = train_val_split(n, self.inner_val_fraction, self.seed)
        scores = np.zeros((len(Xs), N))
        for l, X in enumerate(Xs):
            coef, _, mean, scale = self._fit_layer(X[inner_tr], Y[inner_tr])
            pred = self._scale(X[inner_va], mean, scale) @ coef + Y[inner_tr].mean(0)
            scores[l] = pearson_r(pred, Y[inner_va])
        self.layer_scores_ = scores.astype(np.float32)
        self.best_layer_ = np.argmax(scores, axis=0).astype(np.int64)
        self.alpha_ = np.zeros(N)
        self.coefs_, self.columns_, self.x_mean_, self.x_scale_ = [], [], [], []
        for l, X in enumerate(Xs):
            cols = np.where(self.best_layer_ == l)[0]
            mean, scale = self._stats(X)
            if cols.size:
                coef, alphas, mean, scale = self._fit_layer(X, Y[:, cols])
                self.alpha_[cols] = alphas
            else:
                coef = np.zeros((X.shape[1], 0))
            self.coefs_.append(coef.astype(np.float32))
            self.columns_.append(cols)
            self.x_mean_.append(mean.astype(np.float32))
            self.x_scale_.append(scale.astype(np.float32))
        self.y_mean_ = Y.mean(0).astype(np.float32)
        self.n_layers_, self.n_targets_ = len(Xs), N
        return self

    def predict(self, Xs) -> np.ndarray:
        """(n_images, N) float32 predictions, each vertex from its best layer."""
        if not hasattr(self, "coefs_"):
            raise RuntimeError("fit the LayerwiseRidgeCV (or load it) before predict")
        Xs = self._check(Xs)
        if len(Xs) != self.n_layers_:
            raise ValueError(f"fitted on {self.n_layers_} layers, got {len(Xs)}")
        out = np.tile(self.y_mean_, (Xs[0].shape[0], 1))
        for l, X in enumerate(Xs):
            cols = self.columns_[l]
            if cols.size:
                out[:, cols] += (self._scale(X, self.x_mean_[l], self.x_scale_[l]) @ self.coefs_[l]).astype(np.float32)
        return out

    def score_vertices(self, Xs, Y, metric: str = "r2") -> np.ndarray:
        """(N,) per-vertex score of the predictions against ``Y`` (n_images, N): ``'r2'`` the
        coefficient of determination, ``'r'`` Pearson r; a constant column scores 0
        (:func:`factortopy.evaluation.metrics.vertex_scores`, as ``FactorTopyEncoder.score_vertices``)."""
        return vertex_scores(self.predict(Xs), Y, metric)

    def score(self, Xs, Y) -> float:
        """The mean over vertices of R^2, as ``FactorTopyEncoder.score`` and scikit-learn's
        regressors (``sklearn.metrics.r2_score`` averaged uniformly over columns), except that a
        constant column scores 0. Per vertex: :meth:`score_vertices`."""
        return float(np.mean(self.score_vertices(Xs, Y, "r2")))

    # -- persistence
    def state(self) -> dict:
        """Arrays for ``np.savez`` (``ridge.npz`` in a RUN_DIR)."""
        out = dict(best_layer=self.best_layer_, alpha=self.alpha_, layer_scores=self.layer_scores_,
                   y_mean=self.y_mean_, alphas=np.asarray(self.alphas), cv=self.cv,
                   inner_val_fraction=self.inner_val_fraction, seed=self.seed, standardize=self.standardize)
        for l in range(self.n_layers_):
            out[f"coef_{l}"], out[f"columns_{l}"] = self.coefs_[l], self.columns_[l]
            out[f"x_mean_{l}"], out[f"x_scale_{l}"] = self.x_mean_[l], self.x_scale_[l]
        return out

    @classmethod
    def from_state(cls, state) -> "LayerwiseRidgeCV":
        m = cls(alphas=tuple(np.asarray(state["alphas"]).tolist()), cv=int(state["cv"]),
                inner_val_fraction=float(state["inner_val_fraction"]), seed=int(state["seed"]),
                standardize=bool(state["standardize"]))
        m.best_layer_, m.alpha_ = np.asarray(state["best_layer"]), np.asarray(state["alpha"])
        m.layer_scores_, m.y_mean_ = np.asarray(state["layer_scores"]), np.asarray(state["y_mean"])
        m.n_layers_, m.n_targets_ = m.layer_scores_.shape
        m.coefs_ = [np.asarray(state[f"coef_{l}"]) for l in range(m.n_layers_)]
        m.columns_ = [np.asarray(state[f"columns_{l}"]) for l in range(m.n_layers_)]
        m.x_mean_ = [np.asarray(state[f"x_mean_{l}"]) for l in range(m.n_layers_)]
        m.x_scale_ = [np.asarray(state[f"x_scale_{l}"]) for l in range(m.n_layers_)]
        return m
