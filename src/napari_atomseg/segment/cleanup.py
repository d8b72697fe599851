"""Clean-up of label masks: boundary smoothing, small regions, holes.

Works on integer label arrays with any number of classes (0 is the "clean"/background
class) and on boolean masks. Three steps, in this order, each optional:

1. **Boundary smoothing** -- every class's indicator is Gaussian-blurred and each pixel
   takes the class with the largest blurred value (for two classes: blur and threshold at
   0.5). It rounds jagged edges and closes gaps narrower than about the sigma without
   growing or shrinking regions on average.
2. **Small regions** -- connected regions (8-connected) smaller than ``min_region_px`` of
   *any* class are given to the class of the nearest surviving pixel, so nothing is left
   unlabelled.
3. **Holes** -- regions enclosed by one foreground class (not touching the image border)
   and at most ``max_hole_px`` large are filled with that class.

Lengths and areas here are in pixels; :mod:`napari_atomseg.segment.api` converts physical
or lattice-relative sizes to pixels.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage as ndi

from .._validate import check_range
from ..errors import InputError

_EIGHT = np.ones((3, 3), dtype=bool)
#: Gaussian kernels are cut at 3 sigma (the default 4 costs a third more for <1 % change).
_TRUNCATE = 3.0


def _as_labels(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a 2-D label array, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.dtype.kind not in "iu":
        raise InputError(f"{name}: expected integer labels or a boolean mask, got {arr.dtype}")
    if arr.size and int(arr.min()) < 0:
        raise InputError(f"{name}: labels must be >= 0, found {int(arr.min())}")
    return arr


def smooth_boundaries(labels: np.ndarray, sigma_px: float) -> np.ndarray:
    """Majority smoothing: per-class Gaussian-blurred indicators, then arg-max.

    Ties keep the original label. ``sigma_px`` = 0 returns a copy.
    """
    lab = _as_labels(labels)
    sigma_px = check_range(sigma_px, 0.0, 1e4, "smooth_sigma_px")
    if sigma_px == 0:
        return lab.copy()
    classes = np.unique(lab)
    if classes.size < 2:
        return lab.copy()
    if classes.size == 2:
        # Two classes: one blur and a 0.5 threshold (exact ties keep the pixel's label).
        lo, hi = classes
        frac = ndi.gaussian_filter(
            (lab == hi).astype(np.float32), sigma_px, mode="nearest", truncate=_TRUNCATE
        )
        out = lab.copy()
        out[frac > 0.5] = hi
        out[frac < 0.5] = lo
        return out
    best = np.full(lab.shape, -1.0, dtype=np.float32)
    out = lab.copy()
    for c in classes:
        blurred = ndi.gaussian_filter(
            (lab == c).astype(np.float32), sigma_px, mode="nearest", truncate=_TRUNCATE
        )
        # A small bonus for the pixel's own class breaks exact ties in its favour.
        blurred += (lab == c) * np.float32(1e-4)
        better = blurred > best
        out[better] = c
        best[better] = blurred[better]
    return out


def remove_small_regions(labels: np.ndarray, min_region_px: int) -> np.ndarray:
    """Give every region (of any class) smaller than ``min_region_px`` to its surroundings.

    Each pixel of a removed region takes the label of the nearest pixel that belongs to
    a region kept. If no region is large enough, the input is returned unchanged.
    """
    lab = _as_labels(labels)
    min_region_px = int(check_range(min_region_px, 0, lab.size, "min_region_px"))
    if min_region_px <= 1:
        return lab.copy()
    drop = np.zeros(lab.shape, dtype=bool)
    for c in np.unique(lab):
        comp, n = ndi.label(lab == c, structure=_EIGHT)
        if n == 0:
            continue
        sizes = np.bincount(comp.ravel())
        small = sizes < min_region_px
        small[0] = False
        drop |= small[comp]
    if not drop.any() or drop.all():
        return lab.copy()
    _, (iy, ix) = ndi.distance_transform_edt(drop, return_indices=True)
    return lab[iy, ix]


def fill_holes(
    labels: np.ndarray,
    max_hole_px: int | None = None,
    classes: Iterable[int] | None = None,
) -> np.ndarray:
    """Fill regions enclosed by one class with that class.

    ``classes``: which classes fill their holes (default: every class except 0, so holes
    *in the clean lattice* -- contamination patches -- are never erased). ``max_hole_px``:
    only holes up to this many pixels (``None``: any size). A hole is a connected part of
    the complement of a class that does not touch the image border.
    """
    lab = _as_labels(labels)
    if max_hole_px is not None:
        max_hole_px = int(check_range(max_hole_px, 0, lab.size, "max_hole_px"))
    out = lab.copy()
    todo = [c for c in np.unique(lab) if c != 0] if classes is None else list(classes)
    for c in todo:
        inside = out == c
        if not inside.any():
            continue
        filled = ndi.binary_fill_holes(inside)
        holes = filled & ~inside
        if not holes.any():
            continue
        if max_hole_px is not None:
            comp, _ = ndi.label(holes, structure=_EIGHT)
            sizes = np.bincount(comp.ravel())
            keep = sizes <= max_hole_px
            keep[0] = False
            holes = keep[comp]
        out[holes] = c
    return out


def clean_labels(
    labels: np.ndarray,
    *,
    smooth_sigma_px: float = 0.0,
    min_region_px: int = 0,
    fill_holes_up_to_px: int | None = None,
    fill: bool = True,
) -> np.ndarray:
    """Smoothing, small-region removal and hole filling in one call (see module doc).

    Returns a new array of the input's dtype (bool in -> bool out). ``fill=False`` skips
    hole filling; ``fill_holes_up_to_px`` limits it to holes of at most that many pixels.
    """
    lab = _as_labels(labels)
    out = smooth_boundaries(lab, smooth_sigma_px)
    out = remove_small_regions(out, min_region_px)
    if fill:
        out = fill_holes(out, fill_holes_up_to_px)
    if np.asarray(labels).dtype == bool:
        return out.astype(bool)
    return out.astype(np.asarray(labels).dtype, copy=False)
