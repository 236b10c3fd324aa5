"""The study's figures (PNG files under ``DIR/figures``): layer-map grids, the alignment lines
(the paper's headline), the scaling plot, per-ROI layer profiles per family, the paired
comparisons, the fine-tuning study's drift and map change and its forgetting against alignment,
and the two data axes of scaling (fMRI training images, pretraining images)."""
from __future__ import annotations

import os

import numpy as np

from factortopy._files import write_figure

DPI = 72  # small files: the page inlines them
#: the comparisons the page draws (every measure is in comparisons.csv)
FOREST_MEASURES = ("alignment_slope", "brain_r2")


def literal_text(draw):
    """Build the figure with mathtext off: labels, methods, families and ROI names from the study
    file are drawn as written (``$\\macro$`` in a label crashed the figures after every fit); the
    map grids escape their own text (``viz.render.literal``)."""
    import functools

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)

    return wrapper


def _finite(v) -> float:
    return float(v) if v is not None and np.isfinite(float(v)) else np.nan


def _interval(rows: list, key: str):
    """(values, (2, n) error bar lengths) of column ``key`` and its interval columns (``key_ci_low``
    / ``key_ci_high``); no interval columns: no bars."""
    y = np.array([_finite(r.get(key)) for r in rows])
    lo = np.array([_finite(r.get(f"{key}_ci_low")) for r in rows])
    hi = np.array([_finite(r.get(f"{key}_ci_high")) for r in rows])
    # a percentile interval need not contain the point estimate: an arm never goes negative
    return y, np.clip(np.nan_to_num(np.vstack([y - lo, hi - y])), 0, None)


def _errorbar(ax, x, rows, measure, **kwargs):
    y, arms = _interval(rows, measure)
    return ax.errorbar(x, y, yerr=arms, capsize=3, **kwargs)


