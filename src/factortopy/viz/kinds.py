"""Map kinds: the one table of what can be painted.

Each :class:`MapKind` names a map, the per-vertex keys of a maps dict (:func:`factortopy.viz.load_maps`)
it reads, how it becomes a :class:`~factortopy.viz.maps.Painting`, and what its colours mean. The
``paint`` command's ``--what`` choices, :func:`~factortopy.viz.paint`, :func:`~factortopy.viz.run_grid`
and the documentation's list all come from :data:`MAP_KINDS`. A selector's map comes from its row
(model/selectors.py); any other map kind is an entry point in ``factortopy.map_kinds`` naming a
MapKind (in a notebook: one :func:`register_map_kind` call). Any other (N,) per-vertex key of a maps
dict (e.g. ``'layer_r'``) can still be painted by name as a plain value map (:func:`map_kind`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from factortopy.viz import colors as C
from factortopy.viz import maps as M


def _share_nothing(columns: list, options: dict) -> dict:
    return {}


@dataclass(frozen=True)
class MapKind:
    """One paintable map.

    name: what users type (``--what NAME``). needs: keys of the maps dict it reads besides
    ``vertex`` / ``hemi``. paint: ``(maps, options) -> Painting``, options holding ``n_clusters`` and
    whatever ``share`` returned. description: one line, what the colours mean (CLI help, docs).
    share: ``(list of maps dicts, options) -> dict``, what the columns of a grid row share (one
    colour range, the layer names). missing: hint added when a needed key is absent.
    """

    name: str
    needs: tuple
    paint: Callable
    description: str
    share: Callable = _share_nothing
    missing: str = ""


class _MapKinds(dict):
    """The table of map kinds, filled on first use (not at import: a plug-in's module may import
    this one, and would otherwise be loaded while it is still half imported)."""

    def _fill(self) -> None:
        if self.__dict__.get("filled"):
            return
        self.__dict__["filled"] = True
        registered = dict(self)  # any added before the first use go after the installed ones
        dict.clear(self)
        for kind in (*selector_map_kinds(), *_installed_map_kinds(), *registered.values()):
            if dict.__contains__(self, kind.name):
                raise ValueError(f"map kind {kind.name!r} is already registered")
            dict.__setitem__(self, kind.name, kind)


def _filling(name: str):
    """dict's method ``name``, run after the table is filled."""
    method = getattr(dict, name)

    def call(self, *args, **kwargs):
        self._fill()
        return method(self, *args, **kwargs)

    return call


for _name in ("__getitem__", "__contains__", "__iter__", "__len__", "__delitem__", "__repr__", "get", "keys",
              "values", "items", "copy"):
    setattr(_MapKinds, _name, _filling(_name))


#: name -> MapKind, in the order of the documentation and the CLI's choices: the selectors' maps
#: (one per row of model/selectors.py), then the installed entry points of factortopy.map_kinds
#: (channel, r, r2, ceiling_r, then plug-ins'), then any registered in this process
MAP_KINDS: dict[str, MapKind] = _MapKinds()


def register_map_kind(kind: MapKind) -> MapKind:
    """Add ``kind`` to :data:`MAP_KINDS` in this process (a name can be registered once). A map kind
    every process knows is an entry point in ``factortopy.map_kinds`` of an installed distribution."""
    if kind.name in MAP_KINDS:
        raise ValueError(f"map kind {kind.name!r} is already registered")
    dict.__setitem__(MAP_KINDS, kind.name, kind)
    return kind


def _value_kind(name: str, key: str, description: str, missing: str = "") -> MapKind:
    """A per-vertex value painted on one colour scale, shared along a grid row."""
    def paint(maps, options):
        return M.value_painting(maps["vertex"], maps["hemi"], np.asarray(maps[key], float), options.get("cmap"),
                                options.get("vmin"), options.get("vmax"), label=key)

    def share(columns, options):
        vals = [np.asarray(c[key], float) for c in columns if c.get(key) is not None]
        lo, hi = C.value_range(np.concatenate(vals) if vals else np.zeros(1))
        return {"vmin": lo, "vmax": hi, "cmap": "RdBu_r" if lo < 0 < hi else "viridis"}

    return MapKind(name, (key,), paint, description, share, missing)


def _shared_layer_names(columns, options):
    # layer_names may be a list or a numpy array (as read from .npz): never test its truth value
    names = [tuple(c.get("layer_names") if c.get("layer_names") is not None else ()) for c in columns]
    same = all(n == names[0] for n in names) and len(names[0]) > 0
    return {"layer_names": list(names[0]) if same else None}


