"""Selectors own themselves: a row of model/selectors.py carries its prior, how the kernel reads it,
its map and its estimator attribute; adding one is the row plus its kernel code."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from factortopy.model import selectors as rows
from factortopy.model.factortopy import FactorTopy


def _model(**kw):
    torch.manual_seed(0)
    coords = torch.randn(30, 3)
    return FactorTopy(coords, [4, 6], dim=8, grid=4, hidden=16, **kw)


def test_the_regulariser_is_the_sum_of_the_rows_priors_computed_independently():
    for rf in ("point", "gaussian"):
        model = _model(receptive_field=rf)
        with torch.no_grad():  # move the selectors off their zero-init values
            for spec in rows.SELECTORS:
                if spec.used_by(model):
                    getattr(model, spec.module)[-1].weight.normal_(0, 0.3)
            sel = model.selectors()
        p = sel.layer_probs.double()
        by_hand = float((p * p.log()).sum(1).mean() / np.log(2)) + float(((sel.scale.double() - 0.5) ** 2).mean())
        if rf == "gaussian":
            by_hand += float(((sel.rf_size.double() / rows.RF_MAX - 0.5) ** 2).mean())
        assert model.regularizer(sel).item() == pytest.approx(by_hand, rel=1e-5)


def test_the_map_kinds_and_estimator_attributes_come_from_the_rows():
    from factortopy.viz.kinds import MAP_KINDS

    for spec in rows.SELECTORS:
        assert MAP_KINDS[spec.map_kind].needs == (spec.key,)
    assert list(MAP_KINDS)[0] == "layer"  # the default map first


def test_a_new_selector_is_its_row_plus_its_kernel_code(monkeypatch):
    """Add a row 'gain' (a per-vertex multiplier of the whole kernel) and the kernel keyword that reads
    it; nothing else is edited, and the model, the regulariser, selectors.npz, the map kinds and the
    estimator all carry it."""
    import factortopy.model.factortopy as ft
    from factortopy.model.kernel import selection_kernel
    from factortopy.viz.kinds import selector_map_kinds

    gain = rows.SelectorSpec("gain", "gain", 1, lambda z: 2 * z.sigmoid(), "gain", "a per-vertex gain in (0, 2)",
                             kernel_arg="gain", prior=lambda g: ((g - 1) ** 2).mean(), map_kind="gain")
    table = rows.SELECTORS + (gain,)
    monkeypatch.setattr(rows, "SELECTORS", table)
    from dataclasses import make_dataclass

    monkeypatch.setattr(rows, "Selectors", make_dataclass("Selectors", [(s.field, "torch.Tensor") for s in table]))

    def kernel_with_gain(gain, **rest):  # the kernel code of the new row
        return gain[:, :, None] * selection_kernel(**rest)

    monkeypatch.setattr(ft, "selection_kernel", kernel_with_gain)
    model = _model()
    assert isinstance(model.gain_mlp, torch.nn.Sequential)
    with torch.no_grad():
        for spec in table:
            if spec.used_by(model):
                getattr(model, spec.module)[-1].weight.normal_(0, 0.3)
        sel = model.selectors()
    g = sel.gain
    assert g.shape == (30, 1) and g.std() > 0
    torch.testing.assert_close(g, 2 * torch.sigmoid(model.gain_mlp(model.encoding(model.coords))))
    torch.testing.assert_close(model.kernel(sel), g[:, :, None] * selection_kernel(sel.space, sel.layer_probs, sel.scale,
                                                                                  4, 4, size=sel.rf_size))
    p = sel.layer_probs.double()
    by_hand = float((p * p.log()).sum(1).mean() / np.log(2)) + float(((sel.scale.double() - 0.5) ** 2).mean()) \
        + float(((g.double() - 1) ** 2).mean())
    assert model.regularizer(sel).item() == pytest.approx(by_hand, rel=1e-5)
    arrays = rows.selector_arrays(model, np.arange(30), np.array(["lh"] * 30))
    assert arrays["gain"].shape == (30,)
    kinds = {k.name: k for k in selector_map_kinds()}
    assert kinds["gain"].needs == ("gain",) and "gain selector" in kinds["gain"].description

    from factortopy.estimator import FactorTopyEncoder

    run = SimpleNamespace(model=model, vertex=np.arange(30), hemi=np.array(["lh"] * 30), metrics={},
                          config={"backbone": {"layer_names": model.layer_names}},
                          selectors=lambda: arrays, scores=lambda: {})
    est = FactorTopyEncoder("resnet18")
    est._set_fitted(run)
    np.testing.assert_array_equal(est.gain_, arrays["gain"])
    np.testing.assert_array_equal(est.rf_size_, np.zeros(30, np.float32))  # a point model's size is 0
