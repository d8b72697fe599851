"""Non-rigid (tile-wise) drift: what is left after the rigid shift, tile by tile.

Scan distortions and specimen creep move parts of a frame differently. After the rigid
drift (:mod:`.registration`), each frame is cut into ``n x n`` overlapping tiles (centres
evenly spaced, each tile twice the spacing wide); every tile of the rigidly aligned frame
is registered against the same tile of the registered average (:func:`.registration.measure`,
within 2 px), giving a residual content shift per tile. Tiles that do not correlate (a
vacuum corner, a damaged region) take the median of the others. The residuals become a
smooth displacement field by cubic-spline interpolation between the tile centres
(constant beyond the outermost centres): :func:`displacement_map`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .._progress import ProgressGenerator
from .registration import (
    DEFAULT_LOWPASS_CYCLES_PER_PX,
    MIN_PEAK_TO_NOISE,
    Registration,
    _Spectra,
    aligned_frame,
    iter_registered_average,
    measure,
)

#: Search radius for a tile's residual shift after the rigid drift (px).
TILE_RADIUS_PX = 2.0


def tile_layout(
    shape: tuple[int, int], tiles: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Tile centre rows, centre cols and the tile shape for ``tiles x tiles`` tiles."""
    centres = []
    sizes = []
    for n in shape:
        spacing = n / (tiles + 1)
        centres.append(spacing * np.arange(1, tiles + 1))
        sizes.append(int(2 * spacing) // 2 * 2)
    return centres[0], centres[1], (sizes[0], sizes[1])


def _cut(image: np.ndarray, centre: tuple[float, float], size: tuple[int, int]) -> np.ndarray:
    r0 = round(centre[0] - size[0] / 2)
    c0 = round(centre[1] - size[1] / 2)
    r0 = min(max(r0, 0), image.shape[0] - size[0])
    c0 = min(max(c0, 0), image.shape[1] - size[1])
    return image[r0 : r0 + size[0], c0 : c0 + size[1]]


def tile_shifts(
    frame: np.ndarray,
    average: np.ndarray,
    centres: tuple[np.ndarray, np.ndarray],
    size: tuple[int, int],
    spectra: _Spectra,
    upsample: int,
) -> np.ndarray:
    """(n, n, 2) residual content shift of each tile of ``frame`` against ``average``."""
    ys, xs = centres
    out = np.full((len(ys), len(xs), 2), np.nan)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            ref = spectra(_cut(average, (y, x), size))
            mov = spectra(_cut(frame, (y, x), size))
            shift, quality = measure(
                ref, mov, spectra.weight, np.zeros(2), TILE_RADIUS_PX, upsample
            )
            if quality >= MIN_PEAK_TO_NOISE:
                out[i, j] = shift
    bad = np.isnan(out[..., 0])
    if bad.all():
        return np.zeros_like(out)
    out[bad] = np.nanmedian(out[~bad], axis=0)
    return out


def displacement_map(
    field_px: np.ndarray, centres: tuple[np.ndarray, np.ndarray], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Dense (rows, cols) float32 displacement from the per-tile field (spline)."""
    from scipy.interpolate import RectBivariateSpline

    ys, xs = centres
    rows = np.clip(np.arange(shape[0]), ys[0], ys[-1])
    cols = np.clip(np.arange(shape[1]), xs[0], xs[-1])
    k = min(3, len(ys) - 1)
    out = []
    for axis in (0, 1):
        spline = RectBivariateSpline(ys, xs, field_px[..., axis], kx=k, ky=k)
        out.append(spline(rows, cols).astype(np.float32))
    return out[0], out[1]


def iter_tile_fields(
    stack: Any, registration: Registration, tiles: int, upsample: int
) -> ProgressGenerator[Registration]:
    """Add the tile-wise residual field to a rigid ``registration`` (yields frame numbers)."""
    average_gen = iter_registered_average(stack, registration)
    while True:
        try:
            next(average_gen)
        except StopIteration as stop:
            average, _count = stop.value
            break
    average = np.where(np.isfinite(average), average, np.nanmean(average))
    ys, xs, size = tile_layout(stack.frame_shape, tiles)
    spectra = _Spectra(size, DEFAULT_LOWPASS_CYCLES_PER_PX)
    fields = np.zeros((len(stack), tiles, tiles, 2))
    for t in range(len(stack)):
        frame = aligned_frame(stack.frame(t), registration.drift_px[t])
        fields[t] = tile_shifts(frame, average, (ys, xs), size, spectra, upsample)
        yield t
    return dataclasses.replace(registration, field_px=fields, tile_centres_px=(ys, xs))
