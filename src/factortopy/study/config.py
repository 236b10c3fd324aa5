"""The study file: subjects, backbones, fit settings and an optional fine-tuning study, read into
:class:`Study`, and the run directory of each (subject, backbone) pair.

A TOML file (or the same structure as a dict)::

    [study]                      # optional
    n_boot = 1000                # bootstrap draws of every interval
    device = "cpu"               # or "cuda"; several visible GPUs: one fit process per GPU
    seeds = [0, 1, 2]            # fit every (subject, backbone) pair once per seed (default: the fit's seed)
    null_reference = true        # add each architecture's random-init version (the chance level)
    hierarchy = "paper"          # the ROI ranking scheme (factortopy.analysis.roi_hierarchy), or "geodesic"
    overlap = "earliest"         # a vertex in two ranked ROIs: "earliest", "latest" or "exclude"
    alignment_layer = "argmax"   # a vertex's layer in the alignment: "argmax" or "expected"
    alignment_fit = "vertex"     # the alignment line through vertices, or through ROI means ("roi")
    n_blocks = 50                # spatial blocks of the block bootstrap
    min_ceiling = 0.1            # optional: only vertices whose noise ceiling (0-1) reaches it

    [[subjects]]
    name = "subj01"
    data = "algonauts:planted/subj01"        # a --data spec; relative paths are from the study file

    [[backbones]]
    label = "MobileNetV2 (ImageNet)"         # column title; default: the name (+ "random init")
    name = "mobilenetv2_100"                 # any BackboneSpec field: name, layers, weights, pretrained,
    weights = "mobilenet_v2.pth"             #   random_init, seed, img_size, mean, std, token_layout,
    img_size = 96                            #   remap, model_args
    method = "supervised ImageNet"           # training method (default: the friendly name's family)
    family = "MobileNetV2"                   # architecture family (default: the friendly name's family)

    [fit]                                    # FitConfig fields (factortopy.fitting.fit.FitConfig)
    epochs = 10

    [launcher]                               # optional: each fit a SLURM job (factortopy.study.launch)
    kind = "slurm"                           # or "local" (submitit, this machine); default "process"
    partition = "gpu"
    gpus_per_job = 1
    time = "4:00:00"
    mem = "32G"

    [finetune]                               # optional: the fine-tuning study (factortopy.study.forgetting)
    bases = ["MobileNetV2 (ImageNet)"]       # backbone labels above (or base = ONE label)
    probe = "probe/"                         # labelled images no fine-tuning used: the forgetting probe
    [[finetune.versions]]                    # a recipe: applied to every base
    label = "fine-tuned (hard)"
    images = "labelled/"                     # an image folder with one sub-folder per label ...
    steps = 40
    lr = 1e-3
    [[finetune.versions]]
    label = "fine-tuned elsewhere"
    base = "MobileNetV2 (ImageNet)"          # a checkpoint belongs to one base
    weights = "my_checkpoint.safetensors"    # ... or a checkpoint made elsewhere

    [scaling]                                # optional: the fMRI-data axis (factortopy.study.scaling)
    train_images = [1000, 3000, "all"]       # nested, seeded subsets of each subject's training images

**Which runs are fitted again.** Each pair's RUN_DIR is ``DIR/runs/<subject>/<label>-<digest>`` where
the digest is a SHA-256 of everything that decides the fit: the backbone spec (with a whole-file
digest of its weights file), the data spec and the fit settings with the seed (``device`` excepted:
a study moved to a GPU keeps its runs). The fit's own seed (``[fit] seed``, default 0) is digested
as the fit settings say it, so a single-seed study that gains ``seeds = [0, 1]`` keeps its seed-0
runs. A finished run there is skipped; an interrupted one resumes; a changed spec, weights file or
setting names another folder and is fitted afresh (the old folder stays on disk, out of the summary).

**The null reference** (``null_reference = true``): every architecture with trained weights gets its
random-init version (same spec, ``random_init = true``), unless the study already lists one; a
generated one draws its random weights with each fit's seed, so its spread over seeds includes the
draw of the network.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field, fields

#: keys of a [[backbones]] entry that are not BackboneSpec fields (pretraining_images: the size of
#: its pretraining set, for a name the registry does not know; factortopy.study.scaling)
BACKBONE_KEYS = ("label", "family", "method", "pretraining_images")
#: keys of a [[finetune.versions]] entry: a checkpoint, or the settings of a fine-tuning run; base:
#: the one base it belongs to (required for a checkpoint when the study has several bases)
VERSION_KEYS = ("label", "weights", "images", "steps", "lr", "batch_size", "weight_decay", "seed", "method", "base")
STUDY_KEYS = ("n_boot", "device", "gpus", "name", "view", "seeds", "null_reference", "hierarchy", "overlap",
              "alignment_layer", "alignment_fit", "n_blocks", "min_ceiling")
#: [study] hierarchy: an ROI ranking scheme's name, or this (geodesic distance from the occipital pole)
GEODESIC = "geodesic"


@dataclass
class StudyBackbone:
    """One backbone of a study: its spec, its label, and how it is grouped in the figures."""

    label: str
    spec: object  # BackboneSpec
    family: str
    method: str
    finetune_of: str | None = None  # the base backbone's label, for a fine-tuned version
    finetune: dict | None = None  # fine-tuning run settings (the checkpoint is made by the study)
    recipe: str | None = None  # a fine-tuned version's [[finetune.versions]] label: one recipe, several bases
    #: images in its pretraining set (factortopy.study.scaling.pretraining_images: the study file's,
    #: else the registry's; a fine-tuned version keeps its base's); None = unknown
    pretraining_images: int | None = None
    null: str | None = None  # the label of its architecture's random-init version (null_reference)
    reseed: bool = False  # a generated null: its random weights are drawn with each fit's seed

    def spec_for(self, seed: int):
        """The spec fitted with fit seed ``seed`` (a generated null draws its weights with it)."""
        return self.spec.replace(seed=int(seed)) if self.reseed else self.spec


@dataclass
class Study:
    subjects: dict  # name -> data spec
    backbones: list  # StudyBackbone
    fit: dict
    n_boot: int = 1000
    device: str = "cpu"
    gpus: list | None = None
    name: str = "study"
    view: str = "posterior"
    base_dir: str = "."
    finetune: object | None = None  # factortopy.study.forgetting.ForgettingConfig ([finetune])
    scaling: object | None = None  # factortopy.study.scaling.ScalingConfig ([scaling])
    launcher: dict = field(default_factory=dict)  # the [launcher] section (factortopy.study.launch)
    seeds: list = field(default_factory=lambda: [0])
    null_reference: bool = False
    hierarchy: str = "paper"
    overlap: str = "earliest"
    alignment_layer: str = "argmax"
    alignment_fit: str = "vertex"
    n_blocks: int = 50
    min_ceiling: float | None = None

    @property
    def base_seed(self) -> int:
        """The seed the fit settings name (``[fit] seed``, default 0): its runs keep their folders."""
        return int(self.fit.get("seed", 0))

    def backbone(self, label: str) -> StudyBackbone:
        for b in self.backbones:
            if b.label == label:
                return b
        raise KeyError(f"no backbone labelled {label!r}; the study has {', '.join(b.label for b in self.backbones)}")


def slug(text: str) -> str:
    """A file-name-safe version of a label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def _unknown(keys, known, where: str) -> None:
    bad = sorted(set(keys) - set(known))
    if bad:
        raise ValueError(f"{where}: unknown key(s) {bad}; known: {', '.join(sorted(known))}")


