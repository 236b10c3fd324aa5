"""Data: subjects (images + responses + vertices), NSD layouts, fsaverage meshes.

``load_subject(spec)`` reads a ``--data`` spec ``KIND:PATH[?key=value&...]``:

* ``algonauts:PATH/subj01[?split=training|test]`` - the Algonauts 2023 layout (any of the 8 subjects)
* ``nsd:PATH/to/nsd_root?subject=1[&split=train|test|all][&rois=nsdgeneral][&nan=drop|error]
  [&trials_per_session=750][&sessions=40]`` - raw NSD betas on fsaverage
* ``generic:PATH[?split=train|test|all]`` - your own data (a folder or an .npz; see
  :mod:`factortopy.data.generic`)

Query values are passed to the loader as keyword arguments (integers, floats and true/false are
converted); keyword arguments of ``load_subject`` override them. See docs/data.md.
"""
from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

KINDS = ("algonauts", "nsd", "generic")


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


def parse_spec(spec: str) -> tuple[str, str, dict]:
    """``'nsd:/data/nsd?subject=2&split=test'`` -> ``('nsd', '/data/nsd', {'subject': 2, 'split': 'test'})``."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in KINDS:
        raise ValueError(f"data spec {spec!r} must look like KIND:PATH with KIND one of {', '.join(KINDS)}, "
                         "e.g. algonauts:/data/subj01 or nsd:/data/nsd?subject=1")
    path, _, query = rest.partition("?")
    if not path:
        raise ValueError(f"data spec {spec!r} has no path")
    return kind, path, {k: _convert(v) for k, v in parse_qsl(query, keep_blank_values=False, strict_parsing=False)}


def with_options(spec: str, **options) -> str:
    """The spec with query options set (e.g. ``split='test'``); None removes an option."""
    kind, path, query = parse_spec(spec)
    query = {k: v for k, v in {**query, **options}.items() if v is not None}
    return f"{kind}:{path}" + (f"?{urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()})}" if query else "")


def held_out_spec(spec: str) -> str:
    """The spec of the same subject's held-out test images (``split=test`` for every kind)."""
    return with_options(spec, split="test")


def load_subject(spec: str, **kwargs):
    """Read a subject from a data spec ``KIND:PATH[?options]`` (kinds: algonauts, nsd, generic)."""
    import inspect

    kind, path, options = parse_spec(spec)
    options.update(kwargs)
    if kind == "algonauts":
        from factortopy.data.algonauts import load_algonauts as loader
    elif kind == "nsd":
        from factortopy.data.nsd import load_nsd as loader
    else:
        from factortopy.data.generic import load_generic as loader
    known = list(inspect.signature(loader).parameters)[1:]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {kind} data in {spec!r}; known: {', '.join(known)}")
    return loader(path, **options)
