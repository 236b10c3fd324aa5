"""The reference recipe, exactly (issue 10 item 8; docs/method.md, "Deviations from the reference
code"): FitConfig.reference(), `factortopy fit --reference` and `factortopy demo --reference` set
every reference value the deviations table names, and an option given explicitly still wins.

The expected values are written out here from the reference recipe (/work/shared/docs/method.md,
"Training" and "Parameters"), not read from factortopy.
"""
import math
from types import SimpleNamespace

import pytest
import torch

from factortopy.cli import build_parser
from factortopy.cli.demo import demo_config
from factortopy.cli.fit import fit_config
from factortopy.fitting.fit import FitConfig
from factortopy.fitting.schedule import regularizer_weight

#: the published recipe's values of every FitConfig field the deviations table (or the recipe) names
REFERENCE = dict(batch_size=8, lr=1e-3, weight_decay=0.01, grad_clip=0.5, smooth_l1_beta=0.1, reg_weight=0.1,
                 reg_fade="steps", reg_fade_value=2000, readout_init="uniform", token_scale=False,
                 positional_encoding="reference", amp_dtype="float16", dim=128, hidden=128, grid=8,
                 readout_refit="none")  # the reference trains its readout by gradient descent, nothing after
#: the fields where our defaults deviate (each a row of the table)
DEVIATIONS = ("lr", "readout_init", "token_scale", "positional_encoding", "amp_dtype", "reg_fade", "readout_refit")
FIT_ARGS = ["fit", "--data", "algonauts:/nowhere/subj01", "--backbone", "resnet18", "--out", "/nowhere/run"]


def values(cfg, names=REFERENCE):
    return {k: getattr(cfg, k) for k in names}


def test_reference_sets_every_reference_value():
    assert values(FitConfig.reference()) == REFERENCE
    ours = FitConfig()
    for name in DEVIATIONS:  # each deviation is real: our default is not the reference's
        assert getattr(ours, name) != REFERENCE[name], name


def test_reference_overrides_win():
    cfg = FitConfig.reference(token_scale=True, epochs=3)
    assert cfg.token_scale is True and cfg.epochs == 3
    assert values(cfg, set(REFERENCE) - {"token_scale"}) == {k: v for k, v in REFERENCE.items() if k != "token_scale"}


