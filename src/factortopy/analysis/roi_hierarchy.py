"""Where a vertex sits in the visual hierarchy: ROI ranking schemes, one at a time.

A *scheme* is a named, ordered list of ROI groups, each with a position in [0, 1] (0 = the early
end, 1 = the late end), and the loader labels that belong to each group (``<atlas>/<name>``, as
``subject.extra["rois"]`` names them). Positions come from one scheme only: ranks of two schemes
(``prf-visualrois/hV4`` at 3 of 11 and ``streams/ventral`` at 2 of 2) are never put on one scale.

Schemes (:data:`SCHEMES`; add one with :func:`register_scheme`):

* ``paper``: the ROI groups of the authors' code in its order, V1 (V1v+V1d), V2, V3, V4 (hV4), EBA,
  FBA (FBA-1, FBA-2), OFA, FFA (FFA-1, FFA-2), OPA, PPA, OWFA, VWFA (VWFA-1, VWFA-2), at k / 11;
* ``tiers``: the same twelve ROIs in three anatomical tiers: V1, V2, V3 (0); V4, OFA, OWFA, EBA, OPA
  (0.5); FFA, VWFA, FBA, PPA (1);
* ``streams``: NSD's streams: early (0); midventral, midlateral, midparietal (0.5); ventral, lateral,
  parietal (1);
* ``kastner2015``: V1, V2, V3, hV4 of NSD's group atlas Kastner2015 (Wang et al. 2015), k / 3;
* ``hcp_mmp1``: V1, V2, V3, V4 of HCP_MMP1 (Glasser et al. 2016), k / 3.

``paper`` draws on prf-visualrois and floc-* only: ``streams/early`` never labels a vertex under it,
and ``Kastner2015/V1v`` (a group atlas with the same names) is not ``prf-visualrois/V1v``. An
unqualified label (``"V1v"``, a hand-made ROI dict) takes the group of the one member of the scheme
with that name.

**Overlaps.** A vertex inside two groups of the scheme (FFA-2 and VWFA-1, OFA and OWFA, hV4 and
OFA) takes, by ``overlap``: ``"earliest"`` (default) the group listed first in the scheme, so
retinotopic areas before category-selective ROIs, and within those the authors' order (OFA before
OWFA, FFA before VWFA); ``"latest"`` the group listed last; ``"exclude"`` no group (the vertex is
counted as ``excluded``). **Whole-brain masks** (an atlas's union ``streams``, ``floc-faces``; NSD's
``nsdgeneral``, the vertex set) never label a vertex. **Counts**: every vertex is exactly one of
``ranked``, ``excluded``, ``unranked`` (in some regional ROI, none of the scheme's) and ``no_roi``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: atlases whose labels are vertex sets, never regions of the hierarchy (NSD's nsdgeneral)
VERTEX_SET_ATLASES = ("nsdgeneral",)
#: the ways to resolve a vertex inside two groups of one scheme
OVERLAP_RULES = ("earliest", "latest", "exclude")
DEFAULT_SCHEME = "paper"
#: names of atlases and ROI classes the loaders produce (an unqualified one is a union mask)
_ATLAS_NAMES = frozenset({"prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words", "streams",
                          "Kastner2015", "HCP_MMP1", *VERTEX_SET_ATLASES})


@dataclass(frozen=True)
class Scheme:
    """A named ranking of ROI groups. groups: ((group, position in [0, 1]), ...) early -> late
    (also the precedence order); members: {loader label: group}; source: where the order is from."""

    name: str
    groups: tuple
    members: dict
    source: str

    @property
    def order(self) -> list:
        return [g for g, _ in self.groups]

    @property
    def positions(self) -> dict:
        return dict(self.groups)

    def group_of(self, label) -> str | None:
        """The group of a loader label (``<atlas>/<name>``) or of an unqualified name; None if the
        scheme does not rank it. A qualified label never matches through its bare name."""
        label = str(label)
        if label in self.members:
            return self.members[label]
        if "/" in label:
            return None
        hits = {g for member, g in self.members.items() if member.rsplit("/", 1)[-1] == label}
        return hits.pop() if len(hits) == 1 else None


SCHEMES: dict = {}


def register_scheme(name: str, groups, members: dict, source: str) -> Scheme:
    """Add a ranking scheme. groups: [(group, position), ...] early -> late, or [group, ...]
    (positions k / (K - 1)); members: {loader label: group}. Returns the :class:`Scheme`."""
    groups = list(groups)
    if groups and not isinstance(groups[0], (tuple, list)):
        k = max(len(groups) - 1, 1)
        groups = [(g, i / k) for i, g in enumerate(groups)]
    groups = tuple((str(g), float(p)) for g, p in groups)
    names = [g for g, _ in groups]
    if len(set(names)) != len(names):
        raise ValueError(f"scheme {name!r}: groups repeat: {names}")
    bad = sorted({g for g in members.values()} - set(names))
    if bad:
        raise ValueError(f"scheme {name!r}: members name groups {bad} that are not in its groups {names}")
    if not all(0.0 <= p <= 1.0 for _, p in groups):
        raise ValueError(f"scheme {name!r}: positions must lie in [0, 1] (early 0, late 1)")
    SCHEMES[name] = Scheme(name, groups, dict(members), source)
    return SCHEMES[name]


def _members(atlas: str, table: dict) -> dict:
    return {f"{atlas}/{label}": group for group, labels in table.items() for label in labels}


_PRF = {"V1": ("V1v", "V1d"), "V2": ("V2v", "V2d"), "V3": ("V3v", "V3d"), "V4": ("hV4",)}
_FLOC = {"floc-bodies": {"EBA": ("EBA",), "FBA": ("FBA-1", "FBA-2")},
         "floc-faces": {"OFA": ("OFA",), "FFA": ("FFA-1", "FFA-2")},
         "floc-places": {"OPA": ("OPA",), "PPA": ("PPA",)},
         "floc-words": {"OWFA": ("OWFA",), "VWFA": ("VWFA-1", "VWFA-2")}}
_PAPER_MEMBERS = {**_members("prf-visualrois", _PRF),
                  **{k: v for cls, table in _FLOC.items() for k, v in _members(cls, table).items()}}
_PAPER_ORDER = ("V1", "V2", "V3", "V4", "EBA", "FBA", "OFA", "FFA", "OPA", "PPA", "OWFA", "VWFA")

register_scheme("paper", _PAPER_ORDER, _PAPER_MEMBERS,
                "the ROI groups of the authors' code (brainnet/roi.py), in its order, at k / 11")
register_scheme("tiers", [("V1", 0), ("V2", 0), ("V3", 0), ("V4", 0.5), ("OFA", 0.5), ("OWFA", 0.5), ("EBA", 0.5),
                          ("OPA", 0.5), ("FFA", 1), ("VWFA", 1), ("FBA", 1), ("PPA", 1)], _PAPER_MEMBERS,
                 "the paper's twelve ROIs in three anatomical tiers: early visual cortex, occipital "
                 "mid-level (hV4 and the occipital category-selective ROIs), ventral/high-level")
register_scheme("streams", [("early", 0), ("midventral", 0.5), ("midlateral", 0.5), ("midparietal", 0.5),
                            ("ventral", 1), ("lateral", 1), ("parietal", 1)],
                {f"streams/{n}": n for n in ("early", "midventral", "midlateral", "midparietal", "ventral",
                                             "lateral", "parietal")},
                "NSD's streams atlas: early, the three mid streams, the three late streams")
register_scheme("kastner2015", ("V1", "V2", "V3", "hV4"),
                _members("Kastner2015", {"V1": ("V1v", "V1d"), "V2": ("V2v", "V2d"), "V3": ("V3v", "V3d"),
                                         "hV4": ("hV4",)}),
                "the first four maps of NSD's group atlas Kastner2015 (Wang et al. 2015); its other areas "
                "are not ranked")
register_scheme("hcp_mmp1", ("V1", "V2", "V3", "V4"), _members("HCP_MMP1", {g: (g,) for g in ("V1", "V2", "V3", "V4")}),
                "V1-V4 of HCP_MMP1 (Glasser et al. 2016); its other areas are not ranked")


def get_scheme(scheme) -> Scheme:
    """A :class:`Scheme` from its name, a Scheme, or a dict {label: rank} (a custom scheme: ranks
    rescaled to [0, 1], each distinct rank one group)."""
    if isinstance(scheme, Scheme):
        return scheme
    if isinstance(scheme, dict):
        ranks = sorted({float(r) for r in scheme.values()})
        if not ranks:
            raise ValueError("a custom scheme {label: rank} names no ROI")
        span = (ranks[-1] - ranks[0]) or 1.0
        groups = [(f"rank {r:g}", (r - ranks[0]) / span) for r in ranks]
        members = {str(k): f"rank {float(r):g}" for k, r in scheme.items()}
        return Scheme("custom", tuple(groups), members, "given ranks")
    name = DEFAULT_SCHEME if scheme is None else str(scheme)
    if name not in SCHEMES:
        raise ValueError(f"unknown ROI scheme {name!r}; schemes: {', '.join(SCHEMES)} (or a dict label -> rank)")
    return SCHEMES[name]


def is_region(label) -> bool:
    """False for whole-brain masks: an atlas's union (a label without '/' that names an atlas, e.g.
    ``streams``) and labels of vertex-set atlases (``nsdgeneral``); True for every other label."""
    label = str(label)
    atlas = label.split("/", 1)[0]
    if atlas in VERTEX_SET_ATLASES:
        return False
    return "/" in label or label not in _ATLAS_NAMES



def hierarchy_positions(roi, n: int | None = None, scheme=None, overlap: str = "earliest") -> dict:
    """Each vertex's group and hierarchy position under one scheme.

    roi: the loaders' ROI dict ``{label: (N,) bool}`` (overlapping masks welcome) or (N,) labels.
    scheme: a name in :data:`SCHEMES` (default ``paper``), a :class:`Scheme`, or {label: rank}.
    overlap: 'earliest', 'latest' or 'exclude' (module docstring).
    Returns {'position' (N,) float in [0, 1], NaN where unranked; 'group' (N,) str ('' = none);
    'scheme'; 'overlap'; 'counts' {'ranked', 'overlaps' (ranked vertices inside 2+ groups),
    'excluded', 'unranked', 'no_roi', 'n'}; 'groups' the scheme's [(group, position)] order}.
    """
    from factortopy.analysis.profiles import roi_masks

    if overlap not in OVERLAP_RULES:
        raise ValueError(f"overlap must be one of {', '.join(OVERLAP_RULES)}, got {overlap!r}")
    s = get_scheme(scheme)
    if n is None:
        n = len(next(iter(roi.values()))) if isinstance(roi, dict) and roi else len(roi)
    masks = roi_masks(roi, n)
    order = s.order
    inside = np.zeros((n, len(order)), bool)  # vertex x group
    regional = np.zeros(n, bool)
    for label, m in masks.items():
        if not is_region(label):
            continue
        regional |= m
        g = s.group_of(label)
        if g is not None:
            inside[m, order.index(g)] = True
    k = inside.sum(1)
    if overlap == "earliest":
        pick = np.where(k > 0, inside.argmax(1), -1)
    elif overlap == "latest":
        pick = np.where(k > 0, len(order) - 1 - inside[:, ::-1].argmax(1), -1)
    else:
        pick = np.where(k == 1, inside.argmax(1), -1)
    pos = np.array([p for _, p in s.groups] + [np.nan])[pick]  # pick -1 -> the NaN at the end
    group = np.array(order + [""], dtype=object)[pick]
    ranked = pick >= 0
    counts = dict(ranked=int(ranked.sum()), overlaps=int((ranked & (k > 1)).sum()),
                  excluded=int(((k > 1) & ~ranked).sum()), unranked=int((regional & (k == 0)).sum()),
                  no_roi=int((~regional).sum()), n=int(n))
    return dict(position=pos, group=group.astype(str), scheme=s.name, overlap=overlap, counts=counts,
                groups=list(s.groups))


def roi_position(roi, scheme=None, overlap: str = "earliest") -> np.ndarray:
    """(N,) hierarchy position in [0, 1] of per-vertex labels or a ROI dict under one scheme (NaN
    where unranked); see :func:`hierarchy_positions`."""
    return hierarchy_positions(roi, None, scheme, overlap)["position"]
