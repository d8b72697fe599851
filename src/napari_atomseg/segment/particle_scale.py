"""How large an image's particles are in pixels, so the particle model sees them at the
size it was trained on -- with or without a pixel size.

The particle model is scale-free: it was trained on particles 6-48 px across at its
input, from survey images (2-4 nm particles at 0.3-1 nm/px, 5-10 px each) to
lattice-resolving ones. An image is zoomed so that its typical particle is about
:data:`TARGET_DIAMETER_PX` across; a survey image is never blown up to lattice
resolution (at most :data:`MAX_ZOOM`), a finely sampled one is reduced.

The typical size is the scale of the strongest blobs: the scale-normalised Laplacian of
Gaussian ``s^2 LoG_s`` responds most to a disc of radius ``R`` at ``s = R / sqrt(2)``.
For each of a geometric series of ``s`` the response's extreme tail (the 99.7th
percentile of its magnitude, either polarity: particles are dark in bright field, bright
in HAADF) is divided by its median magnitude -- texture and noise give a Gaussian-like
response whose tail-to-median ratio is about 4.5 at every scale, particles a heavy tail
at their own scale. The scale with the largest ratio wins when that ratio clearly exceeds
the Gaussian one; otherwise the image is left at its own sampling.
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
SIGMAS_PX = tuple(float(s) for s in np.geomspace(0.9, 48.0, 20))
#: A blob scale counts when its tail-to-median ratio exceeds this (Gaussian: ~4.5).
MIN_TAIL_RATIO = 7.0
#: Images are analysed at most this large (binned by 2 until they fit).
MAX_ANALYSIS_PX = 1024


def _binned(image: np.ndarray) -> tuple[np.ndarray, int]:
    img = np.asarray(image, dtype=np.float32)
    factor = 1
    while max(img.shape) > MAX_ANALYSIS_PX:
        h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
        img = img[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        factor *= 2
    return img, factor


def blob_diameter_px(image: np.ndarray) -> float | None:
    """Diameter (px of ``image``) of its dominant blobs, or None when none stand out."""
    from scipy import ndimage as ndi

    img, factor = _binned(image)
    lo, hi = np.percentile(img, [1, 99])
    if hi <= lo:
        return None
    img = (img - lo) / (hi - lo)
    best, best_ratio = None, MIN_TAIL_RATIO
    for sigma in SIGMAS_PX:
        if 6 * sigma > min(img.shape):
            break
        response = np.abs(sigma * sigma * ndi.gaussian_laplace(img, sigma, mode="reflect"))
        margin = math.ceil(2 * sigma)
        inner = response[margin:-margin, margin:-margin] if margin else response
        if inner.size < 64:
            break
        tail, median = np.percentile(inner, [99.7, 50])
        ratio = float(tail / median) if median > 0 else 0.0
        if ratio > best_ratio:
            best, best_ratio = sigma, ratio
    if best is None:
        return None
    return 2.0 * math.sqrt(2.0) * best * factor


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
