"""factortopy demo: plant a known network-to-brain map, fit it, and show how much came back."""
from __future__ import annotations

# The demo's settings (chosen on planted subjects, see docs/method.md): small enough for 2 CPU cores.
from factortopy.datasets.planted import DEMO_FIT, DEMO_SUBJECT  # numpy only: `--help` stays fast

HELP = "make a planted-truth subject, fit it, score the recovery and paint planted vs recovered maps"

# What "recovered" means (issue targets): checked and reported in metrics.json.
TARGETS = dict(layer_spearman=0.85, position_error_median=0.12, r_over_ceiling=0.75)


def add_arguments(p) -> None:
    from factortopy.cli.fit import add_fit_options

    p.add_argument("--out", default="demo_out", help="output folder (default ./demo_out)")
    p.add_argument("--images", type=int, default=DEMO_SUBJECT["n_images"], help="planted images (default 1200)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures and the HTML page")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished demo in --out (default: reuse it when its settings are the same, "
                        "refuse when they differ)")
    add_fit_options(p)
    show_demo_defaults(p)


def show_demo_defaults(p) -> None:
    """The shared fit options' help says FitConfig's defaults; the demo's own (DEMO_FIT) replace
    them, so `demo --help` shows what the demo really uses (patience None is the CLI's 0 = never)."""
    import re

    for action in p._actions:
        if action.dest in DEMO_FIT and action.help:
            value = DEMO_FIT[action.dest]
            action.help = re.sub(r"default [^;)]+", f"default {0 if value is None else value}", action.help)


def check_targets(recovery: dict) -> dict:
    return dict(
        layer_spearman=recovery["layer_spearman"] >= TARGETS["layer_spearman"],
        position_error_median=recovery["position_error_median"] <= TARGETS["position_error_median"],
        r_over_ceiling=recovery["r_over_ceiling"] >= TARGETS["r_over_ceiling"],
    )


#: what a demo writes into --out: nothing else may be there (the demo never writes into a folder of
#: another kind, e.g. a fit's RUN_DIR or your own files)
DEMO_ENTRIES = ("subject", "run", "metrics.json", "planted_vs_recovered.png", "layer_map.png", "layer_map.html")


def check_demo_folder(out: str) -> None:
    """Refuse an --out that holds anything a demo does not write (hidden files aside)."""
    import os

    if not os.path.exists(out):
        return
    if not os.path.isdir(out):
        raise ValueError(f"--out {out} is a file: the demo writes a folder; choose another --out")
    others = sorted(n for n in os.listdir(out) if n not in DEMO_ENTRIES and not n.startswith("."))
    if others:
        kind = "a fit's or baseline's RUN_DIR" if "config.json" in others else "files the demo did not write"
        raise ValueError(f"--out {out} holds {kind} ({', '.join(others[:4])}{', ...' if len(others) > 4 else ''}): "
                         "the demo writes only into a new folder or a demo's own; choose another --out")


def _config_differences(recorded: dict, config) -> list[str]:
    """'name: X then, Y now' for each fit setting that differs from a finished run's config."""
    import json
    from dataclasses import asdict

    from factortopy.fitting.config import FitConfig

    now = json.loads(json.dumps(asdict(config)))  # tuples -> lists, as config.json holds them
    # a setting added after the run was made (e.g. loss) had its default's effect then
    before = {**json.loads(json.dumps(asdict(FitConfig()))), **(recorded.get("fit") or {})}
    return [f"{k}: {before.get(k)!r} then, {now[k]!r} now" for k in now if before.get(k) != now[k]]