def _path(base: str, p: str) -> str:
    return p if os.path.isabs(os.path.expanduser(p)) else os.path.normpath(os.path.join(base, p))


#: bootstrap draws of an interval: fewer than MIN_BOOT puts a 95 % interval's ends on one or two
#: draws (n_boot = 1 gave an interval that excluded its own estimate); more than MAX_BOOT only costs
#: memory and time ((n_boot,) draws per run and measure, (n_boot, n_blocks) counts per subject)
MIN_BOOT, MAX_BOOT = 20, 100_000


def _is_whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_number(value, key: str, where: str, whole: bool = False, low=None, high=None, low_open: bool = False,
                 high_open: bool = False):
    """``value`` if it is a number (a whole one with ``whole``) in [low, high] (open ends with
    ``low_open`` / ``high_open``), else a ValueError naming ``where`` and ``key`` and what they take."""
    import math

    ok = _is_whole(value) if whole else (isinstance(value, (int, float)) and not isinstance(value, bool)
                                         and math.isfinite(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        what = "a whole number" if whole else "a number"
        bounds = [f"{'>' if low_open else '>='} {low}" if low is not None else "",
                  f"{'<' if high_open else '<='} {high}" if high is not None else ""]
        raise ValueError(f"{where} {key} must be {what} {' and '.join(b for b in bounds if b)}".rstrip()
                         + f", got {value!r}")
    return value


def _check_names(names: dict, what: str, where: str) -> None:
    """Distinct names must stay distinct as folder and file names (:func:`slug`)."""
    seen = {}
    for name in names:
        other = seen.setdefault(slug(name), name)
        if other != name:
            raise ValueError(f"{where}: {what} {other!r} and {name!r} map to one folder name {slug(name)!r} (runs and "
                             f"figures are named by it): rename one")



def read_study_file(path) -> dict:
    """The study file as a dict (TOML)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ImportError("reading a TOML study file on Python 3.10 needs tomli: pip install tomli") from None
    with open(path, "rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path} is not valid TOML: {err}") from None


def _backbone(entry: dict, base: str, where: str) -> StudyBackbone:
    from factortopy.backbones import registry
    from factortopy.backbones.spec import BackboneSpec, as_spec

    spec_keys = {f.name for f in fields(BackboneSpec)}
    _unknown(entry, spec_keys | set(BACKBONE_KEYS), where)
    if "name" not in entry:
        raise ValueError(f"{where} has no name: give the backbone's name (a friendly, timm or prefixed name)")
    raw = {k: v for k, v in entry.items() if k in spec_keys}
    if raw.get("weights"):
        raw["weights"] = _path(base, os.path.expanduser(str(raw["weights"])))
        if not os.path.isfile(raw["weights"]):
            raise FileNotFoundError(f"{where}: weights file {raw['weights']} not found (relative paths are from the "
                                    "study file's folder)")
    for key in ("label", "family", "method"):
        if key in entry and not isinstance(entry[key], str):
            raise ValueError(f"{where}: {key} must be a string, got {entry[key]!r}")
    try:
        spec = as_spec(raw)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None
    reg = registry.get(spec.name)
    family = entry.get("family") or (reg.family if reg else spec.name.split(":")[-1])
    method = entry.get("method") or ("random init" if spec.random_init else reg.family if reg else "unspecified")
    pretraining = entry.get("pretraining_images")
    if pretraining is not None and not (isinstance(pretraining, int) and not isinstance(pretraining, bool)
                                        and pretraining >= 0):
        raise ValueError(f"{where}: pretraining_images must be a whole number >= 0 (images in the pretraining "
                         f"set), got {pretraining!r}")
    from factortopy.study.scaling import pretraining_images

    return StudyBackbone(label=str(entry.get("label") or spec.label), spec=spec, family=str(family),
                         method=str(method), pretraining_images=pretraining_images(spec, pretraining))


# ---- [finetune]: the fine-tuning study (several bases, each with its versions) --------------------
def _finetune_bases(section: dict, by_label: dict) -> list:
    if ("base" in section) == ("bases" in section):
        raise ValueError("[finetune] needs base = LABEL or bases = [LABEL, ...] (labels of [[backbones]]), not "
                         "both")
    bases = [section["base"]] if "base" in section else section["bases"]
    if isinstance(bases, str) or not isinstance(bases, list) or not bases:
        raise ValueError(f"[finetune] bases must be a non-empty list of backbone labels, got {bases!r}")
    for b in bases:
        if b not in by_label:
            raise ValueError(f"[finetune] base {b!r} is not a backbone label; labels: {', '.join(by_label)}")
    if len(set(bases)) != len(bases):
        raise ValueError(f"[finetune] bases repeat: {bases}")
    return list(bases)


def _version(v: dict, i: int, base_bb: StudyBackbone, base: str, several: bool) -> StudyBackbone:
    """One fine-tuned version of ``base_bb`` from a [[finetune.versions]] entry."""
    recipe = str(v.get("label") or f"fine-tuned {i + 1}")
    # one recipe on several bases: the base names the column ("base: recipe"); one base keeps the label
    label = f"{base_bb.label}: {recipe}" if several else str(v.get("label") or f"{base_bb.label} fine-tuned {i + 1}")
    method = str(v.get("method") or f"{base_bb.method}, fine-tuned")
    common = dict(label=label, family=base_bb.family, method=method, finetune_of=base_bb.label, recipe=recipe,
                  pretraining_images=base_bb.pretraining_images)
    if "weights" in v:
        spec = base_bb.spec.replace(weights=_path(base, os.path.expanduser(v["weights"])), pretrained=None,
                                    random_init=False)
        return StudyBackbone(spec=spec, **common)
    from factortopy.study.finetune import FinetuneConfig

    settings = {k: v[k] for k in ("steps", "lr", "batch_size", "weight_decay", "seed") if k in v}
    cfg = FinetuneConfig(**settings)  # checked by _version_settings
    # the spec gets its checkpoint path when the study makes it (factortopy.study.run)
    return StudyBackbone(spec=base_bb.spec, finetune=dict(images=_path(base, os.path.expanduser(v["images"])),
                                                          **asdict(cfg)), **common)


def _versions(section: dict, backbones: list, base: str) -> tuple[object, list]:
    """([finetune] settings as a ForgettingConfig, the fine-tuned versions as StudyBackbones)."""
    from factortopy.study.forgetting import ForgettingConfig

    settings = {f.name for f in fields(ForgettingConfig)} - {"bases"}
    _unknown(section, {"base", "bases", "versions"} | settings, "[finetune]")
    by_label = {b.label: b for b in backbones}
    bases = _finetune_bases(section, by_label)
    out = []
    versions = section.get("versions") or []
    if not isinstance(versions, list) or not all(isinstance(v, dict) for v in versions):
        raise ValueError("[finetune] versions must be [[finetune.versions]] tables")
    for i, v in enumerate(versions):
        where = f"[[finetune.versions]] #{i + 1}"
        _unknown(v, VERSION_KEYS, where)
        if ("weights" in v) == ("images" in v):
            raise ValueError(f"{where}: give either weights = FILE (a fine-tuned checkpoint) or images = FOLDER "
                             "(an image folder with one sub-folder per label, fine-tuned here)")
        _version_settings(v, base, where)
        if "base" in v and v["base"] not in bases:
            raise ValueError(f"{where}: base {v['base']!r} is not one of the [finetune] bases {bases}")
        if "weights" in v and "base" not in v and len(bases) > 1:
            raise ValueError(f"{where}: a checkpoint (weights = FILE) belongs to one base: add base = LABEL "
                             f"(one of {bases})")
        for b in ([v["base"]] if "base" in v else bases):
            out.append(_version(v, i, by_label[b], base, several=len(bases) > 1 and "base" not in v))
    if not out:
        raise ValueError("[finetune] lists no versions: add [[finetune.versions]] entries")
    options = {k: section[k] for k in settings if k in section}
    if options.get("probe") is not None:
        if not isinstance(options["probe"], str):
            raise ValueError(f"[finetune] probe must be a folder (a string), got {options['probe']!r}")
        options["probe"] = _path(base, os.path.expanduser(options["probe"]))
        if not os.path.isdir(options["probe"]):
            raise FileNotFoundError(f"[finetune] probe folder {options['probe']} not found (relative paths are from "
                                    "the study file's folder)")
    for key, whole, low, high, low_open, high_open in FORGETTING_NUMBERS:
        if key in options and not (key == "refit_seed" and options[key] is None):
            check_number(options[key], key, "[finetune]", whole, low, high, low_open, high_open)
    return ForgettingConfig(bases=bases, **options), out


#: the numbers of [finetune] (key, whole, low, high, low open, high open); ForgettingConfig checks the rest
FORGETTING_NUMBERS = (("probe_test_fraction", False, 0, 1, True, True), ("probe_seed", True, 0, None, False, False),
                      ("probe_c", False, 0, None, True, False), ("knn_k", True, 1, None, False, False),
                      ("refit_seed", True, 0, None, False, False), ("local_threshold", False, 0, 1, False, False))
#: the numbers of a [[finetune.versions]] entry that fine-tunes here (FinetuneConfig's fields)
VERSION_NUMBERS = (("steps", True, 1, None, False), ("lr", False, 0, None, True), ("batch_size", True, 1, None, False),
                   ("weight_decay", False, 0, None, False), ("seed", True, 0, None, False))


def _version_settings(v: dict, base: str, where: str) -> None:
    """A [[finetune.versions]] entry's files and numbers, checked (each error names the key)."""
    for key in ("label", "method", "base"):
        if key in v and not isinstance(v[key], str):
            raise ValueError(f"{where}: {key} must be a string, got {v[key]!r}")
    for key, kind in (("weights", os.path.isfile), ("images", os.path.isdir)):
        if key in v:
            if not isinstance(v[key], str):
                raise ValueError(f"{where}: {key} must be a path (a string), got {v[key]!r}")
            if not kind(_path(base, os.path.expanduser(v[key]))):
                raise FileNotFoundError(f"{where}: {key} = {v[key]!r}: {_path(base, os.path.expanduser(v[key]))} not "
                                        "found (relative paths are from the study file's folder)")
    for key, whole, low, high, low_open in VERSION_NUMBERS:
        if key in v:
            check_number(v[key], key, where, whole, low, high, low_open)


# ---- [scaling]: the fMRI-data axis ----------------------------------------------------------------
def _scaling(section: dict, backbones: list):
    from factortopy.study.scaling import ScalingConfig

    _unknown(section, {f.name for f in fields(ScalingConfig)}, "[scaling]")
    if "local_threshold" in section:
        check_number(section["local_threshold"], "local_threshold", "[scaling]", low=0, high=1)
    cfg = ScalingConfig(**section)
    labels = [b.label for b in backbones]
    for label in cfg.backbones or []:
        if label not in labels:
            raise ValueError(f"[scaling] backbones: {label!r} is not a backbone label; labels: {', '.join(labels)}")
    return cfg


def _architecture(spec) -> str:
    """The architecture a spec builds, whatever its weights (a key for the null reference)."""
    d = {k: v for k, v in spec.to_dict().items() if k not in ("weights", "pretrained", "random_init", "seed")}
    return json.dumps(d, sort_keys=True)


def add_null_references(backbones: list) -> list:
    """Give every backbone with trained weights its architecture's random-init version
    (``StudyBackbone.null``): a listed random-init backbone of the same architecture, else a new one
    appended (label ``<name> (random init)``, method 'random init', weights drawn per fit seed)."""
    nulls = {}
    for b in backbones:
        if b.spec.random_init:
            nulls.setdefault(_architecture(b.spec), b)
    labels = {b.label for b in backbones}
    for b in list(backbones):
        if b.spec.random_init:
            continue
        key = _architecture(b.spec)
        if key not in nulls:
            spec = b.spec.replace(weights=None, pretrained=None, random_init=True, seed=0)
            label = spec.label if spec.label not in labels else f"{spec.label} null"
            nulls[key] = StudyBackbone(label=label, spec=spec, family=b.family, method="random init", reseed=True)
            labels.add(label)
            backbones.append(nulls[key])
        b.null = nulls[key].label
    return backbones


def _study_settings(head: dict, fit: dict) -> dict:
    """The [study] inference settings, checked (each error names the key and what it takes)."""
    from factortopy.analysis.alignment import FITS, LAYER_READOUTS
    from factortopy.analysis.roi_hierarchy import OVERLAP_RULES, SCHEMES

    base = int(fit.get("seed", 0))
    seeds = head.get("seeds", [base])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds or any(
            not isinstance(x, int) or isinstance(x, bool) or x < 0 for x in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"[study] seeds must be a list of distinct whole numbers >= 0 (e.g. seeds = [0, 1, 2]), "
                         f"got {seeds!r}")
    out = dict(seeds=[int(x) for x in seeds], null_reference=head.get("null_reference", False),
               hierarchy=head.get("hierarchy", "paper"), overlap=head.get("overlap", "earliest"),
               alignment_layer=head.get("alignment_layer", "argmax"), alignment_fit=head.get("alignment_fit", "vertex"),
               n_blocks=head.get("n_blocks", 50), min_ceiling=head.get("min_ceiling"))
    checks = {
        "null_reference": (lambda v: isinstance(v, bool), "true or false"),
        "hierarchy": (lambda v: v in SCHEMES or v == GEODESIC, " / ".join(map(repr, [*SCHEMES, GEODESIC]))),
        "overlap": (lambda v: v in OVERLAP_RULES, " / ".join(map(repr, OVERLAP_RULES))),
        "alignment_layer": (lambda v: v in LAYER_READOUTS, " / ".join(map(repr, LAYER_READOUTS))),
        "alignment_fit": (lambda v: v in FITS, " / ".join(map(repr, FITS))),
        "n_blocks": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2, "a whole number >= 2"),
        "min_ceiling": (lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1),
                        "a noise-ceiling fraction in (0, 1)"),
    }
    for key, (ok, what) in checks.items():
        if not ok(out[key]):
            raise ValueError(f"[study] {key} must be {what}, got {out[key]!r}")
    if out["hierarchy"] == GEODESIC and out["alignment_fit"] == "roi":
        raise ValueError("[study] alignment_fit = 'roi' needs ROIs: with hierarchy = 'geodesic' use 'vertex'")
    return out


