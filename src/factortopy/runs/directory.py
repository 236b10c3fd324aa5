"""Claiming a RUN_DIR for writing: never overwrite a finished run or a user's folder silently, and
never let two writers share one.

States of ``--out``: absent or empty (new run); an interrupted fit (``checkpoint.pt``, no
``config.json``: resumed by the same settings); a finished run (``config.json``: refused unless
``overwrite``); anything else (a folder of the user's own files): refused.

A finished run is replaced only by a finished one: with ``overwrite`` the new run is written aside,
in ``out/.factortopy-next`` (:data:`NEXT`), while the old one stays whole; when the new run is
finished, :meth:`RunDirClaim.finish` removes every file the old run wrote (its evaluations
included) and moves the new files in, config.json last. A fit that fails (a typo in ``--layers``,
a diverging ``--lr``, an interrupt) leaves the old run as it was and no replacement behind.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
from dataclasses import dataclass

from factortopy._files import is_temporary
from factortopy.runs import CHECKPOINT, CHECKSUMS, COMMON_FILES, CONFIG, read_json
from factortopy.runs.writer import recorded_files

LOCK = ".factortopy.lock"
#: where a run that replaces a finished one is written until it is finished (inside ``out``: the
#: same file system, so the files move in by rename; under ``out``'s lock)
NEXT = ".factortopy-next"
#: files any run may hold whatever its kind (evaluations matched by prefix); a kind's own files are
#: those its writer recorded in checksums.json, or that its Run class declares
RUN_FILES = (CONFIG, CHECKSUMS, CHECKPOINT) + COMMON_FILES


class RunDirBusy(ValueError):
    """``--out`` is locked by another writer (a ValueError: the command line reports it as one line)."""


def _own_files(out: str) -> set:
    """Names of files the run in ``out`` wrote beyond :data:`RUN_FILES`: those its writer recorded,
    and (for a finished run whose kind is installed) those its kind declares, which covers runs
    written before every file was recorded."""
    names = set(recorded_files(out))
    try:
        config = read_json(os.path.join(out, CONFIG))
        from factortopy.runs import run_class

        names |= set(run_class(config["kind"]).files)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no config, or a kind not installed here: the recorded files are all we know
    return names


def _is_run_file(name: str, own=frozenset()) -> bool:
    return name in RUN_FILES or name in own or (name.startswith("eval_") and name.endswith((".npz", ".json"))) \
        or name.endswith(".tmp") or is_temporary(name) or name in (LOCK, NEXT)


def _remove(path: str) -> None:
    """Remove a file, a link (never its target) or a folder of ours."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def run_dir_state(out: str) -> str:
    """'new' | 'interrupted' | 'finished' | 'foreign' (see the module docstring)."""
    if not os.path.exists(out):
        return "new"
    if not os.path.isdir(out):
        raise ValueError(f"--out {out} is an existing file, not a folder: choose a folder for the run")
    names = [n for n in os.listdir(out) if n != LOCK]
    if not names:
        return "new"
    if CONFIG in names:
        try:
            config = read_json(os.path.join(out, CONFIG))
        except ValueError:
            return "foreign"
        return "finished" if isinstance(config, dict) and "kind" in config else "foreign"
    own = _own_files(out)
    if CHECKPOINT in names and all(_is_run_file(n, own) for n in names):
        return "interrupted"
    return "foreign"


try:  # POSIX: the take-over of a dead writer's lock is decided by the kernel (flock), one winner
    import fcntl