def _layer(maps, options):
    names = options["layer_names"] if "layer_names" in options else maps.get("layer_names")
    return M.layer_painting(maps["vertex"], maps["hemi"], maps["layer_probs"], names)


def _rf_size(maps, options):
    # the grid the run was fitted on comes with its maps (Maps.grid; None e.g. for a planted truth)
    return M.rf_size_painting(maps["vertex"], maps["hemi"], maps["rf_size"], maps.get("grid"),
                              vmax=options.get("rf_vmax"))


def _shared_rf_range(columns, options):
    vals = [np.asarray(c["rf_size"], float) for c in columns if c.get("rf_size") is not None]
    return {"rf_vmax": C.value_range(np.concatenate(vals) if vals else np.zeros(1), 0.0)[1]}


def _space(maps, options):
    return M.space_painting(maps["vertex"], maps["hemi"], maps["space_xy"])


def _scale(maps, options):
    return M.scale_painting(maps["vertex"], maps["hemi"], maps["scale"])


def _channel(maps, options):
    from factortopy.analysis.clusters import CHANNEL_CLUSTERS

    k = options.get("n_clusters", CHANNEL_CLUSTERS)
    # the clusters the run's writer computed (same settings); older runs and other k: computed here
    stored = maps.get("channel_clusters") if k == CHANNEL_CLUSTERS else None
    return M.channel_painting(maps["vertex"], maps["hemi"], maps["readout"], k, labels=stored)


#: selector row name -> (painter, share, missing hint, legend text) for the rows viz paints its own
#: way; any other row of width 1 is painted as a value map of its key (selector_map_kinds)
SELECTOR_PAINTERS = {
    "layer": (_layer, _shared_layer_names, "",
              "expected layer (blue = first, red = last), brightness = confidence of the layer selector"),
    "space": (_space, _share_nothing, "",
              "selected image position through a colour wheel (hue = direction, saturation = distance from centre)"),
    "scale": (_scale, _share_nothing, "", "selected token scale: green = local, pink = global"),
    "rf": (_rf_size, _shared_rf_range, " (fitted with --receptive-field gaussian? a point run's size is 0)",
           "receptive-field size: sigma in image widths and in grid cells (dark = a point, bright = large)"),
}
#: the map painted when none is named (paint --what's default); listed first
DEFAULT_MAP = "layer"


def selector_map_kinds() -> list[MapKind]:
    """One map kind per row of the selector table (``map_kind``; model/selectors.py), the default
    map first, then in row order: a new selector is paintable without an edit here."""
    from factortopy.model.selectors import SELECTORS

    kinds = []
    for spec in SELECTORS:
        if spec.map_kind is None:
            continue
        if spec.name in SELECTOR_PAINTERS:
            paint, share, missing, description = SELECTOR_PAINTERS[spec.name]
            kinds.append(MapKind(spec.map_kind, (spec.key,), paint, description, share, missing))
        elif spec.width == 1:
            kinds.append(_value_kind(spec.map_kind, spec.key, f"{spec.name} selector: {spec.description}"))
    return sorted(kinds, key=lambda k: k.name != DEFAULT_MAP)


_SCORES = " (scores.npz missing? a finished fit writes it)"


def _score_keys(maps) -> list[str]:
    return sorted(k for k in maps if k.endswith("_score") and maps.get(k) is not None and np.ndim(maps[k]) == 1)


def _score_key(maps) -> str:
    """The per-vertex noise-normalised score of the one split ``factortopy evaluate`` scored with a noise
    ceiling; none or several is an error saying what to do (never a silent choice of split)."""
    keys = _score_keys(maps)
    if len(keys) == 1:
        return keys[0]
    where = maps.get("path", "the run")
    if not keys:
        raise ValueError(f"{where} has no noise-normalised score: run `factortopy evaluate {where}` (--split heldout "
                         "or test) on data that carry a noise ceiling first (it writes eval_<split>.npz)")
    raise ValueError(f"{where} has noise-normalised scores of several splits: choose one with --what "
                     + " or --what ".join(keys))


def _shared_score(columns, options):
    vals = [np.asarray(c[_score_key(c)], float) for c in columns if _score_keys(c)]
    lo, hi = C.value_range(np.concatenate(vals) if vals else np.zeros(1), 0.0)
    return {"vmin": lo, "vmax": max(hi, 1e-9), "cmap": "viridis"}


# the built-in map kinds that are not selectors: entry points in factortopy.map_kinds like any
# plug-in's (pyproject.toml), which name these objects
CHANNEL = MapKind("channel", ("readout",), _channel,
                  "clusters of readout weights (cosine k-means), one colour per cluster")
