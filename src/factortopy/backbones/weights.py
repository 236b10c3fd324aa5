"""Local weight files (.safetensors, or torch files read with weights_only=True) and hub checks.

Checkpoints rarely use the model's own key names: a wrapper prefix (``module.base_encoder.`` in
MoCo v3), or another implementation's names for the same layers in the same order (torchvision's
MobileNetV2 vs timm's ``mobilenetv2_100``). :func:`strip_prefix` and :func:`remap_by_position`
handle both; :func:`load_weights_file` reports what matched, what is missing and what is left over.
"""
from __future__ import annotations

import os
import sys
import warnings

from factortopy._digest import file_digest  # the whole file: an edit anywhere changes it


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


class WeightsNotAvailable(FileNotFoundError, RuntimeError):
    """Pretrained weights that are not on this machine (offline and not in the hub cache)."""


def hub_load_error(what: str, err: Exception, fetch: str | None = None) -> WeightsNotAvailable:
    """One clear message for hub weights that could not be had (offline, not cached, a typo).

    fetch: the Python statement that fills the hub cache on a machine with internet.
    """
    offline = " (HF_HUB_OFFLINE is set and they are not in the hub cache)" if hub_offline() else ""
    how = (f" To get them: on a machine with internet run  python -c \"{fetch}\"  and copy its hub cache "
           "(~/.cache/huggingface, or $HF_HOME) to this machine;" if fetch else "")
    return WeightsNotAvailable(f"could not load {what}{offline}: {type(err).__name__}: {str(err)[:200]}.{how} "
                        "or pass a local file with weights=PATH (--weights FILE), or random_init=True "
                        "(--random-init) for a random network.")


def torch_load_failure(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in words of ours: torch's own text goes
    on to suggest ``weights_only=False``, which would run whatever code the file holds, so only
    its line naming the refused object is kept."""
    import re

    text = str(err)
    if "Weights only load failed" in text or type(err).__name__ == "UnpicklingError":
        named = re.search(r"(Trying to load unsupported GLOBAL[^\n]*|WeightsUnpickler error: [^\n]*)", text)
        what = named.group(1).replace("WeightsUnpickler error: ", "").split(" Please use")[0].strip().rstrip(".") \
            if named else "objects torch does not load safely"
        return (f"it holds Python objects beyond tensors and plain values ({what[:200]}); such a file is never "
                "unpickled here, since unpickling runs the code it names")
    first = (text.strip().splitlines() or [type(err).__name__])[0].split(". This is an internal")[0]
    return f"it is damaged, truncated or not a torch file ({type(err).__name__}: {first[:160]})"


def read_state_dict(path: str) -> dict:
    """{name: tensor} from a .safetensors file or a torch file (weights_only=True, never pickle code).
    Unwraps the usual checkpoint containers ('state_dict', 'model', 'module')."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"could not read {path} as a torch state dict: {torch_load_failure(err)}; save the weights "
                         "with torch.save(model.state_dict(), path) or as .safetensors") from None
    for key in ("state_dict", "model", "module"):  # common checkpoint wrappers
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{path} does not contain a state dict of tensors")
    return state


def strip_prefix(state: dict, own_keys) -> tuple[dict, str]:
    """Drop the key prefix (e.g. 'module.base_encoder.') under which most keys match the model.

    Keys outside the chosen prefix are kept as they are (they are reported as unexpected later).
    Returns (state, prefix); prefix is '' when no prefix does better than the keys as they are.
    """
    own = set(own_keys)
    best, best_n = "", sum(k in own for k in state)
    candidates = set()
    for k in state:
        parts = k.split(".")
        for i in range(1, min(len(parts), 4)):
            candidates.add(".".join(parts[:i]) + ".")
    for p in candidates:
        n = sum(k.startswith(p) and k[len(p):] in own for k in state)
        if n > best_n:
            best, best_n = p, n
    if not best:
        return state, ""
    return {(k[len(best):] if k.startswith(best) else k): v for k, v in state.items()}, best


