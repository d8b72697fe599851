"""Resampling between pixel sizes: image -> model's working sampling -> back.

Pixel ``i`` of an image with pixel size ``p`` covers ``[i*p, (i+1)*p]`` nm, so its centre
is at ``(i + 0.5) * p``. Resampling from ``p_from`` to ``p_to`` keeps that physical frame:
output pixel ``j`` samples the input at ``(j + 0.5) * p_to / p_from - 0.5``. Because the
mapping uses the exact pixel-size ratio (never a ratio of rounded shapes), mapping a
working-grid prediction back with ``output_shape=original.shape`` lands every value on the
physical position it came from, whatever the rounding of the working grid's shape.

Down-sampling is anti-aliased (a cubic kernel stretched by the reduction factor, as PIL
and torch do); up-sampling is bicubic (smooth, interpolating). The arithmetic runs in
torch on the CPU in float32: ~10x faster than scipy's spline path on a 2-core machine and
with no float64 copy of an 8192^2 image.
"""

from __future__ import annotations

import math

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

    Returns
    -------
    float32 array of shape ``output_shape`` (with the leading C axis for a stack).
    """
    import torch
    from torch.nn import functional as F

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
    if abs(factor - 1.0) < _IDENTITY_TOL and tuple(out_hw) == tuple(in_hw):
        return arr.astype(np.float32, copy=True)

    src = np.ascontiguousarray(arr, dtype=np.float32)
    x = torch.from_numpy(src)
    x = x[None, None] if arr.ndim == 2 else x[None]
    # torch maps dst -> src as (j + 0.5) * factor - 0.5 when given scale_factor and
    # recompute_scale_factor=False, and makes floor(n / factor) pixels. Pad the end so
    # that count reaches out_hw (the padded rows only feed outputs beyond the input's
    # last pixel centre), then crop.
    # (torch rounds n_in * (1 / factor) in its own arithmetic: keep a margin of 2 px.)
    pads = []
    for n_in, n_want in zip(in_hw, out_hw):
        natural = math.floor(n_in / factor)
        pads.append(0 if natural - 2 >= n_want else math.ceil((n_want - natural + 3) * factor) + 2)
    if any(pads):
        x = F.pad(x, (0, pads[1], 0, pads[0]), mode="replicate")
    with torch.inference_mode():
        y = F.interpolate(
            x,
            scale_factor=(1.0 / factor, 1.0 / factor),
            mode="bicubic",
            align_corners=False,
            antialias=factor > 1.0,
            recompute_scale_factor=False,
        )
    y = y[0, :, : out_hw[0], : out_hw[1]]
    out = y.numpy()
    out = out[0] if arr.ndim == 2 else out
    return np.ascontiguousarray(out)
