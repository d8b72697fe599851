"""Noise, texture and contrast statistics of a micrograph, real or simulated.

The simulator is calibrated by measuring the *same* statistics on real micrographs and on
simulated ones (``benchmarks/calibrate_noise.py``):

- :func:`fit_poisson_gaussian`: the noise variance as a function of the local mean,
  var = gain * mean + offset (a Poisson-Gaussian detector), from second differences across
  scan lines; with the zero-electron level it gives the *effective electrons per pixel*,
  the number that sets how noisy an image is whatever the detector's units. Also the
  correlation of the noise along the fast scan (detector response) and the rms of
  per-line offsets (scan-line noise) relative to the pixel noise.
- :func:`texture_spectrum`: the radially averaged power spectrum of the relative
  fluctuations, the white noise floor subtracted, as rms per band of spatial periods
  (the amorphous support's texture).
- :func:`spot_contrast`: the contrast of given point-like features (single atoms)
  against their surroundings: relative to the local signal, to the noise and to the
  local texture.

All functions take one 2-D image (row = slow scan, column = fast scan) and never modify it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, uniform_filter

from .._validate import as_image2d

#: robust standard deviation from the median absolute deviation (Gaussian)
_MAD_TO_STD = 1.482602218505602
#: var of (x[i-1] - 2 x[i] + x[i+1]) for independent x of unit variance
_SECOND_DIFF_VAR = 6.0


@dataclass(frozen=True)
class NoiseFit:
    """A Poisson-Gaussian noise model fitted to one image.

    ``gain`` (image units per effective electron) and ``offset`` give the noise variance
    var = gain * mean + offset; ``zero_level`` is the image value of zero electrons
    (``-offset / gain`` unless a vacuum level was given); ``electrons_per_pixel`` the
    median effective electrons per pixel, (median - zero_level) / gain;
    ``read_noise_electrons`` the noise at zero signal in electrons; ``fast_scan_correlation``
    the correlation of neighbouring noise values along a line (0 for white noise);
    ``line_noise_fraction`` the rms per-line offset relative to the pixel noise at the
    median level; ``poisson_fraction`` the share of the noise variance at the median level
    that scales with the signal (1 = shot-noise limited, 0 = signal-independent noise);
    ``fit_r2`` how well the straight line explains the binned variances.
    """

    gain: float
    offset: float
    zero_level: float
    electrons_per_pixel: float
    read_noise_electrons: float
    noise_std_at_median: float
    fast_scan_correlation: float
    line_noise_fraction: float
    poisson_fraction: float
    fit_r2: float

    def as_dict(self) -> dict[str, float]:
        """Every field by name."""
        return asdict(self)


def _second_difference_y(image: np.ndarray) -> np.ndarray:
    """x[r-1] - 2 x[r] + x[r+1] across scan lines, minus each line's median (which removes
    per-line offsets and the lines' mean curvature), scaled to unit-variance noise."""
    d = image[:-2] - 2.0 * image[1:-1] + image[2:]
    d = d - np.median(d, axis=1, keepdims=True)
    return d / math.sqrt(_SECOND_DIFF_VAR)


def _robust_var(values: np.ndarray) -> float:
    med = np.median(values)
    return float((_MAD_TO_STD * np.median(np.abs(values - med))) ** 2)


