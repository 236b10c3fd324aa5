"""Geodesic distance on a cortical mesh graph (Dijkstra along mesh edges)."""
from __future__ import annotations

import functools

import numpy as np

from factortopy.surface import FSAVERAGE5_N, HEMIS


def mesh_graph(coords, faces):
    """Sparse (V, V) symmetric graph of mesh edges weighted by their Euclidean length (mm)."""
    from scipy.sparse import csr_matrix

    coords = np.asarray(coords, float)
    f = np.asarray(faces, np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)  # each undirected edge once
    w = np.linalg.norm(coords[e[:, 0]] - coords[e[:, 1]], axis=1)
    n = len(coords)
    return csr_matrix((np.concatenate([w, w]), (np.concatenate([e[:, 0], e[:, 1]]), np.concatenate([e[:, 1], e[:, 0]]))),
                      shape=(n, n))


def geodesic_distance(coords, faces, seeds) -> np.ndarray:
    """(V,) shortest-path distance (mm, along mesh edges) from the nearest of ``seeds`` (vertex indices).

    Edge paths overestimate true geodesics by a few percent on a triangle mesh, equally everywhere,
    which does not matter for rank statistics.
    """
    from scipy.sparse.csgraph import dijkstra

    seeds = np.atleast_1d(np.asarray(seeds, np.int64))
    if seeds.size == 0:
        raise ValueError("no seed vertices given")
    return dijkstra(mesh_graph(coords, faces), directed=False, indices=seeds, min_only=True)


@functools.lru_cache(maxsize=8)
def _fsaverage5_distance(hemi: str, surface: str, seed_key: tuple) -> np.ndarray:
    from factortopy.surface import fsaverage5

    hm = fsaverage5(surface)[hemi]
    seeds = occipital_pole(hm.coords) if not seed_key else np.asarray(seed_key)
    d = geodesic_distance(hm.coords, hm.faces, seeds)
    d.setflags(write=False)
    return d


def occipital_pole(coords) -> np.ndarray:
    """The most posterior vertex (min y, RAS), as a one-element index array: a proxy for V1's apex."""
    return np.array([int(np.argmin(np.asarray(coords)[:, 1]))])


def distance_from_seed(vertex, hemi, seeds: dict | None = None, surface: str = "white", mesh=None) -> np.ndarray:
    """Geodesic distance (mm) of each vertex from a seed region, per hemisphere.

    vertex: (N,) fsaverage index; hemi: (N,) 'lh'/'rh'. seeds: hemi -> vertex indices of the seed
    region (e.g. V1); default the occipital pole of each hemisphere. Computed on fsaverage5's
    ``surface`` (vertices >= 10242 get NaN) unless ``mesh`` (a :class:`factortopy.surface.Mesh`)
    is given. Returns (N,) float.
    """
    v = np.asarray(vertex, np.int64)
    h = np.asarray(hemi).astype(str)
    out = np.full(len(v), np.nan)
    for hh in HEMIS:
        sel = h == hh
        if not sel.any():
            continue
        s = None if seeds is None or seeds.get(hh) is None else np.asarray(seeds[hh], np.int64)
        if mesh is not None:
            hm = mesh[hh]
            d = geodesic_distance(hm.coords, hm.faces, occipital_pole(hm.coords) if s is None else s)
        else:
            if s is not None and s.size and s.max() >= FSAVERAGE5_N:
                raise ValueError("seed vertices >= 10242 need a full-resolution mesh (mesh=...)")
            d = _fsaverage5_distance(hh, surface, tuple() if s is None else tuple(int(x) for x in s))
        vv = v[sel]
        ok = vv < len(d)
        res = np.full(len(vv), np.nan)
        res[ok] = d[vv[ok]]
        out[sel] = res
    return out
