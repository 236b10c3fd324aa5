"""factortopy fit: fit a FactorTopy encoder on one subject and write a RUN_DIR."""
from __future__ import annotations

HELP = "fit a FactorTopy encoder on a subject (Algonauts 2023, raw NSD or your own data)"


def _batch_size(text: str):
    if text == "auto":
        return text
    value = int(text)
    if value < 1:
        raise ValueError(f"batch size must be >= 1 or 'auto', got {text}")
    return value


def add_fit_options(p) -> None:
    """Training options shared by `fit` and `demo` (defaults from FitConfig)."""
    p.add_argument("--epochs", type=int, default=None, help="passes over the training images (default 10)")
    p.add_argument("--batch-size", type=_batch_size, default=None,
                   help="images per step, or 'auto' (the largest that fits in GPU memory); default 8")
    p.add_argument("--lr", type=float, default=None, help="AdamW learning rate (default 1e-3)")
    p.add_argument("--dim", type=int, default=None, help="width D of the aligned channel space (default 128)")
    p.add_argument("--grid", type=int, default=None,
                   help="side of the token grid every layer is resized to (default 8; the reference's 8)")
    p.add_argument("--receptive-field", default=None, metavar="{point,gaussian}",
                   help="what a vertex reads around its position: 'point' (the paper's bilinear sample) or "
                        "'gaussian' (a pool of learned per-vertex size, painted by `paint --what rf-size`); "
                        "default point (docs/method.md, 'Receptive fields of every size')")
    p.add_argument("--seed", type=int, default=None, help="seed of the split, init and batch order (default 0)")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="share of images for early stopping (they pick the best epoch; default 0.1)")
    p.add_argument("--heldout-fraction", type=float, default=None,
                   help="share of images held out for the headline score: they choose nothing (default 0.1)")
    p.add_argument("--patience", type=int, default=None,
                   help="stop after this many epochs without a better validation r (default 5; 0 = never)")
    p.add_argument("--reg-fade", choices=("fraction", "steps"), default=None,
                   help="fade the regulariser over a fraction of all steps (default) or a fixed step count")
    p.add_argument("--reg-fade-value", type=float, default=None,
                   help="the fraction (default 0.3) or the step count (reference: 2000)")
    # each deviation from the reference code on its own (docs/method.md, "Deviations from the reference code")
    p.add_argument("--readout-init", choices=("normal", "uniform"), default=None,
                   help="readout init: standard normal weights, zero bias (default) or the reference's uniform "
                        "+-1/sqrt(D)")
    p.add_argument("--token-scale", choices=("rms", "none"), default=None,
                   help="fixed per-layer input scale 1/RMS of the training tokens (default) or none (reference)")
    p.add_argument("--positional-encoding", choices=("ours", "reference"), default=None,
                   help="frequencies 1000^(-k/31), sines then cosines (default) or the reference's "
                        "1000^(-k/32), sin/cos interleaved")
    p.add_argument("--amp-dtype", choices=("bfloat16", "float16"), default=None,
                   help="autocast dtype of the big GEMM on CUDA (default bfloat16; reference float16)")
    p.add_argument("--reference", action="store_true",
                   help="the published recipe and model: batch 8, lr 1e-3, regulariser fading over 2,000 steps, "
                        "uniform readout init, no token scale, the reference positional encoding, float16 "
                        "autocast, a point receptive field on the 8 x 8 grid (docs/method.md lists every deviation and its own setting)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def fit_config(args, **defaults):
    """A FitConfig from parsed options (unset options keep ``defaults``, then FitConfig's)."""
    from factortopy.fitting.fit import FitConfig

    names = ("epochs", "batch_size", "lr", "dim", "grid", "receptive_field", "seed", "val_fraction", "heldout_fraction",
             "patience", "reg_fade", "reg_fade_value", "readout_init", "positional_encoding", "amp_dtype")
    given = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    if getattr(args, "token_scale", None) is not None:
        given["token_scale"] = args.token_scale == "rms"
    if given.get("patience") == 0:
        given["patience"] = None
    if args.reference:  # the published recipe; only options given on the command line change it
        return FitConfig.reference(**{**given, "device": args.device})
    return FitConfig(**{**defaults, **given, "device": args.device})


def add_arguments(p) -> None:
    from factortopy.cli.options import add_backbone_arguments

    p.add_argument("--data", required=True,
                   help="KIND:PATH: algonauts:PATH/subjNN, nsd:NSD_ROOT?subject=N, generic:PATH (docs/data.md)")
    add_backbone_arguments(p)
    p.add_argument("--mesh-dir", default=None,
                   help="folder of a full fsaverage mesh (lh.sphere, ...), needed for vertices beyond fsaverage5; "
                        "the same as the data spec's mesh_dir=... option")
    p.add_argument("--cache-dir", default=None, help="reuse/write backbone features here (HDF5)")
    p.add_argument("--out", required=True, help="the RUN_DIR to write (an interrupted fit resumes there)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished run in --out (its evaluation files are removed too)")
    add_fit_options(p)


def run(args) -> int:
    import json
    import os

    from factortopy.data import absolute_spec, load_subject
    from factortopy.fitting.distributed import init_from_env
    from factortopy.fitting.fit import check_outputs, fit

    from factortopy.cli.options import backbone_spec

    spec = backbone_spec(args)
    if spec.random_init and not args.quiet:
        print(f"note: {spec.name} starts from random weights (--random-init): the run is labelled 'random init'")
    config = fit_config(args)  # every setting checked before any work
    check_outputs(args.out, args.cache_dir)
    device = init_from_env(args.device)
    args.device = device
    data = absolute_spec(args.data, mesh_dir=args.mesh_dir)  # the recorded spec carries the mesh too
    subject = load_subject(data)
    result = fit(subject, backbone=spec, out=args.out, config=config, cache_dir=args.cache_dir,
                 progress=not args.quiet, data_spec=data, overwrite=args.overwrite)
    if result.run_dir:
        keys = ("heldout_pearson_mean", "val_pearson_mean", "n_train", "n_val", "n_heldout", "epochs", "seconds")
        print(json.dumps({k: result.metrics[k] for k in keys if k in result.metrics}))
        print(f"wrote {os.path.abspath(args.out)}")
    return 0
