"""Paint RUN_DIRs: the map named by ``what`` from a run's files, as one figure or a grid of runs.

Map names are those of :data:`factortopy.viz.kinds.MAP_KINDS`, or the run's single-number maps
(:mod:`factortopy.viz.vertex_maps`: what ``factortopy export`` writes).
"""
from __future__ import annotations

from factortopy.viz import maps as M
from factortopy.viz.kinds import MAP_KINDS, painting


def painting_from_maps(maps: dict, what: str = "layer", n_clusters: int = 20) -> M.Painting:
    """The :class:`~factortopy.viz.maps.Painting` of one map of a :func:`~factortopy.runs.maps.load_maps` dict."""
    return painting(maps, what, n_clusters)


def paint_run(run_dir, what: str = "layer", views=M.DEFAULT_VIEWS, hemis="both", surface: str = "inflated",
              mesh=None, n_clusters: int = 20, title: str | None = None, ax=None, axes=None,
              mesh_dir: str | None = None):
    """One map of one RUN_DIR (or selectors.npz / planted_truth.npz) in several views -> Figure.

    what: a map kind (:data:`~factortopy.viz.kinds.MAP_KINDS`) or one of the run's single-number maps
    (:mod:`~factortopy.viz.vertex_maps`, e.g. 'layer_argmax', 'test_score').
    mesh: a Mesh, a member's name ('fsaverage5', 'fsaverage6', 'fsaverage': found where you keep
    it, :func:`~factortopy.surface.find_fsaverage`), or None: the ``mesh_dir`` folder when given, NSD's
    own fsaverage for an ``nsd:`` run whose release holds it, else fsaverage5
    (:func:`~factortopy.viz.meshes.paint_mesh`).
    ax / axes: your own Axes, one per view (see :func:`~factortopy.viz.maps.plot_painting`).
    """
    from factortopy.runs.maps import load_maps
    from factortopy.viz.meshes import paint_mesh

    maps = load_maps(run_dir)
    p = painting_from_maps(maps, what, n_clusters)
    mesh, _ = paint_mesh(mesh, surface, mesh_dir, [maps])
    return M.plot_painting(p, views, hemis, surface, mesh, title=title if title is not None else f"{maps['title']}: {what}",
                           ax=ax, axes=axes)


def paint(run_dirs, what="layer", views=None, hemis="both", surface: str = "inflated", mesh=None,
          n_clusters: int = 20, titles=None, ax=None, axes=None, mesh_dir: str | None = None):
    """Paint one or several runs.

    One run and one map: :func:`paint_run` (views default lateral, medial, ventral, posterior).
    Otherwise a grid (:func:`~factortopy.viz.run_grid`), one column per run, one row per map in
    ``what`` (a name or a list), drawn in a single view (default 'posterior'; the first of ``views``).
    mesh, mesh_dir: as :func:`paint_run` (NSD's own fsaverage by default when every run is from one release).
    ax / axes: your own Axes (one per view for one run; one per grid cell, rows x columns, else).
    Returns the matplotlib Figure.
    """
    from factortopy.viz.grid import run_grid
    from factortopy.runs.maps import describe_run
    from factortopy.viz.meshes import paint_mesh

    runs = [run_dirs] if isinstance(run_dirs, str) or hasattr(run_dirs, "__fspath__") else list(run_dirs)
    whats = [what] if isinstance(what, str) else list(what)
    if len(runs) == 1 and len(whats) == 1:
        return paint_run(runs[0], whats[0], views or M.DEFAULT_VIEWS, hemis, surface, mesh, n_clusters, ax=ax,
                         axes=axes, mesh_dir=mesh_dir)
    if isinstance(views, str):
        views = (views,)
    view = views[0] if views else "posterior"
    mesh, _ = paint_mesh(mesh, surface, mesh_dir, [describe_run(r) for r in runs])
    return run_grid(runs, rows=whats, view=view, titles=titles, hemis=hemis, surface=surface, mesh=mesh,
                    n_clusters=n_clusters, ax=ax, axes=axes)


#: the registered map names (kept for callers that list them)
WHATS = tuple(MAP_KINDS)