except ImportError:  # pragma: no cover - Windows: the holder's name alone decides, as before
    fcntl = None

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _flock(fd: int, blocking: bool) -> bool | None:
    """An exclusive flock on ``fd``: True taken, False held by another open file (a live process),
    None where the file system has no locks (Lustre without ``-o flock``, NFS with ``nolock``)."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        return True
    except BlockingIOError:
        return False
    except OSError:
        return None


class RunDirLock:
    """An exclusive lock file in the RUN_DIR naming its holder (host and process id). A second
    writer fails at once with a message naming the holder; a lock left by a dead process on this
    host is taken over, by one process only however many try at once.

    The holder also keeps an ``flock`` on the lock file for as long as it holds it (the kernel drops
    it when the process dies). Taking over a dead holder's lock happens under that flock: a process
    removes the file only while it holds the file's flock and the file still names the dead holder,
    so two processes can never both remove a lock and both create their own (issue 23: 5 of 30
    trials with six processes had two writers). Where the file system has no locks the holder's name
    alone decides, as before.
    """

    def __init__(self, out: str):
        self.path = os.path.join(out, LOCK)
        self.held = False
        self._fd = None

    def acquire(self) -> "RunDirLock":
        """Take the lock, or raise :class:`RunDirBusy` naming its holder."""
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is not None and self._stale(holder) and self._take_over(holder):
                    continue
                raise RunDirBusy(f"{os.path.dirname(self.path)} is being written by another fit "
                                 f"({holder or 'unknown holder'}): wait for it or choose another --out. "
                                 f"If no fit is running, remove {self.path}") from None
            _flock(fd, blocking=True)  # a taker that opened this new file holds it only to see it is not stale
            os.write(fd, me.encode())
            self._fd, self.held = fd, True
            return self
        raise RunDirBusy(f"could not take the lock {self.path}: another fit took it first; wait for it or "
                         "choose another --out")

    def _take_over(self, holder: str) -> bool:
        """Remove the lock file if it is still the one ``holder`` left and no live process holds its
        flock. True: look again (removed, or replaced meanwhile); False: it stands."""
        fd = None
        for mode in (os.O_RDWR, os.O_RDONLY):  # NFS locks need a writable file; another user's is read-only
            try:
                fd = os.open(self.path, mode | _NOFOLLOW | _CLOEXEC)
                break
            except FileNotFoundError:
                return True  # removed meanwhile: try to create it
            except PermissionError:
                continue
            except OSError:
                return False  # e.g. a symbolic link in place of the lock: never followed, never removed
        if fd is None:
            return False
        try:
            if _flock(fd, blocking=False) is False:
                return False  # its holder (or a child of it) is alive
            try:
                now = os.lstat(self.path)
            except FileNotFoundError:
                return True
            mine = os.fstat(fd)
            if (now.st_ino, now.st_dev) != (mine.st_ino, mine.st_dev):
                return True  # another lock file took the name: judge that one
            if os.read(fd, 4096).decode(errors="replace").strip() != holder:
                return True
            os.remove(self.path)  # under the flock: nobody else can be removing or rewriting this file
            return True
        finally:
            os.close(fd)  # releases the flock

    def holder(self) -> str | None:
        """What the lock file says of its holder (``host pid``); None when absent, empty or unreadable."""
        try:
            fd = os.open(self.path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
        except OSError:
            return None
        with os.fdopen(fd) as f:
            try:
                return f.read(4096).strip() or None
            except (OSError, UnicodeDecodeError):
                return None

    @staticmethod
    def _stale(holder: str) -> bool:
        host, _, pid = holder.partition(" ")
        if host != socket.gethostname() or not pid.isdigit():
            return False  # another machine's process: we cannot know, so it stands
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, OverflowError):
            return False
        return False

    def release(self) -> None:
        if self.held:
            try:
                os.remove(self.path)  # before the flock goes: a waiting taker then sees the name gone
            except FileNotFoundError:
                pass
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def take_over_lock(out: str, gone: str) -> bool:
    """Remove ``out``'s lock when it names ``gone`` (a holder known to have ended: a study job's
    previous attempt) and no live process holds it; one process wins however many try. Returns
    whether the lock is gone."""
    lock = RunDirLock(out)
    for _ in range(5):
        if lock.holder() != gone:
            return not os.path.lexists(lock.path)
        if not lock._take_over(gone):
            return False
    return not os.path.lexists(lock.path)


@dataclass
class RunDirClaim:
    """A RUN_DIR claimed for writing (:func:`claim_run_dir`).

    out: the RUN_DIR. state: what it held before ('new', 'interrupted' or 'finished'). lock: the
    lock held on it. path: where the new run's files go: ``out`` itself, or, replacing a finished run,
    ``out/.factortopy-next`` (:data:`NEXT`), so the old run stays whole until :meth:`finish`.
    """

    out: str
    state: str
    lock: RunDirLock
    path: str

    @property
    def replacing(self) -> bool:
        return self.path != self.out

    def finish(self) -> None:
        """The new run, finished in :attr:`path`, takes ``out``'s place: every file the old run wrote
        (evaluations included) is removed, then the new files are moved in by rename, config.json
        last. Files that are not a run's (your notes, figures) stay. No-op when written in place."""
        if not self.replacing:
            return
        new = set(os.listdir(self.path))
        if CONFIG not in new:
            raise ValueError(f"{self.path} holds no finished run: the old run in {self.out} is kept")
        own = _own_files(self.out)  # the old run's record, before the new checksums.json replaces it
        for name in os.listdir(self.out):
            if name not in new and name not in (LOCK, NEXT) and _is_run_file(name, own):
                _remove(os.path.join(self.out, name))
        # until config.json moves, a reader sees the old config with the new checksums: an error, never a mix
        for name in sorted(new - {CONFIG}) + [CONFIG]:
            os.replace(os.path.join(self.path, name), os.path.join(self.out, name))
        os.rmdir(self.path)

    def fail(self) -> None:
        """After a failed write: a replacement is thrown away (the old run stays as it was); a new
        folder without a checkpoint to resume is removed (:func:`discard_unstarted`)."""
        if self.replacing:
            if os.path.lexists(self.path):
                _remove(self.path)
        elif self.state == "new":
            discard_unstarted(self.out)

    def release(self) -> None:
        self.lock.release()


