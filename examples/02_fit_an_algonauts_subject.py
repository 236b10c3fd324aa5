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
# # Fitting an Algonauts 2023 subject
#
# The [Algonauts 2023 challenge data](http://algonauts.csail.mit.edu/challenge.html) hold, per
# subject, NSD images and fMRI responses on fsaverage vertices of both hemispheres, with ROI masks
# and noise ceilings:
#
#     algonauts_2023_challenge_data/subj01/
#         training_split/training_images/train-0001_nsd-00013.png ...
#         training_split/training_fmri/lh_training_fmri.npy, rh_training_fmri.npy
#         roi_masks/lh.all-vertices_fsaverage_space.npy, ... (docs/data.md)
#
# Point `FACTORTOPY_ALGONAUTS_SUBJECT` at a subject folder (e.g.
# `/data/algonauts_2023_challenge_data/subj01`) to fit it with a pretrained CLIP ViT-B/16 (its
# weights must be in the Hugging Face hub cache, or give a local file with `weights=`). Without it,
# a planted subject written in the same layout stands in, so this notebook runs anywhere;
# `FACTORTOPY_EXAMPLE_SIZE=tiny` makes it run in seconds.
#
# The same fit from the command line:
#
#     factortopy fit --data algonauts:/data/algonauts_2023_challenge_data/subj01 \
#         --backbone clip-vit-b-16 --device cuda --out runs/subj01-clip

# %%
import os

import factortopy
from factortopy.datasets.planted import PLANTED_BACKBONE, example_subject

REAL_SUBJECT = os.environ.get("FACTORTOPY_ALGONAUTS_SUBJECT")  # e.g. /data/algonauts_2023_challenge_data/subj01

if REAL_SUBJECT:
    SIZE, WORKDIR = "real", os.environ.get("FACTORTOPY_EXAMPLE_DIR", "factortopy_examples")
    subject_dir = REAL_SUBJECT
    import torch

    backbone = dict(backbone="clip-vit-b-16")  # a friendly name means its pretrained weights
    fit_settings = dict(epochs=10, device="cuda" if torch.cuda.is_available() else "cpu")
else:  # the stand-in: a planted subject in the Algonauts layout, planted once (FACTORTOPY_EXAMPLE_SIZE)
    settings = example_subject()
    SIZE, WORKDIR = settings["size"], settings["workdir"]
    name, weights = settings["backbone"], settings["weights"]  # the shipped MobileNetV2
    subject_dir = settings["path"]
    backbone = dict(backbone=name, weights=os.path.join(subject_dir, PLANTED_BACKBONE),
                    img_size=settings["subject"]["img_size"])
    fit_settings = settings["fit"]

# %% [markdown]
# ## Load the subject
#
# A data spec `KIND:PATH` names the layout; `factortopy.load_subject` reads it. The subject holds
# the images (read lazily), the responses (z-scored per vertex), each column's fsaverage vertex and
# hemisphere, and what the dataset adds in `extra`: ROI masks, noise ceilings, the split.

# %%
data_spec = f"algonauts:{os.path.abspath(subject_dir)}"
subject = factortopy.load_subject(data_spec)
print(subject)
print("ROIs:", ", ".join(list(subject.extra.get("rois", {}))[:8]))

# %% [markdown]
# ## Fit
#
# Features are cached on disk (`cache_dir`), so a second fit on the same images and backbone skips
# extraction. `data_spec` is recorded in the run, so `evaluate` finds the data again later. The fit
# keeps a share of the images out of everything (`heldout_fraction`): their score is the honest one.

# %%
run_dir = os.path.join(WORKDIR, SIZE, "runs", "algonauts")
result = factortopy.fit(subject, **backbone, out=run_dir, overwrite=True, data_spec=data_spec,
                        cache_dir=os.path.join(WORKDIR, "features"), progress=False, **fit_settings)
headline = result.metrics["headline"]  # the name of the honest score: held-out images chose nothing
print(f"{headline}: {result.metrics[headline]:.3f}")
print({k: round(v, 3) for k, v in result.metrics.items() if k.endswith(("pearson_mean", "r2_mean"))})

# %% [markdown]
# ## Evaluate on the held-out images
#
# `evaluate_run` predicts the held-out images again from the saved run and tabulates Pearson r
# (and the Algonauts score where the data carry a noise ceiling) per ROI. Same as
# `factortopy evaluate RUN_DIR`.

# %%
evaluation = factortopy.evaluate_run(run_dir, split="heldout")
print(evaluation["text"])
