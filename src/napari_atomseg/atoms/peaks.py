"""Peaks of a heatmap: local maxima above a confidence threshold, then non-maximum
suppression with a spacing-aware radius and a minimum separation.

Two user-facing knobs (both with defaults chosen by the caller, see :mod:`.options`):

- ``threshold`` -- the confidence lower bound ("filter lower bound"): a peak whose heatmap
  value is below it is dropped;
- ``min_separation_px`` -- the smallest distance two columns may have ("window size"):
  of two peaks closer than this, only the stronger survives.

On top of ``min_separation_px`` the suppression radius of each peak may grow with the
local column spacing (``spacing_px`` times ``nms_fraction``) so that one column's shoulder
never becomes a second column, whatever the magnification. Suppression is greedy in order
of decreasing confidence (the classic NMS), computed in vectorised rounds over KD-tree
neighbour pairs, so 10^5-10^6 candidates take well under a second.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from .._validate import check_range
from ..errors import InputError


def local_maxima(heatmap: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer (row, col) of every 8-connected local maximum with value >= ``threshold``.

    Returns ``(positions (N, 2) int64, values (N,) float32)``. Pixels of a flat plateau
    are all returned; the suppression step keeps one of them.
    """
    heat = np.asarray(heatmap)
    if heat.ndim != 2:
        raise InputError(f"heatmap: expected a 2-D array, got shape {heat.shape}")
    # A pixel is a candidate when it equals the maximum of its 3x3 neighbourhood. Working
    # on the thresholded image first makes the filter's work proportional to the image
    # only once, and the comparison cheap.
    mask = heat >= threshold
    if not mask.any():
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32)
    peaks = mask & (heat == ndi.maximum_filter(heat, size=3, mode="nearest"))
    rows, cols = np.nonzero(peaks)
    return np.stack([rows, cols], axis=1).astype(np.int64), heat[rows, cols].astype(np.float32)


