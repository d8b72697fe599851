"""Point tables (CSV) -> positions in pixels, features and the calibration the table holds.

Three layouts are understood, told apart by their column names (:func:`sniff_points_csv`):

``atomseg``
    What this plugin writes (:func:`~.writers.write_points_csv`, ``napari-atomseg atoms``,
    the napari writer): stack columns (``frame``, or ``z_px`` + ``z_nm``...), ``y_px,
    x_px``, then ``y_nm, x_nm`` (``ky_per_nm, kx_per_nm`` in reciprocal space) when
    calibrated, then the features. The pixel size is the ratio of the nm to the px
    columns (so nothing but the table is needed), else a ``pixel_size_nm`` feature.
``napari``
    napari's built-in Points CSV (``index, axis-0, axis-1[, axis-2]`` + the layer's
    features), in the layer's data (pixel) coordinates. It holds no scale, except
    through a ``pixel_size_nm`` feature: the Points layers of this plugin carry one, so
    a layer saved with napari's default CSV writer comes back calibrated too.
``imagej``
    ImageJ Results tables (`` , X, Y[, Slice], ...``): X is the column, Y the row. ImageJ
    writes pixels for an uncalibrated image (the Pt single-atom set) and calibrated
    units otherwise without saying which; X, Y are read as pixels and
    ``metadata["calibration_note"]`` says so. A ``Slice`` column (1-based) becomes the
    stack coordinate when the points lie on more than one slice.

The result is a :class:`PointsTable`: ``points_px`` (N, D), stack axis first then (row,
col) as napari wants them, ``features`` (every other column), the :class:`Calibration`
(uncalibrated when the table does not say) and the layout's name.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileReadError
from .calibration import Calibration
from .units import NM, PER_NM, PX

#: Feature carrying the in-plane pixel size (nm) in this plugin's Points layers.
PIXEL_SIZE_FEATURE = "pixel_size_nm"
#: Unit of a ``NAME_<slug>`` stack column written by :func:`~.writers.write_points_csv`.
_SLUG_UNIT = {"nm": NM, "per_nm": PER_NM, "s": "s", "eV": "eV", "deg": "deg", "rad": "rad"}
#: Agreement needed between the nm and px columns to take their ratio as the pixel size.
_RATIO_RTOL = 1e-6


@dataclass(frozen=True)
class PointsTable:
    """A point table read from a CSV file.

    Attributes
    ----------
    points_px
        (N, D) positions in pixels: stack coordinate(s) first, then (row, col).
    features
        A pandas DataFrame of the other columns (one row per point), in file order.
    calibration
        One axis per column of ``points_px``; uncalibrated when the table holds no scale.
    layout
        ``"atomseg"``, ``"napari"`` or ``"imagej"``.
    """

    points_px: np.ndarray
    features: Any
    calibration: Calibration
    layout: str


def _header(path: Path) -> list[str] | None:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            row = next(csv.reader([fh.readline()]), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return [c.strip() for c in row] if row else None


def layout_of(columns: list[str]) -> str | None:
    """The layout these column names are, or None."""
    names = set(columns)
    if {"y_px", "x_px"} <= names:
        return "atomseg"
    if {"axis-0", "axis-1"} <= names and "shape-type" not in names:  # not napari's Shapes
        return "napari"
    if {"X", "Y"} <= names:
        return "imagej"
    return None


def sniff_points_csv(path: str | os.PathLike[str]) -> str | None:
    """The layout of a ``.csv`` point table from its header line, or None. Never raises.

    Parameters
    ----------
    path
        A ``.csv`` file (anything else gives None).

    Returns
    -------
    str or None
        ``"atomseg"``, ``"napari"`` or ``"imagej"``; None when the header matches none.
    """
    try:
        p = Path(path)
        if p.suffix.lower() != ".csv" or not p.is_file():
            return None
    except (TypeError, ValueError, OSError):
        return None
    header = _header(p)
    return layout_of(header) if header else None


def read_points_table(path: str | os.PathLike[str]) -> PointsTable:
    """Read a point table in any of the module's layouts.

    Parameters
    ----------
    path
        A CSV file in the ``atomseg``, ``napari`` or ``imagej`` layout.

    Returns
    -------
    PointsTable
        Positions in pixels (stack axis first, then row, col), the other columns as
        features, the calibration the table holds and its layout.

    Raises
    ------
    FileReadError
        The file cannot be read, has no coordinate columns of a known layout, or its
        coordinates are not finite numbers. The message names the file.
    """
    import pandas as pd

    p = Path(path)
    try:
        table = pd.read_csv(p, encoding="utf-8-sig")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise FileReadError(f"{p}: cannot read the points table ({exc})") from exc
    table.columns = [str(c).strip() for c in table.columns]
    layout = layout_of(list(table.columns))
    if layout is None:
        raise FileReadError(
            f"{p}: no point coordinates; expected columns y_px, x_px (napari-atomseg), "
            f"axis-0, axis-1 (napari Points CSV) or X, Y (ImageJ Results); got "
            f"{list(table.columns)[:8]}"
        )
    reader = {"atomseg": _atomseg, "napari": _napari, "imagej": _imagej}[layout]
    coords, features, cal = reader(table, p)
    try:
        points = np.asarray(coords, dtype=np.float64).reshape(len(table), -1)
    except (TypeError, ValueError) as exc:
        raise FileReadError(f"{p}: coordinates are not numbers ({exc})") from exc
    if not np.isfinite(points).all():
        raise FileReadError(f"{p}: coordinates contain NaN or empty cells")
    cal = cal.with_metadata(source_path=str(p), points_layout=layout)
    return PointsTable(points, features.reset_index(drop=True), cal, layout)


# --------------------------------------------------------------------------- layouts
def _atomseg(table: Any, p: Path) -> tuple[Any, Any, Calibration]:
    columns = list(table.columns)
    lead = columns[: columns.index("y_px")]
    used = [*lead, "y_px", "x_px"]
    scale, units, names = [], [], []
    for col in lead:
        base = col[:-3] if col.endswith("_px") else col
        unit, step = PX, 1.0
        for slug, slug_unit in _SLUG_UNIT.items():
            physical = f"{base}_{slug}"
            if physical in table.columns:
                ratio = _ratio(table[physical], table[col])
                if ratio is not None:
                    unit, step = slug_unit, ratio
                    used.append(physical)
                break
        scale.append(step)
        units.append(unit)
        names.append(base)
    plane = _plane_from_columns(table)
    if plane is not None:
        (sy, sx), unit, plane_cols = plane
        used.extend(plane_cols)
    else:
        (sy, sx), unit = _plane_from_feature(table)
    names += ["ky", "kx"] if unit == PER_NM else ["y", "x"]
    cal = Calibration((*scale, sy, sx), (*units, unit, unit), tuple(names), unit != PX)
    return table[[*lead, "y_px", "x_px"]], table.drop(columns=used), cal


def _napari(table: Any, p: Path) -> tuple[Any, Any, Calibration]:
    axes = sorted((c for c in table.columns if c.startswith("axis-")), key=_axis_number)
    drop = list(axes) + (["index"] if "index" in table.columns else [])
    (sy, sx), unit = _plane_from_feature(table)
    n_lead = len(axes) - 2
    names = ("frame",) * n_lead if n_lead == 1 else tuple(f"axis{i}" for i in range(n_lead))
    cal = Calibration(
        (1.0,) * n_lead + (sy, sx), (PX,) * n_lead + (unit, unit), (*names, "y", "x"), unit != PX
    )
    return table[axes], table.drop(columns=drop), cal


def _imagej(table: Any, p: Path) -> tuple[Any, Any, Calibration]:
    # ImageJ's first column is the row number, headed " " (read as "" or "Unnamed: 0").
    index = [c for c in table.columns if c == "" or c.startswith("Unnamed")]
    coords = table[["Y", "X"]].to_numpy(dtype=np.float64)
    drop = [*index, "X", "Y"]
    cal = Calibration.uncalibrated(2)
    if "Slice" in table.columns and table["Slice"].nunique() > 1:
        frame = table["Slice"].to_numpy(dtype=np.float64) - 1.0
        coords = np.column_stack([frame, coords])
        drop.append("Slice")
        cal = Calibration((1.0, 1.0, 1.0), (PX, PX, PX), ("frame", "y", "x"), False)
    note = (
        "ImageJ Results: X, Y read as pixels (ImageJ gives calibrated units when the image "
        "had a scale, without saying so)"
    )
    return coords, table.drop(columns=drop), cal.with_metadata(calibration_note=note)


# --------------------------------------------------------------------------- helpers
def _axis_number(name: str) -> int:
    try:
        return int(name.split("-", 1)[1])
    except (IndexError, ValueError):
        return 10**6


def _ratio(physical: Any, pixels: Any) -> float | None:
    """The one factor with physical = factor * pixels (least squares), if it fits exactly."""
    try:
        a = np.asarray(pixels, dtype=np.float64)
        b = np.asarray(physical, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    denominator = float(np.dot(a, a))
    if denominator == 0.0:
        return None
    factor = float(np.dot(a, b) / denominator)
    if not np.isfinite(factor) or factor <= 0:
        return None
    if not np.allclose(b, factor * a, rtol=_RATIO_RTOL, atol=_RATIO_RTOL * abs(factor)):
        return None
    # The writer keeps 10 significant digits: 0.0293, not 0.029299999999999996.
    return float(f"{factor:.10g}")


def _plane_from_columns(table: Any) -> tuple[tuple[float, float], str, list[str]] | None:
    for (cy, cx), unit in ((("y_nm", "x_nm"), NM), (("ky_per_nm", "kx_per_nm"), PER_NM)):
        if cy in table.columns and cx in table.columns:
            sy, sx = _ratio(table[cy], table["y_px"]), _ratio(table[cx], table["x_px"])
            if sy is None and sx is not None:
                sy = sx  # every point on row 0: the other axis tells (square pixels)
            if sx is None and sy is not None:
                sx = sy
            if sy is not None and sx is not None:
                return (sy, sx), unit, [cy, cx]
    return None


def _plane_from_feature(table: Any) -> tuple[tuple[float, float], str]:
    """The in-plane scale from a constant positive ``pixel_size_nm`` column, else pixels."""
    if PIXEL_SIZE_FEATURE in table.columns:
        try:
            values = np.asarray(table[PIXEL_SIZE_FEATURE], dtype=np.float64)
        except (TypeError, ValueError):
            return (1.0, 1.0), PX
        values = values[np.isfinite(values)]
        if values.size and values[0] > 0 and np.allclose(values, values[0], rtol=1e-9):
            return (float(values[0]), float(values[0])), NM
    return (1.0, 1.0), PX
