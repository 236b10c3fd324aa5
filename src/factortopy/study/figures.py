"""The study's figures (PNG files under ``DIR/figures``): layer-map grids, the scaling plot, per-ROI
layer profiles per family, and the fine-tuning study's drift and map change."""
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
    right.set_ylabel("map change (mean |layer shift|)")
    base = ft_rows[0]
    right.set_title(f"base {base['base']}: hierarchy {base['base_hierarchy_rho']:.2f} "
                    f"[{base['base_hierarchy_ci_low']:.2f}, {base['base_hierarchy_ci_high']:.2f}]", fontsize=8)
    return fig


def write_figures(study, pairs: list, rows: list, profiles: list, out: str, ft_rows=None) -> dict:
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
    return figs
