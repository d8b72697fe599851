"""``napari-atomseg atoms INPUT... --out DIR``: find atomic columns in files from a shell.

Inputs are files, folders (their supported images; ``--recursive`` for sub-folders) or
glob patterns (``"data/*.dm4"``, expanded here so quoting works on every shell). Each
image is read with :func:`napari_atomseg.io.read_image` (any supported format, with its
calibration), run through :func:`napari_atomseg.atoms.find_atoms` and written to
``DIR/<stem>_atoms.csv`` (:func:`napari_atomseg.io.write_points_csv`: ``y_px, x_px`` and,
when the pixel size is known, ``y_nm, x_nm``, then the features). A 3-D stack gives one
table for all frames with a leading frame column. ``DIR/atoms_summary.csv`` has one row
per input: columns found, pixel size used (and whether it was estimated), median column
spacing, mean confidence, the imaging mode used (``--imaging``; auto: from the file's
metadata), seconds, the error for files that failed and the warnings of
those that did not (printed too).

A file that fails (unreadable, not an image, NaNs, ...) is reported on stderr with the
reason and the others go on; the exit code is 1 if any file failed, 2 for a usage error
(no input found, unknown model). ``--scheduler``/``--workers`` run one task per image on
Dask (:mod:`napari_atomseg._batch`); a re-run into the same ``--out`` skips finished
images, ``--overwrite`` redoes them. Heavy modules are imported in :func:`run` so that
building the parser stays light.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import InputError
from .options import (
    CONTRASTS,
    IMAGING_MODES,
    REFINE_METHODS,
    VIEWS_CHOICES,
    FinderOptions,
    option_help,
)

SUMMARY_NAME = "atoms_summary.csv"
#: Columns of the summary table, in order.
SUMMARY_COLUMNS = (
    "file",
    "csv",
    "frames",
    "n_columns",
    "pixel_size_nm",
    "pixel_size_estimated",
    "median_spacing_nm",
    "mean_confidence",
    "model",
    "imaging",
    "threshold",
    "threshold_from",
    "contrast",
    "seconds",
    "error",
    "warnings",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``napari-atomseg atoms``."""
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns"
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument(
        "--model", default="default", help="atoms model name or card path (default: shipped)"
    )
    parser.add_argument(
        "--pixel-size-nm",
        type=float,
        default=None,
        help="override the files' pixel size, nm/px (default: from each file, else estimated)",
    )
    _add_finder_arguments(parser)
    parser.add_argument("--recursive", action="store_true", help="look into sub-folders too")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="redo every image (default: a re-run into the same --out skips finished ones)",
    )
    from .. import _batch

    _batch.add_arguments(parser)


def _add_finder_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per exposed :class:`FinderOptions` field, its help from the field."""
    flag = {name: "--" + name.replace("_", "-") for name in CLI_OPTIONS}
    for name in ("threshold", "min_separation_nm", "min_evidence"):
        parser.add_argument(flag[name], type=float, default=None, help=option_help(name))
    parser.add_argument(
        flag["refine"], choices=REFINE_METHODS, default=None, help=option_help("refine")
    )
    parser.add_argument(
        flag["contrast"], choices=CONTRASTS, default=None, help=option_help("contrast")
    )
    parser.add_argument(
        flag["imaging"],
        choices=("auto", *IMAGING_MODES, "unknown"),
        default="auto",
        help=option_help("imaging") + "; auto (default) reads each file's acquisition mode "
        "where its metadata says (DM, TIA, EMD)",
    )
    parser.add_argument(
        flag["views"], type=int, choices=VIEWS_CHOICES, default=None, help=option_help("views")
    )
    parser.add_argument(flag["device"], default=None, help=option_help("device"))
    parser.add_argument(flag["material"], default=None, help=option_help("material"))


def expand_inputs(inputs: list[str], recursive: bool = False) -> tuple[list[Path], list[str]]:
    """Files from file names, folders and glob patterns, in order, without duplicates.

    Returns ``(files, problems)``: ``problems`` names inputs that matched nothing. A file
    given by name is kept even if missing or of an unknown type, so that its error is
    reported with the others.
    """
    from ..io import SUPPORTED_EXTENSIONS

    seen: dict[Path, None] = {}
    problems: list[str] = []

    def add_folder(folder: Path) -> int:
        """Add the folder's supported files (sorted); return how many it holds."""
        pattern = "**/*" if recursive else "*"
        found = sorted(
            p
            for p in folder.glob(pattern)
            if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS
        )
        for f in found:
            seen.setdefault(f, None)
        return len(found)

    for item in inputs:
        p = Path(item)
        if p.is_dir():
            if not add_folder(p):
                problems.append(f"{item}: folder holds no supported image")
        elif p.exists():
            seen.setdefault(p, None)
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=recursive))
            files = [Path(m) for m in matches if Path(m).is_file()]
            for f in files:
                seen.setdefault(f, None)
            n = len(files) + sum(add_folder(Path(m)) for m in matches if Path(m).is_dir())
            if not n:
                problems.append(f"{item}: pattern matches no file")
        else:
            seen.setdefault(p, None)  # missing: the reader reports it per file
    return list(seen), problems


