"""The study file: subjects, backbones, fit settings and an optional fine-tuning study, read into
:class:`Study`, and the run directory of each (subject, backbone) pair.

A TOML file (or the same structure as a dict)::

    [study]                      # optional
    n_boot = 1000                # bootstrap draws of the hierarchy score's interval
    device = "cpu"               # or "cuda"; several visible GPUs: one fit process per GPU

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
digest of its weights file), the data spec and the fit settings (``device`` excepted: a study moved
to a GPU keeps its runs). A finished run there is skipped; an interrupted one resumes; a changed
spec, weights file or setting names another folder and is fitted afresh (the old folder stays on
disk, out of the summary).
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
STUDY_KEYS = ("n_boot", "device", "gpus", "name", "view")


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
        raw["weights"] = _path(base, os.path.expanduser(raw["weights"]))
    spec = as_spec(raw)
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
        spec = base_bb.spec.replace(weights=_path(base, v["weights"]), pretrained=None, random_init=False)
        return StudyBackbone(spec=spec, **common)
    from factortopy.study.finetune import FinetuneConfig

    settings = {k: v[k] for k in ("steps", "lr", "batch_size", "weight_decay", "seed") if k in v}
    cfg = FinetuneConfig(**settings)
    # the spec gets its checkpoint path when the study makes it (factortopy.study.run)
    return StudyBackbone(spec=base_bb.spec, finetune=dict(images=_path(base, v["images"]), **asdict(cfg)), **common)


def _versions(section: dict, backbones: list, base: str) -> tuple[object, list]:
    """([finetune] settings as a ForgettingConfig, the fine-tuned versions as StudyBackbones)."""
    from factortopy.study.forgetting import ForgettingConfig

    settings = {f.name for f in fields(ForgettingConfig)} - {"bases"}
    _unknown(section, {"base", "bases", "versions"} | settings, "[finetune]")
    by_label = {b.label: b for b in backbones}
    bases = _finetune_bases(section, by_label)
    out = []
    for i, v in enumerate(section.get("versions") or []):
        where = f"[[finetune.versions]] #{i + 1}"
        _unknown(v, VERSION_KEYS, where)
        if ("weights" in v) == ("images" in v):
            raise ValueError(f"{where}: give either weights = FILE (a fine-tuned checkpoint) or images = FOLDER "
                             "(an image folder with one sub-folder per label, fine-tuned here)")
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
        options["probe"] = _path(base, os.path.expanduser(str(options["probe"])))
    return ForgettingConfig(bases=bases, **options), out


# ---- [scaling]: the fMRI-data axis ----------------------------------------------------------------
def _scaling(section: dict, backbones: list):
    from factortopy.study.scaling import ScalingConfig

    _unknown(section, {f.name for f in fields(ScalingConfig)}, "[scaling]")
    cfg = ScalingConfig(**section)
    labels = [b.label for b in backbones]
    for label in cfg.backbones or []:
        if label not in labels:
            raise ValueError(f"[scaling] backbones: {label!r} is not a backbone label; labels: {', '.join(labels)}")
    return cfg


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
    return Study(subjects=subjects, backbones=backbones, fit=fit, n_boot=int(head.get("n_boot", 1000)),
                 device=str(head.get("device", fit.get("device", "cpu"))), gpus=head.get("gpus"),
                 name=str(head.get("name", "study")), view=str(head.get("view", "posterior")), base_dir=base,
                 finetune=finetune, scaling=scaling, launcher=launcher)


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
    subject: str
    data: str
    backbone: StudyBackbone
    run_dir: str
    fit: dict = field(default_factory=dict)


def run_dir_of(out: str, subject: str, backbone: StudyBackbone, data: str, fit: dict) -> str:
    """The RUN_DIR of a fit of ``backbone`` on ``subject`` with the settings ``fit``: one name for
    the same fit wherever the study needs it (a pair, a noise-floor refit, a data-scaling subset)."""
    return os.path.join(out, "runs", slug(subject), f"{slug(backbone.label)}-{pair_digest(backbone.spec, data, fit)}")


def pairs(study: Study, out: str) -> list[Pair]:
    """Every (subject, backbone) pair with its RUN_DIR under ``out`` (specs must be final)."""
    return [Pair(subject=s, data=data, backbone=b, fit=study.fit, run_dir=run_dir_of(out, s, b, data, study.fit))
            for s, data in study.subjects.items() for b in study.backbones]
