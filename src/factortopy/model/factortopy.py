"""The FactorTopy encoding model (method.md): factorised, topographic selectors + per-vertex readout."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from factortopy.model import selectors as _rows  # the selector table, read at use (model/selectors.py)
from factortopy.model.encoding import PositionalEncoding, encoding_scheme, selector_mlp
from factortopy.model.kernel import receptive_field as _receptive_field
from factortopy.model.kernel import selection_kernel
from factortopy.model.selectors import Selectors

__all__ = ["FactorTopy", "READOUT_INITS", "Selectors", "stack_tokens"]


def _normal_readout(weight: torch.Tensor, bias: torch.Tensor) -> None:
    # Unit-variance weights: predictions start at the scale of the aligned features; bias zero
    # (responses are z-scored).
    weight.normal_()
    bias.zero_()


def _uniform_readout(weight: torch.Tensor, bias: torch.Tensor) -> None:
    bound = 1.0 / weight.shape[1] ** 0.5  # nn.Linear(D, 1)'s default, per vertex
    weight.uniform_(-bound, bound)
    bias.uniform_(-bound, bound)


# readout_init setting -> in-place init of (readout_weight (N, D), readout_bias (N,)).
READOUT_INITS: dict[str, Callable[[torch.Tensor, torch.Tensor], None]] = {
    "normal": _normal_readout,  # ours
    "uniform": _uniform_readout,  # the reference code's (nn.Linear): U(-1/sqrt(D), 1/sqrt(D)), bias too
}


def _full_precision(device: torch.device):
    """A region where autocast is off: the small, position-critical computations stay in the
    parameters' dtype (float32) while the big GEMM outside runs in the autocast dtype."""
    return torch.autocast(device.type, enabled=False)


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
    layer_names : L names (default ``layer0`` ...).
    readout_init : ``"normal"`` (ours: standard normal weights, zero bias) or ``"uniform"`` (the
        reference code: weights and bias U(-1/sqrt(D), 1/sqrt(D)), like nn.Linear).
    token_scale : True (ours): :meth:`calibrate_token_scale` sets a fixed per-layer input scale of
        1 / RMS; False (reference): no scale (the ``token_scale`` buffer stays all ones).
    positional_encoding : ``"ours"`` or ``"reference"`` (see :mod:`factortopy.model.encoding`).
    receptive_field : ``"point"`` (the paper's model: a bilinear sample at (x, y)) or ``"gaussian"``
        (a Gaussian pool of learned per-vertex size, the ``rf`` selector; size 0 is the point), see
        :data:`factortopy.model.kernel.RECEPTIVE_FIELDS`.

    Precision: under autocast the positional encoding, the selector MLPs and the selection kernel
    are computed in the parameters' dtype (float32); only the channel projections and the big
    kernel GEMM run in the autocast dtype. In bf16 the sampling position would be off by up to
    ~0.02 of a grid cell and the sampled values by ~2 %.

    Forward: ``model(local, global_)`` with lists of (B, C_l, grid, grid) and (B, C_l), or
    ``model.forward_tokens(tokens)`` with the stacked (B, L, grid^2 + 1, C_max) tensor of
    :func:`stack_tokens`; returns (B, N) predicted (z-scored) responses.
    """

    def __init__(self, coords, layer_channels, dim: int = 128, grid: int = 8, hidden: int = 128,
                 layer_names=None, readout_init: str = "normal", token_scale: bool = True,
                 positional_encoding: str = "ours", receptive_field: str = "point"):
        super().__init__()
        if readout_init not in READOUT_INITS:
            raise ValueError(f"unknown readout_init {readout_init!r}; choose one of {sorted(READOUT_INITS)}")
        if not isinstance(token_scale, bool):
            raise ValueError(f"token_scale must be True or False, got {token_scale!r}")
        encoding_scheme(positional_encoding)  # a clear error for an unknown name
        _receptive_field(receptive_field)  # likewise
        self.receptive_field = receptive_field
        self.readout_init, self.token_scale_enabled = readout_init, token_scale
        self.positional_encoding = positional_encoding
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

        self.encoding = PositionalEncoding(coords, scheme=positional_encoding)
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
        # A fixed per-layer input scale (ones until calibrate_token_scale sets 1 / RMS of each
        # layer's training tokens). Only a reparametrisation of the bias-free projections: it
        # balances layers whose activations differ by orders of magnitude so that one learning
        # rate suits them all. Always present (ones with token_scale=False): uniform state dicts.
        self.register_buffer("token_scale", torch.ones(L))

        f = self.encoding.out_features
        for i, spec in enumerate(_rows.SELECTORS):  # in table order: it fixes the random init
            if spec.active is None:
                self.add_module(spec.module, selector_mlp(f, spec.out_features(L), hidden))
            elif spec.used_by(self):  # an optional row leaves the main stream as without it
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed((torch.initial_seed() + 1 + i) % 2**63)
                    self.add_module(spec.module, selector_mlp(f, spec.out_features(L), hidden))
        self.readout_weight = nn.Parameter(torch.empty(N, self.dim))
        self.readout_bias = nn.Parameter(torch.empty(N))
        with torch.no_grad():
            READOUT_INITS[readout_init](self.readout_weight, self.readout_bias)

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
                    hidden=self.hidden, layer_names=self.layer_names, readout_init=self.readout_init,
                    token_scale=self.token_scale_enabled, positional_encoding=self.positional_encoding,
                    receptive_field=self.receptive_field, n_vertices=self.n_vertices)

    @torch.no_grad()
    def calibrate_token_scale(self, tokens: torch.Tensor) -> torch.Tensor:
        """Set the per-layer input scale from sample tokens (n, L, grid^2 + 1, C_max) (stacked as
        :func:`stack_tokens`): 1 / RMS of each layer's real (unpadded) channels over all tokens,
        or all ones when the model was built with ``token_scale=False``. Returns the (L,) scale."""
        if tokens.ndim != 4 or tokens.shape[1] != self.n_layers:
            raise ValueError(f"tokens have shape {tuple(tokens.shape)}, expected (n, {self.n_layers}, T, C_max)")
        if self.token_scale_enabled:
            sample = tokens.float()
            rms = torch.stack([sample[:, l, :, :c].pow(2).mean().sqrt().clamp_min(1e-6)
                               for l, c in enumerate(self.layer_channels)])
            self.token_scale.copy_(1.0 / rms)
        else:
            self.token_scale.fill_(1.0)
        return self.token_scale

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
        expected = encoding_scheme(model.positional_encoding).frequencies(model.encoding.frequencies.numel())
        if not torch.allclose(model.encoding.frequencies.double(), expected, rtol=1e-6, atol=0):
            raise ValueError("checkpoint does not match the config: its positional-encoding frequencies are not "
                             f"those of positional_encoding={model.positional_encoding!r}; fix the config's "
                             "positional_encoding")
        if not model.token_scale_enabled and not torch.all(model.token_scale == 1):
            raise ValueError("checkpoint does not match the config: token_scale=False but the checkpoint's "
                             f"token_scale is {model.token_scale.tolist()}, not all ones; fix the config's token_scale")
        return model

    # ------------------------------------------------------------------ selectors
    def selectors(self, index: torch.Tensor | None = None, encoding: torch.Tensor | None = None) -> Selectors:
        """Selectors of all vertices, or of ``index`` (a LongTensor of vertex rows); one field per
        row of :data:`factortopy.model.selectors.SELECTORS`. ``encoding``: the positional encoding
        of those vertices (N, 192) if already computed (it depends on buffers only). Computed in
        the parameters' dtype even inside an autocast region."""
        coords = self.coords if index is None else self.coords[index]
        with _full_precision(coords.device):
            e = self.encoding(coords) if encoding is None else encoding
            out = {}
            for spec in _rows.SELECTORS:
                if not spec.used_by(self):  # e.g. a point's receptive-field size: exactly 0
                    out[spec.field] = e.new_zeros(e.shape[0], spec.out_features(self.n_layers))
                    continue
                mlp = getattr(self, spec.module)
                out[spec.field] = spec.activation(mlp(e.to(mlp[0].weight.dtype)))
        return _rows.Selectors(**out)

    def regularizer(self, selectors: Selectors | None = None) -> torch.Tensor:
        """The sum of the selector rows' priors, in row order (``prior`` in
        :data:`factortopy.model.selectors.SELECTORS`; inactive rows add nothing): today
        - mean normalised layer entropy + mean (s - 0.5)^2 [+ mean (rf_size / RF_MAX - 0.5)^2 for a
        sized receptive field].

        Minimising it raises layer entropy and pulls scale (and the receptive-field size) to the
        middle of its range: it keeps the selectors soft while the readout warms up (the fit fades its
        weight to zero). Not a sparsity penalty.
        """
        sel = self.selectors() if selectors is None else selectors
        reg = None
        for spec in _rows.SELECTORS:
            if spec.prior is None or not spec.used_by(self):
                continue
            term = spec.prior(getattr(sel, spec.field))
            reg = term if reg is None else reg + term
        return reg if reg is not None else self.readout_bias.new_zeros(())

    def kernel(self, selectors: Selectors | None = None) -> torch.Tensor:
        """The per-vertex selection kernel (N, L, grid^2 + 1); see :mod:`factortopy.model.kernel`.
        Each selector row reaches :func:`~factortopy.model.kernel.selection_kernel` as the keyword
        its ``kernel_arg`` names."""
        sel = self.selectors() if selectors is None else selectors
        # Never below float32: a bf16 position is off by up to ~0.02 of a cell.
        dtype = torch.promote_types(self.local_proj.dtype, torch.float32)
        with _full_precision(sel.space.device):
            rows = {spec.kernel_arg: getattr(sel, spec.field).to(dtype) for spec in _rows.SELECTORS}
            return selection_kernel(height=self.grid, width=self.grid, kind=self.receptive_field, **rows)

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
        # (L, 1), folded into the weights in their dtype: 1 / RMS of a quiet layer may exceed fp16's range
        scale = self.token_scale.to(self.local_proj.dtype)[:, None]
        local = torch.einsum("bltc,lcd->bltd", tokens[:, :, :n_cells], self.local_proj * scale[:, :, None])
        glob = torch.einsum("blc,lcd->bld", tokens[:, :, n_cells], self.global_proj * scale[:, :, None])
        return torch.cat([local, glob[:, :, None]], dim=2)

    def read(self, projected: torch.Tensor, selectors: Selectors) -> torch.Tensor:
        """What each vertex reads before its readout: projected tokens (B, L, T, D) (:meth:`project`)
        -> (B, N', D) for the N' vertices of ``selectors``. v = K X: one GEMM over all (layer, token)
        pairs, the only place the float32 kernel meets the tokens' (autocast) dtype."""
        K = self.kernel(selectors)  # (N', L, T) float32
        return torch.matmul(K.reshape(K.shape[0], -1).to(projected.dtype),
                            projected.reshape(projected.shape[0], -1, self.dim))

    def forward_tokens(self, tokens: torch.Tensor, index: torch.Tensor | None = None,
                       selectors: Selectors | None = None) -> torch.Tensor:
        """Stacked tokens (B, L, grid^2 + 1, C_max) -> predictions (B, N) (or (B, len(index)))."""
        if selectors is None:
            selectors = self.selectors(index)
        # what each vertex reads (in the autocast dtype under autocast), then its readout (mean over D)
        V = self.read(self.project(tokens), selectors)  # (B, N, D)
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
