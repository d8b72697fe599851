"""``napari-atomseg segment`` and ``napari-atomseg sort``: batch segmentation from a shell.

``segment INPUT... --out DIR`` writes, per image, ``DIR/<name>_labels.tif`` (uint8
labels, the image's calibration, class names in the TIFF metadata) -- for particles also
``DIR/<name>_instances.tif`` (int32, one label per particle) and
``DIR/<name>_particles.csv`` (area, equivalent diameter, centroid per particle) -- and one
table ``DIR/segmentation.csv`` ranking the images by clean-lattice (or particle) fraction,
with the pixel size used, where it came from, the method that made the labels and any
warnings (also printed per image).

``sort FOLDER`` only segments and ranks (no masks written) and prints the ranking; with
``--csv FILE`` it writes the table too.

A file that fails (unreadable, not a 2-D image, ...) is reported on stderr with the
reason, gets a row with its ``error`` in the table, and the others go on; the exit code
is 1 if any file failed, 2 for a usage error. Heavy modules are imported in ``run``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

TABLE_NAME = "segmentation.csv"


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--task",
        choices=("contamination", "particles"),
        default="contamination",
        help="contamination: crystal / amorphous / vacuum; particles: background / particle",
    )
    parser.add_argument(
        "--method",
        choices=("auto", "unet", "bragg"),
        default="auto",
        help="auto (default: the U-Net checked against the Bragg filter, falling back to it "
        "on crystals unlike its training data), unet (no fall-back) or bragg (classical "
        "Bragg filter, no model)",
    )
    parser.add_argument("--model", help="U-Net model name or card path (default: shipped)")
    parser.add_argument(
        "--pixel-size-nm",
        type=float,
        help="override the files' pixel size, nm/px (default: from each file)",
    )
    parser.add_argument(
        "--material",
        help="catalogue material (e.g. graphene) pinning the lattice spacing when the pixel "
        "size is estimated",
    )
    parser.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any segment() option, e.g. -o mask_threshold=0.9 -o smooth_sigma=2 (repeatable)",
    )
    parser.add_argument("--recursive", action="store_true", help="look into sub-folders too")


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``napari-atomseg segment``."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    from .. import _batch

    _batch.add_arguments(parser)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="redo every image (default: a re-run into the same --out skips finished ones)",
    )
    _add_common(parser)


def configure_sort(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``napari-atomseg sort``."""
    parser.add_argument("folder", type=Path, help="folder of images to rank")
    parser.add_argument("--csv", type=Path, help="also write the ranking to this CSV file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --csv")
    _add_common(parser)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["a=1", "b=none", "c=true"]`` -> ``{"a": 1, "b": None, "c": True}`` (YAML scalars)."""
    import yaml

    from ..errors import InputError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            raise InputError(f"--option {pair!r}: cannot parse the value ({exc})") from exc
    return out


def _expand(inputs: list[str], recursive: bool) -> list[Path]:
    """Files as given plus the supported files inside folders, without duplicates."""
    from .sorting import supported_files

    seen: dict[Path, None] = {}
    for item in inputs:
        p = Path(item)
        for f in supported_files(p, recursive) if p.is_dir() else [p]:
            seen.setdefault(f, None)
    return list(seen)


def _output_names(files: list[Path]) -> dict[Path, str]:
    """``<stem>_labels.tif`` per file; clashing stems get ``_2``, ``_3``..."""
    names: dict[Path, str] = {}
    used: set[str] = set()
    for f in files:
        base = f"{f.stem}_labels"
        name, k = f"{base}.tif", 2
        while name.lower() in used:
            name, k = f"{base}_{k}.tif", k + 1
        used.add(name.lower())
        names[f] = name
    return names


def _segment_options(args: argparse.Namespace) -> dict[str, Any]:
    options = parse_options(args.option)
    if args.model:
        options["model"] = args.model
    if args.material:
        options["material"] = args.material
    return options


def _drain_with_bar(gen: Any, total: int, desc: str) -> Any:
    from tqdm import tqdm

    from .._progress import drain

    with tqdm(total=total, desc=desc, unit="image", file=sys.stderr) as bar:

        def step(p: Any) -> None:
            """Show one Progress on the bar."""
            bar.set_postfix_str(p.message[-40:], refresh=False)
            bar.n = p.done
            bar.refresh()

        return drain(gen, callback=step)


def _print_warnings(table: Any) -> None:
    """Each image's warnings on stderr (batch tasks may run on other processes)."""
    if "warnings" not in table:
        return
    for file, text in zip(table["file"], table["warnings"].fillna("")):
        for warning in filter(None, str(text).split(" | ")):
            print(f"warning: {Path(file).name}: {warning}", file=sys.stderr)


