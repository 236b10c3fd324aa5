"""Evaluation: per-vertex metrics, the Algonauts score, ROI summaries, scoring a RUN_DIR.

``evaluate_run(run_dir, data=None, split='val')`` scores a fitted run (FactorTopy or ridge) on
held-out images; ``factortopy evaluate RUN_DIR`` is its command line. The data sets' noise ceilings
are computed in :mod:`factortopy.data.ceiling` (evaluation imports data, never the reverse).
"""
from __future__ import annotations

from factortopy.data.ceiling import ceiling_as_fraction, ncsnr_ceiling, ncsnr_ceiling_percent
from factortopy.evaluation.metrics import algonauts_score, pearson_r, r2_score, score_deviations
from factortopy.evaluation.summary import format_table, roi_table


def evaluate_run(*args, **kwargs):
    """See :func:`factortopy.evaluation.run.evaluate_run` (imported lazily: it needs torch)."""
    from factortopy.evaluation.run import evaluate_run as _evaluate_run

    return _evaluate_run(*args, **kwargs)


__all__ = ["algonauts_score", "ceiling_as_fraction", "evaluate_run", "format_table", "ncsnr_ceiling",
           "ncsnr_ceiling_percent", "pearson_r", "r2_score", "roi_table", "score_deviations"]
