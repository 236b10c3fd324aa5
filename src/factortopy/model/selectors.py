"""The per-vertex selectors, described once (method.md, "Selectors from coordinates").

Each row of :data:`SELECTORS` is one smooth function of a vertex's coordinates: an MLP on the
positional encoding (:func:`factortopy.model.encoding.selector_mlp`, zero-initialised last layer)
followed by an activation. A row carries everything the rest of the package needs to know about
its selector, and every consumer iterates the table:

- the model builds one MLP per row and :meth:`FactorTopy.selectors` fills one :class:`Selectors`
  field per row;
- the regulariser sums the rows' ``prior`` terms (:meth:`FactorTopy.regularizer`);
- the kernel receives each row as the :func:`~factortopy.model.kernel.selection_kernel` keyword
  its ``kernel_arg`` names (:meth:`FactorTopy.kernel`);
- :func:`selector_arrays` saves one array per row in ``selectors.npz`` under its ``key``
  (docs/run-dir.md), :class:`~factortopy.runs.maps.Maps` reads them back;
- ``factortopy paint --what`` offers one map per row named ``map_kind`` (``factortopy.viz.kinds``:
  a dedicated painter where viz has one, else a value map of the key);
- the estimator exposes each as ``<key>_`` (``layer_probs_``, ``space_xy_``, ``scale_``, ``rf_size_``).

Adding a selector is adding a row here and reading its keyword in the kernel (docs/architecture.md,
"A selector").

| name  | field       | width | activation     | key           | prior (regulariser term)         | kernel reads it as | map      |
|-------|-------------|-------|----------------|---------------|----------------------------------|--------------------|----------|
| space | space       | 2     | tanh           | `space_xy`    | none                             | `xy`               | space    |
| layer | layer_probs | L     | softmax        | `layer_probs` | - mean normalised entropy        | `layer_probs`      | layer    |
| scale | scale       | 1     | sigmoid        | `scale`       | mean (s - 0.5)^2                 | `scale`            | scale    |
| rf    | rf_size     | 1     | RF_MAX sigmoid | `rf_size`     | mean (rf_size / RF_MAX - 0.5)^2  | `size`             | rf-size  |

A width-1 selector is (N, 1) in :class:`Selectors` and saved as (N,). The row order is the order in
which the MLPs are built, so it fixes the random initialisation: append new rows at the end; the
regulariser adds the priors in row order. An optional row has ``active(model)``, whether a model uses
it: an inactive row has no MLP (so checkpoints of models without it load unchanged), reads as zeros
(a point model's receptive field has size 0) and adds no prior; an active one draws its
initialisation from a side stream of the random generator, so that every other parameter starts
exactly as in the model without it (a fair comparison).
"""
from __future__ import annotations

from dataclasses import dataclass, make_dataclass
from typing import Callable

import numpy as np

# No torch at import: the table is read by code that never runs a model (the map kinds behind
# `factortopy paint` and `--help`); activations and priors use tensor methods or import on call.

#: the largest receptive-field sigma, in image widths: rf_size = RF_MAX * sigmoid(z). At 0.5 the
#: aperture's +-1 sigma spans the whole image: beyond that a pool is the global token's job.
RF_MAX = 0.5


@dataclass(frozen=True)
class SelectorSpec:
    """One selector. ``width`` is an int or ``"L"`` (the model's number of layers).

    prior: the row's regulariser term, ``(N, width) selector -> scalar`` (a mean over vertices),
    or None; the regulariser keeps selectors soft while the readout warms up (method.md).
    kernel_arg: the keyword of :func:`~factortopy.model.kernel.selection_kernel` that receives it.
    map_kind: the name of its map (``factortopy paint --what``), None for no map.
    """

    name: str
    field: str  # attribute of Selectors
    width: int | str
    activation: Callable[[torch.Tensor], torch.Tensor]
    key: str  # array name in selectors.npz, Maps key, estimator attribute key + "_"
    description: str  # range and unit, for legends and docs
    kernel_arg: str
    prior: Callable[[torch.Tensor], torch.Tensor] | None = None
    map_kind: str | None = None
    active: Callable[[object], bool] | None = None  # optional rows: does this FactorTopy use it? None: always

    def used_by(self, model) -> bool:
        return self.active is None or bool(self.active(model))

    @property
    def module(self) -> str:
        """Attribute name of the selector's MLP on the model (also its state-dict prefix)."""
        return f"{self.name}_mlp"

    def out_features(self, n_layers: int) -> int:
        return n_layers if self.width == "L" else int(self.width)


def _sized(receptive_field: str) -> bool:
    from factortopy.model.kernel import receptive_field as kind

    return kind(receptive_field).sized


def _soft_layers(layer_probs: torch.Tensor) -> torch.Tensor:
    # minimising - mean normalised entropy raises the layer distributions' entropy
    from factortopy.model.encoding import normalised_entropy

    return -normalised_entropy(layer_probs).mean()


def _middle(scale: torch.Tensor) -> torch.Tensor:
    return ((scale - 0.5) ** 2).mean()


def _middle_size(rf_size: torch.Tensor) -> torch.Tensor:
    # sigma = RF_MAX sigmoid(z) has d sigma / dz -> 0 as sigma -> 0: a size pushed to 0 while the
    # readout is still random never comes back (docs/method.md, "Receptive fields of every size")
    return ((rf_size / RF_MAX - 0.5) ** 2).mean()


SELECTORS: tuple[SelectorSpec, ...] = (
    SelectorSpec("space", "space", 2, lambda z: z.tanh(), "space_xy",
                 "(x, y) in (-1, 1), grid_sample convention (x left->right, y top->bottom); "
                 "-1 and 1 are the image's outer edges", kernel_arg="xy", map_kind="space"),
    SelectorSpec("layer", "layer_probs", "L", lambda z: z.softmax(dim=-1), "layer_probs",
                 "probability of each hooked layer (rows sum to 1)", kernel_arg="layer_probs",
                 prior=_soft_layers, map_kind="layer"),
    SelectorSpec("scale", "scale", 1, lambda z: z.sigmoid(), "scale",
                 "in (0, 1): 0 = the local token at (x, y), 1 = the global token", kernel_arg="scale",
                 prior=_middle, map_kind="scale"),
    # Zero init: sigma = RF_MAX / 2 at the start, a coarse-to-fine start for the space selector.
    SelectorSpec("rf", "rf_size", 1, lambda z: RF_MAX * z.sigmoid(), "rf_size",
                 f"receptive-field sigma in image widths, in (0, {RF_MAX}) (x grid = grid cells); "
                 "0 = a point (the bilinear sample)", kernel_arg="size", prior=_middle_size, map_kind="rf-size",
                 active=lambda model: _sized(model.receptive_field)),
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
    import torch

    with torch.no_grad():
        sel = model.selectors()
        arrays = dict(vertex=np.asarray(vertex, dtype=np.int64), hemi=np.asarray(hemi).astype("<U2"),
                      layer_names=np.asarray(model.layer_names))
        for spec in SELECTORS:  # one array per row, under its key
            value = getattr(sel, spec.field).float().cpu().numpy()
            arrays[spec.key] = value[:, 0] if spec.width == 1 else value
        arrays["readout"] = model.readout_weight.detach().float().cpu().numpy()
    n = model.n_vertices
    if arrays["vertex"].shape != (n,) or arrays["hemi"].shape != (n,):
        raise ValueError(f"vertex {arrays['vertex'].shape} and hemi {arrays['hemi'].shape} must both have shape "
                         f"({n},), one entry per model vertex in the model's order")
    return arrays
