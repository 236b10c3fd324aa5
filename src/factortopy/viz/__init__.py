"""Cortical maps of fitted selectors: layer, space, scale and channel maps, any per-vertex value.

Functions take plain arrays (``vertex`` fsaverage index, ``hemi`` 'lh'/'rh', per-vertex data) and
return a matplotlib Figure, drawn on fsaverage5 (ships with nilearn, no network needed). Importing
this package is cheap: matplotlib and nilearn load on first use.

    from factortopy import viz
    maps = viz.load_maps("runs/clip_subj01")
    fig = viz.layer_map(maps["vertex"], maps["hemi"], maps["layer_probs"], maps["layer_names"])
    fig.savefig("layers.png")

In a notebook, every plotting function also draws into your own Axes (``ax=`` for one panel,
``axes=`` for several) and returns the figure.
"""
from __future__ import annotations

from factortopy._lazy import lazy_attributes

_LAZY = {
    # maps
    "layer_map": "factortopy.viz.maps",
    "space_map": "factortopy.viz.maps",
    "scale_map": "factortopy.viz.maps",
    "channel_map": "factortopy.viz.maps",
    "value_map": "factortopy.viz.maps",
    "plot_painting": "factortopy.viz.maps",
    "Painting": "factortopy.viz.maps",
    "layer_painting": "factortopy.viz.maps",
    "space_painting": "factortopy.viz.maps",
    "scale_painting": "factortopy.viz.maps",
    "channel_painting": "factortopy.viz.maps",
    "value_painting": "factortopy.viz.maps",
    # grids and run dirs
    "compare_figure": "factortopy.viz.grid",
    "run_grid": "factortopy.viz.grid",
    "load_maps": "factortopy.runs.maps",
    "paint": "factortopy.viz.paint_runs",
    "paint_run": "factortopy.viz.paint_runs",
    "plot_layer_profiles": "factortopy.viz.profiles",
    # interactive
    "interactive_html": "factortopy.viz.interactive",
    # files for other tools (GIfTI, FreeSurfer, nilearn) and the single-number maps they hold
    "export_run": "factortopy.viz.export",
    "surface_images": "factortopy.viz.export",
    # map kinds (the names paint / run_grid / the CLI accept)
    "MAP_KINDS": "factortopy.viz.kinds",
    "MapKind": "factortopy.viz.kinds",
    "register_map_kind": "factortopy.viz.kinds",
    # meshes and views
    "fsaverage5": "factortopy.surface",
    "load_freesurfer_mesh": "factortopy.surface",
    "load_fsaverage": "factortopy.surface",
    "VIEWS": "factortopy.viz.render",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes('factortopy.viz', _LAZY, globals())
