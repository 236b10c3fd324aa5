"""A planted brain that is not FactorTopy's model: it reads another real network than the one fitted.

:func:`make_misspecified_subject` writes a subject (the Algonauts layout with the release's six ROI
classes, as every planted subject: :func:`factortopy.datasets.planted.planted_rois`) whose vertices
read a pretrained network of their own (the "brain network", e.g. ImageNet EfficientNet-Lite0 when
the fit uses MobileNetV2), so no setting of the fitted model can reproduce it exactly. Per vertex v:

- layer: a soft bump over the brain network's stages along the planted hierarchy (as
  :func:`~factortopy.datasets.planted.planted_maps`);
- receptive field: a Gaussian of graded size around a retinotopic position, renormalised over the
  image (:func:`~factortopy.datasets.planted.graded_maps`: sigma 0.04-0.25 image widths, growing with
  the stage and the eccentricity), on a ``plant_grid`` x ``plant_grid`` grid of the stage's map;
- channels: in each stage's own channel space (not a shared projection), a weight vector
  a_vl = sum_k m_vk B_lk, B_lk random prototypes of the stage (independent across stages, so a vertex
  that reads two stages reads them with unrelated weights) and m_v a smooth membership over
  ``n_prototypes`` centres on the cortex: a low-rank channel mix, one per stage;
- nonlinearity: the pooled drive d, z-scored, is compressed as sign(d) |d|^``exponent``
  (sub-additive summation); with ``subunit="rectified"`` each grid cell's channel sum is also
  rectified before the pool (u -> max(u, 0), a rectified subunit), a harder brain whose best linear
  read is a deeper layer than the planted one (measured: docs/method.md);

    drive_v = sum_l p_vl z( sum_cells g_v(cell) f(a_vl . x_l(cell) / rms_l) ),  f = identity or max(0, .)
    response_v = z( sign(z(drive_v)) |z(drive_v)|^exponent ) + noise, z-scored

with z(.) the z-score over images, x_l(cell) the stage's tokens and rms_l their RMS over the first
chunk of images. The truth (``planted_truth.npz``, a maps file: per-vertex arrays only) holds
``layer_probs`` (N, L) over the brain network's stages, ``space_xy``, ``rf_size``, ``hierarchy``,
``channel_membership`` (N, K), ``ceiling_r`` (the ceiling of the noiseless signal, not of any linear
model) and no ``scale`` or ``readout``; the brain network's arrays are beside it in
``planted_brain.npz``: ``layer_strides`` (L,), ``prototypes_<l>`` (C_l, K), ``layer_rms`` (L,)
(:func:`load_misspecified_truth` reads both). Layer
recovery is read by stage (stride), since the fitted network's layers are not the brain's:
:func:`score_stage_recovery`.
"""
from __future__ import annotations

import os

import numpy as np

#: the networks a misspecified subject is made and fitted with (docs/method.md, "Predicting as well as
#: ridge"): development pairs choose settings, the held-out pair only checks them
DEVELOPMENT_PAIR = dict(brain="efficientnet_lite0", fitted="mobilenetv2_100")
HELDOUT_PAIR = dict(brain="mobilenetv2_100", fitted="efficientnet_lite0")
#: the file beside planted_truth.npz with the brain network's per-stage arrays (not per vertex)
PLANTED_BRAIN = "planted_brain.npz"
#: what each grid cell's channel sum goes through before the receptive-field pool
SUBUNITS = {"linear": lambda u: u, "rectified": lambda u: u.clamp_min(0)}


def channel_membership(xyz: np.ndarray, n_prototypes: int, rng: np.random.Generator, width: float = 12.0) -> np.ndarray:
    """(N, K) smooth soft membership of cortical points (N, 3) (fsaverage sphere, radius 100) in K
    clusters around randomly chosen points: Gaussian in distance (sd ``width``), rows summing to 1."""
    centres = xyz[rng.choice(len(xyz), n_prototypes, replace=False)]
    d2 = ((xyz[:, None] - centres[None]) ** 2).sum(-1)
    member = np.exp(-(d2 - d2.min(1, keepdims=True)) / (2 * width**2))
    return member / member.sum(1, keepdims=True)


