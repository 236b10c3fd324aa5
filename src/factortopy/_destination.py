"""Where a command writes, checked before its work; and what to say when the system refuses a file.

:func:`check_destination` is called with an output (``--out``, ``--cache-dir``, a RUN_DIR that
will be written into) before anything is computed: it raises an ``OSError`` whose message names
the option, the path and what to do when the place cannot be written (read-only, no permission,
a file where a folder is needed) or holds less free space than the output's estimated size. The
check tries what the write will do: it creates an anonymous temporary file in the nearest
existing folder (``tempfile.TemporaryFile``, nameless on Linux, removed at once), so a permission,
a read-only mount or an ACL answers as it will for the real write, for root too. Nothing is
created on the way: a missing folder is made by the writer, later.

:func:`describe_os_error` is the one line the command line prints for an ``OSError``.

This module checks; it does not write: files are written by ``factortopy._files`` (a temporary
name renamed into place), which names every failed write with :func:`write_failed`. It sits at the
bottom of the layering (no factortopy imports).
"""
from __future__ import annotations

import errno
import os

#: what to do about an OSError, by errno ("what happened: what to do")
ADVICE = {
    errno.EACCES: "permission denied: choose a place you may write to (or read from), or change its permissions",
    errno.EPERM: "operation not permitted: choose another place, or change its permissions",
    errno.EROFS: "the file system is read-only: choose a writable place",
    errno.ENOSPC: "the disk is full: free space there, or choose another place",
    errno.EDQUOT: "the disk quota is exhausted: free space there, or choose another place",
    errno.EFBIG: "the file is too large for this file system or your file-size limit: choose another place",
    errno.ENOENT: "not found: check the path",
    errno.EISDIR: "is a folder where a file is needed: give a file",
    errno.ENOTDIR: "a part of the path is a file where a folder is needed: check the path",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n)",
}
#: errno values that mean "the disk cannot take more" (a full disk, a quota, a file-size limit)
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def describe_os_error(err: OSError) -> str:
    """One line for an OSError: the file, what happened and what to do. One from the system names
    its file(s) and gets the advice for its errno; a write to an open file names none (the
    system's words and the advice); one of ours (a sentence naming the file) is its message."""
    advice = ADVICE.get(err.errno)
    if err.filename:
        where = f"{err.filename}" + (f" -> {err.filename2}" if err.filename2 else "")
        return f"{where}: {advice or err.strerror}"
    text = err.strerror if err.strerror and len(err.args) == 2 else str(err.args[0] if len(err.args) == 1 else err)
    if advice and err.errno is not None and text == os.strerror(err.errno):
        return f"{text}: {advice.split(': ', 1)[1]}"
    return text


def write_failed(err: OSError | None, what: str, fix: str | None = None) -> OSError:
    """The OSError to raise when writing ``what`` (a path, "the checkpoint PATH") failed with
    ``err``: "cannot write WHAT (the disk is full): FIX", keeping its errno (None: unknown), so
    its type too (PermissionError, ...). fix: what to do (default: the advice for the errno)."""
    code = getattr(err, "errno", None)
    why, _, todo = ADVICE[code].partition(": ") if code in ADVICE else (
        getattr(err, "strerror", None) or str(err or "failed"), "", "")
    return OSError(code, f"cannot write {what} ({why})" + (f": {fix or todo}" if fix or todo else ""))


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # unreachable


def free_bytes(path) -> int | None:
    """Free bytes for this user on the file system holding ``path`` (an existing folder); None where
    the system cannot tell."""
    import shutil

    try:
        return int(shutil.disk_usage(path).free)
    except OSError:
        return None


def check_destination(path, what: str, *, folder: bool = False, need_bytes: int | None = None) -> None:
    """Raise an OSError naming ``what`` (the option, e.g. ``--out``) and ``path`` if ``path``
    cannot be written now: a file (``folder=False``) or a folder (``folder=True``) to be created or
    replaced. need_bytes: the output's estimated size; refused when the file system has less free
    space (the estimate is the caller's: the bytes of the arrays it will write)."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path) and not folder:
        raise IsADirectoryError(errno.EISDIR, f"{what} {path} is a folder: give a file name")
    if os.path.exists(path) and folder and not os.path.isdir(path):
        raise NotADirectoryError(errno.ENOTDIR, f"{what} {path} is an existing file, not a folder: choose a folder")
    existing = path if folder else os.path.dirname(path)
    while not os.path.exists(existing):  # the folders a writer will create: decided by the first that exists
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise NotADirectoryError(errno.ENOTDIR, f"{what} {path}: {existing} is a file, not a folder; check the path")
    import tempfile

    try:  # what the write will do, nameless: permissions, ACLs and read-only mounts answer as they will then
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        advice = ADVICE.get(err.errno, err.strerror or str(err))
        raise OSError(err.errno, f"{what} {path} cannot be written ({existing}: {advice})") from None
    free = free_bytes(existing) if need_bytes else None
    if free is not None and need_bytes > free:
        raise OSError(errno.ENOSPC, f"{what} {path} needs about {_size(need_bytes)} but {existing} has "
                                    f"{_size(free)} free: free space there, or choose another place")
