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
# # Painting a network onto the brain
#
# FactorTopy learns, for every cortical vertex, *which layer* of a vision network, *which image
# position* and *which scale* best predict its fMRI response. Painted on the cortex, these choices
# show how the network's hierarchy maps onto the brain's.
#
# Here the brain is a **planted subject**: responses generated from a known network (ImageNet
# MobileNetV2) with known, smoothly varying layer / position / scale maps over the occipital
# cortex. Because the truth is known, we can check that the fit recovers it.
#
# Run it at a reduced size with `FACTORTOPY_EXAMPLE_SIZE=tiny` (seconds; what CI does); the default
# `full` size is the `factortopy demo` subject (a few minutes on a laptop CPU).

# %%
import os

import factortopy
from factortopy import viz
from factortopy.data.algonauts import load_algonauts
from factortopy.datasets.planted import PLANTED_BACKBONE, example_subject, load_truth

# The stand-in subject, planted once in the examples' work folder (its size: FACTORTOPY_EXAMPLE_SIZE)
settings = example_subject()
SIZE, WORKDIR = settings["size"], settings["workdir"]

# %% [markdown]
# ## A planted subject
#
# `example_subject()` plants it once with `make_planted_subject`, which writes the subject in the
# Algonauts 2023 layout (so the real loader reads it) with its truth beside it.

# %%
backbone, weights = settings["backbone"], settings["weights"]  # the shipped MobileNetV2
subject_dir = settings["path"]
subject = load_algonauts(subject_dir)
subject

# %% [markdown]
# ## Fit
#
# `factortopy.fit` extracts the backbone's features once, trains the per-vertex selectors and
# writes a run directory. The backbone is the one the responses were planted with (its weights file
# travels with the subject).

# %%
run_dir = os.path.join(WORKDIR, SIZE, "runs", "paint")
result = factortopy.fit(subject, backbone=backbone, weights=os.path.join(subject_dir, PLANTED_BACKBONE),
                        img_size=settings["subject"]["img_size"], out=run_dir, overwrite=True, progress=False,
                        **settings["fit"])
print({k: round(v, 3) for k, v in result.metrics.items() if k.endswith("pearson_mean")})

# %% [markdown]
# ## The layer map
#
# Colour is the expected layer (blue: early, red: late), brightness its confidence. On the planted
# subject early layers sit at the occipital pole and later ones anteriorly.

# %%
viz.paint_run(run_dir, "layer", views=("posterior", "ventral"))

# %% [markdown]
# ## Planted beside recovered
#
# The same three maps (layer, image position through a colour wheel, scale from local to global)
# for the truth and for the fit.

# %%
truth = load_truth(subject_dir)
recovered = viz.load_maps(run_dir)
viz.compare_figure({"planted": truth, "recovered": recovered}, rows=("layer", "space", "scale"), view="posterior")

# %% [markdown]
# From the command line the same figures are `factortopy paint RUN_DIR --what layer --out layer.png`
# (`--out layer.html` gives an interactive page you can rotate and hover).
