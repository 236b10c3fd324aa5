"""Inference for a study: every run's measures on shared bootstrap draws, pooled over seeds and
subjects, and paired differences between backbones (docs/studies.md, "Comparisons").

Per subject, a :class:`SubjectFrame` fixes what every run of that subject is scored on: each
vertex's place in the hierarchy (one ROI ranking scheme, or the geodesic distance from the
occipital pole), which vertices are reliable enough (``min_ceiling``), K spatial blocks of its
cortex and ``n_boot`` bootstrap draws of those blocks. Every run of the subject is scored on the
very same draws, so differences between backbones are paired over space as well as over subjects
and seeds.

Measures (:data:`MEASURES`), per run:

* ``alignment_slope``, ``alignment_b0``, ``alignment_b1``: the paper's alignment line
  (:mod:`factortopy.analysis.alignment`) of the run's layer map against the hierarchy;
* ``brain_r2``: the brain score, mean R^2 over the run's vertices on its held-out images (the
  paper's R^2 column; over all vertices, whatever ``min_ceiling``);
* ``heldout_r``: mean Pearson r on the same images (the study's headline since the start);
* ``hierarchy_rho``: Spearman's rho of expected layer with hierarchy position (secondary).

Intervals (``ci``, default 95 %):

* one run: the percentile interval of its block-bootstrap draws;
* a backbone pooled, or a difference between two, on ONE subject: each draw averages the seeds
  drawn with replacement (the same seeds for both backbones) on the same spatial draw, so the
  interval covers seeds and space; a difference also gets a two-sided bootstrap p-value;
* on TWO subjects or more, the per-subject values (mean over seeds) are the sample: their mean,
  a Student-t interval over subjects, and for a difference the paired t-test over subjects.
"""
from __future__ import annotations

import numpy as np

MEASURES = ("alignment_slope", "alignment_b0", "alignment_b1", "brain_r2", "heldout_r", "hierarchy_rho")


def _atlases(rois: dict) -> list:
    return sorted({str(k).split("/", 1)[0] for k in rois})


def subject_hierarchy(subject, study, name: str | None = None) -> dict:
    """Each of the subject's vertices placed in the hierarchy as the study says (``hierarchy``,
    ``overlap``, ``min_ceiling``), or a clear error when too few can be placed (before any fit).

    Returns {'position' (N,) in [0, 1] (NaN: left out), 'group' (N,) str ('' = none), 'groups'
    [(group, position)] early -> late, 'counts' (the scheme's vertex counts), 'method'
    ('roi:<scheme>' or 'geodesic'), 'reliable' (N,) bool or None, 'n_reliable'}.
    """
    from factortopy.analysis.roi_hierarchy import SCHEMES, hierarchy_positions
    from factortopy.study.config import GEODESIC

    name = name or subject.name
    n = subject.n_vertices
    rois = subject.extra.get("rois") or {}
    if study.hierarchy == GEODESIC:
        from factortopy.analysis.geodesic import distance_from_seed

        d = np.asarray(distance_from_seed(subject.vertex, subject.hemi), np.float64)
        pos = d / np.nanmax(d)
        ranked = int(np.isfinite(pos).sum())
        h = dict(position=pos, group=np.full(n, "", dtype=object), groups=[], method=GEODESIC,
                 counts=dict(ranked=ranked, overlaps=0, excluded=0, unranked=0, no_roi=n - ranked, n=n))
    else:
        if not rois:
            raise ValueError(f"subject {name!r} carries no ROI masks, so hierarchy = {study.hierarchy!r} cannot place "
                             "its vertices: give data with ROIs, or set [study] hierarchy = 'geodesic' (distance "
                             "from the occipital pole)")
        h = hierarchy_positions(rois, n, study.hierarchy, study.overlap)
        h["method"] = f"roi:{h['scheme']}"
    pos, group = np.asarray(h["position"], np.float64).copy(), np.asarray(h["group"], dtype=object).copy()
    reliable = None
    if study.min_ceiling is not None:
        nc = subject.extra.get("noise_ceiling")
        if nc is None:
            raise ValueError(f"[study] min_ceiling = {study.min_ceiling} keeps vertices by their noise ceiling, but "
                             f"subject {name!r} carries none (NSD data with ncsnr files carry one; Algonauts "
                             "training data do not): remove min_ceiling")
        reliable = np.asarray(nc, np.float64) >= study.min_ceiling
        pos[~reliable], group[~reliable] = np.nan, ""
    ok = np.isfinite(pos)
    if ok.sum() < 3 or np.unique(pos[ok]).size < 2:
        ranks = [s for s in SCHEMES if any(SCHEMES[s].group_of(label) for label in rois)]
        raise ValueError(
            f"subject {name!r}: {int(ok.sum())} vertices at {np.unique(pos[ok]).size} position(s) under hierarchy "
            f"{study.hierarchy!r} (vertex counts {h['counts']}"
            + (f"; {int(reliable.sum())} reach min_ceiling {study.min_ceiling}" if reliable is not None else "")
            + f"): the alignment line needs vertices at two positions or more. The subject's ROI atlases: "
            f"{', '.join(_atlases(rois)) or 'none'}; schemes that rank some of them: {', '.join(ranks) or 'none'} "
            "([study] hierarchy = ...)")
    return dict(position=pos, group=group.astype(str), groups=list(h["groups"]), counts=h["counts"],
                method=h["method"], reliable=reliable, n_reliable=None if reliable is None else int(reliable.sum()))


