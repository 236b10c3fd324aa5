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


def write_page(study, rows: list, ft_rows, figures: dict, out: str) -> str:
    """Write ``out/index.html`` (table, fine-tuning table, figures); returns its path."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(study.name)}</title>"
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(study.name)}</h1>",
             "<p>One row per (subject, backbone) run. heldout_r: mean Pearson r on held-out images; "
             "noise_normalised: % of the noise ceiling (where the data carry one); hierarchy: Spearman rho of "
             "expected layer with hierarchy position, with its bootstrap interval; layer:ROI: the ROI's mean "
             "expected layer (0 = first layer, 1 = last).</p>",
             html_table(rows)]
    if ft_rows:
        parts += ["<h2>Fine-tuning: map change and representation drift</h2>",
                  "<p>map_change: mean |expected-layer shift| from the base run; drift: 1 - linear CKA of the "
                  "features of the subject's images, per layer and on average.</p>", html_table(ft_rows)]
    parts.append("<h2>Figures</h2>")
    for caption, path in figures.items():
        parts.append(f"<figure>{_image(path)}<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    path = os.path.join(out, PAGE)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))
    return path
