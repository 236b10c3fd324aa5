"""Finding fsaverage meshes where users keep them, and saying where a mesh came from.

fsaverage5 ships with nilearn (offline). fsaverage6 and full fsaverage are looked for, in order:

- a folder given by the caller (``mesh_dir=``, ``--mesh-dir``): the only place looked at;
- ``$FACTORTOPY_FSAVERAGE_DIR`` (full fsaverage only): the only place looked at when set;
- an NSD release (full fsaverage only): ``NSD_ROOT/nsddata/freesurfer/fsaverage`` for the root the
  caller names (an ``nsd:`` run's own data), then for ``$NSD_ROOT``;
- ``$SUBJECTS_DIR/<name>``, ``$FREESURFER_HOME/subjects/<name>`` (FreeSurfer);
- nilearn's data dir, ``$NILEARN_DATA/<name>`` and ``~/nilearn_data/<name>``.

A folder counts when it (or its ``surf/``) holds both hemispheres of the surface, in FreeSurfer
(``lh.inflated``) or nilearn (``infl_left.gii.gz``) naming. The first found is used and named
(:attr:`MeshLocation.source`); when none is, the error lists every place looked at and why it did not
count. An explicit folder (the first two) without the surface is an error at once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from factortopy.surface.mesh import HEMIS, SURFACES, check_resolution, mesh_file

#: environment variable naming the folder of a full fsaverage mesh
ENV_MESH_DIR = "FACTORTOPY_FSAVERAGE_DIR"
#: environment variable naming an NSD release (the folder holding nsddata/)
ENV_NSD_ROOT = "NSD_ROOT"
#: where an NSD release keeps full fsaverage, relative to its root
NSD_FSAVERAGE = os.path.join("nsddata", "freesurfer", "fsaverage")


@dataclass(frozen=True)
class MeshLocation:
    """A folder holding the surfaces of one fsaverage member, and how it was found (in words)."""

    folder: str
    source: str


def _candidates(resolution: str, mesh_dir: str | None, nsd_root: str | None):
    """(folder or None, description, explicit) in order of precedence; None = a variable not set."""
    if mesh_dir:
        yield mesh_dir, "the folder given (mesh_dir / --mesh-dir)", True
        return
    full = resolution == "fsaverage"
    if full and os.environ.get(ENV_MESH_DIR):
        yield os.environ[ENV_MESH_DIR], f"${ENV_MESH_DIR}", True
        return
    if full:
        if nsd_root:
            yield os.path.join(nsd_root, NSD_FSAVERAGE), "the run's NSD release", False
        env = os.environ.get(ENV_NSD_ROOT)
        yield (os.path.join(env, NSD_FSAVERAGE) if env else None), f"${ENV_NSD_ROOT}/{NSD_FSAVERAGE}", False
    for var, sub in (("SUBJECTS_DIR", resolution), ("FREESURFER_HOME", os.path.join("subjects", resolution))):
        env = os.environ.get(var)
        yield (os.path.join(env, sub) if env else None), f"${var}/{sub}", False
    nilearn = os.environ.get("NILEARN_DATA")
    yield (os.path.join(nilearn, resolution) if nilearn else None), f"$NILEARN_DATA/{resolution}", False
    yield os.path.join(os.path.expanduser("~"), "nilearn_data", resolution), "nilearn's data dir", False


def _surface_folder(folder: str, surface: str) -> str | None:
    for sub in (os.path.join(folder, "surf"), folder):
        if os.path.isdir(sub) and all(mesh_file(sub, h, surface) for h in HEMIS):
            return sub
    return None


def _label(resolution: str) -> str:
    return "full fsaverage" if resolution == "fsaverage" else resolution


def _expected(surface: str) -> str:
    return (f"lh.{surface} and rh.{surface} (FreeSurfer) or {SURFACES.get(surface, surface)}_left.gii.gz and "
            "..._right.gii.gz (nilearn)")


def find_fsaverage(resolution: str = "fsaverage", surface: str = "inflated", mesh_dir: str | None = None,
                   nsd_root: str | None = None, required: bool = True) -> MeshLocation | None:
    """Where the ``surface`` of fsaverage member ``resolution`` is (the module docstring's order).

    resolution: 'fsaverage' (full) or 'fsaverage6' ('fsaverage5' is found too, but ships with nilearn:
    see :func:`load_fsaverage`). nsd_root: an NSD release to look in first (full fsaverage only).
    Returns the first :class:`MeshLocation` found; when none is: None, or with ``required`` a
    FileNotFoundError listing every place looked at.
    """
    check_resolution(resolution)
    looked = []
    for folder, what, explicit in _candidates(resolution, mesh_dir, nsd_root):
        if folder is None:
            looked.append(f"{what} (not set)")
            continue
        folder = os.path.abspath(os.path.expanduser(folder))
        found = _surface_folder(folder, surface)
        if found:
            return MeshLocation(found, f"{what}: {found}")
        if explicit:
            raise FileNotFoundError(f"no {_label(resolution)} {surface} surface in {folder} (nor in {folder}/surf), "
                                    f"given as {what}: expected {_expected(surface)}")
        why = f"no {surface} surfaces there" if os.path.isdir(folder) else "absent"
        looked.append(f"{what}: {folder} ({why})")
    if not required:
        return None
    raise FileNotFoundError(
        f"no {_label(resolution)} {surface} surface found; looked at, in order: " + "; ".join(looked)
        + f". Give the folder with --mesh-dir (mesh_dir=...), holding {_expected(surface)}, e.g. "
        f"$SUBJECTS_DIR/{resolution}/surf" + (f" or NSD's {NSD_FSAVERAGE}/surf" if resolution == "fsaverage" else ""))


def load_fsaverage(resolution: str | None = "fsaverage5", surface: str = "inflated", mesh_dir: str | None = None,
                   nsd_root: str | None = None):
    """The :class:`~factortopy.surface.Mesh` of ``surface`` on fsaverage member ``resolution``.

    fsaverage5 without ``mesh_dir``: nilearn's (offline). Otherwise found by :func:`find_fsaverage`
    and read by :func:`read_fsaverage` (checked); resolution None takes whichever member the
    ``mesh_dir`` folder holds. ``mesh.name`` says where it came from.
    """
    from factortopy.surface.mesh import fsaverage5

    if resolution == "fsaverage5" and not mesh_dir:
        return fsaverage5(surface)
    if resolution is None and not mesh_dir:
        raise ValueError("give a resolution (fsaverage5, fsaverage6, fsaverage) or a mesh_dir")
    where = find_fsaverage(resolution or "fsaverage", surface, mesh_dir, nsd_root)
    return read_fsaverage(where, resolution, surface)


def nsd_fsaverage(nsd_root: str, surface: str = "inflated") -> MeshLocation | None:
    """NSD's own full fsaverage in the release at ``nsd_root``, when it holds ``surface``; else None."""
    folder = _surface_folder(os.path.join(os.path.abspath(os.path.expanduser(nsd_root)), NSD_FSAVERAGE), surface)
    return MeshLocation(folder, f"the NSD release: {folder}") if folder else None


def read_fsaverage(where: MeshLocation, resolution: str | None = None, surface: str = "inflated"):
    """The mesh of ``surface`` in the folder ``where``, checked to be fsaverage member ``resolution``
    (None: any member): its vertex count must be the member's, and where a sphere is present its
    first 10,242 vertices must be fsaverage5's (:func:`~factortopy.surface.check_nesting`), or
    vertex indices would name other points. ``mesh.name`` says which member and where it came from."""
    from factortopy.surface.coords import check_nesting
    from factortopy.surface.mesh import RESOLUTIONS, read_mesh

    mesh = read_mesh(where.folder, surface, name=where.source)
    n = mesh.n_vertices
    found = next((name for name, count in RESOLUTIONS.items() if count == n), None)
    if found is None or (resolution is not None and found != resolution):
        family = ", ".join(f"{k} {v}" for k, v in RESOLUTIONS.items())
        raise ValueError(f"{where.folder}: its {surface} surface has {n} vertices per hemisphere, which is not "
                         f"{resolution or 'a member of the fsaverage family'} ({family}): is it another "
                         "subject's surface, or another resolution?")
    for h in HEMIS:
        check_nesting(where.folder, h)
    mesh.name = f"{found} from {where.source}"
    return mesh
