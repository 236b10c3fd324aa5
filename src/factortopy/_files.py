"""Writing a file into a folder: the one way the library puts a file where one may already be.

Every file factortopy writes into a folder it did not just create (a run's files, evaluations,
checkpoints, maps, exports, caches, study outputs) goes through :func:`replacing`:

- the bytes go to a new temporary name in the destination's folder (``.<name>.<random>.tmp``),
  created with ``O_CREAT | O_EXCL | O_NOFOLLOW``: never an existing file, never through a link;
- the file is flushed (and ``fsync``-ed, unless ``durable=False`` for caches that are rebuilt when
  lost), given the mode of an ordinary new file (``0o666`` less the umask: ``safetensors`` and
  ``mkstemp`` choose ``0o600``, which would hide a shared run from lab-mates), and
- renamed over the destination with ``os.replace``. A rename replaces the name itself: a
  destination that is a symbolic link is replaced by the new file, and the file the link pointed to
  is left byte-identical (a run folder from someone else cannot make a write land outside it).

A failed write removes its temporary file and leaves the destination as it was (never a
half-written file under the real name). Helpers for the formats the library writes:
:func:`write_bytes`, :func:`write_text`, :func:`write_npz`, :func:`write_npy`,
:func:`write_safetensors`, :func:`write_torch`, :func:`write_figure`; :func:`replace_file` for a
writer that takes a file object or (``by_path=True``: h5py, nibabel) a path; :func:`open_fresh`
for a stream (a log) that cannot be written whole.

A write that fails (a full disk, a read-only folder) is an ``OSError`` naming the destination and
what to do, its errno kept (:func:`factortopy._destination.write_failed`); torch's and
safetensors' own reports of a failed write (``RuntimeError: [enforce fail at inline_container.cc
...]``, ``SafetensorError``) are turned back into the ``OSError`` under them.

This module sits near the bottom of the layering (its one factortopy import is ``_destination``,
what to say about a failed write): every package may use it.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from typing import Callable

__all__ = ["TMP_SUFFIX", "file_mode", "is_temporary", "open_fresh", "replace_file", "replacing", "save_safetensors",
           "save_torch", "write_bytes", "write_figure", "write_npy", "write_npz", "write_safetensors", "write_text",
           "write_torch"]

#: every temporary name ends with this (a folder's leftovers of a killed write are recognisable)
TMP_SUFFIX = ".tmp"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def file_mode() -> int:
    """The mode a new file gets from ``open()`` in this process: ``0o666`` less the umask."""
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return 0o666 & ~mask


def is_temporary(name: str) -> bool:
    """Whether ``name`` (a bare file name) is a temporary file of :func:`replacing`."""
    return name.startswith(".") and TMP_SUFFIX in name


def _create_temporary(path: str, suffix: str = "") -> tuple[int, str]:
    """A new, empty file beside ``path`` (a name nobody chose before: random, exclusive, no link
    followed); returns (descriptor open for writing, its path)."""
    folder, name = os.path.split(os.path.abspath(path))
    for _ in range(100):
        tmp = os.path.join(folder, f".{name[:180]}.{secrets.token_hex(6)}{TMP_SUFFIX}{suffix}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {path}")


def _fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (where the file system allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | _CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _discard(tmp: str) -> None:
    try:
        os.remove(tmp)
    except OSError:
        pass


def _put_in_place(tmp: str, path: str, durable: bool) -> None:
    os.chmod(tmp, file_mode())
    os.replace(tmp, path)  # replaces the name (a link included), never writes through it
    if durable:
        _fsync_folder(os.path.dirname(os.path.abspath(path)))


def _named(err: OSError, path: str, tmp: str | None = None) -> OSError:
    """The OSError of a failed write into ``path``, naming it (not its temporary) and what to do;
    an error naming another file (a source being read) is left as it is."""
    from factortopy._destination import write_failed

    if err.filename and os.path.abspath(os.fspath(err.filename)) not in (os.path.abspath(path), tmp):
        return err
    return write_failed(err, path)


@contextlib.contextmanager
def _temporary_for(path: str, suffix: str = ""):
    """Yield (descriptor, temporary path) beside ``path``; on any error the temporary is removed and
    an OSError is re-raised naming ``path`` (the one failure path of every writer here)."""
    try:
        fd, tmp = _create_temporary(path, suffix=suffix)
    except OSError as err:
        raise _named(err, path) from None
    try:
        yield fd, tmp
    except BaseException as err:
        _discard(tmp)
        if isinstance(err, OSError):
            raise _named(err, path, tmp) from None
        raise


@contextlib.contextmanager
def replacing(path, mode: str = "wb", encoding: str | None = None, newline: str | None = None,
              durable: bool = True):
    """``with replacing(path, "w") as f: f.write(...)``: a new file object that becomes ``path``
    when the block ends without an error (see the module docstring). mode: ``"wb"`` or ``"w"``
    (text: ``encoding`` defaults to UTF-8). durable: fsync the file and the rename (off for caches)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"replacing() writes a new file: mode 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    with _temporary_for(path) as (fd, tmp):
        if mode == "w":
            f = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline)
        else:
            f = os.fdopen(fd, "wb")
        with f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        _put_in_place(tmp, path, durable)


