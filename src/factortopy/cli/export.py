"""``factortopy export RUN --out DIR``: a run's maps as GIfTI and FreeSurfer files (docs/viz.md)."""
from __future__ import annotations

HELP = "write a run's maps and scores as GIfTI (.func.gii / .label.gii) and FreeSurfer (.mgz, .annot) files"

#: exporting is numpy + nibabel (+ scipy for the channel clusters): the command never imports torch
USES_TORCH = False


def add_arguments(parser) -> None:
    from factortopy.surface import RESOLUTIONS
    from factortopy.viz.export import FORMATS

    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a run folder (or a selectors.npz / planted_truth.npz)")
    parser.add_argument("--out", required=True, help="folder for the files (new, empty, or an earlier export)")
    parser.add_argument("--maps", nargs="+", default=None, metavar="MAP",
                        help="maps to write (default all the run has: layer_expected, layer_confidence, "
                             "layer_argmax, layer_probs, space_x, space_y, scale, rf_size, channel_cluster, r, r2, "
                             "<split>_r, <split>_r2, <split>_score, ...)")
    parser.add_argument("--format", nargs="+", default=list(FORMATS), choices=FORMATS, dest="formats",
                        help="gifti (.func.gii / .label.gii) and/or mgz (.mgz, plus .annot and .mgz.ctab for "
                             "label maps); default both")
    parser.add_argument("--mesh", default=None, choices=tuple(RESOLUTIONS),
                        help="fsaverage member the files cover (default the run's own: the smallest holding "
                             "all its vertices; a larger one pads, a smaller one is refused)")
    parser.add_argument("--clusters", type=int, default=20, help="number of channel clusters (default 20)")


def run(args) -> int:
    import os

    from factortopy.viz.export import MANIFEST, export_run

    if not os.path.exists(args.run_dir):
        raise FileNotFoundError(f"{args.run_dir} does not exist")
    if args.clusters < 1:
        raise ValueError("--clusters must be at least 1")
    from factortopy._destination import check_destination

    check_destination(args.out, "--out", folder=True)  # before the maps are read
    manifest = export_run(args.run_dir, args.out, maps=args.maps, formats=args.formats, resolution=args.mesh,
                          n_clusters=args.clusters, progress=True)
    n_files = sum(len(m["files"]) for m in manifest["maps"])
    print(f"wrote {len(manifest['maps'])} maps ({n_files} files) on {manifest['mesh']} in {args.out}; "
          f"what each holds: {os.path.join(args.out, MANIFEST)}")
    return 0