def suppress(
    positions_px: np.ndarray,
    scores: np.ndarray,
    radius_px: float | np.ndarray,
) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the points that survive, sorted.

    Points are visited from the highest score down; a point is kept unless a kept,
    higher-scoring point lies closer than its own radius (``radius_px`` scalar, or one
    radius per point). Ties are broken by index, so the result is deterministic. The greedy
    sequence is evaluated in parallel rounds: in each round every undecided point with no
    undecided stronger neighbour is kept and its weaker neighbours are suppressed.
    """
    pts = np.asarray(positions_px, dtype=np.float64)
    n = len(pts)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    radii = np.broadcast_to(np.asarray(radius_px, dtype=np.float64), (n,))
    r_max = float(radii.max())
    if r_max <= 0 or n == 1:
        return np.arange(n, dtype=np.int64)
    pairs = cKDTree(pts).query_pairs(r_max, output_type="ndarray")
    if len(pairs) == 0:
        return np.arange(n, dtype=np.int64)
    # Rank: 0 = strongest. lexsort sorts by the last key first.
    order = np.lexsort((np.arange(n), -scores))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    a, b = pairs[:, 0], pairs[:, 1]
    a_stronger = rank[a] < rank[b]
    strong = np.where(a_stronger, a, b)
    weak = np.where(a_stronger, b, a)
    dist = np.hypot(*(pts[strong] - pts[weak]).T)
    close = dist < radii[weak]
    strong, weak = strong[close], weak[close]

    status = np.zeros(n, dtype=np.int8)  # 0 undecided, 1 kept, -1 suppressed
    while True:
        undecided = status == 0
        if not undecided.any():
            break
        blocking_pairs = undecided[strong] & undecided[weak]
        n_blocking = np.bincount(weak[blocking_pairs], minlength=n)
        newly_kept = undecided & (n_blocking == 0)
        status[newly_kept] = 1
        killed = newly_kept[strong] & (status[weak] == 0)
        status[weak[killed]] = -1
    return np.flatnonzero(status == 1)


def subpixel_offsets(heatmap: np.ndarray, positions_px: np.ndarray) -> np.ndarray:
    """Sub-pixel (row, col) offsets of integer maxima from a parabola through 3 samples per axis.

    Offsets are clipped to +-0.5 px; on the image border the offset along that axis is 0.
    """
    heat = np.asarray(heatmap, dtype=np.float64)
    pos = np.asarray(positions_px, dtype=np.int64)
    out = np.zeros(pos.shape, dtype=np.float64)
    if len(pos) == 0:
        return out
    for axis in (0, 1):
        size = heat.shape[axis]
        inside = (pos[:, axis] > 0) & (pos[:, axis] < size - 1)
        lo, hi = pos.copy(), pos.copy()
        lo[:, axis] = np.clip(pos[:, axis] - 1, 0, size - 1)
        hi[:, axis] = np.clip(pos[:, axis] + 1, 0, size - 1)
        a = heat[lo[:, 0], lo[:, 1]]
        b = heat[pos[:, 0], pos[:, 1]]
        c = heat[hi[:, 0], hi[:, 1]]
        denom = a - 2.0 * b + c
        ok = inside & (denom < 0)
        off = np.zeros(len(pos))
        off[ok] = 0.5 * (a[ok] - c[ok]) / denom[ok]
        out[:, axis] = np.clip(off, -0.5, 0.5)
    return out


def find_peaks(
    heatmap: np.ndarray,
    threshold: float = 0.5,
    min_separation_px: float = 1.0,
    spacing_px: float | np.ndarray | None = None,
    nms_fraction: float = 0.5,
    exclude_border_px: int = 0,
    subpixel: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Column positions in a heatmap.

    Parameters
    ----------
    heatmap
        2-D array, larger = more likely a column centre (a network's output in [0, 1], or a
        smoothed image for the classical baselines). Not modified.
    threshold
        Confidence lower bound, in heatmap units.
    min_separation_px
        Minimum distance (px) between two reported columns.
    spacing_px
        Local column spacing (px): a scalar, or a 2-D map the same shape as ``heatmap``
        (e.g. a spacing head's output), or None. When given, each peak's suppression radius
        is ``max(min_separation_px, nms_fraction * spacing)``.
    nms_fraction
        Fraction of the local spacing used as suppression radius (0-1; 0.5 keeps columns
        exactly one spacing apart with margin for noise).
    exclude_border_px
        Drop peaks closer than this to the image edge.
    subpixel
        Refine each peak by a parabola through the heatmap (cheap; the image-based
        refinement in :mod:`.refine` is the precise one).

    Returns
    -------
    positions_px, confidence
        ``(N, 2)`` float64 (row, col) sorted by decreasing confidence, and ``(N,)`` float32
        heatmap values at the peaks.
    """
    heat = np.asarray(heatmap)
    if heat.ndim != 2:
        raise InputError(f"heatmap: expected a 2-D array, got shape {heat.shape}")
    threshold = float(threshold)
    min_separation_px = check_range(min_separation_px, 0.0, 1e6, "min_separation_px")
    nms_fraction = check_range(nms_fraction, 0.0, 1.0, "nms_fraction")
    cand, conf = local_maxima(heat, threshold)
    if exclude_border_px > 0 and len(cand):
        b = int(exclude_border_px)
        keep = (
            (cand[:, 0] >= b)
            & (cand[:, 1] >= b)
            & (cand[:, 0] < heat.shape[0] - b)
            & (cand[:, 1] < heat.shape[1] - b)
        )
        cand, conf = cand[keep], conf[keep]
    radius = np.full(len(cand), min_separation_px)
    if spacing_px is not None and len(cand):
        sp = np.asarray(spacing_px, dtype=np.float64)
        if sp.ndim == 2:
            if sp.shape != heat.shape:
                raise InputError(
                    f"spacing_px: map shape {sp.shape} differs from the heatmap's {heat.shape}"
                )
            local = sp[cand[:, 0], cand[:, 1]]
        elif sp.ndim == 0:
            local = np.full(len(cand), float(sp))
        else:
            raise InputError("spacing_px: expected a scalar or a 2-D map")
        local = np.where(np.isfinite(local), local, 0.0)
        radius = np.maximum(radius, nms_fraction * local)
    keep = suppress(cand, conf, radius)
    cand, conf = cand[keep], conf[keep]
    order = np.lexsort((np.arange(len(conf)), -conf.astype(np.float64)))
    cand, conf = cand[order], conf[order]
    pos = cand.astype(np.float64)
    if subpixel and len(pos):
        pos += subpixel_offsets(heat, cand)
    return pos, conf