def fit_poisson_gaussian(
    image: np.ndarray,
    n_bins: int = 24,
    mean_window_px: int = 7,
    zero_level: float | None = None,
) -> NoiseFit:
    """Fit var = gain * mean + offset to an image's noise.

    The noise is read from second differences across scan lines (rows), which cancel a
    smooth signal and are blind to correlations along a line (a detector's response
    smears the noise along the fast scan; successive lines are independent); per-line
    offsets are removed first and measured separately. Pixels are binned by their local
    mean (``mean_window_px`` box) into ``n_bins`` quantile bins; each bin's variance is
    robust (median absolute deviation), so atoms and edges do not inflate it. A signal
    that curves strongly at the pixel scale (columns sampled by few pixels) still adds to
    the variance: on such images the fit is an upper bound of the noise.

    Parameters
    ----------
    image
        2-D image, rows = slow scan.
    n_bins
        Bins of the local mean.
    mean_window_px
        Box size of the local mean.
    zero_level
        Image value of zero detected electrons (e.g. the vacuum level of an ADF image);
        None assumes no signal-independent noise at zero signal (zero = -offset / gain).
    """
    img = as_image2d(image, "image").astype(np.float64)
    d = _second_difference_y(img)
    mean = uniform_filter(img, mean_window_px, mode="reflect")[1:-1]
    # Stay clear of the borders, where the box mean is reflected.
    m = mean_window_px
    d, mean = d[m:-m, m:-m], mean[m:-m, m:-m]
    edges = np.unique(np.quantile(mean, np.linspace(0.0, 1.0, n_bins + 1)))
    which = np.clip(np.searchsorted(edges, mean.ravel(), side="right") - 1, 0, len(edges) - 2)
    mu, var, count = [], [], []
    flat_d = d.ravel()
    flat_m = mean.ravel()
    for b in range(len(edges) - 1):
        sel = which == b
        if sel.sum() < 50:
            continue
        mu.append(float(np.median(flat_m[sel])))
        var.append(_robust_var(flat_d[sel]))
        count.append(int(sel.sum()))
    mu_a, var_a, n_a = np.array(mu), np.array(var), np.array(count)
    gain, offset, r2 = _weighted_line(mu_a, var_a, n_a)
    median = float(np.median(img))
    var_med = max(gain * median + offset, 1e-30)
    if gain > 0:
        zero = float(zero_level) if zero_level is not None else -offset / gain
        electrons = (median - zero) / gain
        read_var = offset + gain * zero
        read_e = math.sqrt(max(read_var, 0.0)) / gain
        poisson = float(np.clip(gain * (median - zero) / var_med, 0.0, 1.0))
    else:
        zero = float(zero_level) if zero_level is not None else float("nan")
        electrons = read_e = float("nan")
        poisson = 0.0
    return NoiseFit(
        gain=float(gain),
        offset=float(offset),
        zero_level=zero,
        electrons_per_pixel=float(electrons),
        read_noise_electrons=float(read_e),
        noise_std_at_median=math.sqrt(var_med),
        fast_scan_correlation=fast_scan_correlation(img),
        line_noise_fraction=line_noise_fraction(img, math.sqrt(var_med)),
        poisson_fraction=poisson,
        fit_r2=float(r2),
    )