def run_demo(out: str, n_images: int, config, figures: bool = True, progress: bool = True,
             overwrite: bool = False) -> dict:
    """Plant, fit, score, paint. Returns the metrics written to ``out/metrics.json``.

    A finished demo in ``out`` is never destroyed: with the same settings it is reused (its saved
    metrics are returned and nothing is written), with other settings refused, unless ``overwrite``
    (replant if needed and refit). An interrupted fit resumes. ``out`` must be new or a demo's own.
    """
    import json
    import os
    import time

    from factortopy.data.algonauts import load_algonauts
    from factortopy.backbones.spec import as_spec
    from factortopy.datasets.planted import PLANTED_BACKBONE, load_truth, plant_subject, shipped_backbone
    from factortopy.fitting.fit import fit
    from factortopy.runs import CONFIG, read_json, write_json
    from factortopy.runs.directory import run_dir_state

    t0 = time.time()
    check_demo_folder(out)
    subject_dir = os.path.join(out, "subject", "subj01")
    run_dir = os.path.join(out, "run")
    metrics_path = os.path.join(out, "metrics.json")
    backbone, weights = shipped_backbone()
    settings = dict(DEMO_SUBJECT, n_images=n_images, seed=config.seed, backbone=backbone)
    info_path = os.path.join(subject_dir, "planted.json")
    planted_same = False
    if os.path.isfile(info_path):
        with open(info_path) as f:
            info = json.load(f)
        # a plant from before the release's ROI classes (streams only) cannot be scored by them: plant again
        planted_same = all(info.get(k) == v for k, v in settings.items() if k != "pole_fraction") \
            and "roi_classes" in info
    finished = run_dir_state(run_dir) == "finished"
    if finished:
        recorded = read_json(os.path.join(run_dir, CONFIG))
        if recorded.get("kind") != "factortopy" or not str(recorded.get("data", "")).endswith(
                os.path.join("subject", "subj01")):
            raise ValueError(f"{run_dir} holds a {recorded.get('kind')} run that is not a demo's: the demo never "
                             "writes over it; choose another --out")
        differences = ([] if planted_same else ["the planted subject (--images or --seed)"]) \
            + _config_differences(recorded, config)
        if differences and not overwrite:
            raise ValueError(f"{out} holds a finished demo with other settings ({'; '.join(differences[:4])}): "
                             "pass --overwrite to replace it, or choose another --out")
        if not overwrite and os.path.isfile(metrics_path):
            print(f"{out} holds a finished demo with these settings: reusing it (--overwrite refits)")
            return dict(read_json(metrics_path), reused=True)
    features = None
    if not planted_same:
        print(f"planting a subject ({n_images} images, {backbone}) in {subject_dir}")
        features = plant_subject(subject_dir, progress=progress, weights=weights, **settings)[1]
    subject = load_algonauts(subject_dir)
    truth = load_truth(subject_dir)
    if finished and not overwrite:  # the run finished but its scoring did not: score the saved run
        from factortopy.runs.maps import load_maps

        selectors = load_maps(run_dir)
        heldout_r, fit_metrics = selectors["r"], read_json(os.path.join(run_dir, "metrics.json"))
    else:
        print(f"fitting FactorTopy on {subject.n_vertices} vertices x {subject.n_images} images -> {run_dir}")
        spec = as_spec(settings["backbone"], img_size=settings["img_size"],
                       weights=os.path.join(subject_dir, PLANTED_BACKBONE))
        features = plant_features_for_fit(features, spec, config)
        result = fit(subject, backbone=None if features is not None else spec, features=features, out=run_dir,
                     config=config, progress=progress, data_spec=f"algonauts:{os.path.abspath(subject_dir)}",
                     overwrite=overwrite)  # a finished run is replaced only when asked; an interrupted one resumes
        selectors, heldout_r, fit_metrics = result.selectors, result.heldout_r, result.metrics
    metrics = score_demo(subject, truth, selectors, heldout_r)
    metrics.update(fit=fit_metrics, subject=subject_dir, run=run_dir)
    if figures:
        metrics["figures"] = paint_demo(out, truth, selectors)
    metrics["seconds"] = time.time() - t0
    write_json(metrics_path, metrics)
    return metrics


