"""``factortopy layers NAME``: the layers a backbone offers, with widths and strides."""
from __future__ import annotations

HELP = "list a backbone's hookable layers (names, channels, strides), or the friendly model names"


def add_arguments(parser) -> None:
    parser.add_argument("name", nargs="?", help="friendly name, timm name, or timm:/torchvision:/hf:/open_clip: NAME")
    parser.add_argument("--img-size", type=int, default=None, help="input size in pixels (ViTs: changes the grid)")
    parser.add_argument("--all", action="store_true",
                        help="hook-based sources (torchvision, hf, open_clip): every named module with its output shape")
    parser.add_argument("--list", action="store_true", dest="list_models",
                        help="list the friendly model names (NAME, if given, filters by family)")


def _print_table(rows, columns) -> None:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(str("" if r.get(c) is None else r.get(c)).ljust(w) for c, w in zip(columns, widths)))


def run(args) -> int:
    from factortopy.backbones import list_layers, list_models, resolve

    if args.list_models:
        rows = list_models(args.name)
        if not rows:
            families = sorted({r["family"] for r in list_models()})
            raise ValueError(f"no friendly model of a family matching {args.name!r}; families: {', '.join(families)} "
                             "(`factortopy layers --list` lists them all)")
        for r in rows:
            r["note"] = "needs --weights" if r["weights_required"] else ""
        _print_table(rows, ["name", "family", "target", "global_token", "note"])
        return 0
    if not args.name:
        raise ValueError("give a backbone NAME, or --list for the friendly names")
    source, target, entry = resolve(args.name)
    rows = list_layers(args.name, img_size=args.img_size, all_modules=args.all)
    label = f"{args.name} -> {source}:{target}" if entry is not None else args.name
    print(f"{label}: {len(rows)} layers" + (f" at {args.img_size} px" if args.img_size else ""))
    if entry is not None and entry.weights_required:
        print(f"note: {entry.weights_required}")
    columns = ["name", "type", "shape", "channels", "stride", "default"] if args.all and source != "timm" \
        else ["name", "channels", "stride"]
    _print_table(rows, columns)
    return 0
