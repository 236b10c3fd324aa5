"""fsaverage, the one base package for cortical surfaces: meshes, coordinates, names and counts.

Used by ``data`` (coordinates for fits), ``viz`` (meshes to draw on) and ``analysis`` (geodesics);
it imports nothing else from factortopy. numpy only at import; nibabel/nilearn load on first read.

- :data:`HEMIS` ('lh', 'rh'), :data:`FSAVERAGE5_N` (10242), :data:`FSAVERAGE_N` (163842).
- Meshes: :func:`fsaverage5` (offline), :func:`load_freesurfer_mesh` (a full mesh from a folder),
  :func:`read_surface` (the one GIfTI / FreeSurfer reader), :class:`Mesh`, :class:`Hemi`,
  :func:`to_mesh_index` (which vertices of the nested fsaverage family exist on a mesh).
- The nested family: :data:`RESOLUTIONS` (fsaverage5, fsaverage6, fsaverage), :func:`resolution_of`
  (the smallest member holding some vertices), :func:`on_resolution` (per-vertex data onto a member).
- Where meshes are: :func:`find_fsaverage` (the user's FreeSurfer / NSD / nilearn folders, saying
  which was used, or listing where it looked), :func:`load_fsaverage` (a member's mesh, checked).
- Coordinates: :func:`cortical_coordinates` (the positions FactorTopy's selectors are functions of),
  :func:`surface_coordinates`, :func:`full_mesh_dir`, :func:`check_nesting`.
"""
from __future__ import annotations

from factortopy.surface.coords import (check_nesting, cortical_coordinates, full_mesh_dir, hemisphere_extent,
                                       surface_coordinates)
from factortopy.surface.find import ENV_MESH_DIR, ENV_NSD_ROOT, MeshLocation, find_fsaverage, load_fsaverage
from factortopy.surface.mesh import (FSAVERAGE5_N, FSAVERAGE6_N, FSAVERAGE_N, HEMIS, RESOLUTIONS, SURFACES, Hemi,
                                     Mesh, fsaverage5, fsaverage5_surface, load_freesurfer_mesh, on_resolution,
                                     read_mesh, read_surface, resolution_of, to_mesh_index)

__all__ = ["ENV_MESH_DIR", "ENV_NSD_ROOT", "FSAVERAGE5_N", "FSAVERAGE6_N", "FSAVERAGE_N", "HEMIS", "RESOLUTIONS",
           "SURFACES", "Hemi", "Mesh", "MeshLocation", "check_nesting", "cortical_coordinates", "find_fsaverage",
           "fsaverage5", "fsaverage5_surface", "full_mesh_dir", "hemisphere_extent", "load_freesurfer_mesh",
           "load_fsaverage", "on_resolution", "read_mesh", "read_surface", "resolution_of", "surface_coordinates",
           "to_mesh_index"]