def test_reference_config_builds_the_reference_model():
    """The config reaches the model fit builds: uniform readout in +-1/sqrt(D) (bias too), no
    token scale whatever the tokens' size, frequencies 1000^(-k/32) interleaved sin/cos."""
    from factortopy.fitting.fit import init_model  # the model fit() builds from a config

    cfg = FitConfig.reference(dim=64)
    g = torch.Generator().manual_seed(0)
    coords = torch.randn(500, 3, generator=g) * 30
    tokens = torch.randn(20, 2, cfg.grid**2 + 1, 6, generator=g) * torch.tensor([1.0, 50.0])[None, :, None, None]
    feats = SimpleNamespace(tokens=tokens, channels=[6, 6], layer_names=["a", "b"])
    model = init_model(coords, feats, torch.arange(20).numpy(), cfg)
    bound = 1 / math.sqrt(cfg.dim)
    for p in (model.readout_weight.detach(), model.readout_bias.detach()):
        assert float(p.abs().max()) <= bound and float(p.abs().min()) < 0.1 * bound
        assert float(p.var()) == pytest.approx(bound**2 / 3, rel=0.1)
    assert torch.equal(model.token_scale, torch.ones(2))
    x = torch.tensor([[0.0, 0.0, 0.0]])  # encode the rescaled point 0..: sin 0 = 0, cos 0 = 1, interleaved
    enc = model.encoding(model.encoding.offset[None].double() + x.double())
    assert torch.equal(enc[0, :4], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    k = torch.arange(32, dtype=torch.float64)
    torch.testing.assert_close(model.encoding.frequencies.double(), 1000.0 ** (-k / 32), rtol=1e-6, atol=0)
    # ...where our defaults build the other model
    ours = init_model(coords, feats, torch.arange(20).numpy(), FitConfig(dim=64))
    assert not torch.equal(ours.token_scale, torch.ones(2))
    assert torch.equal(ours.readout_bias, torch.zeros(500))


def test_reference_fade_is_fixed_steps():
    cfg = FitConfig.reference()
    # a 300-step run: the reference fade is still at 0.1 x (1 - 150/2000) halfway, never 0
    assert regularizer_weight(150, 300, cfg.reg_weight, cfg.reg_fade, cfg.reg_fade_value) == pytest.approx(
        0.1 * (1 - 150 / 2000))
    assert regularizer_weight(2500, 3000, cfg.reg_weight, cfg.reg_fade, cfg.reg_fade_value) == 0


@pytest.mark.parametrize("command", ["fit", "demo"])
def test_cli_reference_gives_the_reference_config(command):
    argv = FIT_ARGS if command == "fit" else ["demo"]
    config = fit_config if command == "fit" else demo_config  # what each command's run() calls
    args = build_parser().parse_args([*argv, "--reference"])
    assert values(config(args)) == REFERENCE
    # without --reference: ours (and the demo's own recipe)
    plain = config(build_parser().parse_args(argv))
    assert all(getattr(plain, n) != REFERENCE[n] for n in DEVIATIONS)


@pytest.mark.parametrize("command", ["fit", "demo"])
def test_cli_explicit_options_override_reference(command):
    argv = FIT_ARGS if command == "fit" else ["demo"]
    config = fit_config if command == "fit" else demo_config
    given = ["--batch-size", "16", "--lr", "2e-3", "--reg-fade", "fraction", "--reg-fade-value", "0.3",
             "--epochs", "3", "--dim", "32"]
    cfg = config(build_parser().parse_args([*argv, "--reference", *given]))
    assert (cfg.batch_size, cfg.lr, cfg.reg_fade, cfg.reg_fade_value, cfg.epochs, cfg.dim) == \
        (16, 2e-3, "fraction", 0.3, 3, 32)
    # the rest stays the reference's
    rest = ("readout_init", "token_scale", "positional_encoding", "amp_dtype", "weight_decay", "grad_clip")
    assert values(cfg, rest) == {k: REFERENCE[k] for k in rest}


def test_each_deviation_has_its_own_command_line_option():
    """Each deviation from the reference code can be restored alone, not only all at once."""
    argv = [*FIT_ARGS, "--readout-init", "uniform", "--token-scale", "none", "--positional-encoding", "reference",
            "--amp-dtype", "float16", "--readout-refit", "none"]
    cfg = fit_config(build_parser().parse_args(argv))
    assert (cfg.readout_init, cfg.token_scale, cfg.positional_encoding, cfg.amp_dtype, cfg.readout_refit) == \
        ("uniform", False, "reference", "float16", "none")
    assert (cfg.batch_size, cfg.reg_fade) == (FitConfig().batch_size, FitConfig().reg_fade)  # nothing else moved
    ours = fit_config(build_parser().parse_args([*FIT_ARGS, "--reference", "--token-scale", "rms"]))
    assert ours.token_scale is True and ours.readout_init == "uniform"


def test_fit_options_are_generated_from_the_fitconfig_fields():
    """Every FitConfig field is a `fit` (and `demo`) option whose help is the field's metadata: a new
    setting is one field, never a second list to keep in step."""
    from dataclasses import fields

    from factortopy.model.encoding import ENCODINGS
    from factortopy.model.factortopy import READOUT_INITS

    parser = build_parser()
    for command in ("fit", "demo"):
        sub = parser._subparsers._group_actions[0].choices[command]
        options = {a.dest: a for a in sub._actions}
        for f in fields(FitConfig):
            assert f.name in options, (command, f.name)
            assert options[f.name].help.startswith(f.metadata["help"]), f.name
    fit_options = {a.dest: a for a in parser._subparsers._group_actions[0].choices["fit"]._actions}
    assert fit_options["loss"].help.endswith("(default smooth_l1)")
    assert fit_options["token_scale"].help.endswith("(default rms)")
    # the choices the metadata spells are the owners' tables
    assert set(fit_options["readout_init"].choices) == set(READOUT_INITS)  # argparse checks these two
    assert set(fit_options["positional_encoding"].choices) == set(ENCODINGS)
    cfg = fit_config(parser.parse_args(FIT_ARGS + ["--loss", "mse", "--train-images", "50", "--amp", "off",
                                                   "--token-scale", "none", "--patience", "0", "--weight-decay", "0"]))
    assert (cfg.loss, cfg.train_images, cfg.amp, cfg.token_scale, cfg.patience, cfg.weight_decay) == \
        ("mse", 50, False, False, None, 0.0)
    assert values(fit_config(parser.parse_args(FIT_ARGS)), [f.name for f in fields(FitConfig)]) == \
        values(FitConfig(), [f.name for f in fields(FitConfig)])  # nothing given: FitConfig's defaults
