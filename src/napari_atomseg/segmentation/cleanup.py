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

Lengths and areas here are in pixels; :mod:`napari_atomseg.segmentation.api` converts physical
or lattice-relative sizes to pixels.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np
from scipy import ndimage as ndi

from .._validate import check_range
from ..errors import InputError

_EIGHT = np.ones((3, 3), dtype=bool)
#: Gaussian kernels are cut at 3 sigma (the default 4 costs a third more for <1 % change).
_TRUNCATE = 3.0
#: Added to a pixel's own class before the arg-max, so that exact ties keep the label.
_OWN_CLASS_BONUS = 1e-4


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


def _classes(lab: np.ndarray) -> np.ndarray:
    """Sorted label values present (``np.unique``)."""
    if lab.size and lab.dtype.kind in "iu":
        top = int(lab.max())
        if top < 16:  # a few equality tests beat sorting or counting every pixel
            return np.array([c for c in range(top + 1) if (lab == c).any()], dtype=lab.dtype)
    return np.unique(lab)


def _block_runs(
    active: np.ndarray,
    block_px: int,
    shape: tuple[int, int],
    margin_px: int,
    key: np.ndarray | None = None,
):
    """Crops covering every active block: ``(core, crop, key)`` triples.

    ``active`` is a boolean grid of ``block_px`` blocks; each row of blocks is split into
    runs of consecutive active blocks with the same ``key`` (any integer grid; ``None``:
    one key, and runs closer than ``2 * margin_px`` merge since their margins would
    overlap anyway). ``core`` is the run itself, ``crop`` the run widened by
    ``margin_px`` on every side, clipped to the image.
    """
    h, w = shape
    if key is None:
        key = np.zeros(active.shape, dtype=np.int64)
        gap_blocks = 2 * margin_px // block_px + 1
    else:
        gap_blocks = 1
    for i in np.flatnonzero(active.any(axis=1)):
        cols = np.flatnonzero(active[i])
        keys = key[i, cols]
        breaks = np.flatnonzero((np.diff(cols) > gap_blocks) | (np.diff(keys) != 0))
        starts = np.concatenate(([0], breaks + 1))
        stops = np.concatenate((breaks, [cols.size - 1]))
        r0, r1 = i * block_px, min((i + 1) * block_px, h)
        for s0, s1 in zip(starts, stops):
            c0, c1 = cols[s0] * block_px, min((cols[s1] + 1) * block_px, w)
            core = (slice(r0, r1), slice(c0, c1))
            crop = (
                slice(max(r0 - margin_px, 0), min(r1 + margin_px, h)),
                slice(max(c0 - margin_px, 0), min(c1 + margin_px, w)),
            )
            yield core, crop, int(keys[s0])


def _inner(core: tuple[slice, slice], crop: tuple[slice, slice]) -> tuple[slice, slice]:
    """``core`` in the coordinates of ``crop``."""
    return tuple(slice(c.start - p.start, c.stop - p.start) for c, p in zip(core, crop))


@functools.lru_cache(maxsize=16)
def _gauss_weights(sigma_px: float) -> np.ndarray:
    """The 1-D kernel ``ndi.gaussian_filter`` uses (truncated at ``_TRUNCATE`` sigma)."""
    radius = int(_TRUNCATE * sigma_px + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma_px * sigma_px) * x**2)
    return phi / phi.sum()


def _blur(indicator: np.ndarray, sigma_px: float) -> np.ndarray:
    """``ndi.gaussian_filter(indicator as float32, sigma_px, mode="nearest")``, same numbers.

    Calls the two 1-D passes directly with a cached kernel: the smoothing runs on many
    small crops, where rebuilding the kernel cost as much as the filtering.
    """
    weights = _gauss_weights(float(sigma_px))
    out = np.empty(indicator.shape, dtype=np.float32)
    ndi.correlate1d(indicator.astype(np.float32), weights, 0, out, mode="nearest")
    ndi.correlate1d(out, weights, 1, out, mode="nearest")
    return out


def _smooth_reference(lab: np.ndarray, classes: np.ndarray, sigma_px: float) -> np.ndarray:
    """Majority smoothing of all of ``lab`` among ``classes`` (the plain algorithm).

    Two classes: one blur and a 0.5 threshold (exact ties keep the pixel's label). More:
    the arg-max of every class's blurred indicator, the pixel's own class winning ties.
    """
    out = lab.copy()
    if classes.size == 2:
        lo, hi = classes
        frac = _blur(lab == hi, sigma_px)
        out[frac > 0.5] = hi
        out[frac < 0.5] = lo
        return out
    best = np.full(lab.shape, -1.0, dtype=np.float32)
    for c in classes:
        inside = lab == c
        blurred = _blur(inside, sigma_px)
        # A small bonus for the pixel's own class breaks exact ties in its favour.
        blurred += inside * np.float32(_OWN_CLASS_BONUS)
        better = blurred > best
        out[better] = c
        best[better] = blurred[better]
    return out