def remap_by_position(state: dict, own_state: dict, skip=("num_batches_tracked",)) -> dict:
    """Rename ``state``'s tensors to ``own_state``'s names by position.

    For two implementations of one architecture that register the same tensors in the same order
    under different names (torchvision MobileNetV2 -> timm mobilenetv2_100; the efficientnet_pytorch
    EfficientNet-Lite0 -> timm efficientnet_lite0). Keys ending in ``skip`` are ignored on both
    sides. Raises unless the counts and every shape agree: a shape-consistent order is the only
    evidence the mapping is right.
    """
    src = [(k, v) for k, v in state.items() if not k.endswith(skip)]
    dst = [(k, v) for k, v in own_state.items() if not k.endswith(skip)]
    if len(src) != len(dst):
        raise ValueError(f"cannot remap by position: the file has {len(src)} tensors, the model {len(dst)}")
    out = {}
    for i, ((ks, vs), (kd, vd)) in enumerate(zip(src, dst)):
        if tuple(vs.shape) != tuple(vd.shape):
            raise ValueError(
                f"cannot remap by position: tensor {i} is {ks} {tuple(vs.shape)} in the file but "
                f"{kd} {tuple(vd.shape)} in the model (different architecture or order)"
            )
        out[kd] = vs
    return out


def _timm_filter(model):
    """timm's per-architecture checkpoint converter (resamples position embeddings for another
    img_size, converts OpenAI CLIP / original-repo layouts), or None."""
    module = sys.modules.get(type(model).__module__)
    return getattr(module, "checkpoint_filter_fn", None) if module is not None else None


def prepare_state_dict(model, state: dict, remap: str = "auto") -> tuple[dict, str]:
    """Map a checkpoint's keys onto ``model``. remap: 'auto' (strip a wrapper prefix; if no key
    matches, fall back to by-position when every shape agrees), 'position', or 'none'.
    Returns (state, how) where ``how`` describes what was done."""
    own = model.state_dict()
    if remap not in ("auto", "position", "none"):
        raise ValueError(f"remap must be 'auto', 'position' or 'none', not {remap!r}")
    if remap == "position":
        return remap_by_position(state, own), "by position"
    how = "by name"
    if remap == "auto":
        state, prefix = strip_prefix(state, own)
        if prefix:
            how = f"by name after stripping {prefix!r}"
    filt = _timm_filter(model)
    if filt is not None:
        try:
            state = filt(state, model)
        except Exception:  # the converter expects its own layout; fall back to the keys as they are
            pass
    if remap == "auto" and not any(k in own for k in state):
        try:
            return remap_by_position(state, own), "by position (no key names matched)"
        except ValueError:
            pass
    return state, how


def load_weights_file(model, path: str, strict: bool = False, remap: str = "auto") -> str:
    """Load ``path`` into ``model``; report missing/unexpected keys; return the weights' identity.

    Raises if no key matches at all (the file is for another architecture) or shapes disagree.
    Missing or unexpected keys (e.g. a self-supervised checkpoint's projection head) are reported
    in a warning; ``strict=True`` makes them an error.
    """
    path = os.fspath(path)
    raw = read_state_dict(path)
    state, how = prepare_state_dict(model, raw, remap=remap)
    own = model.state_dict()
    matched = [k for k in state if k in own]
    if not matched:
        raise ValueError(
            f"none of the {len(raw)} keys in {path} match the model "
            f"(e.g. file has {list(raw)[:3]}, model expects {list(own)[:3]}): wrong architecture? "
            "If the file names the same layers differently in the same order, use remap='position'."
        )
    bad_shapes = [k for k in matched if tuple(state[k].shape) != tuple(own[k].shape)]
    if bad_shapes:
        k = bad_shapes[0]
        raise ValueError(
            f"{len(bad_shapes)} tensors in {path} have the wrong shape, e.g. {k}: "
            f"{tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model"
        )
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    unexpected = list(result.unexpected_keys)
    if missing or unexpected:
        msg = (f"loaded {path} ({how}): {len(matched)} tensors matched, {len(missing)} missing "
               f"{missing[:5]}, {len(unexpected)} unexpected {unexpected[:5]}")
        if strict:
            raise ValueError(msg)
        warnings.warn(msg, stacklevel=2)
    return f"file:{os.path.basename(path)}:{file_digest(path)}" + (":position" if "position" in how else "")