@literal_text
def scaling_figure(rows: list, measure: str = "alignment_slope"):
    """``measure`` (default the alignment slope) against parameter count (log axis), one line per
    training method, with the interval as error bars. rows: one per backbone (``alignment.csv``,
    pooled over subjects and seeds), each a point at (params, measure)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 3.6), layout="constrained")
    ax = fig.add_subplot()
    groups: dict = {}
    for r in rows:
        groups.setdefault(r["method"], []).append(r)
    for method, members in groups.items():
        members = sorted(members, key=lambda r: r["params"])
        _errorbar(ax, np.array([r["params"] for r in members], float), members, measure, marker="o", label=method)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(measure.replace("_", " "))
    ax.axhline(0, color="0.7", lw=0.8, zorder=0)
    ax.legend(fontsize=7, title="training method", title_fontsize=7)
    ax.set_title(f"{measure.replace('_', ' ')} vs network size", fontsize=9)
    return fig


@literal_text
def alignment_figure(rows: list, profiles: list):
    """The alignment line y = b0 + slope x of each backbone (pooled; ``alignment.csv`` rows), one
    panel per family, over the mean layer of each ROI group at its hierarchy position (the points
    the line is fitted through, averaged over runs; none with a geodesic hierarchy)."""
    from matplotlib.figure import Figure

    families = list(dict.fromkeys(r["family"] for r in rows))
    fig = Figure(figsize=(3.8 * len(families), 3.4), layout="constrained")
    axes = fig.subplots(1, len(families), squeeze=False)[0]
    x = np.linspace(0, 1, 2)
    for ax, fam in zip(axes, families):
        for i, r in enumerate(rr for rr in rows if rr["family"] == fam):
            colour = f"C{i}"
            points: dict = {}
            for p in profiles:
                if p["label"] == r["label"]:
                    for roi in p["rois"]:
                        if roi.get("aligned_mean") is not None:
                            points.setdefault((roi["position"], roi["roi"]), []).append(roi["aligned_mean"])
            if points:
                xs, ys = zip(*((k[0], np.mean(v)) for k, v in points.items()))
                ax.plot(xs, ys, "o", color=colour, ms=4, alpha=0.7)
            ax.plot(x, _finite(r["alignment_b0"]) + _finite(r["alignment_slope"]) * x, color=colour,
                    label=f"{r['label']}: slope {_finite(r['alignment_slope']):.2f}")
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("hierarchy position (early 0, late 1)")
        ax.set_ylabel("layer (first 0, last 1)")
        ax.set_title(fam, fontsize=9)
        ax.legend(fontsize=6)
    return fig


@literal_text
def comparison_figure(comparisons: list, measures=FOREST_MEASURES):
    """Paired differences a - b with their intervals (``comparisons.csv``), one panel per measure,
    one row per pair; the line at 0 is 'no difference'."""
    from matplotlib.figure import Figure

    measures = [m for m in measures if any(c["measure"] == m for c in comparisons)]
    pairs = list(dict.fromkeys((c["a"], c["b"]) for c in comparisons))
    fig = Figure(figsize=(5.2 * max(len(measures), 1), 0.8 + 0.35 * max(len(pairs), 1)), layout="constrained")
    axes = fig.subplots(1, max(len(measures), 1), squeeze=False)[0]
    for ax, m in zip(axes, measures):
        rows = {(c["a"], c["b"]): c for c in comparisons if c["measure"] == m}
        for k, pair in enumerate(pairs):
            c = rows[pair]
            d, lo, hi = _finite(c["difference"]), _finite(c["ci_low"]), _finite(c["ci_high"])
            ax.errorbar([d], [k], xerr=np.clip(np.nan_to_num([[d - lo], [hi - d]]), 0, None), fmt="o", capsize=3,
                        color="C3" if c["kind"] == "vs null" else "C0")
        ax.axvline(0, color="0.5", lw=0.8)
        ax.set_yticks(range(len(pairs)), [f"{a} - {b}" for a, b in pairs], fontsize=6)
        ax.invert_yaxis()
        ax.set_xlabel(f"difference in {m.replace('_', ' ')}")
    if comparisons:
        c = comparisons[0]
        fig.suptitle(f"paired differences ({c['interval']}); red: against the null", fontsize=8)
    return fig


@literal_text
def profile_figure(profiles: list):
    """Per-ROI layer profiles, one panel per family: the mean expected layer per ROI group (early ->
    late), one line per backbone (and subject, when there are several), averaged over seeds."""
    from matplotlib.figure import Figure

    families = list(dict.fromkeys(p["family"] for p in profiles))
    subjects = list(dict.fromkeys(p["subject"] for p in profiles))
    fig = Figure(figsize=(3.6 * len(families), 3.2), layout="constrained")
    axes = fig.subplots(1, len(families), squeeze=False)[0]
    for ax, fam in zip(axes, families):
        members = [p for p in profiles if p["family"] == fam]
        rois = list(dict.fromkeys(r["roi"] for p in members for r in p["rois"]))
        if not rois:
            ax.text(0.5, 0.5, "the subject has no ROIs", ha="center", va="center", transform=ax.transAxes)
        runs: dict = {}  # the seeds of one (backbone, subject): one line, their mean
        for p in members:
            runs.setdefault((p["label"], p["subject"]), []).append({r["roi"]: _finite(r["expected_mean"])
                                                                    for r in p["rois"]})
        for (label, subject), seeds in runs.items():
            mean = [np.nanmean([v.get(r, np.nan) for v in seeds]) if any(np.isfinite(v.get(r, np.nan)) for v in seeds)
                    else np.nan for r in rois]
            ax.plot(range(len(rois)), mean, marker="o", label=label if len(subjects) == 1 else f"{label} ({subject})")
        ax.set_xticks(range(len(rois)), [str(r).rsplit("/", 1)[-1] for r in rois], rotation=30, ha="right",
                      fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("mean expected layer (0 = first)")
        ax.set_title(fam, fontsize=9)
        if members and rois:
            ax.legend(fontsize=6)
    return fig


@literal_text
def forgetting_figure(ft_rows: list):
    """Left: representation drift (1 - linear CKA) per layer of each fine-tuned version. Right: map
    change against mean drift, one point per version; the base network's hierarchy score in the title."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    for r in ft_rows:
        layers = [k.split(":", 1)[1] for k in r if k.startswith("drift:")]
        left.plot(range(len(layers)), [r[f"drift:{l}"] for l in layers], marker="o", label=r["label"])
        left.set_xticks(range(len(layers)), layers, rotation=45, ha="right", fontsize=7)
        right.plot(r["drift"], r["map_change"], "o")
        right.annotate(r["label"], (r["drift"], r["map_change"]), fontsize=7, xytext=(3, 3),
                       textcoords="offset points")
    left.set_ylabel("drift (1 - linear CKA)")
    left.set_title("representation drift per layer", fontsize=9)
    left.legend(fontsize=7)
    right.set_xlabel("mean drift")
    right.set_ylabel("map change (mean |layer shift|, local vertices)")
    bases = {r["base"]: r for r in ft_rows}
    right.set_title("; ".join(f"{b}: hierarchy {_finite(r['base_hierarchy_rho']):.2f}" for b, r in bases.items()),
                    fontsize=7)
    return fig


# ---- forgetting and the two data axes of scaling (factortopy.study.forgetting / .scaling) ------------

