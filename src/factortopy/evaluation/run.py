"""Score a RUN_DIR (FactorTopy or ridge) on held-out images: per-vertex metrics and ROI tables.

split='heldout' (the default): the run's held-out images, which chose nothing (ids saved in
config.json). split='val': its early-stopping images, which chose the best epoch (optimistic).
Both come from the subject the run was fitted on. split='test': the subject's test images
(Algonauts ``split=test``, NSD's shared 1000; or ``data`` given explicitly; for generic data, the
images marked by ``test_mask``).
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from factortopy.evaluation.metrics import algonauts_score, pearson_r, r2_score
from factortopy.evaluation.summary import format_table, roi_table


def align_columns(run_vertex, run_hemi, subject) -> tuple[np.ndarray, np.ndarray]:
    """Positions (run columns, subject columns) of the vertices both have, in the run's order
    (:func:`factortopy.runs.align_columns`). A subject may lack a few of the run's vertices (e.g.
    dropped for NaN); that is warned about."""
    from factortopy.runs import align_columns as align

    ri, si = align(run_vertex, run_hemi, subject.vertex, subject.hemi)
    if not len(ri):
        raise ValueError("the data share no vertex with the run; was it fitted on another subject or layout?")
    if len(ri) < len(run_vertex):
        warnings.warn(f"{len(run_vertex) - len(ri)} of the run's {len(run_vertex)} vertices are not in the data; "
                      "they are left out of the evaluation", stacklevel=3)
    return ri, si


def evaluate_predictions(pred, target, noise_ceiling=None, rois=None, hemi=None) -> dict:
    """Per-vertex ``r``, ``r2`` (and ``score``, the Algonauts score, when ``noise_ceiling`` is a 0-1
    fraction per vertex) of pred vs target (n_images, N), plus ``table``: rows per ROI."""
    pred = np.asarray(pred, dtype=np.float32)
    target = np.asarray(target, dtype=np.float32)
    if pred.shape != target.shape:
        raise ValueError(f"predictions {pred.shape} and targets {target.shape} differ in shape")
    out = {"r": pearson_r(pred, target), "r2": r2_score(pred, target)}
    if noise_ceiling is not None:
        out["score"] = algonauts_score(out["r"], noise_ceiling).astype(np.float32)
    out["table"] = roi_table({k: out[k] for k in ("r", "r2", "score") if k in out}, rois, hemi=hemi)
    return out


#: the splits a run can be scored on: its own held-out images (chose nothing), its early-stopping
#: images (chose the best epoch: optimistic), or the data's test images
SPLITS = ("heldout", "val", "test")
#: how each split reads in a message ("the held-out set has ...")
SPLIT_NAMES = {"heldout": "held-out", "val": "validation", "test": "test"}


def _select_images(subject, config, split, explicit_data):
    if split in ("heldout", "val"):
        ids = (config.get("split") or {}).get(f"{split}_image_ids")
        if ids is None:
            raise ValueError(f"the run records no {split} images (config.json split.{split}_image_ids); "
                             + ("it was fitted with heldout_fraction=0: use --split val or test" if split == "heldout"
                                else "use --split heldout or test"))
        pos = {int(i): k for k, i in enumerate(subject.image_ids)}
        missing = [i for i in ids if int(i) not in pos]
        if missing:
            raise ValueError(f"{len(missing)} of the run's {split} images (e.g. id {missing[0]}) are not in "
                             "the data; evaluate with the data the run was fitted on")
        return np.array([pos[int(i)] for i in ids], dtype=np.int64)
    mask = subject.extra.get("test_mask")
    if mask is not None and np.any(mask):
        return np.where(mask)[0]
    # All images count as test only when the data say they are the test split: training data
    # scored as "test" would include the images the model was fitted on.
    if explicit_data and subject.extra.get("split") == "test":
        return np.arange(subject.n_images)
    raise ValueError("the data hold no test images (no test_mask); pass the test data with --data")


def evaluate_run(run_dir: str, data: str | None = None, split: str = "heldout", device: str = "cpu",
                 batch_size: int = 32, by_hemi: bool = False, write: bool = True, subject=None,
                 progress: bool = False, backbone=None) -> dict:
    """Score the fitted run in ``run_dir`` on held-out images.

    data: a data spec (default: the run's own, with ``split=test`` for split='test'; the run's own
    data are checked against its recorded ``data_digest``, so a folder replaced since is an error).
    subject: an already loaded Subject instead of ``data``. backbone: the Backbone to extract features with
    instead of rebuilding it from the run's spec (checked against the recorded identity; needed
    for runs fitted with a backbone built by hand). Returns a dict: ``split``, ``n_images``, ``vertex``,
    ``hemi``, ``r``, ``r2``, ``score`` (Algonauts score, where the data carry a noise ceiling),
    ``table`` (rows per ROI), ``text`` (the table as text). With ``write``, saves
    ``eval_<split>.npz`` (per-vertex arrays) and ``eval_<split>.json`` (summary and table) in the run
    dir, both keyed to the model they scored (``model_digest``); when the run was refitted meanwhile
    (``fit --overwrite``), nothing is written and this is an error.
    """
    from factortopy.data import held_out_spec, load_subject

    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    from factortopy.runs import eval_files, open_run
    from factortopy.runs.writer import write_run_json, write_run_npz

    run = open_run(run_dir)
    config, kind = run.config, run.kind
    scored = run.model_digest  # the results belong to this model (a racing fit --overwrite replaces it)
    explicit = bool(data) or subject is not None
    spec = data
    if subject is None:
        spec = data or config.get("data")
        if not spec:
            raise ValueError(f"{run_dir}/config.json names no data spec; pass --data KIND:PATH")
        if not data:  # the run's own data: a kind from a plug-in that is not installed says which
            from factortopy.data import loader_of
            from factortopy.runs import plugin_records

            data_kind = spec.partition(":")[0]
            loader_of(data_kind, plugin_records(config).get(f"data_kinds:{data_kind}"))
        if split == "test" and not data:
            spec = held_out_spec(spec)
        subject = load_subject(spec)
        if not data and split != "test":  # the recorded data (the test split's responses are other images)
            run.check_data(subject)
    index = _select_images(subject, config, split, explicit_data=explicit)
    from factortopy.evaluation.metrics import check_scored_images

    check_scored_images(int(index.size), SPLIT_NAMES[split], f"--split {split}", "the score",
                        "score on more images (--split test with the data's test images, or --data)")

    pred = run.predict_subject(subject, image_index=index, batch_size=batch_size, device=device, progress=progress,
                               backbone=backbone)
    ri, si = align_columns(run.vertex, run.hemi, subject)
    nc = subject.extra.get("noise_ceiling")
    if subject.extra.get("ncsnr") is not None and subject.extra.get("n_repeats") is not None:
        # NC depends on the repeats averaged for the images actually scored, not the whole load.
        from factortopy.data.ceiling import ncsnr_ceiling

        nc = ncsnr_ceiling(np.asarray(subject.extra["ncsnr"]), np.asarray(subject.extra["n_repeats"])[index])
    rois = {k: np.asarray(m)[si] for k, m in (subject.extra.get("rois") or {}).items()}
    hemi = np.asarray(subject.hemi)[si]
    res = evaluate_predictions(pred[:, ri], subject.responses[index][:, si],
                               None if nc is None else np.asarray(nc)[si], rois, hemi if by_hemi else None)
    res.update(split=split, data=spec, n_images=int(index.size), vertex=np.asarray(subject.vertex)[si], hemi=hemi,
               image_ids=np.asarray(subject.image_ids)[index], kind=kind)
    res["notes"] = []
    if nc is not None:  # where the Algonauts score is computed unlike (or notably like) the official scorer
        from factortopy.evaluation.metrics import score_deviations

        res["notes"] = score_deviations(np.asarray(nc)[si], pred[:, ri], subject.responses[index][:, si])
    res["text"] = format_table(res["table"]) + "".join(f"\nnote: {n}" for n in res["notes"])
    if write:
        from factortopy.runs import model_digest

        if model_digest(run_dir, run.model_files()) != scored:
            raise ValueError(f"{run_dir} was refitted while it was evaluated (its model changed: a fit --overwrite?): "
                             f"the results of the old model are not written into it; evaluate it again")
        npz_name, json_name = eval_files(split)
        write_run_npz(run_dir, npz_name, **{k: res[k] for k in ("vertex", "r", "r2", "score", "image_ids") if k in res},
                      hemi=res["hemi"].astype("<U2"), model_digest=np.asarray(scored))
        summary = dict(kind=kind, split=split, data=spec, model_digest=scored, n_images=res["n_images"],
                       pearson_mean=float(np.mean(res["r"])), r2_mean=float(np.mean(res["r2"])),
                       table=res["table"], notes=res["notes"])
        if "score" in res:
            summary["score_mean"] = float(np.nanmean(res["score"]))
        write_run_json(run_dir, json_name, summary)
    return res


def summarize_scores(run_dir: str, rois: dict | None = None, by_hemi: bool = False) -> list[dict]:
    """ROI table of the scores the fit saved (scores.npz: held-out images, or validation ones when it held
    none out), without recomputing anything."""
    from factortopy.runs import open_run

    f = open_run(run_dir).scores()
    return roi_table({"r": f["r"], "r2": f["r2"]}, rois, hemi=f["hemi"] if by_hemi else None)
