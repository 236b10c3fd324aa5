"""A pretrained ability, measured directly: linear-probe and k-NN accuracy of a frozen backbone's
features on a labelled image set that no fine-tuning used (the fine-tuning study's forgetting,
docs/studies.md).

The probe set is an image folder with one sub-folder per label (like the fine-tuning folders,
:func:`factortopy.study.finetune.image_folder`). It is split once, stratified and seeded, into
probe-training and probe-test images; every network (a base and each of its fine-tuned versions)
is probed on the same split, so two accuracies are paired image by image. Features are one layer's
pooled representation (its global token: the class token, or the average of the feature map where
there is none; or the mean over the grid cells and the global token), taken from the backbone
exactly as a fit sees it (the study's grid), and cached per (backbone identity, images, layer,
pooling) under ``DIR/probe/``.

The linear probe is an L2-regularised multinomial logistic regression on features standardised
with the probe-training images' statistics (scikit-learn, lbfgs); the k-NN probe a cosine-similarity
majority vote over the k nearest probe-training images (ties: the nearest neighbour's label).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

PROBE_DIR = "probe"
#: what one image's representation is, from a layer's tokens (grid cells then the global token)
PROBE_TOKENS = ("global", "mean")


@dataclass
class ProbeSet:
    """A labelled image set split for probing. paths (n,), labels (n,) int, names: label names;
    train / test: sorted positions (disjoint, each holding every label)."""

    folder: str
    paths: list
    labels: np.ndarray
    names: list
    train: np.ndarray
    test: np.ndarray


def probe_set(folder: str, test_fraction: float = 0.5, seed: int = 0) -> ProbeSet:
    """Read ``folder`` (one sub-folder per label) and split it per label: round(n_label *
    test_fraction) images of each label (at least one, and at least one left to train on) are
    test images, drawn with ``seed``; the same (folder, fraction, seed) always gives the same split."""
    from factortopy.study.finetune import image_folder

    if not 0 < float(test_fraction) < 1:
        raise ValueError(f"probe_test_fraction must be in (0, 1), got {test_fraction}")
    paths, labels, names = image_folder(folder)
    rng = np.random.default_rng(int(seed))
    test = []
    for k, name in enumerate(names):
        members = np.flatnonzero(labels == k)
        if len(members) < 2:
            raise ValueError(f"probe set {folder}: label {name!r} has {len(members)} image(s); each label needs at "
                             "least 2 (one to train the probe on, one to test it)")
        n_test = min(max(1, int(round(len(members) * float(test_fraction)))), len(members) - 1)
        test += rng.permutation(members)[:n_test].tolist()
    test = np.sort(np.asarray(test, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(paths)), test)
    return ProbeSet(folder=os.path.abspath(folder), paths=paths, labels=labels, names=names, train=train, test=test)


def layer_index(layer_names: list, layer) -> int:
    """The position of ``layer`` ('last', a layer name, or an int index) among ``layer_names``."""
    if layer == "last":
        return len(layer_names) - 1
    if isinstance(layer, int) and not isinstance(layer, bool):
        if -len(layer_names) <= layer < len(layer_names):
            return layer % len(layer_names)
    elif layer in layer_names:
        return list(layer_names).index(layer)
    raise ValueError(f"probe_layer {layer!r} is not a layer of this backbone; give 'last', an index or one of "
                     f"{', '.join(layer_names)}")


def _pool(local, global_, tokens: str, grid: int):
    """(B, C) representation of one layer from its (B, C, h, w) map and (B, C) global token."""
    from factortopy.features.resize import resize_to_tokens

    if tokens == "global":
        return global_.float()
    cells = resize_to_tokens(local.float(), grid)  # (B, grid^2, C): the grid a fit reads
    return (cells.sum(1) + global_.float()) / (cells.shape[1] + 1)


def probe_features(spec, paths: list, layer="last", tokens: str = "global", grid: int = 8, cache_dir=None,
                   device: str = "cpu", batch_size: int = 32) -> tuple[np.ndarray, str]:
    """((n_images, C) float64 features, the layer's name) of the images ``paths`` through one layer of the backbone
    ``spec`` describes (see the module docstring). cache_dir: reuse / write ``<digest>.npz`` there,
    keyed on the backbone identity (weights fingerprint included), the images' contents, the layer,
    the pooling and the grid. Memory: one batch of the backbone plus n_images x C."""
    import torch

    from factortopy.backbones.spec import as_spec, backbone_identity
    from factortopy.data.images import ImageFiles, image_set_key
    from factortopy.features.extract import prepare_batch

    if tokens not in PROBE_TOKENS:
        raise ValueError(f"probe_tokens must be one of {PROBE_TOKENS}, got {tokens!r}")
    backbone = as_spec(spec).build()
    images = ImageFiles(list(paths))
    index = layer_index(list(backbone.info.layer_names), layer)
    key = dict(backbone=backbone_identity(backbone), images=image_set_key(images), layer=index,
               layer_name=backbone.info.layer_names[index], tokens=tokens, grid=int(grid))
    key_json = json.dumps(key, sort_keys=True, default=str)
    path = None
    if cache_dir is not None:
        path = os.path.join(cache_dir, hashlib.sha256(key_json.encode()).hexdigest()[:20] + ".npz")
        if os.path.isfile(path):
            with np.load(path, allow_pickle=False) as f:  # arrays only: nothing in the file executes
                if str(f["key"]) == key_json:
                    return f["features"], key["layer_name"]
    backbone = backbone.to(device).eval()
    rows = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = prepare_batch(backbone, images, start, min(start + batch_size, len(images)), device)
            local, global_ = backbone(batch)
            rows.append(_pool(local[index], global_[index], tokens, grid).cpu().double().numpy())
    features = np.concatenate(rows)
    if not np.isfinite(features).all():
        raise ValueError(f"{spec.name}: NaN/inf in the probe features of layer {key['layer_name']}")
    if path is not None:
        from factortopy._files import write_npz

        os.makedirs(cache_dir, exist_ok=True)
        write_npz(path, dict(features=features, key=np.asarray(key_json)), durable=False)  # a cache
    return features, key["layer_name"]


def linear_probe(x_train, y_train, x_test, c: float = 1.0) -> np.ndarray:
    """Predicted labels of ``x_test`` (m, C) from a logistic regression (inverse L2 strength ``c``)
    fitted on ``x_train`` (n, C), ``y_train`` (n,), features standardised with the training images'
    mean and std (a constant feature carries nothing and stays 0)."""
    from sklearn.linear_model import LogisticRegression

    x_train, x_test = np.asarray(x_train, float), np.asarray(x_test, float)
    mean, std = x_train.mean(0), x_train.std(0)
    std = np.where(std > 1e-12, std, 1.0)
    model = LogisticRegression(C=float(c), max_iter=5000)
    model.fit((x_train - mean) / std, np.asarray(y_train))
    return model.predict((x_test - mean) / std)


def knn_probe(x_train, y_train, x_test, k: int = 5) -> np.ndarray:
    """Predicted labels of ``x_test`` by a majority vote of its ``k`` most cosine-similar training
    images (features centred on the training mean; ties go to the nearest neighbour's label)."""
    x_train, x_test, y_train = np.asarray(x_train, float), np.asarray(x_test, float), np.asarray(y_train)
    mean = x_train.mean(0)

    def unit(a):
        a = a - mean
        n = np.linalg.norm(a, axis=1, keepdims=True)
        return a / np.where(n > 1e-12, n, 1.0)

    sim = unit(x_test) @ unit(x_train).T
    k = min(int(k), len(x_train))
    nearest = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    out = np.empty(len(x_test), dtype=y_train.dtype)
    for i, row in enumerate(nearest):
        votes = y_train[row]
        labels, counts = np.unique(votes, return_counts=True)
        best = labels[counts == counts.max()]
        out[i] = votes[0] if votes[0] in best else best[0]  # a tie: the nearest neighbour's label
    return out


def probe_scores(features: np.ndarray, probe: ProbeSet, c: float = 1.0, k: int = 5) -> dict:
    """Per probe-test image, whether each probe got it right: {'linear': (m,) bool, 'knn': (m,)
    bool}; their means are the accuracies."""
    x, y = np.asarray(features), probe.labels
    linear = linear_probe(x[probe.train], y[probe.train], x[probe.test], c)
    knn = knn_probe(x[probe.train], y[probe.train], x[probe.test], k)
    return dict(linear=linear == y[probe.test], knn=knn == y[probe.test])


def chance_accuracy(probe: ProbeSet) -> float:
    """The accuracy of always answering the probe-training images' most frequent label."""
    counts = np.bincount(probe.labels[probe.train], minlength=len(probe.names))
    return float(np.mean(probe.labels[probe.test] == int(np.argmax(counts))))


def bootstrap_images(n_images: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n_images) resampled probe-test positions: one shared draw, so every network's
    accuracy in one bootstrap sample is computed on the same images (a paired bootstrap)."""
    return np.random.default_rng(seed).integers(0, n_images, size=(int(n_boot), int(n_images)))


def paired_drop(before: np.ndarray, after: np.ndarray, draws: np.ndarray) -> dict:
    """Accuracy before minus after (positive: the ability was lost), from per-image correctness on
    the same probe-test images; its 95% interval from the image resamples ``draws``
    (:func:`bootstrap_images`), and the (n_boot,) resampled drops themselves ('draws')."""
    before, after = np.asarray(before, float), np.asarray(after, float)
    if before.shape != after.shape:
        raise ValueError(f"paired_drop needs results on the same images; got {before.shape} and {after.shape}")
    boot = before[draws].mean(1) - after[draws].mean(1)
    lo, hi = np.percentile(boot, [2.5, 97.5]) if len(boot) else (np.nan, np.nan)
    return dict(drop=float(before.mean() - after.mean()), ci_low=float(lo), ci_high=float(hi), draws=boot)


def check_disjoint(probe: ProbeSet, folders: list) -> None:
    """Refuse a probe set that shares an image (by content) with any fine-tuning folder: the probe
    must measure what fine-tuning did not teach."""
    from factortopy._digest import file_digest
    from factortopy.study.finetune import image_folder

    mine = {file_digest(p): p for p in probe.paths}
    for folder in dict.fromkeys(folders):
        for p in image_folder(folder)[0]:
            d = file_digest(p)
            if d in mine:
                raise ValueError(f"the probe set {probe.folder} holds {mine[d]}, the same image as {p} in the "
                                 f"fine-tuning folder {folder}: a probe must use images no fine-tuning saw; "
                                 "remove it from one of them")
