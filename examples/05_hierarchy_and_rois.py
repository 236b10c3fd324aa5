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
# # Reading the hierarchy and the ROIs
#
# A fitted run says, for each vertex, a probability over the backbone's layers. Two questions
# follow: does the selected layer rise along the visual hierarchy (the *hierarchy score*), and how
# do the layers distribute within each region of interest (*ROI layer profiles*)?
#
# `factortopy.analysis` answers them from arrays (no plotting); `factortopy.viz` draws them. The
# subject is the planted one, whose ROIs are the Algonauts "streams" (early, midventral, ventral)
# laid along its planted hierarchy. `FACTORTOPY_EXAMPLE_SIZE=tiny` runs this in seconds.

# %%
import os

import numpy as np

import factortopy
from factortopy import analysis, viz
from factortopy.data.algonauts import load_algonauts
from factortopy.datasets.planted import PLANTED_BACKBONE, example_subject

# The stand-in subject, planted once in the examples' work folder (its size: FACTORTOPY_EXAMPLE_SIZE)
settings = example_subject()
SIZE, WORKDIR = settings["size"], settings["workdir"]
name, weights = settings["backbone"], settings["weights"]  # the shipped MobileNetV2
subject_dir = settings["path"]
subject = load_algonauts(subject_dir)

run_dir = os.path.join(WORKDIR, SIZE, "runs", "hierarchy")
factortopy.fit(subject, backbone=name, weights=os.path.join(subject_dir, PLANTED_BACKBONE),
               img_size=settings["subject"]["img_size"], out=run_dir, overwrite=True, progress=False,
               **settings["fit"])
maps = viz.load_maps(run_dir)  # per-vertex arrays of the run, in the subject's column order
layer_probs, layer_names = maps["layer_probs"], list(maps["layer_names"])

# %% [markdown]
# ## Expected layer
#
# The expected layer is the probability-weighted layer index scaled to [0, 1] (0 = first hooked
# layer, 1 = last); `layer_confidence` says how peaked each vertex's distribution is.

# %%
expected = analysis.expected_layer(layer_probs)
print(f"expected layer: {expected.min():.2f} .. {expected.max():.2f}; "
      f"mean confidence {analysis.layer_confidence(layer_probs).mean():.2f}")
viz.value_map(maps["vertex"], maps["hemi"], expected, vmin=0, vmax=1, label="expected layer",
              views=("posterior",))

# %% [markdown]
# ## The hierarchy score
#
# Spearman's rho between expected layer and a hierarchy position, with a block-bootstrap interval
# (neighbouring vertices are not independent). The position can be the rank of each vertex's ROI
# (early < mid < late streams) or, with no ROIs at hand, the geodesic distance from the occipital
# pole on fsaverage.

# %%
rois = subject.extra["rois"]  # {"streams/early": (N,) bool mask, ...}, the loader's ROI dict
labels = np.full(subject.n_vertices, "", dtype=object)
for roi_name, mask in rois.items():
    labels[mask] = roi_name
by_roi = analysis.hierarchy_score(layer_probs, roi=labels, vertex=maps["vertex"], hemi=maps["hemi"], n_boot=200)
by_distance = analysis.hierarchy_score(layer_probs, vertex=maps["vertex"], hemi=maps["hemi"], n_boot=200)
for what, s in (("ROI rank", by_roi), ("distance from the pole", by_distance)):
    print(f"hierarchy score by {what}: rho {s['rho']:.2f} [{s['ci_low']:.2f}, {s['ci_high']:.2f}], n = {s['n']}")

# %% [markdown]
# ## ROI layer profiles
#
# For each ROI, the share of its vertices whose most probable layer is each layer, and its mean
# expected layer (the dot). `roi_layer_profiles` takes the loader's ROI dict as it is.

# %%
rows = analysis.roi_layer_profiles(layer_probs, rois, layer_names)
for row in rows:
    print(f"{row['roi']:20s} n={row['n']:4d}  expected layer {row['expected_mean']:.2f} +- {row['expected_sd']:.2f}")
viz.plot_layer_profiles(rows, title="selected layer per ROI")
