"""The fine-tuning study's table (the paper's forgetting analysis; docs/studies.md and
docs/method.md, "Forgetting"): for each base network, each of its fine-tuned versions and each
subject, what the version FORGOT, how far its brain map MOVED against the noise of refitting, and
how far its representation DRIFTED; then, across the base networks, how forgetting relates to the
base's brain-network alignment.

``finetune.csv`` columns (one row per subject x version):

- subject, label, recipe (the [[finetune.versions]] label: one recipe applied to several bases),
  base, base_alignment with alignment_by (the base run's summary column it came from: the
  [finetune] ``alignment`` setting, default ``alignment_slope``; ``hierarchy_rho`` with a warning
  when the summary has no such column), base_hierarchy_rho / _ci_low / _ci_high, hierarchy_rho,
  base_heldout_r, heldout_r;
- **forgetting, measured directly** (with a ``probe`` set; :mod:`factortopy.study.probe`):
  probe_layer, probe_n_test, probe_chance, base_probe_acc / probe_acc (linear probe), probe_drop
  (base minus version: positive = forgotten) with probe_drop_ci_low / _ci_high (95%, paired
  bootstrap over the probe-test images), and the same for the k-NN probe (base_knn_acc, knn_acc,
  knn_drop, knn_drop_ci_low / _ci_high);
- **map change against a noise floor**, on local vertices only (the base run's vertices whose
  scale selector is <= ``local_threshold``; a global-token vertex's image position means nothing):
  map_change (mean |expected-layer shift|, units of network depth), map_change_space (mean shift
  of the image position, image width = 2), map_change_scale (mean |scale shift|, every vertex),
  floor_map_change / _space / _scale (the same from the base run to a refit of the base with
  ``refit_seed``: what refitting alone moves), map_change_over_floor (map_change /
  floor_map_change: 1 = no more than refit noise), n_local, local_threshold, refit_seed,
  ``d_layer:<ROI>`` the mean signed layer shift per ROI (local vertices);
- **representation drift**: drift (mean over layers of 1 - linear CKA of base vs version features
  of the subject's images), ``drift:<layer>``;
- **the relation across bases** (same value on every row of one subject and recipe): relation_forgetting
  (the forgetting column used: the ``forgetting`` setting, default probe_drop with a probe set,
  else map_change_over_floor), relation_alignment, relation_n (bases with both values),
  relation_spearman with relation_ci_low / _ci_high (95% bootstrap over bases and, for probe
  measures, over probe-test images), relation_p (two-sided permutation p of the Spearman),
  relation_pearson; with exactly two bases, relation_difference: the more aligned base's forgetting
  minus the other's, with relation_difference_ci_low / _ci_high (paired over probe-test images).
"""
from __future__ import annotations

import itertools
import math
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

FINETUNE = "finetune.csv"
#: columns of a finetune.csv row that can be the forgetting side of the relation across bases
FORGETTING_MEASURES = ("probe_drop", "knn_drop", "map_change_over_floor", "map_change", "drift")
#: probe measures: their bootstrap draws (over probe-test images) enter the relation's interval
_PROBE_MEASURES = {"probe_drop": "linear", "knn_drop": "knn"}