def load_study(source, base_dir: str | None = None) -> Study:
    """A :class:`Study` from a TOML file path or a dict of the same structure (relative paths are
    taken from the file's folder, or ``base_dir`` / the working directory for a dict)."""
    from factortopy.data import absolute_spec
    from factortopy.fitting.fit import FitConfig

    if isinstance(source, dict):
        raw, base = source, os.path.abspath(base_dir or ".")
    else:
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"study file {path} not found")
        raw, base = read_study_file(path), os.path.dirname(os.path.abspath(path))
    _unknown(raw, ("study", "subjects", "backbones", "fit", "finetune", "scaling", "launcher"), "the study file")
    head = dict(raw.get("study") or {})
    _unknown(head, STUDY_KEYS, "[study]")
    subjects = {}
    for i, s in enumerate(raw.get("subjects") or []):
        _unknown(s, ("name", "data"), f"[[subjects]] #{i + 1}")
        if "data" not in s:
            raise ValueError(f"[[subjects]] #{i + 1} has no data: give data = 'KIND:PATH' (docs/data.md)")
        name = str(s.get("name") or f"subject{i + 1}")
        if name in subjects:
            raise ValueError(f"two subjects are named {name!r}: give each a distinct name")
        # absolute against the study file's folder, in the very form a fit records (so a finished
        # run's config names the same data)
        subjects[name] = absolute_spec(s["data"], base=base)
    if not subjects:
        raise ValueError("the study names no subject: add [[subjects]] with data = 'KIND:PATH'")
    _check_names(subjects, "subjects", "[[subjects]]")
    backbones = [_backbone(b, base, f"[[backbones]] #{i + 1}") for i, b in enumerate(raw.get("backbones") or [])]
    finetune = None
    if raw.get("finetune"):
        finetune, versions = _versions(raw["finetune"], backbones, base)
        backbones += versions
    scaling = _scaling(raw["scaling"], backbones) if raw.get("scaling") else None
    if not backbones:
        raise ValueError("the study names no backbone: add [[backbones]] with name = ...")
    labels = [b.label for b in backbones]
    dup = sorted({l for l in labels if labels.count(l) > 1})
    if dup:
        raise ValueError(f"backbone labels repeat: {dup}; give each a distinct label")
    fit = dict(raw.get("fit") or {})
    _unknown(fit, {f.name for f in fields(FitConfig)}, "[fit]")
    FitConfig(**fit)  # wrong types fail here, before any work
    from factortopy.study.launch import check_settings

    launcher = dict(raw.get("launcher") or {})
    check_settings(launcher)  # where the fits run (factortopy.study.launch); never part of a run's digest
    settings = {**_study_settings(head, fit), **_study_head(head, fit)}
    if settings["null_reference"]:
        add_null_references(backbones)
    # every label names run folders, checkpoints and figure entries: distinct as folder names too
    # (a generated null reference included)
    _check_names({b.label: b for b in backbones}, "backbone labels", "[[backbones]]")
    return Study(subjects=subjects, backbones=backbones, fit=fit, base_dir=base, finetune=finetune, scaling=scaling,
                 launcher=launcher, **settings)


