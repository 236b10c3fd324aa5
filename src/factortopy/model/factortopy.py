"""The FactorTopy encoding model (method.md): factorised, topographic selectors + per-vertex readout."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from factortopy.model.encoding import PositionalEncoding, normalised_entropy, selector_mlp
from factortopy.model.kernel import selection_kernel


@dataclass
class Selectors:
    """Per-vertex selections. space (N, 2) in (-1, 1) (grid_sample convention), layer_probs (N, L)
    summing to 1, scale (N, 1) in (0, 1) (0 = local token, 1 = global token)."""

    space: torch.Tensor
    layer_probs: torch.Tensor
    scale: torch.Tensor


def stack_tokens(local: list[torch.Tensor], global_: list[torch.Tensor]) -> torch.Tensor:
    """Per-layer maps -> one padded token tensor, the layout the model and the feature store use.

    local: L tensors (B, C_l, H, W) on a common grid; global_: L tensors (B, C_l).
    Returns (B, L, H*W + 1, C_max): tokens row-major over the grid, the global token last, channels
    zero-padded to the widest layer (zero inputs leave the padded projection rows untouched).
    """
    if len(local) != len(global_):
        raise ValueError(f"got {len(local)} local maps but {len(global_)} global tokens")
    if not local:
        raise ValueError("no layers given")
    B, _, H, W = local[0].shape
    c_max = max(t.shape[1] for t in local)
    out = local[0].new_zeros(B, len(local), H * W + 1, c_max)
    for l, (loc, glo) in enumerate(zip(local, global_)):
        if loc.ndim != 4 or loc.shape[0] != B or loc.shape[2:] != (H, W):
            raise ValueError(
                f"layer {l}: local map has shape {tuple(loc.shape)}, expected ({B}, C, {H}, {W}); "
                "resize every layer to the same grid first"
            )
        if glo.shape != (B, loc.shape[1]):
            raise ValueError(f"layer {l}: global token has shape {tuple(glo.shape)}, expected ({B}, {loc.shape[1]})")
        c = loc.shape[1]
        out[:, l, : H * W, :c] = loc.flatten(2).transpose(1, 2)
        out[:, l, H * W, :c] = glo
    return out


class FactorTopy(nn.Module):
    """Predict every vertex's response to an image from a frozen backbone's hooked features.

    Parameters
    ----------
    coords : (N, 3) vertex coordinates (e.g. the fsaverage sphere, hemispheres side by side). Their
        bounds fix the positional encoding once and for all.
    layer_channels : channel width C_l of each of the L hooked layers (may differ per layer).
    dim : D, width of the aligned channel space (reference 128).
    grid : side of the common token grid (reference 8, i.e. 8 x 8).
    hidden : width of the selector MLPs (reference 128).

    Forward: ``model(local, global_)`` with lists of (B, C_l, grid, grid) and (B, C_l), or
    ``model.forward_tokens(tokens)`` with the stacked (B, L, grid^2 + 1, C_max) tensor of
    :func:`stack_tokens`; returns (B, N) predicted (z-scored) responses.
    """

    def __init__(self, coords, layer_channels, dim: int = 128, grid: int = 8, hidden: int = 128,
                 layer_names=None):
        super().__init__()
        coords = torch.as_tensor(coords, dtype=torch.float32)
        layer_channels = [int(c) for c in layer_channels]
        if not layer_channels or min(layer_channels) < 1:
            raise ValueError(f"layer_channels must list at least one positive width, got {layer_channels}")
        if layer_names is not None and len(layer_names) != len(layer_channels):
            raise ValueError(f"{len(layer_names)} layer names for {len(layer_channels)} layers")
        self.layer_channels = layer_channels
        self.layer_names = list(layer_names) if layer_names is not None else [f"layer{i}" for i in range(len(layer_channels))]
        self.dim, self.grid, self.hidden = int(dim), int(grid), int(hidden)
        L, c_max, N = len(layer_channels), max(layer_channels), coords.shape[0]

        self.encoding = PositionalEncoding(coords)
        self.register_buffer("coords", coords)
        # Saved so that a checkpoint can be checked against the config it is loaded with.
        self.register_buffer("layer_widths", torch.tensor(layer_channels, dtype=torch.int64))
        # Channel alignment: per layer a bias-free C_l -> D map, stored padded to C_max so that all
        # layers project in one batched matmul. Rows >= C_l stay zero: their inputs are zero.
        bound = [1.0 / c**0.5 for c in layer_channels]
        local_w = torch.zeros(L, c_max, self.dim)
        global_w = torch.zeros(L, c_max, self.dim)
        for l, c in enumerate(layer_channels):  # nn.Linear's default init, per layer
            local_w[l, :c].uniform_(-bound[l], bound[l])
            global_w[l, :c].uniform_(-bound[l], bound[l])
        self.local_proj = nn.Parameter(local_w)
        self.global_proj = nn.Parameter(global_w)
        # A fixed per-layer input scale (1 by default; fit() sets 1 / RMS of each layer's training
        # tokens). Only a reparametrisation of the bias-free projections: it balances layers whose
        # activations differ by orders of magnitude so that one learning rate suits them all.
        self.register_buffer("token_scale", torch.ones(L))

        f = self.encoding.out_features
        self.space_mlp = selector_mlp(f, 2, hidden)
        self.layer_mlp = selector_mlp(f, L, hidden)
        self.scale_mlp = selector_mlp(f, 1, hidden)
        # Per-vertex readout; unit-variance weights so that predictions start at the scale of the
        # aligned features, bias zero (responses are z-scored).
        self.readout_weight = nn.Parameter(torch.randn(N, self.dim))
        self.readout_bias = nn.Parameter(torch.zeros(N))

    # ------------------------------------------------------------------ config
    @property
    def n_vertices(self) -> int:
        return self.coords.shape[0]

    @property
    def n_layers(self) -> int:
        return len(self.layer_channels)

    def config(self) -> dict:
        """Constructor arguments other than the coordinates (which live in the state dict)."""
        return dict(layer_channels=self.layer_channels, dim=self.dim, grid=self.grid,
                    hidden=self.hidden, layer_names=self.layer_names, n_vertices=self.n_vertices)

    @classmethod
    def from_state_dict(cls, state: dict, config: dict) -> "FactorTopy":
        """Rebuild from a saved state dict and :meth:`config`; checks that they belong together."""
        coords = state.get("coords")
        if coords is None:
            raise ValueError("checkpoint has no 'coords': not a FactorTopy state dict")
        cfg = {k: v for k, v in config.items() if k != "n_vertices"}
        model = cls(coords, **cfg)
        widths = state.get("layer_widths")
        if widths is not None and widths.tolist() != model.layer_channels:
            raise ValueError(
                f"checkpoint does not match the config: its layer widths are {widths.tolist()}, "
                f"the config says {model.layer_channels}"
            )
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as err:  # size mismatches
            raise ValueError(f"checkpoint does not match the config: {err}") from None
        if missing or unexpected:
            raise ValueError(f"checkpoint does not match the config: missing {missing}, unexpected {unexpected}")
        return model

    # ------------------------------------------------------------------ selectors
    def selectors(self, index: torch.Tensor | None = None) -> Selectors:
        """Selectors of all vertices, or of ``index`` (a LongTensor of vertex rows)."""
        coords = self.coords if index is None else self.coords[index]
        e = self.encoding(coords)
        space = torch.tanh(self.space_mlp(e))
        layer_probs = torch.softmax(self.layer_mlp(e), dim=-1)
        scale = torch.sigmoid(self.scale_mlp(e))
        return Selectors(space, layer_probs, scale)

    def regularizer(self, selectors: Selectors | None = None) -> torch.Tensor:
        """(sum_l p log p) / log L averaged over vertices + mean (s - 0.5)^2.

        Minimising it raises layer entropy and pulls scale to 0.5: it keeps the selectors soft while
        the readout warms up (the fit fades its weight to zero). Not a sparsity penalty.
        """
        sel = self.selectors() if selectors is None else selectors
        neg_entropy = -normalised_entropy(sel.layer_probs).mean()
        return neg_entropy + ((sel.scale - 0.5) ** 2).mean()

    def kernel(self, selectors: Selectors | None = None) -> torch.Tensor:
        """The per-vertex selection kernel (N, L, grid^2 + 1); see :mod:`factortopy.model.kernel`."""
        sel = self.selectors() if selectors is None else selectors
        return selection_kernel(sel.space, sel.layer_probs, sel.scale, self.grid, self.grid)

    # ------------------------------------------------------------------ forward
    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L, T, C_max) stacked tokens -> (B, L, T, D): local tokens through each layer's local
        map, the last (global) token through its global map; one batched matmul each."""
        n_cells = self.grid * self.grid
        if tokens.ndim != 4 or tokens.shape[1:] != (self.n_layers, n_cells + 1, self.local_proj.shape[1]):
            raise ValueError(
                f"tokens have shape {tuple(tokens.shape)}, expected (B, {self.n_layers}, {n_cells + 1}, "
                f"{self.local_proj.shape[1]}) (use stack_tokens on {self.grid}x{self.grid} maps)"
            )
        if not torch.is_autocast_enabled(tokens.device.type):
            tokens = tokens.to(self.local_proj.dtype)
        scale = self.token_scale.to(tokens.dtype)[:, None]  # (L, 1): folded into the weights
        local = torch.einsum("bltc,lcd->bltd", tokens[:, :, :n_cells], self.local_proj * scale[:, :, None])
        glob = torch.einsum("blc,lcd->bld", tokens[:, :, n_cells], self.global_proj * scale[:, :, None])
        return torch.cat([local, glob[:, :, None]], dim=2)

    def forward_tokens(self, tokens: torch.Tensor, index: torch.Tensor | None = None,
                       selectors: Selectors | None = None) -> torch.Tensor:
        """Stacked tokens (B, L, grid^2 + 1, C_max) -> predictions (B, N) (or (B, len(index)))."""
        if selectors is None:
            selectors = self.selectors(index)
        K = selection_kernel(selectors.space, selectors.layer_probs, selectors.scale, self.grid, self.grid)
        X = self.project(tokens)  # (B, L, T, D)
        B = X.shape[0]
        # v = K X: one GEMM over all (layer, token) pairs; then the per-vertex readout (mean over D).
        V = torch.matmul(K.reshape(K.shape[0], -1).to(X.dtype), X.reshape(B, -1, self.dim))  # (B, N, D)
        w = self.readout_weight if index is None else self.readout_weight[index]
        b = self.readout_bias if index is None else self.readout_bias[index]
        return (V * w.to(V.dtype)).mean(-1) + b.to(V.dtype)

    def forward(self, local: list[torch.Tensor], global_: list[torch.Tensor],
                index: torch.Tensor | None = None) -> torch.Tensor:
        """local: L maps (B, C_l, grid, grid); global_: L tokens (B, C_l) -> (B, N)."""
        if len(local) != self.n_layers:
            raise ValueError(f"model has {self.n_layers} layers but {len(local)} maps were given")
        for l, t in enumerate(local):
            if t.shape[1] != self.layer_channels[l] or t.shape[2:] != (self.grid, self.grid):
                raise ValueError(
                    f"layer {l} ({self.layer_names[l]}): map has shape {tuple(t.shape)}, expected "
                    f"(B, {self.layer_channels[l]}, {self.grid}, {self.grid})"
                )
        return self.forward_tokens(stack_tokens(local, global_), index)
