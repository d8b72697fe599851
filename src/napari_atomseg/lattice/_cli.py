"""``napari-atomseg lattice ATOMS_CSV... [--image FILE...] --out DIR``: lattice analysis in batch.

Each columns table (a ``napari-atomseg atoms`` CSV, or any CSV with ``y_px, x_px``) is
analysed with :func:`napari_atomseg.analyse_lattice`; an image given with ``--image`` is
matched to it by file stem (``NAME.dm4`` goes with ``NAME.csv`` or ``NAME_atoms.csv``; a
single image goes with a single table). Written to ``DIR``:

- ``<stem>_lattice.csv`` -- the table with the analysis columns (positions as given);
- ``<stem>_<map>.tif`` -- strain_xx, strain_yy, strain_xy, rotation_deg, dilatation and
  the displacement maps as calibrated ImageJ TIFFs (float32; the pixel size is the
  image's times the map's step);
- ``<stem>_lattice.png`` -- one summary figure;
- ``<stem>_lattice.json`` -- the result's attrs (cell, reference, sublattices, scan
  distortion, warnings);
- ``lattice_summary.csv`` -- one row per table.

A table that fails is reported and the others go on (exit code 1); a usage error exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

SUMMARY_NAME = "lattice_summary.csv"
MAP_NAMES = (
    "strain_xx",
    "strain_yy",
    "strain_xy",
    "rotation_deg",
    "dilatation",
    "displacement_y_pm",
    "displacement_x_pm",
    "displacement_y_px",
    "displacement_x_px",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``napari-atomseg lattice``."""
    parser.add_argument("tables", nargs="+", metavar="ATOMS_CSV", help="columns tables (CSV)")
    parser.add_argument(
        "--image", nargs="+", default=[], metavar="FILE", help="images, matched by file stem"
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument(
        "--reference",
        default=None,
        metavar="Y0:Y1,X0:X1",
        help="unstrained reference box in pixels (default: the whole field's median cell)",
    )
    parser.add_argument(
        "--pixel-size-nm", type=float, default=None, help="override the pixel size, nm/px"
    )
    parser.add_argument(
        "--cell-nm",
        type=float,
        nargs=4,
        default=None,
        metavar=("AY", "AX", "BY", "BX"),
        help="the reference cell's vectors a and b (y, x) in nm (default: found)",
    )
    parser.add_argument(
        "--reference-sublattice", type=int, default=None, help="default: the brightest"
    )
    parser.add_argument(
        "--neighbour-cells",
        type=int,
        default=1,
        choices=(1, 2, 3),
        help="neighbours within this many cells enter each column's strain (default 1; "
        "2 halves the noise at half the resolution)",
    )
    parser.add_argument(
        "--scan-correction",
        choices=("none", "linear", "nonlinear"),
        default="none",
        help="correct scan distortion from the reference region taken as perfect",
    )
    parser.add_argument(
        "--reference-symmetry",
        choices=("auto", "square", "hexagonal", "none"),
        default="auto",
        help="what the reference cell is known to be (scan-distortion report/correction)",
    )
    parser.add_argument(
        "--no-gaussian-fit", action="store_true", help="skip the per-column Gaussian features"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs in --out"
    )


def match_images(tables: list[Path], images: list[Path]) -> dict[Path, Path | None]:
    """The image of each table: same stem, or the stem plus ``_atoms``; one and one pair."""
    from ..errors import InputError

    if len(tables) == 1 and len(images) == 1:
        return {tables[0]: images[0]}
    by_stem: dict[str, Path] = {}
    for im in images:
        if im.stem in by_stem:
            raise InputError(f"--image: two images share the stem {im.stem!r}")
        by_stem[im.stem] = im
    out: dict[Path, Path | None] = {}
    for t in tables:
        stem = t.stem
        for suffix in ("_atoms", "_lattice"):
            if stem.endswith(suffix) and stem[: -len(suffix)] in by_stem:
                stem = stem[: -len(suffix)]
        out[t] = by_stem.get(stem)
    used = {p for p in out.values() if p is not None}
    unused = [str(p) for p in images if p not in used]
    if unused:
        raise InputError(f"--image: no table matches {', '.join(unused)} (by file stem)")
    return out


def _options(args: argparse.Namespace) -> Any:
    from .options import LatticeOptions

    cell = None
    if args.cell_nm is not None:
        ay, ax, by, bx = args.cell_nm
        cell = ((ay, ax), (by, bx))
    return LatticeOptions(
        cell_nm=cell,
        reference_sublattice=args.reference_sublattice,
        neighbour_cells=args.neighbour_cells,
        scan_correction=args.scan_correction,
        reference_symmetry=args.reference_symmetry,
        gaussian_fit=not args.no_gaussian_fit,
    )


def process(
    table_path: Path, image_path: Path | None, out_dir: Path, args: argparse.Namespace, options
) -> dict[str, Any]:
    """Analyse one table and write its outputs; the summary row (raises on error)."""
    import numpy as np

    from ..io import Calibration, read_image, read_points_csv, write_image_tiff
    from .api import analyse_lattice
    from .figure import save_figure
    from .maps import lattice_maps
    from .regions import parse_box

    t0 = time.perf_counter()
    _, table = read_points_csv(table_path)
    image, ps = None, args.pixel_size_nm
    if image_path is not None:
        image, cal = read_image(image_path)
        ps = ps if ps is not None else cal.pixel_size_nm
    reference = None if args.reference is None else parse_box(args.reference)
    res = analyse_lattice(table, image, ps, reference, options=options)
    stem = table_path.stem.removesuffix("_atoms")
    written = [_write_csv(res, out_dir / f"{stem}_lattice.csv", args.overwrite, table_path)]
    shape = None if image is None else image.shape[-2:]
    names = tuple(n for n in MAP_NAMES if n in res)
    maps = lattice_maps(res, shape, names, res.attrs.get("pixel_size_nm"))
    cal = Calibration.from_pixel_size_nm(maps.pixel_size_nm) if maps.pixel_size_nm else None
    for name, data in maps.maps.items():
        target = out_dir / f"{stem}_{name}.tif"
        written.append(
            write_image_tiff(target, data.astype(np.float32), cal, overwrite=args.overwrite)
        )
    figure = out_dir / f"{stem}_lattice.png"
    _refuse_existing(figure, args.overwrite)
    save_figure(figure, res, image, maps, title=table_path.name)
    meta = out_dir / f"{stem}_lattice.json"
    _refuse_existing(meta, args.overwrite)
    meta.write_text(json.dumps(_jsonable(res.attrs), indent=1))
    cell = res.attrs["cell"]
    dist = res.attrs["scan_distortion"]
    return {
        "table": str(table_path),
        "image": "" if image_path is None else str(image_path),
        "n_columns": len(res),
        "n_sublattices": len(res.attrs["sublattices"]),
        "cell_a": cell["a"],
        "cell_b": cell["b"],
        "cell_angle_deg": cell["angle_deg"],
        "length_unit": cell["unit"],
        "slow_scan_scale": dist.get("slow_scan_scale"),
        "scan_shear_deg": dist.get("scan_shear_deg"),
        "strain_xx_std": float(np.nanstd(res["strain_xx"])),
        "strain_yy_std": float(np.nanstd(res["strain_yy"])),
        "seconds": round(time.perf_counter() - t0, 3),
        "error": "",
        "warnings": " | ".join(res.attrs["warnings"]),
    }


def _refuse_existing(path: Path, overwrite: bool) -> None:
    from ..errors import FileWriteError

    if path.exists() and not overwrite:
        raise FileWriteError(f"{path}: already exists; pass --overwrite to replace it")


def _write_csv(res, path: Path, overwrite: bool, source: Path) -> Path:
    from ..io import write_points_csv

    coords = res[["y_px", "x_px"]].to_numpy(dtype=float)
    features = res.drop(columns=[c for c in ("y_px", "x_px") if c in res.columns])
    return write_points_csv(path, coords, None, features, overwrite=overwrite, inputs=[source])


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def run(args: argparse.Namespace) -> int:
    """``napari-atomseg lattice``: per-table CSV, maps, figure; a summary. Exit code."""
    import pandas as pd

    from ..errors import AtomsegError, FileWriteError, InputError

    try:
        tables = [Path(t) for t in args.tables]
        missing = [str(t) for t in tables if not t.is_file()]
        if missing:
            raise InputError(f"no such table: {', '.join(missing)}")
        pairs = match_images(tables, [Path(p) for p in args.image])
        options = _options(args)
        if args.reference is not None:
            from .regions import parse_box

            parse_box(args.reference)
        out_dir: Path = args.out
        out_dir.mkdir(parents=True, exist_ok=True)
        summary = out_dir / SUMMARY_NAME
        if summary.exists() and not args.overwrite:
            raise FileWriteError(f"{summary}: already exists; pass --overwrite to replace it")
    except (AtomsegError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = []
    for table, image in pairs.items():
        try:
            row = process(table, image, out_dir, args, options)
        except AtomsegError as exc:
            row = {"table": str(table), "error": str(exc)}
        except Exception as exc:  # a batch goes on; the type is reported
            row = {"table": str(table), "error": repr(exc)}
        if row.get("error"):
            print(f"error: {table}: {row['error']}", file=sys.stderr)
        elif row.get("warnings"):
            print(f"warning: {table}: {row['warnings']}", file=sys.stderr)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.to_csv(summary, index=False, float_format="%.6g")
    failed = int((frame.get("error", pd.Series(dtype=str)).fillna("") != "").sum())
    print(
        f"analysed {len(rows) - failed} table(s); wrote {summary}"
        + (f"; {failed} failed" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0
