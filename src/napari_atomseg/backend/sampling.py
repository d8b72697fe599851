"""Resampling between pixel sizes: image -> model's working sampling -> back.

Pixel ``i`` of an image with pixel size ``p`` covers ``[i*p, (i+1)*p]`` nm, so its centre
is at ``(i + 0.5) * p``. Resampling from ``p_from`` to ``p_to`` keeps that physical frame:
output pixel ``j`` samples the input at ``(j + 0.5) * p_to / p_from - 0.5``. Because the
mapping uses the exact pixel-size ratio (never a ratio of rounded shapes), mapping a
working-grid prediction back with ``output_shape=original.shape`` lands every value on the
physical position it came from, whatever the rounding of the working grid's shape.

The interpolation is separable: one sparse matrix per axis whose rows hold the weights of
a Catmull-Rom (Keys, a = -0.5) cubic kernel: smooth and interpolating when up-sampling;
stretched by the reduction factor when down-sampling, so it is also the anti-aliasing
low-pass (as PIL does). Rows are normalised to sum to one and the image is mirrored at
its edges. Two sparse products per band of rows cost about as much as torch's
interpolate on 2 cores, need no image-sized temporaries, and (unlike torch's kernels,
which copy the input when the rounded sizes happen to agree) always apply the exact
pixel-size ratio.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validate import MAX_IMAGE_PIXELS, check_pixel_size_nm
from ..errors import InputError

#: Largest up-sampling factor resample() accepts: beyond it the network would see
#: interpolated blur rather than data, and memory grows with the square of the factor.
MAX_UPSAMPLE = 4.0
#: Ratios closer to 1 than this are treated as "no resampling".
_IDENTITY_TOL = 1e-6


def resampled_shape(
    shape: tuple[int, int], from_pixel_size_nm: float, to_pixel_size_nm: float
) -> tuple[int, int]:
    """Shape of ``shape`` resampled from one pixel size to another (rounded, >= 1 px)."""
    ratio = from_pixel_size_nm / to_pixel_size_nm
    return tuple(max(1, round(n * ratio)) for n in shape)  # type: ignore[return-value]


def resample(
    image: np.ndarray,
    from_pixel_size_nm: float,
    to_pixel_size_nm: float,
    *,
    output_shape: tuple[int, int] | None = None,
    max_upsample: float = MAX_UPSAMPLE,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Resample a 2-D image (or a ``(C, H, W)`` stack) to another pixel size.

    Parameters
    ----------
    image
        2-D array, or 3-D ``(C, H, W)`` stack resampled channel by channel. Not modified.
    from_pixel_size_nm, to_pixel_size_nm
        Pixel size of ``image`` and of the result, in nm per pixel.
    output_shape
        (H, W) of the result; default :func:`resampled_shape`. Pass the original shape
        to map a working-grid result back exactly onto the original grid.
    max_upsample
        Refuse (InputError) to up-sample by more than this factor.
    out
        Optional float32 array of the result's shape to write into (saves one
        result-sized allocation when mapping big predictions back).

    Returns
    -------
    float32 array of shape ``output_shape`` (with the leading C axis for a stack).
    The work is done in bands of rows, so besides the result only a few rows of
    temporaries exist at any time (an 8192^2 uint16 image is never converted whole).
    """

    p_from = check_pixel_size_nm(from_pixel_size_nm, "from_pixel_size_nm")
    p_to = check_pixel_size_nm(to_pixel_size_nm, "to_pixel_size_nm")
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise InputError(
            f"resample: expected a 2-D image or (C, H, W) stack, got shape {arr.shape}"
        )
    in_hw = arr.shape[-2:]
    factor = p_to / p_from  # input pixels per output pixel
    if 1.0 / factor > max_upsample * (1 + 1e-9):
        raise InputError(
            f"resample: up-sampling {p_from:g} nm/px to {p_to:g} nm/px is a factor "
            f"{1 / factor:.2f} > {max_upsample:g}; the image is too coarse for this model "
            "(check the pixel size, or use a model trained at a coarser sampling)"
        )
    out_hw = (
        tuple(output_shape) if output_shape is not None else resampled_shape(in_hw, p_from, p_to)
    )
    if len(out_hw) != 2 or min(out_hw) < 1:
        raise InputError(f"resample: output_shape must be two positive sizes, got {output_shape}")
    n_out = math.prod(out_hw) * (arr.shape[0] if arr.ndim == 3 else 1)
    if n_out > MAX_IMAGE_PIXELS * 4:
        raise InputError(
            f"resample: the result would have {n_out:,} values; crop or bin the image first"
        )
    want_shape = (*arr.shape[:-2], *out_hw)
    if out is None:
        out = np.empty(want_shape, np.float32)
    elif out.shape != want_shape or out.dtype != np.float32:
        raise InputError(f"resample: out must be float32 {want_shape}, got {out.dtype} {out.shape}")
    if abs(factor - 1.0) < _IDENTITY_TOL and tuple(out_hw) == tuple(in_hw):
        out[...] = arr
        return out
    ry = _weight_matrix(in_hw[0], out_hw[0], factor)
    rx_t = _weight_matrix(in_hw[1], out_hw[1], factor).T.tocsr()
    if arr.ndim == 2:
        _apply(arr, ry, rx_t, out)
    else:
        for c in range(arr.shape[0]):
            _apply(arr[c], ry, rx_t, out[c])
    return out


