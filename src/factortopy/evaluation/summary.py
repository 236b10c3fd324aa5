"""Per-ROI summaries of per-vertex metrics, as rows (list of dicts) and as plain text."""
from __future__ import annotations

import numpy as np


def roi_table(metrics: dict, rois: dict | None = None, hemi=None, include_all: bool = True) -> list[dict]:
    """One row per ROI: ``roi``, ``n_vertices``, and for each metric its mean and median.

    metrics: {name: (N,) array} (e.g. r, r2, score). rois: {name: (N,) bool}; None = only 'all'.
    hemi: (N,) 'lh'/'rh' to add one row per ROI and hemisphere (``roi`` 'V1v lh'). NaN entries (e.g.
    a score where the noise ceiling is 0) are left out of that metric's mean and median; a metric with
    no finite value in a ROI gives None.
    """
    names = list(metrics)
    n = len(next(iter(metrics.values())))
    for k, v in metrics.items():
        if len(v) != n:
            raise ValueError(f"metric {k!r} has {len(v)} entries, expected {n}")
    groups = []
    if include_all:
        groups.append(("all", np.ones(n, bool)))
    for name, mask in (rois or {}).items():
        mask = np.asarray(mask, bool)
        if mask.shape != (n,):
            raise ValueError(f"ROI {name!r} has {mask.shape[0]} entries but there are {n} vertices")
        groups.append((name, mask))
    if hemi is not None:
        hemi = np.asarray(hemi)
        groups = [g for name, m in groups for g in [(name, m)] + [(f"{name} {h}", m & (hemi == h))
                                                                 for h in ("lh", "rh") if (m & (hemi == h)).any()]]
    rows = []
    for name, mask in groups:
        row = {"roi": name, "n_vertices": int(mask.sum())}
        for k in names:
            values = np.asarray(metrics[k], dtype=np.float64)[mask]
            values = values[np.isfinite(values)]
            row[f"{k}_mean"] = float(values.mean()) if values.size else None
            row[f"{k}_median"] = float(np.median(values)) if values.size else None
        rows.append(row)
    return rows


def format_table(rows: list[dict], columns=None, digits: int = 3) -> str:
    """Plain-text table of ``rows`` (columns: all keys of the first row by default)."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())

    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        return str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]
    line = lambda cells: "  ".join(  # noqa: E731 - text left, numbers right
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(b) for b in body])
