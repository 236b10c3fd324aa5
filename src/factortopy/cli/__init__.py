"""The ``factortopy`` command line.

Each sub-command lives in its own module ``factortopy.cli.<name>`` exposing ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only to build the parser,
and they import torch & co. inside ``run`` so that ``factortopy --help`` stays fast. Options every
command has (``--threads``, ``--debug``) are added here, and applied before the command's work; a
module whose work needs no torch says ``USES_TORCH = False`` (then torch is never imported: ``paint``).

**One error path** (docs/reliability.md, "The command line"): every expected failure (a bad option,
a file that is missing, unreadable, damaged or not writable, a full disk, bad data) ends the
command with ONE line on stderr, ``factortopy COMMAND: error: ...``, naming the file or option and
what to do, and exit code 2; warnings are one line each too. A Python traceback appears only with
``--debug`` or ``FACTORTOPY_DEBUG=1`` (then every error is raised as is), or for an unexpected error
(a bug: please report it with its traceback).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# order shown in --help
COMMANDS = ("demo", "fit", "layers", "evaluate", "baseline", "paint", "export", "predict", "study")
#: set to 1 (or pass --debug) for Python tracebacks instead of one-line errors
DEBUG_ENV = "FACTORTOPY_DEBUG"


class UserError(Exception):
    """A problem with the user's input: printed as one clear message, without a traceback."""


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors in one line like every other error (exit code 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


#: exception types whose messages are written for the user (our own checks raise these), besides
#: OSError, which is always described with its file and what to do
#: (:func:`factortopy._destination.describe_os_error`)
EXPECTED = (UserError, ValueError, KeyError, ImportError, EOFError)
#: expected exception types of modules that may not be imported: (module, type name), looked up only
#: when the module is loaded (an exception of a module never imported cannot have been raised)
EXPECTED_ELSEWHERE = (("zipfile", "BadZipFile"), ("pickle", "UnpicklingError"),
                      ("safetensors", "SafetensorError"), ("factortopy.study.launch", "FitsFailed"))
#: running out of memory is the machine's limit, not a bug: one line with what to lower
OUT_OF_MEMORY = "out of memory: lower --batch-size (or --img-size), or use a machine with more memory"


def _out_of_memory(err: BaseException) -> bool:
    oom = getattr(sys.modules.get("torch.cuda"), "OutOfMemoryError", None)
    return isinstance(err, MemoryError) or (isinstance(oom, type) and isinstance(err, oom)) or (
        isinstance(err, RuntimeError) and "can't allocate memory" in str(err))  # torch's CPU allocator


def _expected(err: BaseException) -> bool:
    if isinstance(err, ModuleNotFoundError) and (err.name or "").startswith("factortopy"):
        return False  # one of our own modules missing: a broken install or a bug, not the user's input
    if isinstance(err, (OSError,) + EXPECTED):
        return True
    for module, name in EXPECTED_ELSEWHERE:
        kind = getattr(sys.modules.get(module), name, None)
        if isinstance(kind, type) and isinstance(err, kind):
            return True
    return False


def error_line(err: BaseException) -> str | None:
    """The one line an expected failure prints (newlines joined), or None for an unexpected error."""
    if _out_of_memory(err):
        return f"{OUT_OF_MEMORY} ({' '.join(str(err).split())[:200]})"
    if not _expected(err):
        return None
    if isinstance(err, OSError):
        from factortopy._destination import describe_os_error

        msg = describe_os_error(err)
    elif isinstance(err, KeyError) and err.args:
        msg = str(err.args[0])
    else:
        msg = str(err) or type(err).__name__
    return " ".join(msg.split())


def debug_requested(args=None) -> bool:
    """``--debug`` given, or ``$FACTORTOPY_DEBUG`` set to anything but '', 0, false or no."""
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return bool(getattr(args, "debug", False)) or env not in ("", "0", "false", "no")


def add_common_arguments(parser) -> None:
    """``--threads N`` and ``--debug`` (every command)."""
    from factortopy.cli.options import add_threads_argument

    add_threads_argument(parser)
    parser.add_argument("--debug", action="store_true",
                        help=f"show Python tracebacks instead of one-line errors (also: {DEBUG_ENV}=1)")


def build_parser() -> argparse.ArgumentParser:
    from factortopy import __version__

    parser = Parser(
        prog="factortopy",
        description="Fit FactorTopy brain encoders on vision backbones and paint them onto the cortex.",
        epilog=f"Errors are one line and exit code 2; --debug (or {DEBUG_ENV}=1) shows Python tracebacks.",
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
        add_common_arguments(p)
        p.set_defaults(_run=module.run, _uses_torch=getattr(module, "USES_TORCH", True))
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {' '.join(str(message).split())}\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    import warnings

    debug = debug_requested(args)
    shown = warnings.formatwarning
    if not debug:  # a warning is one line too (its source line is for debugging)
        warnings.formatwarning = _one_line_warning
    try:
        if args._uses_torch:  # setting torch's threads imports torch (seconds): not for commands without it
            from factortopy.cli.options import apply_threads

            apply_threads(args)
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        line = None if debug else error_line(err)
        if line is None:
            raise  # --debug, or a bug: the traceback is what to report
        print(f"factortopy {args.command}: error: {line}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = shown
