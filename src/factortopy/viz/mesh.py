"""Cortical meshes for drawing: fsaverage5 (ships with nilearn, works offline) or a user mesh.

A :class:`Hemi` holds one hemisphere's geometry; :func:`fsaverage5` loads and caches all the
surfaces nilearn ships. :func:`to_mesh_index` maps per-vertex data given on (full) fsaverage onto
a mesh's vertices through the nested vertex order of the fsaverage family (a vertex index < 10242
of fsaverage6/7 IS the fsaverage5 vertex of the same index).
"""
from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

HEMIS = ("lh", "rh")
N_FSAVERAGE5 = 10242
N_FSAVERAGE = 163842
#: surfaces nilearn ships for fsaverage5 (our names -> nilearn's key prefix)
SURFACES = {"inflated": "infl", "pial": "pial", "white": "white", "sphere": "sphere", "flat": "flat"}
_NILEARN_HEMI = {"lh": "left", "rh": "right"}


@dataclass
class Hemi:
    """One hemisphere's mesh.

    coords: (V, 3) float, mm (RAS: x right, y anterior, z superior); for the flat patch (V, 3)
        with the patch in x, y.
    faces: (F, 3) int, vertex indices (the flat patch omits the faces of the cut medial wall).
    sulc: (V,) float, sulcal depth (> 0 = sulcus, drawn darker), or None.
    """

    coords: np.ndarray
    faces: np.ndarray
    sulc: np.ndarray | None = None
    name: str = ""

    @property
    def n_vertices(self) -> int:
        return int(self.coords.shape[0])


@dataclass
class Mesh:
    """Both hemispheres of one surface: ``mesh['lh']`` / ``mesh['rh']`` give a :class:`Hemi`."""

    hemis: dict = field(default_factory=dict)
    surface: str = "inflated"

    def __getitem__(self, hemi: str) -> Hemi:
        return self.hemis[hemi]

    @property
    def n_vertices(self) -> int:
        return self.hemis["lh"].n_vertices


@functools.lru_cache(maxsize=None)
def _fsaverage5_dir() -> str:
    """nilearn's bundled fsaverage5 folder, found without importing nilearn.datasets (~1.5 s)."""
    import importlib.util

    spec = importlib.util.find_spec("nilearn")
    if spec is not None and spec.submodule_search_locations:
        d = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", "fsaverage5")
        if os.path.exists(os.path.join(d, "infl_left.gii.gz")):
            return d
    from nilearn import datasets  # layout changed: ask nilearn (works offline for fsaverage5)

    return os.path.dirname(datasets.fetch_surf_fsaverage("fsaverage5")["infl_left"])


@functools.lru_cache(maxsize=None)
def _load_fsaverage5(surface: str) -> Mesh:
    import nibabel as nib

    d = _fsaverage5_dir()
    hemis = {}
    for hemi in HEMIS:
        nh = _NILEARN_HEMI[hemi]
        img = nib.load(os.path.join(d, f"{SURFACES[surface]}_{nh}.gii.gz"))
        coords = np.asarray(img.darrays[0].data, dtype=np.float64)
        faces = np.asarray(img.darrays[1].data, dtype=np.int64)
        sulc = np.asarray(nib.load(os.path.join(d, f"sulc_{nh}.gii.gz")).darrays[0].data, dtype=np.float32)
        coords.setflags(write=False)
        faces.setflags(write=False)
        sulc.setflags(write=False)
        hemis[hemi] = Hemi(coords, faces, sulc, name=f"fsaverage5 {surface} {hemi}")
    return Mesh(hemis, surface)


def fsaverage5(surface: str = "inflated") -> Mesh:
    """Load (cached) an fsaverage5 surface shipped with nilearn: no network needed.

    surface: one of 'inflated', 'pial', 'white', 'sphere', 'flat'. Returns a :class:`Mesh` of
    10242 vertices per hemisphere.
    """
    if surface not in SURFACES:
        raise ValueError(f"unknown surface {surface!r}; valid surfaces: {', '.join(SURFACES)}")
    return _load_fsaverage5(surface)


def load_freesurfer_mesh(surf_dir: str | os.PathLike, surface: str = "inflated") -> Mesh:
    """Load a full-resolution mesh from a FreeSurfer ``surf`` folder (``lh.inflated``, ``lh.sulc``, ...).

    For example NSD's ``nsddata/freesurfer/fsaverage/surf``. 'flat' is not available this way.
    """
    import nibabel as nib

    surf_dir = os.fspath(surf_dir)
    hemis = {}
    for hemi in HEMIS:
        path = os.path.join(surf_dir, f"{hemi}.{surface}")
        if not os.path.exists(path):
            raise FileNotFoundError(f"no FreeSurfer surface {path}")
        coords, faces = nib.freesurfer.read_geometry(path)
        sulc_path = os.path.join(surf_dir, f"{hemi}.sulc")
        sulc = nib.freesurfer.read_morph_data(sulc_path).astype(np.float32) if os.path.exists(sulc_path) else None
        hemis[hemi] = Hemi(np.asarray(coords, float), np.asarray(faces, np.int64), sulc, name=f"{surf_dir} {surface} {hemi}")
    return Mesh(hemis, surface)


_NOTED_DROP = False


def to_mesh_index(vertex: np.ndarray, n_mesh: int) -> np.ndarray:
    """Keep-mask of fsaverage vertex indices that exist on a mesh of ``n_mesh`` vertices.

    vertex: (N,) int, fsaverage index within its hemisphere (any resolution of the nested family).
    Returns a (N,) bool mask: True where ``vertex < n_mesh`` (the vertex of the same index on the
    mesh is the same point). The first time vertices are dropped a note is issued (warning).
    """
    global _NOTED_DROP
    vertex = np.asarray(vertex)
    if vertex.size and (vertex.min() < 0 or vertex.max() >= N_FSAVERAGE):
        raise ValueError(f"vertex indices must lie in 0..{N_FSAVERAGE - 1}; got {vertex.min()}..{vertex.max()}")
    keep = vertex < n_mesh
    if not keep.all() and not _NOTED_DROP:
        _NOTED_DROP = True
        warnings.warn(
            f"{int((~keep).sum())} of {keep.size} vertices have fsaverage index >= {n_mesh} and are not on "
            f"this {n_mesh}-vertex mesh: they are not drawn (pass a full-resolution mesh to draw them). "
            "This note is shown once.",
            stacklevel=3,
        )
    return keep