@literal_text
def forgetting_relation_figure(ft_rows: list):
    """Left: each version's map change beside its base's refit noise floor (local vertices). Right:
    the base's alignment against the version's forgetting (the relation's measure, with its
    interval), one point per base, one line per recipe (and subject), the Spearman across bases
    and its interval in the legend."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    x = np.arange(len(ft_rows))
    left.bar(x, [_finite(r["map_change"]) for r in ft_rows], color="C0", label="version vs base")
    left.scatter(x, [_finite(r["floor_map_change"]) for r in ft_rows], color="k", marker="_", s=400, zorder=3,
                 label="refit vs base (noise floor)")
    left.set_xticks(x, [r["label"] for r in ft_rows], rotation=30, ha="right", fontsize=7)
    left.set_ylabel("map change (mean |layer shift|)")
    left.set_title("map change on local vertices, against refit noise", fontsize=9)
    left.legend(fontsize=7)
    measure = ft_rows[0]["relation_forgetting"]
    subjects = list(dict.fromkeys(r["subject"] for r in ft_rows))
    groups: dict = {}
    for r in ft_rows:
        groups.setdefault((r["recipe"], r["subject"]), []).append(r)
    for (recipe, subject), members in groups.items():
        members = sorted(members, key=lambda r: _finite(r["base_alignment"]))
        y, err = _interval(members, measure)
        rel = members[0]
        stat = (f"rho {rel['relation_spearman']:.2f} [{_finite(rel['relation_ci_low']):.2f}, "
                f"{_finite(rel['relation_ci_high']):.2f}], n={rel['relation_n']}"
                if np.isfinite(_finite(rel["relation_spearman"])) else f"n={rel['relation_n']}")
        name = recipe if len(subjects) == 1 else f"{recipe} ({subject})"
        right.errorbar([_finite(r["base_alignment"]) for r in members], y, yerr=err, marker="o", capsize=3,
                       label=f"{name}: {stat}")
        for r, yy in zip(members, y):
            right.annotate(r["base"], (_finite(r["base_alignment"]), yy), fontsize=6, xytext=(3, 3),
                           textcoords="offset points")
    right.axhline(1.0 if measure == "map_change_over_floor" else 0.0, color="0.7", lw=0.8, zorder=0)
    right.set_xlabel(f"base network's alignment ({ft_rows[0]['alignment_by']})")
    right.set_ylabel(f"forgetting ({measure})")
    right.set_title("alignment vs forgetting across base networks", fontsize=9)
    right.legend(fontsize=6)
    return fig


@literal_text
def data_scaling_figure(scaling_rows: list, measure: str = "hierarchy_rho"):
    """The fMRI-data axis: held-out r (left) and the map's ``measure`` with its interval (right)
    against the number of training images (log axis), one line per backbone (and subject); every
    point scored on the same held-out images."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    subjects = list(dict.fromkeys(r["subject"] for r in scaling_rows))
    groups: dict = {}
    for r in scaling_rows:
        groups.setdefault((r["label"], r["subject"]), []).append(r)
    for (label, subject), members in groups.items():
        members = sorted(members, key=lambda r: r["n_train"])
        n = [r["n_train"] for r in members]
        name = label if len(subjects) == 1 else f"{label} ({subject})"
        left.plot(n, [_finite(r["heldout_r"]) for r in members], marker="o", label=name)
        y, err = _interval(members, measure)
        right.errorbar(n, y, yerr=err, marker="o", capsize=3, label=name)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("fMRI training images (nested subsets)")
        ax.legend(fontsize=7)
    left.set_ylabel("held-out r (same held-out images)")
    right.set_ylabel(measure)
    left.set_title("encoding accuracy vs fMRI data", fontsize=9)
    right.set_title("the map vs fMRI data", fontsize=9)
    return fig


