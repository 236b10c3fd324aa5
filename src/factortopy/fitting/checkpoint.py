"""Checkpoint I/O of a fit: what an interrupted fit resumes from (``checkpoint.pt`` in the RUN_DIR).

A checkpoint holds the loop state after an epoch (model, optimiser, batch-order generator, history,
best epoch) and the digest of every setting that decides the fitted model (:func:`resume_key`): a
resume continues only a fit with the same backbone, data, split, model and fit settings, and
refuses any other. It is read with ``torch.load(weights_only=True)`` (tensors and plain types,
never code) and written through the run folder's one writer (temporary file, rename).
"""
from __future__ import annotations

import hashlib
import json
import os

import torch

#: FitConfig fields that decide where and in how large chunks work runs, not what is learned: a
#: resume on another device (another GPU, more memory for evaluation) continues instead of refusing
_NOT_IN_RESUME_KEY = ("device", "feature_batch_size", "eval_batch_size")


def resume_key(run_config: dict) -> str:
    """Digest of everything that decides the fitted model: backbone identity, data, split, model and
    fit settings (``batch_size='auto'`` stays 'auto' here; the resolved size lives in the checkpoint)."""
    fit_ = {k: v for k, v in run_config["fit"].items() if k not in _NOT_IN_RESUME_KEY}
    keyed = {**run_config, "fit": fit_}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()


#: what a checkpoint holds (:func:`save_checkpoint` is given these keys and more by the training loop)
CHECKPOINT_KEYS = ("resume_key", "model", "optimizer", "generator", "epoch", "step", "history", "best")


def load_checkpoint(path: str, device: str) -> dict:
    """A checkpoint read without unpickling code (``weights_only``): tensors and plain types only,
    in a dict with every key of :data:`CHECKPOINT_KEYS`; anything else (a damaged file, pickled
    objects, a list or a string) is a ValueError naming the file and what to do."""
    from factortopy.backbones.weights import torch_load_failure

    fix = "remove it to start the fit afresh, or fit with overwrite (--overwrite)"
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} cannot be read as a factortopy checkpoint: {torch_load_failure(err)}; {fix}") \
            from None
    if not isinstance(ckpt, dict) or not set(CHECKPOINT_KEYS) <= set(ckpt):
        what = f"a {type(ckpt).__name__}" if not isinstance(ckpt, dict) else \
            f"a dict without {sorted(set(CHECKPOINT_KEYS) - set(ckpt))}"
        raise ValueError(f"{path} is not a factortopy checkpoint (it holds {what}); {fix}")
    return ckpt


def save_checkpoint(path: str, state: dict) -> None:
    """Write the checkpoint atomically (:func:`factortopy.runs.writer.write_run_file`: a temporary
    file renamed into place); a full disk is an error naming the path, and the previous checkpoint
    stays valid."""
    from factortopy._destination import write_failed
    from factortopy._files import save_torch
    from factortopy.runs.writer import write_run_file

    folder, name = os.path.split(path)
    try:
        write_run_file(folder, name, lambda tmp: save_torch(state, tmp))  # torch's RuntimeError: the OSError
    except OSError as err:
        raise write_failed(err, f"the checkpoint {path}", "free space there (or choose another --out) and rerun; "
                           "the fit resumes from its last checkpoint") from None


def resume_state(ckpt_path, resume_key: str, model, optimizer, gen, device) -> dict | None:
    """The saved loop state of an interrupted fit with identical settings, loaded into model,
    optimizer and generator; None when there is none. Other settings are refused, never discarded."""
    if not (ckpt_path and os.path.isfile(ckpt_path)):
        return None
    ckpt = load_checkpoint(ckpt_path, device)
    if ckpt["resume_key"] != resume_key:
        raise ValueError(f"{ckpt_path} belongs to an interrupted fit with other settings (backbone, data, "
                         "split or fit options differ): rerun it with the same settings to resume, choose "
                         "another --out, or pass --overwrite to discard it")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    gen.set_state(ckpt["generator"])
    return ckpt