def replace_file(path, write: Callable, by_path: bool = False, durable: bool = True) -> str:
    """Write ``path`` through ``write`` and put it in place (see the module docstring); returns ``path``.

    write: called with a binary file object, or with ``by_path`` the temporary path (for writers that
    open a name themselves: h5py, nibabel; the temporary name keeps ``path``'s extension, which such
    writers read the format from).
    """
    path = os.fspath(path)
    if not by_path:
        with replacing(path, "wb", durable=durable) as f:
            write(f)
        return path
    with _temporary_for(path, suffix=os.path.splitext(path)[1]) as (fd, tmp):
        os.close(fd)
        write(tmp)
        if durable:
            fd = os.open(tmp, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _put_in_place(tmp, path, durable)
    return path


def write_bytes(path, data: bytes, durable: bool = True) -> str:
    """``data`` as the file ``path``, replaced (never written through an existing file or link)."""
    return replace_file(path, lambda f: f.write(data), durable=durable)


def write_text(path, text: str, durable: bool = True) -> str:
    """``text`` (UTF-8) as the file ``path``, replaced."""
    return write_bytes(path, text.encode("utf-8"), durable=durable)


def write_npz(path, arrays: dict, durable: bool = True) -> str:
    """An uncompressed .npz of ``arrays`` at ``path`` (exactly this name: ``np.savez`` given a file
    object adds no ``.npz``). Object arrays are refused: every reader loads with ``allow_pickle=False``."""
    import numpy as np

    def write(f):
        np.savez(f, **arrays)
    _refuse_objects(arrays, path)
    return replace_file(path, write, durable=durable)


def write_npy(path, array, durable: bool = True) -> str:
    """One array as ``path`` (.npy, never pickled)."""
    import numpy as np

    return replace_file(path, lambda f: np.save(f, np.asarray(array), allow_pickle=False), durable=durable)


def _refuse_objects(arrays: dict, path) -> None:
    import numpy as np

    for k, v in arrays.items():
        if np.asarray(v).dtype.hasobject:
            raise TypeError(f"{path}: array {k!r} holds Python objects; only plain arrays are written "
                            "(they are read back without unpickling)")


def save_safetensors(tensors: dict, path, metadata: dict | None = None) -> None:
    """safetensors' ``save_file`` (tensors made contiguous), a failed write raised as the OSError
    under safetensors' own ``SafetensorError`` (which names only the OS error)."""
    import re

    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=metadata)
    except SafetensorError as err:
        code = re.search(r"os error (\d+)", str(err))
        if code is None:
            raise
        raise OSError(int(code.group(1)), str(err)) from None


def write_safetensors(path, tensors: dict, metadata: dict | None = None, durable: bool = True) -> str:
    """A safetensors file of ``tensors`` (torch tensors, made contiguous) at ``path``."""
    return replace_file(path, lambda tmp: save_safetensors(tensors, tmp, metadata), by_path=True, durable=durable)


def write_figure(path, fig, **savefig) -> str:
    """``fig.savefig(path, **savefig)`` (a matplotlib figure; the format from ``path``'s extension)."""
    return replace_file(path, lambda tmp: fig.savefig(tmp, **savefig), by_path=True)


class _Sink:
    """A file torch.save writes through, keeping the OSError of a failed write: torch reports it as
    ``RuntimeError: [enforce fail at inline_container.cc ...]``, without the errno that says why."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data):
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self):
        self.f.flush()


def save_torch(obj, f) -> None:
    """``torch.save(obj, f)`` into a binary file object or a path, a failed write raised as the
    OSError it is (a full disk, a file-size limit), not torch's RuntimeError."""
    import torch

    if not hasattr(f, "write"):
        with open(f, "wb") as opened:
            return save_torch(obj, opened)
    sink = _Sink(f)
    try:
        torch.save(obj, sink)
    except RuntimeError:
        if sink.error is None:
            raise  # not a write that failed
        raise sink.error from None


def write_torch(path, obj, durable: bool = True) -> str:
    """``torch.save(obj)`` at ``path`` (read back with ``torch.load(weights_only=True)``)."""
    return replace_file(path, lambda f: save_torch(obj, f), durable=durable)


def open_fresh(path, mode: str = "w", encoding: str = "utf-8"):
    """A new file at ``path`` open for streaming (a log another process writes as it goes): whatever
    was at ``path`` (a file or a link) is removed first and the file is created exclusively, so the
    stream never lands in the target of a planted link. Use :func:`replacing` where the file can be
    written whole."""
    path = os.fspath(path)
    try:
        os.remove(path)  # a link itself, never its target
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666)  # less the umask
    return os.fdopen(fd, mode, encoding=None if "b" in mode else encoding)
