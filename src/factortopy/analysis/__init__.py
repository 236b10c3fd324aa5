"""Analyses of fitted selectors: arrays and tables (lists of dict rows), no plotting.

- :func:`hierarchy_score`: Spearman correlation of expected layer with hierarchy position
  (ROI rank, or geodesic distance from V1 / the occipital pole), bootstrap CI.
- :func:`roi_layer_profiles`: distribution of selected layers per ROI (labels or the loaders' ROI dict).
- :func:`compare_runs`: per-vertex / per-ROI shift of layer, position and scale between two runs.
- :func:`cluster_readouts`: channel clusters of readout weights (the channel map).
"""
from __future__ import annotations

from factortopy._lazy import lazy_attributes

_LAZY = {
    "expected_layer": "factortopy.analysis.layers",
    "layer_confidence": "factortopy.analysis.layers",
    "selected_layer": "factortopy.analysis.layers",
    "hierarchy_score": "factortopy.analysis.hierarchy",
    "spearman": "factortopy.analysis.hierarchy",
    "roi_position": "factortopy.analysis.hierarchy",
    "DEFAULT_ROI_RANK": "factortopy.analysis.hierarchy",
    "distance_from_seed": "factortopy.analysis.geodesic",
    "geodesic_distance": "factortopy.analysis.geodesic",
    "roi_layer_profiles": "factortopy.analysis.profiles",
    "roi_labels_from_masks": "factortopy.analysis.profiles",
    "roi_masks": "factortopy.analysis.profiles",
    "compare_runs": "factortopy.analysis.compare",
    "cluster_readouts": "factortopy.analysis.clusters",
    "spherical_kmeans": "factortopy.analysis.clusters",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes('factortopy.analysis', _LAZY, globals())
