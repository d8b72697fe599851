"""One label per particle, and a table of them: :func:`particle_instances`.

A particle mask from either method is split into particles by a watershed on its
distance transform: markers are the distance maxima that stand out by at least
:data:`MIN_MARKER_PROMINENCE` of the typical particle radius (plateaus of a round
particle give one marker; the neck between two touching particles gives two). Regions
smaller than ``min_area_px`` are dropped. The table has one row per particle: ``label``,
``area_px``, ``equivalent_diameter_px`` (of the disc of the same area), ``centroid_y_px``,
``centroid_x_px`` and, with a pixel size, ``area_nm2``, ``equivalent_diameter_nm``,
``centroid_y_nm``, ``centroid_x_nm``; plus ``touches_border`` (its size is a lower bound).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: A distance maximum seeds its own particle when it rises this fraction of the median
#: particle radius above the saddle to its neighbour.
MIN_MARKER_PROMINENCE = 0.35
#: Particles smaller than this many pixels are dropped (noise specks).
MIN_AREA_PX = 4

TABLE_COLUMNS = (
    "label",
    "area_px",
    "equivalent_diameter_px",
    "centroid_y_px",
    "centroid_x_px",
    "touches_border",
)


def _markers(mask: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Watershed seeds: h-maxima of the distance transform, labelled."""
    from scipy import ndimage as ndi
    from skimage.morphology import h_maxima

    radii = distance[mask]
    typical = float(np.median(radii[radii >= np.percentile(radii, 90)])) if radii.size else 1.0
    h = max(0.5, MIN_MARKER_PROMINENCE * typical)
    peaks = h_maxima(distance, h) & mask
    markers, _ = ndi.label(peaks, structure=np.ones((3, 3)))
    return markers


def particle_instances(
    mask: np.ndarray, pixel_size_nm: float | None = None, min_area_px: int = MIN_AREA_PX
) -> tuple[np.ndarray, pd.DataFrame]:
    """``(instances, table)``: int32 labels (0 = background, 1..N particles) and one row
    per particle (see the module docstring). ``mask`` is any boolean-like (H, W) array."""
    from scipy import ndimage as ndi
    from skimage.segmentation import relabel_sequential, watershed

    binary = np.asarray(mask).astype(bool)
    if not binary.any():
        empty = np.zeros(binary.shape, np.int32)
        return empty, particle_table(empty, pixel_size_nm)
    distance = ndi.distance_transform_edt(binary)
    labels = watershed(-distance, _markers(binary, distance), mask=binary)
    # Components the markers missed (thin slivers) keep a label of their own.
    missed = binary & (labels == 0)
    if missed.any():
        extra, _ = ndi.label(missed)
        labels = np.where(missed, extra + labels.max(), labels)
    areas = np.bincount(labels.ravel())
    small = areas < min_area_px
    small[0] = False
    labels[small[labels]] = 0
    relabelled = relabel_sequential(labels.astype(np.int32))[0].astype(np.int32)
    return relabelled, particle_table(relabelled, pixel_size_nm)


def particle_table(instances: np.ndarray, pixel_size_nm: float | None) -> pd.DataFrame:
    """One row per particle of a label image (0 = background, 1..N without gaps, e.g.
    from :func:`particle_instances`): the columns of the module docstring. Every particle
    table of the package (``segment``, the intensity method, the main job, the CLI, the
    widget) is this one."""
    from scipy import ndimage as ndi

    instances = np.asarray(instances)
    n = int(instances.max())
    index = np.arange(1, n + 1)
    if n == 0:
        table = pd.DataFrame({c: pd.Series([], dtype=float) for c in TABLE_COLUMNS})
    else:
        area = np.bincount(instances.ravel(), minlength=n + 1)[1:].astype(np.float64)
        cy, cx = np.array(ndi.center_of_mass(np.ones_like(instances), instances, index)).T
        border = np.zeros(n + 1, bool)
        edges = np.concatenate([instances[0], instances[-1], instances[:, 0], instances[:, -1]])
        border[np.unique(edges)] = True
        table = pd.DataFrame(
            {
                "label": index,
                "area_px": area,
                "equivalent_diameter_px": 2.0 * np.sqrt(area / math.pi),
                "centroid_y_px": cy,
                "centroid_x_px": cx,
                "touches_border": border[1:],
            }
        )
    table["label"] = table["label"].astype(np.int64)
    table["touches_border"] = table["touches_border"].astype(bool)
    if pixel_size_nm is not None:
        p = float(pixel_size_nm)
        table["area_nm2"] = table["area_px"] * p * p
        table["equivalent_diameter_nm"] = table["equivalent_diameter_px"] * p
        table["centroid_y_nm"] = table["centroid_y_px"] * p
        table["centroid_x_nm"] = table["centroid_x_px"] * p
    return table
