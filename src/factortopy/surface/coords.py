"""The cortical coordinates FactorTopy's selectors are functions of.

A vertex index < 10,242 has an exact coordinate from the fsaverage5 mesh that ships with nilearn,
offline. Other vertices need a full mesh: pass ``mesh_dir`` or set ``FACTORTOPY_FSAVERAGE_DIR`` to a
folder with ``{lh,rh}.sphere`` (FreeSurfer's ``$SUBJECTS_DIR/fsaverage/surf`` or NSD's
``nsddata/freesurfer/fsaverage/surf``); without either, ``$NSD_ROOT``'s release,
``$SUBJECTS_DIR/fsaverage``, ``$FREESURFER_HOME/subjects/fsaverage`` and nilearn's data dir are
searched (FreeSurfer ``lh.sphere`` or nilearn ``sphere_left.gii.gz`` names;
:mod:`factortopy.surface.find`). Whenever a full mesh is read, its nesting with fsaverage5 is
checked (sphere coordinates of the first 10,242 vertices must agree); a mismatch is an error.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from factortopy.surface.find import ENV_MESH_DIR, find_fsaverage
from factortopy.surface.mesh import (FSAVERAGE5_N, FSAVERAGE_N, HEMIS, check_hemi, fsaverage5_surface, mesh_file,
                                     read_surface)

def full_mesh_dir(mesh_dir: str | None = None, surface: str = "sphere") -> str | None:
    """The folder with full-fsaverage surfaces, or None (then only fsaverage5 is available).

    Looks where :func:`~factortopy.surface.find.find_fsaverage` looks, in its order: ``mesh_dir`` (a
    folder with ``lh.sphere`` ... or its parent with ``surf/``), ``$FACTORTOPY_FSAVERAGE_DIR``,
    ``$NSD_ROOT``'s ``nsddata/freesurfer/fsaverage``, ``$SUBJECTS_DIR/fsaverage``,
    ``$FREESURFER_HOME/subjects/fsaverage``, nilearn's data dir (``~/nilearn_data/fsaverage``).
    An explicit folder (argument or environment variable) without the surface is an error.
    """
    where = find_fsaverage("fsaverage", surface, mesh_dir, required=False)
    return where.folder if where else None


def check_nesting(mesh_dir: str, hemi: str, atol: float = 1e-2) -> None:
    """Check that the first 10,242 sphere vertices of the full mesh in ``mesh_dir`` are fsaverage5's.

    Raises ValueError if not: then vertex indices of the two meshes do not name the same points and
    every coordinate would be silently wrong. Sphere radius is 100 mm, so ``atol`` is in mm.
    """
    path = mesh_file(mesh_dir, hemi, "sphere")
    if path is None:
        return  # no sphere to compare with; other surfaces legitimately differ from fsaverage5's
    full = read_surface(path)[0]
    small = fsaverage5_surface(hemi, "sphere")[0]
    if full.shape[0] < FSAVERAGE5_N or not np.allclose(full[:FSAVERAGE5_N], small, atol=atol):
        n_off = (int(np.sum(np.abs(full[:FSAVERAGE5_N] - small).max(1) > atol))
                 if full.shape[0] >= FSAVERAGE5_N else FSAVERAGE5_N)
        raise ValueError(
            f"{path}: its first {FSAVERAGE5_N} sphere vertices are not fsaverage5's ({n_off} differ by more "
            f"than {atol} mm); this is not an fsaverage mesh nested with fsaverage5 (is it another subject's "
            "surface or a resampled mesh?). Point mesh_dir / FACTORTOPY_FSAVERAGE_DIR to fsaverage's surf folder"
        )


@lru_cache(maxsize=8)
def _read_full_surface(mesh_dir: str, hemi: str, surface: str) -> np.ndarray:
    path = mesh_file(mesh_dir, hemi, surface)
    if path is None:
        raise FileNotFoundError(f"full fsaverage surface {hemi}.{surface} not found in {mesh_dir}")
    coords = read_surface(path)[0].astype(np.float32)
    if coords.shape[0] != FSAVERAGE_N:
        raise ValueError(f"{path} has {coords.shape[0]} vertices, full fsaverage has {FSAVERAGE_N}")
    check_nesting(mesh_dir, hemi)
    coords.setflags(write=False)
    return coords


def surface_coordinates(hemi: str, vertices: np.ndarray, surface: str = "sphere",
                        mesh_dir: str | None = None) -> np.ndarray:
    """(n, 3) float32 coordinates (mm) of fsaverage ``vertices`` (indices within ``hemi``) on ``surface``."""
    check_hemi(hemi)
    vertices = np.asarray(vertices, dtype=np.int64)
    if vertices.size and (vertices.min() < 0 or vertices.max() >= FSAVERAGE_N):
        raise ValueError(f"vertex indices must lie in [0, {FSAVERAGE_N}), got {vertices.min()}..{vertices.max()}")
    # Vertices < 10,242 are exact offline; only look for (and check) a full mesh when needed.
    if vertices.size and vertices.max() >= FSAVERAGE5_N or mesh_dir or os.environ.get(ENV_MESH_DIR):
        mesh_dir = full_mesh_dir(mesh_dir, surface)
    if mesh_dir:
        return _read_full_surface(mesh_dir, hemi, surface)[vertices]
    if vertices.size and vertices.max() >= FSAVERAGE5_N:
        n_far = int((vertices >= FSAVERAGE5_N).sum())
        raise ValueError(
            f"{n_far} {hemi} vertices have indices >= {FSAVERAGE5_N}, beyond the fsaverage5 mesh that "
            f"ships offline; point to a full fsaverage mesh with mesh_dir=... (--mesh-dir) or the "
            f"{ENV_MESH_DIR} environment variable (a folder with lh.{surface} and rh.{surface}, e.g. "
            "$SUBJECTS_DIR/fsaverage/surf or NSD's nsddata/freesurfer/fsaverage/surf)"
        )
    return fsaverage5_surface(hemi, surface)[0][vertices]


def hemisphere_extent(hemi: str, surface: str = "sphere", mesh_dir: str | None = None):
    """(min x, width in x), mm, of the whole hemisphere mesh."""
    mesh_dir = full_mesh_dir(mesh_dir, surface) if (mesh_dir or os.environ.get(ENV_MESH_DIR)) else None
    xyz = _read_full_surface(mesh_dir, hemi, surface) if mesh_dir else fsaverage5_surface(hemi, surface)[0]
    return float(xyz[:, 0].min()), float(np.ptp(xyz[:, 0]))


def cortical_coordinates(vertex: np.ndarray, hemi: np.ndarray, surface: str = "sphere",
                         mesh_dir: str | None = None) -> np.ndarray:
    """Coordinates for FactorTopy: each hemisphere's ``surface`` (default the sphere), the right one
    shifted along x so that it starts at (left min x) + 1.5 x (left width): two spheres side by side
    (method.md).

    vertex (N,) int, hemi (N,) 'lh'/'rh' -> (N, 3) float32, mm.
    """
    vertex, hemi = np.asarray(vertex), np.asarray(hemi)
    unknown = set(np.unique(hemi)) - set(HEMIS)
    if unknown:
        raise ValueError(f"hemi entries must be 'lh' or 'rh', got {sorted(unknown)}")
    # Resolve the mesh once so that coordinates and hemisphere extents come from the same mesh.
    if mesh_dir or os.environ.get(ENV_MESH_DIR) or (len(vertex) and int(np.max(vertex)) >= FSAVERAGE5_N):
        mesh_dir = full_mesh_dir(mesh_dir, surface)
    out = np.zeros((len(vertex), 3), dtype=np.float32)
    for h in HEMIS:
        sel = hemi == h
        if sel.any():
            out[sel] = surface_coordinates(h, vertex[sel], surface, mesh_dir)
    if (hemi == "rh").any():
        lh_min, lh_width = hemisphere_extent("lh", surface, mesh_dir)
        rh_min, _ = hemisphere_extent("rh", surface, mesh_dir)
        out[hemi == "rh", 0] += (lh_min + 1.5 * lh_width) - rh_min
    return out
