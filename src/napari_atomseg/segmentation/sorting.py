"""Rank many micrographs by how much clean lattice they show (data reduction).

As in the graphene paper's image-sorting demonstration: segment every image, measure the
area fraction of each class, and rank the images -- best first -- by the clean-crystal
fraction (``task="contamination"``) or the particle fraction (``task="particles"``).
The table is what the CLI writes as CSV and what the napari widget shows.

Files are read with :func:`napari_atomseg.io.read_image`, plain pictures (PNG, JPEG, BMP
-- e.g. the published graphene set) included: they come as uncalibrated grey images (the
U-Net then estimates the pixel size). A file that cannot be read or segmented gets a row
with its ``error`` and no rank, and the others go on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._progress import Progress, drain
from ..errors import AtomsegError, FileReadError
from .api import DEFAULT_METHOD, TASK_CLASSES, SegmentationResult, iter_segment

#: Column the ranking sorts by, per task (descending).
RANK_BY: dict[str, str] = {"contamination": "fraction_crystal", "particles": "fraction_particle"}


def supported_files(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` that :func:`napari_atomseg.io.read_image` reads, sorted."""
    from ..io import SUPPORTED_EXTENSIONS

    root = Path(folder)
    if not root.is_dir():
        raise FileReadError(f"{root}: is not a folder")
    pattern = "**/*" if recursive else "*"
    return sorted(
        p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS
    )


def read_any(path: str | os.PathLike[str]) -> tuple[np.ndarray, Any]:
    """``(image, Calibration)`` of any file :func:`napari_atomseg.io.read_image` reads
    (pictures included, as uncalibrated grey images)."""
    from ..io import read_image

    return read_image(path)


def result_row(name: str, result: SegmentationResult) -> dict[str, Any]:
    """One table row: file, class fractions, pixel size used, method, warnings."""
    row: dict[str, Any] = {"file": name}
    for cls, frac in result.class_fractions().items():
        row[f"fraction_{cls}"] = frac
    scale = result.scale
    row.update(
        {
            "n_particles": len(result.particles) if result.particles is not None else pd.NA,
            "pixel_size_nm": result.pixel_size_nm,
            "pixel_size_estimated": result.pixel_size_estimated,
            "pixel_size_source": getattr(scale, "source", "given" if result.pixel_size_nm else ""),
            "pixel_size_confidence": getattr(scale, "confidence", pd.NA),
            "method": result.details.get("method_used", result.method),
            "warnings": " | ".join(result.warnings),
            "error": "",
        }
    )
    return row


def ranking_table(rows: Sequence[dict[str, Any]], task: str = "contamination") -> pd.DataFrame:
    """Rows (from :func:`result_row`, or with an ``error``) -> ranked DataFrame.

    Columns: ``rank`` (1 = most clean lattice / most particle; empty for failures),
    ``file``, ``fraction_<class>`` for every class of the task, ``n_particles``
    (particles task), ``pixel_size_nm``, ``pixel_size_estimated``, ``pixel_size_source``,
    ``pixel_size_confidence``, ``method`` (the one that made the labels: e.g.
    ``bragg (fallback)``), ``warnings``, ``error``. Ties keep the input order.
    """
    key = RANK_BY[task]
    columns = [
        "rank",
        "file",
        *[f"fraction_{c}" for c in TASK_CLASSES[task]],
        *(["n_particles"] if task == "particles" else []),
        "pixel_size_nm",
        "pixel_size_estimated",
        "pixel_size_source",
        "pixel_size_confidence",
        "method",
        "warnings",
        "error",
    ]
    table = pd.DataFrame(list(rows), columns=[c for c in columns if c != "rank"])
    ok = table["error"].fillna("") == ""
    order = table.loc[ok, key].sort_values(ascending=False, kind="stable").index
    table["rank"] = pd.array([pd.NA] * len(table), dtype="Int64")
    table.loc[order, "rank"] = np.arange(1, len(order) + 1)
    failed = table.index[~ok]
    table = table.loc[list(order) + list(failed)].reset_index(drop=True)
    return table[columns]


def iter_rank_images(
    paths: Iterable[str | os.PathLike[str]],
    task: str = "contamination",
    method: str = DEFAULT_METHOD,
    pixel_size_nm: float | None = None,
    on_result: Callable[[Path, np.ndarray, Any, SegmentationResult], None] | None = None,
    **options: Any,
) -> Generator[Progress, None, pd.DataFrame]:
    """Segment each file and return the ranking table (generator yielding Progress).

    ``pixel_size_nm`` overrides the files' calibration (``None``: use each file's).
    ``on_result(path, image, calibration, result)`` is called after each success (the CLI
    writes the label TIFF there). Errors a user can cause (unreadable file, bad image,
    missing model) become the row's ``error``; they never stop the other files.
    """
    files = [Path(p) for p in paths]
    rows: list[dict[str, Any]] = []
    for i, path in enumerate(files):
        yield Progress(i, len(files), path.name)
        try:
            image, cal = read_any(path)
            size = pixel_size_nm if pixel_size_nm is not None else cal.pixel_size_nm
            result = drain(iter_segment(image, size, task, method, **options))  # type: ignore[arg-type]
            if on_result is not None:
                on_result(path, image, cal, result)
        except AtomsegError as exc:
            rows.append({"file": str(path), "error": str(exc)})
            continue
        rows.append(result_row(str(path), result))
    yield Progress(len(files), len(files), "done")
    return ranking_table(rows, task)


def rank_images(
    paths: Iterable[str | os.PathLike[str]],
    task: str = "contamination",
    method: str = DEFAULT_METHOD,
    pixel_size_nm: float | None = None,
    **options: Any,
) -> pd.DataFrame:
    """:func:`iter_rank_images` run to the end: the ranked table.

    Parameters
    ----------
    paths
        Image files (any format :func:`napari_atomseg.io.read_image` reads, pictures
        included).
    task
        ``"contamination"`` (ranked by clean-crystal fraction) or ``"particles"``
        (ranked by particle fraction).
    method
        As for :func:`~napari_atomseg.segmentation.api.segment`.
    pixel_size_nm
        Overrides the files' calibration (None: each file's own).
    **options
        Passed to :func:`~napari_atomseg.segmentation.api.segment`.

    Returns
    -------
    pandas.DataFrame
        Best first, failures last; the columns of :func:`ranking_table`. A file that
        cannot be read or segmented gets its ``error`` and no rank.
    """
    return drain(iter_rank_images(paths, task, method, pixel_size_nm, **options))
