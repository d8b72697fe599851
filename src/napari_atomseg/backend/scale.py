"""Estimating the pixel size of an uncalibrated micrograph from what a model was trained on.

A model sees its training images at one working pixel size, so what matters for an
uncalibrated image is the pixel size that makes its features look like the training
data. Two features are measured in pixels, from one averaged power spectrum:

- ``feature_sigma_px``: the width of the autocorrelation's central peak. For Gaussian
  blobs of standard deviation ``s`` (atoms seen through a probe, or a phase-contrast
  speckle) the autocorrelation is ``exp(-r^2 / (4 s^2))`` near zero lag; the zero lag
  itself (white detector noise) and the fast-scan row (scan-line noise) are left out, and
  a constant absorbs the dip that lattice neighbours cause. Fitted over lags 1 to the
  first minimum.
- ``period_px``: the dominant periodicity, the strongest ring of the radially averaged
  power spectrum above a smooth background; ``None`` when no ring stands out (isolated
  atoms, amorphous film).

The card's ``input.scale_reference`` holds the same two measurements, in nm, made on the
model's held-out training examples (:func:`scale_reference_from_examples`, run by the
training loop), with their spread ``log_sd`` over those examples. Each measurement gives a
pixel-size estimate ``reference_nm / measured_px``; they are combined as a
precision-weighted mean in log space (weight ``1 / log_sd^2``), then clipped to the card's
``pixel_size_range_nm``. Errors on synthetic lattices and single atoms at known pixel
sizes are in docs/backend.md (tests/backend/test_scale.py checks them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .._validate import as_image2d, check_pixel_size_nm
from ..errors import InputError
from .cards import ModelCard, ScaleReference

#: Side of the square blocks whose power spectra are averaged (Welch); smaller images
#: use their shorter side.
BLOCK_PX = 512
#: At most this many blocks per axis are averaged (3 x 3 = 9 spectra).
MAX_BLOCKS_PER_AXIS = 3
#: A spectral ring counts as a lattice when it stands this far above the background
#: (natural log of the power ratio, i.e. about 5x).
MIN_PERIOD_PROMINENCE = 1.6
#: Gaussian high-pass applied before measuring, px (blocks under 128 px use b/4).
HIGH_PASS_SIGMA_PX = 32.0
#: Largest autocorrelation lag used for the feature width, px.
MAX_LAG_PX = 64

#: Used when a card has no measured reference (older cards have no
#: ``input.scale_reference``). Loose on purpose: probe-limited HAADF columns and
#: graphene-like lattices.
FALLBACK_REFERENCE = ScaleReference(
    feature_sigma_nm=0.045, feature_sigma_log_sd=0.5, period_nm=0.22, period_log_sd=0.45
)


@dataclass(frozen=True)
class ScaleFeatures:
    """Scale-carrying features of one image, in pixels."""

    feature_sigma_px: float
    period_px: float | None
    #: ln(power / background) of the strongest spectral ring (whether or not it counts).
    period_prominence: float


@dataclass(frozen=True)
class ScaleEstimate:
    """A pixel-size estimate and how it was reached."""

    pixel_size_nm: float
    from_feature_nm: float
    from_period_nm: float | None
    features: ScaleFeatures
    #: True when the estimate was clipped to the model's pixel-size range.
    clipped: bool


def _block_starts(n: int, block: int) -> list[int]:
    if n <= block:
        return [0]
    k = min(MAX_BLOCKS_PER_AXIS, n // block)
    return [int(v) for v in np.rint(np.linspace(0, n - block, k))]


def _power_spectrum(image: np.ndarray) -> tuple[np.ndarray, int]:
    """Welch-averaged power spectrum of Hann-windowed blocks, zero-padded to 2B (rfft layout)."""
    b = min(BLOCK_PX, *image.shape)
    win = np.outer(np.hanning(b), np.hanning(b))
    total = None
    n = 0
    for r in _block_starts(image.shape[0], b):
        for c in _block_starts(image.shape[1], b):
            blk = image[r : r + b, c : c + b].astype(np.float64)
            blk = (blk - blk.mean()) * win
            f = np.fft.rfft2(blk, s=(2 * b, 2 * b))
            p = f.real**2 + f.imag**2
            total = p if total is None else total + p
            n += 1
    assert total is not None
    spec = total / n
    # High-pass (remove illumination gradients / thickness variations) as a Fourier
    # multiplication: equivalent to subtracting a Gaussian blur. A fixed width in pixels
    # (not a fraction of the block) so training patches and large images are measured
    # alike.
    ky = np.fft.fftfreq(2 * b)[:, None]
    kx = np.fft.rfftfreq(2 * b)[None, :]
    k2 = ky**2 + kx**2
    hp_sigma = min(HIGH_PASS_SIGMA_PX, b / 4.0)
    spec *= (1.0 - np.exp(-2.0 * math.pi**2 * hp_sigma**2 * k2)) ** 2
    return spec, b


def _radial_autocorrelation(spec: np.ndarray, b: int) -> np.ndarray:
    acf = np.fft.irfft2(spec, s=(2 * b, 2 * b))
    win = np.outer(np.hanning(b), np.hanning(b))
    wf = np.fft.rfft2(win, s=(2 * b, 2 * b))
    wacf = np.fft.irfft2(wf.real**2 + wf.imag**2, s=(2 * b, 2 * b))
    rmax = min(MAX_LAG_PX, b // 4)
    lags = np.r_[0 : rmax + 1, -rmax:0]
    sub = acf[np.ix_(lags, lags)] / np.maximum(wacf[np.ix_(lags, lags)], 1e-12 * wacf[0, 0])
    dy = lags[:, None]
    dx = lags[None, :]
    r = np.hypot(dy, dx)
    # Scan-line noise correlates pixels along the fast-scan row: leave lag dy == 0 out.
    keep = np.broadcast_to(dy != 0, r.shape) & (r <= rmax)
    rb = np.round(r[keep]).astype(int)
    counts = np.bincount(rb, minlength=rmax + 1)
    prof = np.bincount(rb, sub[keep], minlength=rmax + 1) / np.maximum(counts, 1)
    return prof[: rmax + 1]


def _fit_feature_sigma(prof: np.ndarray) -> float:
    """Fit a*exp(-r^2/(4 s^2)) + c to lags 1..R (R: first local minimum); return s in px."""
    end = len(prof) - 1
    for i in range(2, len(prof) - 1):
        if prof[i] <= prof[i - 1] and prof[i] <= prof[i + 1]:
            end = i
            break
    end = max(end, 3)
    r = np.arange(1, end + 1, dtype=np.float64)
    y = prof[1 : end + 1]
    sigmas = np.geomspace(0.3, 40.0, 400)
    e = np.exp(-(r[None, :] ** 2) / (4.0 * sigmas[:, None] ** 2))  # (S, R)
    n = float(len(r))
    see = (e * e).sum(1)
    se = e.sum(1)
    sey = (e * y).sum(1)
    sy = y.sum()
    det = see * n - se**2
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (sey * n - se * sy) / det
        c = (see * sy - se * sey) / det
        resid = ((a[:, None] * e + c[:, None] - y[None, :]) ** 2).sum(1)
    resid[~np.isfinite(resid) | (a <= 0)] = np.inf
    if not np.isfinite(resid).any():
        raise InputError(
            "scale estimation: the image has no measurable structure (flat autocorrelation)"
        )
    return float(sigmas[int(np.argmin(resid))])


def _dominant_period(spec: np.ndarray, b: int) -> tuple[float, float]:
    """(period in px, prominence) of the strongest ring of the power spectrum."""
    from scipy import ndimage as ndi

    n2 = 2 * b
    ky = np.fft.fftfreq(n2)[:, None]
    kx = np.fft.rfftfreq(n2)[None, :]
    kb = np.round(np.hypot(ky, kx) * n2).astype(int).ravel()
    counts = np.bincount(kb)
    prof = np.bincount(kb, spec.ravel()) / np.maximum(counts, 1)
    prof = prof[:b]  # up to Nyquist
    logp = np.log(prof + 1e-30 * prof.max())
    base = ndi.median_filter(logp, size=max(9, b // 16), mode="nearest")
    prom = logp - base
    lo = 8  # at least 4 periods per block
    hi = int(0.45 * n2)
    i = lo + int(np.argmax(prom[lo:hi]))
    # Parabolic refinement of the peak bin on log power.
    if lo < i < hi - 1:
        y0, y1, y2 = logp[i - 1], logp[i], logp[i + 1]
        den = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / den if den < 0 else 0.0
        kbin = i + float(np.clip(shift, -0.5, 0.5))
    else:
        kbin = float(i)
    return n2 / kbin, float(prom[i])


def measure_scale_features(image: np.ndarray) -> ScaleFeatures:
    """Measure the feature width and dominant period of a 2-D image, in pixels."""
    img = as_image2d(image)
    spec, b = _power_spectrum(img)
    sigma = _fit_feature_sigma(_radial_autocorrelation(spec, b))
    period, prominence = _dominant_period(spec, b)
    return ScaleFeatures(
        feature_sigma_px=sigma,
        period_px=period if prominence >= MIN_PERIOD_PROMINENCE else None,
        period_prominence=prominence,
    )


def scale_reference_from_examples(
    images: Iterable[np.ndarray], pixel_size_nm: float
) -> ScaleReference:
    """Measure the scale reference of a model on its training examples.

    ``images`` are 2-D examples at the model's working pixel size ``pixel_size_nm``
    (normalised or not: the measurement is scale-free in intensity). Returns geometric
    means and log standard deviations in nm; the period is None when fewer than a quarter
    of the examples show a lattice.
    """
    px = check_pixel_size_nm(pixel_size_nm)
    sig, per = [], []
    n = 0
    for image in images:
        f = measure_scale_features(np.asarray(image).squeeze())
        n += 1
        sig.append(math.log(f.feature_sigma_px * px))
        if f.period_px is not None:
            per.append(math.log(f.period_px * px))
    if n == 0:
        raise InputError("scale_reference_from_examples: no images given")
    # A floor on the spread: a handful of examples must not claim a precision they lack.
    sd_floor = 0.05
    sig_sd = max(float(np.std(sig)), sd_floor)
    if len(per) >= max(2, n / 4):
        period_nm, period_sd = float(math.exp(np.mean(per))), max(float(np.std(per)), sd_floor)
    else:
        period_nm, period_sd = None, None
    return ScaleReference(
        feature_sigma_nm=float(math.exp(np.mean(sig))),
        feature_sigma_log_sd=sig_sd,
        period_nm=period_nm,
        period_log_sd=period_sd,
        n_examples=n,
    )


def estimate_scale(
    image: np.ndarray,
    reference: ScaleReference | ModelCard,
    pixel_size_range_nm: tuple[float, float] | None = None,
) -> ScaleEstimate:
    """Estimate the pixel size of ``image`` against a model's scale reference (details).

    Parameters
    ----------
    image
        2-D array.
    reference
        A :class:`ScaleReference`, or a card whose reference (or
        :data:`FALLBACK_REFERENCE`) and pixel-size range are used.
    pixel_size_range_nm
        ``(low, high)`` nm/px the estimate is clipped to (default: the card's, if any).

    Returns
    -------
    ScaleEstimate
        The weighted estimate (nm/px) and its parts: from the feature width, from the
        lattice period (None without one), the measured features, whether it was clipped.
    """
    if isinstance(reference, ModelCard):
        card = reference
        reference = card.input.scale_reference or FALLBACK_REFERENCE
        if pixel_size_range_nm is None:
            pixel_size_range_nm = card.input.pixel_size_range_nm
    feats = measure_scale_features(image)
    log_est = [math.log(reference.feature_sigma_nm / feats.feature_sigma_px)]
    weights = [1.0 / reference.feature_sigma_log_sd**2]
    from_period = None
    if feats.period_px is not None and reference.period_nm is not None and reference.period_log_sd:
        from_period = reference.period_nm / feats.period_px
        log_est.append(math.log(from_period))
        weights.append(1.0 / reference.period_log_sd**2)
    est = math.exp(float(np.average(log_est, weights=weights)))
    clipped = False
    if pixel_size_range_nm is not None:
        lo, hi = pixel_size_range_nm
        if not lo <= est <= hi:
            est, clipped = min(max(est, lo), hi), True
    return ScaleEstimate(
        pixel_size_nm=est,
        from_feature_nm=math.exp(log_est[0]),
        from_period_nm=from_period,
        features=feats,
        clipped=clipped,
    )


def estimate_pixel_size_details(
    image: np.ndarray, card: ModelCard, material: str | None = None
) -> tuple[float, object]:
    """``(pixel size nm/px for this model, the image's ImageScale)``.

    The pixel size is the image's one physical estimate
    (:func:`napari_atomseg.scale.estimate_image_scale`, shared by every tool; ``material``
    pins the lattice spacings to one catalogue material's), clipped to
    the card's ``pixel_size_range_nm``. When nothing in the image carries a length scale
    it is the card's working pixel size (the image is run as it is) and the estimate's
    warnings say so. :func:`estimate_scale` (the model-relative feature match) is kept
    for the training loop's scale reference and for comparisons.
    """
    from dataclasses import replace

    from ..scale import estimate_image_scale

    scale = estimate_image_scale(image, material)
    px = scale.pixel_size_nm
    if px is None:
        px = card.input.working_pixel_size_nm or 1.0
        note = f"the image is run at {card.name}'s working sampling ({px:g} nm/px)"
        return px, replace(scale, warnings=(*scale.warnings, note))
    rng = card.input.pixel_size_range_nm
    if rng is not None and not rng[0] <= px <= rng[1]:
        clipped = min(max(px, rng[0]), rng[1])
        note = (
            f"the estimate {px:.4g} nm/px lies outside {card.name}'s range "
            f"({rng[0]:g}-{rng[1]:g} nm/px); {clipped:.4g} nm/px is used"
        )
        return clipped, replace(scale, warnings=(*scale.warnings, note))
    return px, scale


def estimate_pixel_size_nm(
    image: np.ndarray, card: ModelCard, material: str | None = None
) -> float:
    """Pixel size (nm/px) at which ``card``'s model runs on an uncalibrated ``image``.

    The image's one physical estimate, clipped to the card's range (see
    :func:`estimate_pixel_size_details`); the user can always pass the true value.

    Parameters
    ----------
    image
        2-D array.
    card
        The model's card (its pixel-size range and working pixel size).
    material
        A catalogue material whose spacings the image's lattice has (None: any).

    Returns
    -------
    float
        nm/px; the card's working pixel size when the image carries no length scale.
    """
    return float(estimate_pixel_size_details(image, card, material)[0])
