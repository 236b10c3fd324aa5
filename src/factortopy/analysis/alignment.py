"""Brain-network alignment the paper's way (Table 2): a straight line through (hierarchy
position, layer).

Each vertex v in a ranked ROI has a hierarchy position x_v in [0, 1] (0 = the early end, 1 = the
late end; :mod:`factortopy.analysis.roi_hierarchy`) and a normalised layer y_v in [0, 1] (0 = the
first hooked layer, 1 = the last). The alignment is the ordinary least-squares line

    y = b0 + slope * x,   slope = sum_v (x_v - mean x)(y_v - mean y) / sum_v (x_v - mean x)^2,
                          b0 = mean y - slope * mean x,   b1 = b0 + slope

b0 is the fitted layer at the early end (small: early layers serve early cortex), b1 the fitted
layer at the late end (large: late layers serve late cortex), slope their difference (large: the
network's depth follows the brain's hierarchy). This reads the Table 2 caption ("larger slope:
better overall alignment; smaller b0: early layers better aligned; larger b1: late layers better
aligned"); the paper's own formula was not found (docs/method.md, "Brain-network alignment").

Settings (the defaults are argued in docs/method.md):

* ``layer``: ``"argmax"`` (default) y_v = argmax_l p_vl / (L - 1), the layer the paper's painted
  map shows; ``"expected"`` y_v = sum_l l p_vl / (L - 1). Readouts register in :data:`LAYER_READOUTS`.
* ``fit``: ``"vertex"`` (default) one point per vertex; ``"roi"`` one point per ROI group,
  (x_g, the mean of y_v over the group's vertices), every group weighted alike.

Interval: the spatial block bootstrap (:mod:`factortopy.analysis.intervals`). A draw weights
vertex v by w_v, how often its block was drawn; the weighted least-squares line of the draw is
that of the resampled vertices:

    slope = (S_w S_xy - S_x S_y) / (S_w S_xx - S_x^2),  b0 = (S_y - slope S_x) / S_w,
    S_w = sum w_v, S_x = sum w_v x_v, S_y = sum w_v y_v, S_xx = sum w_v x_v^2, S_xy = sum w_v x_v y_v

so all draws are one matrix product of the draws' block counts with per-block sums. For the ROI
fit, each draw's group means are (block counts @ per-block group sums) / (block counts @ per-block
group sizes) and the line goes through the groups present in the draw.
"""
from __future__ import annotations

import numpy as np

from factortopy.analysis.layers import check_layer_probs, expected_layer

FITS = ("vertex", "roi")


def _argmax_layer(p: np.ndarray) -> np.ndarray:
    return p.argmax(1) / max(p.shape[1] - 1, 1)


#: how a vertex's layer is read from its layer selector p_v (N, L) -> (N,) in [0, 1]
LAYER_READOUTS = {"argmax": _argmax_layer, "expected": expected_layer}


def normalised_layer(layer_probs, layer: str = "argmax") -> np.ndarray:
    """(N,) layer of each vertex in [0, 1] (first layer 0, last 1), read as ``layer`` (a key of
    :data:`LAYER_READOUTS`: 'argmax' or 'expected')."""
    if layer not in LAYER_READOUTS:
        raise ValueError(f"layer must be one of {', '.join(LAYER_READOUTS)}, got {layer!r}")
    return np.asarray(LAYER_READOUTS[layer](check_layer_probs(layer_probs)), np.float64)


def line_from_sums(sw, sx, sy, sxx, sxy) -> tuple[np.ndarray, np.ndarray]:
    """(slope, b0) of the weighted least-squares line from its sums (arrays of any one shape);
    NaN where the positions do not vary."""
    sw, sx, sy, sxx, sxy = (np.asarray(a, np.float64) for a in (sw, sx, sy, sxx, sxy))
    den = sw * sxx - sx * sx
    ok = (sw > 0) & (den > 1e-12 * np.maximum(sw * sxx, 1e-300))
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(ok, (sw * sxy - sx * sy) / np.where(ok, den, 1), np.nan)
        b0 = np.where(ok, (sy - slope * sx) / np.where(sw > 0, sw, 1), np.nan)
    return slope, b0


