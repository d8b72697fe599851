"""Pre-processing shared by both segmentation methods (U-Net and Bragg filter).

Three steps, as in Sadre, Ophus et al. (Microsc. Microanal. 27, 2021), each usable alone:

- :func:`flatfield` -- divide (or subtract) a low-order polynomial surface fitted to the
  image, removing uneven illumination and thickness ramps;
- :func:`remove_spikes` -- replace isolated outliers (X-ray hits, hot pixels) by the local
  median, leaving every other pixel untouched (a plain median filter is available too);
- :func:`standardise` -- zero mean, unit standard deviation (or robust median/MAD).

:func:`preprocess` chains them with the options of :class:`PreprocessOptions`.
Every function returns a new float32 array and never modifies its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.polynomial import legendre
from scipy import ndimage as ndi

from .._validate import as_image2d, check_range
from ..backend.normalisation import stats_sample
from ..errors import InputError

#: Image statistics of the segmentation (noise levels, thresholds) are taken on at most
#: this many pixels (:func:`~napari_atomseg.backend.normalisation.stats_sample`).
STATS_MAX_VALUES = 1 << 20

#: The surface is fitted on a block-averaged copy at most this many pixels on a side:
#: a low-order polynomial needs few samples, and this keeps a 4096^2 fit under ~50 ms.
_FIT_SIDE_PX = 128
#: 1.4826 * MAD estimates the standard deviation of Gaussian noise.
_MAD_TO_SIGMA = 1.4826


def _block_mean(image: np.ndarray, max_side_px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block-average ``image`` to at most ``max_side_px`` per side.

    Returns the small image and the row / column centres of its blocks in the original
    pixel coordinates (so the fit can be evaluated on the full grid exactly).
    """
    h, w = image.shape
    by = max(1, int(np.ceil(h / max_side_px)))
    bx = max(1, int(np.ceil(w / max_side_px)))
    hh, ww = h // by, w // bx
    small = image[: hh * by, : ww * bx].reshape(hh, by, ww, bx).mean(axis=(1, 3), dtype=np.float64)
    rows = np.arange(hh) * by + (by - 1) / 2.0
    cols = np.arange(ww) * bx + (bx - 1) / 2.0
    return small, rows, cols


def fit_polynomial_surface(image: np.ndarray, order: int = 2) -> np.ndarray:
    """Least-squares polynomial surface of total ``order`` fitted to ``image``.

    Uses a Legendre basis on coordinates scaled to [-1, 1] (well conditioned up to order
    ~6). The fit runs on a block-averaged copy of at most 128 px per side; the surface is
    evaluated on the full pixel grid. Returns a float64 array of the image's shape.
    """
    img = as_image2d(image)
    order = int(check_range(order, 0, 6, "flatfield_order"))
    h, w = img.shape
    small, rows, cols = _block_mean(img, _FIT_SIDE_PX)
    to_unit_y = 2.0 / max(h - 1, 1)
    to_unit_x = 2.0 / max(w - 1, 1)
    yy = rows * to_unit_y - 1.0
    xx = cols * to_unit_x - 1.0
    # Terms P_i(y) P_j(x) with i + j <= order (total degree, like a Bezier patch of that order).
    terms = [(i, j) for i in range(order + 1) for j in range(order + 1 - i)]
    vy = legendre.legvander(yy, order)  # (hh, order+1)
    vx = legendre.legvander(xx, order)
    design = np.stack([np.outer(vy[:, i], vx[:, j]).ravel() for i, j in terms], axis=1)
    coef, *_ = np.linalg.lstsq(design, small.ravel(), rcond=None)
    # Evaluate separably on the full grid: sum_k c_k P_i(y) P_j(x).
    fy = legendre.legvander(np.arange(h) * to_unit_y - 1.0, order)
    fx = legendre.legvander(np.arange(w) * to_unit_x - 1.0, order)
    cmat = np.zeros((order + 1, order + 1))
    for c, (i, j) in zip(coef, terms):
        cmat[i, j] = c
    return fy @ cmat @ fx.T


