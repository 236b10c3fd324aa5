"""The one (hemi, vertex) aligner: which columns of two vertex lists are the same cortical vertex.

A column is identified by its hemisphere ('lh'/'rh') and its fsaverage index within that
hemisphere. Generic data without fsaverage indices use vertex = -1 for every column; such lists
align by position only (and must then be equally long).
"""
from __future__ import annotations

import numpy as np

_RH_OFFSET = np.int64(1 << 40)  # past any fsaverage index: one int key per (hemi, vertex)


def column_keys(vertex, hemi, what: str = "columns") -> np.ndarray:
    """(N,) int64 key per (hemi, vertex); raises on an unknown hemisphere code or a repeated pair."""
    vertex = np.asarray(vertex, dtype=np.int64)
    hemi = np.asarray(hemi).astype(str)
    if vertex.shape != hemi.shape:
        raise ValueError(f"{what}: vertex {vertex.shape} and hemi {hemi.shape} differ in length")
    bad = sorted(set(np.unique(hemi).tolist()) - {"lh", "rh"})
    if bad:
        raise ValueError(f"{what}: hemisphere codes must be 'lh' or 'rh', found {bad}")
    keys = vertex + np.where(hemi == "rh", _RH_OFFSET, 0)
    if len(np.unique(keys)) != len(keys) and not np.all(vertex < 0):
        raise ValueError(f"{what} list the same (hemi, vertex) more than once")
    return keys


def match_columns(vertex, hemi, other_vertex, other_hemi) -> np.ndarray:
    """(N,) position in the other list of each (hemi, vertex), -1 where the other list lacks it."""
    if np.all(np.asarray(vertex) < 0) or np.all(np.asarray(other_vertex) < 0):  # generic: by position
        if len(vertex) != len(other_vertex):
            raise ValueError(f"vertex lists without fsaverage indices align by position only, but one has "
                             f"{len(vertex)} columns and the other {len(other_vertex)}")
        return np.arange(len(vertex), dtype=np.int64)
    a = column_keys(vertex, hemi)
    b = column_keys(other_vertex, other_hemi, "the other columns")
    order = np.argsort(b)
    pos = np.searchsorted(b[order], a)
    pos = np.clip(pos, 0, len(b) - 1) if len(b) else pos
    found = (len(b) > 0) & (b[order][pos] == a) if len(b) else np.zeros(len(a), bool)
    out = np.full(len(a), -1, dtype=np.int64)
    out[found] = order[pos[found]]
    return out


def align_columns(vertex, hemi, other_vertex, other_hemi) -> tuple[np.ndarray, np.ndarray]:
    """Positions (i, j) of the (hemi, vertex) pairs both lists have, in the first list's order."""
    j = match_columns(vertex, hemi, other_vertex, other_hemi)
    i = np.flatnonzero(j >= 0)
    return i, j[i]
