"""FactorTopy against a slow, obvious per-layer grid_sample implementation of method.md."""
import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from factortopy.model.encoding import PositionalEncoding
from factortopy.model.factortopy import FactorTopy, stack_tokens
from factortopy.model.kernel import tent_weights
from factortopy.model.selectors import SELECTORS, Selectors, selector_arrays


def reference_forward(model, local, global_, sel):
    """The reference formulation, written out: project each layer, grid_sample each layer at the
    vertex's (x, y), mix local/global by scale and layers by p, read out with the mean over D."""
    B = local[0].shape[0]
    N = sel.space.shape[0]
    grid = sel.space.view(1, N, 1, 2).expand(B, N, 1, 2)
    v = 0
    for l, (loc, glo) in enumerate(zip(local, global_)):
        c = loc.shape[1]
        w_loc = model.local_proj[l, :c]  # (C_l, D)
        w_glo = model.global_proj[l, :c]
        proj = torch.einsum("bchw,cd->bdhw", loc, w_loc)  # 1x1 conv
        sampled = F.grid_sample(proj, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        sampled = sampled[..., 0].permute(0, 2, 1)  # (B, N, D)
        g = (glo @ w_glo)[:, None, :]  # (B, 1, D)
        p = sel.layer_probs[:, l][None, :, None]
        s = sel.scale[None, :, :]
        v = v + p * ((1 - s) * sampled + s * g)
    return (model.readout_weight[None] * v).mean(-1) + model.readout_bias[None]


def randomise_selectors(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mlp in (model.space_mlp, model.layer_mlp, model.scale_mlp):
            last = mlp[-1]
            last.weight.copy_(torch.randn(last.weight.shape, generator=g) * 0.5)


def make_inputs(channels, B=3, grid=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    local = [torch.randn(B, c, grid, grid, generator=g) for c in channels]
    global_ = [torch.randn(B, c, generator=g) for c in channels]
    return local, global_


@pytest.fixture
def model():
    torch.manual_seed(0)
    coords = torch.randn(50, 3) * 40
    m = FactorTopy(coords, layer_channels=[5, 12, 7], dim=16, grid=8, hidden=32).double()
    randomise_selectors(m)
    return m


def test_forward_matches_grid_sample_reference(model):
    local, global_ = make_inputs([5, 12, 7])
    local = [t.double() for t in local]
    global_ = [t.double() for t in global_]
    fast = model(local, global_)
    sel = model.selectors()
    slow = reference_forward(model, local, global_, sel)
    assert fast.shape == (3, 50)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    # The selectors were randomised: the space selector reaches near the borders (zero padding).
    assert sel.space.abs().max() > 0.5


def test_gradients_match_reference_including_space(model):
    local, global_ = make_inputs([5, 12, 7])
    local = [t.double() for t in local]
    global_ = [t.double() for t in global_]
    target = torch.randn(3, 50, dtype=torch.float64)

    def grads(fn):
        model.zero_grad()
        sel = model.selectors()
        sel.space.retain_grad()
        pred = fn(sel)
        ((pred - target) ** 2).mean().backward()
        return sel.space.grad.clone(), {n: p.grad.clone() for n, p in model.named_parameters()}

    g_fast_space, g_fast = grads(lambda sel: model.forward_tokens(stack_tokens(local, global_), selectors=sel))
    g_slow_space, g_slow = grads(lambda sel: reference_forward(model, local, global_, sel))
    torch.testing.assert_close(g_fast_space, g_slow_space, rtol=1e-5, atol=1e-5)
    assert g_fast_space.abs().max() > 0  # a real gradient reaches the space selector
    for name in g_fast:
        torch.testing.assert_close(g_fast[name], g_slow[name], rtol=1e-5, atol=1e-5, msg=name)


def test_tent_weights_equal_grid_sample_of_one_hot_maps():
    # Sampling an indicator map of cell (i, j) gives exactly that cell's tent weight.
    H, W = 4, 6
    xy = torch.tensor([[-1.0, -1.0], [0.9, -0.3], [0.0, 0.0], [1.0, 1.0], [-0.99, 0.51]], dtype=torch.float64)
    eye = torch.eye(H * W, dtype=torch.float64).view(1, H * W, H, W)
    sampled = F.grid_sample(eye, xy.view(1, -1, 1, 2), align_corners=False)[0, :, :, 0].T
    torch.testing.assert_close(tent_weights(xy, H, W), sampled)


def test_zero_init_reads_centre_uniform_layers_half_scale():
    m = FactorTopy(torch.randn(20, 3), layer_channels=[4, 4, 8, 2], dim=8)
    sel = m.selectors()
    assert torch.equal(sel.space, torch.zeros(20, 2))
    torch.testing.assert_close(sel.layer_probs, torch.full((20, 4), 0.25))
    torch.testing.assert_close(sel.scale, torch.full((20, 1), 0.5))
    # Uniform layers and scale 0.5 are the regulariser's minimum: -1 (max entropy) + 0.
    assert m.regularizer().item() == pytest.approx(-1.0, abs=1e-6)


def test_regularizer_by_hand(model):
    with torch.no_grad():
        sel = model.selectors()
    p, s = sel.layer_probs, sel.scale
    by_hand = sum(
        sum(float(p[v, l]) * math.log(float(p[v, l])) for l in range(3)) / math.log(3) for v in range(50)
    ) / 50 + float(((s - 0.5) ** 2).mean())
    assert model.regularizer().item() == pytest.approx(by_hand, rel=1e-9)


def test_encoding_is_frozen_at_construction_and_unchanged_on_subsets():
    torch.manual_seed(0)
    coords = torch.randn(100, 3) * torch.tensor([10.0, 50.0, 5.0])
    enc = PositionalEncoding(coords)
    full = enc(coords)
    assert full.shape == (100, 192)
    idx = torch.tensor([3, 17, 99, 0])
    torch.testing.assert_close(enc(coords[idx]), full[idx])
    # Longest axis spans 100 units after rescaling; bounds come from the construction set only.
    span = (coords - enc.offset) * enc.scale
    assert float(span.max(0).values.max()) == pytest.approx(100.0, rel=1e-5)
    assert float(span.min()) == pytest.approx(0.0, abs=1e-5)
    # By hand: first axis, first two frequencies (1 and 1000^(-1/31)).
    x0 = float((coords[5, 0] - enc.offset[0]) * enc.scale)
    f1 = 1000 ** (-1 / 31)
    assert float(full[5, 0]) == pytest.approx(math.sin(x0), abs=1e-5)
    assert float(full[5, 1]) == pytest.approx(math.sin(x0 * f1), abs=1e-5)
    assert float(full[5, 32]) == pytest.approx(math.cos(x0), abs=1e-5)
    # The model's selectors on a subset equal the rows of the full set.
    m = FactorTopy(coords, layer_channels=[3, 3], dim=4)
    randomise_selectors(m)
    torch.testing.assert_close(m.selectors(idx).layer_probs, m.selectors().layer_probs[idx])


def test_state_dict_roundtrip_keeps_encoding_bounds(model):
    state = model.float().state_dict()
    assert {"encoding.offset", "encoding.scale", "coords"} <= set(state)
    rebuilt = FactorTopy.from_state_dict(state, model.config())
    local, global_ = make_inputs([5, 12, 7])
    torch.testing.assert_close(rebuilt(local, global_), model(local, global_))


def test_bad_shapes_give_clear_errors(model):
    local, global_ = make_inputs([5, 12, 7], grid=4)
    with pytest.raises(ValueError, match="expected"):
        model([t.double() for t in local], [t.double() for t in global_])
    local, global_ = make_inputs([5, 12])
    with pytest.raises(ValueError, match="3 layers"):
        model(local, global_)
    with pytest.raises(ValueError, match=r"\(n_vertices, 3\)"):
        FactorTopy(torch.randn(10, 2), layer_channels=[3])
    with pytest.raises(ValueError, match="NaN"):
        FactorTopy(torch.tensor([[0.0, float("nan"), 1.0]]), layer_channels=[3])
    with pytest.raises(ValueError, match="does not match"):
        bad_cfg = dict(model.config(), layer_channels=[5, 12, 8])
        FactorTopy.from_state_dict(model.state_dict(), bad_cfg)
    with pytest.raises(ValueError, match="does not match"):
        bad_cfg = dict(model.config(), layer_channels=[5, 12, 7, 2], layer_names=None)
        FactorTopy.from_state_dict(model.state_dict(), bad_cfg)


# ---------------------------------------------------------------- precision under autocast (issue 10.7)
def grid_sample_maps(X, sel):
    """Float64 reference of the selection alone: X (B, L, grid^2 + 1, D) projected tokens ->
    v (B, N, D) = sum_l p_l ((1 - s) grid_sample(local map l, xy) + s global_l)."""
    X, B, L, T, D = X.double(), *X.shape
    g = math.isqrt(T - 1)
    N = sel.space.shape[0]
    where = sel.space.double().view(1, N, 1, 2).expand(B, N, 1, 2)
    s, v = sel.scale.double()[None], 0
    for l in range(L):
        maps = X[:, l, : g * g].transpose(1, 2).reshape(B, D, g, g)
        sampled = F.grid_sample(maps, where, mode="bilinear", padding_mode="zeros", align_corners=False)
        sampled = sampled[..., 0].transpose(1, 2)  # (B, N, D)
        v = v + sel.layer_probs.double()[None, :, l, None] * ((1 - s) * sampled + s * X[:, l, g * g][:, None])
    return v


def test_bf16_autocast_samples_within_0p3_percent_of_float64_grid_sample():
    torch.manual_seed(0)
    N, D, channels = 400, 16, [24, 40, 32]
    model = FactorTopy(torch.randn(N, 3) * 40, channels, dim=D, grid=8, hidden=32)
    randomise_selectors(model)
    # Readout D * e_{d_v}: the prediction of vertex v is exactly its sampled value v_v[d_v].
    d = torch.arange(N) % D
    with torch.no_grad():
        model.readout_weight.zero_()
        model.readout_weight[torch.arange(N), d] = D
        model.readout_bias.zero_()
    tokens = stack_tokens(*make_inputs(channels, B=4))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fast = model.forward_tokens(tokens).double()
        X = model.project(tokens)  # the projected maps in bf16, as the GEMM sees them
        sel = model.selectors()
    with torch.no_grad():
        exact = copy.deepcopy(model).double().selectors()
        reference = grid_sample_maps(X, exact)[:, torch.arange(N), d]  # (B, N)
    assert exact.space.abs().max() > 0.4  # positions spread over the grid
    rel = float((fast - reference).norm() / reference.norm())
    # bf16 selectors put the sampling position up to ~0.02 cell off: ~1.4 % here. What remains in
    # float32 is the bf16 rounding of the kernel and of the GEMM's output (~0.25 %).
    assert rel <= 3e-3, f"sampled values off by {rel:.2%}"
    assert X.dtype == torch.bfloat16  # the projection and the GEMM do run in the autocast dtype
    # Selectors are float32 inside autocast and equal those computed without it.
    assert all(getattr(sel, spec.field).dtype == torch.float32 for spec in SELECTORS)
    torch.testing.assert_close(sel.space.double(), exact.space, rtol=0, atol=1e-6)


def test_large_token_scale_with_fp16_tokens_under_autocast():
    # A quiet layer (RMS 1e-5) gets token_scale 1e5, beyond float16's range (65504): the scale must be
    # folded into the weights in their dtype, not in the tokens' float16.
    local, global_ = make_inputs([4, 6], B=2)
    local[0], global_[0] = local[0] * 1e-5, global_[0] * 1e-5
    tokens = stack_tokens(local, global_)
    m = FactorTopy(torch.randn(10, 3), [4, 6], dim=8)
    m.calibrate_token_scale(tokens)
    assert float(m.token_scale[0]) > 65504
    with torch.no_grad():
        expected = m.forward_tokens(tokens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = m.forward_tokens(tokens.half()).float()
    torch.testing.assert_close(got, expected, rtol=0.05, atol=0.05 * float(expected.abs().max()))


# ---------------------------------------------------------------- reference options (issue 10.8)
def published_encoding(c, low, extent):
    """method.md by hand: x = (c - low) * 100 / extent; per axis, for k = 0..31:
    sin(1000^(-k/32) x), cos(1000^(-k/32) x)."""
    out = []
    for a in range(3):
        x = (c[a] - low[a]) * 100.0 / extent
        for k in range(32):
            f = 1000.0 ** (-k / 32)
            out += [math.sin(f * x), math.cos(f * x)]
    return out


def test_reference_positional_encoding_is_the_published_formula():
    g = torch.Generator().manual_seed(3)
    coords = torch.randn(30, 3, generator=g, dtype=torch.float64) * torch.tensor([20.0, 60.0, 7.0], dtype=torch.float64)
    enc = PositionalEncoding(coords, scheme="reference")
    low = coords.min(0).values.tolist()
    extent = float((coords.max(0).values - coords.min(0).values).max())
    got = enc(coords)
    assert got.shape == (30, 192)
    for i in (0, 7, 29):
        expected = torch.tensor(published_encoding(coords[i].tolist(), low, extent), dtype=torch.float64)
        torch.testing.assert_close(got[i].double(), expected, rtol=0, atol=2e-5)
    # ...and differs from ours (1000^(-k/31), sines then cosines).
    assert not torch.allclose(PositionalEncoding(coords)(coords), got, atol=1e-2)
    with pytest.raises(ValueError, match="unknown positional encoding 'sinus'"):
        PositionalEncoding(coords, scheme="sinus")


def test_readout_inits():
    torch.manual_seed(0)
    coords = torch.randn(3000, 3)
    D = 64
    uni = FactorTopy(coords, [4], dim=D, readout_init="uniform")
    bound = 1 / math.sqrt(D)
    for p in (uni.readout_weight.detach(), uni.readout_bias.detach()):
        assert float(p.abs().max()) <= bound
        assert float(p.abs().max()) > 0.99 * bound  # fills the interval...
        assert float(p.var()) == pytest.approx(bound**2 / 3, rel=0.05)  # ...uniformly
    ours = FactorTopy(coords, [4], dim=D)
    assert float(ours.readout_weight.detach().std()) == pytest.approx(1.0, rel=0.02)
    assert torch.equal(ours.readout_bias, torch.zeros(3000))
    with pytest.raises(ValueError, match="readout_init"):
        FactorTopy(coords, [4], readout_init="xavier")


def test_token_scale_calibration_or_none():
    channels = [3, 6]
    local, global_ = make_inputs(channels, B=5)
    local[1] = local[1] * 40  # layers of very different magnitude
    tokens = stack_tokens(local, global_)
    rms = [math.sqrt(sum(float(t[:, :, :].pow(2).sum()) for t in (loc, glo[:, :, None, None]))
                     / (loc.numel() + glo.numel())) for loc, glo in zip(local, global_)]
    ours = FactorTopy(torch.randn(10, 3), channels, dim=4)
    ours.calibrate_token_scale(tokens)
    torch.testing.assert_close(ours.token_scale, torch.tensor([1 / r for r in rms]), rtol=1e-5, atol=0)
    ref = FactorTopy(torch.randn(10, 3), channels, dim=4, token_scale=False)
    ref.calibrate_token_scale(tokens)
    assert torch.equal(ref.token_scale, torch.ones(2))


def test_settings_round_trip_through_config_and_state_dict():
    torch.manual_seed(0)
    m = FactorTopy(torch.randn(40, 3) * 30, [5, 7], dim=8, hidden=16, readout_init="uniform",
                   token_scale=False, positional_encoding="reference")
    randomise_selectors(m)
    cfg = json.loads(json.dumps(m.config()))  # as config.json stores it
    assert (cfg["readout_init"], cfg["token_scale"], cfg["positional_encoding"]) == ("uniform", False, "reference")
    rebuilt = FactorTopy.from_state_dict(m.state_dict(), cfg)
    assert rebuilt.config() == m.config()
    torch.testing.assert_close(rebuilt.encoding(rebuilt.coords), m.encoding(m.coords))
    local, global_ = make_inputs([5, 7])
    torch.testing.assert_close(rebuilt(local, global_), m(local, global_))
    # A config that disagrees with the checkpoint's settings is an error, not a silent reload.
    with pytest.raises(ValueError, match="positional_encoding='ours'"):
        FactorTopy.from_state_dict(m.state_dict(), dict(cfg, positional_encoding="ours"))
    ours = FactorTopy(torch.randn(40, 3), [5, 7], dim=8, hidden=16)
    ours.calibrate_token_scale(stack_tokens(local, global_))
    with pytest.raises(ValueError, match="token_scale=False"):
        FactorTopy.from_state_dict(ours.state_dict(), dict(ours.config(), token_scale=False))
    # Configs written before these settings existed load with today's behaviour.
    old = {k: v for k, v in ours.config().items() if k not in ("readout_init", "token_scale", "positional_encoding")}
    assert FactorTopy.from_state_dict(ours.state_dict(), old).config() == ours.config()


# ---------------------------------------------------------------- selectors described once (issue 9.5)
def test_selector_arrays_keys_shapes_and_values(model):
    N, L, D = 50, 3, 16
    vertex = np.arange(N) * 7
    hemi = np.array(["lh"] * 20 + ["rh"] * 30)
    arrays = selector_arrays(model, vertex, hemi)
    # docs/run-dir.md, written out by hand
    shapes = dict(vertex=(N,), hemi=(N,), layer_names=(L,), layer_probs=(N, L), space_xy=(N, 2), scale=(N,),
                  rf_size=(N,), readout=(N, D))
    assert {k: v.shape for k, v in arrays.items()} == shapes
    assert arrays["vertex"].dtype == np.int64 and arrays["hemi"].dtype == np.dtype("<U2")
    assert all(arrays[k].dtype == np.float32 for k in ("layer_probs", "space_xy", "scale", "readout"))
    with torch.no_grad():
        sel = model.selectors()
    np.testing.assert_allclose(arrays["space_xy"], sel.space.numpy(), rtol=1e-6)
    np.testing.assert_allclose(arrays["layer_probs"], sel.layer_probs.numpy(), rtol=1e-6)
    np.testing.assert_allclose(arrays["scale"], sel.scale[:, 0].numpy(), rtol=1e-6)
    assert np.all(arrays["rf_size"] == 0)  # a point model's receptive field: size 0
    np.testing.assert_array_equal(arrays["vertex"], vertex)
    assert list(arrays["layer_names"]) == model.layer_names
    with pytest.raises(ValueError, match="one entry per model vertex"):
        selector_arrays(model, vertex[:-1], hemi[:-1])


def test_model_and_selectors_follow_the_table(model):
    # One MLP per row, with the row's width (L for the layer selector) and the row's state-dict name.
    # A point model has no receptive-field-size MLP: its checkpoints are those of before the row.
    widths = {spec.module: model.get_submodule(spec.module)[-1].out_features for spec in SELECTORS
              if hasattr(model, spec.module)}
    assert widths == {"space_mlp": 2, "layer_mlp": 3, "scale_mlp": 1}
    sel = model.selectors()
    assert isinstance(sel, Selectors)
    assert [f for f in vars(sel)] == ["space", "layer_probs", "scale", "rf_size"]
    assert torch.equal(sel.rf_size, torch.zeros(50, 1, dtype=sel.rf_size.dtype))
    # The row's activation applied to the row's MLP, written out for the encoding.
    e = model.encoding(model.coords)
    torch.testing.assert_close(sel.layer_probs, torch.softmax(model.layer_mlp(e), -1))
    torch.testing.assert_close(sel.space, torch.tanh(model.space_mlp(e)))
    torch.testing.assert_close(sel.scale, torch.sigmoid(model.scale_mlp(e)))
    # A given encoding gives the same selectors (what a cached encoding would do).
    torch.testing.assert_close(model.selectors(encoding=e).space, sel.space)
