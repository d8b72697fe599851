"""``napari-atomseg convert FILE... --out-dir DIR``: calibrated ImageJ TIFFs for Fiji & co.

Every image of every file becomes ``DIR/<name>.tif`` with its pixel size (ImageJ unit +
resolution). Existing files are kept unless ``--overwrite``; inputs are never replaced.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``convert`` (imports nothing heavy)."""
    parser.add_argument("files", nargs="+", help="DM3/DM4/MRC/TIFF/SER/EMI/EMD files")
    parser.add_argument("--out-dir", required=True, type=Path, help="folder for the TIFFs")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def run(args: argparse.Namespace) -> int:
    """Convert each file; print the written paths; exit code 1 if any file failed."""
    from ..errors import AtomsegError
    from .readers import read_images
    from .writers import write_image_tiff

    args.out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in args.files:
        try:
            for im in read_images(path):
                if im.rgb:
                    print(f"skipped {im.name}: colour image", file=sys.stderr)
                    continue
                safe = re.sub(r"[^\w.\-]+", "_", im.name).strip("_") or "image"
                out = write_image_tiff(
                    args.out_dir / f"{safe}.tif",
                    im.data,
                    im.calibration,
                    overwrite=args.overwrite,
                    inputs=list(args.files),
                )
                size = im.calibration.pixel_size_nm
                note = f"{size:.6g} nm/px" if size is not None else "uncalibrated"
                print(f"{out} ({note})")
        except AtomsegError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0