@literal_text
def pretraining_figure(rows: list, measure: str = "hierarchy_rho"):
    """The pretraining-data axis: ``measure`` of each run of a pretrained (not fine-tuned) backbone
    against the size of its pretraining set (log axis; random init, 0 images, at the left edge),
    one point per run, labelled; backbones whose size is unknown are named in the title, not
    plotted."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    fig = Figure(figsize=(5.2, 3.6), layout="constrained")
    ax = fig.add_subplot()
    rows = [r for r in rows if not r.get("finetune_of")]
    known = [r for r in rows if r.get("pretraining_images") is not None]
    unknown = sorted({r["label"] for r in rows if r.get("pretraining_images") is None})
    floor = min([r["pretraining_images"] for r in known if r["pretraining_images"] > 0] or [1]) / 10
    for method in dict.fromkeys(r["method"] for r in known):
        members = [r for r in known if r["method"] == method]
        x = [max(r["pretraining_images"], floor) for r in members]  # 0 (random init) sits at the left edge
        ax.plot(x, [_finite(r.get(measure)) for r in members], "o", label=method)
        for r, xx in zip(members, x):
            ax.annotate(r["label"], (xx, _finite(r.get(measure))), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    if any(r["pretraining_images"] == 0 for r in known):
        ax.axvline(floor, color="0.7", lw=0.8, ls="--", zorder=0)
    ax.set_xlabel("pretraining images (dashed: random init, 0 images)")
    ax.set_ylabel(measure)
    title = "the map vs pretraining data"
    if unknown:
        title += f"\n(size unknown, not shown: {', '.join(unknown)})"
    ax.set_title(title, fontsize=8)
    if known:
        ax.legend(fontsize=7, title="training method", title_fontsize=7)
    return fig


def _forgetting_and_scaling_figures(study, rows: list, ft_rows, scaling_rows, folder: str) -> dict:
    """The fine-tuning relation and the scaling axes' figures, saved under ``folder``."""
    from factortopy.study.summary import measure_column

    figs = {}
    measure = measure_column(rows, "alignment_slope", "the scaling figures")
    figs["the map vs pretraining data"] = write_figure(os.path.join(folder, "pretraining.png"),
                                                       pretraining_figure(rows, measure), dpi=DPI)
    if ft_rows:
        figs["fine-tuning: map change against refit noise, and forgetting against alignment"] = write_figure(
            os.path.join(folder, "forgetting.png"), forgetting_relation_figure(ft_rows), dpi=DPI)
    if scaling_rows:
        figs["the fMRI-data axis: nested subsets of the training images"] = write_figure(
            os.path.join(folder, "data_scaling.png"), data_scaling_figure(scaling_rows, measure), dpi=DPI)
    return figs


def _reliable(maps: dict, frame) -> dict:
    """The maps restricted to the subject's reliable vertices (those at or above min_ceiling)."""
    from factortopy.runs import match_columns

    keep = frame.hierarchy["reliable"]
    if keep is None:
        return maps
    idx = match_columns(maps["vertex"], maps["hemi"], frame.vertex, frame.hemi)
    rows = (idx >= 0) & keep[np.maximum(idx, 0)]
    n = len(rows)
    return {k: (v[rows] if isinstance(v, np.ndarray) and v.ndim and len(v) == n else v) for k, v in maps.items()}


def write_figures(study, pairs: list, rows: list, profiles: list, out: str, ft_rows=None, scaling_rows=None,
                  alignment=None, comparisons=None, frames=None) -> dict:
    """Save every figure under ``out/figures``; returns {caption: path}. alignment: the pooled rows
    (one per backbone); comparisons: the paired rows; frames: {subject: SubjectFrame} (maps keep
    only reliable vertices when the study sets min_ceiling)."""
    from factortopy.runs.maps import load_maps
    from factortopy.study.config import slug
    from factortopy.viz.grid import compare_figure

    folder = os.path.join(out, "figures")
    os.makedirs(folder, exist_ok=True)
    figs = {}

    def save(caption, name, fig):
        figs[caption] = write_figure(os.path.join(folder, name), fig, dpi=DPI)

    for subject in study.subjects:
        first = [p for p in pairs if p.subject == subject and p.seed == study.seeds[0]]
        columns = {p.backbone.label: load_maps(p.run_dir) for p in first}
        if frames:
            columns = {k: _reliable(v, frames[subject]) for k, v in columns.items()}
        reliable = f", vertices with noise ceiling >= {study.min_ceiling}" if study.min_ceiling else ""
        save(f"layer, space and scale maps: {subject} (seed {study.seeds[0]}{reliable})", f"maps_{slug(subject)}.png",
             compare_figure(columns, rows=("layer", "space", "scale"), view=study.view,
                            title=f"{subject}: one column per backbone"))
    if alignment:
        save("brain-network alignment: the line through each ROI's mean layer", "alignment.png",
             alignment_figure(alignment, profiles))
        save("alignment slope vs parameters", "scaling.png", scaling_figure(alignment))
    save("per-ROI layer profiles per family", "profiles.png", profile_figure(profiles))
    if comparisons:
        save("paired differences between backbones", "comparisons.png", comparison_figure(comparisons))
    if ft_rows:
        save("fine-tuning: drift and map change", "finetune.png", forgetting_figure(ft_rows))
    figs.update(_forgetting_and_scaling_figures(study, rows, ft_rows, scaling_rows, folder))
    return figs