def output_names(files: list[Path]) -> dict[Path, str]:
    """``<stem>_atoms.csv`` per file; clashing stems get ``_2``, ``_3``..."""
    names: dict[Path, str] = {}
    used: set[str] = set()
    for f in files:
        base = f"{f.stem}_atoms"
        name, k = f"{base}.csv", 2
        while name.lower() in used or name.lower() == SUMMARY_NAME:
            name, k = f"{base}_{k}.csv", k + 1
        used.add(name.lower())
        names[f] = name
    return names


#: The finder options the command line exposes (FinderOptions fields, same names).
CLI_OPTIONS = (
    "threshold",
    "min_separation_nm",
    "min_evidence",
    "refine",
    "contrast",
    "imaging",
    "views",
    "device",
    "material",
)


def finder_options(args: argparse.Namespace) -> FinderOptions:
    """The :class:`FinderOptions` the arguments give (``imaging`` "auto" stays None here:
    it is read per file). A bad value is an InputError naming the flag."""
    given = {name: getattr(args, name) for name in CLI_OPTIONS if getattr(args, name) is not None}
    if given.get("imaging") in ("auto", "unknown"):
        del given["imaging"]
    try:
        return FinderOptions(**given)
    except InputError as exc:
        name = str(exc).split(":", 1)[0]
        if name in CLI_OPTIONS:
            raise InputError(f"--{name.replace('_', '-')}{str(exc)[len(name) :]}") from None
        raise


def process_file(
    path: Path,
    out_path: Path,
    loaded: Any,
    options: FinderOptions,
    pixel_size_nm: float | None,
    overwrite: bool,
    on_progress: Any = None,
    read_imaging: bool = True,
) -> dict[str, Any]:
    """Find the columns of one file and write its CSV; the summary row (raises on error).

    ``read_imaging``: take the imaging mode from the file's metadata (``--imaging auto``).
    """
    import numpy as np
    import pandas as pd

    from .._progress import drain
    from ..io import Calibration, read_image, write_points_csv
    from .find import iter_find_atoms
    from .imaging import imaging_from_metadata

    t0 = time.perf_counter()
    data, cal = read_image(path)
    if read_imaging:
        options = options.replace(imaging=imaging_from_metadata(cal.metadata))
    if pixel_size_nm is not None:
        cal = Calibration.from_pixel_size_nm(pixel_size_nm, ndim=cal.ndim)
    ps = cal.pixel_size_nm
    stack = data.ndim == 3 and cal.ndim == 3
    if data.ndim != 2 and not stack:
        raise InputError(
            f"{path}: expected a 2-D image or a 3-D stack, got shape {data.shape}"
            + (" (a colour image: atoms need a grey-scale micrograph)" if data.ndim == 3 else "")
        )
    frames = list(data) if stack else [data]
    tables = []
    problems: list[str] = []
    used_ps, estimated = ps, False
    for i, frame in enumerate(frames):
        # Uncalibrated stacks: the scale estimated on the first frame serves them all.
        df = drain(iter_find_atoms(frame, used_ps, loaded, options), callback=on_progress)
        where = f"frame {i}: " if stack else ""
        problems += [where + message for message in df.attrs.get("warnings", [])]
        if used_ps is None:
            used_ps = df.attrs.get("pixel_size_nm")
            estimated = bool(df.attrs.get("pixel_size_estimated"))
        if stack:
            df.insert(0, "frame", np.full(len(df), i, dtype=np.int64))
        tables.append(df)
    table = pd.concat(tables, ignore_index=True) if stack else tables[0]
    coord_cols = ["frame", "y_px", "x_px"] if stack else ["y_px", "x_px"]
    coords = table[coord_cols].to_numpy(dtype=np.float64)
    features = table.drop(columns=coord_cols)
    # Physical columns from the file's calibration when it has an in-plane pixel size;
    # otherwise pixel columns plus the estimated y_nm / x_nm the finder reports.
    write_points_csv(
        out_path,
        coords,
        cal if ps is not None else None,
        features,
        overwrite=overwrite,
        inputs=[path],
    )
    nn = table.get("nn_spacing_nm")
    return {
        "file": str(path),
        "csv": str(out_path),
        "frames": len(frames),
        "n_columns": len(table),
        "pixel_size_nm": used_ps,
        "pixel_size_estimated": estimated,
        "median_spacing_nm": float(np.nanmedian(nn)) if nn is not None and len(nn) > 1 else None,
        "mean_confidence": float(table["confidence"].mean()) if len(table) else None,
        "model": loaded.name,
        "imaging": tables[0].attrs.get("imaging", "unknown"),
        # The first frame's (frames of a stack may differ where the noise does).
        "threshold": tables[0].attrs.get("threshold"),
        "threshold_from": tables[0].attrs.get("threshold_from"),
        # The columns' contrast the finder worked with (chosen per file for HRTEM).
        "contrast": tables[0].attrs.get("contrast"),
        "seconds": round(time.perf_counter() - t0, 3),
        "error": "",
        "warnings": " | ".join(problems),
    }


