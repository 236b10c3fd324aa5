"""``factortopy paint``: draw a run's maps on the cortex (PNG/SVG/PDF, or an interactive .html)."""
from __future__ import annotations

import argparse
import os

HELP = "Paint fitted maps (layer, space, scale, channel, score) of one or more RUN_DIRs onto the cortex."

#: painting is numpy + matplotlib: the command never imports torch (3-6 s of a paint command), so
#: --threads has nothing to set
USES_TORCH = False

_VIEWS = ("lateral", "medial", "ventral", "dorsal", "posterior", "anterior", "flat")
_STATIC = (".png", ".svg", ".pdf")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run folder(s) with selectors.npz (or a selectors.npz / planted_truth.npz); "
                             "several give a grid, one column per run")
    from factortopy.viz.kinds import kinds_help

    parser.add_argument("--what", default="layer", metavar="MAP",
                        help=f"map to paint (default layer): {kinds_help().replace('%', '%%')}; or any "
                             "single-number map of the run, "
                             "as `factortopy export` writes them (layer_expected, layer_argmax, space_x, "
                             "channel_cluster, <split>_r, <split>_score, ...)")
    parser.add_argument("--view", nargs="+", default=None, choices=_VIEWS, metavar="VIEW",
                        help=f"view(s): {', '.join(_VIEWS)} (default: lateral medial ventral posterior for "
                             "one run, posterior for a grid, which uses the first view given)")
    parser.add_argument("--hemi", default="both", choices=("lh", "rh", "both"), help="hemisphere(s) (default both)")
    parser.add_argument("--surface", default="inflated", choices=("inflated", "pial", "white", "sphere"),
                        help="surface for the 3-D views (default inflated)")
    from factortopy.surface import RESOLUTIONS

    parser.add_argument("--mesh", default=None, choices=tuple(RESOLUTIONS),
                        help="fsaverage member to draw on: fsaverage5 ships with nilearn; fsaverage6 and fsaverage "
                             "are found in --mesh-dir, the run's NSD release, $NSD_ROOT, $SUBJECTS_DIR, "
                             "$FREESURFER_HOME/subjects or nilearn's data dir (the first found; the command says "
                             "which). Default: NSD's own fsaverage for an nsd: run whose release holds it, else "
                             "fsaverage5 (vertices beyond it are not drawn)")
    parser.add_argument("--mesh-dir", default=None,
                        help="a FreeSurfer subject or surf folder of an fsaverage member (e.g. "
                             "$SUBJECTS_DIR/fsaverage or nsddata/freesurfer/fsaverage/surf) to draw on")
    parser.add_argument("--clusters", type=int, default=20, help="number of channel clusters (default 20)")
    parser.add_argument("--title", default=None, help="figure title (default from the run config)")
    parser.add_argument("--dpi", type=int, default=150, help="resolution of PNG output (default 150)")
    parser.add_argument("--out", required=True, help="output file: .png, .svg, .pdf, or .html (interactive)")


def run(args: argparse.Namespace) -> int:
    out = args.out
    ext = os.path.splitext(out)[1].lower()
    if ext not in _STATIC + (".html",):
        raise ValueError(f"--out must end in .png, .svg, .pdf or .html; got {out!r}")
    for d in args.run_dirs:
        if not os.path.exists(d):
            raise FileNotFoundError(f"{d} does not exist")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"output folder {parent} does not exist")
    if args.clusters < 1:
        raise ValueError("--clusters must be at least 1")
    from factortopy._destination import check_destination

    check_destination(out, "--out")  # before the maps are read and drawn (the figure is written whole: _files)

    from factortopy.runs.maps import describe_run
    from factortopy.viz.meshes import paint_mesh

    if ext == ".html" and args.mesh is None and args.mesh_dir is None:
        # a full mesh would make the page ~100 MB (per-vertex colours and hover text): asked for, not by default
        mesh, which = None, ("fsaverage5 (nilearn): the interactive page stays a few MB; --mesh fsaverage draws "
                             "every vertex")
    else:
        mesh, which = paint_mesh(args.mesh, args.surface, args.mesh_dir,
                                 [describe_run(d) for d in args.run_dirs])
    print(f"mesh: {which}")

    if ext == ".html":
        if len(args.run_dirs) != 1:
            raise ValueError("the interactive .html view shows one run; give a single RUN_DIR")
        from factortopy.viz.interactive import interactive_html
        from factortopy.viz.kinds import map_kind
        from factortopy.runs.maps import load_maps
        from factortopy.viz.paint_runs import painting_from_maps

        maps = load_maps(args.run_dirs[0])
        painting = painting_from_maps(maps, args.what, args.clusters)
        interactive_html(painting, out, args.hemi, args.surface, mesh,
                         title=args.title or f"{maps['title']}: {args.what}", maps=maps,
                         description=f"{args.what}: {map_kind(args.what, maps).description}")
    else:
        from factortopy.viz.paint_runs import paint

        if len(args.run_dirs) == 1:
            from factortopy.viz.paint_runs import paint_run

            views = args.view or ("lateral", "medial", "ventral", "posterior")
            fig = paint_run(args.run_dirs[0], args.what, views, args.hemi, args.surface, mesh,
                            args.clusters, title=args.title)
        else:
            fig = paint(args.run_dirs, args.what, args.view, args.hemi, args.surface, mesh, args.clusters)
            if args.title:
                fig.suptitle(args.title)
        from factortopy._files import write_figure

        write_figure(out, fig, dpi=args.dpi)
    print(f"wrote {out}")
    return 0
