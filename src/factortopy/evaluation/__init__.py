"""Evaluation: per-vertex metrics, noise ceilings, ROI summaries, scoring a RUN_DIR.

``evaluate_run(run_dir, data=None, split='val')`` scores a fitted run (FactorTopy or ridge) on
held-out images; ``factortopy evaluate RUN_DIR`` is its command line.
"""
from __future__ import annotations

from factortopy.evaluation.ceiling import check_fraction, noise_ceiling_fraction, noise_ceiling_percent
from factortopy.evaluation.metrics import algonauts_score, pearson_r, r2_score
from factortopy.evaluation.summary import format_table, roi_table


def evaluate_run(*args, **kwargs):
    """See :func:`factortopy.evaluation.run.evaluate_run` (imported lazily: it needs torch)."""
    from factortopy.evaluation.run import evaluate_run as _evaluate_run

    return _evaluate_run(*args, **kwargs)


__all__ = ["algonauts_score", "check_fraction", "evaluate_run", "format_table", "noise_ceiling_fraction",
           "noise_ceiling_percent", "pearson_r", "r2_score", "roi_table"]
