"""FactorTopy against a slow, obvious per-layer grid_sample implementation of method.md."""
import math

import pytest
import torch
import torch.nn.functional as F

from factortopy.model.encoding import PositionalEncoding
from factortopy.model.factortopy import FactorTopy, stack_tokens
from factortopy.model.kernel import tent_weights


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
