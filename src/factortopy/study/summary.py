"""The study's table: one row per (subject, backbone) run, written as ``summary.csv`` (read back
with :func:`load_summary`), and the per-ROI layer profiles as ``profiles.json``.

Columns: subject, label, family, method, backbone (spec name), weights (how chosen), params
(parameter count), heldout_r (metrics.json ``heldout_pearson_mean``, the headline; the early-stopping
images' r when the fit held none out), noise_normalised (mean Algonauts score, % of the noise
ceiling, on the same images; empty when the data carry no ceiling), hierarchy_rho / _ci_low /
_ci_high (:func:`factortopy.analysis.hierarchy_score` of the run's layer map: by the subject's ROI
ranks, else by geodesic distance from the occipital pole; block-bootstrap interval),
hierarchy_by, finetune_of (the base label of a fine-tuned version), run (the RUN_DIR, relative),
then ``layer:<ROI>`` per ROI: the ROI's mean expected layer (0 = first, 1 = last).
pretraining_images (after params): images in the backbone's pretraining set
(:func:`factortopy.study.scaling.pretraining_images`; empty = unknown).
"""
from __future__ import annotations

import csv
import json
import math
import os

import numpy as np

BASE_COLUMNS = ("subject", "label", "family", "method", "backbone", "weights", "params", "pretraining_images",
                "heldout_r", "noise_normalised", "hierarchy_rho", "hierarchy_ci_low", "hierarchy_ci_high",
                "hierarchy_by", "finetune_of", "run")
SUMMARY = "summary.csv"
PROFILES = "profiles.json"

_PARAMS: dict = {}


def parameter_count(spec) -> int:
    """Parameters of the network ``spec`` describes (built randomly initialised: weights do not
    change the count; remembered per architecture)."""
    key = json.dumps(spec.replace(weights=None, pretrained=None, random_init=True).to_dict(), sort_keys=True)
    if key not in _PARAMS:
        bb = spec.replace(weights=None, pretrained=None, random_init=True).build()
        _PARAMS[key] = int(sum(p.numel() for p in bb.model.parameters()))
    return _PARAMS[key]


def subject_rois(subject) -> dict:
    """The subject's ROI masks ({name: (n_vertices,) bool}), ordered early -> late by
    :data:`factortopy.analysis.DEFAULT_ROI_RANK` (unranked names last); {} when it has none."""
    from factortopy.analysis.hierarchy import roi_position

    rois = subject.extra.get("rois") or {}
    rank = roi_position(list(rois)) if rois else []
    order = sorted(range(len(rois)), key=lambda i: (math.inf if np.isnan(rank[i]) else rank[i], list(rois)[i]))
    return {list(rois)[i]: np.asarray(rois[list(rois)[i]], bool) for i in order}


def aligned_rois(rois: dict, subject, maps) -> dict:
    """ROI masks moved into the run's vertex order (a vertex the subject lacks is in no ROI)."""
    from factortopy.runs import match_columns

    idx = match_columns(maps["vertex"], maps["hemi"], subject.vertex, subject.hemi)
    return {k: np.where(idx >= 0, m[np.maximum(idx, 0)], False) for k, m in rois.items()}


def roi_labels(masks: dict, n: int) -> np.ndarray:
    """(n,) ROI name per vertex from masks ('' = none; overlapping masks: the later one names it)."""
    labels = np.full(n, "", dtype=object)
    for name, m in masks.items():
        labels[m] = name
    return labels


def noise_normalised(run_dir: str, subject) -> float | None:
    """Mean Algonauts score (% of the noise ceiling) of the run on its held-out images (or, without
    any, its early-stopping images), when the subject carries a noise ceiling; else None.
    Evaluates the run once (``eval_<split>.json`` in the RUN_DIR is reused afterwards)."""
    from factortopy.evaluation.run import evaluate_run
    from factortopy.runs import eval_files, open_run, read_json

    if subject.extra.get("noise_ceiling") is None and subject.extra.get("ncsnr") is None:
        return None
    run = open_run(run_dir)
    split = "heldout" if (run.config.get("split") or {}).get("heldout_image_ids") else "val"
    done = os.path.join(run_dir, eval_files(split)[1])
    if os.path.isfile(done) and "score_mean" in read_json(done):
        return float(read_json(done)["score_mean"])
    res = evaluate_run(run_dir, split=split, subject=subject)
    return float(np.nanmean(res["score"])) if "score" in res else None


