"""The study's page: one self-contained HTML file (tables and figures inline, images as base64;
no script, no stylesheet or font from anywhere else), readable offline."""
from __future__ import annotations

import base64
import html
import math
import os

PAGE = "index.html"

_STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #bbb;padding:3px 6px;text-align:right}th{background:#eee}td.t{text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}figcaption{font-size:13px;color:#555}"""


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, int) and abs(v) >= 10000:
        return f"{v:,}"
    return str(v)


def html_table(rows: list, skip=("run",)) -> str:
    """Rows (dicts) as an HTML table; text cells left-aligned."""
    columns = [c for c in dict.fromkeys(k for r in rows for k in r) if c not in skip]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td{'' if isinstance(r.get(c), (int, float)) else ' class=t'}>{html.escape(_fmt(r.get(c)))}</td>"
                         for c in columns) + "</tr>" for r in rows)
    return f"<div style='overflow-x:auto'><table><tr>{head}</tr>{body}</table></div>"


def _image(path: str) -> str:
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return f'<img alt="{html.escape(os.path.basename(path))}" src="data:image/png;base64,{data}">'


# ---- the fine-tuning study and the data-scaling axis (factortopy.study.forgetting / .scaling) --------

#: the columns of one relation across bases (the same on every row of a subject and recipe)
_RELATION = ("subject", "recipe", "relation_forgetting", "relation_alignment", "relation_n", "relation_spearman",
             "relation_ci_low", "relation_ci_high", "relation_p", "relation_pearson", "relation_difference",
             "relation_difference_ci_low", "relation_difference_ci_high")


def finetune_section(ft_rows: list) -> list:
    """HTML parts of the fine-tuning study: the relation across base networks, then the table."""
    relations = list({(r["subject"], r["recipe"]): {k: r.get(k) for k in _RELATION} for r in ft_rows}.values())
    return ["<h2>Fine-tuning: forgetting, map change and drift</h2>",
            "<p>Forgetting, measured directly: accuracy of a linear (probe_) and a k-NN (knn_) probe of the frozen "
            "network's features on labelled images no fine-tuning used, base minus fine-tuned version (positive = "
            "forgotten; 95% interval: paired bootstrap over the probe-test images). map_change: mean |expected-layer "
            "shift| from the base run on local vertices (scale selector &le; local_threshold), beside "
            "floor_map_change, the same from the base run to a refit of the base with another seed (refit noise); "
            "map_change_over_floor above 1 means more than refitting alone moves. drift: 1 - linear CKA of the "
            "features of the subject's images.</p>",
            "<h3>Alignment and forgetting across base networks</h3>",
            "<p>One row per subject and fine-tuning recipe: Spearman rho across the base networks between their "
            "alignment and their versions' forgetting, with a 95% bootstrap interval (over networks and probe "
            "images) and a permutation p; with two bases, the more aligned base's forgetting minus the other's "
            "(relation_difference). The paper's claim (brain-like networks forget less) reads as rho &lt; 0.</p>",
            html_table(relations), html_table(ft_rows)]


def scaling_section(scaling_rows: list) -> list:
    """HTML parts of the fMRI-data axis: one row per subject, backbone and training-image subset."""
    return ["<h2>Scaling: fMRI training images</h2>",
            "<p>Each backbone fitted on nested, seeded subsets of the training images (train_images; n_train the "
            "images used), every subset scored on the same held-out images. heldout_r_fraction_of_all: its held-out "
            "r over the all-images run's; map_change_vs_all: mean |expected-layer shift| from the all-images map "
            "(local vertices). pretraining_images: the size of the backbone's pretraining set (empty = unknown).</p>",
            html_table(scaling_rows)]


#: the columns of the Table 2 layout on the page, in order (alignment.csv has them all)
TABLE2 = ("label", "method", "params", "alignment_slope", "alignment_b0", "alignment_b1", "brain_r2", "heldout_r",
          "hierarchy_rho", "null", "n_subjects", "n_seeds")


def _with_interval(rows: list, columns, measures) -> list:
    """Rows with each measure and its interval in one cell ('0.91 [0.88, 0.93]')."""
    out = []
    for r in rows:
        row = {}
        for c in columns:
            if c in measures and r.get(c) is not None:
                lo, hi = r.get(f"{c}_ci_low"), r.get(f"{c}_ci_high")
                row[c] = f"{_fmt(r[c])} [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None else _fmt(r[c])
            else:
                row[c] = r.get(c)
        out.append(row)
    return out


def write_page(study, rows: list, ft_rows, figures: dict, out: str, scaling_rows=None, alignment=None,
               comparisons=None) -> str:
    """Write ``out/index.html`` (the Table 2 layout, the comparisons, the per-run table, the
    fine-tuning and scaling tables, figures); returns its path."""
    from factortopy.study.inference import MEASURES

    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(study.name)}</title>"
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(study.name)}</h1>"]
    if alignment:
        interval = html.escape(str(alignment[0].get("interval", "")))
        parts += ["<h2>Brain-network alignment (the paper's Table 2 layout)</h2>",
                  "<p>Per backbone, pooled over subjects and seeds: the line y = b0 + slope x of each vertex's "
                  f"layer (first 0, last 1; {html.escape(study.alignment_layer)}) against its ROI's place in the "
                  f"hierarchy (early 0, late 1; scheme {html.escape(study.hierarchy)}): a larger slope, a smaller "
                  "b0 and a larger b1 mean a better alignment. brain_r2: the brain score, mean R^2 on held-out "
                  f"images. null: the random-init version of the architecture (chance). Intervals: {interval}.</p>",
                  html_table(_with_interval(alignment, TABLE2, MEASURES))]
    if comparisons:
        parts += ["<h2>Comparisons</h2>",
                  "<p>Paired differences a - b (same subjects, seeds and spatial blocks), with their interval and "
                  "p-value; kind 'vs null': a network against its random-init version.</p>",
                  html_table(comparisons)]
    parts += ["<h2>Runs</h2>",
              "<p>One row per (subject, backbone, seed) run, each measure with its block-bootstrap interval. "
              "heldout_r: mean Pearson r on held-out images; noise_normalised: % of the noise ceiling (where the "
              "data carry one), nc:ROI per ROI group; hierarchy_rho: Spearman of expected layer with hierarchy "
              "position (secondary); roi_*: where the vertices fall under the scheme; layer:ROI: the group's mean "
              "expected layer (0 = first layer, 1 = last).</p>",
              html_table(rows)]
    if ft_rows:
        parts += finetune_section(ft_rows)
    if scaling_rows:
        parts += scaling_section(scaling_rows)
    parts.append("<h2>Figures</h2>")
    for caption, path in figures.items():
        parts.append(f"<figure>{_image(path)}<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    from factortopy._files import write_text

    return write_text(os.path.join(out, PAGE), "\n".join(parts))
