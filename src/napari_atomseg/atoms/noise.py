"""How noisy an image is, for the atom finder's noise-adapted threshold.

At low dose the network's lattice prior fills empty hollows of a lattice or a particle
with columns of confidence 0.5-0.6, where real columns of the same image reach 0.7-0.9
(docs/atoms.md, "Noise-adapted threshold"). The one threshold chosen for all images (0.4)
keeps those. :func:`noise_level` measures, from the image alone, the pixel noise against
the image's column contrast; :func:`noise_adapted_threshold` raises the threshold on a
ramp as that level rises. Qt-free and cheap (about 0.05 s for 1024^2).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from ..backend.normalise import subtract_background
from ..errors import InputError

#: Sampling the noise is referred to (nm/px): the default model's working sampling, so a
#: finely sampled image is not called noisier for having more, noisier pixels.
REFERENCE_PIXEL_NM = 0.03
#: Scale of the slowly varying background (a plane plus a Gaussian,
#: :func:`~napari_atomseg.backend.normalise.subtract_background`) taken off before the
#: contrast is measured (nm; the same 1.2 nm the default model subtracts from its input).
BACKGROUND_NM = 1.2
#: At most this many values go into a median or percentile (a regular subsample beyond).
_MAX_SAMPLES = 100_000
#: Side of the tiles a large image is measured on (px).
TILE_PX = 256

# Immerkaer's noise estimator: a difference of two Laplacians that cancels smooth signal;
# its response to white noise of std s has std 6 s.
_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def pixel_noise_sigma(image: np.ndarray) -> float:
    """Standard deviation of the pixel noise of a 2-D image (robust: the MAD of the
    response of Immerkaer's kernel, so columns and edges barely count)."""
    return _mad_sigma(_kernel_response(_as_image(image)).ravel())


def noise_level(image: np.ndarray, pixel_size_nm: float | None) -> float | None:
    """Pixel noise at the reference sampling against the image's column contrast.

    The noise (:func:`pixel_noise_sigma`, scaled to :data:`REFERENCE_PIXEL_NM` as white
    noise averages) divided by the 1-99 % range of the image smoothed to the reference
    sampling, after the slowly varying background (:data:`BACKGROUND_NM`) is taken off.
    On the benchmark's synthetic HAADF images: about 0.02-0.1 at moderate dose, 0.1-0.7
    at low dose; the real Pt single-atom images 0.16-0.37 (thick carbon texture against
    faint atoms). Images larger than :data:`TILE_PX` x 2 are measured on four tiles of
    :data:`TILE_PX`^2 spread over them (0.03 s for 1024^2 instead of 0.08 s for the
    whole). None without a pixel size or for a flat image.
    """
    if pixel_size_nm is None or not np.isfinite(pixel_size_nm) or pixel_size_nm <= 0:
        return None
    ps = float(pixel_size_nm)
    responses, spans = [], []
    for tile in _tiles(_as_image(image)):
        responses.append(_kernel_response(tile).ravel())
        flat = subtract_background(tile, BACKGROUND_NM / ps)
        spans.append(ndi.gaussian_filter(flat, REFERENCE_PIXEL_NM / ps).ravel())
    sigma = _mad_sigma(np.concatenate(responses)) * ps / REFERENCE_PIXEL_NM
    diff = np.concatenate(spans)
    step = max(1, math.ceil(diff.size / _MAX_SAMPLES))
    lo, hi = np.percentile(diff[::step], [1.0, 99.0])
    span = float(hi - lo)
    if not np.isfinite(span) or span <= 0 or not np.isfinite(sigma):
        return None
    return sigma / span


def _as_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2 or min(img.shape) < 3:
        raise InputError(f"noise: expected a 2-D image of at least 3x3, got shape {img.shape}")
    return img


def _tiles(img: np.ndarray) -> list[np.ndarray]:
    """The whole image, or up to 2 x 2 tiles of TILE_PX^2 spread evenly over a large one."""
    h, w = img.shape
    if h <= 2 * TILE_PX and w <= 2 * TILE_PX:
        return [img]
    ys = [0] if h <= 2 * TILE_PX else np.linspace(0, h - TILE_PX, 4)[1:3].astype(int)
    xs = [0] if w <= 2 * TILE_PX else np.linspace(0, w - TILE_PX, 4)[1:3].astype(int)
    th = h if h <= 2 * TILE_PX else TILE_PX
    tw = w if w <= 2 * TILE_PX else TILE_PX
    return [img[y : y + th, x : x + tw] for y in ys for x in xs]


def _kernel_response(img: np.ndarray) -> np.ndarray:
    return ndi.convolve(img, _KERNEL, mode="reflect")[1:-1, 1:-1]


def _mad_sigma(response: np.ndarray) -> float:
    step = max(1, math.ceil(response.size / _MAX_SAMPLES))
    r = response[::step]
    med = float(np.median(r))
    return 1.4826 * float(np.median(np.abs(r - med))) / 6.0


def check_noise_ramp(ramp: object) -> tuple[float, float]:
    """The two noise levels of a ramp as floats, or InputError naming the problem."""
    try:
        lo, hi = (float(v) for v in ramp)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise InputError(f"noise ramp: expected two levels, got {ramp!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo < hi):
        raise InputError(f"noise ramp: expected two levels 0 <= low < high, got {ramp!r}")
    return lo, hi


def noise_adapted_threshold(
    threshold: float, noisy_threshold: float, ramp: tuple[float, float], level: float | None
) -> float:
    """``threshold`` up to ``level = ramp[0]``, ``noisy_threshold`` from ``ramp[1]``,
    linear between; ``threshold`` when the level is not known."""
    lo, hi = check_noise_ramp(ramp)
    if level is None:
        return float(threshold)
    t = min(max((level - lo) / (hi - lo), 0.0), 1.0)
    return float(threshold + t * (noisy_threshold - threshold))
