"""The settings of a fit and their checks: :class:`FitConfig` (saved in config.json as ``fit``),
the range of every field (:data:`FIT_CHECKS`), the published recipe (:data:`REFERENCE_SETTINGS`),
and the checks a fit runs on its data before any work (split sizes, constant columns, outputs).

Each field carries its command-line help in its metadata (:func:`setting`): ``factortopy fit``
and ``factortopy demo`` generate their training options from these fields (cli/fit.py), so a new
setting is one field here (and, when it has a range, one row of :data:`FIT_CHECKS`).
No torch at import: the command line's ``--help`` reads this module.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field, fields

import numpy as np

from factortopy.fitting.losses import LOSSES
from factortopy.fitting.schedule import REFERENCE_FADE_STEPS
from factortopy.model.kernel import RECEPTIVE_FIELDS

#: what happens to the trained readout (FitConfig.readout_refit): factortopy.fitting.readout
READOUT_REFITS = ("ridge", "none")
#: folds of the cross-validation that chooses each vertex's readout penalty (readout_refit="ridge")
READOUT_FOLDS = 5


def setting(default, help: str, *, choices=None, words=None, parse=None, cli: bool = True):
    """A FitConfig field with its command-line description.

    help: one phrase (the option's help; "(default X)" is added). choices: the allowed values.
    words: command-line word -> value, for values that are not words themselves (True/False).
    parse: a function text -> value for the command line (default: the type of ``default``).
    cli: False keeps the field off the command line.
    """
    return field(default=default, metadata=dict(help=help, choices=choices, words=words, parse=parse, cli=cli))


def _batch_size(text: str):
    if text == "auto":
        return text
    value = int(text)
    if value < 1:
        raise ValueError(f"batch size must be >= 1 or 'auto', got {text}")
    return value


def _patience(text: str):
    value = int(text)
    return None if value == 0 else value  # the command line's 0: never stop early


@dataclass
class FitConfig:
    """Every setting of a fit (saved in config.json). Defaults follow the reference recipe except
    where a planted-truth measurement chose otherwise (see docs/method.md)."""

    epochs: int = setting(10, "passes over the training images")
    batch_size: int | str = setting(8, "images per step, or 'auto' (the largest power of two that fits in GPU memory)",
                                    parse=_batch_size)
    # 5e-3, not the reference's 1e-3: at 1e-3 the fit had not converged in its epochs on any planted
    # brain and predicted worse than ridge (docs/method.md, "Predicting as well as ridge")
    lr: float = setting(5e-3, "AdamW learning rate (reference 1e-3)")
    weight_decay: float = setting(0.01, "AdamW weight decay")
    grad_clip: float = setting(0.5, "clip the gradient norm at this value")
    loss: str = setting("smooth_l1", "the training loss: " + "; ".join(f"{k}: {v.description}"
                                                                      for k, v in LOSSES.items()), choices=tuple(LOSSES))
    smooth_l1_beta: float = setting(0.1, "where the smooth L1 loss turns from quadratic to linear, in z-scored "
                                         "response units")
    reg_weight: float = setting(0.1, "the selector regulariser's weight at the start (it fades to 0)")
    reg_fade: str = setting("fraction", "fade the regulariser over a fraction of all steps or a fixed step count "
                                        "(reference: steps)", choices=("fraction", "steps"))
    reg_fade_value: float = setting(0.3, "the fraction or the step count (reference: 2000)")
    val_fraction: float = setting(0.1, "share of images for early stopping (they pick the best epoch)")
    heldout_fraction: float = setting(0.1, "share of images held out for the headline score: they choose nothing")
    # fMRI-data scaling: train on only N of the training images (a seeded, nested subset; the
    # validation and held-out images stay those of the full fit: data.split.nested_train_subset)
    train_images: int | None = setting(None, "train on only N of the training images (a seeded, nested subset; "
                                             "the early-stopping and held-out images stay the same)")
    seed: int = setting(0, "seed of the split, init and batch order")
    patience: int | None = setting(5, "stop after this many epochs without a better validation r (0 = never)",
                                   parse=_patience)
    dim: int = setting(128, "width D of the aligned channel space")
    hidden: int = setting(128, "width of the selector MLPs")
    grid: int = setting(8, "side of the token grid every layer is resized to (the reference's 8)")
    device: str = setting("cpu", "cpu, cuda, cuda:N or mps")
    amp: bool = setting(True, "autocast the big GEMM on CUDA (ignored on the CPU)", words={"on": True, "off": False})
    amp_dtype: str = setting("bfloat16", "autocast dtype of the big GEMM on CUDA (reference float16)",
                             choices=("bfloat16", "float16"))
    feature_batch_size: int = setting(32, "images per forward pass of the backbone")
    eval_batch_size: int = setting(64, "images per forward pass when scoring")
    # deviations from the reference code, each a setting (docs/method.md, "Deviations")
    readout_init: str = setting("normal", "readout init: standard normal weights, zero bias (normal) or the "
                                          "reference's uniform +-1/sqrt(D)", choices=("normal", "uniform"))
    token_scale: bool = setting(True, "fixed per-layer input scale 1/RMS of the training tokens (rms) or none "
                                      "(reference)", words={"rms": True, "none": False})
    positional_encoding: str = setting("ours", "frequencies 1000^(-k/31), sines then cosines (ours) or the "
                                               "reference's 1000^(-k/32), sin/cos interleaved",
                                       choices=("ours", "reference"))
    # what a vertex reads around (x, y): "point" (the paper's bilinear sample) or "gaussian" (a pool
    # of learned per-vertex size; docs/method.md, "Receptive fields of every size")
    receptive_field: str = setting("point", "what a vertex reads around its position: point (the paper's bilinear "
                                            "sample) or gaussian (a pool of learned per-vertex size, painted by "
                                            "`paint --what rf-size`; docs/method.md, 'Receptive fields of every size')",
                                   choices=tuple(RECEPTIVE_FIELDS))
    # after training, each vertex's readout refitted in closed form on the training images (ridge on
    # its selected features, a per-vertex penalty by 5-fold cross-validation), selectors unchanged;
    # "none" keeps the trained readout (the reference). docs/method.md, "Predicting as well as ridge"
    readout_refit: str = setting("ridge", "after training, refit each vertex's readout in closed form on the "
                                          "training images: ridge (a per-vertex penalty by 5-fold cross-validation) "
                                          "or none (the readout as trained; the reference)",
                                 choices=READOUT_REFITS)

    def __post_init__(self):
        check_fit_config(self)  # every way of making a FitConfig is checked before any work

    @classmethod
    def reference(cls, **overrides) -> "FitConfig":
        """The published recipe and model: batch 8, lr 1e-3, the regulariser fading over a fixed
        2,000 steps, uniform readout init, no token scale, the reference positional encoding,
        float16 autocast, the readout as trained (no closed-form refit). (Data and backbone choices
        of the reference: docs/method.md.)"""
        return cls(**{**REFERENCE_SETTINGS, **overrides})


def fit_setting_names() -> list[str]:
    """The FitConfig field names, in order."""
    return [f.name for f in fields(FitConfig)]


def unknown_settings(given, also=()) -> None:
    """Raise TypeError naming every key of ``given`` that is neither a FitConfig field nor in ``also``."""
    known = fit_setting_names()
    unknown = sorted(set(given) - set(known) - set(also))
    if unknown:
        raise TypeError(f"unknown setting(s) {unknown}: settings are the FitConfig fields ({', '.join(known)})"
                        + (f" and {', '.join(also)}" if also else ""))


def _whole(low):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _number(low, strict=True):
    return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and \
        (v > low if strict else v >= low)


#: FitConfig field -> (test, what it must be). A new field with a range adds one row.
FIT_CHECKS = {
    "epochs": (_whole(1), "a whole number >= 1"),
    "batch_size": (lambda v: v == "auto" or _whole(1)(v), "a whole number >= 1 or 'auto'"),
    "lr": (_number(0), "a finite number > 0"),
    "weight_decay": (_number(0, strict=False), "a finite number >= 0"),
    "grad_clip": (_number(0), "a finite number > 0"),
    "smooth_l1_beta": (_number(0, strict=False), "a finite number >= 0"),
    "reg_weight": (_number(0, strict=False), "a finite number >= 0"),
    "loss": (lambda v: v in LOSSES, " or ".join(map(repr, LOSSES))),
    "reg_fade": (lambda v: v in ("fraction", "steps"), "'fraction' or 'steps'"),
    "reg_fade_value": (_number(0, strict=False), "a finite number >= 0"),
    "val_fraction": (lambda v: _number(0)(v) and v < 1, "a fraction in (0, 1)"),
    "heldout_fraction": (lambda v: _number(0, strict=False)(v) and v < 1, "a fraction in [0, 1)"),
    "train_images": (lambda v: v is None or _whole(1)(v), "a whole number >= 1 (or None: every training image)"),
    "seed": (_whole(0), "a whole number >= 0"),
    "patience": (lambda v: v is None or _whole(1)(v), "a whole number >= 1 (or None: never stop early)"),
    "dim": (_whole(1), "a whole number >= 1"),
    "hidden": (_whole(1), "a whole number >= 1"),
    "grid": (_whole(1), "a whole number >= 1"),
    "device": (lambda v: isinstance(v, str) and re.fullmatch(r"cpu|mps|cuda(:\d+)?", v) is not None,
               "cpu, cuda, cuda:N or mps"),
    "amp_dtype": (lambda v: v in ("bfloat16", "float16"), "'bfloat16' or 'float16'"),
    "receptive_field": (lambda v: v in RECEPTIVE_FIELDS, " or ".join(map(repr, RECEPTIVE_FIELDS))),
    "readout_refit": (lambda v: v in READOUT_REFITS, " or ".join(map(repr, READOUT_REFITS))),
    "feature_batch_size": (_whole(1), "a whole number >= 1"),
    "eval_batch_size": (_whole(1), "a whole number >= 1"),
}


def check_fit_config(cfg) -> None:
    """Raise ValueError naming the first setting of ``cfg`` outside its range (:data:`FIT_CHECKS`)."""
    for name, (ok, what) in FIT_CHECKS.items():
        value = getattr(cfg, name, None)
        if not ok(value):
            raise ValueError(f"{name} (--{name.replace('_', '-')}) must be {what}, got {value!r}")
    if cfg.val_fraction + cfg.heldout_fraction >= 1:
        raise ValueError(f"val_fraction + heldout_fraction must leave training images, got "
                         f"{cfg.val_fraction} + {cfg.heldout_fraction} >= 1")


def check_outputs(out=None, cache_dir=None) -> None:
    """Refuse an ``out`` or ``cache_dir`` that is an existing file, or a place this process cannot
    write (read-only, no permission), before any work."""
    from factortopy._destination import check_destination

    for option, path in (("--out", out), ("--cache-dir", cache_dir)):
        if path and os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"{option} {path} is an existing file, not a folder: choose a folder")
        if path:
            check_destination(path, option, folder=True)


def check_split_sizes(parts: dict, cfg, option=lambda field: f"--{field.replace('_', '-')}") -> None:
    """The validation (and held-out) set by the rule every score follows
    (:func:`factortopy.evaluation.metrics.check_scored_images`: refused under 3 images, a warning
    under 20; docs/reliability.md). option: how a FitConfig field is written where the user set it
    (the command's ``--val-fraction``; a study file's ``[fit] val_fraction``)."""
    from factortopy.evaluation.metrics import check_scored_images

    for role, name, field in (("val", "validation", "val_fraction"), ("heldout", "held-out", "heldout_fraction")):
        fraction = getattr(cfg, field)
        if role == "heldout" and fraction == 0:
            continue
        check_scored_images(len(parts[role]), name, f"{option(field)} {fraction}",
                            "the best epoch" if role == "val" else "the held-out score",
                            f"raise {option(field)} or use more images", stacklevel=3)
    check_refit_images(len(parts["train"]), cfg, option)


def check_refit_images(n_train: int, cfg, option=lambda field: f"--{field.replace('_', '-')}") -> None:
    """Refuse, before training rather than after it, a readout refit (``readout_refit="ridge"``) on
    too few training images for its cross-validation (2 a fold)."""
    if cfg.readout_refit != "none" and n_train < 2 * READOUT_FOLDS:
        raise ValueError(f"{n_train} training images are too few for the readout refit's {READOUT_FOLDS}-fold "
                         f"cross-validation (need >= {2 * READOUT_FOLDS}): use more images, or keep the readout "
                         f"as trained with {option('readout_refit')} none")


def response_stats(responses: np.ndarray, train_idx, vertex, hemi) -> tuple[np.ndarray, np.ndarray]:
    """(mean (N,), std (N,)) float32 of each response column over the training images, which
    z-score the responses. A constant column is warned about and keeps std 1; a column whose
    z-scoring leaves float32's range (values near 3e38) is a ValueError naming it: its r would be
    NaN and the fit would read as diverged, when the cause is the data."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean = responses[train_idx].mean(0)
        std = responses[train_idx].std(0)
        bad = ~(np.isfinite(mean) & np.isfinite(std))
        if not bad.any():  # the z-scores themselves, column by column in bounded memory
            scale = np.where(std > 1e-8, std, 1.0).astype(np.float32)
            for lo in range(0, len(responses), 1024):
                bad |= ~np.isfinite((responses[lo:lo + 1024] - mean) / scale).all(0)
    if bad.any():
        cols = np.flatnonzero(bad)
        where = ", ".join(f"{hemi[i]} {vertex[i]}" for i in cols[:5]) + (", ..." if len(cols) > 5 else "")
        peak = float(np.max(np.abs(responses[:, cols[0]].astype(np.float64))))
        raise ValueError(f"{len(cols)} response column(s) ({where}; column {cols[0]} reaches |y| = {peak:.3g}) "
                         "overflow float32 when z-scored: the responses are out of scale; divide them by a "
                         "constant (or give z-scores / percent signal change) and fit again")
    warn_constant_columns(std, vertex, hemi)
    return mean, np.where(std > 1e-8, std, 1.0).astype(np.float32)


def warn_constant_columns(std: np.ndarray, vertex, hemi) -> None:
    """Warn about response columns constant over the training images: no model can predict them,
    and their r is 0 by construction, not a measurement."""
    const = np.flatnonzero(std <= 1e-8)
    if len(const):
        where = ", ".join(f"{hemi[i]} {vertex[i]}" for i in const[:5]) + (", ..." if len(const) > 5 else "")
        warnings.warn(f"{len(const)} of {len(std)} response columns are constant over the training images "
                      f"({where}): their r is 0 by construction; drop them from the data", stacklevel=3)


class DivergedError(ValueError):
    """Training produced a non-finite loss or weights."""


#: FitConfig fields that differ in the reference recipe
REFERENCE_SETTINGS = dict(batch_size=8, lr=1e-3, reg_fade="steps", reg_fade_value=REFERENCE_FADE_STEPS,
                          readout_init="uniform", token_scale=False, positional_encoding="reference",
                          amp_dtype="float16", receptive_field="point", grid=8, readout_refit="none")
