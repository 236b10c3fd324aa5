"""A run's maps as one number (or one label) per vertex: the set ``factortopy export`` writes and
``factortopy paint --what NAME`` paints.

The painted map kinds (:data:`factortopy.viz.kinds.MAP_KINDS`) combine several numbers into one
colour (the layer map: expected layer and confidence; the space map: x and y). Files for other
tools hold single numbers, so each kind is split into the quantities it shows:

- ``layer_expected`` (continuous): expected layer position sum_l l p_l / (L - 1), 0 = first, 1 = last
- ``layer_confidence`` (continuous): 1 - H(p) / log L, 1 = one layer, 0 = uniform
- ``layer_argmax`` (label): the most probable layer, label k + 1 = layer k (named)
- ``layer_probs`` (frames): p (N, L), one frame per layer (export only)
- ``space_x``, ``space_y`` (continuous): selected image position in (-1, 1), x left -> right, y top -> bottom
- ``scale`` (continuous): 0 = local token, 1 = global token
- ``rf_size`` (continuous): receptive-field sigma, image widths
- ``channel_cluster`` (label): clusters of readout weights, label k + 1 = cluster c<k>
- ``r``, ``r2`` (continuous): the fit's held-out Pearson r and R^2 (scores.npz)
- ``<split>_r``, ``<split>_r2``, ``<split>_score`` (continuous): ``factortopy evaluate``'s r, R^2 and
  noise-normalised score (%)

plus any other per-vertex array stored (e.g. a planted truth's ``ceiling_r``; the readout weights
themselves only as their clusters). Label maps carry
their table: names and the colours the painted map uses (layers on the layer map's blue -> red
scale, clusters in the channel map's colours); label 0 is "outside the run".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

# what a run's Maps says about the run rather than holds per vertex (factortopy.runs.maps)
from factortopy.runs.maps import META_KEYS

#: label 0 of every label map: vertices outside the run
OUTSIDE = "???"


@dataclass
class VertexMap:
    """One map as per-vertex numbers.

    values: (N,) float32 (continuous), (N,) int32 label keys 1..K (label), or (N, F) float32 (frames).
    labels: label key -> (name, (r, g, b, a) in [0, 1]) for a label map, else None.
    frame_names: the F frames' names (frames only).
    """

    name: str
    values: np.ndarray
    description: str
    labels: dict | None = None
    frame_names: list | None = None
    unit: str = ""

    @property
    def kind(self) -> str:
        """'label', 'frames' or 'continuous'."""
        if self.labels is not None:
            return "label"
        return "frames" if self.values.ndim == 2 else "continuous"


@dataclass(frozen=True)
class VertexMapKind:
    """How one named map is made from a maps dict: the keys it needs, ``build(maps, options)`` ->
    :class:`VertexMap`, and its kind ('continuous', 'label' or 'frames')."""

    name: str
    needs: tuple
    build: Callable
    description: str
    kind: str = "continuous"


#: name -> VertexMapKind, in the order files and docs list them
VERTEX_MAPS: dict[str, VertexMapKind] = {}
#: maps-dict entries that are not per-vertex arrays of their own (or are split by a kind above)
_NOT_VALUES = META_KEYS + ("readout", "layer_probs", "space_xy", "channel_clusters")


def register_vertex_map(kind: VertexMapKind) -> VertexMapKind:
    if kind.name in VERTEX_MAPS:
        raise ValueError(f"vertex map {kind.name!r} is already registered")
    VERTEX_MAPS[kind.name] = kind
    return kind


def _layer_names(maps) -> list[str]:
    names = maps.get("layer_names")
    n = np.asarray(maps["layer_probs"]).shape[1]
    return [str(x) for x in names] if names is not None and len(names) == n else [f"layer {i}" for i in range(n)]


def _layer_palette(n: int) -> np.ndarray:
    """(n, 3) the layer map's colour of each layer at full confidence (first blue -> last red)."""
    from factortopy.viz import colors as C

    pos = np.linspace(0, 1, n) if n > 1 else np.full(1, 0.5)
    return C.layer_rgb(pos, np.ones(n))


