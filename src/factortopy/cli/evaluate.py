"""``factortopy evaluate RUN_DIR``: score a fitted run (FactorTopy or ridge) on held-out images."""
from __future__ import annotations

HELP = "score a fitted run (FactorTopy or ridge) on held-out images: per-vertex r, R^2, Algonauts score, ROI table"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by 'factortopy fit' or 'factortopy baseline'")
    parser.add_argument("--data", default=None,
                        help="data spec KIND:PATH[?opts] (default: the run's own; for --split test with split=test)")
    parser.add_argument("--split", choices=("heldout", "val", "test"), default="heldout",
                        help="heldout: the run's held-out images, which chose nothing (default); val: its "
                             "early-stopping images (optimistic); test: the data's test images")
    parser.add_argument("--device", default="cpu", help="torch device for features and predictions (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    parser.add_argument("--by-hemi", action="store_true", help="also one row per ROI and hemisphere")
    parser.add_argument("--from-scores", action="store_true",
                        help="only summarise the scores the fit saved (scores.npz: the held-out images, which chose "
                             "nothing; the validation images when the fit held none out); no data, no predictions")
    parser.add_argument("--no-write", action="store_true", help="do not save eval_<split>.npz/.json in RUN_DIR")


def run(args) -> int:
    import os

    from factortopy.evaluation.summary import format_table

    if not os.path.isdir(args.run_dir):
        raise FileNotFoundError(f"run directory not found: {args.run_dir}")
    if args.from_scores:
        from factortopy.evaluation.run import summarize_scores

        rois = None
        if args.data:
            from factortopy.data import load_subject

            rois = load_subject(args.data).extra.get("rois")
        print(format_table(summarize_scores(args.run_dir, rois, args.by_hemi)))
        return 0
    from factortopy.evaluation.run import evaluate_run

    if not args.no_write:  # the scores are written into RUN_DIR: a read-only run is said now, not after the work
        from factortopy._destination import check_destination

        try:
            check_destination(args.run_dir, "RUN_DIR", folder=True)
        except OSError as err:
            raise OSError(err.errno, f"{err.strerror}; pass --no-write to print the scores without saving them") \
                from None
    res = evaluate_run(args.run_dir, data=args.data, split=args.split, device=args.device,
                       batch_size=args.batch_size, by_hemi=args.by_hemi, write=not args.no_write)
    print(f"{res['kind']} run, {args.split} split: {res['n_images']} images, {len(res['r'])} vertices")
    print(res["text"])
    if not args.no_write:
        print(f"saved {os.path.join(args.run_dir, f'eval_{args.split}.npz')} and .json")
    return 0
