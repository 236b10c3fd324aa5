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


def run_demo(out: str, n_images: int, config, figures: bool = True, progress: bool = True) -> dict:
    """Plant, fit, score, paint. Returns the metrics written to ``out/metrics.json``."""
    import json
    import os
    import time

    from factortopy.data.algonauts import load_algonauts
    from factortopy.datasets.planted import (PLANTED_BACKBONE, load_truth, make_planted_subject, score_hierarchy,
                                             score_recovery)
    from factortopy.datasets.planted import shipped_backbone
    from factortopy.fitting.fit import fit
    from factortopy.runs import write_json

    t0 = time.time()
    subject_dir = os.path.join(out, "subject", "subj01")
    backbone, weights = shipped_backbone()
    settings = dict(DEMO_SUBJECT, n_images=n_images, seed=config.seed, backbone=backbone)
    info_path = os.path.join(subject_dir, "planted.json")
    reuse = False
    if os.path.isfile(info_path):
        with open(info_path) as f:
            info = json.load(f)
        reuse = all(info.get(k) == v for k, v in settings.items() if k != "pole_fraction")
    if not reuse:
        print(f"planting a subject ({n_images} images, {backbone}) in {subject_dir}")
        make_planted_subject(subject_dir, progress=progress, weights=weights, **settings)
    subject = load_algonauts(subject_dir)
    run_dir = os.path.join(out, "run")
    print(f"fitting FactorTopy on {subject.n_vertices} vertices x {subject.n_images} images -> {run_dir}")
    result = fit(subject, backbone=settings["backbone"], img_size=settings["img_size"],
                 weights=os.path.join(subject_dir, PLANTED_BACKBONE), out=run_dir, config=config,
                 progress=progress, data_spec=f"algonauts:{os.path.abspath(subject_dir)}",
                 overwrite=True)  # the demo owns its folder: each run of it refits
    truth = load_truth(subject_dir)
    recovery = score_recovery(truth, result.selectors, result.heldout_r)  # images that chose nothing
    sel = result.selectors
    recovery["hierarchy"] = score_hierarchy(subject, truth, sel)
    metrics = dict(recovery=recovery, targets=TARGETS, passed=check_targets(recovery), fit=result.metrics,
                   subject=subject_dir, run=run_dir)
    if figures:
        metrics["figures"] = paint_demo(out, truth, sel)
    metrics["seconds"] = time.time() - t0
    write_json(os.path.join(out, "metrics.json"), metrics)
    return metrics


def paint_demo(out: str, truth: dict, recovered: dict) -> list[str]:
    """Planted beside recovered layer/space/scale maps (PNG), the layer map alone, an HTML page."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    from factortopy import viz

    files = []
    columns = {"planted": truth, "recovered": recovered}
    fig = viz.compare_figure(columns, rows=("layer", "space", "scale"), view="posterior",
                             title="planted vs recovered (fsaverage5, posterior view)")
    files.append(os.path.join(out, "planted_vs_recovered.png"))
    fig.savefig(files[-1], dpi=110, bbox_inches="tight")
    fig = viz.compare_figure(columns, rows=("layer",), view="posterior")
    files.append(os.path.join(out, "layer_map.png"))
    fig.savefig(files[-1], dpi=110, bbox_inches="tight")
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
    m = run_demo(args.out, args.images, config, figures=not args.no_figures, progress=not args.quiet)
    r = m["recovery"]
    print(f"layer order Spearman {r['layer_spearman']:.3f} (target >= {TARGETS['layer_spearman']})")
    print(f"median position error {r['position_error_median']:.3f} (target <= {TARGETS['position_error_median']})")
    print(f"held-out r {r['pearson_mean']:.3f} = {r['r_over_ceiling']:.2f} x the planted ceiling "
          f"{r['ceiling_r_mean']:.3f} (target >= {TARGETS['r_over_ceiling']})")
    h = r["hierarchy"]
    print(f"hierarchy score (by ROI) planted {h['planted']['rho']:.3f} [{h['planted']['ci_low']:.3f}, "
          f"{h['planted']['ci_high']:.3f}], recovered {h['recovered']['rho']:.3f}"
          f" ({'within' if h['within_ci'] else 'outside'} the planted CI)")
    print(f"done in {m['seconds']:.0f} s. Outputs in {os.path.abspath(args.out)}:")
    for name in ("metrics.json", "run", "subject/subj01", *[os.path.relpath(f, args.out) for f in m.get("figures", [])]):
        print(f"  {os.path.join(os.path.abspath(args.out), name)}")
    return 0
