"""Compare two runs of the same subject: per-vertex and per-ROI shift of layer, position and scale."""
from __future__ import annotations

import numpy as np

from factortopy.analysis.layers import expected_layer
from factortopy.runs.columns import align_columns


def _as_maps(x, load, name: str) -> dict:
    if isinstance(x, dict):
        return x
    if load is None:
        raise TypeError(f"run {name} is a {type(x).__name__}, not a maps dict: pass maps dicts, or the path with "
                        "load=factortopy.runs.maps.load_maps (or any function path -> maps dict)")
    out = load(x)
    if not isinstance(out, dict):
        raise TypeError(f"load({x!r}) returned a {type(out).__name__}, not a maps dict")
    return out


def compare_runs(a, b, roi=None, load=None) -> dict:
    """Shift from run ``a`` to run ``b`` on the vertices they share (matched by (hemi, vertex)).

    a, b: maps dicts with ``vertex`` (N,), ``hemi`` (N,) and any of ``layer_probs`` (N, L),
    ``space_xy`` (N, 2), ``scale`` (N,) (e.g. from :func:`factortopy.runs.maps.load_maps`); or anything
    else (a RUN_DIR path) when ``load`` is given: a callable turning it into such a dict
    (``compare_runs("runs/a", "runs/b", load=factortopy.runs.maps.load_maps)``). roi: optional (N_a,)
    ROI labels in run a's order for the per-ROI table.
    Returns {'vertex', 'hemi' (M,), 'd_layer' (M,) expected-layer shift b - a in [0, 1] units of
    each run's own depth, 'd_space' (M, 2) shift of (x, y), 'd_space_dist' (M,) its length
    (grid units, image width = 2), 'd_scale' (M,), 'n_matched', 'n_only_a', 'n_only_b', 'per_roi'
    (list of rows {'roi', 'n', 'd_layer', 'd_space_dist', 'd_scale'} means; empty without roi)}.
    """
    # analysis reads no files itself (it sits below viz and the run readers): the caller says how
    a, b = (_as_maps(x, load, name) for x, name in ((a, "a"), (b, "b")))
    ia, ib = align_columns(a["vertex"], a["hemi"], b["vertex"], b["hemi"])
    out = {
        "vertex": np.asarray(a["vertex"])[ia],
        "hemi": np.asarray(a["hemi"]).astype(str)[ia],
        "n_matched": int(len(ia)),
        "n_only_a": int(len(a["vertex"]) - len(ia)),
        "n_only_b": int(len(b["vertex"]) - len(ib)),
    }
    if a.get("layer_probs") is not None and b.get("layer_probs") is not None:
        out["d_layer"] = expected_layer(b["layer_probs"])[ib] - expected_layer(a["layer_probs"])[ia]
    if a.get("space_xy") is not None and b.get("space_xy") is not None:
        d = np.asarray(b["space_xy"], float)[ib] - np.asarray(a["space_xy"], float)[ia]
        out["d_space"] = d
        out["d_space_dist"] = np.linalg.norm(d, axis=1)
    if a.get("scale") is not None and b.get("scale") is not None:
        out["d_scale"] = np.asarray(b["scale"], float)[ib] - np.asarray(a["scale"], float)[ia]
    rows = []
    if roi is not None:
        roi = np.asarray(roi, dtype=object)
        if len(roi) != len(a["vertex"]):
            raise ValueError(f"{len(roi)} ROI labels for {len(a['vertex'])} vertices of run a")
        r = roi[ia]
        for lab in sorted({x for x in r.tolist() if x is not None and x != ""}, key=str):
            m = r == lab
            row = {"roi": lab, "n": int(m.sum())}
            for k in ("d_layer", "d_space_dist", "d_scale"):
                if k in out:
                    row[k] = float(np.mean(out[k][m]))
            rows.append(row)
    out["per_roi"] = rows
    return out
