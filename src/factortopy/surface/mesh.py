"""fsaverage meshes: fsaverage5 (ships with nilearn, offline), full meshes from a folder, one reader.

fsaverage (163,842 vertices per hemisphere) and fsaverage5 (10,242) are nested: the first 10,242
vertices of full fsaverage are fsaverage5's, same order, same sphere coordinates. So a vertex index
< 10,242 names the same point on every member of the family, and :func:`to_mesh_index` routes
per-vertex data onto any of them by index.
"""
from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

#: hemisphere names, in the order every array of the project lists them (left first)
HEMIS = ("lh", "rh")
#: vertices per hemisphere of fsaverage5, fsaverage6 and full fsaverage (fsaverage7)
FSAVERAGE5_N = 10242
FSAVERAGE6_N = 40962
FSAVERAGE_N = 163842
#: the nested fsaverage family, smallest first: name -> vertices per hemisphere
RESOLUTIONS = {"fsaverage5": FSAVERAGE5_N, "fsaverage6": FSAVERAGE6_N, "fsaverage": FSAVERAGE_N}
#: surfaces (our names -> nilearn's file prefix; FreeSurfer files are ``lh.<our name>``)
SURFACES = {"inflated": "infl", "pial": "pial", "white": "white", "sphere": "sphere", "flat": "flat"}
_SIDE = {"lh": "left", "rh": "right"}


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
    #: where it was read from, in words (e.g. "fsaverage5 (nilearn)", "fsaverage from $SUBJECTS_DIR/fsaverage")
    name: str = ""

    def __getitem__(self, hemi: str) -> Hemi:
        return self.hemis[hemi]

    @property
    def n_vertices(self) -> int:
        return self.hemis["lh"].n_vertices


def check_hemi(hemi: str) -> str:
    if hemi not in HEMIS:
        raise ValueError(f"hemi must be 'lh' or 'rh', got {hemi!r}")
    return hemi


def check_surface(surface: str) -> str:
    if surface not in SURFACES:
        raise ValueError(f"unknown surface {surface!r}; valid surfaces: {', '.join(SURFACES)}")
    return surface


def mesh_file(folder: str, hemi: str, name: str) -> str | None:
    """The file of surface (or morphometry, e.g. 'sulc') ``name`` for ``hemi`` in ``folder``, in
    FreeSurfer (``lh.sphere``) or nilearn (``sphere_left.gii.gz``) naming; None if absent."""
    nl = SURFACES.get(name, name)
    for fname in (f"{hemi}.{name}", f"{nl}_{_SIDE[hemi]}.gii.gz", f"{nl}_{_SIDE[hemi]}.gii"):
        path = os.path.join(folder, fname)
        if os.path.isfile(path):
            return path
    return None


