"""Scaling, both axes (docs/studies.md, "Scaling").

**The fMRI-data axis** (the paper's "about 3K images are enough to learn the mapping"): each chosen
backbone is fitted again on nested subsets of each subject's training images (``[scaling]
train_images = [1000, 3000, "all"]``). A subset is :attr:`FitConfig.train_images
<factortopy.fitting.fit.FitConfig>`: the first N of the training images in a seeded order
(:func:`factortopy.data.split.nested_train_subset`), so a smaller subset is inside a larger one and
every subset keeps the validation and held-out images of the full fit: every point of the curve is
scored on the same held-out images. Each subset's run is its own RUN_DIR, named by the digest of its
settings (the subset included); "all" is the study's own run of the pair. ``scaling.csv`` has one
row per (subject, backbone, subset): the summary columns of that run (factortopy.study.summary)
plus ``train_images`` (the subset asked for, or "all"), ``n_train`` (images it trained on),
``heldout_r2``, ``heldout_r_fraction_of_all`` (its held-out r over the all-images run's) and
``map_change_vs_all`` (how far its layer map is from the all-images map: mean |expected-layer
shift| over the all-images run's local vertices, :func:`factortopy.study.forgetting.map_change`).

**The pretraining-data axis**: :func:`pretraining_images` resolves the size of a backbone's
pretraining set (a study-file ``pretraining_images``, else the friendly name's registry entry,
else None: unknown, never an estimate); ``summary.csv`` carries it beside ``params`` and the
pretraining figure plots the study's measure against it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

SCALING = "scaling.csv"
ALL = "all"


@dataclass
class ScalingConfig:
    """The [scaling] section. train_images: subset sizes (whole numbers) and/or "all" (always
    included: the study's own run); backbones: labels to scale (default: every backbone that is
    not a fine-tuned version); local_threshold: the all-images run's vertices with scale <= this
    count for map_change_vs_all (0 = local, 1 = global)."""

    train_images: list = field(default_factory=lambda: [ALL])
    backbones: list | None = None
    local_threshold: float = 0.5

    def __post_init__(self):
        sizes = self.train_images
        if not isinstance(sizes, list) or not sizes:
            raise ValueError(f"[scaling] train_images must be a list of whole numbers and/or 'all', got {sizes!r}")
        for n in sizes:
            if n != ALL and not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
                raise ValueError(f"[scaling] train_images: {n!r} is neither a whole number >= 1 nor 'all'")
        if len(set(map(str, sizes))) != len(sizes):
            raise ValueError(f"[scaling] train_images repeat: {sizes}")
        if self.backbones is not None and (not isinstance(self.backbones, list) or not self.backbones):
            raise ValueError(f"[scaling] backbones must be a non-empty list of labels, got {self.backbones!r}")
        if not 0 <= float(self.local_threshold) <= 1:
            raise ValueError(f"[scaling] local_threshold must be in [0, 1], got {self.local_threshold}")

    @property
    def subsets(self) -> list[int]:
        """The subset sizes, ascending ('all' is the study's own run)."""
        return sorted(n for n in self.train_images if n != ALL)


def pretraining_images(spec, given: int | None = None) -> int | None:
    """The number of images (image-text pairs) a backbone was pretrained on: ``given`` (the study
    file's), 0 for a random initialisation, the friendly name's registry value when the spec uses
    the weights that name selects (its hub weights, or the checkpoint a ``weights_required`` name
    asks for); else None: a local weights file could have been trained on anything."""
    from factortopy.backbones import registry

    if given is not None:
        return int(given)
    if spec.random_init:
        return 0
    entry = registry.get(spec.name)
    if entry is None:
        return None
    if spec.pretrained or entry.weights_required:
        return entry.pretraining_images
    return None


def scaled_labels(study) -> list[str]:
    """The labels of the backbones the [scaling] section scales."""
    return study.scaling.backbones or [b.label for b in study.backbones if b.finetune_of is None]


def scaling_pairs(study, out: str) -> list:
    """The data-scaling fits: every subject x scaled backbone x subset size, as config.Pair (their
    fit settings carry train_images; the 'all' point is the study's own pair, not listed here)."""
    from factortopy.study.config import Pair, run_dir_of

    if study.scaling is None:
        return []
    out_pairs = []
    for subject, data in study.subjects.items():
        for label in scaled_labels(study):
            b = study.backbone(label)
            for n in study.scaling.subsets:
                fit = {**study.fit, "train_images": n}
                out_pairs.append(Pair(subject=subject, data=data, backbone=b, fit=fit,
                                      run_dir=run_dir_of(out, subject, b, data, fit)))
    return out_pairs


def scaling_table(study, pairs: list, rows: list, out: str) -> list:
    """Rows of ``scaling.csv`` (module docstring): the subset runs and, as 'all', the study's own run
    of each scaled (subject, backbone); written to ``DIR/scaling.csv``."""
    from factortopy.data import load_subject
    from factortopy.runs import open_run
    from factortopy.runs.maps import load_maps
    from factortopy.study.forgetting import local_vertices, map_change
    from factortopy.study.inference import SubjectFrame
    from factortopy.study.summary import run_row, write_csv

    cfg = study.scaling
    # the subsets are fitted with the study's own seed: 'all' is that seed's run
    main = {(p.subject, p.backbone.label): (p, r) for p, r in zip(pairs, rows) if p.seed == study.base_seed}
    subsets: dict = {}
    for p in scaling_pairs(study, out):
        subsets.setdefault((p.subject, p.backbone.label), []).append(p)
    table = []
    for subject_name, data in study.subjects.items():
        subject = load_subject(data)
        frame = SubjectFrame(subject, study, subject_name)
        for key in ((subject_name, label) for label in scaled_labels(study)):
            all_pair, all_row = main[key]
            all_maps = load_maps(all_pair.run_dir)
            local = local_vertices(all_maps, cfg.local_threshold)
            points = [(p, p.fit["train_images"]) for p in subsets.get(key, [])] + [(all_pair, ALL)]
            for p, n in points:
                row = all_row.copy() if n == ALL else run_row(p, subject, frame, study)[0]
                metrics = open_run(p.run_dir).metrics
                row.update(train_images=n, n_train=int(metrics.get("n_train")),
                           heldout_r2=metrics.get("heldout_r2_mean", metrics.get("val_r2_mean")),
                           heldout_r_fraction_of_all=_ratio(row.get("heldout_r"), all_row.get("heldout_r")),
                           map_change_vs_all=0.0 if n == ALL else
                           map_change(all_maps, load_maps(p.run_dir), vertices=local)["map_change"],
                           run=os.path.relpath(p.run_dir, out))
                table.append(_ordered(row))
    write_csv(os.path.join(out, SCALING), table)
    return table


def _ratio(a, b) -> float | None:
    if a is None or b is None or not np.isfinite(float(a)) or not np.isfinite(float(b)) or float(b) == 0:
        return None
    return float(a) / float(b)


def _ordered(row: dict) -> dict:
    """The identity and data-axis columns first, then the run's summary columns."""
    first = ("subject", "label", "family", "method", "params", "pretraining_images", "train_images", "n_train",
             "heldout_r", "heldout_r2", "heldout_r_fraction_of_all", "map_change_vs_all")
    return {**{k: row.get(k) for k in first}, **{k: v for k, v in row.items() if k not in first}}