def _study_head(head: dict, fit: dict) -> dict:
    """The [study] settings that are not inference settings (n_boot, device, gpus, name, view),
    checked: each error names the key and what it takes."""
    from factortopy.fitting.fit import FitConfig
    from factortopy.viz.render import VIEWS

    out = dict(n_boot=check_number(head.get("n_boot", 1000), "n_boot", "[study]", True, MIN_BOOT, MAX_BOOT),
               device=head.get("device", fit.get("device", "cpu")), gpus=head.get("gpus"),
               name=head.get("name", "study"), view=head.get("view", "posterior"))
    try:
        FitConfig(**{**fit, "device": out["device"]})
    except ValueError as err:
        raise ValueError(f"[study] device: {err}") from None
    gpus = out["gpus"]
    if gpus is not None and (not isinstance(gpus, list) or not gpus or not all(
            (_is_whole(g) and g >= 0) or (isinstance(g, str) and g.isdigit()) for g in gpus)):
        raise ValueError(f"[study] gpus must be a list of GPU ids (e.g. gpus = [0, 1]), got {gpus!r}")
    if not isinstance(out["name"], str):
        raise ValueError(f"[study] name must be a string, got {out['name']!r}")
    if out["view"] not in VIEWS:
        raise ValueError(f"[study] view must be one of {', '.join(VIEWS)} (the map grids' view), got {out['view']!r}")
    return out


