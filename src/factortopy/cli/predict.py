"""``factortopy predict RUN_DIR IMAGES... --out FILE``: a saved run's predicted responses to new images."""
from __future__ import annotations

HELP = "predict a fitted run's responses to your own images (files or folders) and save them (.npy or .npz)"

#: image file endings read from a folder given as IMAGES
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by 'factortopy fit' or 'factortopy baseline'")
    parser.add_argument("images", nargs="+", metavar="IMAGES",
                        help="image files, or folders (their image files in sorted order); any size, grey, RGB or RGBA")
    parser.add_argument("--out", required=True,
                        help="output file: .npy (the (n_images, n_vertices) predictions) or .npz (predictions, "
                             "vertex, hemi and the image paths)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def image_paths(items) -> list[str]:
    """Files as given, folders expanded to their image files (sorted); a clear error for anything else."""
    import os

    from factortopy.data.images import image_files

    paths = []
    for item in items:
        if os.path.isdir(item):
            found = image_files(item, IMAGE_EXTS)
            if not found:
                raise FileNotFoundError(f"{item} holds no image files ({', '.join(IMAGE_EXTS)})")
            paths += found
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise FileNotFoundError(f"image {item} not found (give image files or folders of them)")
    return paths


def run(args) -> int:
    import os

    import numpy as np

    from factortopy._destination import check_destination
    from factortopy.estimator import predict
    from factortopy.runs import open_run

    if not args.out.endswith((".npy", ".npz")):
        raise ValueError(f"--out {args.out}: the file must end in .npy or .npz")
    if os.path.exists(args.out) and not args.overwrite:
        raise ValueError(f"--out {args.out} exists: choose another file or pass --overwrite")
    paths = image_paths(args.images)
    run_ = open_run(args.run_dir)
    # before anything is computed: a place that cannot take the float32 predictions (+ the image paths)
    check_destination(args.out, "--out", need_bytes=4 * len(paths) * len(run_.vertex)
                      + sum(len(os.path.abspath(p)) * 4 for p in paths))
    pred = predict(run_, paths, batch_size=args.batch_size, device=args.device, progress=not args.quiet)
    folder = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(folder, exist_ok=True)
    from factortopy._files import write_npy, write_npz  # never a half-written file, never through a link

    if args.out.endswith(".npy"):
        write_npy(args.out, pred)
    else:
        write_npz(args.out, dict(predictions=pred, vertex=run_.vertex, hemi=run_.hemi.astype("<U2"),
                                 images=np.asarray([os.path.abspath(p) for p in paths])))
    print(f"predicted {pred.shape[0]} images x {pred.shape[1]} vertices ({run_.title}); wrote {os.path.abspath(args.out)}")
    return 0