def plant_features_for_fit(features, spec, config):
    """The plant's features of the subject's images, carrying the identity of the backbone the fit
    names (``spec``: the planted weights file beside the subject, the same tensors the plant used),
    so the fit does not extract them a second time; None (the fit extracts) when there are none,
    when the fit's grid differs, or when the rebuilt backbone differs in anything but the weights
    file's name."""
    if features is None or features.grid != config.grid:
        return None
    from factortopy.backbones.spec import RESOLVED_FIELDS, backbone_identity, identity_differences
    from factortopy.features.extract import Features

    identity = backbone_identity(spec.build())
    if identity_differences(features.backbone, identity, tuple(f for f in RESOLVED_FIELDS if f != "weights")):
        return None
    return Features(features.tokens, features.layer_names, features.channels, features.grid, backbone=identity)


def score_demo(subject, truth: dict, selectors: dict, heldout_r) -> dict:
    """Recovery (on the held-out images, which chose nothing), the hierarchy scores, the targets."""
    from factortopy.datasets.planted import score_hierarchy, score_recovery

    recovery = score_recovery(truth, selectors, heldout_r)
    recovery["hierarchy"] = score_hierarchy(subject, truth, selectors)
    return dict(recovery=recovery, targets=TARGETS, passed=check_targets(recovery))


def paint_demo(out: str, truth: dict, recovered: dict) -> list[str]:
    """Planted beside recovered layer/space/scale maps (PNG), the layer map alone, an HTML page."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    from factortopy import viz
    from factortopy._files import write_figure

    files = []
    columns = {"planted": truth, "recovered": recovered}
    fig = viz.compare_figure(columns, rows=("layer", "space", "scale"), view="posterior",
                             title="planted vs recovered (fsaverage5, posterior view)")
    files.append(os.path.join(out, "planted_vs_recovered.png"))
    write_figure(files[-1], fig, dpi=110, bbox_inches="tight")
    fig = viz.compare_figure(columns, rows=("layer",), view="posterior")
    files.append(os.path.join(out, "layer_map.png"))
    write_figure(files[-1], fig, dpi=110, bbox_inches="tight")
    try:
        painting = viz.layer_painting(recovered["vertex"], recovered["hemi"], recovered["layer_probs"],
                                      list(recovered["layer_names"]))
        files.append(os.path.join(out, "layer_map.html"))
        viz.interactive_html(painting, files[-1], title="recovered layer map")
    except ImportError as err:  # plotly is an optional extra
        print(f"(no HTML page: {err})")
    return files


def demo_config(args):
    """The demo's FitConfig: its own recipe (DEMO_FIT), or with --reference the published one, with
    options given on the command line overriding either."""
    from factortopy.cli.fit import fit_config

    return fit_config(args, **DEMO_FIT)


def run(args) -> int:
    import os

    if args.images < 1:
        raise ValueError(f"--images must be a whole number >= 1, got {args.images}")
    config = demo_config(args)
    m = run_demo(args.out, args.images, config, figures=not args.no_figures, progress=not args.quiet,
                 overwrite=args.overwrite)
    r = m["recovery"]
    print(f"layer order Spearman {r['layer_spearman']:.3f} (target >= {TARGETS['layer_spearman']})")
    print(f"median position error {r['position_error_median']:.3f} (target <= {TARGETS['position_error_median']})")
    print(f"held-out r {r['pearson_mean']:.3f} = {r['r_over_ceiling']:.2f} x the planted ceiling "
          f"{r['ceiling_r_mean']:.3f} (target >= {TARGETS['r_over_ceiling']})")
    h = r["hierarchy"]
    print(f"hierarchy score (by ROI) planted {h['planted']['rho']:.3f} [{h['planted']['ci_low']:.3f}, "
          f"{h['planted']['ci_high']:.3f}], recovered {h['recovered']['rho']:.3f}"
          f" ({'within' if h['within_ci'] else 'outside'} the planted CI)")
    done = "reused (fitted earlier" if m.get("reused") else "done"
    print(f"{done} in {m['seconds']:.0f} s{')' if m.get('reused') else ''}. Outputs in {os.path.abspath(args.out)}:")
    for name in ("metrics.json", "run", "subject/subj01", *[os.path.relpath(f, args.out) for f in m.get("figures", [])]):
        print(f"  {os.path.join(os.path.abspath(args.out), name)}")
    return 0