def make_misspecified_subject(out: str, brain: str = DEVELOPMENT_PAIR["brain"], img_size: int = 96,
                              n_images: int = 600, pole_fraction: float = 0.08, image_size: int = 128,
                              plant_grid: int = 16, n_prototypes: int = 12, noise_sd: float = 0.5,
                              exponent: float = 0.5, seed: int = 0, weights: str | None = None,
                              layer_width: float = 0.5, rf_base: float = 0.02, rf_per_layer: float = 0.15,
                              rf_per_eccentricity: float = 0.12, subunit: str = "linear", chunk: int = 64,
                              progress: bool = True) -> str:
    """Write a subject whose vertices read the network ``brain`` (see the module docstring); return ``out``.

    brain / img_size: the brain network (a timm name) and its input size; weights: its weights file
    (default: the ImageNet weights of its offline package,
    :func:`factortopy.datasets.planted.offline_weights`). n_images / image_size: the bundled-photo
    images (:func:`factortopy.datasets.photos.make_images`). pole_fraction: share of each fsaverage5
    sphere in the occipital cap (0.08 -> about 820 vertices per hemisphere). plant_grid: the grid
    the stages' maps are pooled on. n_prototypes: rank of each stage's channel mix. noise_sd: noise
    relative to the unit-variance signal (ceiling r 1 / sqrt(1 + noise_sd^2)). exponent: the output
    compression. subunit: ``"linear"`` or ``"rectified"`` (see above). seed: images, maps, prototypes and noise. chunk: images per extraction pass (memory:
    chunk x plant_grid^2 x N floats). Other arguments as
    :func:`factortopy.datasets.planted.make_graded_subject`.
    """
    import torch

    from factortopy._files import write_npz
    from factortopy.backbones import load_backbone
    from factortopy.datasets.photos import make_images
    from factortopy.datasets.planted import (_add_noise, _write_plant, cap_position, gaussian_pool_weights,
                                             graded_maps, occipital_cap, offline_weights)
    from factortopy.features.extract import extract_features
    if subunit not in SUBUNITS:
        raise ValueError(f"subunit must be one of {', '.join(SUBUNITS)}, got {subunit!r}")
    bb = load_backbone(brain, img_size=img_size, weights=weights or offline_weights(brain))
    info = bb.info
    images = make_images(n_images, size=image_size, seed=seed)
    vertex, hemi = occipital_cap(pole_fraction)
    L, N, G2 = len(info.layer_names), len(vertex), plant_grid * plant_grid
    maps = graded_maps(vertex, hemi, L, 1, seed, layer_width, rf_base, rf_per_layer, rf_per_eccentricity)
    del maps["readout"]  # the point plant's readout; this brain's channels are below
    rng = np.random.default_rng(seed + 3)
    member = channel_membership(cap_position(vertex, hemi)[2], n_prototypes, rng)
    prototypes = [rng.standard_normal((c, n_prototypes)) for c in info.channels]
    mix = []  # per stage (C_l, N), unit-norm columns
    for B in prototypes:
        a = B @ member.T
        mix.append(torch.from_numpy(a / np.linalg.norm(a, axis=0, keepdims=True)).float())
    pool = torch.from_numpy(gaussian_pool_weights(maps["space_xy"], maps["rf_size"], plant_grid)).float()  # (N, G2)

    pooled = torch.zeros(L, n_images, N)  # each stage's rectified, pooled drive
    rms = None
    for start in range(0, n_images, chunk):
        stop = min(start + chunk, n_images)
        tokens = extract_features(bb, images, grid=plant_grid, progress=progress and start == 0,
                                  index=np.arange(start, stop), dtype=torch.float32).tokens
        if rms is None:  # fixed by the first chunk: a deterministic function of seed and network
            rms = np.array([float(tokens[:, l, :G2, :c].pow(2).mean().sqrt()) for l, c in enumerate(info.channels)])
        for l, c in enumerate(info.channels):
            u = tokens[:, l, :G2, :c] @ mix[l] / float(rms[l])  # (b, G2, N): each cell's channel sum
            pooled[l, start:stop] = torch.einsum("bgn,ng->bn", SUBUNITS[subunit](u), pool)
    z = (pooled - pooled.mean(1, keepdim=True)) / pooled.std(1, keepdim=True).clamp_min(1e-12)
    drive = (z * torch.from_numpy(maps["layer_probs"]).T[:, None, :]).sum(0).numpy()
    d = (drive - drive.mean(0)) / drive.std(0)
    signal = np.sign(d) * np.abs(d) ** exponent
    responses = _add_noise(signal, noise_sd, seed)
    maps["channel_membership"] = member.astype(np.float32)
    _write_plant(out, bb, images, responses, vertex, hemi, maps, info.layer_names, noise_sd,
                        dict(backbone=brain, img_size=img_size, seed=seed, generator="misspecified",
                             brain=brain, subunit=subunit, plant_grid=plant_grid, n_prototypes=n_prototypes, exponent=exponent,
                             image_size=image_size, strides=list(info.strides),
                             rf_size=dict(base=rf_base, per_layer=rf_per_layer,
                                          per_eccentricity=rf_per_eccentricity)))
    # the brain network's own arrays are not per vertex: beside the truth (a maps file), in their own file
    write_npz(os.path.join(out, PLANTED_BRAIN), dict(
        layer_strides=np.asarray(info.strides, np.int64), layer_rms=rms.astype(np.float32),
        **{f"prototypes_{l}": B.astype(np.float32) for l, B in enumerate(prototypes)}))
    return out


