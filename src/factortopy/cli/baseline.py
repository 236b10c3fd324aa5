"""``factortopy baseline``: the layer-wise ridge baseline, written as a RUN_DIR."""
from __future__ import annotations

HELP = "fit the ridge baseline (per-layer ridge, per-vertex alpha, best layer per vertex) into a RUN_DIR"


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="data spec KIND:PATH[?opts], e.g. algonauts:/data/subj01")
    from factortopy.cli.options import add_backbone_arguments

    add_backbone_arguments(parser)
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="validation fraction, as in 'factortopy fit' (default: 0.1)")
    parser.add_argument("--heldout-fraction", type=float, default=0.1,
                        help="held-out fraction, as in 'factortopy fit': the images scored (default: 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="split seed, as in 'factortopy fit' (default: 0)")
    parser.add_argument("--pool", type=int, default=2,
                        help="pool each layer's 8x8 tokens to POOLxPOOL cells (+ the global token; default: 2)")
    parser.add_argument("--alphas", default=None, help="comma-separated ridge penalties (default: 1e-2..1e8)")
    parser.add_argument("--cv", type=int, default=5, help="folds for choosing alpha per vertex (default: 5)")
    parser.add_argument("--device", default="cpu", help="torch device for the features (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    parser.add_argument("--out", required=True, help="the RUN_DIR to write")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")


def run(args) -> int:
    import os

    from factortopy.baselines.ridge import DEFAULT_ALPHAS
    from factortopy.baselines.run import fit_ridge_baseline
    from factortopy.data import load_subject

    try:
        import himalaya  # noqa: F401
    except ImportError:
        from factortopy.cli import UserError

        raise UserError("the ridge baseline needs himalaya: pip install 'factortopy[ridge]'") from None
    from factortopy._destination import check_destination
    from factortopy.cli.options import backbone_spec

    try:
        alphas = tuple(float(a) for a in args.alphas.split(",")) if args.alphas else DEFAULT_ALPHAS
    except ValueError:
        raise ValueError(f"--alphas {args.alphas!r}: give comma-separated numbers, e.g. 1,100,10000") from None
    spec = backbone_spec(args)  # every option checked before the data are read
    check_destination(args.out, "--out", folder=True)
    subject = load_subject(args.data)
    res = fit_ridge_baseline(subject, backbone=spec, val_fraction=args.val_fraction,
                             heldout_fraction=args.heldout_fraction,
                             seed=args.seed, alphas=alphas, cv=args.cv, pool=args.pool, out=args.out,
                             data_spec=args.data, device=args.device, batch_size=args.batch_size, progress=True,
                             overwrite=args.overwrite)
    m = res.metrics
    split = res.config["split"]["scored"]
    print(f"ridge baseline: {m['n_train']} train / {m[f'n_{split}']} {split} images, {m['n_vertices']} vertices, "
          f"{split} r mean {m[f'{split}_pearson_mean']:.3f}, R^2 mean {m[f'{split}_r2_mean']:.3f}")
    print("best layer counts: " + ", ".join(f"{k}: {v}" for k, v in m["best_layer_counts"].items()))
    print(f"wrote {os.path.abspath(args.out)}")
    return 0
