"""``napari-atomseg info FILE...``: what the readers find in each file (calibration first)."""

from __future__ import annotations

import argparse
import json
import sys
import warnings

_SHOWN = ("instrument", "voltage_kV", "magnification", "acquisition_mode", "format")


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``info`` (imports nothing heavy)."""
    parser.add_argument(
        "files", nargs="+", help="DM3/DM4/MRC/TIFF/SER/EMI/EMD/HSPY/ZSPY/PNG/JPEG/BMP files"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per image")


def run(args: argparse.Namespace) -> int:
    """Print one line (or JSON object) per image; exit code 1 if any file failed."""
    from ..errors import FileReadError
    from .readers import read_images

    failed = 0
    for path in args.files:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                images = read_images(path)
            except FileReadError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
                continue
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        for im in images:
            cal = im.calibration
            if args.json:
                record = {"file": str(path), "name": im.name, "shape": list(im.data.shape)}
                record.update(dtype=str(im.data.dtype), rgb=im.rgb, **cal.to_dict())
                print(json.dumps(record, default=str))
                continue
            if cal.pixel_size_nm is not None:
                size = f"{cal.pixel_size_nm:.6g} nm/px"
            elif not cal.calibrated:
                size = "uncalibrated (pixels)"
            else:
                size = ", ".join(
                    f"{n} {s:.6g} {u}" for n, s, u in zip(cal.axis_names, cal.scale, cal.units)
                )
            facts = ", ".join(f"{k}={cal.metadata[k]}" for k in _SHOWN if k in cal.metadata)
            shape = "x".join(str(n) for n in im.data.shape)
            print(f"{im.name}: {shape} {im.data.dtype}, {size}" + (f" ({facts})" if facts else ""))
    return 1 if failed else 0
