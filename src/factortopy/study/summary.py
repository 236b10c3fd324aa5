"""The study's tables: one row per run (``summary.csv``, read back with :func:`load_summary`),
one row per backbone pooled over subjects and seeds (``alignment.csv``: the paper's Table 2 layout),
the paired comparisons (``comparisons.csv``; :mod:`factortopy.study.inference`) and the per-ROI
layer profiles (``profiles.json``).

``summary.csv`` columns: subject, label, seed (the fit's), family, method, backbone (spec name),
weights (how chosen), params (parameter count); the measures of :mod:`factortopy.study.inference`,
each with ``_ci_low`` / ``_ci_high`` (its block-bootstrap interval): alignment_slope, alignment_b0,
alignment_b1 (the alignment line, :mod:`factortopy.analysis.alignment`), brain_r2 (mean held-out
R^2: the paper's brain score), heldout_r (mean held-out Pearson r; the early-stopping images' when
the fit held none out), hierarchy_rho (Spearman, secondary); hierarchy_by (``roi:<scheme>`` or
``geodesic``), alignment_layer, alignment_fit, alignment_n (vertices in the line); where the
vertices are under the scheme (:func:`factortopy.analysis.roi_hierarchy.hierarchy_positions`):
roi_ranked, roi_overlaps (ranked, inside two ranked ROIs: resolved by ``overlap``), roi_excluded,
roi_unranked (in a ROI the scheme does not rank), roi_none (in no regional ROI); min_ceiling and
vertices_reliable (with a reliability threshold); noise_normalised (mean Algonauts score, % of the
noise ceiling, over all vertices; empty when the data carry no ceiling); null (the label of the
backbone's random-init reference); pretraining_images (after params: images in the backbone's
pretraining set, :func:`factortopy.study.scaling.pretraining_images`; empty = unknown); finetune_of (the base label of a fine-tuned version); run (the
RUN_DIR, relative); then per group of the scheme, early -> late, ``nc:<group>`` (mean Algonauts
score of its vertices, where the data carry a ceiling) and ``layer:<group>`` (its mean expected
layer, 0 = first, 1 = last).
"""
from __future__ import annotations

import csv
import json
import math
import os

import numpy as np

from factortopy._files import replacing

SUMMARY = "summary.csv"
ALIGNMENT = "alignment.csv"
COMPARISONS = "comparisons.csv"
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
    """The subject's ROI masks as the loader gives them ({label: (n_vertices,) bool}); {} when it has none."""
    return {k: np.asarray(m, bool) for k, m in (subject.extra.get("rois") or {}).items()}


def aligned_rois(rois: dict, subject, maps) -> dict:
    """ROI masks moved into the run's vertex order (a vertex the subject lacks is in no ROI)."""
    from factortopy.runs import match_columns

    idx = match_columns(maps["vertex"], maps["hemi"], subject.vertex, subject.hemi)
    return {k: np.where(idx >= 0, m[np.maximum(idx, 0)], False) for k, m in rois.items()}


def roi_labels(masks: dict, n: int, scheme=None, overlap: str = "earliest") -> np.ndarray:
    """(n,) one ROI label per vertex ('' = none). Masks that overlap (the loaders' ROI dict: classes,
    unions, whole-brain masks) or a given ``scheme``: the vertex's group under that ranking scheme
    (default the paper's), overlaps resolved by ``overlap``, whole-brain masks and ROIs outside the
    scheme naming no vertex (:func:`factortopy.analysis.roi_hierarchy.hierarchy_positions`).
    Disjoint masks without a scheme (hand-made regions): the name of the one mask a vertex is in."""
    from factortopy.analysis.roi_hierarchy import hierarchy_positions

    stacked = np.array([np.asarray(m, bool) for m in masks.values()]).reshape(len(masks), n)
    if scheme is None and (stacked.sum(0) <= 1).all():
        labels = np.full(n, "", dtype=object)
        for name, m in zip(masks, stacked):
            labels[m] = name
        return labels.astype(str)
    return hierarchy_positions(masks, n, scheme, overlap)["group"]


def noise_scores(run_dir: str, subject) -> dict | None:
    """Per-vertex Algonauts score (% of the noise ceiling) of the run on its held-out images (or,
    without any, its early-stopping images): {'vertex', 'hemi', 'score'}, when the subject carries
    a noise ceiling; else None. Evaluates the run once (``eval_<split>.npz`` is reused while it
    scored the model now in the folder)."""
    from factortopy.evaluation.run import evaluate_run
    from factortopy.runs import eval_files, open_run, read_npz
    from factortopy.runs.maps import eval_is_current

    if subject.extra.get("noise_ceiling") is None and subject.extra.get("ncsnr") is None:
        return None
    run = open_run(run_dir)
    split = "heldout" if (run.config.get("split") or {}).get("heldout_image_ids") else "val"
    done = os.path.join(run_dir, eval_files(split)[0])
    res = read_npz(done) if os.path.isfile(done) and eval_is_current(done, run.model_digest) else None
    if res is None or "score" not in res:
        res = evaluate_run(run_dir, split=split, subject=subject)
    return {k: res[k] for k in ("vertex", "hemi", "score")} if "score" in res else None


def noise_normalised(run_dir: str, subject) -> float | None:
    """Mean Algonauts score over the run's vertices (:func:`noise_scores`); None without a ceiling."""
    scores = noise_scores(run_dir, subject)
    return None if scores is None else float(np.nanmean(scores["score"]))