@dataclass
class ForgettingConfig:
    """The [finetune] section's settings (besides the versions). bases: the base backbones' labels.
    probe: a labelled image folder no fine-tuning used (None: no probe; the relation then uses map
    change). probe_layer: 'last', a layer name or index. probe_tokens: 'global' (the layer's
    global token) or 'mean' (mean of grid cells and global token). probe_test_fraction, probe_seed:
    the stratified probe split. probe_c: inverse L2 strength of the logistic probe. knn_k: the
    k-NN probe's k. refit_seed: the noise floor's refit seed (None: the study's fit seed + 1).
    local_threshold: base-run vertices with scale <= this are local (1 = every vertex).
    alignment: the summary column read as the base's alignment. forgetting: the relation's
    forgetting column (None: probe_drop with a probe, else map_change_over_floor)."""

    bases: list = field(default_factory=list)
    probe: str | None = None
    probe_layer: str | int = "last"
    probe_tokens: str = "global"
    probe_test_fraction: float = 0.5
    probe_seed: int = 0
    probe_c: float = 1.0
    knn_k: int = 5
    refit_seed: int | None = None
    local_threshold: float = 0.5
    alignment: str = "alignment_slope"
    forgetting: str | None = None

    def __post_init__(self):
        from factortopy.study.probe import PROBE_TOKENS

        checks = [
            ("probe_tokens", self.probe_tokens in PROBE_TOKENS, f"one of {PROBE_TOKENS}"),
            ("probe_test_fraction", 0 < float(self.probe_test_fraction) < 1, "in (0, 1)"),
            ("probe_c", float(self.probe_c) > 0, "> 0"),
            ("knn_k", isinstance(self.knn_k, int) and self.knn_k >= 1, "a whole number >= 1"),
            ("refit_seed", self.refit_seed is None or isinstance(self.refit_seed, int) and self.refit_seed >= 0,
             "a whole number >= 0"),
            ("local_threshold", 0 <= float(self.local_threshold) <= 1, "in [0, 1] (0 = local, 1 = global)"),
            ("forgetting", self.forgetting is None or self.forgetting in FORGETTING_MEASURES,
             f"one of {FORGETTING_MEASURES}"),
            ("forgetting", self.forgetting not in _PROBE_MEASURES or self.probe is not None,
             "a measure that needs no probe set, or give probe = FOLDER (it needs a probe set)"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise ValueError(f"[finetune] {name} must be {what}; got {getattr(self, name)!r}")

    @property
    def measure(self) -> str:
        """The forgetting column the relation across bases uses."""
        return self.forgetting or ("probe_drop" if self.probe else "map_change_over_floor")


# ---- map change ------------------------------------------------------------------------------------

def local_vertices(maps: dict, threshold: float = 0.5) -> np.ndarray:
    """(N,) bool: the run's vertices whose scale selector is <= ``threshold`` (0 = reads the image
    position, 1 = reads the global token); every vertex when the run has no scale map."""
    scale = maps.get("scale")
    if scale is None:
        return np.ones(len(maps["vertex"]), bool)
    local = np.asarray(scale, float) <= float(threshold)
    if not local.any():
        warnings.warn(f"no vertex of {maps.get('path', 'the run')} has a scale selector <= {threshold} (all read "
                      f"mostly the global token; smallest scale {float(np.min(scale)):.3f}): its map change is NaN; "
                      "raise local_threshold (1 counts every vertex)", stacklevel=2)
    return local


def map_change(base, other, roi_masks: dict | None = None, vertices=None) -> dict:
    """How run ``other``'s maps moved from run ``base``'s (RUN_DIRs or maps dicts), on the vertices
    they share: map_change (mean |expected-layer shift|), map_change_space (mean image-position
    shift), both over ``vertices`` ((N,) bool in base's order; default every vertex), and
    map_change_scale (mean |scale shift|, every shared vertex); n_local (vertices counted);
    ``d_layer:<ROI>`` the mean signed layer shift per ROI (roi_masks: {name: (N,) bool} in base's
    order) over the counted vertices."""
    from factortopy.analysis.compare import compare_runs
    from factortopy.runs.columns import align_columns
    from factortopy.runs.maps import load_maps
    from factortopy.study.summary import roi_labels

    a = base if isinstance(base, dict) else load_maps(base)
    b = other if isinstance(other, dict) else load_maps(other)
    n = len(a["vertex"])
    keep = np.ones(n, bool) if vertices is None else np.asarray(vertices, bool)
    roi = roi_labels(roi_masks, n) if roi_masks else None
    if roi is not None:
        roi = np.where(keep, roi, "")  # per-ROI shifts over the counted vertices only
    cmp = compare_runs(a, b, roi=roi)
    ia, _ = align_columns(a["vertex"], a["hemi"], b["vertex"], b["hemi"])
    counted = keep[ia]
    mean = lambda v: float(np.mean(v[counted])) if counted.any() else math.nan  # noqa: E731
    out = dict(map_change=mean(np.abs(cmp["d_layer"])), map_change_space=mean(cmp["d_space_dist"]),
               map_change_scale=float(np.mean(np.abs(cmp["d_scale"]))), n_local=int(counted.sum()))
    out.update({f"d_layer:{r['roi']}": r["d_layer"] for r in cmp["per_roi"]})
    return out


def noise_floor_pairs(study, out: str) -> list:
    """The refits that give the map change its noise floor: each base on each subject, fitted again
    with the refit seed (config.Pair; the seed changes the fit's split and initialisation)."""
    from factortopy.study.config import Pair, run_dir_of

    if study.finetune is None:
        return []
    fit = {**study.fit, "seed": refit_seed(study)}
    return [Pair(subject=s, data=data, backbone=study.backbone(b), fit=fit,
                 run_dir=run_dir_of(out, s, study.backbone(b), data, fit))
            for s, data in study.subjects.items() for b in study.finetune.bases]


def refit_seed(study) -> int:
    """The noise floor's refit seed: the [finetune] setting, else the study's fit seed + 1."""
    from factortopy.fitting.fit import FitConfig

    given = study.finetune.refit_seed
    seed = FitConfig(**study.fit).seed
    if given is not None and given == seed:
        raise ValueError(f"[finetune] refit_seed {given} is the study's own fit seed: the refit would be the same "
                         "fit; choose another seed")
    return seed + 1 if given is None else int(given)


# ---- the relation across base networks --------------------------------------------------------------

def _spearman(x, y) -> float:
    from scipy.stats import spearmanr

    if len(set(np.asarray(x).tolist())) < 2 or len(set(np.asarray(y).tolist())) < 2:
        return math.nan
    return float(spearmanr(x, y)[0])


def relation(x, y, y_draws=None, n_boot: int = 1000, seed: int = 0) -> dict:
    """How forgetting ``y`` (n,) relates to alignment ``x`` (n,) across n networks (NaNs dropped).

    relation_spearman: Spearman rho (networks are the units; ranks, since forgetting and alignment
    have no common scale across architectures); relation_ci_low / _ci_high: 95% percentile
    bootstrap that resamples the networks and, when ``y_draws`` ((n_boot, n) bootstrap draws of each
    network's y, e.g. over probe images) is given, their forgetting too; relation_p: two-sided
    permutation p (every permutation up to n = 7, else 9,999 random ones): with n = 3 it cannot go
    below 1/3; relation_pearson. With n == 2 a rank correlation is +-1 by construction, so instead
    relation_difference = y of the more aligned network minus y of the other, with an interval from
    y_draws. relation_n: networks counted.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    draws = None if y_draws is None else np.asarray(y_draws, float)[:, ok]
    x, y = x[ok], y[ok]
    n = len(x)
    out = dict(relation_n=n, relation_spearman=math.nan, relation_ci_low=math.nan, relation_ci_high=math.nan,
               relation_p=math.nan, relation_pearson=math.nan, relation_difference=math.nan,
               relation_difference_ci_low=math.nan, relation_difference_ci_high=math.nan)
    if n == 2 and x[0] != x[1]:
        hi, lo = (0, 1) if x[0] > x[1] else (1, 0)
        out["relation_difference"] = float(y[hi] - y[lo])
        if draws is not None and len(draws):
            d = draws[:, hi] - draws[:, lo]
            low, high = np.percentile(d, [2.5, 97.5])
            out["relation_difference_ci_low"], out["relation_difference_ci_high"] = float(low), float(high)
    if n < 3:
        return out
    rho = _spearman(x, y)
    out["relation_spearman"] = rho
    if np.std(x) > 0 and np.std(y) > 0:
        out["relation_pearson"] = float(np.corrcoef(x, y)[0, 1])
    if not np.isfinite(rho):
        return out
    rng = np.random.default_rng(seed)
    if n <= 7:
        perms = (np.asarray(p) for p in itertools.permutations(range(n)))
    else:
        perms = itertools.chain([np.arange(n)], (rng.permutation(n) for _ in range(9999)))
    null = np.array([_spearman(x, y[p]) for p in perms])
    out["relation_p"] = float(np.mean(np.abs(null) >= abs(rho) - 1e-12))
    boot = []
    for b in range(int(n_boot)):
        idx = rng.integers(0, n, n)
        yy = (draws[b % len(draws)] if draws is not None and len(draws) else y)[idx]
        boot.append(_spearman(x[idx], yy))
    boot = np.asarray(boot)
    boot = boot[np.isfinite(boot)]  # a draw of one repeated network has no rank order
    if len(boot) >= max(10, n_boot // 2):
        out["relation_ci_low"], out["relation_ci_high"] = map(float, np.percentile(boot, [2.5, 97.5]))
    return out


# ---- the table --------------------------------------------------------------------------------------

def _features(spec, subject, cache_dir: str, grid: int, device: str):
    """The subject's image features under ``spec`` (from the study's cache: the fit made them)."""
    from factortopy.features.cache import load_or_extract

    return load_or_extract(spec.build(), subject.images, cache_dir, image_key=subject.image_key, grid=grid,
                           device=device, progress=False)


def _probe_results(study, out: str, grid: int) -> dict | None:
    """{'set', 'layer', 'chance', 'draws', 'correct': {label: {'linear', 'knn'}}} for every base
    and version, on the probe set (None without one)."""
    from factortopy.study.probe import bootstrap_images, chance_accuracy, probe_features, probe_scores, probe_set

    cfg = study.finetune
    if cfg.probe is None:
        return None
    ps = probe_set(cfg.probe, cfg.probe_test_fraction, cfg.probe_seed)
    labels = list(cfg.bases) + [b.label for b in study.backbones if b.finetune_of in cfg.bases]
    correct, layer = {}, None
    for label in labels:
        feats, layer = probe_features(study.backbone(label).spec, ps.paths, cfg.probe_layer, cfg.probe_tokens, grid,
                                      cache_dir=os.path.join(out, "probe"), device=study.device)
        correct[label] = probe_scores(feats, ps, cfg.probe_c, cfg.knn_k)
    return dict(set=ps, layer=layer, chance=chance_accuracy(ps), correct=correct,
                draws=bootstrap_images(len(ps.test), study.n_boot, seed=cfg.probe_seed))


def _probe_columns(probe: dict, base: str, label: str) -> tuple[dict, dict]:
    """(finetune.csv probe columns, {measure: (n_boot,) bootstrap draws}) of version ``label``."""
    from factortopy.study.probe import paired_drop

    row, draws = dict(probe_layer=probe["layer"], probe_n_test=len(probe["set"].test), probe_chance=probe["chance"]), {}
    for measure, kind in _PROBE_MEASURES.items():
        name = "probe" if kind == "linear" else "knn"
        before, after = probe["correct"][base][kind], probe["correct"][label][kind]
        d = paired_drop(before, after, probe["draws"])
        row.update({f"base_{name}_acc": float(before.mean()), f"{name}_acc": float(after.mean()), measure: d["drop"],
                    f"{measure}_ci_low": d["ci_low"], f"{measure}_ci_high": d["ci_high"]})
        draws[measure] = d["draws"]
    return row, draws


def _relation_columns(table: list, draws: list, cfg, n_boot: int) -> None:
    """Add the relation across bases to every row, per (subject, recipe)."""
    measure = cfg.measure
    groups: dict = {}
    for i, r in enumerate(table):
        groups.setdefault((r["subject"], r["recipe"]), []).append(i)
    for members in groups.values():
        x = [table[i]["base_alignment"] for i in members]
        y = [table[i].get(measure) for i in members]
        x = [math.nan if v is None else float(v) for v in x]
        y = [math.nan if v is None else float(v) for v in y]
        y_draws = np.stack([draws[i][measure] for i in members], axis=1) if measure in _PROBE_MEASURES else None
        rel = relation(x, y, y_draws, n_boot=n_boot, seed=0)
        for i in members:
            table[i].update(relation_forgetting=measure, relation_alignment=table[i]["alignment_by"], **rel)


def finetune_table(study, pairs: list, rows: list, out: str) -> list:
    """Rows of the fine-tuning table for every subject, base and version (module docstring);
    written to ``DIR/finetune.csv``."""
    from factortopy.data import load_subject
    from factortopy.fitting.fit import FitConfig
    from factortopy.runs.maps import load_maps
    from factortopy.study.cka import layer_drift
    from factortopy.study.summary import aligned_rois, measure_column, subject_rois, write_csv

    cfg = study.finetune
    grid = FitConfig(**study.fit).grid
    alignment_by = measure_column(rows, cfg.alignment, "the fine-tuning study's alignment (finetune.csv)")
    # the study's own seed: the one its noise-floor refit (seed + 1) is measured against
    by_key = {(p.subject, p.backbone.label): (p, r) for p, r in zip(pairs, rows) if p.seed == study.base_seed}
    refits = {(p.subject, p.backbone.label): p for p in noise_floor_pairs(study, out)}
    probe = _probe_results(study, out, grid)
    cache = os.path.join(out, "features")
    table, draws = [], []
    for subject_name, data in study.subjects.items():
        subject = load_subject(data)
        rois = subject_rois(subject)
        for base in cfg.bases:
            base_pair, base_row = by_key[(subject_name, base)]
            base_maps = load_maps(base_pair.run_dir)
            local = local_vertices(base_maps, cfg.local_threshold)
            masks = aligned_rois(rois, subject, base_maps) if rois else None
            floor = map_change(base_maps, load_maps(refits[(subject_name, base)].run_dir), vertices=local)
            base_feats = _features(base_pair.backbone.spec, subject, cache, grid, study.device)
            for p, r in (by_key[k] for k in by_key if k[0] == subject_name):
                if p.backbone.finetune_of != base:
                    continue
                change = map_change(base_maps, load_maps(p.run_dir), masks, vertices=local)
                drift = layer_drift(base_feats, _features(p.backbone.spec, subject, cache, grid, study.device))
                row = dict(subject=subject_name, label=p.backbone.label, recipe=p.backbone.recipe, base=base,
                           base_alignment=base_row.get(alignment_by), alignment_by=alignment_by,
                           base_hierarchy_rho=base_row["hierarchy_rho"],
                           base_hierarchy_ci_low=base_row["hierarchy_rho_ci_low"],
                           base_hierarchy_ci_high=base_row["hierarchy_rho_ci_high"], hierarchy_rho=r["hierarchy_rho"],
                           base_heldout_r=base_row["heldout_r"], heldout_r=r["heldout_r"])
                version_draws = {}
                if probe is not None:
                    probe_row, version_draws = _probe_columns(probe, base, p.backbone.label)
                    row.update(probe_row)
                ratio = change["map_change"] / floor["map_change"] if floor["map_change"] > 0 else math.nan
                row.update(map_change=change["map_change"], map_change_space=change["map_change_space"],
                           map_change_scale=change["map_change_scale"], floor_map_change=floor["map_change"],
                           floor_map_change_space=floor["map_change_space"],
                           floor_map_change_scale=floor["map_change_scale"], map_change_over_floor=ratio,
                           n_local=change["n_local"], local_threshold=float(cfg.local_threshold),
                           refit_seed=refit_seed(study), drift=float(np.mean(drift)),
                           **{f"drift:{name}": d for name, d in zip(base_feats.layer_names, drift)},
                           **{k: v for k, v in change.items() if k.startswith("d_layer:")})
                table.append(row)
                draws.append(version_draws)
    _relation_columns(table, draws, cfg, study.n_boot)
    write_csv(os.path.join(out, FINETUNE), table)
    return table
