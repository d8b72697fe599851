"""``napari-atomseg finetune IMAGE... --points DIR --out DIR``: adapt the atom finder to
your images from hand-corrected atom positions.

Each image (any supported file, read with its calibration) is paired with its points
table: ``--points`` is a folder holding ``<stem>_atoms.csv`` (what ``napari-atomseg
atoms`` writes, corrected) or ``<stem>.csv``, or one CSV per image in the order of the
images. Tables may be this plugin's (``y_px, x_px``), napari's Points CSV
(``axis-0, axis-1``) or ImageJ Results (``X, Y`` in pixels). The model is written to
``--out`` as ``NAME.yaml`` + ``NAME.safetensors``; use it with ``napari-atomseg atoms
--model OUT/NAME.yaml`` or pick the card in the Find atoms widget.

Exit codes: 0 done, 2 usage or input error (the message names the file and the problem).
Heavy modules are imported in :func:`run`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``napari-atomseg finetune``."""
    from .finetune_user import DEFAULT_NAME, RECIPE, SYNTHETIC_FRACTION

    parser.add_argument("images", nargs="+", metavar="IMAGE", help="images whose atoms you marked")
    parser.add_argument(
        "--points",
        nargs="+",
        required=True,
        metavar="CSV_OR_DIR",
        help="a folder with <stem>_atoms.csv / <stem>.csv per image, or one CSV per image "
        "(same order)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder for the model")
    parser.add_argument("--name", default=DEFAULT_NAME, help="model name (default: %(default)s)")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="folder for the checkpoint and training log (default: --out)",
    )
    parser.add_argument("--description", default=None, help="the model card's description")
    parser.add_argument(
        "--base",
        default="default",
        help="model to start from: name or card path (default: shipped)",
    )
    parser.add_argument(
        "--pixel-size-nm",
        type=float,
        default=None,
        help="override the files' pixel size, nm/px (needed for uncalibrated files)",
    )
    parser.add_argument(
        "--contrast",
        choices=("bright", "dark"),
        default="bright",
        help="column contrast: bright (HAADF) or dark (black-atom HRTEM) (default: %(default)s)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"training steps of {RECIPE['batch_size']} crops (default {RECIPE['steps']})",
    )
    parser.add_argument(
        "--synthetic-fraction",
        type=float,
        default=SYNTHETIC_FRACTION,
        help="share of synthetic examples per batch, 0-0.9 (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--device", default=None, help="torch device (default: cuda, then mps, then cpu)"
    )


def _pair_points(images: list[Path], points: list[str]) -> list[Path]:
    from ..errors import InputError
    from .finetune_user import find_points_file

    if len(points) == 1 and Path(points[0]).is_dir():
        return [find_points_file(img, points[0]) for img in images]
    if len(points) != len(images):
        raise InputError(
            f"--points: {len(points)} table(s) for {len(images)} image(s); give one CSV per "
            "image or a folder"
        )
    for p in points:
        if not Path(p).is_file():
            raise InputError(f"--points: {p} is not a file")
    return [Path(p) for p in points]


def run(args: argparse.Namespace) -> int:
    """``napari-atomseg finetune``: returns the exit code."""
    import shlex

    from tqdm import tqdm

    from .._progress import drain
    from ..errors import AtomsegError, InputError
    from ..io import read_image
    from .finetune_user import iter_finetune_atoms, read_points_table

    try:
        images = [Path(p) for p in args.images]
        for p in images:
            if not p.is_file():
                raise InputError(f"{p}: not a file")
        tables = _pair_points(images, args.points)
        arrays, sizes, points = [], [], []
        for img_path, table in zip(images, tables):
            data, cal = read_image(img_path)
            if data.ndim != 2:
                raise InputError(
                    f"{img_path}: expected a 2-D image, got shape {data.shape}; "
                    "save the frame you labelled as its own file"
                )
            ps = args.pixel_size_nm if args.pixel_size_nm is not None else cal.pixel_size_nm
            if ps is None:
                raise InputError(f"{img_path}: no pixel size in the file; give --pixel-size-nm")
            pts = read_points_table(table, ps)
            print(f"{img_path.name}: {len(pts)} atoms from {table}", file=sys.stderr)
            arrays.append(data)
            sizes.append(ps)
            points.append(pts)
        command = "napari-atomseg finetune " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        gen = iter_finetune_atoms(
            arrays,
            points,
            sizes,
            args.out,
            base=args.base,
            name=args.name,
            work_dir=args.work_dir,
            description=args.description,
            contrast=args.contrast,
            steps=args.steps,
            seed=args.seed,
            synthetic_fraction=args.synthetic_fraction,
            device=args.device,
            log=lambda s: tqdm.write(s, file=sys.stderr),
            command=command,
        )
        with tqdm(total=None, unit="step", file=sys.stderr, desc="fine-tuning") as bar:

            def update(p):
                """Show one Progress on the bar (its total can change mid-run)."""
                if bar.total != p.total:
                    bar.total = p.total
                bar.n = p.done
                bar.set_postfix_str(p.message[:40], refresh=False)
                bar.refresh()

            card_path = drain(gen, callback=update)
    except AtomsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(str(card_path))
    return 0