def flatfield(
    image: np.ndarray, order: int = 2, mode: Literal["auto", "divide", "subtract"] = "auto"
) -> np.ndarray:
    """Remove uneven illumination by a polynomial surface of total degree ``order``.

    ``mode="divide"`` (as in the graphene paper) suits intensities proportional to the
    beam current (counts) and needs a surface that stays positive, otherwise it raises
    :class:`InputError`. ``"subtract"`` suits background-subtracted or signed data.
    ``"auto"`` divides when the surface stays above 5 % of its mean everywhere and
    subtracts otherwise. The result keeps the image's mean level.
    """
    img = as_image2d(image)
    if mode not in ("auto", "divide", "subtract"):
        raise InputError(f"flatfield mode: expected 'auto', 'divide' or 'subtract', got {mode!r}")
    surface = fit_polynomial_surface(img, order)
    mean = float(surface.mean())
    # A surface that crosses (or nears) zero would blow pixels up: such data are not
    # counts, and a division makes no sense.
    count_like = mean > 0 and float(surface.min()) > 0.05 * mean
    if mode == "divide" and not count_like:
        raise InputError(
            "flatfield: the fitted illumination surface is not positive everywhere (the image "
            "is not count-like, e.g. it was background-subtracted); use mode='subtract'"
        )
    if mode == "subtract" or not count_like:
        out = img - surface
        out += mean
    else:
        out = img / surface
        out *= mean
    return out.astype(np.float32)


def _median3(img: np.ndarray) -> np.ndarray:
    """Exact 3 x 3 median of a float32 image with mirror edges (= ``ndi.median_filter``).

    Sorting network instead of a rank filter (about 8x faster): sort each vertical
    triple into (low, mid, high); the median of the 9 pixels is then the median of
    (max of the 3 lows, median of the 3 mids, min of the 3 highs) of the neighbouring
    columns (Paeth, Graphics Gems, 1990). Only min/max are used, so the result is the
    same pixel value the rank filter picks, ties and all.
    """
    p = np.pad(img, 1, mode="reflect")  # numpy "reflect" = ndimage "mirror"
    a, b, c = p[:-2], p[1:-1], p[2:]
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    mid = np.minimum(hi, c)
    np.maximum(lo, mid, out=mid)
    np.minimum(lo, c, out=lo)
    np.maximum(hi, c, out=hi)
    lows = np.maximum(lo[:, :-2], lo[:, 1:-1])
    np.maximum(lows, lo[:, 2:], out=lows)
    highs = np.minimum(hi[:, :-2], hi[:, 1:-1])
    np.minimum(highs, hi[:, 2:], out=highs)
    mids = np.minimum(mid[:, :-2], mid[:, 1:-1])
    tmp = np.maximum(mid[:, :-2], mid[:, 1:-1])
    np.minimum(tmp, mid[:, 2:], out=tmp)
    np.maximum(mids, tmp, out=mids)
    # median(lows, mids, highs)
    np.maximum(lows, mids, out=tmp)
    np.minimum(tmp, highs, out=tmp)
    np.minimum(lows, mids, out=lows)
    np.maximum(lows, tmp, out=lows)
    return lows


def median_filter(image: np.ndarray, size_px: int = 3) -> np.ndarray:
    """Plain ``size_px`` x ``size_px`` median filter (mirror-padded edges)."""
    img = as_image2d(image)
    size_px = int(check_range(size_px, 1, 31, "median size_px"))
    if size_px == 3:
        return _median3(img)
    return ndi.median_filter(img, size=size_px, mode="mirror")


