"""``napari-atomseg track STACK... --out DIR``: drift, tracks and dynamics of movies.

For each stack (DM3/DM4, EMD, SER, MRC, TIFF, HSPY; opened lazily, ``--frames A:B``
selects absolute frames) it writes to ``DIR``:

- ``<stem>_tracks.csv``: one row per detection (``track_id, frame[, time_s], y_px,
  x_px[, y_nm, x_nm], confidence, intensity, y_corr_px, x_corr_px, nn_spacing_px``);
- ``<stem>_drift.csv``: the drift table (``frame[, time_s], drift_y_px, drift_x_px[,
  _nm], peak_to_noise, reliable``);
- ``<stem>_average.tif``: the registered average of the reliable frames, as a calibrated
  TIFF (pixels no frame covers are the average's median);
- ``<stem>_track_features.csv`` (one row per track) and ``<stem>_jumps.csv``;
- ``track_summary.csv``: one row per stack (frames, tracks, jumps, drift range,
  settings, seconds, error, warnings).

The atoms of every frame are found as Dask tasks over frame chunks with
``--scheduler`` (see :mod:`napari_atomseg._batch`); registration and linking run here.
Re-running into the same ``--out`` skips finished stacks; ``--overwrite`` redoes them.
Exit code 1 if any stack failed, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

SUMMARY_NAME = "track_summary.csv"
OUTPUTS = ("tracks.csv", "drift.csv", "average.tif", "track_features.csv", "jumps.csv")
SUMMARY_COLUMNS = (
    "file",
    "frames",
    "first_frame",
    "last_frame",
    "n_detections",
    "n_tracks",
    "n_jumps",
    "support",
    "pixel_size_nm",
    "frame_time_s",
    "drift_max_px",
    "unreliable_frames",
    "linker",
    "seconds",
    "error",
    "warnings",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``napari-atomseg track``."""
    from .. import _batch

    parser.add_argument("inputs", nargs="+", metavar="STACK", help="stack files")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument(
        "--frames", default=None, metavar="A:B", help="absolute frame range (A:B or A:B:S)"
    )
    parser.add_argument(
        "--pixel-size-nm", type=float, default=None, help="override the files' pixel size"
    )
    parser.add_argument(
        "--material",
        default=None,
        help="uncalibrated stacks: the catalogue material the frames show (e.g. MoS2), so the "
        "pixel-size estimate matches its spacings only",
    )
    parser.add_argument("--model", default="default", help="atoms model name or card path")
    parser.add_argument(
        "--threshold", type=float, default=None, help="atom finder threshold, 0-1 (default: auto)"
    )
    parser.add_argument(
        "--max-jump-nm",
        type=float,
        default=None,
        help="longest step of an atom between two frames, nm (default 0.4)",
    )
    parser.add_argument(
        "--gap-frames", type=int, default=None, help="frames a track may miss (default 5)"
    )
    parser.add_argument(
        "--linker",
        choices=("two-stage", "laptrack", "trackpy"),
        default="two-stage",
        help="how positions are linked (default two-stage; see docs/tracking.md)",
    )
    parser.add_argument(
        "--support",
        choices=("auto", "crystal", "amorphous"),
        default="auto",
        help="jumps: between lattice sites (crystal) or above --jump-threshold-nm (amorphous)",
    )
    parser.add_argument(
        "--jump-threshold-nm", type=float, default=None, help="jump threshold, nm (amorphous)"
    )
    parser.add_argument(
        "--tiles", type=int, default=0, help="non-rigid registration with N x N tiles (0: rigid)"
    )
    parser.add_argument(
        "--chunk-frames", type=int, default=10, help="frames per Dask task (default 10)"
    )
    _batch.add_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="redo finished stacks")


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "model": args.model,
        "linker": args.linker,
        "support": args.support,
        "tiles": args.tiles,
        "scheduler": args.scheduler,
        "workers": args.workers,
        "chunk_frames": args.chunk_frames,
        "threads_per_task": args.threads,
    }
    for key in ("threshold", "max_jump_nm", "gap_frames", "jump_threshold_nm", "material"):
        value = getattr(args, key)
        if value is not None:
            options[key] = value
    if args.frames is not None:
        options["frame_range"] = args.frames
    return options


def output_paths(out_dir: Path, files: list[Path]) -> dict[Path, dict[str, Path]]:
    """Output file per kind for each stack; clashing stems get ``_2``, ``_3``..."""
    used: set[str] = set()
    paths: dict[Path, dict[str, Path]] = {}
    for f in files:
        stem, k = f.stem, 2
        while stem.lower() in used:
            stem, k = f"{f.stem}_{k}", k + 1
        used.add(stem.lower())
        paths[f] = {kind: out_dir / f"{stem}_{kind}" for kind in OUTPUTS}
    return paths


