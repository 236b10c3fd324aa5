"""Analyses of fitted selectors: arrays and tables (lists of dict rows), no plotting.

- :func:`brain_network_alignment`: the paper's alignment line (slope, b0, b1) of layer against
  hierarchy position, with a spatial block bootstrap interval.
- :func:`hierarchy_positions`: each vertex's ROI group and position under one named ranking
  scheme (:data:`SCHEMES`: ``paper``, ``tiers``, ``streams``, ...), overlaps resolved by rule.
- :func:`hierarchy_score`: Spearman correlation of expected layer with hierarchy position
  (ROI position, or geodesic distance from the occipital pole), bootstrap CI.
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
    "roi_position": "factortopy.analysis.roi_hierarchy",
    "hierarchy_positions": "factortopy.analysis.roi_hierarchy",
    "register_scheme": "factortopy.analysis.roi_hierarchy",
    "SCHEMES": "factortopy.analysis.roi_hierarchy",
    "brain_network_alignment": "factortopy.analysis.alignment",
    "normalised_layer": "factortopy.analysis.alignment",
    "spatial_blocks": "factortopy.analysis.intervals",
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