def _weighted_line(x: np.ndarray, y: np.ndarray, n: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line y = a x + b; a variance estimate from n values has a relative
    error ~ sqrt(2 / n), so the weights are n / y^2. Two passes drop bins more than
    3 sigma off the line (edges, lattice fringes)."""
    if len(x) < 3 or np.ptp(x) <= 0:
        return 0.0, float(np.median(y)) if len(y) else 0.0, 0.0
    keep = np.ones(len(x), bool)
    a = b = 0.0
    for _ in range(2):
        w = n[keep] / np.maximum(y[keep], 1e-30) ** 2
        design = np.stack([x[keep], np.ones(keep.sum())], axis=1)
        sw = np.sqrt(w)
        a, b = np.linalg.lstsq(design * sw[:, None], y[keep] * sw, rcond=None)[0]
        rel = (y - (a * x + b)) / np.maximum(y, 1e-30) * np.sqrt(n / 2.0)
        new_keep = np.abs(rel) < 3.0
        if new_keep.sum() < 3 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    resid = y[keep] - (a * x[keep] + b)
    total = y[keep] - y[keep].mean()
    r2 = 1.0 - float((resid**2).sum()) / max(float((total**2).sum()), 1e-30)
    return float(a), float(b), r2


def fast_scan_correlation(image: np.ndarray) -> float:
    """Correlation of neighbouring noise values along the fast scan (rows).

    Second differences across lines hold the noise without the signal; their correlation
    between horizontal neighbours is the noise's own (white noise 0, a detector response
    of time constant tau about exp(-1 / tau)). Robust: the median of products over the
    median of squares is not used, as it is biased; the plain correlation of values
    clipped at 4 robust sigma is."""
    img = np.asarray(image, dtype=np.float64)
    d = _second_difference_y(img)
    s = math.sqrt(max(_robust_var(d), 1e-30))
    d = np.clip(d, -4 * s, 4 * s)
    a, b = d[:, :-1].ravel(), d[:, 1:].ravel()
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).mean() / math.sqrt((a * a).mean() * (b * b).mean() + 1e-30))


def line_noise_fraction(image: np.ndarray, pixel_noise_std: float) -> float:
    """rms of per-line (row) offsets relative to ``pixel_noise_std``.

    In the power spectrum a per-row offset puts power only on the kx = 0 column; the
    median over ky of its excess over the neighbouring columns (kx = 2..4 steps of
    frequency) is that offset's variance times the row length; the median is blind to the
    few Bragg spots a lattice may put on the column."""
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    img = img - gaussian_filter(img, 12.0, mode="reflect")  # slow shading is not line noise
    window = np.hanning(h)[:, None] * np.ones(w)[None, :]
    spec = np.abs(np.fft.fft2(img * window)) ** 2 / (window**2).sum()
    ky = slice(3, h // 2)
    line = spec[ky, 0]
    neighbours = np.mean([spec[ky, k] for k in (2, 3, 4, w - 2, w - 3, w - 4)])
    # Periodogram values are exponentially distributed: mean = median / ln 2.
    excess = float(np.median(line)) / math.log(2.0) - float(neighbours)
    if excess <= 0 or pixel_noise_std <= 0:
        return 0.0
    return math.sqrt(excess / w) / pixel_noise_std


def line_jitter_px(image: np.ndarray, max_lag_px: int = 3, min_correlation: float = 0.5) -> float:
    """Robust rms shift (pixels) of each scan line against its two neighbours.

    Each line is cross-correlated with the mean of the lines above and below (a lattice
    tilted against the scan shifts the neighbours equally in opposite directions, so it
    cancels); the sub-pixel peak (parabola) is the line's shift. Noise alone gives a
    floor that grows as the signal weakens: where neighbouring lines correlate less than
    ``min_correlation`` (median over lines) the shifts are noise and NaN is returned.
    Returns 1.48 x the median absolute deviation of the shifts."""
    img = as_image2d(image, "image").astype(np.float64)
    hp = img - gaussian_filter(img, 4.0, mode="reflect")
    row = hp[1:-1]
    nb = 0.5 * (hp[:-2] + hp[2:])
    w = row.shape[1]
    lags = np.arange(-max_lag_px, max_lag_px + 1)
    m = max_lag_px
    corr = np.stack(
        [(row[:, m : w - m] * nb[:, m + lag : w - m + lag]).mean(axis=1) for lag in lags], axis=1
    )
    k = np.clip(corr.argmax(axis=1), 1, len(lags) - 2)
    r = np.arange(len(k))
    c0, c1, c2 = corr[r, k - 1], corr[r, k], corr[r, k + 1]
    denom = c0 - 2 * c1 + c2
    frac = np.where(np.abs(denom) > 1e-30, 0.5 * (c0 - c2) / np.where(denom == 0, 1, denom), 0.0)
    shift = lags[k] + np.clip(frac, -0.5, 0.5)
    power = np.sqrt((row[:, m : w - m] ** 2).mean(1) * (nb[:, m : w - m] ** 2).mean(1))
    if np.median(c1 / np.maximum(power, 1e-30)) < min_correlation:
        return float("nan")
    return float(_MAD_TO_STD * np.median(np.abs(shift - np.median(shift))))


@dataclass(frozen=True)
class TextureSpectrum:
    """Texture of an image: rms relative fluctuation per band of periods (nm), the white
    noise floor removed, and the power-law exponent of the spectrum over the bands."""

    band_periods_nm: tuple[tuple[float, float], ...]
    band_rms: tuple[float, ...]
    exponent: float
    noise_rms: float


#: period bands (nm) for the texture of amorphous supports: atomic speckle,
#: medium-range order, thickness variation
TEXTURE_BANDS_NM = ((0.15, 0.4), (0.4, 1.0), (1.0, 2.5), (2.5, 7.0))


def texture_spectrum(
    image: np.ndarray,
    pixel_size_nm: float,
    noise: NoiseFit,
    bands_nm: tuple[tuple[float, float], ...] = TEXTURE_BANDS_NM,
    mask: np.ndarray | None = None,
) -> TextureSpectrum:
    """Band-limited rms of the relative fluctuations (I - zero) / mean(I - zero) - 1.

    ``mask`` (True = use; e.g. the support, away from vacuum) restricts the statistics to
    part of the field; it is tapered (Gaussian, 0.5 nm) and multiplied into the Hann window,
    so its edges add little power. The white-noise floor predicted by the Poisson-Gaussian
    fit is subtracted. Bands longer than half the field are NaN.
    """
    img = as_image2d(image, "image").astype(np.float64)
    h, w = img.shape
    zero = noise.zero_level if math.isfinite(noise.zero_level) else 0.0
    use = np.ones((h, w), bool) if mask is None else np.asarray(mask, bool)
    signal = img - zero
    mean = float(signal[use].mean())
    rel = np.where(use, signal / mean - 1.0, 0.0)
    taper = gaussian_filter(use.astype(np.float64), 0.5 / pixel_size_nm) * use
    window = np.outer(np.hanning(h), np.hanning(w)) * taper
    rel = rel - float((rel * window).sum() / window.sum())
    norm = float((window**2).sum())
    spec = np.abs(np.fft.fft2(rel * window)) ** 2 / norm
    if noise.gain > 0:
        var = noise.gain * np.maximum(img, zero) + noise.offset
        floor = float((var * window**2).sum() / norm) / mean**2
    else:  # no noise model: the floor from the highest frequencies
        floor = float(
            np.median(
                spec[h // 2 - h // 10 : h // 2 + h // 10, w // 2 - w // 10 : w // 2 + w // 10]
            )
        )
    ky = np.fft.fftfreq(h, d=pixel_size_nm)[:, None]
    kx = np.fft.fftfreq(w, d=pixel_size_nm)[None, :]
    k = np.sqrt(ky**2 + kx**2)
    nyq = 0.5 / pixel_size_nm
    rms, centres, powers = [], [], []
    field = min(h, w) * pixel_size_nm
    for lo, hi in bands_nm:
        sel = (k >= 1.0 / hi) & (k < 1.0 / lo) & (k <= nyq)
        if hi > field / 2 or 1.0 / hi >= nyq or not sel.any():
            rms.append(float("nan"))
            continue
        excess = float((spec[sel] - floor).sum()) / (h * w)
        rms.append(math.sqrt(max(excess, 0.0)))
        centres.append(math.sqrt(1.0 / (lo * hi)))
        powers.append(max(float(np.mean(spec[sel] - floor)), 1e-30))
    exponent = float("nan")
    if len(centres) >= 2:
        exponent = float(-np.polyfit(np.log(centres), np.log(powers), 1)[0])
    return TextureSpectrum(
        tuple(tuple(b) for b in bands_nm), tuple(rms), exponent, math.sqrt(max(floor, 0.0))
    )


@dataclass(frozen=True)
class SpotContrast:
    """Contrast of point features (medians over the spots, and their 10-90 % range).

    ``relative``: peak above the local background over the background's signal
    (background - zero level); ``snr``: the same peak over the noise of the smoothed
    image; ``texture_ratio``: over the std of the smoothed image around the spot;
    ``electrons``: the peak above background in effective electrons per pixel.
    """

    n: int
    relative: tuple[float, float, float]
    snr: tuple[float, float, float]
    texture_ratio: tuple[float, float, float]
    electrons: tuple[float, float, float]


def spot_contrast(
    image: np.ndarray,
    positions_px: np.ndarray,
    pixel_size_nm: float,
    noise: NoiseFit,
    probe_sigma_nm: float = 0.04,
    search_nm: float = 0.06,
    annulus_nm: tuple[float, float] = (0.25, 0.45),
) -> SpotContrast:
    """Contrast of features at ``positions_px`` ((row, col)) against their surroundings.

    The image is smoothed with a Gaussian of ``probe_sigma_nm`` (about a probe: a matched
    filter for a single atom); the peak is its maximum within ``search_nm`` of the given
    position (hand-placed labels are a pixel or two off), the background the median of an
    annulus, the texture the std over that annulus.
    """
    img = as_image2d(image, "image").astype(np.float64)
    sigma_px = probe_sigma_nm / pixel_size_nm
    smooth = gaussian_filter(img, sigma_px, mode="reflect")
    search = max(1, round(search_nm / pixel_size_nm))
    r_in, r_out = (round(v / pixel_size_nm) for v in annulus_nm)
    yy, xx = np.mgrid[-r_out : r_out + 1, -r_out : r_out + 1]
    rr = np.hypot(yy, xx)
    ring = (rr >= r_in) & (rr <= r_out)
    disc = rr <= search
    # White noise of unit variance smoothed by a Gaussian of sigma s has variance
    # 1 / (4 pi s^2) (s in pixels, s >= ~1).
    smooth_noise_factor = 1.0 / math.sqrt(4 * math.pi * max(sigma_px, 0.6) ** 2)
    zero = noise.zero_level if math.isfinite(noise.zero_level) else 0.0
    rel, snr, tex, ele = [], [], [], []
    h, w = img.shape
    for r, c in np.asarray(positions_px, dtype=np.float64).reshape(-1, 2):
        ri, ci = round(r), round(c)
        if ri - r_out < 0 or ci - r_out < 0 or ri + r_out >= h or ci + r_out >= w:
            continue
        patch = smooth[ri - r_out : ri + r_out + 1, ci - r_out : ci + r_out + 1]
        peak = float(patch[disc].max())
        bg = float(np.median(patch[ring]))
        texture = float(np.std(patch[ring]))
        noise_std = math.sqrt(max(noise.gain * bg + noise.offset, 1e-30)) * smooth_noise_factor
        rel.append((peak - bg) / max(bg - zero, 1e-9))
        snr.append((peak - bg) / noise_std)
        tex.append((peak - bg) / max(texture, 1e-9))
        ele.append((peak - bg) / noise.gain if noise.gain > 0 else float("nan"))

    def summary(values: list[float]) -> tuple[float, float, float]:
        """(median, 10th, 90th percentile); NaNs for no values."""
        if not values:
            return (float("nan"),) * 3
        q = np.quantile(values, [0.1, 0.5, 0.9])
        return (float(q[1]), float(q[0]), float(q[2]))

    return SpotContrast(len(rel), summary(rel), summary(snr), summary(tex), summary(ele))


def spot_width_nm(
    image: np.ndarray,
    positions_px: np.ndarray,
    pixel_size_nm: float,
    half_size_px: int = 12,
    recentre_px: int = 3,
) -> float:
    """Gaussian sigma (nm) of the mean profile of point features (single atoms).

    Each feature is re-centred on the maximum of the image smoothed by 2 px within
    ``recentre_px`` (hand-placed labels are off by a pixel or two, which would widen the
    mean), its patch's median is subtracted, and a 2-D Gaussian is fitted to the mean
    patch. NaN with fewer than 3 features or when the fit fails.
    """
    from scipy.optimize import curve_fit

    img = as_image2d(image, "image").astype(np.float64)
    smooth = gaussian_filter(img, 2.0)
    r_, s_ = half_size_px, recentre_px
    h, w = img.shape
    patches = []
    for r, c in np.asarray(positions_px, dtype=np.float64).reshape(-1, 2):
        r, c = round(r), round(c)
        if r < r_ + s_ or c < r_ + s_ or r >= h - r_ - s_ or c >= w - r_ - s_:
            continue
        win = smooth[r - s_ : r + s_ + 1, c - s_ : c + s_ + 1]
        dr, dc = np.unravel_index(np.argmax(win), win.shape)
        r, c = r + dr - s_, c + dc - s_
        patch = img[r - r_ : r + r_ + 1, c - r_ : c + r_ + 1]
        patches.append(patch - np.median(patch))
    if len(patches) < 3:
        return float("nan")
    mean = np.mean(patches, axis=0)
    y, x = np.mgrid[-r_ : r_ + 1, -r_ : r_ + 1]

    def gauss(yx, a, s, b, y0, x0):
        """Round 2-D Gaussian: amplitude a, sigma s (px), offset b, centre (y0, x0)."""
        return a * np.exp(-((yx[0] - y0) ** 2 + (yx[1] - x0) ** 2) / (2 * s * s)) + b

    try:
        popt, _ = curve_fit(
            gauss, (y.ravel(), x.ravel()), mean.ravel(), p0=(mean.max(), 2.0, 0.0, 0.0, 0.0)
        )
    except RuntimeError:
        return float("nan")
    return float(abs(popt[1]) * pixel_size_nm)
