"""The study's figures (PNG files under ``DIR/figures``): layer-map grids, the scaling plot, per-ROI
layer profiles per family, the fine-tuning study's drift and map change and its forgetting against
alignment, and the two data axes of scaling (fMRI training images, pretraining images)."""
from __future__ import annotations

import os

import numpy as np

DPI = 72  # small files: the page inlines them


def _finite(v) -> float:
    return float(v) if v is not None and np.isfinite(float(v)) else np.nan


def scaling_figure(rows: list):
    """Hierarchy score against parameter count (log axis), one line per training method (and
    subject, when there are several), with the bootstrap interval as error bars. Each run is one
    point at (params, hierarchy_rho)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 3.6), layout="constrained")
    ax = fig.add_subplot()
    subjects = list(dict.fromkeys(r["subject"] for r in rows))
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["method"], r["subject"]), []).append(r)
    for (method, subject), members in groups.items():
        members = sorted(members, key=lambda r: r["params"])
        x = np.array([r["params"] for r in members], float)
        y = np.array([_finite(r["hierarchy_rho"]) for r in members])
        lo = np.array([_finite(r["hierarchy_ci_low"]) for r in members])
        hi = np.array([_finite(r["hierarchy_ci_high"]) for r in members])
        label = method if len(subjects) == 1 else f"{method} ({subject})"
        ax.errorbar(x, y, yerr=np.vstack([np.nan_to_num(y - lo), np.nan_to_num(hi - y)]), marker="o", capsize=3,
                    label=label)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("hierarchy score (Spearman rho)")
    ax.axhline(0, color="0.7", lw=0.8, zorder=0)
    ax.legend(fontsize=7, title="training method", title_fontsize=7)
    ax.set_title("hierarchy vs network size", fontsize=9)
    return fig


def profile_figure(profiles: list):
    """Per-ROI layer profiles, one panel per family: each run's mean expected layer per ROI (ROIs
    early -> late), one line per backbone (and subject, when there are several)."""
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
        for p in members:
            values = {r["roi"]: r["expected_mean"] for r in p["rois"]}
            label = p["label"] if len(subjects) == 1 else f"{p['label']} ({p['subject']})"
            ax.plot(range(len(rois)), [_finite(values.get(r)) for r in rois], marker="o", label=label)
        ax.set_xticks(range(len(rois)), [str(r).rsplit("/", 1)[-1] for r in rois], rotation=30, ha="right",
                      fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("mean expected layer (0 = first)")
        ax.set_title(fam, fontsize=9)
        if members and rois:
            ax.legend(fontsize=6)
    return fig


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

def _interval(rows: list, key: str):
    """(values, (2, n) error bar lengths) of column ``key`` and its interval columns (``key_ci_low``
    / ``key_ci_high``; the hierarchy score's are ``hierarchy_ci_low`` / ``_ci_high``); no interval
    columns: no bars."""
    stem = "hierarchy" if key == "hierarchy_rho" else key
    y = np.array([_finite(r.get(key)) for r in rows])
    lo = np.array([_finite(r.get(f"{stem}_ci_low")) for r in rows])
    hi = np.array([_finite(r.get(f"{stem}_ci_high")) for r in rows])
    return y, np.vstack([np.nan_to_num(y - lo), np.nan_to_num(hi - y)])


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
    figs["the map vs pretraining data"] = os.path.join(folder, "pretraining.png")
    pretraining_figure(rows, measure).savefig(figs["the map vs pretraining data"], dpi=DPI)
    if ft_rows:
        figs["fine-tuning: map change against refit noise, and forgetting against alignment"] = \
            os.path.join(folder, "forgetting.png")
        forgetting_relation_figure(ft_rows).savefig(
            figs["fine-tuning: map change against refit noise, and forgetting against alignment"], dpi=DPI)
    if scaling_rows:
        figs["the fMRI-data axis: nested subsets of the training images"] = os.path.join(folder, "data_scaling.png")
        data_scaling_figure(scaling_rows, measure).savefig(
            figs["the fMRI-data axis: nested subsets of the training images"], dpi=DPI)
    return figs


def write_figures(study, pairs: list, rows: list, profiles: list, out: str, ft_rows=None,
                  scaling_rows=None) -> dict:
    """Save every figure under ``out/figures``; returns {caption: path}."""
    from factortopy.runs.maps import load_maps
    from factortopy.study.config import slug
    from factortopy.viz.grid import compare_figure

    folder = os.path.join(out, "figures")
    os.makedirs(folder, exist_ok=True)
    figs = {}
    for subject in study.subjects:
        columns = {p.backbone.label: load_maps(p.run_dir) for p in pairs if p.subject == subject}
        fig = compare_figure(columns, rows=("layer", "space", "scale"), view=study.view,
                             title=f"{subject}: one column per backbone")
        figs[f"layer, space and scale maps: {subject}"] = os.path.join(folder, f"maps_{slug(subject)}.png")
        fig.savefig(figs[f"layer, space and scale maps: {subject}"], dpi=DPI)
    figs["hierarchy score vs parameters"] = os.path.join(folder, "scaling.png")
    scaling_figure(rows).savefig(figs["hierarchy score vs parameters"], dpi=DPI)
    figs["per-ROI layer profiles per family"] = os.path.join(folder, "profiles.png")
    profile_figure(profiles).savefig(figs["per-ROI layer profiles per family"], dpi=DPI)
    if ft_rows:
        figs["fine-tuning: drift and map change"] = os.path.join(folder, "finetune.png")
        forgetting_figure(ft_rows).savefig(figs["fine-tuning: drift and map change"], dpi=DPI)
    figs.update(_forgetting_and_scaling_figures(study, rows, ft_rows, scaling_rows, folder))
    return figs
