"""Column intensities from the image, at the positions as given (never re-refined).

- :func:`brightness` -- the lightly smoothed image at each column (sublattice splitting);
- :func:`voronoi_intensity` -- the integral of each column's Voronoi cell above its
  background (the mean of the cell's outer ring), cells cut at a radius so a column at a
  vacuum edge does not collect the vacuum; cells cut by the image border are NaN;
- :func:`gaussian_features` -- a 2-D Gaussian fitted at each column (amplitude, widths,
  background); the fitted centre is not used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

#: The background of a Voronoi cell is the mean of its pixels further than this fraction
#: of the column's nearest-neighbour distance from it (between the columns).
RING_FRACTION = 0.35


def brightness(image: np.ndarray, positions_px: np.ndarray, spacing_px: float) -> np.ndarray:
    """The image smoothed over ~1/10 of the spacing, interpolated at each column."""
    sigma = max(0.5, 0.1 * spacing_px)
    smooth = ndi.gaussian_filter(image.astype(np.float32), sigma)
    return ndi.map_coordinates(smooth, positions_px.T, order=1, mode="nearest")


def voronoi_labels(
    shape: tuple[int, int], positions_px: np.ndarray, max_radius_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest column for every pixel (-1 beyond ``max_radius_px``), and the
    distance (px) of every pixel to that column.

    Uses a Euclidean distance transform from the columns' nearest pixels: exact Voronoi
    cells to within half a pixel, in linear time whatever the number of columns.
    """
    h, w = shape
    rc = np.rint(positions_px).astype(np.int64)
    inside = (rc[:, 0] >= 0) & (rc[:, 0] < h) & (rc[:, 1] >= 0) & (rc[:, 1] < w)
    owner = np.full(shape, -1, dtype=np.int64)
    ids = np.nonzero(inside)[0]
    owner[rc[inside, 0], rc[inside, 1]] = ids
    seeds = owner < 0
    if not (~seeds).any():
        return np.full(shape, -1, np.int64), np.full(shape, np.inf)
    _, (iy, ix) = ndi.distance_transform_edt(seeds, return_indices=True)
    labels = owner[iy, ix]
    yy, xx = np.indices(shape, dtype=np.float32)
    dist = np.hypot(yy - positions_px[labels, 0], xx - positions_px[labels, 1])
    labels[dist > max_radius_px] = -1
    return labels, dist


def voronoi_intensity(
    image: np.ndarray, positions_px: np.ndarray, nn_px: np.ndarray, max_radius_px: float
) -> pd.DataFrame:
    """``intensity_integrated`` (background-subtracted, image units x px^2),
    ``intensity_background`` (per pixel) and ``voronoi_area_px`` of every column."""
    n = len(positions_px)
    labels, dist = voronoi_labels(image.shape, positions_px, max_radius_px)
    ok = labels >= 0
    lab = labels[ok]
    values = image[ok].astype(np.float64)
    area = np.bincount(lab, minlength=n).astype(np.float64)
    total = np.bincount(lab, weights=values, minlength=n)
    ring = dist[ok] >= RING_FRACTION * np.minimum(nn_px, 2 * max_radius_px)[lab]
    ring_n = np.bincount(lab[ring], minlength=n)
    ring_sum = np.bincount(lab[ring], weights=values[ring], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        background = ring_sum / ring_n
    border = np.zeros(n, dtype=bool)
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    border[np.unique(edge[edge >= 0])] = True
    integrated = total - area * background
    bad = border | (area == 0) | (ring_n == 0)
    integrated[bad] = np.nan
    background[bad] = np.nan
    return pd.DataFrame(
        {
            "intensity_integrated": integrated,
            "intensity_background": background,
            "voronoi_area_px": np.where(bad, np.nan, area),
        }
    )


def gaussian_features(
    image: np.ndarray, positions_px: np.ndarray, radius_px: float
) -> pd.DataFrame:
    """Gaussian-fit amplitude, principal widths (px) and background at each column."""
    from ..atoms.refine import refine_gaussian

    n = len(positions_px)
    inside = (
        (positions_px[:, 0] >= 0)
        & (positions_px[:, 0] <= image.shape[0] - 1)
        & (positions_px[:, 1] >= 0)
        & (positions_px[:, 1] <= image.shape[1] - 1)
    )
    out = {
        name: np.full(n, np.nan)
        for name in (
            "gaussian_amplitude",
            "gaussian_sigma_major_px",
            "gaussian_sigma_minor_px",
            "gaussian_background",
        )
    }
    if inside.any():
        fit = refine_gaussian(image, positions_px[inside], max(1.5, radius_px))
        out["gaussian_amplitude"][inside] = fit.amplitude
        out["gaussian_sigma_major_px"][inside] = fit.sigma_major_px
        out["gaussian_sigma_minor_px"][inside] = fit.sigma_minor_px
        out["gaussian_background"][inside] = fit.background
    return pd.DataFrame(out)
