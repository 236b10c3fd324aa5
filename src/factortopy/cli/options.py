"""Option groups shared by several commands: one definition, so `fit`, `baseline` and `layers`
can never disagree about what a backbone option means."""
from __future__ import annotations


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_backbone_arguments(parser, required: bool = True) -> None:
    """The backbone's options: everything a :class:`~factortopy.backbones.spec.BackboneSpec` holds."""
    g = parser.add_argument_group("backbone")
    g.add_argument("--backbone", required=required, default=None,
                   help="friendly name, timm name, or timm:/torchvision:/hf:/open_clip: NAME "
                        "(see `factortopy layers --list`); it means its pretrained weights unless "
                        "--weights or --random-init says otherwise")
    g.add_argument("--layers", default=None, help="comma-separated layer names (default: the backbone's usual "
                                                  "set; see `factortopy layers NAME`)")
    w = g.add_mutually_exclusive_group()
    w.add_argument("--weights", default=None, help="local weights file (.safetensors or torch state dict)")
    w.add_argument("--pretrained", action="store_true", default=None,
                   help="the name's pretrained weights from the hub cache (the default)")
    w.add_argument("--random-init", action="store_true", help="random weights (recorded and shown as 'random init')")
    g.add_argument("--img-size", type=_positive_int, default=None, help="backbone input size in pixels")
    g.add_argument("--mean", default=None, help="normalisation mean per RGB channel, e.g. 0.5,0.5,0.5")
    g.add_argument("--std", default=None, help="normalisation std per RGB channel")


def _floats(text, option: str):
    """``--mean`` / ``--std`` text -> numbers (BackboneSpec checks their count and range)."""
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} {text!r}: give three comma-separated numbers, one per RGB channel, e.g. "
                         "0.5,0.5,0.5") from None


def backbone_spec(args):
    """The BackboneSpec the backbone options describe."""
    from factortopy.backbones.spec import BackboneSpec

    if args.layers is not None and not [l for l in args.layers.split(",") if l.strip()]:
        raise ValueError(f"--layers {args.layers!r} names no layer; give comma-separated names "
                         "(see `factortopy layers NAME`)")
    return BackboneSpec(name=args.backbone, layers=args.layers, weights=args.weights, pretrained=args.pretrained,
                        random_init=bool(args.random_init), img_size=args.img_size, mean=_floats(args.mean, "--mean"),
                        std=_floats(args.std, "--std"))


# ---- threads (every command) ---------------------------------------------------------------------
#: the most torch threads the default takes: the FactorTopy head and a backbone's forward gain
#: little beyond this on the CPU, and a large count oversubscribes shared machines
MAX_DEFAULT_THREADS = 8


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def machine_load() -> tuple[float, int] | None:
    """(1-minute load average, CPUs of the machine), or None where the OS reports no load."""
    import os

    try:
        return os.getloadavg()[0], os.cpu_count() or 1
    except (AttributeError, OSError):
        return None


def default_threads() -> int:
    """``$OMP_NUM_THREADS`` when set (a launcher such as torchrun, or the user, chose), else the
    CPUs available to this process that the machine's load leaves idle, at least 1 and at most
    :data:`MAX_DEFAULT_THREADS`. On a busy machine more threads than idle CPUs is much slower
    (issue 11: 0.22 vs 1.34 s per demo step on a loaded 2-core machine)."""
    import os

    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    n = min(available_cpus(), MAX_DEFAULT_THREADS)
    load = machine_load()
    if load is not None:
        n = min(n, round(load[1] - load[0]))
    return max(1, n)


def add_threads_argument(parser) -> None:
    """``--threads N`` (every command; cli.build_parser adds it)."""
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="torch CPU threads (default: $OMP_NUM_THREADS when set, else the available CPUs "
                             f"the machine's load leaves idle, at most {MAX_DEFAULT_THREADS})")


def apply_threads(args, stream=None) -> int:
    """Set torch's CPU threads from ``--threads`` (or :func:`default_threads`) before a command's
    work, and print a one-line note to ``stream`` (stderr, the progress output) when the machine's
    load is above its CPU count and the count was chosen for the user (not with ``--threads``, nor
    ``--quiet``). Returns the thread count set."""
    import sys

    import torch

    n = args.threads if args.threads is not None else default_threads()
    torch.set_num_threads(n)
    load = machine_load()
    if load is not None and load[0] > load[1] and args.threads is None and not getattr(args, "quiet", False):
        print(f"note: the machine is oversubscribed (load average {load[0]:.1f} on {load[1]} CPUs): using {n} "
              f"torch thread{'s' if n > 1 else ''} (--threads N to choose)", file=stream or sys.stderr)
    return n