def track_file(
    path: str,
    outputs: dict[str, str],
    options: dict[str, Any],
    pixel_size_nm: float | None,
    on_progress: Any = None,
) -> dict[str, Any]:
    """Track one stack and write its outputs; its summary row (errors propagate)."""
    import numpy as np

    from .._progress import drain
    from ..io import Calibration, write_image_tiff
    from ..io.stack import open_stack
    from .api import iter_track_stack
    from .registration import iter_registered_average

    t0 = time.perf_counter()
    stack = open_stack(path, options.get("frame_range"))
    rest = {k: v for k, v in options.items() if k != "frame_range"}
    result = drain(iter_track_stack(stack, pixel_size_nm, **rest), callback=on_progress)
    px = result.pixel_size_nm
    result.tracks.to_csv(outputs["tracks.csv"], index=False)
    result.registration.table(px, result.frame_time_s).to_csv(outputs["drift.csv"], index=False)
    result.features.to_csv(outputs["track_features.csv"], index=False)
    result.jumps.to_csv(outputs["jumps.csv"], index=False)
    average, _count = drain(iter_registered_average(stack, result.registration))
    average = np.where(np.isfinite(average), average, np.nanmedian(average)).astype(np.float32)
    cal = Calibration.from_pixel_size_nm(px) if px is not None else None
    write_image_tiff(outputs["average.tif"], average, cal, overwrite=True, inputs=[path])
    drift = result.registration.drift_px
    frames = stack.frame_indices
    return {
        "file": path,
        "frames": len(stack),
        "first_frame": int(frames[0]),
        "last_frame": int(frames[-1]),
        "n_detections": len(result.tracks),
        "n_tracks": int(result.tracks["track_id"].nunique()),
        "n_jumps": len(result.jumps),
        "support": result.settings.get("support"),
        "pixel_size_nm": px,
        "frame_time_s": result.frame_time_s,
        "drift_max_px": float(np.hypot(drift[:, 0], drift[:, 1]).max()),
        "unreliable_frames": int((~result.registration.reliable).sum()),
        "linker": result.settings.get("linker"),
        "seconds": round(time.perf_counter() - t0, 3),
        "error": "",
        "warnings": " | ".join(result.warnings),
    }


def run(args: argparse.Namespace) -> int:
    """``napari-atomseg track``: the outputs above. Returns the exit code."""
    import pandas as pd
    from tqdm import tqdm

    from .. import _batch
    from ..errors import AtomsegError, FileReadError, InputError

    try:
        _batch.check_scheduler(args.scheduler, args.workers, args.threads)
        if args.pixel_size_nm is not None and not args.pixel_size_nm > 0:
            raise InputError(f"--pixel-size-nm: {args.pixel_size_nm} must be > 0")
        if args.threshold is not None and not 0 <= args.threshold <= 1:
            raise InputError(f"--threshold: {args.threshold} must be within 0-1")
        if args.material is not None:
            from ..atoms.options import FinderOptions

            try:
                FinderOptions(material=args.material)
            except InputError as exc:
                raise InputError(f"--{exc}") from None
        files = [Path(p) for p in args.inputs]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileReadError(f"no such file: {', '.join(missing)}")
        out_dir: Path = args.out
        out_dir.mkdir(parents=True, exist_ok=True)
    except (AtomsegError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = output_paths(out_dir, files)
    records = _batch.Records(out_dir, "track")
    options = _options(args)
    rows = []
    for f in files:
        outputs = {k: str(v) for k, v in paths[f].items()}
        task = _batch.Task(
            json.dumps({"file": str(f.resolve()), "options": options}, sort_keys=True, default=str),
            track_file,
            (str(f), outputs, options, args.pixel_size_nm),
            outputs=tuple(paths[f].values()),
        )
        row = None if args.overwrite else records.get(task)
        if row is not None:
            print(f"{f}: already done (--overwrite redoes it)", file=sys.stderr)
            rows.append(row)
            continue
        # Frame chunks go to the scheduler inside track_file; the stack itself runs here.
        with tqdm(total=1, desc=f"track {f.name[:30]}", file=sys.stderr) as bar:

            def step(p: Any, bar: Any = bar) -> None:
                """Show one Progress on this file's bar."""
                bar.total = max(1, p.total)
                bar.n = p.done
                bar.set_postfix_str(p.message[-40:], refresh=True)

            status, value = _batch.run_task(
                task.func, task.args, {"on_progress": step}, args.threads
            )
        if status == "ok":
            records.put(task, value)
            rows.append(value)
        else:
            rows.append({"file": str(f), "error": value})
    table = pd.DataFrame(rows).reindex(columns=list(SUMMARY_COLUMNS))
    table.to_csv(out_dir / SUMMARY_NAME, index=False, float_format="%.6g")
    failed = table[table["error"].fillna("") != ""]
    for r in failed.itertuples(index=False):
        print(f"error: {r.file}: {r.error}", file=sys.stderr)
    print(
        f"tracked {len(table) - len(failed)} stack(s) into {out_dir}"
        + (f"; {len(failed)} failed" if len(failed) else ""),
        file=sys.stderr,
    )
    return 1 if len(failed) else 0
