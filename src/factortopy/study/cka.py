"""Linear CKA (centred kernel alignment; Kornblith et al. 2019): how alike two representations of
the same images are, invariant to orthogonal transforms and isotropic scaling of either."""
from __future__ import annotations

import numpy as np


def linear_cka(x, y) -> float:
    """Linear CKA of x (n, p) and y (n, q), rows the same n examples: in [0, 1], 1 = the same up to
    rotation and scale. Computed from the (n, n) Gram matrices of the column-centred features,
    <K, L>_F / (||K||_F ||L||_F), so wide features (p >> n) cost O(n^2 p)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"linear_cka needs (n, p) and (n, q) arrays of the same n; got {x.shape} and {y.shape}")
    if x.shape[0] < 2:
        raise ValueError("linear_cka needs at least 2 examples")
    x = x - x.mean(0)
    y = y - y.mean(0)
    k, l = x @ x.T, y @ y.T
    den = np.linalg.norm(k) * np.linalg.norm(l)
    if den == 0:
        raise ValueError("linear_cka of a constant representation is undefined (all examples alike)")
    return float((k * l).sum() / den)


def layer_drift(base, other) -> list[float]:
    """Per layer, 1 - linear CKA between two Features of the same images
    (:class:`factortopy.features.extract.Features`; tokens (n, L, cells, C_max)): each image's
    layer representation is its grid cells and global token, a layer's own channels only.

    A layer that is constant over the images in one network and not in the other (e.g. weights
    destroyed) keeps none of the other's image-to-image structure: its drift is 1 (CKA itself is
    0/0 there), with a warning; constant in both: 0."""
    import warnings

    if len(base) != len(other) or base.layer_names != other.layer_names:
        raise ValueError("drift compares features of the same images through the same layers; got "
                         f"{len(base)} vs {len(other)} images, layers {base.layer_names} vs {other.layer_names}")
    out = []
    for l, c in enumerate(base.channels):
        a = base.tokens[:, l, :, :c].reshape(len(base), -1).float().numpy()
        b = other.tokens[:, l, :, :c].reshape(len(other), -1).float().numpy()
        constant = [bool(np.all(x == x[:1])) for x in (a, b)]
        if any(constant):
            warnings.warn(f"layer {base.layer_names[l]} is constant over the images in "
                          f"{'both networks' if all(constant) else 'one network'}: its drift is "
                          f"{0.0 if all(constant) else 1.0} by definition", stacklevel=2)
            out.append(0.0 if all(constant) else 1.0)
            continue
        out.append(1.0 - linear_cka(a, b))
    return out