#: Directions sampled on the ring (and at the half and full centre radius) per column.
_RING_DIRECTIONS = 16
_CENTRE_DIRECTIONS = 8


def local_prominence(
    image: np.ndarray,
    positions_px: np.ndarray,
    distance_px: np.ndarray,
    ring_fraction: float = 0.5,
    centre_fraction: float = 0.2,
    smooth_fraction: float = 0.1,
) -> np.ndarray:
    """How far each position stands out of its surroundings in ``image`` (image units).

    ``image`` is smoothed with a Gaussian of ``smooth_fraction`` x the median of
    ``distance_px`` (at least 0.5 px; shot noise would otherwise decide). For each position
    with its own distance ``d`` (the nearest-neighbour distance; capped at twice the median,
    the median where not finite) the score is the highest smoothed value within
    ``centre_fraction * d`` (the centre and 8 directions at half and full radius) minus
    the median of 16 samples on the ring of radius ``ring_fraction * d`` (at least 1 px).

    Positive: a local maximum of the image -- a column in white-atom contrast. A peak of
    the network's heatmap that is *not* one sits on a hollow, a tunnel or between columns
    (the network's lattice prior), or the columns' contrast was given the wrong way
    round. The small centre disc lets a column whose image maximum is a fraction of a
    pixel off its heatmap peak (a shoulder of a heavy neighbour) still count.
    """
    img = np.asarray(image)
    pos = np.asarray(positions_px, dtype=np.float64).reshape(-1, 2)
    d = np.asarray(distance_px, dtype=np.float64).reshape(-1)
    if len(d) != len(pos):
        raise InputError(f"distance_px: expected {len(pos)} values, got {len(d)}")
    if len(pos) == 0:
        return np.zeros(0)
    finite = np.isfinite(d) & (d > 0)
    typical = float(np.median(d[finite])) if finite.any() else 8.0
    d = np.where(finite, np.minimum(d, 2.0 * typical), typical)
    smooth = ndi.gaussian_filter(
        img.astype(np.float32, copy=False), max(0.5, smooth_fraction * typical), output=np.float32
    )

    def sample(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The smoothed image at (y, x), bilinear; same shape as ``y``."""
        return ndi.map_coordinates(smooth, [y.ravel(), x.ravel()], order=1, mode="nearest").reshape(
            y.shape
        )

    y, x = pos[:, 0:1], pos[:, 1:2]
    ring_r = np.maximum(ring_fraction * d, 1.0)[:, None]
    a = np.linspace(0.0, 2.0 * np.pi, _RING_DIRECTIONS, endpoint=False)[None, :]
    ring = np.median(sample(y + ring_r * np.sin(a), x + ring_r * np.cos(a)), axis=1)
    centre_r = (centre_fraction * d)[:, None]
    b = np.linspace(0.0, 2.0 * np.pi, _CENTRE_DIRECTIONS, endpoint=False)[None, :]
    n = _CENTRE_DIRECTIONS
    rr = np.concatenate([np.zeros((1, 1)), np.full((1, n), 0.5), np.ones((1, n))], axis=1)
    bb = np.concatenate([np.zeros((1, 1)), b, b], axis=1)
    centre = sample(y + rr * centre_r * np.sin(bb), x + rr * centre_r * np.cos(bb)).max(axis=1)
    return (centre - ring).astype(np.float64)