def read_surface(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(coords (V, 3) float64 mm, faces (F, 3) int64) of a GIfTI (.gii / .gii.gz) or FreeSurfer surface file."""
    import nibabel as nib

    path = os.fspath(path)
    if path.endswith((".gii", ".gii.gz")):
        img = nib.load(path)
        return np.asarray(img.darrays[0].data, np.float64), np.asarray(img.darrays[1].data, np.int64)
    coords, faces = nib.freesurfer.read_geometry(path)
    return np.asarray(coords, np.float64), np.asarray(faces, np.int64)


def read_morph(path: str) -> np.ndarray:
    """(V,) float32 per-vertex values (sulcal depth, ...) of a GIfTI or FreeSurfer morphometry file."""
    import nibabel as nib

    path = os.fspath(path)
    if path.endswith((".gii", ".gii.gz")):
        return np.asarray(nib.load(path).darrays[0].data, np.float32)
    return np.asarray(nib.freesurfer.read_morph_data(path), np.float32)


def read_mesh(folder, surface: str = "inflated", name: str = "") -> Mesh:
    """Both hemispheres of ``surface`` (and their ``sulc`` when present) from a folder, in FreeSurfer
    or nilearn naming. Arrays are read-only (meshes are cached and shared)."""
    folder = os.fspath(folder)
    hemis = {}
    for hemi in HEMIS:
        path = mesh_file(folder, hemi, surface)
        if path is None:
            raise FileNotFoundError(
                f"no {hemi} {surface} surface in {folder}: expected {hemi}.{surface} (FreeSurfer) or "
                f"{SURFACES.get(surface, surface)}_{_SIDE[hemi]}.gii.gz (nilearn)")
        coords, faces = read_surface(path)
        sulc_path = mesh_file(folder, hemi, "sulc")
        sulc = read_morph(sulc_path) if sulc_path else None
        for a in (coords, faces, sulc):
            if a is not None:
                a.setflags(write=False)
        hemis[hemi] = Hemi(coords, faces, sulc, name=f"{name or folder} {surface} {hemi}")
    return Mesh(hemis, surface, name=name or folder)


@functools.lru_cache(maxsize=None)
def fsaverage5_dir() -> str:
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
def _fsaverage5(surface: str) -> Mesh:
    return read_mesh(fsaverage5_dir(), surface, name="fsaverage5")


def fsaverage5(surface: str = "inflated") -> Mesh:
    """fsaverage5 ``surface`` (cached; shipped with nilearn, no network): a :class:`Mesh` of 10242
    vertices per hemisphere. surface: one of 'inflated', 'pial', 'white', 'sphere', 'flat'."""
    return _fsaverage5(check_surface(surface))


@functools.lru_cache(maxsize=16)
def fsaverage5_surface(hemi: str, surface: str = "sphere") -> tuple[np.ndarray, np.ndarray]:
    """(coords (10242, 3) float32 mm, faces (20480, 3) int64) of one fsaverage5 hemisphere, read-only."""
    hm = fsaverage5(surface)[check_hemi(hemi)]
    coords = hm.coords.astype(np.float32)  # stored as float32 in the GIfTI: exact
    coords.setflags(write=False)
    return coords, hm.faces


def load_freesurfer_mesh(surf_dir, surface: str = "inflated") -> Mesh:
    """A full-resolution mesh from a FreeSurfer ``surf`` folder (``lh.inflated``, ``lh.sulc``, ...).

    For example NSD's ``nsddata/freesurfer/fsaverage/surf``. nilearn-named GIfTI files work too.
    """
    return read_mesh(surf_dir, surface)


_NOTED_DROP = False


def to_mesh_index(vertex: np.ndarray, n_mesh: int) -> np.ndarray:
    """Keep-mask of fsaverage vertex indices that exist on a mesh of ``n_mesh`` vertices.

    vertex: (N,) int, fsaverage index within its hemisphere (any resolution of the nested family).
    Returns a (N,) bool mask: True where ``vertex < n_mesh`` (the vertex of the same index on the
    mesh is the same point). The first time vertices are dropped a note is issued (warning).
    """
    global _NOTED_DROP
    vertex = np.asarray(vertex)
    if vertex.size and (vertex.min() < 0 or vertex.max() >= FSAVERAGE_N):
        raise ValueError(f"vertex indices must lie in 0..{FSAVERAGE_N - 1}; got {vertex.min()}..{vertex.max()}")
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


def resolution_of(vertex) -> str:
    """The smallest member of the nested fsaverage family (:data:`RESOLUTIONS`) holding every index.

    vertex: (N,) int fsaverage indices (within their hemispheres). By nesting, index k names the same
    point on every member with more than k vertices, so data on these vertices lose nothing on it.
    """
    vertex = np.asarray(vertex)
    if vertex.size and (vertex.min() < 0 or vertex.max() >= FSAVERAGE_N):
        raise ValueError(f"vertex indices must lie in 0..{FSAVERAGE_N - 1} (fsaverage indices); got "
                         f"{vertex.min()}..{vertex.max()}")
    top = int(vertex.max()) if vertex.size else -1
    return next(name for name, n in RESOLUTIONS.items() if top < n)


def check_resolution(name: str) -> int:
    """Vertices per hemisphere of the fsaverage member ``name``; unknown names are an error."""
    if name not in RESOLUTIONS:
        raise ValueError(f"unknown fsaverage resolution {name!r}; valid: {', '.join(RESOLUTIONS)}")
    return RESOLUTIONS[name]


def on_resolution(vertex, hemi, values, resolution: str, fill) -> dict:
    """Per-vertex ``values`` spread onto whole hemispheres of fsaverage member ``resolution``.

    vertex (N,) int, hemi (N,) 'lh'/'rh', values (N, ...) -> {hemi: (V, ...) array of values' dtype},
    ``fill`` (NaN, 0, ...) at every vertex not given. A vertex beyond the member is an error (choose a
    larger member, or the one :func:`resolution_of` names).
    """
    n = check_resolution(resolution)
    vertex = np.asarray(vertex, np.int64)
    hemi = np.asarray(hemi).astype(str)
    values = np.asarray(values)
    if vertex.size and vertex.max() >= n:
        raise ValueError(f"{int((vertex >= n).sum())} vertices have indices >= {n}, beyond {resolution}: "
                         f"write on {resolution_of(vertex)} (or full fsaverage) instead")
    out = {}
    for h in HEMIS:
        sel = hemi == h
        arr = np.full((n,) + values.shape[1:], fill, dtype=values.dtype)
        arr[vertex[sel]] = values[sel]
        out[h] = arr
    return out
