"""Writing a RUN_DIR: the one place a file enters a run folder.

:func:`write_run_file` puts one file into a folder through :func:`factortopy._files.replace_file`:
written under a new temporary name beside it and renamed over the destination (never a half-written
file under the real name, never written through an existing file or link), with the permissions of
an ordinary new file (``0o666`` less the umask, whatever the library that wrote it chose:
safetensors writes 0600, so a lab-mate could not read a shared run). Every writer of a run folder
goes through it: :class:`RunWriter` for a run's own files, ``factortopy evaluate`` for its
``eval_<split>`` files, the checkpoint.

:class:`RunWriter` writes a finished run of one kind (a :class:`~factortopy.runs.Run` subclass):

- it accepts only the files the kind declares (:data:`~factortopy.runs.COMMON_FILES` plus the
  class's ``files``), and :meth:`RunWriter.finish` refuses to finish while one is missing;
- it records every file's SHA-256 in ``checksums.json`` as it goes (rewritten after each file), so
  the record always names what the writer put in the folder (``--overwrite`` removes exactly
  those) and readers verify them (:func:`~factortopy.runs.verify_checksum`); config.json's own
  SHA-256 is recorded before config.json is written, and config.json says ``run_format``
  (:data:`~factortopy.runs.RUN_FORMAT`): a run of this format without its checksums is an error;
- metrics name their one headline key (``metrics["headline"]``, a key of the metrics);
- :meth:`RunWriter.finish` records the data spec with its paths made absolute (the run is
  evaluated from any working directory) and writes ``config.json`` LAST: a folder with it is a
  finished run.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Callable

import numpy as np

from factortopy.runs import CHECKSUMS, COMMON_FILES, CONFIG, METRICS, RUN_FORMAT, json_ready, read_json

__all__ = ["RunWriter", "write_run_file", "write_run_json", "write_run_npz"]


def write_run_file(folder: str, name: str, write: Callable[[str], None]) -> str:
    """Write ``folder/name`` through ``write(temporary_path)`` and rename it over ``folder/name``
    (:func:`factortopy._files.replace_file`: a new temporary name, never an existing file or link;
    the umask's mode). A failed write leaves no temporary file and the previous file, if any,
    unchanged. Returns the final path."""
    from factortopy._files import replace_file

    return replace_file(os.path.join(folder, name), write, by_path=True)


def _write_npz(arrays: dict) -> Callable[[str], None]:
    def write(tmp):
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a bare name
            np.savez(f, **arrays)
    return write


def _write_text(text: str) -> Callable[[str], None]:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return write


def json_text(obj) -> str:
    """Strict JSON text of ``obj`` (numpy values as plain ones; NaN/inf refused, naming where)."""
    return json.dumps(json_ready(obj), indent=2, allow_nan=False) + "\n"


def write_run_npz(folder: str, name: str, **arrays) -> str:
    """:func:`write_run_file` of an .npz of ``arrays`` (e.g. a finished run's ``eval_<split>.npz``)."""
    return write_run_file(folder, name, _write_npz(arrays))


def write_run_json(folder: str, name: str, obj) -> str:
    """:func:`write_run_file` of strict JSON (e.g. a finished run's ``eval_<split>.json``)."""
    return write_run_file(folder, name, _write_text(json_text(obj)))


class RunWriter:
    """Writes the files of one finished run of kind ``run_class`` into ``out`` (created if needed;
    claim it first with :func:`~factortopy.runs.directory.claim_run_dir`).

    run_class: the kind's :class:`~factortopy.runs.Run` subclass; its ``kind`` goes into
    config.json and its ``files`` (with :data:`~factortopy.runs.COMMON_FILES`) are the files this
    writer accepts and requires.
    """

    def __init__(self, out: str, run_class):
        self.out = os.fspath(out)
        self.kind = run_class.kind
        self.files = tuple(COMMON_FILES) + tuple(run_class.files)
        self.sums: dict[str, str] = {}
        os.makedirs(self.out, exist_ok=True)

    # ---- the files --------------------------------------------------------------------------------
    def file(self, name: str, write: Callable[[str], None]) -> str:
        """Write the kind's file ``name`` through ``write(temporary_path)`` and record its SHA-256."""
        from factortopy._digest import sha256_file

        if name not in self.files:
            raise ValueError(f"a {self.kind!r} run has no file {name!r}; its files: {', '.join(self.files)} "
                             "(a new file is declared in the kind's Run.files)")
        path = write_run_file(self.out, name, write)
        self.sums[name] = sha256_file(path)
        write_run_file(self.out, CHECKSUMS, _write_text(json_text(self.sums)))  # the record, kept current
        return path

    def npz(self, name: str, **arrays) -> str:
        """An .npz of ``arrays`` (never pickled objects: read back with ``allow_pickle=False``)."""
        return self.file(name, _write_npz(arrays))

    def json(self, name: str, obj) -> str:
        """Strict JSON (numpy values as plain ones; NaN/inf refused)."""
        return self.file(name, _write_text(json_text(obj)))

    def jsonl(self, name: str, rows) -> str:
        """One JSON object per line."""
        return self.file(name, _write_text("".join(json.dumps(json_ready(r)) + "\n" for r in rows)))

    def metrics(self, metrics: dict) -> str:
        """metrics.json; ``metrics["headline"]`` must name the one key that is the run's headline score."""
        key = metrics.get("headline")
        if not isinstance(key, str) or not isinstance(metrics.get(key), (int, float)):
            raise ValueError(f"metrics['headline'] must name a numeric key of the metrics, got {key!r}")
        return self.json(METRICS, metrics)

    def copy(self, name: str, source: str) -> str:
        """The file ``source`` (e.g. the same file of another run), byte for byte."""
        import shutil

        return self.file(name, lambda tmp: shutil.copyfile(source, tmp))

    # ---- finishing -----------------------------------------------------------------------------------
    def finish(self, config: dict) -> dict:
        """Write config.json last (the run is then finished) and return what was written.

        ``kind`` is set to the writer's; ``data`` (a data spec string) is recorded with its paths
        absolute. Every file the kind declares must have been written.
        """
        missing = [n for n in self.files if n not in self.sums]
        if missing:
            raise ValueError(f"a {self.kind!r} run needs {', '.join(missing)} before its config.json is written")
        config = dict(config, kind=self.kind, run_format=RUN_FORMAT)
        if isinstance(config.get("data"), str):
            from factortopy.data import absolute_spec

            config["data"] = absolute_spec(config["data"])
        plugins = used_plugins(self.kind, config.get("data"))
        if plugins:
            config["plugins"] = plugins
        text = json_text(config)
        # config.json's digest is recorded before it is written: a folder with a config is finished
        # and checked in full, the config included (an edited mean, data spec or backbone is caught)
        self.sums[CONFIG] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        write_run_file(self.out, CHECKSUMS, _write_text(json_text(self.sums)))
        write_run_file(self.out, CONFIG, _write_text(text))
        return config


def used_plugins(kind: str, data) -> dict:
    """``"GROUP:NAME"`` -> the distribution and version of each plug-in a run of ``kind`` on data
    spec ``data`` uses, other than factortopy's own: a process without them then says what to
    install. (A plug-in backbone source is recorded in the backbone identity, ``distribution``.)"""
    from factortopy._plugins import find

    out = {}
    for group, name in (("run_kinds", kind), ("data_kinds", data.partition(":")[0] if isinstance(data, str) else None)):
        plugin = find(group, name) if name else None
        if plugin is not None and not plugin.builtin:
            out[f"{group}:{name}"] = plugin.record()
    return out


def recorded_files(run_dir: str) -> list[str]:
    """The files a run's writer recorded in its checksums.json (empty when there is none)."""
    path = os.path.join(run_dir, CHECKSUMS)
    try:
        sums = read_json(path)
    except (OSError, ValueError):
        return []
    return [n for n in sums if isinstance(n, str) and os.sep not in n] if isinstance(sums, dict) else []