def _label_table(names, rgb) -> dict:
    return {k + 1: (str(name), (*map(float, rgb[k]), 1.0)) for k, name in enumerate(names)}


def _continuous(name, values, description, unit=""):
    return VertexMap(name, np.asarray(values, np.float32), description, unit=unit)


def _layer_argmax(maps, options):
    from factortopy.analysis.layers import selected_layer

    names = _layer_names(maps)
    return VertexMap("layer_argmax", (selected_layer(maps["layer_probs"]) + 1).astype(np.int32),
                     VERTEX_MAPS["layer_argmax"].description, labels=_label_table(names, _layer_palette(len(names))))


def _channel_cluster(maps, options):
    from factortopy.analysis.clusters import CHANNEL_CLUSTERS, cluster_readouts
    from factortopy.viz.colors import categorical_palette

    k, seed = options.get("n_clusters", CHANNEL_CLUSTERS), options.get("seed", 0)
    stored = maps.get("channel_clusters") if (k, seed) == (CHANNEL_CLUSTERS, 0) else None  # written with the run
    lab = np.asarray(stored) if stored is not None else cluster_readouts(np.asarray(maps["readout"]), k, seed=seed)
    k = int(lab.max() + 1) if lab.size else 1
    return VertexMap("channel_cluster", (lab + 1).astype(np.int32), VERTEX_MAPS["channel_cluster"].description,
                     labels=_label_table([f"c{i}" for i in range(k)], categorical_palette(k)))


def _layer_probs(maps, options):
    return VertexMap("layer_probs", np.asarray(maps["layer_probs"], np.float32), VERTEX_MAPS["layer_probs"].description,
                     frame_names=_layer_names(maps))


def _simple(name, needs, compute, description, unit=""):
    return VertexMapKind(name, needs, lambda m, o: _continuous(name, compute(m), description, unit), description)


def _expected(m):
    from factortopy.analysis.layers import expected_layer

    return expected_layer(m["layer_probs"])


def _confidence(m):
    from factortopy.analysis.layers import layer_confidence

    return layer_confidence(m["layer_probs"])


for _kind in (
    _simple("layer_expected", ("layer_probs",), _expected,
            "expected layer position sum_l l p_l / (L - 1): 0 = first layer, 1 = last (layer_names)"),
    _simple("layer_confidence", ("layer_probs",), _confidence,
            "confidence of the layer selector 1 - H(p) / log L: 1 = one layer, 0 = uniform"),
    VertexMapKind("layer_argmax", ("layer_probs",), _layer_argmax,
                  "most probable layer: label k + 1 = layer k (named in the label table), 0 = outside the run",
                  "label"),
    VertexMapKind("layer_probs", ("layer_probs",), _layer_probs,
                  "layer selector p, one frame per layer (named by layer_names)", "frames"),
    _simple("space_x", ("space_xy",), lambda m: np.asarray(m["space_xy"])[:, 0],
            "selected image position x in (-1, 1): -1 = left edge, 1 = right edge"),
    _simple("space_y", ("space_xy",), lambda m: np.asarray(m["space_xy"])[:, 1],
            "selected image position y in (-1, 1): -1 = top edge, 1 = bottom edge"),
    _simple("scale", ("scale",), lambda m: m["scale"], "selected token scale in (0, 1): 0 = local, 1 = global"),
    _simple("rf_size", ("rf_size",), lambda m: m["rf_size"],
            "receptive-field sigma in image widths (0 = a point)", "image widths"),
    VertexMapKind("channel_cluster", ("readout",), _channel_cluster,
                  "clusters of readout weights (cosine k-means + merging, numbered by size): label k + 1 = "
                  "cluster c<k>, 0 = outside the run", "label"),
    _simple("r", ("r",), lambda m: m["r"], "held-out Pearson r (scores.npz: images that chose nothing)"),
    _simple("r2", ("r2",), lambda m: m["r2"], "held-out R^2 (scores.npz)"),
):
    register_vertex_map(_kind)

_EVAL = {"r": "Pearson r", "r2": "R^2", "score": "noise-normalised Algonauts score (% of the noise ceiling)"}


