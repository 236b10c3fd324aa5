"""Plug-ins: entry points of installed distributions, found lazily, one table per group.

Four groups extend factortopy (docs/architecture.md, "Write a plug-in package"); an entry point
``NAME = "module:attr"`` in

- ``factortopy.backbone_sources`` names a builder ``build(target, spec) -> Backbone``
  (``SOURCE:MODEL`` names select it);
- ``factortopy.data_kinds`` names a loader ``load(path, **options) -> Subject`` (``--data KIND:PATH``);
- ``factortopy.map_kinds`` names a :class:`factortopy.viz.kinds.MapKind` (``paint --what NAME``);
- ``factortopy.run_kinds`` names a :class:`factortopy.runs.Run` subclass (config.json's ``kind``).

factortopy's own entries are declared in pyproject.toml and, identically, in
``factortopy._BUILTIN_PLUGINS`` (a test keeps the two equal). The built-ins are always taken from
that table, never from factortopy's installed metadata: a fresh clone on ``PYTHONPATH``, or an
editable install made before a group existed (its dist-info is stale), works exactly like a fresh
install. Other distributions are found through :func:`importlib.metadata.entry_points`, once per
process and group, on the first lookup (``import factortopy`` scans nothing and imports no
plug-in). A name claimed twice (by two distributions, or a plug-in taking a built-in's name) is an
error naming both; a plug-in whose module fails to import is an error naming its distribution.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

#: short name -> entry-point group
GROUPS = {
    "backbone_sources": "factortopy.backbone_sources",
    "data_kinds": "factortopy.data_kinds",
    "map_kinds": "factortopy.map_kinds",
    "run_kinds": "factortopy.run_kinds",
}
#: the distribution whose entries are the built-ins (taken from the package, not its metadata)
OWN_DISTRIBUTION = "factortopy"


class PluginError(ValueError):
    """A plug-in that cannot be used: two claims on one name, or a module that fails to import."""


@dataclass(frozen=True)
class Plugin:
    """One entry: ``target`` is ``"module:attr"``; ``distribution`` / ``version`` name the installed
    distribution that declares it (``factortopy`` for a built-in; None for one registered in this
    process)."""

    group: str
    name: str
    target: str
    distribution: str | None = OWN_DISTRIBUTION
    version: str | None = None

    @property
    def builtin(self) -> bool:
        return self.distribution == OWN_DISTRIBUTION

    def record(self) -> dict:
        """What a run records of it: enough to say what to install when it is missing."""
        return {"distribution": self.distribution, "version": self.version}

    def load(self):
        """The object the entry names (its module imported now)."""
        module, _, attr = self.target.partition(":")
        try:
            obj = importlib.import_module(module)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as err:
            if self.distribution is None:  # registered in this process (register_source and the like)
                raise PluginError(f"the {self.group} {self.name!r} registered in this process as {self.target!r} "
                                  f"cannot be loaded ({type(err).__name__}: {err}); register an importable "
                                  "'module:function'") from err
            where = "factortopy itself" if self.builtin else f"the distribution {self.distribution!r}"
            raise PluginError(f"the {self.group} entry {self.name!r} = {self.target!r} of {where} cannot be "
                              f"loaded ({type(err).__name__}: {err}); reinstall or fix {self.distribution}, "
                              "or uninstall it") from err
        return obj


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _builtins(group: str) -> dict[str, Plugin]:
    from factortopy import _BUILTIN_PLUGINS, __version__

    return {name: Plugin(GROUPS[group], name, target, OWN_DISTRIBUTION, __version__)
            for name, target in _BUILTIN_PLUGINS.get(GROUPS[group], {}).items()}


_FOUND: dict[str, dict[str, Plugin]] = {}


def plugins(group: str) -> dict[str, Plugin]:
    """name -> :class:`Plugin` of one group (a key of :data:`GROUPS`): the built-ins, then every
    other installed distribution's entries. Scanned once per process; :func:`rescan` forgets it."""
    if group not in GROUPS:
        raise ValueError(f"unknown plug-in group {group!r}; groups: {', '.join(GROUPS)}")
    if group in _FOUND:
        return _FOUND[group]
    from importlib.metadata import entry_points

    table = _builtins(group)
    seen: set[tuple] = set()
    for ep in entry_points(group=GROUPS[group]):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "an unknown distribution"
        if _normal(dist_name) == OWN_DISTRIBUTION:
            continue  # the built-ins come from the package itself (see the module docstring)
        key = (ep.name, ep.value, _normal(dist_name))
        if key in seen:  # one distribution found twice on sys.path (e.g. an egg-link and a dist-info)
            continue
        seen.add(key)
        new = Plugin(GROUPS[group], ep.name, ep.value, dist_name, dist.version if dist is not None else None)
        old = table.get(ep.name)
        if old is not None:
            owner = "factortopy's built-in" if old.builtin else f"the distribution {old.distribution!r} ({old.target})"
            raise PluginError(f"two plug-ins claim the {GROUPS[group]} name {ep.name!r}: {owner} and the "
                              f"distribution {dist_name!r} ({ep.value}); uninstall one of them "
                              f"(or rename its entry point)")
        table[ep.name] = new
    _FOUND[group] = table
    return table


def find(group: str, name: str) -> Plugin | None:
    """The plug-in ``name`` of ``group``, or None."""
    return plugins(group).get(name)


def rescan() -> None:
    """Forget what was found (e.g. after installing a plug-in in a running notebook)."""
    _FOUND.clear()


def missing_message(what: str, name: str, recorded: dict | None) -> str:
    """The sentence saying which distribution to install for a missing plug-in ``name``, from what
    a run recorded of it (:meth:`Plugin.record`); a generic hint when nothing was recorded."""
    dist = (recorded or {}).get("distribution")
    if dist and dist != OWN_DISTRIBUTION:
        version = (recorded or {}).get("version")
        pin = f"=={version}" if version else ""
        return (f"the {what} {name!r} comes from the distribution {dist!r}{f' {version}' if version else ''}, "
                f"which is not installed here: pip install '{dist}{pin}'")
    return f"no installed distribution provides the {what} {name!r} (is its plug-in package installed?)"