def _smooth_local(lab: np.ndarray, local: np.ndarray, sigma_px: float) -> np.ndarray:
    """The many-class arg-max of :func:`_smooth_reference` where only ``local`` occur.

    One blur fewer: the blurred indicator of the first class is 1 minus the sum of the
    others' (the kernel sums to 1), so this matches the reference except where
    two scores agree to within float32 rounding (~1e-7; never met on the graphene masks).
    """
    implied = 0
    bonus = np.float32(_OWN_CLASS_BONUS)
    scores = np.empty((local.size, *lab.shape), dtype=np.float32)
    rest = np.ones(lab.shape, dtype=np.float32)
    for i, c in enumerate(local):
        if i != implied:
            scores[i] = _blur(lab == c, sigma_px)
            rest -= scores[i]
    scores[implied] = rest
    out = np.full(lab.shape, local[0], dtype=lab.dtype)
    best = scores[0]
    best += (lab == local[0]) * bonus
    for i in range(1, local.size):
        score = scores[i]
        score += (lab == local[i]) * bonus
        better = score > best
        out[better] = local[i]
        np.maximum(best, score, out=best)
    return out


def smooth_boundaries(labels: np.ndarray, sigma_px: float) -> np.ndarray:
    """Majority smoothing: per-class Gaussian-blurred indicators, then arg-max.

    Ties keep the original label. ``sigma_px`` = 0 returns a copy.

    Computed block by block: a block whose neighbourhood (the kernel's reach) holds a
    single class keeps its labels; the others are blurred on a crop widened by the
    kernel radius (the same numbers as blurring the whole image), only for the classes
    present there and one blur fewer for more than two classes (see
    :func:`_smooth_local`).
    """
    lab = _as_labels(labels)
    sigma_px = check_range(sigma_px, 0.0, 1e4, "smooth_sigma_px")
    if sigma_px == 0:
        return lab.copy()
    classes = _classes(lab)
    if classes.size < 2:
        return lab.copy()
    if classes.size > 62:
        return _smooth_reference(lab, classes, sigma_px)
    # scipy's kernel radius for this sigma and truncation.
    radius = int(_TRUNCATE * float(sigma_px) + 0.5)
    cell = 8
    per_block = max(4, -(-2 * radius // cell))  # cells per block side
    block = per_block * cell
    reach = -(-radius // cell)  # cells a kernel reaches beyond its block, each side
    h, w = lab.shape
    rows = np.arange(0, h, cell)
    cols = np.arange(0, w, cell)
    # Bit i of ``present``: class ``classes[i]`` occurs in the cell.
    if int(classes[-1]) < 8:
        # One pass: OR of 1 << label per cell, then label bits -> class-index bits.
        bits = np.left_shift(np.uint8(1), lab.astype(np.uint8, copy=False))
        value_bits = np.bitwise_or.reduceat(
            np.bitwise_or.reduceat(bits, rows, axis=0), cols, axis=1
        )
        lut = np.zeros(256, dtype=np.int64)
        for i, c in enumerate(classes):
            lut |= ((np.arange(256) >> int(c)) & 1) << i
        present = lut[value_bits]
    else:
        present = np.zeros((rows.size, cols.size), dtype=np.int64)
        for i, c in enumerate(classes):
            has = np.logical_or.reduceat(
                np.logical_or.reduceat(lab == c, rows, axis=0), cols, axis=1
            )
            present |= has.astype(np.int64) << i
    nby, nbx = -(-rows.size // per_block), -(-cols.size // per_block)
    padded = np.pad(
        present,
        (
            (reach, nby * per_block - rows.size + reach),
            (reach, nbx * per_block - cols.size + reach),
        ),
    )
    # Classes within the kernel's reach of each block.
    neighbourhood = np.zeros((nby, nbx), dtype=np.int64)
    span = per_block + 2 * reach
    for dy in range(span):
        for dx in range(span):
            neighbourhood |= padded[
                dy : dy + nby * per_block : per_block, dx : dx + nbx * per_block : per_block
            ]
    n_present = sum((neighbourhood >> i) & 1 for i in range(classes.size))
    mixed = n_present >= 2
    two = classes.size == 2
    runs = list(_block_runs(mixed, block, lab.shape, radius, None if two else neighbourhood))

    def n_blurs(key: int) -> int:
        """Blurs a crop needs, its classes given as a bit mask ``key``."""
        return 1 if two else max(bin(key).count("1") - 1, 1)

    crop_cost = sum(
        (crop[0].stop - crop[0].start) * (crop[1].stop - crop[1].start) * n_blurs(key)
        for _, crop, key in runs
    )
    if crop_cost >= 0.9 * lab.size * n_blurs((1 << classes.size) - 1):
        # Boundaries everywhere: crops would only add their margins.
        if two:
            return _smooth_reference(lab, classes, sigma_px)
        return _smooth_local(lab, classes, sigma_px)
    out = lab.copy()
    for core, crop, key in runs:
        sub = lab[crop]
        if two:
            smoothed = _smooth_reference(sub, classes, sigma_px)
        else:
            # Classes absent from the neighbourhood blur to 0 and never win: skip them.
            local = classes[[i for i in range(classes.size) if key >> i & 1]]
            smoothed = _smooth_local(sub, local, sigma_px)
        out[core] = smoothed[_inner(core, crop)]
    return out


def _nearest_kept(lab: np.ndarray, drop: np.ndarray, margin_px: int = 16) -> np.ndarray:
    """``lab`` with every ``drop`` pixel given the label of the nearest pixel not dropped.

    The Euclidean feature transform runs on crops around the dropped pixels only. A crop
    is widened by ``margin_px``; a dropped pixel whose nearest kept pixel (in the crop)
    lies farther away than the crop's inner edges is redone with a 4x wider margin, so
    the answer is the same as on the whole image (up to the choice among equidistant
    kept pixels).
    """
    h, w = lab.shape
    out = lab.copy()
    block = 128
    rows = np.arange(0, h, block)
    cols = np.arange(0, w, block)
    todo = drop
    while True:
        active = np.logical_or.reduceat(np.logical_or.reduceat(todo, rows, axis=0), cols, axis=1)
        if not active.any():
            return out
        failed = np.zeros_like(drop)
        for core, crop, _ in _block_runs(active, block, (h, w), margin_px):
            sub_drop = drop[crop]
            if sub_drop.all():
                failed[core] = todo[core]
                continue
            dist, (iy, ix) = ndi.distance_transform_edt(sub_drop, return_indices=True)
            inner = _inner(core, crop)
            want = todo[core]
            # Distance from each core pixel to the crop's edges that are not image edges.
            yy = np.arange(core[0].start, core[0].stop)[:, None]
            xx = np.arange(core[1].start, core[1].stop)[None, :]
            room = np.full(want.shape, np.inf)
            if crop[0].start > 0:
                room = np.minimum(room, yy - crop[0].start + 1)
            if crop[0].stop < h:
                room = np.minimum(room, crop[0].stop - yy)
            if crop[1].start > 0:
                room = np.minimum(room, xx - crop[1].start + 1)
            if crop[1].stop < w:
                room = np.minimum(room, crop[1].stop - xx)
            good = want & (dist[inner] <= room)
            src = lab[crop][iy[inner], ix[inner]]
            out[core][good] = src[good]
            failed[core] = want & ~good
        todo = failed
        margin_px *= 4


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
    for c in _classes(lab):
        inside = lab == c
        comp, n = ndi.label(inside, structure=_EIGHT)
        if n == 0 or (n == 1 and np.count_nonzero(inside) >= min_region_px):
            continue
        sizes = np.bincount(comp.ravel())
        small = sizes < min_region_px
        small[0] = False
        if small.any():
            drop |= small[comp]
    if not drop.any() or drop.all():
        return lab.copy()
    return _nearest_kept(lab, drop)


def _holes(inside: np.ndarray) -> np.ndarray:
    """``binary_fill_holes(inside) & ~inside``, computed on the bounding box of ``inside``.

    A hole lies inside the bounding box (from any pixel outside it a straight line
    reaches the border without meeting ``inside``), and the parts of the complement
    4-connected to the box's edge are connected to the image border too.
    """
    holes = np.zeros(inside.shape, dtype=bool)
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    if rows.size < 3 or cols.size < 3:
        return holes
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    comp, n = ndi.label(~inside[box])  # 4-connected, as binary_fill_holes
    if n == 0:
        return holes
    open_ = np.zeros(n + 1, dtype=bool)
    for edge in (comp[0], comp[-1], comp[:, 0], comp[:, -1]):
        open_[edge] = True
    if open_[1:].all():
        return holes
    enclosed = ~open_
    enclosed[0] = False
    holes[box] = enclosed[comp]
    return holes


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
    todo = [c for c in _classes(lab) if c != 0] if classes is None else list(classes)
    for c in todo:
        inside = out == c
        if not inside.any():
            continue
        holes = _holes(inside)
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