def _keys_cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    x = np.abs(x)
    inner = (a + 2) * x**3 - (a + 3) * x**2 + 1
    outer = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return np.where(x <= 1, inner, np.where(x < 2, outer, 0.0))


def _weight_matrix(n_in: int, n_out: int, factor: float) -> Any:
    """Sparse (n_out, n_in) interpolation matrix for output pixel centres (j+0.5)*factor-0.5."""
    from scipy import sparse

    centre = (np.arange(n_out, dtype=np.float64) + 0.5) * factor - 0.5
    stretch = max(factor, 1.0)  # down-sampling: the kernel widens into a low-pass filter
    radius = 2.0 * stretch
    left = np.floor(centre - radius).astype(np.int64) + 1
    n_taps = int(np.ceil(2 * radius)) + 1
    idx = left[:, None] + np.arange(n_taps)[None, :]
    w = _keys_cubic((idx - centre[:, None]) / stretch)
    w /= w.sum(axis=1, keepdims=True)
    # Mirror at the edges (half-sample symmetric: -1 -> 0, n -> n-1), any distance.
    m = np.mod(idx, 2 * n_in)
    m = np.where(m >= n_in, 2 * n_in - 1 - m, m)
    rows = np.repeat(np.arange(n_out), n_taps)
    return sparse.csr_matrix((w.ravel().astype(np.float32), (rows, m.ravel())), shape=(n_out, n_in))


def _apply(img: np.ndarray, ry: Any, rx_t: Any, out: np.ndarray, band: int = 256) -> None:
    """out = ry @ img @ rx_t, computed in bands of ``band`` output rows."""
    indptr, indices = ry.indptr, ry.indices
    for r0 in range(0, out.shape[0], band):
        r1 = min(r0 + band, out.shape[0])
        cols = indices[indptr[r0] : indptr[r1]]
        lo, hi = int(cols.min()), int(cols.max()) + 1
        rows = np.asarray(img[lo:hi], dtype=np.float32)
        out[r0:r1] = ry[r0:r1, lo:hi] @ (rows @ rx_t)


def resample_labels(
    labels: np.ndarray,
    from_pixel_size_nm: float,
    to_pixel_size_nm: float,
    *,
    output_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Nearest-neighbour resampling of an integer label/class map (same frame as :func:`resample`).

    Returns an array of the input's dtype; no new label values are ever invented.
    """
    p_from = check_pixel_size_nm(from_pixel_size_nm, "from_pixel_size_nm")
    p_to = check_pixel_size_nm(to_pixel_size_nm, "to_pixel_size_nm")
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise InputError(f"resample_labels: expected a 2-D label map, got shape {arr.shape}")
    out_hw = (
        tuple(output_shape)
        if output_shape is not None
        else resampled_shape(arr.shape, p_from, p_to)
    )
    factor = p_to / p_from
    rows = np.clip(
        np.floor((np.arange(out_hw[0]) + 0.5) * factor).astype(np.int64), 0, arr.shape[0] - 1
    )
    cols = np.clip(
        np.floor((np.arange(out_hw[1]) + 0.5) * factor).astype(np.int64), 0, arr.shape[1] - 1
    )
    return arr[np.ix_(rows, cols)]
