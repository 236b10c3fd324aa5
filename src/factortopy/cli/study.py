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
    g = p.add_argument_group("cluster", "each fit a job through submitit (docs/scaling.md); these override the "
                                        "study file's [launcher] section")
    from factortopy.study.launch import LAUNCHERS

    g.add_argument("--launcher", choices=LAUNCHERS, default=None,
                   help="process: fit here (default); slurm: one SLURM job per fit, then the summary; local: the "
                        "same through submitit's local executor, on this machine")
    g.add_argument("--partition", default=None, help="SLURM partition")
    g.add_argument("--gpus-per-job", type=int, default=None,
                   help="GPUs per fit, 0 or 1 (default 1 with --device cuda, else 0)")
    g.add_argument("--cpus-per-job", type=int, default=None, help="CPU cores per fit")
    g.add_argument("--time", default=None, help="wall-clock limit per job: minutes or [D-]H:MM:SS (default 4:00:00; "
                                                "a job that runs out is requeued and resumes from its checkpoint)")
    g.add_argument("--mem", default=None, help="memory per job, e.g. 32G")
    g.add_argument("--account", default=None, help="SLURM account")
    g.add_argument("--qos", default=None, help="SLURM quality of service")


def run(args) -> int:
    from factortopy.study.run import run_study

    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    launcher = {k: v for k, v in dict(kind=args.launcher, partition=args.partition, gpus_per_job=args.gpus_per_job,
                                      cpus_per_job=args.cpus_per_job, time=args.time, mem=args.mem,
                                      account=args.account, qos=args.qos).items() if v is not None}
    result = run_study(args.study, args.out, progress=not args.quiet, gpus=gpus, device=args.device,
                       figures=not args.no_figures, launcher=launcher)
    print(f"{len(result['summary'])} runs ({result['fitted']} fitted now) in {args.out}"
          + (f"; page {result['page']}" if result["page"] else ""))
    return 0
