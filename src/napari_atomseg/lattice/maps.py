"""Per-column values interpolated into maps on (a binned copy of) the image grid.

Linear interpolation on the Delaunay triangulation of the columns that have a value,
sampled every ``step_px`` pixels (so the map of a 4k image stays ~1k wide); pixels
further than one nearest-neighbour spacing from every such column (vacuum, outside the
crystal) are NaN. A map's pixel (i, j) is centred on image pixel (i * step, j * step), so
its napari layer takes ``scale = step x pixel size`` and no translate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.interpolate import LinearNDInterpolator
from scipy.spatial import Delaunay, cKDTree

from ..errors import InputError

#: Maps made by default: strain and rotation (every column), displacements (pm or px).
STRAIN_MAPS = ("strain_xx", "strain_yy", "strain_xy", "rotation_deg", "dilatation")
DISPLACEMENT_MAPS = ("displacement_y_pm", "displacement_x_pm")
#: The longest side of a map (px of the map); coarser steps beyond it.
MAX_MAP_SIDE = 1024


@dataclass
class LatticeMaps:
    """Interpolated maps (name -> float32 (H', W')), their step (image px per map px)
    and the physical size of a map pixel (nm, or None when uncalibrated)."""

    maps: dict[str, np.ndarray]
    step_px: int
    pixel_size_nm: float | None
    info: dict[str, Any] = field(default_factory=dict)


def map_step(shape: tuple[int, int], max_side: int = MAX_MAP_SIDE) -> int:
    """Image pixels per map pixel: the smallest step keeping the map within ``max_side``."""
    return max(1, int(np.ceil(max(shape) / max_side)))


def _interpolate(
    points_px: np.ndarray, values: np.ndarray, grid: tuple[np.ndarray, np.ndarray], reach: float
) -> np.ndarray:
    ys, xs = grid
    shape = (len(ys), len(xs))
    if len(points_px) < 3:
        return np.full((*shape, values.shape[1]), np.nan, np.float32)
    tri = Delaunay(points_px)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    query = np.column_stack([gy.ravel(), gx.ravel()])
    out = LinearNDInterpolator(tri, values)(query)
    far = cKDTree(points_px).query(query, distance_upper_bound=reach, workers=-1)[0] > reach
    out[far] = np.nan
    return out.reshape(*shape, values.shape[1]).astype(np.float32)


def lattice_maps(
    table: pd.DataFrame,
    shape_px: tuple[int, int] | None = None,
    names: tuple[str, ...] | None = None,
    pixel_size_nm: float | None = None,
    max_side: int = MAX_MAP_SIDE,
    displacement_sublattice: int | None = None,
) -> LatticeMaps:
    """Maps of ``names`` (default: strain and displacement columns present in ``table``).

    Strain maps are interpolated from every column with a value; displacement maps from
    one sublattice only, as neighbouring sublattices move differently.

    Parameters
    ----------
    table
        An :func:`~napari_atomseg.lattice.api.analyse_lattice` result (``y_px``, ``x_px``
        and the columns to map).
    shape_px
        The image's shape (default: the columns' extent).
    names
        Columns to map (default: the strain and displacement columns in ``table``).
    pixel_size_nm
        nm per image pixel; sets the maps' pixel size (None: uncalibrated).
    max_side
        Longest side of a map, px of the map (:func:`map_step`).
    displacement_sublattice
        The sublattice whose displacements are mapped (default: the brightest displaced
        one, e.g. a perovskite's B site).

    Returns
    -------
    LatticeMaps
        float32 maps (NaN further than one column spacing from every column), the step in
        image px per map px and the map pixel size in nm.
    """
    if "y_px" not in table or "x_px" not in table:
        raise InputError("lattice_maps: the table needs y_px and x_px columns")
    pos = table[["y_px", "x_px"]].to_numpy(dtype=np.float64)
    if shape_px is None:
        shape_px = (int(np.ceil(pos[:, 0].max())) + 1, int(np.ceil(pos[:, 1].max())) + 1)
    if names is None:
        names = tuple(
            n
            for n in (*STRAIN_MAPS, *DISPLACEMENT_MAPS, "displacement_y_px", "displacement_x_px")
            if n in table
        )
    step = map_step(shape_px, max_side)
    grid = (
        np.arange(0, shape_px[0], step, dtype=np.float64),
        np.arange(0, shape_px[1], step, dtype=np.float64),
    )
    nn = cKDTree(pos).query(pos, k=2)[0][:, 1] if len(pos) > 1 else np.array([np.inf])
    reach = float(np.median(nn))
    maps: dict[str, np.ndarray] = {}
    # One triangulation per set of columns that has values (strain set, displacement set).
    groups: dict[bytes, list[str]] = {}
    finite = {n: np.isfinite(table[n].to_numpy(dtype=np.float64)) for n in names}
    chosen = _displacement_sublattice(table, displacement_sublattice)
    for n in names:
        if n.startswith("displacement_") and chosen is not None:
            finite[n] &= table["sublattice"].to_numpy() == chosen
        groups.setdefault(finite[n].tobytes(), []).append(n)
    for members in groups.values():
        ok = finite[members[0]]
        values = table.loc[ok, members].to_numpy(dtype=np.float64)
        sub_pos = pos[ok]
        sub_reach = reach
        if ok.sum() > 1:
            sub_reach = max(reach, float(np.median(cKDTree(sub_pos).query(sub_pos, k=2)[0][:, 1])))
        out = _interpolate(sub_pos, values, grid, sub_reach)
        for i, n in enumerate(members):
            maps[n] = out[..., i]
    size = None if pixel_size_nm is None else float(pixel_size_nm) * step
    return LatticeMaps(
        maps, step, size, {"shape_px": tuple(shape_px), "displacement_sublattice": chosen}
    )


def _displacement_sublattice(table: pd.DataFrame, chosen: int | None) -> int | None:
    """The sublattice whose displacements are mapped (lowest-numbered displaced one)."""
    if "sublattice" not in table:
        return None
    if chosen is not None:
        return int(chosen)
    cols = [c for c in table.columns if c.startswith("displacement_")]
    if not cols:
        return None
    has = np.isfinite(table[cols[0]].to_numpy(dtype=np.float64))
    subs = table["sublattice"].to_numpy()[has]
    subs = subs[subs >= 0]
    return int(subs.min()) if subs.size else None


def symmetric_limits(values: np.ndarray, percentile: float = 99.0) -> tuple[float, float]:
    """Contrast limits centred on zero covering ``percentile`` % of the finite values."""
    v = np.abs(values[np.isfinite(values)])
    top = float(np.percentile(v, percentile)) if v.size else 1.0
    top = top if top > 0 else 1.0
    return -top, top