def _report(table: Any) -> int:
    failed = table[table["error"].fillna("") != ""]
    for row in failed.itertuples(index=False):
        print(f"error: {row.file}: {row.error}", file=sys.stderr)
    return 1 if len(failed) else 0


def file_task(
    path: str,
    out_path: str,
    task: str,
    method: str,
    pixel_size_nm: float | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """One image as a batch task (in this process or on a Dask worker): its table row."""
    from .._progress import drain
    from ..io import Calibration, write_labels_tiff
    from .api import iter_segment
    from .sorting import read_any, result_row

    image, cal = read_any(path)
    size = pixel_size_nm if pixel_size_nm is not None else cal.pixel_size_nm
    result = drain(iter_segment(image, size, task, method, **options))
    if pixel_size_nm is not None:
        cal = Calibration.from_pixel_size_nm(pixel_size_nm)
    write_labels_tiff(
        out_path,
        result.labels,
        cal,
        dict(enumerate(result.class_names)),
        overwrite=True,
        inputs=[path],
    )
    if result.instances is not None:
        _write_particles(Path(out_path), result, cal, path)
    return result_row(str(path), result)


def _write_particles(labels_path: Path, result: Any, cal: Any, source: str) -> None:
    """``<stem>_instances.tif`` (one label per particle) and ``<stem>_particles.csv``
    beside the labels (a batch task owns its outputs: a re-run replaces them)."""
    from ..io import write_labels_tiff

    stem = labels_path.name[: -len("_labels.tif")]
    write_labels_tiff(
        labels_path.with_name(f"{stem}_instances.tif"),
        result.instances,
        cal,
        overwrite=True,
        inputs=[source],
    )
    result.particles.to_csv(labels_path.with_name(f"{stem}_particles.csv"), index=False)


def run(args: argparse.Namespace) -> int:
    """``napari-atomseg segment``: masks + ranking table. Returns the exit code."""
    import json

    from .. import _batch
    from ..errors import AtomsegError
    from .sorting import ranking_table

    try:
        options = _segment_options(args)
        _batch.check_scheduler(args.scheduler, args.workers, args.threads)
        files = _expand(args.inputs, args.recursive)
        out_dir: Path = args.out
        out_dir.mkdir(parents=True, exist_ok=True)
        table_path = out_dir / TABLE_NAME
    except (AtomsegError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = _output_names(files)
    settings = {"task": args.task, "method": args.method, "options": options}
    settings["pixel_size_nm"] = args.pixel_size_nm
    tasks = [
        _batch.Task(
            json.dumps({"file": str(Path(f).resolve()), **settings}, sort_keys=True, default=str),
            file_task,
            (str(f), str(out_dir / names[f]), args.task, args.method, args.pixel_size_nm, options),
            outputs=(out_dir / names[f],),
        )
        for f in files
    ]
    outcomes = _batch.run_tasks(
        tasks,
        _batch.Records(out_dir, "segment"),
        args.scheduler,
        args.workers,
        args.threads,
        args.overwrite,
        desc="segment",
    )
    rows = [
        o.row if o.row is not None else {"file": str(f), "error": o.error}
        for f, o in zip(files, outcomes)
    ]
    table = ranking_table(rows, args.task)
    table.insert(
        2,
        "labels_file",
        [
            str(out_dir / names[Path(f)]) if not err else ""
            for f, err in zip(table["file"], table["error"].fillna(""))
        ],
    )
    table.to_csv(table_path, index=False)
    _print_warnings(table)
    print(
        f"wrote {len(files) - int((table['error'].fillna('') != '').sum())} mask(s) and "
        f"{table_path}",
        file=sys.stderr,
    )
    return _report(table)


def run_sort(args: argparse.Namespace) -> int:
    """``napari-atomseg sort``: rank a folder; print it (and write ``--csv``)."""
    from ..errors import AtomsegError, FileWriteError
    from .sorting import iter_rank_images, supported_files

    try:
        options = _segment_options(args)
        files = supported_files(args.folder, args.recursive)
        if args.csv is not None and args.csv.exists() and not args.overwrite:
            raise FileWriteError(f"{args.csv}: already exists; pass --overwrite to replace it")
    except AtomsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    gen = iter_rank_images(files, args.task, args.method, args.pixel_size_nm, **options)
    table = _drain_with_bar(gen, len(files), "sort")
    if args.csv is not None:
        table.to_csv(args.csv, index=False)
    with_names = table.assign(file=[Path(f).name for f in table["file"]])
    print(with_names.drop(columns=["error"]).to_string(index=False, float_format="%.3f"))
    return _report(table)
