# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Comparing backbones
#
# The same subject, two networks: MobileNetV2 with its ImageNet weights (the package ships them,
# `factortopy.datasets.planted.shipped_backbone()`), and the same architecture with random weights.
# Which predicts the brain better, and do their layer maps differ?
#
# The subject is planted from the trained MobileNetV2, so the trained network should win and its
# layer map should follow the planted hierarchy; a random network's layers are much alike, so its
# layer map is poorly identified (docs/method.md). With real data, swap in any backbone names
# (`factortopy layers --list`). `FACTORTOPY_EXAMPLE_SIZE=tiny` runs this in seconds.

# %%
import os

import numpy as np

import factortopy
from factortopy import analysis, viz
from factortopy.data.algonauts import load_algonauts
from factortopy.datasets.planted import example_subject, load_truth

# The stand-in subject, planted once in the examples' work folder (its size: FACTORTOPY_EXAMPLE_SIZE)
settings = example_subject()
SIZE, WORKDIR = settings["size"], settings["workdir"]
name, weights = settings["backbone"], settings["weights"]  # the shipped MobileNetV2
subject_dir = settings["path"]
subject = load_algonauts(subject_dir)

# %% [markdown]
# ## Two fits
#
# A backbone is a name plus how its weights are chosen: a weights file, its pretrained hub weights
# (the default for a name), or `random_init=True`. Run titles and configs say "random init" when it
# is one.

# %%
backbones = {
    "trained": dict(backbone=name, weights=weights),
    "random init": dict(backbone=name, random_init=True),
}
runs = {}
for label, choice in backbones.items():
    runs[label] = os.path.join(WORKDIR, SIZE, "runs", "compare-" + label.replace(" ", "-"))
    result = factortopy.fit(subject, **choice, img_size=settings["subject"]["img_size"], out=runs[label],
                            overwrite=True, progress=False, **settings["fit"])
    print(f"{label:12s} held-out r = {result.metrics['heldout_pearson_mean']:.3f}")

# %% [markdown]
# ## How well does each layer map follow the hierarchy?
#
# The paper's measure is the *alignment*: a straight line through each vertex's layer (first 0, last
# 1) against its ROI's place in the visual hierarchy (early 0, late 1), here by the subject's ROIs in
# the authors' order; slope, b0 (the early end) and b1 (the late end), with block-bootstrap
# intervals. The hierarchy score is the rank correlation of each vertex's expected layer with its
# position along the planted hierarchy (the planted truth's own position, known for this subject).
# For many networks, seeds and subjects at once, with paired differences and a random-init null,
# use a study (docs/studies.md).

# %%
truth = load_truth(subject_dir)
for label, run_dir in runs.items():
    maps = viz.load_maps(run_dir)
    line = analysis.brain_network_alignment(maps["layer_probs"], roi=subject.extra["rois"], vertex=maps["vertex"],
                                            hemi=maps["hemi"], n_boot=200)
    score = analysis.hierarchy_score(maps["layer_probs"], position=truth["hierarchy"], n_boot=200)
    print(f"{label:12s} alignment slope {line['slope']:.2f} [{line['slope_ci_low']:.2f}, {line['slope_ci_high']:.2f}] "
          f"(b0 {line['b0']:.2f}, b1 {line['b1']:.2f}); hierarchy rho = {score['rho']:.2f} "
          f"[{score['ci_low']:.2f}, {score['ci_high']:.2f}]")

# %% [markdown]
# ## Side by side
#
# One column per run; `compare_runs` measures how far the layer, position and scale choices moved
# between them on the vertices they share.

# %%
shift = analysis.compare_runs(runs["trained"], runs["random init"], load=viz.load_maps)
print(f"{shift['n_matched']} shared vertices: the expected layer (0 = first, 1 = last) moved by "
      f"{np.abs(shift['d_layer']).mean():.2f} on average, the image position by "
      f"{np.median(shift['d_space_dist']):.2f} (median, image half-widths)")
viz.run_grid(list(runs.values()), rows=("layer", "space"), titles=list(runs))
