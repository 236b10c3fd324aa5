"""The per-vertex readout refitted in closed form after training: ridge on the selected features, a
penalty per vertex chosen by cross-validation (docs/method.md, "Predicting as well as ridge").

The selectors and the channel projections stay as trained; vertex v's selected features
z_v(image) = K_v X(image) in R^D (``FactorTopy.read``: what ``forward_tokens`` reads out) are fixed, and its readout
becomes the ridge solution

    (w_v, b_v) = argmin_{w, b} sum_i (y_vi - b - z_vi . w)^2 + alpha_v |w|^2

over the given images (the fit's training images), alpha_v the grid value with the least K-fold
cross-validated squared error over the same images. The grid is relative to each vertex's features:
alpha = a x the mean eigenvalue of the vertex's centred Gram matrix, for ``a`` in
``relative_alphas``, so one grid suits every layer and scale. The model's forward is unchanged
(y = mean_d(w * z) + b: the readout stored is D w).

Everything comes from sufficient statistics summed over image batches (per fold: the Gram matrix,
the feature and target sums, their cross products), so no (images x vertices x D) array is held:
memory is about folds x vertex_chunk x D^2 x 8 bytes, and one eigendecomposition per vertex and fold
serves the whole grid. The projected tokens (images x L x T x D) are computed once when they fit in
the memory budget, else again for every vertex chunk.
"""
from __future__ import annotations

import numpy as np
import torch

#: ridge penalties relative to the mean eigenvalue of a vertex's centred Gram matrix
RELATIVE_ALPHAS = tuple(float(a) for a in np.logspace(-4, 3, 15))


def fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    """(n,) fold of each image: a seeded permutation dealt round-robin into ``folds`` folds."""
    if folds < 2 or n < 2 * folds:
        raise ValueError(f"{n} images are too few for {folds}-fold cross-validation of the readout (need "
                         f">= {2 * folds} and folds >= 2)")
    out = np.empty(n, np.int64)
    out[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return out


@torch.no_grad()
def selected_features(model, tokens: torch.Tensor, index=None, selectors=None) -> torch.Tensor:
    """z (B, N', D) float32: what vertices ``index`` (all when None; or those of ``selectors``) read
    out of the images ``tokens`` (B, L, T, C_max): :meth:`FactorTopy.read` of the projected tokens."""
    if selectors is None:
        selectors = model.selectors(index)
    return model.read(model.project(tokens.float()).float(), selectors).float()


class _Statistics:
    """Per fold sums over its images for a chunk of vertices (float64): count (F,), zs (F, n, D),
    gram (F, n, D, D), zy (F, n, D), ys (F, n), yy (F, n)."""

    def __init__(self, folds: int, n: int, D: int, device):
        z = dict(dtype=torch.float64, device=device)
        self.count = torch.zeros(folds, **z)
        self.zs, self.zy = torch.zeros(folds, n, D, **z), torch.zeros(folds, n, D, **z)
        self.gram = torch.zeros(folds, n, D, D, **z)
        self.ys, self.yy = torch.zeros(folds, n, **z), torch.zeros(folds, n, **z)

    def add(self, k: int, z: torch.Tensor, t: torch.Tensor) -> None:
        """Images of fold k: features z (B, n, D) float32, targets t (B, n)."""
        self.count[k] += z.shape[0]
        self.zs[k] += z.sum(0).double()
        self.gram[k] += torch.einsum("bnd,bne->nde", z, z).double()  # float32 GEMM, float64 sums
        self.zy[k] += torch.einsum("bnd,bn->nd", z, t).double()
        self.ys[k] += t.sum(0).double()
        self.yy[k] += (t * t).sum(0).double()

    def fold(self, k: int, leave_out: bool) -> tuple:
        """(count, zs, gram, zy, ys, yy) of fold k, or of all folds but k (``leave_out``)."""
        parts = (self.count, self.zs, self.gram, self.zy, self.ys, self.yy)
        return tuple(p.sum(0) - p[k] if leave_out else p[k] for p in parts)

    def total(self) -> tuple:
        return tuple(p.sum(0) for p in (self.count, self.zs, self.gram, self.zy, self.ys, self.yy))


def _ridge_path(count, zs, gram, zy, ys, yy, relative):
    """Centred ridge solutions for every relative alpha from summed statistics: w (A, n, D),
    intercept (A, n), alpha (A, n)."""
    mu, ybar = zs / count, ys / count
    G = gram - count * mu[:, :, None] * mu[:, None, :]
    b = zy - count * mu * ybar[:, None]
    lam, Q = torch.linalg.eigh(G)  # (n, D), (n, D, D)
    lam = lam.clamp_min(0)
    alphas = torch.as_tensor(relative, dtype=lam.dtype, device=lam.device)[:, None] * lam.mean(1).clamp_min(1e-12)
    qb = torch.einsum("nde,nd->ne", Q, b)
    w = torch.einsum("nde,ane->and", Q, qb[None] / (lam[None] + alphas[:, :, None]))
    return w, ybar[None] - (w * mu[None]).sum(-1), alphas


def _squared_error(w, c, count, zs, gram, zy, ys, yy):
    """Sum over a fold's images of (y - c - z . w)^2 for every (alpha, vertex), from its statistics."""
    wGw = torch.einsum("and,nde,ane->an", w, gram, w)
    return (yy[None] - 2 * c * ys[None] - 2 * (w * zy[None]).sum(-1) + count * c * c
            + 2 * c * (w * zs[None]).sum(-1) + wGw)


@torch.no_grad()
def ridge_readout(model, tokens: torch.Tensor, y: torch.Tensor, index=None, folds: int = 5, seed: int = 0,
                  relative_alphas=RELATIVE_ALPHAS, batch_size: int = 64, device: str = "cpu",
                  max_bytes: int | None = None, progress: bool = False) -> dict:
    """The closed-form per-vertex readout of ``model`` on images ``tokens`` (n_images, L, T, C_max)
    with targets ``y`` (n_images, N) (the fit's z-scored responses), over the images ``index``
    (all when None; read a batch at a time, never copied whole); the model is not changed
    (:func:`refine_readout` sets the result).

    folds / seed: the K-fold split of the images that chooses each vertex's penalty. max_bytes: the
    memory budget (default :func:`factortopy.fitting.memory.eval_budget`).

    Returns dict(weight (N, D) float32 (the model's ``readout_weight``: D times the ridge weights),
    bias (N,) float32, alpha (N,) the chosen penalty, relative_alpha (N,) its grid value, cv_mse
    (N,) its cross-validated mean squared error per image).
    """
    from factortopy._progress import progress_bar
    from factortopy.fitting.memory import eval_budget

    model = model.to(device).eval()
    N = model.n_vertices
    if y.shape != (tokens.shape[0], N):
        raise ValueError(f"targets have shape {tuple(y.shape)}, expected ({tokens.shape[0]}, {N})")
    index = torch.arange(tokens.shape[0]) if index is None else torch.as_tensor(np.asarray(index), dtype=torch.long)
    n = len(index)
    folds_of = torch.as_tensor(fold_ids(n, folds, seed))
    batches = [index[s:s + batch_size] for s in range(0, n, batch_size)]
    relative = np.asarray(relative_alphas, np.float64)
    budget = eval_budget(device) if max_bytes is None else int(max_bytes)
    T, D = tokens.shape[2], model.dim

    def project(rows):
        return model.project(tokens[rows].to(device).float()).float()  # (B, L, T, D)

    projected = None  # the projected tokens of every image, when they fit in half the budget
    if n * model.n_layers * T * D * 4 <= budget // 2:
        projected = [project(rows) for rows in batches]
    # per vertex: folds x (Gram + eigenvectors + a copy) in float64, and a batch of features
    per_vertex = folds * 3 * D * D * 8 + batch_size * D * 8 + model.n_layers * T * 8
    chunk = int(max(1, min(N, (budget // 2) // per_vertex)))
    weight = np.empty((N, D), np.float32)
    out = {k: np.empty(N, np.float64) for k in ("bias", "alpha", "relative_alpha", "cv_mse")}
    bar = progress_bar(total=N, desc="readout", unit="vertex", disable=not progress)
    for v0 in range(0, N, chunk):
        vertices = torch.arange(v0, min(v0 + chunk, N), device=device)
        sel = model.selectors(vertices)
        stats = _Statistics(folds, len(vertices), D, device)
        for b, rows in enumerate(batches):
            z = model.read(project(rows) if projected is None else projected[b], sel).float()  # (B, n, D)
            t = y[rows, v0:v0 + len(vertices)].to(device).float()
            f = folds_of[b * batch_size:b * batch_size + len(rows)]
            for k in torch.unique(f).tolist():
                m = (f == k).to(device)
                stats.add(k, z[m], t[m])
        sse = 0
        for k in range(folds):  # fit on the other folds, score fold k: from the statistics alone
            w, c, _ = _ridge_path(*stats.fold(k, leave_out=True), relative)
            sse = sse + _squared_error(w, c, *stats.fold(k, leave_out=False))
        best = sse.argmin(0)
        w, c, alphas = _ridge_path(*stats.total(), relative)
        pick = torch.arange(len(vertices), device=w.device)
        rows = slice(v0, v0 + len(vertices))
        weight[rows] = (w[best, pick] * model.dim).float().cpu().numpy()
        out["bias"][rows] = c[best, pick].cpu().numpy()
        out["alpha"][rows] = alphas[best, pick].cpu().numpy()
        out["relative_alpha"][rows] = relative[best.cpu().numpy()]
        out["cv_mse"][rows] = (sse[best, pick] / n).cpu().numpy()
        bar.update(len(vertices))
    bar.close()
    return dict(weight=weight, bias=out["bias"].astype(np.float32), alpha=out["alpha"],
                relative_alpha=out["relative_alpha"], cv_mse=out["cv_mse"])


@torch.no_grad()
def refine_readout(model, tokens: torch.Tensor, y: torch.Tensor, **kwargs) -> dict:
    """Set ``model``'s readout to :func:`ridge_readout`'s (selectors and projections unchanged);
    return that dict."""
    result = ridge_readout(model, tokens, y, **kwargs)
    model.readout_weight.copy_(torch.from_numpy(result["weight"]).to(model.readout_weight))
    model.readout_bias.copy_(torch.from_numpy(result["bias"]).to(model.readout_bias))
    return result


def refit_metrics(model, tokens, y, train_idx, trained_val_r: float, cfg, progress: bool = False) -> dict:
    """The fit's readout stage (``FitConfig.readout_refit="ridge"``): refine ``model``'s readout on
    the training images ``train_idx`` (folds drawn from ``cfg.seed``); return what metrics.json
    records of it: the seconds it took, the early-stopping images' mean r of the trained readout
    (before), and the chosen relative penalties' median and quartiles."""
    import time

    from factortopy.fitting.config import READOUT_FOLDS

    t0 = time.time()
    # the default image batch, not cfg.eval_batch_size: how evaluation is chunked is not a setting of the
    # result (a resume may change it), and the float32 sums depend on the batches
    result = refine_readout(model, tokens, y, index=train_idx, folds=READOUT_FOLDS, seed=cfg.seed, device=cfg.device,
                            progress=progress)
    q = np.quantile(result["relative_alpha"], [0.25, 0.5, 0.75])
    return dict(readout_refit_seconds=time.time() - t0, val_pearson_mean_trained_readout=float(trained_val_r),
                readout_relative_alpha_quartiles=[float(x) for x in q])
