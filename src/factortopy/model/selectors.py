"""The per-vertex selectors, described once (method.md, "Selectors from coordinates").

Each row of :data:`SELECTORS` is one smooth function of a vertex's coordinates: an MLP on the
positional encoding (:func:`factortopy.model.encoding.selector_mlp`, zero-initialised last layer)
followed by an activation. The model builds its MLPs from this table, :class:`Selectors` has one
field per row, and :func:`selector_arrays` saves one array per row in ``selectors.npz``
(docs/run-dir.md). Adding a selector is adding a row (and using it in the kernel).

| name  | module      | field       | width | activation | saved key     | meaning |
|-------|-------------|-------------|-------|------------|---------------|---------|
| space | space_mlp   | space       | 2     | tanh       | `space_xy`    | (x, y) in (-1, 1), grid_sample convention |
| layer | layer_mlp   | layer_probs | L     | softmax    | `layer_probs` | distribution over the L layers |
| scale | scale_mlp   | scale       | 1     | sigmoid    | `scale`       | in (0, 1): 0 = local token, 1 = global |
| rf    | rf_mlp      | rf_size     | 1     | RF_MAX sigmoid | `rf_size` | receptive-field sigma in image widths (0 = a point) |

A width-1 selector is (N, 1) in :class:`Selectors` and saved as (N,). The row order is the order in
which the MLPs are built, so it fixes the random initialisation: append new rows at the end.
An optional row has ``active(model)``, whether a model uses it: an inactive row has no MLP (so
checkpoints of models without it load unchanged) and reads as zeros (a point model's receptive field
has size 0); an active one draws its initialisation from a side stream of the random generator, so
that every other parameter starts exactly as in the model without it (a fair comparison).
"""
from __future__ import annotations

from dataclasses import dataclass, make_dataclass
from typing import Callable

import numpy as np
import torch

from factortopy.model.kernel import RF_MAX, receptive_field


@dataclass(frozen=True)
class SelectorSpec:
    """One selector. ``width`` is an int or ``"L"`` (the model's number of layers)."""

    name: str
    field: str  # attribute of Selectors
    width: int | str
    activation: Callable[[torch.Tensor], torch.Tensor]
    key: str  # array name in selectors.npz
    description: str  # range and unit, for legends and docs
    active: Callable[[object], bool] | None = None  # optional rows: does this FactorTopy use it? None: always

    def used_by(self, model) -> bool:
        return self.active is None or bool(self.active(model))

    @property
    def module(self) -> str:
        """Attribute name of the selector's MLP on the model (also its state-dict prefix)."""
        return f"{self.name}_mlp"

    def out_features(self, n_layers: int) -> int:
        return n_layers if self.width == "L" else int(self.width)


SELECTORS: tuple[SelectorSpec, ...] = (
    SelectorSpec("space", "space", 2, torch.tanh, "space_xy",
                 "(x, y) in (-1, 1), grid_sample convention (x left->right, y top->bottom); "
                 "-1 and 1 are the image's outer edges"),
    SelectorSpec("layer", "layer_probs", "L", lambda z: torch.softmax(z, dim=-1), "layer_probs",
                 "probability of each hooked layer (rows sum to 1)"),
    SelectorSpec("scale", "scale", 1, torch.sigmoid, "scale",
                 "in (0, 1): 0 = the local token at (x, y), 1 = the global token"),
    # Zero init: sigma = RF_MAX / 2 at the start, a coarse-to-fine start for the space selector.
    SelectorSpec("rf", "rf_size", 1, lambda z: RF_MAX * torch.sigmoid(z), "rf_size",
                 f"receptive-field sigma in image widths, in (0, {RF_MAX}) (x grid = grid cells); "
                 "0 = a point (the bilinear sample)",
                 active=lambda model: receptive_field(model.receptive_field).sized),
)

Selectors = make_dataclass("Selectors", [(s.field, "torch.Tensor") for s in SELECTORS])
Selectors.__module__ = __name__
Selectors.__doc__ = ("Per-vertex selections, one (N, width) tensor per row of SELECTORS: " + "; ".join(
    f"{s.field} (N, {s.width}): {s.description}" for s in SELECTORS) + ".")


def selector_arrays(model, vertex, hemi) -> dict:
    """The per-vertex arrays of selectors.npz (docs/run-dir.md) for a FactorTopy ``model``.

    vertex (N,) fsaverage indices and hemi (N,) ``'lh'``/``'rh'`` in the model's vertex order.
    Returns vertex (N,) int64, hemi (N,) <U2, layer_names (L,), one float32 array per selector
    (width-1 selectors squeezed to (N,)), readout (N, D) float32.
    """
    with torch.no_grad():
        sel = model.selectors()
        arrays = dict(vertex=np.asarray(vertex, dtype=np.int64), hemi=np.asarray(hemi).astype("<U2"),
                      layer_names=np.asarray(model.layer_names))
        for spec in SELECTORS:
            value = getattr(sel, spec.field).float().cpu().numpy()
            arrays[spec.key] = value[:, 0] if spec.width == 1 else value
        arrays["readout"] = model.readout_weight.detach().float().cpu().numpy()
    n = model.n_vertices
    if arrays["vertex"].shape != (n,) or arrays["hemi"].shape != (n,):
        raise ValueError(f"vertex {arrays['vertex'].shape} and hemi {arrays['hemi'].shape} must both have shape "
                         f"({n},), one entry per model vertex in the model's order")
    return arrays
