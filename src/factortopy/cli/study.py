"""factortopy study: fit every (subject, backbone) pair of a study file and write its table,
figures and page (docs/studies.md)."""
from __future__ import annotations

HELP = "run a study: fit many backbones on subjects, then table, scaling plot, map grids and an HTML page"


def add_arguments(p) -> None:
    p.add_argument("study", help="the study file (TOML; docs/studies.md)")
    p.add_argument("--out", required=True, help="the study directory (a killed study resumes there)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the study file's, else cpu)")
    p.add_argument("--gpus", default=None,
                   help="comma-separated GPU ids: one fit process per GPU (default: every visible GPU "
                        "when the device is cuda)")
    p.add_argument("--no-figures", action="store_true", help="write the table only")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from factortopy.study.run import run_study

    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    result = run_study(args.study, args.out, progress=not args.quiet, gpus=gpus, device=args.device,
                       figures=not args.no_figures)
    print(f"{len(result['summary'])} runs ({result['fitted']} fitted now) in {args.out}"
          + (f"; page {result['page']}" if result["page"] else ""))
    return 0