# 'r', not 'score': in factortopy a score is the noise-normalised Algonauts score (evaluation)
R = _value_kind("r", "r", "held-out Pearson r per vertex (scores.npz: images that chose nothing)", _SCORES)
R2 = _value_kind("r2", "r2", "held-out R^2 per vertex (scores.npz)", _SCORES)
SCORE = MapKind("score", (), lambda m, o: _value_kind("score", _score_key(m), "").paint(m, o),
                "noise-normalised Algonauts score per vertex, % of the noise ceiling (factortopy evaluate on data "
                "with a noise ceiling; each split's as <split>_score)", _shared_score)
CEILING_R = _value_kind("ceiling_r", "ceiling_r", "noise ceiling as a correlation, per vertex (planted truth)")


def _installed_map_kinds() -> list[MapKind]:
    """The map kinds of the entry-point group factortopy.map_kinds (factortopy's own first); each
    entry must name a MapKind whose name is the entry's."""
    from factortopy._plugins import PluginError, plugins

    out = []
    for name, plugin in plugins("map_kinds").items():
        kind = plugin.load()
        if not isinstance(kind, MapKind) or kind.name != name:
            raise PluginError(f"the factortopy.map_kinds entry {name!r} of {plugin.distribution!r} names "
                              f"{plugin.target}, which is not a MapKind called {name!r}")
        out.append(kind)
    return out


def map_kind(name: str, maps: dict | None = None) -> MapKind:
    """The registered kind ``name``, else a single-number map of the run
    (:mod:`factortopy.viz.vertex_maps`: ``layer_argmax``, ``space_x``, ``test_score``, any per-vertex key).

    maps: when given, the run must have the map. Unknown names are an error listing the valid ones.
    """
    from factortopy.viz import vertex_maps as V

    kind = MAP_KINDS.get(name)
    if kind is not None:
        return kind
    if maps is None:
        return _value_kind(name, name, f"per-vertex {name}")
    if name in V.available(maps):
        return _vertex_map_kind(name)
    paintable = [n for n in V.available(maps) if n not in MAP_KINDS and V.kind_of(maps, n) != "frames"]
    raise ValueError(f"unknown map {name!r}; valid: {', '.join(MAP_KINDS)}, or one of the run's single-number maps: "
                     f"{', '.join(paintable)}")


def _vertex_map_kind(name: str) -> MapKind:
    """A single-number map of :mod:`factortopy.viz.vertex_maps` as a paintable kind (labels in their
    table's colours; values on one colour scale shared along a grid row)."""
    from factortopy.viz import vertex_maps as V

    def paint(maps, options):
        vmap = V.vertex_map(maps, name, options.get("n_clusters", 20))
        if vmap.kind == "continuous" and "vmin" in options:
            return M.value_painting(maps["vertex"], maps["hemi"], vmap.values, options.get("cmap"), options["vmin"],
                                    options["vmax"], label=name)
        return V.painting(maps, vmap)

    def share(columns, options):
        have = [c for c in columns if name in V.available(c)]
        if not have or V.kind_of(have[0], name) != "continuous":
            return {}  # labels: each column's own table
        lo, hi = C.value_range(np.concatenate([V.vertex_map(c, name).values for c in have]))
        return {"vmin": lo, "vmax": hi, "cmap": "RdBu_r" if lo < 0 < hi else "viridis"}

    needs = V.VERTEX_MAPS[name].needs if name in V.VERTEX_MAPS else (name,)
    return MapKind(name, tuple(needs), paint, V.description(name), share)


def check_needs(kind: MapKind, maps: dict, source: str, context: str = "") -> None:
    """Raise a one-line error naming the first key ``kind`` needs that ``maps`` (from ``source``) lacks."""
    for key in ("vertex", "hemi") + tuple(kind.needs):
        if maps.get(key) is None:
            raise ValueError(f"{source} has no {key!r}: cannot paint the {kind.name} map{context}{kind.missing}")


def painting(maps: dict, what: str, n_clusters: int = 20, shared: dict | None = None, source: str | None = None):
    """The :class:`~factortopy.viz.maps.Painting` of map ``what`` of a maps dict."""
    kind = map_kind(what, maps)
    check_needs(kind, maps, source or maps.get("path", "the run"))
    return kind.paint(maps, {"n_clusters": n_clusters, **(shared or {})})


def kinds_help() -> str:
    """'name: description' lines of every registered kind (CLI help and docs)."""
    return "; ".join(f"{k.name}: {k.description}" for k in MAP_KINDS.values())
