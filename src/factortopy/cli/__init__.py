"""The ``factortopy`` command line.

Each sub-command lives in its own module ``factortopy.cli.<name>`` exposing ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only to build the parser,
and they import torch & co. inside ``run`` so that ``factortopy --help`` stays fast. Options every
command has (``--threads``) are added here, and applied before the command's work; a module whose
work needs no torch says ``USES_TORCH = False`` (then torch is never imported: ``paint``).
"""
from __future__ import annotations

import argparse
import importlib
import sys

# order shown in --help
COMMANDS = ("demo", "fit", "layers", "evaluate", "baseline", "paint", "export", "predict", "study")


class UserError(Exception):
    """A problem with the user's input: printed as one clear message, without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    from factortopy import __version__
    from factortopy.cli.options import add_threads_argument

    parser = argparse.ArgumentParser(
        prog="factortopy",
        description="Fit FactorTopy brain encoders on vision backbones and paint them onto the cortex.",
    )
    parser.add_argument("--version", action="version", version=f"factortopy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"factortopy.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"factortopy.cli.{name}":
                continue  # command not shipped in this build
            raise
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        add_threads_argument(p)
        p.set_defaults(_run=module.run, _uses_torch=getattr(module, "USES_TORCH", True))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    try:
        if args._uses_torch:  # setting torch's threads imports torch (seconds): not for commands without it
            from factortopy.cli.options import apply_threads

            apply_threads(args)
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (UserError, FileNotFoundError, ValueError, KeyError) as err:
        # Our own checks raise these with messages written for the user.
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"factortopy {args.command}: error: {msg}", file=sys.stderr)
        return 2
