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
from factortopy.datasets.planted import PLANTED_BACKBONE, load_truth, make_planted_subject, shipped_backbone

SIZE = os.environ.get("FACTORTOPY_EXAMPLE_SIZE", "full")
WORKDIR = os.environ.get("FACTORTOPY_EXAMPLE_DIR", "factortopy_examples")
SIZES = {
    "tiny": dict(subject=dict(n_images=120, pole_fraction=0.01, img_size=64, image_size=64, dim=8),
                 fit=dict(epochs=2, batch_size=16, dim=8, val_fraction=0.25, heldout_fraction=0.25)),
    "full": dict(subject=dict(n_images=1200, pole_fraction=0.17, img_size=128, dim=32, noise_sd=0.7),
                 fit=dict(epochs=20, batch_size=32, lr=2e-3, dim=32, patience=None)),
}
settings = SIZES[SIZE]

# %% [markdown]
# ## A planted subject
#
# `make_planted_subject` writes the subject in the Algonauts 2023 layout (so the real loader reads
# it) with its truth beside it. It is written once and reused.

# %%
backbone, weights = shipped_backbone()  # ("mobilenetv2_100", its ImageNet weights file)
subject_dir = os.path.join(WORKDIR, f"planted-{SIZE}", "subj01")
if not os.path.isfile(os.path.join(subject_dir, "planted.json")):
    make_planted_subject(subject_dir, backbone=backbone, weights=weights, progress=False, **settings["subject"])
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
