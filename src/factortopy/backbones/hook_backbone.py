"""Any ``nn.Module`` as a backbone: read named submodules' outputs with forward hooks.

No FX tracing: hooks work on any module, including ones with data-dependent control flow.
Token sequences are read through a :class:`~factortopy.backbones.tokens.TokenLayout`.
"""
from __future__ import annotations

import torch
from torch import nn

from factortopy.backbones.base import Backbone, BackboneInfo, unknown_layer_error
from factortopy.backbones.tokens import as_layout, split_tokens

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _StopForward(Exception):
    """Raised by the last hook: nothing after the deepest hooked layer needs to run."""


class HookBackbone(Backbone):
    """Wrap ``module``; ``layers`` are names from ``module.named_modules()``.

    input_size: (H, W) or int. mean/std: per RGB channel for [0, 1] images.
    token_layout: how to read token sequences (see :func:`~factortopy.backbones.tokens.as_layout`):
      one layout for all layers, or a dict {layer name: layout}. Maps (B, C, h, w) need none.
    forward_fn: optional ``f(module, images)`` that runs the network (default ``module(images)``),
      e.g. ``lambda m, x: m.encode_image(x)``.
    Channels and strides are measured with one probe forward of a zero image at construction.
    """

    def __init__(self, module: nn.Module, layers, input_size, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 token_layout=None, name: str | None = None, weights: str | None = None,
                 forward_fn=None, stop_early: bool = True):
        super().__init__()
        if isinstance(layers, str):
            layers = [l for l in layers.split(",") if l]
        if not layers:
            raise ValueError("HookBackbone needs layer names; see list_module_layers(module) for candidates")
        self.model = module.eval().requires_grad_(False)
        name = name or type(module).__name__
        modules = dict(module.named_modules())
        unknown = [l for l in layers if l not in modules]
        if unknown:
            valid = [n for n in modules if n]
            raise unknown_layer_error(unknown, valid[:200] + (["..."] if len(valid) > 200 else []), name)
        self.layer_names = list(layers)
        if isinstance(token_layout, dict) and token_layout and set(token_layout) <= set(self.layer_names):
            self.layouts = [as_layout(token_layout.get(l)) for l in self.layer_names]
        else:
            self.layouts = [as_layout(token_layout)] * len(self.layer_names)
        self.forward_fn = forward_fn
        self.stop_early = stop_early
        self._outputs: dict[str, object] = {}
        self._active = False
        self._handles = [modules[l].register_forward_hook(self._make_hook(l)) for l in self.layer_names]

        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        self.info = BackboneInfo(name=name, layer_names=self.layer_names, channels=[], strides=[],
                                 input_size=size, mean=tuple(mean), std=tuple(std),
                                 global_kind=[], weights=weights)
        with torch.no_grad():
            local, _ = self._run(torch.zeros(1, 3, *size, device=_device_of(module)), probe=True)
        self.info.channels = [int(m.shape[1]) for m in local]
        self.info.strides = [int(round(size[0] / m.shape[2])) for m in local]
        # a sequence layout's class token only applies to 3-D outputs; maps are average-pooled
        self.info.global_kind = [lay.global_kind if self._was_seq[i] else "avg_pool"
                                 for i, lay in enumerate(self.layouts)]

    def _make_hook(self, layer: str):
        def hook(_module, _inputs, output):
            if not self._active:  # the module is shared and run by someone else: stay out
                return
            self._outputs.setdefault(layer, output)  # a module called twice: keep its first output
            if self.stop_early and len(self._outputs) == len(self.layer_names):
                raise _StopForward  # skip the head and any block after the deepest hooked layer
        return hook

    def _run(self, images: torch.Tensor, probe: bool = False):
        self._outputs = {}
        self._active = True
        try:
            if self.forward_fn is not None:
                self.forward_fn(self.model, images)
            else:
                self.model(images)
        except _StopForward:
            pass
        finally:
            self._active = False
        missing = [l for l in self.layer_names if l not in self._outputs]
        if missing:
            raise RuntimeError(f"layers {missing} of {self.info.name} did not run in the forward pass")
        if probe:
            self._was_seq = [_is_seq(self._outputs[l]) for l in self.layer_names]
        local, global_ = [], []
        for layer, layout in zip(self.layer_names, self.layouts):
            grid, glob = split_tokens(self._outputs[layer], layout, tuple(images.shape[-2:]))
            local.append(grid)
            global_.append(glob)
        self._outputs = {}
        return local, global_

    @torch.no_grad()
    def forward(self, images: torch.Tensor):
        """Normalised images (B, 3, H, W) -> ([L maps (B, C_l, h_l, w_l)], [L tokens (B, C_l)])."""
        return self._run(images)

    def remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def _is_seq(out) -> bool:
    if isinstance(out, (tuple, list)):
        out = out[0]
    if hasattr(out, "last_hidden_state"):
        out = out.last_hidden_state
    return torch.is_tensor(out) and out.ndim == 3


def _device_of(module: nn.Module):
    p = next(iter(module.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def list_module_layers(module: nn.Module, input_size=224, leaves: bool = False, include=()) -> list[dict]:
    """Every named submodule of ``module`` with the shape it outputs for one zero image.

    Returns dicts(name, type, shape, channels, stride): channels/stride are filled for 4-D maps
    (B, C, h, w) and guessed for (B, N, C) sequences (stride None). leaves: include leaf modules
    (single convs, norms, activations), off by default to keep the list readable; ``include``
    names are listed either way.
    """
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    shapes: dict[str, tuple] = {}
    handles = []
    for name, sub in module.named_modules():
        if not name or (not leaves and not list(sub.children()) and name not in include):
            continue

        def hook(_m, _i, out, name=name):
            if isinstance(out, (tuple, list)) and out:
                out = out[0]
            if hasattr(out, "last_hidden_state"):
                out = out.last_hidden_state
            if torch.is_tensor(out):
                shapes.setdefault(name, tuple(out.shape))
        handles.append(sub.register_forward_hook(hook))
    try:
        module.eval()(torch.zeros(1, 3, *size, device=_device_of(module)))
    finally:
        for h in handles:
            h.remove()
    types = {n: type(m).__name__ for n, m in module.named_modules()}
    rows = []
    for name, shape in shapes.items():
        channels = stride = None
        if len(shape) == 4:
            channels, stride = shape[1], int(round(size[0] / shape[2]))
        elif len(shape) == 3:
            channels = shape[2]
        rows.append(dict(name=name, type=types[name], shape=shape, channels=channels, stride=stride))
    return rows
