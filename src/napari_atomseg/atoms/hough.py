"""Circular-Hough column finding on a segmented heatmap (after Ge & Xin).

The heatmap is thresholded into column discs; the discs' edges vote for circle centres over
a range of radii (``skimage.transform.hough_circle``, normalised so a complete circle
scores 1); centres are the peaks of the best-radius vote map. Touching or merged discs,
which defeat a plain connected-component centroid, still give one circle per column
because each column's arc votes for its own centre.

Use it as an alternative to heatmap peaks (``method="hough"`` in :func:`.find.heatmap_to_atoms`)
when columns are round and of similar size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.transform import hough_circle

from .._validate import check_range
from ..errors import InputError
from .peaks import find_peaks


@dataclass(frozen=True)
class HoughColumns:
    """Columns found by the circular Hough transform."""

    positions_px: np.ndarray  # (N, 2) float64 (row, col), sorted by decreasing score
    score: np.ndarray  # (N,) fraction of the circle's perimeter found on edges (0-1)
    radius_px: np.ndarray  # (N,) radius of the best circle


def disc_radius_px(binary: np.ndarray) -> float:
    """Typical disc radius (px) in a binary image of (possibly touching) discs; NaN if empty.

    The distance transform peaks at each disc's centre with the disc's radius, and touching
    discs only add narrow necks with smaller values, so the median of the distance
    transform's local maxima measures the radius where region areas would not.
    """
    if not binary.any():
        return float("nan")
    edt = ndi.distance_transform_edt(binary)
    peaks = (edt == ndi.maximum_filter(edt, size=3)) & (edt >= 1.0)
    if not peaks.any():
        return float("nan")
    # The EDT at a digital disc's centre is ~0.5 px short of the continuous radius.
    return float(np.median(edt[peaks]) + 0.5)


def hough_columns(
    heatmap: np.ndarray,
    level: float = 0.5,
    radius_px: float | tuple[float, float] | None = None,
    score_threshold: float = 0.5,
    min_separation_px: float | None = None,
    n_radii: int = 7,
) -> HoughColumns:
    """Column centres from circles fitted (by Hough voting) to the thresholded heatmap.

    Parameters
    ----------
    heatmap
        2-D array, high at columns. Not modified.
    level
        Heatmap value that separates column discs from background.
    radius_px
        Disc radius (px) to search for: a value (searched within +-40 %), a ``(min, max)``
        range, or None to take the median equivalent radius of the thresholded regions.
    score_threshold
        Minimum fraction (0-1) of a circle's perimeter that must lie on disc edges.
    min_separation_px
        Minimum distance between two centres (px); default the mean searched radius.
    n_radii
        Number of radii tried within the range.
    """
    heat = np.asarray(heatmap)
    if heat.ndim != 2:
        raise InputError(f"heatmap: expected a 2-D array, got shape {heat.shape}")
    score_threshold = check_range(score_threshold, 0.0, 1.0, "score_threshold")
    binary = heat >= level
    empty = HoughColumns(np.zeros((0, 2)), np.zeros(0), np.zeros(0))
    if not binary.any():
        return empty
    if radius_px is None:
        r0 = disc_radius_px(binary)
        r_lo, r_hi = 0.6 * r0, 1.4 * r0
    elif np.ndim(radius_px) == 0:
        r_lo, r_hi = 0.6 * float(radius_px), 1.4 * float(radius_px)
    else:
        r_lo, r_hi = (float(x) for x in radius_px)  # type: ignore[union-attr]
    if not (np.isfinite(r_lo) and np.isfinite(r_hi) and 0 < r_lo <= r_hi):
        raise InputError(f"radius_px: invalid circle radius range ({r_lo}, {r_hi}) px")
    radii = np.unique(np.clip(np.rint(np.linspace(r_lo, r_hi, n_radii)), 1, None).astype(int))
    # A two-pixel band (inner and outer boundary) rather than a one-pixel contour: digital
    # circles then hit it along their whole perimeter, so a full disc scores ~1.
    edges = ndi.binary_dilation(binary) & ~ndi.binary_erosion(binary, border_value=1)
    # One radius at a time keeps memory at two image-sized arrays whatever the range.
    best = np.zeros(heat.shape, dtype=np.float64)
    best_r = np.zeros(heat.shape, dtype=np.float64)
    for r in radii:
        acc = hough_circle(edges, [int(r)], normalize=True, full_output=False)[0]
        better = acc > best
        best[better] = acc[better]
        best_r[better] = r
    if min_separation_px is None:
        min_separation_px = float(np.mean(radii))
    # Digital circles of small radius have few perimeter pixels, so the vote map is
    # jagged; a slight smoothing gives one clean maximum per column.
    pos, score = find_peaks(
        ndi.gaussian_filter(best, 0.7),
        threshold=score_threshold,
        min_separation_px=float(min_separation_px),
    )
    # A column's centre lies inside its own disc; circles centred in the gaps between
    # discs (touching several neighbours' edges) are not columns.
    if len(pos):
        inside = binary[np.rint(pos[:, 0]).astype(int), np.rint(pos[:, 1]).astype(int)]
        pos, score = pos[inside], score[inside]
    rr = (
        best_r[np.rint(pos[:, 0]).astype(int), np.rint(pos[:, 1]).astype(int)]
        if len(pos)
        else np.zeros(0)
    )
    return HoughColumns(pos, score.astype(np.float64), rr)
