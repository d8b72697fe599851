"""Input normalisations, named in model cards: the one place they are defined.

A card says ``input.normalisation: robust_zscore`` (or a mapping ``{name: ..., param:
value}``); training tasks call :func:`normalise` with the same name on every example and
inference calls it on the whole resampled image *before* tiling, so a tile is normalised
with the statistics of the full field of view, exactly as an untiled image would be.

All functions take a 2-D array and return a new float32 array; the input is never
modified. Statistics of very large images are taken on a regular sub-grid of at most
``STATS_MAX_PIXELS`` pixels, which changes a percentile by far less than the noise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import InputError

#: Percentiles/means are computed on a strided sub-grid of at most this many pixels.
STATS_MAX_PIXELS = 1 << 22
#: Spread below which an image counts as constant (a scale this small would blow up noise).
_EPS = 1e-8


def stats_sample(values: np.ndarray, max_values: int = STATS_MAX_PIXELS) -> np.ndarray:
    """At most ``max_values`` of ``values`` for a percentile, median or mean: a regular
    sub-grid of a 2-D array, a regular stride of anything else (a view; deterministic).
    A percentile of a million values differs from the full array's by far less than the
    noise of a micrograph, at a fraction of the cost of partitioning it all."""
    if values.size <= max_values:
        return values
    if values.ndim == 2:
        step = int(np.ceil(np.sqrt(values.size / max_values)))
        return values[::step, ::step]
    return values.reshape(-1)[:: int(np.ceil(values.size / max_values))]


def _finish(
    image: np.ndarray,
    center: float,
    scale: float,
    clip: float | None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    if not np.isfinite(scale) or scale <= _EPS:
        raise InputError(
            "image: has (almost) no contrast after normalisation statistics "
            f"(spread {scale:.3g}); is it blank or saturated?"
        )
    out = np.subtract(image, np.float32(center), dtype=np.float32, out=out)
    out *= np.float32(1.0 / scale)
    if clip is not None:
        np.clip(out, -clip, clip, out=out)
    return out


def robust_zscore(
    image: np.ndarray,
    low_pct: float = 1.0,
    high_pct: float = 99.0,
    clip: float | None = 20.0,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Median-centred, scaled so the ``low_pct``-``high_pct`` range spans about +-2.33.

    For Gaussian-distributed pixels the output equals the ordinary z-score; unlike it, a
    few hot pixels or a bright particle do not change the scale of the rest. Values are
    clipped to +-``clip`` so X-ray spikes cannot dominate a network's input.
    """
    view = stats_sample(image)
    lo, med, hi = np.percentile(view, [low_pct, 50.0, high_pct])
    # Width of the central interval of a unit normal with the same coverage.
    from scipy.special import ndtri

    width = float(ndtri(high_pct / 100.0) - ndtri(low_pct / 100.0))
    return _finish(image, float(med), float(hi - lo) / width, clip, out)


def zscore(
    image: np.ndarray, clip: float | None = None, *, out: np.ndarray | None = None
) -> np.ndarray:
    """Mean 0, standard deviation 1 (classic; sensitive to outliers)."""
    view = stats_sample(image)
    return _finish(
        image, float(view.mean(dtype=np.float64)), float(view.std(dtype=np.float64)), clip, out
    )