def file_task(
    path: str,
    out_path: str,
    model: str,
    device: str | None,
    options: FinderOptions,
    pixel_size_nm: float | None,
    read_imaging: bool = True,
) -> dict[str, Any]:
    """One image as a batch task (in this process or on a Dask worker): its summary row."""
    from ..backend import get_model

    loaded = get_model(model, device)
    return process_file(
        Path(path), Path(out_path), loaded, options, pixel_size_nm, True, read_imaging=read_imaging
    )


def run(args: argparse.Namespace) -> int:
    """``napari-atomseg atoms``: one CSV per image + a summary. Returns the exit code."""
    import json

    import pandas as pd

    from .. import _batch
    from ..backend import default_model_name, get_model
    from ..errors import AtomsegError, InputError

    try:
        options = finder_options(args)
        if args.pixel_size_nm is not None and not args.pixel_size_nm > 0:
            raise InputError(f"--pixel-size-nm: {args.pixel_size_nm} must be > 0")
        files, problems = expand_inputs(args.inputs, args.recursive)
        for msg in problems:
            print(f"warning: {msg}", file=sys.stderr)
        if not files:
            raise InputError("no input image found (" + "; ".join(problems) + ")")
        _batch.check_scheduler(args.scheduler, args.workers, args.threads)
        out_dir: Path = args.out
        out_dir.mkdir(parents=True, exist_ok=True)
        summary_path = out_dir / SUMMARY_NAME
        name = default_model_name("atoms") if args.model in (None, "default") else args.model
        loaded = get_model(name, args.device)
        if loaded.card.task != "atoms":
            raise InputError(
                f"--model {args.model!r} is a {loaded.card.task!r} model; choose an atoms model"
            )
    except (AtomsegError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    names = output_names(files)
    read_imaging = args.imaging == "auto"
    settings = {"model": name, "options": options, "pixel_size_nm": args.pixel_size_nm}
    tasks = [
        _batch.Task(
            json.dumps({"file": str(f.resolve()), **settings}, sort_keys=True, default=str),
            file_task,
            (str(f), str(out_dir / names[f]), name, args.device, options, args.pixel_size_nm),
            outputs=(out_dir / names[f],),
            kwargs={"read_imaging": read_imaging},
        )
        for f in files
    ]
    outcomes = _batch.run_tasks(
        tasks,
        _batch.Records(out_dir, "atoms"),
        args.scheduler,
        args.workers,
        args.threads,
        args.overwrite,
        desc="atoms",
    )
    rows: list[dict[str, Any]] = [
        o.row
        if o.row is not None
        else {"file": str(f), "csv": "", "n_columns": 0, "error": o.error}
        for f, o in zip(files, outcomes)
    ]
    table = pd.DataFrame(rows)
    table = table.reindex(columns=list(SUMMARY_COLUMNS))
    table.to_csv(summary_path, index=False, float_format="%.9g")
    failed = table[table["error"].fillna("") != ""]
    for r in failed.itertuples(index=False):
        print(f"error: {r.file}: {r.error}", file=sys.stderr)
    for r in table[table["warnings"].fillna("") != ""].itertuples(index=False):
        print(f"warning: {r.file}: {r.warnings}", file=sys.stderr)
    ok = len(table) - len(failed)
    print(
        f"wrote {ok} table(s) with {int(table['n_columns'].sum())} columns and {summary_path}"
        + (f"; {len(failed)} file(s) failed" if len(failed) else ""),
        file=sys.stderr,
    )
    return 1 if len(failed) else 0
