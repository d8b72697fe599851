"""Ideal places in the cell, and each column's displacement from the surrounding cell.

A column of a non-reference sublattice has an *ideal* fractional position in the cell of
the reference sublattice: its measured position relative to the neighbouring reference
columns, rounded to the nearest ideal fraction (halves: the centre of the cell for a
perovskite's B site, (1/2, 0) for an O column on an edge; thirds too for hexagonal
cells). Its displacement is its position minus the point at that ideal fraction of the
*surrounding* reference cell (bilinear in the cell's corners: the mean of the four
corners for the centre), so a uniform strain or rotation moves the ideal point with the
cell, and only the shift inside the cell is measured. A positive ``displacement_x``
points to larger x, a positive ``displacement_y`` down the image.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

#: Ideal fractions when the caller names none; hexagonal cells add thirds.
HALVES = (0.0, 0.5, 1.0)
HALVES_AND_THIRDS = (0.0, 1.0 / 3.0, 0.5, 2.0 / 3.0, 1.0)


def snap(frac: np.ndarray, allowed: tuple[float, ...]) -> np.ndarray:
    """Each value in [0, 1] moved to the nearest allowed fraction."""
    grid = np.asarray(sorted(set(allowed) | {0.0, 1.0}))
    return grid[np.argmin(np.abs(frac[..., None] - grid), axis=-1)]


def ideal_coordinates(
    positions_px: np.ndarray,
    ref_positions_px: np.ndarray,
    ref_hk: np.ndarray,
    ref_cells: np.ndarray,
    fallback_cell: np.ndarray,
    allowed: tuple[float, ...],
) -> np.ndarray:
    """Ideal fractional coordinates q (n, 2) of columns from their nearest reference column.

    The step from that reference column uses its own local cell (``ref_cells``; the
    ``fallback_cell`` where it has none), so a strained or rotated region is indexed as
    well as a perfect one.
    """
    if len(ref_positions_px) == 0 or len(positions_px) == 0:
        return np.full((len(positions_px), 2), np.nan)
    _, j = cKDTree(ref_positions_px).query(positions_px, workers=-1)
    cells = ref_cells[j]
    bad = ~np.isfinite(cells).all(axis=(1, 2))
    cells[bad] = fallback_cell
    step = np.linalg.solve(cells, (positions_px - ref_positions_px[j])[:, :, None])[:, :, 0]
    rel = ref_hk[j] + step
    base = np.floor(rel)
    return base + snap(rel - base, allowed)


def displacements_px(
    positions_px: np.ndarray,
    q: np.ndarray,
    is_reference: np.ndarray,
) -> np.ndarray:
    """Displacement (n, 2) (y, x) px of each non-reference column from its ideal point.

    NaN for reference columns, unindexed columns, and where a corner of the surrounding
    reference cell that the ideal point depends on is missing.
    """
    n = len(positions_px)
    out = np.full((n, 2), np.nan)
    ref = np.nonzero(is_reference & np.isfinite(q).all(axis=1))[0]
    todo = np.nonzero(~is_reference & np.isfinite(q).all(axis=1))[0]
    if ref.size == 0 or todo.size == 0:
        return out
    ref_hk = np.rint(q[ref]).astype(np.int64)
    lo = ref_hk.min(axis=0) - 1
    width = int(ref_hk[:, 1].max() - lo[1] + 3)
    keys = (ref_hk[:, 0] - lo[0]) * width + (ref_hk[:, 1] - lo[1])
    order = np.argsort(keys)
    sorted_keys = keys[order]
    base = np.floor(q[todo] + 1e-9)
    nu = q[todo] - base
    expected = np.zeros((todo.size, 2))
    complete = np.ones(todo.size, dtype=bool)
    for dh, dk in ((0, 0), (1, 0), (0, 1), (1, 1)):  # the four corners
        weight = (nu[:, 0] if dh else 1 - nu[:, 0]) * (nu[:, 1] if dk else 1 - nu[:, 1])
        corner = base + np.array([dh, dk])
        key = (corner[:, 0] - lo[0]) * width + (corner[:, 1] - lo[1])
        valid = (corner[:, 1] >= lo[1]) & (corner[:, 1] - lo[1] < width)
        pos = np.clip(np.searchsorted(sorted_keys, key), 0, len(sorted_keys) - 1)
        found = valid & (sorted_keys[pos] == key)
        needed = weight > 1e-9
        complete &= found | ~needed
        idx = ref[order[pos]]
        use = found & needed
        expected[use] += weight[use, None] * positions_px[idx[use]]
    disp = positions_px[todo] - expected
    disp[~complete] = np.nan
    out[todo] = disp
    return out