class AlignmentData:
    """One map's (x, y) points cut into spatial blocks, ready to be fitted under any draw.

    y (N,) normalised layer, x (N,) position (NaN = unranked: left out), group (N,) group index
    (-1 = none; for the ROI fit), labels (N,) block of each vertex, n_blocks K.
    """

    def __init__(self, y, x, group, labels, n_blocks: int, fit: str = "vertex"):
        if fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
        y, x = np.asarray(y, np.float64), np.asarray(x, np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        self.fit, self.n = fit, int(ok.sum())
        lab = np.asarray(labels, np.int64)[ok]
        y, x = y[ok], x[ok]
        from factortopy.analysis.intervals import block_sums

        if fit == "vertex":
            self.sums = block_sums(lab, n_blocks, np.stack([np.ones_like(x), x, y, x * x, x * y], 1))  # (K, 5)
            self.n_groups = int(np.unique(x).size)
        else:
            g = np.asarray(group, np.int64)[ok]
            if (g < 0).any():
                raise ValueError("the ROI fit needs a group for every ranked vertex")
            ids, g = np.unique(g, return_inverse=True)
            self.x_group = np.array([x[g == i][0] for i in range(ids.size)])  # (G,) one position per group
            onehot = np.eye(ids.size)[g]  # (n, G)
            self.size = block_sums(lab, n_blocks, onehot)  # (K, G)
            self.total = block_sums(lab, n_blocks, onehot * y[:, None])  # (K, G)
            self.n_groups = int(ids.size)

    def lines(self, counts) -> dict:
        """{'slope', 'b0', 'b1'}: (D,) for block counts (D, K) (ones (1, K) = the data as they are)."""
        c = np.asarray(counts, np.float64)
        if self.fit == "vertex":
            s = c @ self.sums  # (D, 5)
            slope, b0 = line_from_sums(*s.T)
        else:
            n_g = c @ self.size
            with np.errstate(divide="ignore", invalid="ignore"):
                mean = (c @ self.total) / n_g
            w = (n_g > 0).astype(np.float64)
            mean = np.where(w > 0, mean, 0.0)
            xg = self.x_group[None]
            slope, b0 = line_from_sums(w.sum(1), (w * xg).sum(1), (w * mean).sum(1), (w * xg * xg).sum(1),
                                       (w * xg * mean).sum(1))
        return {"slope": slope, "b0": b0, "b1": b0 + slope}


def brain_network_alignment(layer_probs, position=None, *, roi=None, scheme=None, overlap: str = "earliest",
                            group=None, layer: str = "argmax", fit: str = "vertex", vertex=None, hemi=None,
                            n_boot: int = 1000, ci: float = 0.95, seed: int = 0, n_blocks: int | None = 50) -> dict:
    """The alignment line (slope, b0, b1) of a layer map against the hierarchy, with intervals.

    layer_probs: (N, L). The position is ``position`` (N,) in [0, 1] (NaN = left out; ``group``
    (N,) names the ROI of each vertex for ``fit='roi'``, default: one group per distinct position),
    or that of ``roi`` (the loaders' ROI dict {label: (N,) bool} or (N,) labels) under ``scheme``
    with ``overlap`` (:func:`factortopy.analysis.roi_hierarchy.hierarchy_positions`).
    layer: 'argmax' or 'expected'; fit: 'vertex' or 'roi' (module docstring). vertex, hemi (N,):
    fsaverage columns for the spatial block bootstrap over ``n_blocks`` patches (without them, or
    with n_blocks=None, single vertices are resampled, which understates the uncertainty).
    Returns {'slope', 'b0', 'b1', and '<each>_ci_low' / '_ci_high', 'n' (vertices in the fit),
    'n_groups', 'layer', 'fit', 'scheme', 'counts' (the scheme's vertex counts, with roi), 'ci',
    'n_boot', 'bootstrap'}.
    """
    from factortopy.analysis.intervals import iter_block_counts, percentile_interval, spatial_blocks

    y = normalised_layer(layer_probs, layer)
    n = len(y)
    counts, scheme_name = None, None
    if position is not None:
        x = np.asarray(position, np.float64)
        if x.shape != (n,):
            raise ValueError(f"position has {x.size} entries for {n} vertices")
        if group is None:  # one group per distinct position
            group = np.full(n, -1, np.int64)
            group[np.isfinite(x)] = np.unique(x[np.isfinite(x)], return_inverse=True)[1]
    elif roi is not None:
        from factortopy.analysis.roi_hierarchy import hierarchy_positions

        h = hierarchy_positions(roi, n, scheme, overlap)
        x, counts, scheme_name = h["position"], h["counts"], h["scheme"]
        order = [g for g, _ in h["groups"]]
        group = np.array([order.index(g) if g else -1 for g in h["group"]])
    else:
        raise ValueError("give the hierarchy position (position=) or the ROIs (roi=, with scheme=)")
    ok = np.isfinite(x)
    if ok.sum() < 3 or np.unique(x[ok]).size < 2:
        raise ValueError(f"{int(ok.sum())} vertices at {np.unique(x[ok]).size} hierarchy position(s): an alignment "
                         "line needs vertices at two positions or more (check the ROIs and the scheme)")
    if n_blocks and vertex is not None and hemi is not None:
        labels = np.full(n, -1, np.int64)
        labels[ok] = spatial_blocks(np.asarray(vertex)[ok], np.asarray(hemi)[ok], n_blocks, seed)
        k, bootstrap = int(labels.max()) + 1, f"{int(labels.max()) + 1} spatial blocks"
    else:
        labels = np.where(ok, np.cumsum(ok) - 1, -1)
        k, bootstrap = int(ok.sum()), "vertices"
    labels = np.where(ok, labels, 0)  # unranked vertices are dropped by AlignmentData (x is NaN)
    data = AlignmentData(y, x, np.asarray(group), labels, k, fit)
    point = data.lines(np.ones((1, k)))
    draws = {m: [] for m in point}
    for c in iter_block_counts(k, n_boot, seed):
        for m, v in data.lines(c).items():
            draws[m].append(v)
    out = {m: float(v[0]) for m, v in point.items()}
    for m, parts in draws.items():
        out[f"{m}_ci_low"], out[f"{m}_ci_high"] = percentile_interval(np.concatenate(parts) if parts else [], ci)
    out.update(n=data.n, n_groups=data.n_groups, layer=layer, fit=fit, scheme=scheme_name, counts=counts, ci=ci,
               n_boot=int(n_boot), bootstrap=bootstrap)
    return out
