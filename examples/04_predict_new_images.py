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
# # Predicting responses to new images with a saved run
#
# A fitted run is an encoding model: give it any image and it predicts every vertex's response.
# This notebook fits one the scikit-learn way (`FactorTopyEncoder`, for those who think in
# himalaya terms), saves it, and predicts images it has never seen: files on disk, PIL images,
# arrays of any size, grey or colour. `FACTORTOPY_EXAMPLE_SIZE=tiny` runs it in seconds.

# %%
import os

import numpy as np
from PIL import Image

import factortopy
from factortopy import FactorTopyEncoder
from factortopy.data.algonauts import load_algonauts
from factortopy.datasets.photos import make_images
from factortopy.datasets.planted import PLANTED_BACKBONE, example_subject

# The stand-in subject, planted once in the examples' work folder (its size: FACTORTOPY_EXAMPLE_SIZE)
settings = example_subject()
SIZE, WORKDIR = settings["size"], settings["workdir"]
name, weights = settings["backbone"], settings["weights"]  # the shipped MobileNetV2
subject_dir = settings["path"]

# %% [markdown]
# ## Plain arrays in, an estimator out
#
# `fit(images, responses, vertices=..., hemi=...)` takes images (arrays, files or PIL images) and an
# (n_images, n_vertices) response matrix *in any units*, with each column's fsaverage vertex and
# hemisphere. Here the arrays come from the planted subject; we keep the last fifth of the images
# for testing.

# %%
subject = load_algonauts(subject_dir)
images = np.stack([subject.images[i] for i in range(subject.n_images)])  # (n, H, W, 3) uint8
responses = subject.responses * 2.5 + 10.0  # some other units: predictions come back in these
n_train = int(0.8 * len(images))

encoder = FactorTopyEncoder(name, weights=os.path.join(subject_dir, PLANTED_BACKBONE),
                            img_size=settings["subject"]["img_size"], **settings["fit"])
encoder.fit(images[:n_train], responses[:n_train], vertices=subject.vertex, hemi=subject.hemi)
encoder

# %% [markdown]
# `score` is the mean R^2 over vertices (scikit-learn's convention for regressors);
# `score_vertices` gives it per vertex, or Pearson r with `metric="r"`.

# %%
test_images, test_responses = images[n_train:], responses[n_train:]
print(f"test R^2 {encoder.score(test_images, test_responses):.3f}, "
      f"mean r {encoder.score_vertices(test_images, test_responses, metric='r').mean():.3f}")
print("layer_probs_", encoder.layer_probs_.shape, "over", encoder.layer_names_)

# %% [markdown]
# ## Save, load, predict
#
# `save` writes an ordinary run directory: `FactorTopyEncoder.load`, `factortopy.open_run` and every
# command (`factortopy paint`, `factortopy evaluate`, `factortopy predict`) read it.

# %%
run_dir = os.path.join(WORKDIR, SIZE, "runs", "encoder")
encoder.save(run_dir, overwrite=True)
same = FactorTopyEncoder.load(run_dir)
assert np.array_equal(same.predict(test_images[:4]), encoder.predict(test_images[:4]))

# %% [markdown]
# New images, in whatever form they come: a PNG file, a PIL image, a grey array of another size,
# floats in [0, 1]. Each is resized and normalised exactly as the training images were.

# %%
new = make_images(4, size=96, seed=123)  # images the model never saw
png = os.path.join(WORKDIR, SIZE, "new-image.png")
Image.fromarray(new[0]).save(png)
inputs = [png, Image.fromarray(new[1]), new[2].mean(axis=2).astype(np.uint8)[:80], new[3] / 255.0]
predictions = factortopy.predict(run_dir, inputs)
print(predictions.shape, "in the units of the training responses: mean", predictions.mean().round(2))

# %% [markdown]
# The same from the command line, for files and folders of images (`.npz` adds the vertex and
# hemisphere of each column):
#
#     factortopy predict RUN_DIR new-image.png more_images/ --out predictions.npz

# %%
from factortopy.cli import main

main(["predict", run_dir, png, "--out", os.path.join(WORKDIR, SIZE, "predictions.npz"), "--overwrite", "--quiet"])
with np.load(os.path.join(WORKDIR, SIZE, "predictions.npz")) as saved:
    assert np.allclose(saved["predictions"][0], predictions[0], atol=1e-5)
    print(sorted(saved.files))
