"""Readers of real data: subjects (images + responses + vertices) from the Algonauts 2023 and raw NSD
layouts and your own files, their image-set identity, splits, noise ceilings and ROIs. (Synthetic
planted subjects: factortopy.datasets; fsaverage meshes: factortopy.surface.)

``load_subject(spec)`` reads a ``--data`` spec ``KIND:PATH[?key=value&...]``:

* ``algonauts:PATH/subj01[?split=training|test][&vertex_set=nsdgeneral+RSC|nsdgeneral][&rois=streams/early]``
  - the Algonauts 2023 layout (any of the 8 subjects)
* ``nsd:PATH/to/nsd_root?subject=1[&split=train|test|all][&rois=nsdgeneral|streams/early|...][&nan=drop|error]
  [&trials_per_session=750][&sessions=40]`` - raw NSD betas on fsaverage

``rois=`` is one ROI selection grammar for every kind (:func:`factortopy.data.rois.parse_roi_spec`:
``<atlas>/<name>``, ``<atlas>`` for the union of its regions, several joined by ``+``); a loaded
subject takes the same selection in :meth:`~factortopy.data.subject.Subject.subset`.
* ``generic:PATH[?split=train|test|all]`` - your own data (a folder or an .npz; see
  :mod:`factortopy.data.generic`)

Query values are passed to the loader as keyword arguments (integers, floats and true/false are
converted; ``+`` is kept, so ``rois=a+b`` names two labels); keyword arguments of ``load_subject``
override them. See docs/data.md.
"""
from __future__ import annotations

import os
import re
from urllib.parse import quote, unquote

#: data kinds registered in this process (:func:`register_data_kind`): kind -> loader function.
#: Installed kinds (entry-point group ``factortopy.data_kinds``; factortopy's own: algonauts, nsd,
#: generic) are found by :func:`data_kinds`.
LOADERS: dict = {}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _convert(value: str):
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def _parse_query(query: str) -> dict | None:
    """``key=value&...`` -> dict (values percent-decoded; ``+`` stays ``+``, it separates names in
    rois=a+b); None when ``query`` is not of that form."""
    out = {}
    for part in query.split("&"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not _KEY.match(key):
            return None
        out[key] = _convert(unquote(value))
    return out


def data_kinds() -> dict:
    """kind -> its loader's plug-in entry (:class:`factortopy._plugins.Plugin`) or, for a kind
    registered in this process, the loader itself. Installed kinds first, in their order."""
    from factortopy._plugins import plugins

    return {**plugins("data_kinds"), **LOADERS}


def register_data_kind(kind: str, loader) -> None:
    """Read ``--data KIND:PATH`` with ``loader(path, **options) -> Subject`` in this process only
    (a notebook). A kind other processes can read is an entry point in ``factortopy.data_kinds``."""
    LOADERS[kind] = loader


def loader_of(kind: str, recorded: dict | None = None):
    """The loader function of ``kind``; an unknown kind says what to install (``recorded``: what a
    run recorded of the kind's distribution, config ``plugins``)."""
    found = data_kinds()
    if kind not in found:
        from factortopy._plugins import missing_message

        raise ValueError(f"{missing_message('data kind', kind, recorded)}; data kinds: {', '.join(found)}")
    from factortopy._plugins import Plugin

    entry = found[kind]
    return entry.load() if isinstance(entry, Plugin) else entry


def parse_spec(spec: str) -> tuple[str, str, dict]:
    """``'nsd:/data/nsd?subject=2&split=test'`` -> ``('nsd', '/data/nsd', {'subject': 2, 'split': 'test'})``.

    Options follow the first ``?`` after which everything is ``key=value`` pairs joined by ``&``; a
    path that itself contains ``?`` is read whole when it exists (or write the ``?`` as ``%3F``).
    """
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in data_kinds():
        raise ValueError(f"data spec {spec!r} must look like KIND:PATH with KIND one of {', '.join(data_kinds())}, "
                         "e.g. algonauts:/data/subj01 or nsd:/data/nsd?subject=1 (another kind comes from a "
                         "plug-in package: factortopy.data_kinds)")
    path, query = rest, {}
    if "?" in rest and not os.path.exists(os.path.expanduser(rest)):
        cuts = [i for i, c in enumerate(rest) if c == "?"]
        for i in cuts:
            parsed = _parse_query(rest[i + 1:])
            if parsed is not None:
                path, query = rest[:i], parsed
                break
        else:
            raise ValueError(f"data spec {spec!r}: cannot read the options after '?' (they must be key=value pairs "
                             "joined by '&'); if '?' is part of the path, write it as %3F")
    path = unquote(path) if "%3F" in path.upper() else path
    if not path:
        raise ValueError(f"data spec {spec!r} has no path")
    return kind, path, query


def with_options(spec: str, **options) -> str:
    """The spec with query options set (e.g. ``split='test'``); None removes an option."""
    kind, path, query = parse_spec(spec)
    query = {k: v for k, v in {**query, **options}.items() if v is not None}
    text = "&".join(f"{k}={quote(str(v).lower() if isinstance(v, bool) else str(v), safe='/,:+')}"
                    for k, v in query.items())
    return f"{kind}:{path.replace('?', '%3F')}" + (f"?{text}" if text else "")


def held_out_spec(spec: str) -> str:
    """The spec of the same subject's held-out test images (``split=test`` for every kind)."""
    return with_options(spec, split="test")


#: loader options that name files or folders: made absolute with the path by :func:`absolute_spec`
PATH_OPTIONS = ("mesh_dir", "stimuli")


def absolute_spec(spec: str, base: str | None = None, **options) -> str:
    """The spec with its path (and path-valued options) absolute, plus ``options``: the form a run
    records, so that a resume from another working directory, or with the path written once
    relative and once absolute, names the same data. base: the folder relative paths are read
    against (default: the working directory; a study file's folder for its specs)."""
    def absolute(p: str) -> str:
        p = os.path.expanduser(str(p))
        return os.path.abspath(p if base is None else os.path.join(base, p))

    kind, path, query = parse_spec(spec)
    query.update({k: v for k, v in options.items() if v is not None})
    query.update({k: absolute(query[k]) for k in PATH_OPTIONS if k in query})
    return with_options(f"{kind}:{absolute(path).replace('?', '%3F')}", **query)


def load_subject(spec: str, **kwargs):
    """Read a subject from a data spec ``KIND:PATH[?options]`` (kinds: :func:`data_kinds`).

    The subject's ``extra["data_spec"]`` is the spec made absolute with ``kwargs`` included
    (:func:`absolute_spec`): :func:`factortopy.fit` records it, so a run fitted from Python can be
    evaluated without re-supplying its data."""
    import inspect

    kind, path, options = parse_spec(spec)
    options.update(kwargs)
    loader = loader_of(kind)
    known = list(inspect.signature(loader).parameters)[1:]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {kind} data in {spec!r}; known: {', '.join(known)}")
    subject = loader(path, **options)
    subject.extra["data_spec"] = absolute_spec(spec, **kwargs)
    return subject