def run_row(pair, subject, frame, study) -> tuple[dict, dict, dict]:
    """(summary row, profile record, measure draws) of one finished run (module docstring); frame:
    the subject's :class:`factortopy.study.inference.SubjectFrame`."""
    from factortopy.analysis.profiles import roi_layer_profiles
    from factortopy.runs import open_run
    from factortopy.study.inference import run_intervals

    maps = open_run(pair.run_dir).maps()
    values = frame.measures(maps)
    h = frame.hierarchy
    bb, spec = pair.backbone, pair.spec
    c = h["counts"]
    in_run = np.isfinite(frame.columns(np.ones(len(maps["vertex"])), maps["vertex"], maps["hemi"]))
    in_line = np.isfinite(h["position"]) & in_run  # the vertices the alignment line goes through
    scores = noise_scores(pair.run_dir, subject)
    row = dict(subject=pair.subject, label=bb.label, seed=pair.seed, family=bb.family, method=bb.method,
               backbone=spec.name, weights=spec.weights_label, params=parameter_count(spec),
               pretraining_images=bb.pretraining_images,
               **run_intervals(values), hierarchy_by=h["method"], alignment_layer=study.alignment_layer,
               alignment_fit=study.alignment_fit, alignment_n=int(in_line.sum()), roi_ranked=c["ranked"],
               roi_overlaps=c["overlaps"], roi_excluded=c["excluded"], roi_unranked=c["unranked"],
               roi_none=c["no_roi"], min_ceiling=study.min_ceiling, vertices_reliable=h["n_reliable"],
               noise_normalised=None if scores is None else float(np.nanmean(scores["score"])),
               null=bb.null, finetune_of=bb.finetune_of, run=pair.run_dir)
    order = [g for g, _ in h["groups"]]
    if scores is not None:
        score = frame.columns(scores["score"], scores["vertex"], scores["hemi"])
        for g in order:
            inside = h["group"] == g
            row[f"nc:{g}"] = float(np.nanmean(score[inside])) if np.isfinite(score[inside]).any() else None
    profile = dict(subject=pair.subject, label=bb.label, seed=pair.seed, family=bb.family,
                   layer_names=maps["layer_names"], scheme=h["method"], rois=[])
    if order:
        from factortopy.analysis.alignment import normalised_layer

        probs = frame.columns(maps["layer_probs"], maps["vertex"], maps["hemi"])
        have = np.isfinite(probs).all(1)
        aligned = normalised_layer(probs[have], study.alignment_layer)  # what the alignment line fits
        for r in roi_layer_profiles(probs[have], h["group"][have], maps["layer_names"], roi_order=order):
            inside = h["group"][have] == r["roi"]
            row[f"layer:{r['roi']}"] = r["expected_mean"] if r["n"] else None  # a group without vertices: empty
            profile["rois"].append(dict(roi=r["roi"], n=r["n"], position=dict(h["groups"])[r["roi"]],
                                        expected_mean=r["expected_mean"] if r["n"] else None,
                                        aligned_mean=float(aligned[inside].mean()) if inside.any() else None,
                                        mean_probs=np.asarray(r["mean_probs"]).tolist() if r["n"] else None))
    return row, profile, values


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)


def write_csv(path: str, rows: list) -> None:
    """Rows (dicts) as CSV; columns in first-seen order; None / NaN as empty cells."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with replacing(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            w.writerow([_cell(r.get(c)) for c in columns])


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
    """Rows for every run (subjects loaded one at a time), the pooled and paired tables, then
    summary.csv, alignment.csv, comparisons.csv, profiles.json, the fine-tuning table, the
    data-scaling table, the figures and the page. Returns {'summary', 'alignment', 'comparisons',
    'finetune', 'scaling', 'page'}."""
    from factortopy.data import load_subject
    from factortopy.study.inference import SubjectFrame, pool

    rows, profiles, frames, values = [], [], {}, {}
    subject = None
    for p in pairs:
        if p.subject not in frames:  # pairs come subject by subject
            subject = load_subject(p.data)
            frames[p.subject] = SubjectFrame(subject, study, p.subject)
        row, profile, values[(p.subject, p.backbone.label, p.seed)] = run_row(p, subject, frames[p.subject], study)
        row["run"] = os.path.relpath(p.run_dir, out)
        rows.append(row)
        profiles.append(profile)
    pooled, comparisons = pool(study, frames, values)
    params = {r["label"]: r["params"] for r in rows}
    pooled = [{**{k: r[k] for k in ("label", "family", "method")}, "params": params[r["label"]], **r}
              for r in pooled]
    write_csv(os.path.join(out, SUMMARY), rows)
    write_csv(os.path.join(out, ALIGNMENT), pooled)
    write_csv(os.path.join(out, COMPARISONS), comparisons)
    with replacing(os.path.join(out, PROFILES), "w") as f:  # strict JSON: an empty group is null, never NaN
        json.dump(profiles, f, indent=1, allow_nan=False)
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

        figs = write_figures(study, pairs, rows, profiles, out, ft_rows, scaling_rows=scaling_rows, alignment=pooled,
                             comparisons=comparisons, frames=frames)
        page = write_page(study, rows, ft_rows, figs, out, scaling_rows=scaling_rows, alignment=pooled,
                          comparisons=comparisons)
        if progress:
            print(f"[study] wrote {os.path.join(out, SUMMARY)} and {page}", flush=True)
    return dict(summary=rows, alignment=pooled, comparisons=comparisons, finetune=ft_rows, scaling=scaling_rows,
                page=page)


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


def inference_settings(study) -> dict:
    """The settings every number of the tables depends on (recorded in study.json)."""
    return dict(hierarchy=study.hierarchy, overlap=study.overlap, alignment_layer=study.alignment_layer,
                alignment_fit=study.alignment_fit, n_boot=study.n_boot, n_blocks=study.n_blocks,
                min_ceiling=study.min_ceiling, seeds=study.seeds, null_reference=study.null_reference)
