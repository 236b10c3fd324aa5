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

    [finetune]                               # optional: factortopy.study.finetune
    base = "MobileNetV2 (ImageNet)"          # a backbone label above
    [[finetune.versions]]
    label = "fine-tuned (hard)"
    images = "labelled/"                     # an image folder with one sub-folder per label ...
    steps = 40
    lr = 1e-3
    [[finetune.versions]]
    label = "fine-tuned elsewhere"
    weights = "my_checkpoint.safetensors"    # ... or a checkpoint made elsewhere

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

#: keys of a [[backbones]] entry that are not BackboneSpec fields
BACKBONE_KEYS = ("label", "family", "method")
#: keys of a [[finetune.versions]] entry: a checkpoint, or the settings of a fine-tuning run
VERSION_KEYS = ("label", "weights", "images", "steps", "lr", "batch_size", "weight_decay", "seed", "method")
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
    finetune_base: str | None = None

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
    return StudyBackbone(label=str(entry.get("label") or spec.label), spec=spec, family=str(family),
                         method=str(method))


def _versions(section: dict, backbones: list, base: str) -> tuple[str, list]:
    _unknown(section, ("base", "versions"), "[finetune]")
    if "base" not in section:
        raise ValueError("[finetune] needs base = LABEL, the label of one of the [[backbones]]")
    by_label = {b.label: b for b in backbones}
    if section["base"] not in by_label:
        raise ValueError(f"[finetune] base {section['base']!r} is not a backbone label; labels: {', '.join(by_label)}")
    base_bb = by_label[section["base"]]
    out = []
    for i, v in enumerate(section.get("versions") or []):
        where = f"[[finetune.versions]] #{i + 1}"
        _unknown(v, VERSION_KEYS, where)
        if ("weights" in v) == ("images" in v):
            raise ValueError(f"{where}: give either weights = FILE (a fine-tuned checkpoint) or images = FOLDER "
                             "(an image folder with one sub-folder per label, fine-tuned here)")
        label = str(v.get("label") or f"{base_bb.label} fine-tuned {i + 1}")
        method = str(v.get("method") or f"{base_bb.method}, fine-tuned")
        common = dict(label=label, family=base_bb.family, method=method, finetune_of=base_bb.label)
        if "weights" in v:
            spec = base_bb.spec.replace(weights=_path(base, v["weights"]), pretrained=None, random_init=False)
            out.append(StudyBackbone(spec=spec, **common))
        else:
            from factortopy.study.finetune import FinetuneConfig

            settings = {k: v[k] for k in ("steps", "lr", "batch_size", "weight_decay", "seed") if k in v}
            cfg = FinetuneConfig(**settings)
            # the spec gets its checkpoint path when the study makes it (factortopy.study.run)
            out.append(StudyBackbone(spec=base_bb.spec, finetune=dict(images=_path(base, v["images"]), **asdict(cfg)),
                                     **common))
    if not out:
        raise ValueError("[finetune] lists no versions: add [[finetune.versions]] entries")
    return base_bb.label, out


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
    _unknown(raw, ("study", "subjects", "backbones", "fit", "finetune"), "the study file")
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
    finetune_base = None
    if raw.get("finetune"):
        finetune_base, versions = _versions(raw["finetune"], backbones, base)
        backbones += versions
    if not backbones:
        raise ValueError("the study names no backbone: add [[backbones]] with name = ...")
    labels = [b.label for b in backbones]
    dup = sorted({l for l in labels if labels.count(l) > 1})
    if dup:
        raise ValueError(f"backbone labels repeat: {dup}; give each a distinct label")
    fit = dict(raw.get("fit") or {})
    _unknown(fit, {f.name for f in fields(FitConfig)}, "[fit]")
    FitConfig(**fit)  # wrong types fail here, before any work
    return Study(subjects=subjects, backbones=backbones, fit=fit, n_boot=int(head.get("n_boot", 1000)),
                 device=str(head.get("device", fit.get("device", "cpu"))), gpus=head.get("gpus"),
                 name=str(head.get("name", "study")), view=str(head.get("view", "posterior")), base_dir=base,
                 finetune_base=finetune_base)


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


def pairs(study: Study, out: str) -> list[Pair]:
    """Every (subject, backbone) pair with its RUN_DIR under ``out`` (specs must be final)."""
    return [Pair(subject=s, data=data, backbone=b, fit=study.fit,
                 run_dir=os.path.join(out, "runs", slug(s), f"{slug(b.label)}-{pair_digest(b.spec, data, study.fit)}"))
            for s, data in study.subjects.items() for b in study.backbones]
