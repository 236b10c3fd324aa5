"""factortopy fit: fit a FactorTopy encoder on one subject and write a RUN_DIR."""
from __future__ import annotations

HELP = "fit a FactorTopy encoder on a subject (Algonauts 2023, raw NSD or your own data)"


def _shown(value, words) -> str:
    """A default as the command line spells it."""
    if words:
        return next(w for w, v in words.items() if v == value)
    return "none" if value is None else str(value)


def add_fit_options(p) -> None:
    """Training options shared by `fit` and `demo`: one option per FitConfig field (its help, choices
    and parsing from the field's metadata, factortopy.fitting.config.setting), plus --reference and
    --quiet. Unset options stay out of the namespace: FitConfig's (or the demo's) defaults apply."""
    import argparse
    from dataclasses import fields

    from factortopy.fitting.config import FIT_CHECKS, FitConfig

    for f in fields(FitConfig):
        meta = f.metadata
        if not meta.get("cli", True) or "help" not in meta:
            continue
        words, choices = meta.get("words"), meta.get("choices")
        kwargs = dict(default=argparse.SUPPRESS, help=f"{meta['help']} (default {_shown(f.default, words)})")
        if words:
            kwargs["choices"] = tuple(words)
        elif choices:
            kwargs["metavar"] = "{" + ",".join(choices) + "}"
            if f.name not in FIT_CHECKS:  # else FitConfig's check names the setting, as in Python
                kwargs["choices"] = choices
        elif meta.get("parse"):
            kwargs["type"] = meta["parse"]
        elif isinstance(f.default, (bool, int, float)) and f.default is not None:
            kwargs["type"] = type(f.default)
        elif f.default is None:  # an optional whole number (train_images)
            kwargs["type"] = int
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, **kwargs)
    p.add_argument("--reference", action="store_true",
                   help="the published recipe and model: batch 8, lr 1e-3, regulariser fading over 2,000 steps, "
                        "uniform readout init, no token scale, the reference positional encoding, float16 "
                        "autocast, a point receptive field on the 8 x 8 grid, the readout as trained (docs/method.md lists "
                        "every deviation and its own setting)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def fit_config(args, **defaults):
    """A FitConfig from parsed options (unset options keep ``defaults``, then FitConfig's)."""
    from dataclasses import fields

    from factortopy.fitting.config import FitConfig

    given = {}
    for f in fields(FitConfig):
        if hasattr(args, f.name):
            words = f.metadata.get("words")
            value = getattr(args, f.name)
            given[f.name] = words[value] if words else value
    if args.reference:  # the published recipe; only options given on the command line change it
        return FitConfig.reference(**given)
    return FitConfig(**{**defaults, **given})


def add_arguments(p) -> None:
    from factortopy.cli.options import add_backbone_arguments

    p.add_argument("--data", required=True,
                   help="KIND:PATH: algonauts:PATH/subjNN, nsd:NSD_ROOT?subject=N, generic:PATH (docs/data.md)")
    add_backbone_arguments(p)
    p.add_argument("--mesh-dir", default=None,
                   help="folder of a full fsaverage mesh (lh.sphere, ...), needed for vertices beyond fsaverage5; "
                        "the same as the data spec's mesh_dir=... option")
    p.add_argument("--cache-dir", default=None, help="reuse/write backbone features here (HDF5)")
    p.add_argument("--out", required=True, help="the RUN_DIR to write (an interrupted fit resumes there)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished run in --out (its evaluation files are removed too)")
    add_fit_options(p)


def run(args) -> int:
    import json
    import os

    from factortopy.data import absolute_spec, load_subject
    from factortopy.fitting.distributed import init_from_env
    from factortopy.fitting.fit import check_outputs, fit

    from factortopy.cli.options import backbone_spec

    spec = backbone_spec(args)
    if spec.random_init and not args.quiet:
        print(f"note: {spec.name} starts from random weights (--random-init): the run is labelled 'random init'")
    config = fit_config(args)  # every setting checked before any work
    check_outputs(args.out, args.cache_dir)
    from dataclasses import replace

    config = replace(config, device=init_from_env(config.device))  # torchrun: this process's GPU
    data = absolute_spec(args.data, mesh_dir=args.mesh_dir)  # the recorded spec carries the mesh too
    subject = load_subject(data)
    result = fit(subject, backbone=spec, out=args.out, config=config, cache_dir=args.cache_dir,
                 progress=not args.quiet, data_spec=data, overwrite=args.overwrite)
    if result.run_dir:
        keys = ("heldout_pearson_mean", "val_pearson_mean", "n_train", "n_val", "n_heldout", "epochs", "seconds")
        print(json.dumps({k: result.metrics[k] for k in keys if k in result.metrics}))
        print(f"wrote {os.path.abspath(args.out)}")
    return 0