def run_row(pair, subject, n_boot: int = 1000) -> tuple[dict, dict]:
    """(summary row, profile record) of one finished pair (see the module docstring)."""
    from factortopy.analysis.hierarchy import hierarchy_score
    from factortopy.analysis.profiles import roi_layer_profiles
    from factortopy.runs import open_run

    run = open_run(pair.run_dir)
    maps = run.maps()
    metrics = run.metrics
    rois = aligned_rois(subject_rois(subject), subject, maps)
    labels = roi_labels(rois, len(maps["vertex"])) if rois else None  # none: geodesic distance
    h = hierarchy_score(maps["layer_probs"], roi=labels, vertex=maps["vertex"], hemi=maps["hemi"], n_boot=n_boot)
    bb = pair.backbone
    row = dict(subject=pair.subject, label=bb.label, family=bb.family, method=bb.method, backbone=bb.spec.name,
               weights=bb.spec.weights_label, params=parameter_count(bb.spec),
               pretraining_images=bb.pretraining_images,
               heldout_r=metrics.get("heldout_pearson_mean", metrics.get("val_pearson_mean")),
               noise_normalised=noise_normalised(pair.run_dir, subject),
               hierarchy_rho=h["rho"], hierarchy_ci_low=h["ci_low"], hierarchy_ci_high=h["ci_high"],
               hierarchy_by=h["method"], finetune_of=bb.finetune_of, run=pair.run_dir)
    profile = dict(subject=pair.subject, label=bb.label, family=bb.family, layer_names=maps["layer_names"], rois=[])
    if rois:
        for r in roi_layer_profiles(maps["layer_probs"], rois, maps["layer_names"]):
            row[f"layer:{r['roi']}"] = r["expected_mean"]
            profile["rois"].append(dict(roi=r["roi"], n=r["n"], expected_mean=r["expected_mean"],
                                        mean_probs=np.asarray(r["mean_probs"]).tolist()))
    return row, profile


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)


def write_csv(path: str, rows: list) -> None:
    """Rows (dicts) as CSV; columns in first-seen order; None / NaN as empty cells."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            w.writerow([_cell(r.get(c)) for c in columns])
    os.replace(tmp, path)


def _value(text: str):
    if text == "":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def read_csv(path: str):
    """A CSV written by :func:`write_csv`: a pandas DataFrame when pandas is installed, else a
    list of dicts (numbers as int/float, empty cells as None)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: run the study first (factortopy study STUDY.toml --out DIR)")
    try:
        import pandas as pd
    except ImportError:
        with open(path, newline="") as f:
            return [{k: _value(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return pd.read_csv(path)


def load_summary(study_dir):
    """The study's ``summary.csv``: a pandas DataFrame if pandas is installed, else a list of dicts."""
    return read_csv(os.path.join(os.fspath(study_dir), SUMMARY))


def write_summary(study, pairs: list, out: str, figures: bool = True, progress: bool = True) -> dict:
    """Rows for every pair (subjects loaded one at a time), then summary.csv, profiles.json, the
    fine-tuning table, the data-scaling table, the figures and the page. Returns {'summary',
    'finetune', 'scaling', 'page'}."""
    from factortopy.data import load_subject

    rows, profiles, subjects = [], [], {}
    for p in pairs:
        if p.data not in subjects:
            subjects = {p.data: load_subject(p.data)}
        row, profile = run_row(p, subjects[p.data], study.n_boot)
        row["run"] = os.path.relpath(p.run_dir, out)
        rows.append(row)
        profiles.append(profile)
    write_csv(os.path.join(out, SUMMARY), rows)
    with open(os.path.join(out, PROFILES), "w") as f:
        json.dump(profiles, f, indent=1)
    ft_rows = scaling_rows = None
    if study.finetune is not None:
        from factortopy.study.forgetting import finetune_table

        ft_rows = finetune_table(study, pairs, rows, out)
    if study.scaling is not None:
        from factortopy.study.scaling import scaling_table

        scaling_rows = scaling_table(study, pairs, rows, out)
    page = None
    if figures:
        from factortopy.study.figures import write_figures
        from factortopy.study.page import write_page

        figs = write_figures(study, pairs, rows, profiles, out, ft_rows, scaling_rows=scaling_rows)
        page = write_page(study, rows, ft_rows, figs, out, scaling_rows=scaling_rows)
        if progress:
            print(f"[study] wrote {os.path.join(out, SUMMARY)} and {page}", flush=True)
    return dict(summary=rows, finetune=ft_rows, scaling=scaling_rows, page=page)


def measure_column(rows: list, wanted: str, where: str, fallback: str = "hierarchy_rho") -> str:
    """The summary column ``wanted`` when the rows have it, else ``fallback`` with a warning naming
    both (the paper's alignment, ``alignment_slope``, is a column of its own; a study that lacks
    it reads the hierarchy score instead, and says so). where: what the column is for."""
    if any(wanted in r for r in rows):
        return wanted
    if wanted == fallback or not any(fallback in r for r in rows):
        raise ValueError(f"{where}: the summary has no column {wanted!r}; columns: "
                         f"{', '.join(dict.fromkeys(k for r in rows for k in r))}")
    import warnings

    warnings.warn(f"{where}: the summary has no column {wanted!r}; using {fallback!r} instead (recorded beside "
                  "the values)", stacklevel=2)
    return fallback
