"""How large an image's particles are in pixels, so the particle model sees them at the
size it was trained on -- with or without a pixel size.

The particle model is scale-free: it was trained on particles 6-48 px across at its
input, from survey images (2-4 nm particles at 0.3-1 nm/px, 5-10 px each) to
lattice-resolving ones. An image is zoomed so that its typical particle is about
:data:`TARGET_DIAMETER_PX` across; a survey image is never blown up to lattice
resolution (at most :data:`MAX_ZOOM`), a finely sampled one is reduced.

The typical size comes from a Laplacian-of-Gaussian blob search: the scale-normalised
response ``s^2 LoG_s`` of a disc of radius ``R`` peaks at ``s = R / sqrt(2)``. Over a
geometric series of ``s``, blobs are the local maxima of ``|s^2 LoG_s|`` in space *and*
scale (either polarity: particles are dark in bright field, bright in HAADF) that reach
:data:`RELATIVE_BLOB_STRENGTH` of the strongest ones; the median of their scales gives the
diameter ``2 sqrt(2) s``. It runs on a central crop of at most :data:`CROP_PX` px at full
resolution (small particles are not averaged away), and again on the image binned by 2
while the answer sits at the largest scale searched. Without such blobs (no contrast at
any scale above the noise) the image is left at its own sampling.
"""

from __future__ import annotations

import math

import numpy as np

#: Particle diameter (px) the model sees best: the middle (geometric) of its training range.
TARGET_DIAMETER_PX = 16.0
#: Largest up-sampling (survey images stay near their own sampling).
MAX_ZOOM = 2.0
#: Smallest zoom (a 1000 px particle is reduced to ~16 px at most this far).
MIN_ZOOM = 1.0 / 64.0
#: LoG scales tried (sigma, px of the analysed image).
SIGMAS_PX = tuple(float(s) for s in np.geomspace(0.7, 28.0, 18))
#: Blobs are maxima reaching this fraction of the strongest ones (99.5th percentile).
RELATIVE_BLOB_STRENGTH = 0.6
#: ... and standing this many robust standard deviations above the response's noise.
MIN_BLOB_SIGMAS = 6.0
#: Side of the central crop analysed (px), and how often it may be binned by 2.
CROP_PX = 512
MAX_BINNING_STEPS = 5


def _crop(image: np.ndarray) -> np.ndarray:
    h, w = image.shape
    r0, c0 = max(0, (h - CROP_PX) // 2), max(0, (w - CROP_PX) // 2)
    return np.asarray(image[r0 : r0 + CROP_PX, c0 : c0 + CROP_PX], dtype=np.float32)


def _bin2(image: np.ndarray) -> np.ndarray:
    h, w = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    return image[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def _blob_sigma(img: np.ndarray) -> float | None:
    """Median LoG scale (px) of the strongest scale-space maxima of ``img``, or None."""
    from scipy import ndimage as ndi

    lo, hi = np.percentile(img, [1, 99])
    if hi <= lo:
        return None
    img = (img - lo) / (hi - lo)
    sigmas = [s for s in SIGMAS_PX if 6 * s <= min(img.shape)]
    if len(sigmas) < 3:
        return None
    stack = np.stack([np.abs(s * s * ndi.gaussian_laplace(img, s, mode="reflect")) for s in sigmas])
    noise = np.median(stack.reshape(len(sigmas), -1), axis=1) * 1.4826
    peaks = (stack == ndi.maximum_filter(stack, size=(3, 5, 5), mode="nearest")) & (
        stack > MIN_BLOB_SIGMAS * noise[:, None, None]
    )
    # Interior scales only: an edge answers equally at every scale (no maximum in scale),
    # a blob most strongly at its own.
    peaks[0] = peaks[-1] = False
    scale_idx, rows, cols = np.nonzero(peaks)
    margin = np.asarray(sigmas)[scale_idx] * 2
    inside = (
        (rows >= margin) & (cols >= margin)
        & (rows < img.shape[0] - margin) & (cols < img.shape[1] - margin)
    )  # fmt: skip
    scale_idx, rows, cols = scale_idx[inside], rows[inside], cols[inside]
    if scale_idx.size == 0:
        return None
    strength = stack[scale_idx, rows, cols]
    strong = strength >= RELATIVE_BLOB_STRENGTH * np.percentile(strength, 99.5)
    return float(np.median(np.asarray(sigmas)[scale_idx[strong]]))


def blob_diameter_px(image: np.ndarray) -> float | None:
    """Diameter (px of ``image``) of its dominant blobs, or None when none stand out."""
    full, factor = np.asarray(image, dtype=np.float32), 1
    sigma = None
    for _ in range(MAX_BINNING_STEPS + 1):
        sigma = _blob_sigma(_crop(full))
        if sigma is None:
            return None
        # At the largest scale searched, the blobs may be larger still: bin and look again.
        if sigma < 0.8 * SIGMAS_PX[-1] or min(full.shape) < 24 * SIGMAS_PX[-1]:
            break
        full, factor = _bin2(full), factor * 2
    return 2.0 * math.sqrt(2.0) * sigma * factor


def particle_zoom(image: np.ndarray) -> tuple[float, float | None]:
    """``(zoom, blob diameter px)``: the factor to resample ``image`` by (1 = as it is)."""
    diameter = blob_diameter_px(image)
    if diameter is None:
        return 1.0, None
    zoom = float(np.clip(TARGET_DIAMETER_PX / diameter, MIN_ZOOM, MAX_ZOOM))
    # Within 15 % of the target: leave the image as it is (no needless resampling).
    if abs(math.log(zoom)) < math.log(1.15):
        zoom = 1.0
    return zoom, diameter