class SubjectFrame:
    """One subject as all its runs are scored: hierarchy (:func:`subject_hierarchy`), spatial
    blocks (k-means of the subject's coordinates) and the bootstrap draws every run shares."""

    def __init__(self, subject, study, name: str | None = None, seed: int = 0):
        from factortopy.analysis.intervals import block_counts, spatial_blocks

        self.name = name or subject.name
        self.hierarchy = subject_hierarchy(subject, study, self.name)
        self.vertex, self.hemi = np.asarray(subject.vertex), np.asarray(subject.hemi).astype(str)
        self.labels = spatial_blocks(self.vertex, self.hemi, study.n_blocks, seed, coords=subject.coords)
        self.k = int(self.labels.max()) + 1
        self.counts = block_counts(self.k, study.n_boot, seed)
        self.n_boot = int(study.n_boot)
        self.layer, self.fit = study.alignment_layer, study.alignment_fit
        order = [g for g, _ in self.hierarchy["groups"]]
        self.group_index = np.array([order.index(g) if g else -1 for g in self.hierarchy["group"]], np.int64)
        self.rng_seed = seed

    @property
    def bootstrap(self) -> str:
        return f"{self.k} spatial blocks"

    def columns(self, values, vertex, hemi) -> np.ndarray:
        """(N_subject, ...) ``values`` of a run (rows in its (vertex, hemi) order) in the subject's
        column order; NaN where the run lacks a vertex."""
        from factortopy.runs import match_columns

        idx = match_columns(self.vertex, self.hemi, vertex, hemi)
        values = np.asarray(values, np.float64)
        out = np.full((len(idx),) + values.shape[1:], np.nan)
        out[idx >= 0] = values[idx[idx >= 0]]
        return out

    def _mean_draws(self, values) -> tuple[float, np.ndarray]:
        from factortopy.analysis.intervals import block_sums

        ok = np.isfinite(values)
        sums = block_sums(self.labels[ok], self.k, np.stack([values[ok], np.ones(ok.sum())], 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(values[ok].mean()) if ok.any() else float("nan"), \
                (self.counts @ sums[:, 0]) / (self.counts @ sums[:, 1])

    def _rho_draws(self, e, x) -> tuple[float, np.ndarray]:
        from factortopy.analysis.hierarchy import spearman

        ok = np.isfinite(e) & np.isfinite(x)
        members = [np.flatnonzero(ok & (self.labels == b)) for b in range(self.k)]
        draws = np.array([spearman(e[i], x[i]) for i in (
            np.concatenate([np.tile(members[b], c) for b, c in enumerate(row) if c] or [np.zeros(0, np.int64)])
            for row in self.counts)])
        return spearman(e[ok], x[ok]), draws

    def measures(self, maps: dict) -> dict:
        """{measure: (point value, (n_boot,) draws)} of one run's maps (a ``load_maps`` dict with
        ``layer_probs`` and the held-out ``r`` / ``r2``)."""
        from factortopy.analysis.alignment import AlignmentData, normalised_layer
        from factortopy.analysis.layers import expected_layer

        put = lambda a: self.columns(a, maps["vertex"], maps["hemi"])  # noqa: E731
        x = self.hierarchy["position"]
        y = put(normalised_layer(maps["layer_probs"], self.layer))
        data = AlignmentData(y, x, self.group_index, self.labels, self.k, self.fit)
        point, draws = data.lines(np.ones((1, self.k))), data.lines(self.counts)
        out = {f"alignment_{m}": (float(point[m][0]), draws[m]) for m in ("slope", "b0", "b1")}
        for name, key in (("brain_r2", "r2"), ("heldout_r", "r")):
            out[name] = self._mean_draws(put(maps[key])) if maps.get(key) is not None else \
                (float("nan"), np.full(self.n_boot, np.nan))
        out["hierarchy_rho"] = self._rho_draws(put(expected_layer(maps["layer_probs"])), x)
        return out

    def seed_draws(self, n_seeds: int) -> np.ndarray:
        """(n_boot, n_seeds) seed indices drawn with replacement per bootstrap draw (the same for
        every backbone of this subject: paired); all 0 with one seed."""
        rng = np.random.default_rng(self.rng_seed + 1)
        return rng.integers(0, n_seeds, (self.n_boot, n_seeds)) if n_seeds > 1 else np.zeros((self.n_boot, 1), int)


def run_intervals(values: dict, ci: float = 0.95) -> dict:
    """Summary columns of one run: ``<measure>`` and ``<measure>_ci_low`` / ``_ci_high``."""
    from factortopy.analysis.intervals import percentile_interval

    out = {}
    for m in MEASURES:
        point, draws = values[m]
        out[m] = point
        out[f"{m}_ci_low"], out[f"{m}_ci_high"] = percentile_interval(draws, ci)
    return out


def _over_seeds(per_seed: list, index: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean over seeds, (n_boot,) draws of the mean over seeds resampled by ``index``)."""
    points = np.array([p for p, _ in per_seed])
    draws = np.stack([d for _, d in per_seed])  # (n_seeds, n_boot)
    return float(points.mean()), draws[index, np.arange(draws.shape[1])[:, None]].mean(1)


def _summarise(per_subject: list, ci: float, difference: bool) -> dict:
    """Value, interval (and p for a difference) from [(point, draws)] one per subject."""
    from scipy.stats import ttest_1samp

    from factortopy.analysis.intervals import bootstrap_p, percentile_interval, t_interval

    if len(per_subject) >= 2:
        points = np.array([p for p, _ in per_subject])
        value, lo, hi = t_interval(points, ci)
        out = dict(value=value, ci_low=lo, ci_high=hi)
        if difference:
            out.update(p_value=float(ttest_1samp(points, 0.0).pvalue) if np.ptp(points) > 0 else float("nan"),
                       test="paired t-test over subjects")
        return out
    point, draws = per_subject[0]
    lo, hi = percentile_interval(draws, ci)
    out = dict(value=point, ci_low=lo, ci_high=hi)
    if difference:
        out.update(p_value=bootstrap_p(draws), test="paired bootstrap")
    return out


def _interval_name(n_subjects: int, n_seeds: int, frames: dict, ci: float) -> str:
    if n_subjects >= 2:
        return f"{ci:.0%} t over {n_subjects} subjects"
    frame = next(iter(frames.values()))
    seeds = f"{n_seeds} seeds x " if n_seeds > 1 else ""
    return f"{ci:.0%} bootstrap over {seeds}{frame.bootstrap}"


def pool(study, frames: dict, values: dict, ci: float = 0.95) -> tuple[list, list]:
    """Per-backbone rows (pooled over subjects and seeds) and the paired comparisons.

    frames: {subject: SubjectFrame}; values: {(subject, label, seed): {measure: (point, draws)}}.
    Returns (alignment rows, comparison rows) as module docstring and docs/studies.md describe.
    """
    subjects, seeds = list(frames), list(study.seeds)
    index = {s: frames[s].seed_draws(len(seeds)) for s in subjects}
    pooled = {(s, b.label, m): _over_seeds([values[(s, b.label, k)][m] for k in seeds], index[s])
              for s in subjects for b in study.backbones for m in MEASURES}
    interval = _interval_name(len(subjects), len(seeds), frames, ci)
    common = dict(n_subjects=len(subjects), n_seeds=len(seeds), interval=interval)
    rows = []
    for b in study.backbones:
        row = dict(label=b.label, family=b.family, method=b.method, null=b.null)
        for m in MEASURES:
            r = _summarise([pooled[(s, b.label, m)] for s in subjects], ci, difference=False)
            row.update({m: r["value"], f"{m}_ci_low": r["ci_low"], f"{m}_ci_high": r["ci_high"]})
        rows.append({**row, **common})
    comparisons = []
    labels = [b.label for b in study.backbones]
    by_label = {b.label: b for b in study.backbones}
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            a_, b_ = (b, a) if by_label[b].null == a else (a, b)  # a network before its null
            kind = "vs null" if by_label[a_].null == b_ else "pair"
            for m in MEASURES:
                diffs = [(pooled[(s, a_, m)][0] - pooled[(s, b_, m)][0], pooled[(s, a_, m)][1] - pooled[(s, b_, m)][1])
                         for s in subjects]
                r = _summarise(diffs, ci, difference=True)
                comparisons.append(dict(measure=m, a=a_, b=b_, kind=kind, difference=r["value"], ci_low=r["ci_low"],
                                        ci_high=r["ci_high"], p_value=r["p_value"], test=r["test"], **common))
    return rows, comparisons
