"""Which mesh a run is painted on: fsaverage5 (ships with nilearn), a member of the fsaverage family
found where the user keeps it, or, for an ``nsd:`` run, NSD's own fsaverage when the release is there.
"""
from __future__ import annotations

import os


def nsd_root_of(run) -> str | None:
    """The NSD release a run was fitted on (its ``nsd:ROOT`` data spec), or None. run: a
    :class:`~factortopy.runs.maps.Maps` or :func:`~factortopy.runs.maps.describe_run` (its ``data``)."""
    from factortopy.data import parse_spec

    spec = run.get("data") if run is not None else None
    if not isinstance(spec, str) or not spec.startswith("nsd:"):
        return None
    try:
        return parse_spec(spec)[1]
    except ValueError:
        return None


def paint_mesh(mesh=None, surface: str = "inflated", mesh_dir: str | None = None, runs=()):
    """The :class:`~factortopy.surface.Mesh` to paint on, or None for fsaverage5 (the default), and a
    line saying which (``mesh.name``).

    mesh: a Mesh (used as given), a member's name ('fsaverage5', 'fsaverage6', 'fsaverage': found by
    :func:`factortopy.surface.load_fsaverage`, first where ``mesh_dir`` says), or None: the folder
    ``mesh_dir`` when given, else NSD's own fsaverage when every run in ``runs`` (Maps, or
    :func:`~factortopy.runs.maps.describe_run` of each) was
    fitted on the same NSD release and it holds the ``surface``, else fsaverage5.
    Returns (mesh or None, description).
    """
    from factortopy.surface import Mesh, load_fsaverage
    from factortopy.surface.find import NSD_FSAVERAGE, nsd_fsaverage, read_fsaverage

    if isinstance(mesh, Mesh):
        return mesh, mesh.name or "the mesh given"
    root = _common_nsd_root(runs)
    if mesh is not None or mesh_dir is not None:
        found = load_fsaverage(mesh, surface, mesh_dir, root)
        return found, found.name
    if root:
        where = nsd_fsaverage(root, surface)
        if where is None:
            return None, (f"fsaverage5 (nilearn): the run's NSD release has no {surface} surface in "
                          f"{os.path.join(root, NSD_FSAVERAGE)}")
        found = read_fsaverage(where, "fsaverage", surface)
        return found, found.name
    return None, "fsaverage5 (nilearn)"


def _common_nsd_root(runs) -> str | None:
    roots = {nsd_root_of(m) for m in runs}
    return roots.pop() if len(roots) == 1 else None
