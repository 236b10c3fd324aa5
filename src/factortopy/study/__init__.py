"""Studies: many networks at once on one or more subjects, the scaling plot, and fine-tuning
(docs/studies.md).

``factortopy.study("study.toml", "out/")`` (or ``factortopy study study.toml --out out/``) fits every
(subject, backbone) pair the study file names that is not fitted yet and writes ``summary.csv``,
figures and a self-contained ``index.html``; :func:`load_summary` reads the table back.

Modules: ``config`` (the study file, run-directory naming), ``run`` (fitting: in process or one
process per GPU), ``worker`` (one fit as a process), ``summary`` (the table), ``figures``, ``page``,
``finetune`` (a fine-tuning run), ``cka`` (linear CKA), ``probe`` (linear-probe and k-NN accuracy of
frozen features), ``forgetting`` (the fine-tuning table: forgetting, map change against a refit noise
floor, the relation across bases), ``scaling`` (nested training-image subsets, pretraining data size).
"""
from __future__ import annotations

import sys
import types

from factortopy._lazy import lazy_attributes

_LAZY = {
    "run_study": "factortopy.study.run",
    "load_study": "factortopy.study.config",
    "load_summary": "factortopy.study.summary",
    "linear_cka": "factortopy.study.cka",
    "finetune": "factortopy.study.finetune",
    "FinetuneConfig": "factortopy.study.finetune",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_attributes("factortopy.study", _LAZY, globals())


class _StudyModule(types.ModuleType):
    """This package is also callable: ``factortopy.study(path_or_dict, out, ...)`` runs a study
    (:func:`factortopy.study.run.run_study`), while ``factortopy.study.load_summary`` etc. stay
    attributes of the package."""

    def __call__(self, source, out, **kwargs):
        from factortopy.study.run import run_study

        return run_study(source, out, **kwargs)


sys.modules[__name__].__class__ = _StudyModule