def load_misspecified_truth(subject_dir: str) -> dict:
    """The truth of a misspecified subject: :func:`~factortopy.datasets.planted.load_truth`'s
    per-vertex maps plus the brain network's arrays of planted_brain.npz (``layer_strides`` (L,),
    ``layer_rms`` (L,), ``prototypes_<l>`` (C_l, K)), in one plain dict."""
    from factortopy.datasets.planted import load_truth
    from factortopy.runs import read_npz

    path = os.path.join(subject_dir, PLANTED_BRAIN)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: {subject_dir} is not a misspecified planted subject "
                                "(make_misspecified_subject)")
    return {**load_truth(subject_dir), **read_npz(path)}


def score_stage_recovery(truth: dict, selectors: dict, strides) -> dict:
    """How well a fit with another network recovered the planted stage of every vertex.

    truth: a planted truth with ``layer_probs`` and ``layer_strides`` (the brain network's);
    selectors: a fit's maps (``layer_probs``, ``vertex``, ``hemi``; a ridge run's one-hot best
    layer works too); strides: the fitted network's layer strides (``Backbone.info.strides``).
    A stage is log2 of the stride, so the two networks' layers compare by the resolution they read.

    stage_spearman: Spearman rho of the planted vs the fitted expected stage (sum_l p_l log2 s_l);
    stride_match: share of vertices whose most probable fitted layer has the stride of the most
    probable planted one.
    """
    from scipy.stats import spearmanr

    from factortopy.datasets.planted import rows_of

    rows = rows_of(truth, selectors)
    planted = np.log2(np.asarray(truth["layer_strides"], float))
    fitted = np.log2(np.asarray(strides, float))
    if fitted.size != selectors["layer_probs"].shape[1]:
        raise ValueError(f"{fitted.size} strides for {selectors['layer_probs'].shape[1]} fitted layers")
    p_true, p_fit = truth["layer_probs"][rows], np.asarray(selectors["layer_probs"])
    return dict(stage_spearman=float(spearmanr(p_true @ planted, p_fit @ fitted)[0]),
                stride_match=float((planted[p_true.argmax(1)] == fitted[p_fit.argmax(1)]).mean()))