def percentile_range(
    image: np.ndarray,
    low_pct: float = 0.5,
    high_pct: float = 99.5,
    clip: float | None = 10.0,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Map the ``low_pct`` percentile to 0 and the ``high_pct`` percentile to 1."""
    view = stats_sample(image)
    lo, hi = np.percentile(view, [low_pct, high_pct])
    return _finish(image, float(lo), float(hi - lo), clip, out)


def minmax(image: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Map the minimum to 0 and the maximum to 1."""
    view = stats_sample(image)
    lo, hi = float(view.min()), float(view.max())
    return _finish(image, lo, hi - lo, None, out)


#: Block size of the background estimate: the Gaussian is applied to block means of about
#: sigma / this many pixels, which is exact enough for a background of that width and
#: costs a few ms instead of a 2-D filter with a kernel of hundreds of taps.
_BACKGROUND_BLOCK_PER_SIGMA = 4.0


def subtract_background(
    image: np.ndarray, sigma_px: float, *, out: np.ndarray | None = None
) -> np.ndarray:
    """``image`` minus its slowly varying background (a Gaussian of ``sigma_px``), float32.

    Removes what the atom model should not have to learn: thickness wedges, vacuum next to
    the support, contamination halos and detector drifts. Without it the normalisation's
    intensity range is set by the step between vacuum and a thick support, and single
    atoms on that support shrink to a few hundredths of the network's input range.

    The Gaussian is applied to block means (blocks of about ``sigma_px / 4`` pixels) and
    interpolated back linearly, row chunk by row chunk, so a huge image needs no more
    than a fraction of its own size in extra memory. ``out`` may be ``image`` itself (a
    float32 array the caller owns); the input is otherwise never modified.
    """
    from scipy import ndimage as ndi

    sigma = float(sigma_px)
    if not np.isfinite(sigma) or sigma <= 0:
        raise InputError(
            f"background sigma: expected a positive number of pixels, got {sigma_px!r}"
        )
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise InputError(f"subtract_background: expected a 2-D image, got shape {arr.shape}")
    if out is None:
        out = np.empty(arr.shape, np.float32)
    elif out.shape != arr.shape or out.dtype != np.float32:
        raise InputError(
            f"subtract_background: out must be float32 {arr.shape}, got {out.dtype} {out.shape}"
        )
    h, w = arr.shape
    # Blocks of about sigma/4 px, but at least 4 of them along each side when the image
    # allows it (the plane needs more than one block to be seen).
    f = max(1, min(int(sigma / _BACKGROUND_BLOCK_PER_SIGMA), min(h, w) // 4))
    ys, xs = np.arange(0, h, f), np.arange(0, w, f)
    # Block means (the last block of a row/column may be partial).
    small = np.add.reduceat(np.add.reduceat(arr, ys, axis=0, dtype=np.float64), xs, axis=1)
    ny = np.diff(np.append(ys, h)).astype(np.float64)
    nx = np.diff(np.append(xs, w)).astype(np.float64)
    small /= ny[:, None] * nx[None, :]
    cy = 0.5 * (ys + np.minimum(ys + f, h)) - 0.5
    cx = 0.5 * (xs + np.minimum(xs + f, w)) - 0.5
    # A plane first (least squares over the blocks, evaluated exactly at every pixel), then
    # the Gaussian on what is left: a reflected ramp would leave a band of +-slope*sigma
    # along the edges, and interpolating a ramp would bend it beyond the outer blocks.
    gy, gx = np.meshgrid(cy, cx, indexing="ij")
    design = np.stack([np.ones(small.size), gy.ravel(), gx.ravel()], axis=1)
    c0, c1, c2 = np.linalg.lstsq(design, small.ravel(), rcond=None)[0]
    rest = ndi.gaussian_filter(
        small - (c0 + c1 * gy + c2 * gx), sigma / f, mode="reflect", truncate=3.0
    )
    # The smooth rest back onto the pixel grid: linear between block centres, constant
    # beyond the outer ones; row chunks keep the extra memory small.
    cols = np.arange(w, dtype=np.float64)
    along_x = np.stack([np.interp(cols, cx, row) for row in rest])
    along_x += c0 + c2 * cols[None, :]
    along_x = along_x.astype(np.float32)
    rows = np.arange(h, dtype=np.float64)
    pos_y = np.interp(rows, cy, np.arange(len(ys), dtype=np.float64))
    i0 = np.floor(pos_y).astype(np.intp)
    i1 = np.minimum(i0 + 1, len(ys) - 1)
    t = (pos_y - i0).astype(np.float32)[:, None]
    ramp_y = (c1 * rows).astype(np.float32)[:, None]
    for r in range(0, h, 256):
        sl = slice(r, min(r + 256, h))
        bg = along_x[i0[sl]] * (1.0 - t[sl]) + along_x[i1[sl]] * t[sl]
        bg += ramp_y[sl]
        np.subtract(arr[sl], bg, out=out[sl], dtype=np.float32)
    return out


NORMALISATIONS: dict[str, Callable[..., np.ndarray]] = {
    "robust_zscore": robust_zscore,
    "zscore": zscore,
    "percentile_range": percentile_range,
    "minmax": minmax,
}


def parse_normalisation(spec: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Split a card's ``normalisation`` entry into (name, keyword arguments); validates both."""
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, Mapping) and "name" in spec:
        params = {k: v for k, v in spec.items() if k != "name"}
        name = spec["name"]
    else:
        raise InputError(
            f"normalisation: expected a name or a mapping with 'name', got {spec!r}; "
            f"known names: {sorted(NORMALISATIONS)}"
        )
    if name not in NORMALISATIONS:
        raise InputError(f"normalisation: unknown name {name!r}; known: {sorted(NORMALISATIONS)}")
    import inspect

    allowed = set(inspect.signature(NORMALISATIONS[name]).parameters) - {"image", "out"}
    bad = set(params) - allowed
    if bad:
        raise InputError(
            f"normalisation {name!r}: unknown parameter(s) {sorted(bad)}; allowed: {sorted(allowed)}"
        )
    return name, dict(params)


def normalise(
    image: np.ndarray,
    spec: str | Mapping[str, Any] = "robust_zscore",
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Apply the normalisation ``spec`` (a card's ``input.normalisation``) to a 2-D image.

    Parameters
    ----------
    image
        2-D array (not modified unless it is ``out``).
    spec
        A name of :data:`NORMALISATIONS` or a mapping ``{name: ..., param: value}``.
    out
        float32 array of the image's shape to write into; it may be ``image`` itself when
        the caller owns a float32 copy (inference does that to save memory).

    Returns
    -------
    numpy.ndarray
        A new float32 array of the same shape, or ``out``.

    Raises
    ------
    InputError
        For an unknown name or parameter, or an image without contrast.
    """
    name, params = parse_normalisation(spec)
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise InputError(f"normalise: expected a 2-D image, got shape {arr.shape}")
    if out is not None and (out.shape != arr.shape or out.dtype != np.float32):
        raise InputError(f"normalise: out must be float32 {arr.shape}, got {out.dtype} {out.shape}")
    return NORMALISATIONS[name](arr, **params, out=out)
