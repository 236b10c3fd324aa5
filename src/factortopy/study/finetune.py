"""A small fine-tuning run: a linear head on a backbone's pooled features, then the whole network
trained with it for a number of steps on a labelled image folder; the checkpoint is saved as
safetensors and becomes a backbone's ``weights`` file.

The image folder holds one sub-folder per label (``FOLDER/<label>/*.png|jpg|jpeg|bmp``), like
torchvision's ImageFolder. Batch-norm statistics stay frozen (the network runs in eval mode):
the running means of a few tiny batches would be noise, and what moves is then the weights alone.
timm backbones only (every friendly name is one); for others, fine-tune elsewhere and give the
checkpoint as ``weights``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass

import numpy as np

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass
class FinetuneConfig:
    """steps: optimiser steps; lr: AdamW learning rate (head and network); batch_size: images per
    step; weight_decay: AdamW's; seed: the head's init and the batch order."""

    steps: int = 50
    lr: float = 1e-4
    batch_size: int = 16
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if int(self.steps) < 1 or int(self.batch_size) < 1 or not float(self.lr) > 0:
            raise ValueError(f"fine-tuning needs steps >= 1, batch_size >= 1 and lr > 0; got {asdict(self)}")


def image_folder(folder: str) -> tuple[list[str], np.ndarray, list[str]]:
    """(image paths, (n,) int labels, label names) of ``FOLDER/<label>/<image>`` (sorted)."""
    from factortopy.data.images import image_files

    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder {folder} not found")
    names = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    paths, labels = [], []
    for k, name in enumerate(names):
        sub = os.path.join(folder, name)
        files = image_files(sub, IMAGE_EXTS)
        paths += files
        labels += [k] * len(files)
    if len(names) < 2 or not paths:
        raise ValueError(f"{folder} needs at least two label sub-folders with images ({', '.join(IMAGE_EXTS)}); "
                         f"found {len(names)} sub-folder(s) and {len(paths)} image(s)")
    return paths, np.asarray(labels, dtype=np.int64), names


def checkpoint_name(spec, images: str, cfg: FinetuneConfig) -> str:
    """A file name naming what decides the checkpoint: base spec and weights, images, settings."""
    from factortopy._digest import file_digest
    from factortopy.data.images import ImageFiles, image_set_key

    paths, labels, names = image_folder(images)
    record = dict(spec=spec.to_dict(), images=image_set_key(ImageFiles(paths)), labels=labels.tolist(), names=names,
                  cfg=asdict(cfg), weights=file_digest(spec.weights) if spec.weights else None)
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:10] + ".safetensors"


def finetune(spec, images: str, out: str, cfg: FinetuneConfig | None = None, device: str = "cpu",
             progress: bool = True) -> dict:
    """Fine-tune the backbone ``spec`` describes on the labelled folder ``images``; save the
    network's state dict to ``out`` (.safetensors). Returns a log: settings, labels, per-step loss.
    An existing ``out`` is kept (the study names it by a digest of everything that decides it)."""
    import torch
    from factortopy._files import write_safetensors
    from factortopy._progress import progress_bar as tqdm  # renders in Jupyter, else a plain bar

    from factortopy.backbones.spec import as_spec
    from factortopy.data.images import read_image

    cfg = cfg or FinetuneConfig()
    backbone = as_spec(spec).build()
    model = getattr(backbone, "model", None)
    if backbone.info.extra.get("source") != "timm" or not hasattr(model, "forward_head"):
        raise ValueError(f"{spec.name}: fine-tuning runs take timm backbones (every friendly name is one); "
                         "fine-tune this one elsewhere and give the checkpoint as weights = FILE")
    paths, labels, names = image_folder(images)
    x_all = torch.cat([backbone.preprocess(torch.from_numpy(np.array(read_image(p)))[None]) for p in paths])
    y_all = torch.from_numpy(labels)
    model = model.to(device).eval().requires_grad_(True)  # eval: batch-norm statistics stay frozen
    gen = torch.Generator().manual_seed(int(cfg.seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.seed))
        head = torch.nn.Linear(int(model.num_features), len(names)).to(device)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=float(cfg.lr), weight_decay=float(cfg.weight_decay))
    losses = []
    bar = tqdm(range(int(cfg.steps)), desc=f"fine-tune {spec.name}", unit="step", disable=not progress)
    for _ in bar:
        idx = torch.randint(0, len(paths), (int(cfg.batch_size),), generator=gen)
        pooled = model.forward_head(model.forward_features(x_all[idx].to(device)), pre_logits=True)
        loss = torch.nn.functional.cross_entropy(head(pooled), y_all[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    # a killed run leaves no half-written checkpoint that would pass for a finished one
    write_safetensors(out, {k: v.detach().cpu() for k, v in model.state_dict().items()})
    return dict(base=spec.to_dict(), images=os.path.abspath(images), labels=names, n_images=len(paths),
                config=asdict(cfg), loss=losses, checkpoint=os.path.abspath(out))
