"""Option groups shared by several commands: one definition, so `fit`, `baseline` and `layers`
can never disagree about what a backbone option means."""
from __future__ import annotations


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"must be a positive number, got {text}")
    return value


def add_backbone_arguments(parser, required: bool = True) -> None:
    """The backbone's options: everything a :class:`~factortopy.backbones.spec.BackboneSpec` holds."""
    g = parser.add_argument_group("backbone")
    g.add_argument("--backbone", required=required, default=None,
                   help="friendly name, timm name, or timm:/torchvision:/hf:/open_clip: NAME "
                        "(see `factortopy layers --list`); it means its pretrained weights unless "
                        "--weights or --random-init says otherwise")
    g.add_argument("--layers", default=None, help="comma-separated layer names (default: the backbone's usual "
                                                  "set; see `factortopy layers NAME`)")
    w = g.add_mutually_exclusive_group()
    w.add_argument("--weights", default=None, help="local weights file (.safetensors or torch state dict)")
    w.add_argument("--pretrained", action="store_true", default=None,
                   help="the name's pretrained weights from the hub cache (the default)")
    w.add_argument("--random-init", action="store_true", help="random weights (recorded and shown as 'random init')")
    g.add_argument("--img-size", type=_positive_int, default=None, help="backbone input size in pixels")
    g.add_argument("--mean", default=None, help="normalisation mean per RGB channel, e.g. 0.5,0.5,0.5")
    g.add_argument("--std", default=None, help="normalisation std per RGB channel")


def _floats(text):
    return None if text is None else [float(v) for v in text.split(",")]


def backbone_spec(args):
    """The BackboneSpec the backbone options describe."""
    from factortopy.backbones.spec import BackboneSpec

    if args.layers is not None and not [l for l in args.layers.split(",") if l.strip()]:
        raise ValueError(f"--layers {args.layers!r} names no layer; give comma-separated names "
                         "(see `factortopy layers NAME`)")
    return BackboneSpec(name=args.backbone, layers=args.layers, weights=args.weights, pretrained=args.pretrained,
                        random_init=bool(args.random_init), img_size=args.img_size, mean=_floats(args.mean),
                        std=_floats(args.std))
