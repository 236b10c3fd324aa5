"""Write and read a RUN_DIR (docs/run-dir.md)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)  # never leave a half-written file behind


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def selector_arrays(model, vertex, hemi) -> dict:
    """The per-vertex arrays of selectors.npz (docs/run-dir.md) for ``model``."""
    import torch

    with torch.no_grad():
        sel = model.selectors()
        arrays = dict(
            vertex=np.asarray(vertex, dtype=np.int64),
            hemi=np.asarray(hemi).astype("<U2"),
            layer_names=np.asarray(model.layer_names),
            layer_probs=sel.layer_probs.float().cpu().numpy(),
            space_xy=sel.space.float().cpu().numpy(),
            scale=sel.scale[:, 0].float().cpu().numpy(),
            readout=model.readout_weight.detach().float().cpu().numpy(),
        )
    return arrays


def save_model(path: str, model) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, path)


def rebuild_backbone(config: dict):
    """The backbone of a run (config.json), identical to the one it was fitted with.

    A random-initialised backbone is rebuilt under the run's seed (fit seeds before building it);
    every rebuild is checked against the recorded weights identity (a file digest, a hub tag, or
    a digest of all parameters), so predictions never silently come from other weights.
    """
    import torch

    from factortopy.backbones import load_backbone
    from factortopy.features.cache import weights_fingerprint

    b = config["backbone"]
    seed = (config.get("fit") or {}).get("seed")
    if seed is not None:
        torch.manual_seed(seed)
    bb = load_backbone(b["name"], layers=b["layers"], weights=b.get("weights_file"),
                       pretrained=b.get("pretrained", False), img_size=b.get("img_size"))
    recorded = b.get("weights")
    if recorded is None:
        raise ValueError(f"the run's config records no weights identity for {b['name']}: its backbone cannot "
                         "be rebuilt reliably; refit with --weights FILE or --pretrained")
    found = weights_fingerprint(bb)
    if found != recorded:
        raise ValueError(f"the rebuilt {b['name']} is not the backbone the run was fitted with (weights "
                         f"{found} vs {recorded} recorded): was the weights file changed or moved?")
    return bb


@dataclass
class Run:
    """A fitted run read back from disk."""

    path: str
    config: dict
    model: object  # FactorTopy
    response_mean: np.ndarray  # (N,) undo the z-scoring of training responses
    response_std: np.ndarray  # (N,)

    def backbone(self):
        """The run's backbone, rebuilt from its config and checked to be the one it was fitted on."""
        return rebuild_backbone(self.config)

    def selectors(self) -> dict:
        with np.load(os.path.join(self.path, "selectors.npz")) as f:
            return dict(f)


def load_run(run_dir: str) -> Run:
    """Read a FactorTopy RUN_DIR: config, model (checked against its config), response scaling."""
    from safetensors.torch import load_file

    from factortopy.model.factortopy import FactorTopy

    cfg_path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(cfg_path):
        raise FileNotFoundError(f"{cfg_path} not found: {run_dir} is not a factortopy run directory")
    with open(cfg_path) as f:
        config = json.load(f)
    if config.get("kind", "factortopy") != "factortopy":
        raise ValueError(f"{run_dir} holds a {config.get('kind')!r} run, not a FactorTopy model")
    model_path = os.path.join(run_dir, MODEL_FILE)
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"{model_path} not found (the fit did not finish?)")
    state = load_file(model_path)
    model = FactorTopy.from_state_dict(state, config["model"])
    stats = np.load(os.path.join(run_dir, "response_stats.npz"))
    return Run(run_dir, config, model.eval(), stats["mean"], stats["std"])
