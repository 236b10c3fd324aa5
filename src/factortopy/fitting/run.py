"""A FactorTopy RUN_DIR: written at the end of :func:`factortopy.fit`, read back as a
:class:`FactorTopyRun` through :func:`factortopy.runs.open_run` (kind ``"factortopy"``)."""
from __future__ import annotations

import os

import numpy as np

from factortopy.runs import CONFIG, SCORES, SELECTORS, Run, open_run, verify_checksum

# this kind's own files (the ones every kind shares are spelled in factortopy.runs)
MODEL = "model.safetensors"  # FactorTopy state dict
RESPONSE_STATS = "response_stats.npz"  # the training responses' z-scoring
TRAIN_LOG = "train_log.jsonl"  # one line per epoch


def save_model(path: str, model) -> None:
    """The model's state dict as safetensors (a failed write raised as the OSError it is)."""
    from factortopy._files import save_safetensors

    save_safetensors({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)


def write_factortopy_run(out: str, model, config: dict, metrics: dict, selectors: dict, response_mean, response_std,
                         vertex, hemi, scores, history) -> dict:
    """Write every file of a finished FactorTopy run (docs/run-dir.md) through the run writer
    (checksums of every file, config.json last). scores: (split name, r, r2) for scores.npz. The
    channel map's clusters of the readout are computed here, once (selectors.npz
    ``channel_clusters``), not at every painting. Returns the config as written. A file that
    cannot be written (a full disk) is an OSError naming it; the fit's checkpoint stays, so a rerun
    resumes and writes the run."""
    from factortopy.analysis.clusters import cluster_readouts
    from factortopy.runs.writer import RunWriter

    selectors = dict(selectors, channel_clusters=cluster_readouts(selectors["readout"]))

    writer = RunWriter(out, FactorTopyRun)
    try:
        writer.file(MODEL, lambda tmp: save_model(tmp, model))
        writer.npz(RESPONSE_STATS, mean=response_mean, std=response_std)
        writer.npz(SELECTORS, **selectors)
        split, r, r2 = scores
        writer.npz(SCORES, vertex=np.asarray(vertex, np.int64), hemi=np.asarray(hemi).astype("<U2"), r=r, r2=r2,
                   split=np.asarray(split))
        writer.metrics(metrics)
        writer.jsonl(TRAIN_LOG, history)
        return writer.finish(config)
    except OSError as err:  # the writer named the file (a full disk): the checkpoint stays for the rerun
        raise OSError(err.errno, f"{err.strerror or err}; the fit resumes from its last checkpoint") from None


class FactorTopyRun(Run):
    """A fitted FactorTopy model read back: ``model`` (FactorTopy, eval mode), ``response_mean`` /
    ``response_std`` (N,) undoing the training responses' z-scoring."""

    kind = "factortopy"
    files = (MODEL, RESPONSE_STATS, TRAIN_LOG)

    def __init__(self, path: str, config: dict):
        super().__init__(path, config)
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from factortopy.model.factortopy import FactorTopy

        model_path = self.file(MODEL)
        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"{model_path} not found (the fit did not finish?)")
        verify_checksum(model_path)  # garbled tensor bytes still parse: only the digest sees them
        try:
            state = load_file(model_path)
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{model_path} cannot be read ({err}): the file is damaged; refit the run") from None
        try:
            self.model = FactorTopy.from_state_dict(state, config["model"]).eval()
        except (RuntimeError, TypeError) as err:  # tensors of other shapes or names than the config says
            raise ValueError(f"{model_path} does not match {self.file(CONFIG)} ({str(err)[:200]}): one of them "
                             "is damaged or from another run; refit the run") from None
        stats = self._read_npz(RESPONSE_STATS)
        self.response_mean, self.response_std = stats["mean"], stats["std"]

    @classmethod
    def grid_of(cls, config: dict) -> int | None:
        return int(config["model"]["grid"])

    def selectors(self) -> dict:
        return self._read_npz(SELECTORS)

    def predict_tokens(self, tokens, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
        """(n_images, N) predictions from extracted tokens, in the training responses' units."""
        from factortopy.fitting.predict import predict_tokens

        pred = predict_tokens(self.model, tokens, batch_size, device).cpu().numpy()
        return pred * self.response_std + self.response_mean

    def predict(self, images, batch_size: int = 32, device: str = "cpu", progress: bool = False, backbone=None):
        from factortopy.features.extract import extract_features

        features = extract_features(self._backbone_for(backbone), images, grid=self.model.grid,
                                    batch_size=batch_size, device=device, progress=progress)
        return self.predict_tokens(features.tokens, batch_size, device)


def load_run(run_dir: str) -> FactorTopyRun:
    """Read a FactorTopy RUN_DIR (``open_run``, refusing other kinds)."""
    run = open_run(run_dir)
    if not isinstance(run, FactorTopyRun):
        raise ValueError(f"{run_dir} holds a {run.kind!r} run, not a FactorTopy model")
    return run