def _stored_description(key: str) -> tuple[str, str]:
    """(description, unit) of a stored per-vertex array that no kind above makes."""
    from factortopy.evaluation.run import SPLITS

    split, _, metric = key.rpartition("_")
    if split in SPLITS and metric in _EVAL:
        return (f"{_EVAL[metric]} on the {split} images (factortopy evaluate --split {split})",
                "%" if metric == "score" else "")
    return f"per-vertex {key} as stored in the run", ""


def _is_stored_value(maps, key: str) -> bool:
    if key in _NOT_VALUES or key in VERTEX_MAPS:
        return False
    value = maps.get(key)
    if not isinstance(value, np.ndarray) or value.ndim not in (1, 2) or not len(value):
        return False
    return value.dtype.kind in "fiub" and len(value) == len(maps["vertex"])


def available(maps) -> list[str]:
    """Names of the vertex maps ``maps`` (a :func:`~factortopy.runs.maps.load_maps` dict) can give."""
    names = [k.name for k in VERTEX_MAPS.values() if all(maps.get(n) is not None for n in k.needs)]
    return names + [k for k in maps if _is_stored_value(maps, k)]


def kind_of(maps, name: str) -> str:
    """'continuous', 'label' or 'frames': what :func:`vertex_map` would give, without computing it."""
    if name in VERTEX_MAPS:
        return VERTEX_MAPS[name].kind
    return "frames" if np.ndim(maps[name]) == 2 else "continuous"


def description(name: str) -> str:
    """What the map ``name`` holds, in words."""
    return VERTEX_MAPS[name].description if name in VERTEX_MAPS else _stored_description(name)[0]


def vertex_map(maps, name: str, n_clusters: int = 20) -> VertexMap:
    """The :class:`VertexMap` ``name`` of ``maps``; an unknown name is an error listing the valid ones."""
    kind = VERTEX_MAPS.get(name)
    if kind is not None and all(maps.get(n) is not None for n in kind.needs):
        return kind.build(maps, {"n_clusters": n_clusters})
    if kind is None and _is_stored_value(maps, name):
        value = np.asarray(maps[name])
        description, unit = _stored_description(name)
        if value.ndim == 2:
            names = maps.get("layer_names")
            frames = [str(x) for x in names] if names is not None and len(names) == value.shape[1] else \
                [f"{name}[{i}]" for i in range(value.shape[1])]
            return VertexMap(name, value.astype(np.float32), description, frame_names=frames, unit=unit)
        return _continuous(name, value, description, unit)
    have = available(maps)
    why = f"it needs {', '.join(kind.needs)}, which {maps.get('path', 'the run')} lacks" if kind else "unknown name"
    raise ValueError(f"no vertex map {name!r} ({why}); this run has: {', '.join(have) or 'none'}")


def vertex_maps(maps, names=None, n_clusters: int = 20) -> dict[str, VertexMap]:
    """{name: :class:`VertexMap`} for ``names`` (default: every available one, :func:`available`)."""
    names = available(maps) if names is None else ([names] if isinstance(names, str) else list(names))
    return {n: vertex_map(maps, n, n_clusters) for n in names}


def painting(maps, vmap: VertexMap):
    """A :class:`~factortopy.viz.maps.Painting` of a single-number map: continuous on a colour scale,
    labels in their table's colours (the legend names them)."""
    from factortopy.viz import maps as M

    if vmap.kind == "frames":
        raise ValueError(f"{vmap.name} has {vmap.values.shape[1]} frames, not one number per vertex: paint "
                         "the 'layer' map, or one of its quantities (layer_expected, layer_argmax, ...)")
    if vmap.kind == "continuous":
        return M.value_painting(maps["vertex"], maps["hemi"], vmap.values, label=vmap.name)
    keys = sorted(vmap.labels)
    rgba = np.zeros((len(vmap.values), 4))
    for k in keys:
        rgba[vmap.values == k] = vmap.labels[k][1]
    names = [vmap.labels[k][0] for k in keys]
    palette = np.array([vmap.labels[k][1][:3] for k in keys])
    legend = M._swatch_legend(names, palette, vmap.name)
    return M.Painting(maps["vertex"], maps["hemi"], rgba, vmap.name, "mode", legend,
                      {"labels": vmap.values, "label_names": names})