def claim_run_dir(out: str, overwrite: bool = False, resume: bool = True) -> RunDirClaim:
    """Check ``out`` can be written, create it, lock it; returns the :class:`RunDirClaim`.

    Refuses a finished run (unless ``overwrite``: the new run is then written aside and replaces it
    when finished, :meth:`RunDirClaim.finish`) and a folder of other files (always: a run never
    deletes what it did not write). An interrupted fit is resumed, or discarded when ``overwrite`` or
    not ``resume``.
    """
    state = run_dir_state(out)
    if state == "foreign":
        raise ValueError(f"--out {out} is a folder with other files, not a factortopy run: choose a new or "
                         "empty folder (a run never replaces files it did not write)")
    if state == "finished" and not overwrite:
        raise ValueError(f"{out} already holds a finished run: choose another --out, or pass --overwrite "
                         "(overwrite=True) to replace it (its evaluation files are removed too)")
    os.makedirs(out, exist_ok=True)
    lock = RunDirLock(out).acquire()
    path = out
    try:
        if state == "finished":  # the old run stays until the new one is finished
            path = os.path.join(out, NEXT)
            if os.path.lexists(path):
                _remove(path)  # a replacement that never finished
            os.mkdir(path)
        elif state == "interrupted" and (overwrite or not resume):
            own = _own_files(out)
            for name in os.listdir(out):
                if _is_run_file(name, own) and name != LOCK:
                    _remove(os.path.join(out, name))
    except BaseException:
        lock.release()
        raise
    return RunDirClaim(out, state, lock, path)


@contextlib.contextmanager
def writing_run(out: str | None, overwrite: bool = False, resume: bool = True):
    """``with writing_run(out, overwrite) as claim:`` write the run's files into ``claim.path``
    (:func:`claim_run_dir`); when the block ends without an error the run takes ``out``'s place
    (:meth:`RunDirClaim.finish`), after an error nothing half-written is left
    (:meth:`RunDirClaim.fail`), and the lock is released either way. ``out`` None: yields None."""
    if not out:
        yield None
        return
    claim = claim_run_dir(out, overwrite=overwrite, resume=resume)
    try:
        yield claim
        claim.finish()
    except BaseException:
        claim.fail()
        raise
    finally:
        claim.release()


def discard_unstarted(out: str) -> None:
    """Remove a new RUN_DIR whose fit failed before writing anything worth resuming (no checkpoint):
    a failed fit leaves no empty or half-written run behind. A checkpoint stays (it resumes)."""
    if not os.path.isdir(out) or os.path.isfile(os.path.join(out, CHECKPOINT)):
        return
    own = _own_files(out)
    for name in os.listdir(out):
        if _is_run_file(name, own) and name != LOCK:
            _remove(os.path.join(out, name))
    if set(os.listdir(out)) <= {LOCK}:
        try:
            os.remove(os.path.join(out, LOCK))
            os.rmdir(out)
        except OSError:
            pass