def pair_digest(spec, data: str, fit: dict) -> str:
    """The digest naming a (subject, backbone) pair's RUN_DIR: spec + weights content + data + settings."""
    from factortopy._digest import file_digest

    record = dict(spec=spec.to_dict(), data=data, fit={k: v for k, v in sorted(fit.items()) if k != "device"})
    if spec.weights is not None:
        if not os.path.isfile(spec.weights):
            raise FileNotFoundError(f"weights file {spec.weights} not found")
        record["weights_digest"] = file_digest(spec.weights)
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class Pair:
    """One fit of a study: a subject, a backbone and a seed. spec: the backbone spec fitted (a
    generated null's carries the seed); fit: the fit settings with the seed."""

    subject: str
    data: str
    backbone: StudyBackbone
    run_dir: str
    fit: dict = field(default_factory=dict)
    seed: int | None = None  # default: the fit settings' seed
    spec: object = None  # default: the backbone's spec

    def __post_init__(self):
        if self.seed is None:
            self.seed = int(self.fit.get("seed", 0))
        if self.spec is None:
            self.spec = self.backbone.spec


def run_dir_of(out: str, subject: str, backbone: StudyBackbone, data: str, fit: dict, spec=None) -> str:
    """The RUN_DIR of a fit of ``backbone`` on ``subject`` with the settings ``fit``: one name for
    the same fit wherever the study needs it (a pair, a noise-floor refit, a data-scaling subset).
    spec: the spec fitted, when not the backbone's own (a generated null drawn with a seed)."""
    spec = backbone.spec if spec is None else spec
    return os.path.join(out, "runs", slug(subject), f"{slug(backbone.label)}-{pair_digest(spec, data, fit)}")


def pairs(study: Study, out: str) -> list[Pair]:
    """Every (subject, backbone, seed) with its RUN_DIR under ``out`` (specs must be final), subject
    by subject, backbones in the study's order, seeds innermost."""
    out_pairs = []
    for s, data in study.subjects.items():
        for b in study.backbones:
            for seed in study.seeds:
                # the base seed is digested as the settings say it: single-seed runs keep their folders
                digested = study.fit if seed == study.base_seed else {**study.fit, "seed": seed}
                out_pairs.append(Pair(subject=s, data=data, backbone=b, seed=seed, spec=b.spec_for(seed),
                                      fit={**study.fit, "seed": seed},
                                      run_dir=run_dir_of(out, s, b, data, digested, spec=b.spec_for(seed))))
    return out_pairs