def remove_spikes(
    image: np.ndarray, threshold_sigma: float = 8.0, size_px: int = 3
) -> tuple[np.ndarray, int]:
    """Replace isolated outlier pixels (X-ray hits, hot/dead pixels) by the local median.

    A pixel is a spike when it differs from the ``size_px`` median of its neighbourhood by
    more than ``threshold_sigma`` noise standard deviations (estimated robustly from the
    median absolute deviation of that difference over the image). Unlike a plain median
    filter, every other pixel keeps its value, so the lattice contrast is not blurred.

    Returns ``(cleaned_image, n_spikes_replaced)``.
    """
    img = as_image2d(image)
    threshold_sigma = check_range(threshold_sigma, 1.0, 1e6, "spike threshold_sigma")
    size_px = int(check_range(size_px, 1, 31, "median size_px"))
    med = _median3(img) if size_px == 3 else ndi.median_filter(img, size=size_px, mode="mirror")
    diff = img - med
    sample = stats_sample(diff, STATS_MAX_VALUES)
    absdev = np.abs(sample - np.median(sample))
    sigma = _MAD_TO_SIGMA * float(np.median(absdev, overwrite_input=True))
    if sigma == 0.0:
        # Piecewise-constant images (masks, synthetic step images): fall back to the std.
        sigma = float(diff.std())
    if sigma == 0.0:
        return img, 0
    np.abs(diff, out=diff)
    spikes = diff > threshold_sigma * sigma
    # ``img`` is already a private float32 copy (as_image2d): replace in place.
    img[spikes] = med[spikes]
    return img, int(np.count_nonzero(spikes))


def standardise(image: np.ndarray, robust: bool = False) -> np.ndarray:
    """Zero mean and unit standard deviation (``robust``: median and 1.4826 * MAD)."""
    img = as_image2d(image)
    if robust:
        centre = float(np.median(img))
        scale = _MAD_TO_SIGMA * float(np.median(np.abs(img - centre)))
        if scale == 0.0:
            scale = float(img.std(dtype=np.float64))
    else:
        # float64 sums: squares of float32 values above ~1e19 overflow (the std became inf
        # and the whole image 0).
        centre = float(img.mean(dtype=np.float64))
        scale = float(img.std(dtype=np.float64))
    return ((img - centre) / scale).astype(np.float32)


@dataclass(frozen=True)
class PreprocessOptions:
    """Which pre-processing steps :func:`preprocess` applies, and how.

    Attributes
    ----------
    flatfield_order
        Total degree of the illumination surface (0-6); ``None`` skips flat-fielding.
    flatfield_mode
        ``"auto"`` (divide count-like data, else subtract), ``"divide"`` or ``"subtract"``.
    spike_threshold_sigma
        Outlier threshold of :func:`remove_spikes` in noise standard deviations; ``None``
        skips spike removal.
    median_size_px
        If set, a plain median filter of that size replaces spike removal (blurs).
    standardise
        Scale to zero mean and unit standard deviation at the end.
    robust_standardise
        Use median / MAD instead of mean / std.
    """

    flatfield_order: int | None = 2
    flatfield_mode: Literal["auto", "divide", "subtract"] = "auto"
    spike_threshold_sigma: float | None = 8.0
    median_size_px: int | None = None
    standardise: bool = True
    robust_standardise: bool = False


def preprocess(image: np.ndarray, options: PreprocessOptions | None = None) -> np.ndarray:
    """Spike removal (or median filter), flat-field, then standardisation.

    Spikes go first so that an X-ray hit cannot pull the illumination fit.
    Returns a new float32 array of the image's shape.
    """
    opts = options or PreprocessOptions()
    out = as_image2d(image)
    if opts.median_size_px:
        out = median_filter(out, opts.median_size_px)
    elif opts.spike_threshold_sigma is not None:
        out, n_spikes = remove_spikes(out, opts.spike_threshold_sigma)
        if n_spikes and float(out.max()) == float(out.min()):
            raise InputError(
                f"image: its only structure is {n_spikes} isolated outlier pixel(s) (X-ray "
                "hits, hot pixels); with those replaced it is constant: nothing to segment"
            )
    if opts.flatfield_order is not None:
        out = flatfield(out, opts.flatfield_order, opts.flatfield_mode)
    if opts.standardise:
        out = standardise(out, robust=opts.robust_standardise)
    return out
