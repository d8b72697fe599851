"""Training targets from the ground-truth columns: heatmap, instance labels, spacing.

The heatmap has one Gaussian per visible column whose width follows the *local* column
spacing (AtomID style): sigma = ``sigma_fraction`` x the distance to the nearest visible
neighbour, capped at ``sigma_max_px`` (isolated atoms) and at least ``MIN_SIGMA_PX``. Where
Gaussians overlap the larger value wins, so every peak is exactly 1. Column labels are
disks of radius ``radius_fraction`` x the local spacing; a pixel inside two disks belongs
to the nearer column.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

#: narrowest heatmap Gaussian (pixels): thinner peaks are invisible to a network
MIN_SIGMA_PX = 0.75
#: smallest label disk radius (pixels)
MIN_RADIUS_PX = 1.0
#: bound on the work per chunk of columns (window pixels)
_CHUNK = 4_000_000


def nearest_neighbour_distance(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Distance from each point to its nearest other point (inf when alone)."""
    n = len(y)
    if n < 2:
        return np.full(n, np.inf)
    d, _ = cKDTree(np.stack([y, x], axis=1)).query(np.stack([y, x], axis=1), k=2)
    return d[:, 1]


def mean_spacing(y: np.ndarray, x: np.ndarray) -> float:
    """Mean nearest-neighbour spacing (same unit as the input); nan with fewer than 2."""
    if len(y) < 2:
        return float("nan")
    return float(np.mean(nearest_neighbour_distance(y, x)))


def heatmap_and_labels(
    shape: tuple[int, int],
    y_px: np.ndarray,
    x_px: np.ndarray,
    labels: np.ndarray,
    sigma_fraction: float,
    sigma_max_px: float,
    radius_fraction: float,
    radius_max_px: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heatmap (float32 in [0, 1]), label image (int32) and the per-column sigma (px).

    ``labels`` are the values written for each column (e.g. table row + 1).
    """
    h, w = shape
    heat = np.zeros(h * w, dtype=np.float32)
    lab = np.zeros(h * w, dtype=np.int32)
    n = len(y_px)
    if n == 0:
        return heat.reshape(h, w), lab.reshape(h, w), np.zeros(0)
    nn = nearest_neighbour_distance(y_px, x_px)
    sigma = np.clip(sigma_fraction * nn, MIN_SIGMA_PX, max(sigma_max_px, MIN_SIGMA_PX))
    radius = np.clip(radius_fraction * nn, MIN_RADIUS_PX, max(radius_max_px, MIN_RADIUS_PX))
    half = int(np.ceil(max(3.0 * sigma.max(), radius.max()))) + 1
    offs = np.arange(-half, half + 1)
    oy, ox = np.meshgrid(offs, offs, indexing="ij")
    oy, ox = oy.ravel(), ox.ravel()
    per = len(oy)
    step = max(1, _CHUNK // per)
    # Nearest column wins inside label disks: minimise (squared distance, column) packed
    # in one int64 key; the heatmap takes the maximum. ufunc.at keeps this O(n).
    key = np.full(h * w, np.iinfo(np.int64).max, dtype=np.int64)
    for start in range(0, n, step):
        sl = slice(start, start + step)
        cy, cx = y_px[sl], x_px[sl]
        ry = np.round(cy).astype(np.int64)[:, None] + oy[None, :]
        rx = np.round(cx).astype(np.int64)[:, None] + ox[None, :]
        d2 = (ry - cy[:, None]) ** 2 + (rx - cx[:, None]) ** 2
        inside = (ry >= 0) & (ry < h) & (rx >= 0) & (rx < w)
        flat = ry * w + rx
        g = np.exp(-d2 / (2 * sigma[sl, None] ** 2)).astype(np.float32)
        keep = inside & (g > 1e-4)
        np.maximum.at(heat, flat[keep], g[keep])
        in_disk = inside & (d2 <= radius[sl, None] ** 2)
        column = np.broadcast_to(np.arange(start, min(start + step, n))[:, None], d2.shape)
        packed = (np.round(d2[in_disk] * 1e4).astype(np.int64) << 24) | column[in_disk]
        np.minimum.at(key, flat[in_disk], packed)
    hit = key != np.iinfo(np.int64).max
    lab[hit] = labels[key[hit] & ((1 << 24) - 1)]
    return heat.reshape(h, w), lab.reshape(h, w), sigma
