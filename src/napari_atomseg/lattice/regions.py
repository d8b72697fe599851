"""The reference region (None, a mask or a pixel box) and per-region means.

``reference`` is what a user points at as "unstrained": None (the whole field), a boolean
mask of the image's shape (a napari Shapes region rasterised, or any mask), or a
``(y0, y1, x0, x1)`` pixel box (half-open, like array slices). A column belongs to the
region when its rounded pixel lies in the mask / its position lies in the box.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

#: Columns summarised by :func:`region_means`, when present.
SUMMARY_COLUMNS = (
    "strain_xx",
    "strain_yy",
    "strain_xy",
    "rotation_deg",
    "dilatation",
    "displacement_y_pm",
    "displacement_x_pm",
    "displacement_y_px",
    "displacement_x_px",
    "intensity_integrated",
)


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"Y0:Y1,X0:X1"`` (pixels) -> ``(y0, y1, x0, x1)``."""
    try:
        ys, xs = text.split(",")
        y0, y1 = (float(v) for v in ys.split(":"))
        x0, x1 = (float(v) for v in xs.split(":"))
    except ValueError as exc:
        raise InputError(
            f"reference box {text!r}: expected Y0:Y1,X0:X1 in pixels, e.g. 0:200,0:300"
        ) from exc
    return check_box((y0, y1, x0, x1))


def check_box(box: Any) -> tuple[float, float, float, float]:
    """``box`` as four floats ``(y0, y1, x0, x1)`` (px), or InputError unless finite and
    non-empty."""
    try:
        y0, y1, x0, x1 = (float(v) for v in box)
    except (TypeError, ValueError) as exc:
        raise InputError(f"reference: a box must be (y0, y1, x0, x1) pixels, got {box!r}") from exc
    if not (np.isfinite([y0, y1, x0, x1]).all() and y1 > y0 and x1 > x0):
        raise InputError(f"reference box ({y0}, {y1}, {x0}, {x1}): needs y1 > y0 and x1 > x0")
    return y0, y1, x0, x1


def in_region(
    reference: Any, positions_px: np.ndarray, image_shape: tuple[int, int] | None
) -> tuple[np.ndarray, str]:
    """Which columns lie in ``reference``, and a short description of it."""
    n = len(positions_px)
    if reference is None:
        return np.ones(n, dtype=bool), "whole field (median cell)"
    arr = np.asarray(reference)
    if arr.dtype == bool or (arr.ndim == 2 and arr.size > 4):
        if arr.ndim != 2:
            raise InputError(f"reference: a mask must be 2-D, got shape {arr.shape}")
        if image_shape is not None and arr.shape != tuple(image_shape):
            raise InputError(
                f"reference: the mask's shape {arr.shape} differs from the image's {image_shape}"
            )
        mask = arr.astype(bool)
        rc = np.rint(positions_px).astype(np.int64)
        inside = (
            (rc[:, 0] >= 0)
            & (rc[:, 0] < mask.shape[0])
            & (rc[:, 1] >= 0)
            & (rc[:, 1] < mask.shape[1])
        )
        out = np.zeros(n, dtype=bool)
        out[inside] = mask[rc[inside, 0], rc[inside, 1]]
        return out, f"mask ({int(mask.sum())} px)"
    y0, y1, x0, x1 = check_box(reference)
    y, x = positions_px[:, 0], positions_px[:, 1]
    out = (y >= y0) & (y < y1) & (x >= x0) & (x < x1)
    return out, f"box y {y0:g}:{y1:g}, x {x0:g}:{x1:g} px"


def region_means(table: pd.DataFrame, region: Any = None, image_shape=None) -> pd.DataFrame:
    """Mean, standard deviation and count of the analysis columns per sublattice.

    Parameters
    ----------
    table
        An :func:`~napari_atomseg.lattice.api.analyse_lattice` result (needs
        ``sublattice``, ``y_px``, ``x_px``).
    region
        As ``reference`` in :func:`in_region`: None (every column), a boolean mask or a
        ``(y0, y1, x0, x1)`` pixel box.
    image_shape
        The image's shape, to check a mask against (None: not checked).

    Returns
    -------
    pandas.DataFrame
        One row per sublattice (unassigned columns, ``-1``, are left out): ``sublattice``,
        ``n_columns`` in the region, and ``NAME_mean`` / ``NAME_std`` of each of
        :data:`SUMMARY_COLUMNS` the table has.
    """
    if "sublattice" not in table:
        raise InputError("region_means: the table has no sublattice column; analyse it first")
    pos = table[["y_px", "x_px"]].to_numpy(dtype=np.float64)
    inside, _ = in_region(region, pos, image_shape)
    sub = table["sublattice"].to_numpy()
    rows = []
    for m in np.unique(sub[sub >= 0]):
        members = inside & (sub == m)
        row: dict[str, Any] = {"sublattice": int(m), "n_columns": int(members.sum())}
        for name in SUMMARY_COLUMNS:
            if name in table:
                values = table[name].to_numpy(dtype=np.float64)[members]
                values = values[np.isfinite(values)]
                row[f"{name}_mean"] = float(values.mean()) if values.size else np.nan
                row[f"{name}_std"] = float(values.std(ddof=1)) if values.size > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
