"""The fine-tuning study's table (the paper's forgetting analysis): for each fine-tuned version of
the base backbone, on each subject, how far its brain map moved from the base network's and how far
its representation drifted, beside the base network's hierarchy score.

Columns: subject, label, base, base_hierarchy_rho / _ci_low / _ci_high (the base run's hierarchy
score), hierarchy_rho (the version's), map_change (mean |expected-layer shift| over the vertices,
in units of network depth: 0 = no vertex moved, 1 = first <-> last layer), map_change_space (mean
shift of the selected image position, image width = 2), map_change_scale (mean |scale shift|),
drift (mean over layers of 1 - linear CKA of base vs version features of the subject's images),
``drift:<layer>`` per layer, ``d_layer:<ROI>`` the mean signed layer shift per ROI
(:func:`factortopy.analysis.compare_runs`).
"""
from __future__ import annotations

import os

import numpy as np

FINETUNE = "finetune.csv"


def _features(spec, subject, cache_dir: str, grid: int, device: str):
    """The subject's image features under ``spec`` (from the study's cache: the fit made them)."""
    from factortopy.features.cache import load_or_extract

    return load_or_extract(spec.build(), subject.images, cache_dir, image_key=subject.image_key, grid=grid,
                           device=device, progress=False)


def map_change(base_run: str, other_run: str, roi_masks: dict | None = None) -> dict:
    """How run ``other_run``'s maps moved from ``base_run``'s (see the module docstring).
    roi_masks: {name: (N,) bool} in the base run's vertex order, for the per-ROI shifts."""
    from factortopy.analysis.compare import compare_runs
    from factortopy.runs.maps import load_maps
    from factortopy.study.summary import roi_labels

    a = load_maps(base_run)
    cmp = compare_runs(a, load_maps(other_run), roi=roi_labels(roi_masks, len(a["vertex"])) if roi_masks else None)
    out = dict(map_change=float(np.mean(np.abs(cmp["d_layer"]))),
               map_change_space=float(np.mean(cmp["d_space_dist"])),
               map_change_scale=float(np.mean(np.abs(cmp["d_scale"]))))
    out.update({f"d_layer:{r['roi']}": r["d_layer"] for r in cmp["per_roi"]})
    return out


def finetune_table(study, pairs: list, rows: list, out: str) -> list:
    """Rows of the fine-tuning table for every subject and version; written to ``finetune.csv``."""
    from factortopy.data import load_subject
    from factortopy.fitting.fit import FitConfig
    from factortopy.study.cka import layer_drift
    from factortopy.runs.maps import load_maps
    from factortopy.study.summary import aligned_rois, subject_rois, write_csv

    grid = FitConfig(**study.fit).grid
    by_key = {(p.subject, p.backbone.label): (p, r) for p, r in zip(pairs, rows)}
    table = []
    for subject_name, data in study.subjects.items():
        base_pair, base_row = by_key[(subject_name, study.finetune_base)]
        subject = load_subject(data)
        rois = subject_rois(subject)
        cache = os.path.join(out, "features")
        base_feats = _features(base_pair.backbone.spec, subject, cache, grid, study.device)
        for p, r in (by_key[k] for k in by_key if k[0] == subject_name):
            if p.backbone.finetune_of != study.finetune_base:
                continue
            masks = aligned_rois(rois, subject, load_maps(base_pair.run_dir)) if rois else None
            drift = layer_drift(base_feats, _features(p.backbone.spec, subject, cache, grid, study.device))
            table.append(dict(
                subject=subject_name, label=p.backbone.label, base=study.finetune_base,
                base_hierarchy_rho=base_row["hierarchy_rho"], base_hierarchy_ci_low=base_row["hierarchy_ci_low"],
                base_hierarchy_ci_high=base_row["hierarchy_ci_high"], hierarchy_rho=r["hierarchy_rho"],
                **map_change(base_pair.run_dir, p.run_dir, masks), drift=float(np.mean(drift)),
                **{f"drift:{name}": d for name, d in zip(base_feats.layer_names, drift)}))
    write_csv(os.path.join(out, FINETUNE), table)
    return table
