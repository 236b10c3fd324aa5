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
# A fitted run says, for each vertex, a probability over the backbone's layers. Three questions
# follow: does the selected layer rise along the visual hierarchy (the paper's *brain-network
# alignment*, a line through layer against hierarchy position), how strongly do they agree in rank
# (the *hierarchy score*), and how do the layers distribute within each region of interest (*ROI
# layer profiles*)?
#
# `factortopy.analysis` answers them from arrays (no plotting); `factortopy.viz` draws them. The
# subject is the planted one, which carries the Algonauts release's six ROI classes (prf-visualrois,
# floc-bodies/faces/places/words, streams), overlapping as in the release and laid along its
# planted hierarchy. `FACTORTOPY_EXAMPLE_SIZE=tiny` runs this in seconds.

# %%
import os

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
# ## Where each vertex sits in the hierarchy
#
# The loader's ROI dict (`subject.extra["rois"]`, `{"prf-visualrois/V1v": (N,) bool mask, ...}`)
# overlaps: a vertex can be in V1 and in `streams/early`, in OFA and OWFA. A *ranking scheme* places
# each vertex once: the default, `"paper"`, is the ROI order of the authors' code (V1, V2, V3, V4,
# EBA, FBA, OFA, FFA, OPA, PPA, OWFA, VWFA at 0 .. 1); a vertex in two of them takes the earlier one;
# streams and whole-brain masks never place a vertex under it. The counts say where every vertex went.

# %%
rois = subject.extra["rois"]  # the loader's ROI dict, as it is
for scheme in ("paper", "tiers", "streams"):
    counts = analysis.hierarchy_positions(rois, scheme=scheme)["counts"]
    print(f"{scheme:8s} {counts}")

# %% [markdown]
# ## Brain-network alignment (the paper's Table 2)
#
# A straight line through (hierarchy position, layer): b0 is the fitted layer at the early end
# (small is good), b1 at the late end (large is good), the slope their difference (large is good).
# The interval comes from a spatial block bootstrap (neighbouring vertices are not independent).

# %%
line = analysis.brain_network_alignment(layer_probs, roi=rois, vertex=maps["vertex"], hemi=maps["hemi"], n_boot=200)
print(f"slope {line['slope']:.2f} [{line['slope_ci_low']:.2f}, {line['slope_ci_high']:.2f}], "
      f"b0 {line['b0']:.2f}, b1 {line['b1']:.2f} ({line['n']} vertices, {line['bootstrap']})")

# %% [markdown]
# ## The hierarchy score
#
# Spearman's rho between expected layer and the same positions, or, with no ROIs at hand, the
# geodesic distance from the occipital pole on fsaverage.

# %%
by_roi = analysis.hierarchy_score(layer_probs, roi=rois, vertex=maps["vertex"], hemi=maps["hemi"], n_boot=200)
by_distance = analysis.hierarchy_score(layer_probs, vertex=maps["vertex"], hemi=maps["hemi"], n_boot=200)
for what, s in (("ROI position", by_roi), ("distance from the pole", by_distance)):
    print(f"hierarchy score by {what}: rho {s['rho']:.2f} [{s['ci_low']:.2f}, {s['ci_high']:.2f}], n = {s['n']}")

# %% [markdown]
# ## ROI layer profiles
#
# For each ROI, the share of its vertices whose most probable layer is each layer, and its mean
# expected layer (the dot). `roi_layer_profiles` takes the loader's ROI dict as it is; with
# `scheme="paper"` it gives one row per group of the scheme instead, early to late.

# %%
rows = analysis.roi_layer_profiles(layer_probs, rois, layer_names, scheme="paper")
for row in rows:
    print(f"{row['roi']:20s} n={row['n']:4d}  expected layer {row['expected_mean']:.2f} +- {row['expected_sd']:.2f}")
viz.plot_layer_profiles(rows, title="selected layer per ROI")
