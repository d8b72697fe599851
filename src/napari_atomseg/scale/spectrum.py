"""Lattice peaks of a micrograph's power spectrum: spots (one crystal) and rings (many).

The power spectrum is averaged over up to 2 x 2 Hann-windowed blocks of 512 px (Welch;
smaller images use one block of their shorter side), each zero-padded to twice its size
so a spot spans several bins and its centre is found to a fraction of a bin. A spot is a local maximum of the log power that stands
at least :data:`MIN_SPOT_PROMINENCE` (natural log of the ratio) above the *radial
median* of the log power at its radius -- a background that follows the envelope of the
transfer function, the detector and the amorphous speckle, and that one crystal's spots
cannot pull up -- and above the noise of that ratio in this spectrum. A ring (a
polycrystal, or many rotated flakes) lifts the whole radial profile instead, so rings are
the peaks of the radially *averaged* log power above its own running median.

Positions are refined to a fraction of a bin (parabola through the log power), in
cycles per pixel: ``ky`` along rows, ``kx`` along columns; a spot at ``k`` is a lattice
period of ``1 / k`` pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Side of the square blocks whose spectra are averaged.
BLOCK_PX = 512
#: At most this many blocks per axis (2 x 2 = 4 spectra, each zero-padded to twice the
#: block, so a spot's period is measured to a fraction of a percent).
MAX_BLOCKS_PER_AXIS = 2
#: Spot threshold: ln(power / radial median), i.e. about 6x.
MIN_SPOT_PROMINENCE = 1.8
#: ... and at least this many robust standard deviations of that ratio in the spectrum
#: (one 256 px block is much noisier than nine 512 px blocks).
MIN_SPOT_SIGMAS = 4.5
#: Ring threshold: ln(radial mean power / its running median), about 2.5x.
MIN_RING_PROMINENCE = 0.9
#: The longest period considered, as a fraction of the block (at least 6 periods).
MAX_PERIOD_FRACTION = 1 / 6
#: The shortest period considered, px (just above Nyquist).
MIN_PERIOD_PX = 2.1
#: At most this many spots are kept (the strongest).
MAX_SPOTS = 24
#: Frequencies whose radial median lies this far (natural log) below the strongest band's
#: carry nothing of the image (an image smoothed or interpolated beyond its detail): the
#: steep fall of the spectrum there makes maxima that are not spots.
MAX_DYNAMIC_RANGE_LN = 20.0
#: Weaker spots (this many robust standard deviations, still above
#: MIN_SPOT_PROMINENCE) make a lattice only as three that close, g3 = +-g1 +- g2: the
#: reciprocal lattice is closed under addition, noise maxima are not.
WEAK_SPOT_SIGMAS = 3.0
#: How far (frequency bins of the padded spectrum) the third spot may lie from g1 +- g2.
CLOSURE_TOLERANCE_BINS = 1.5
#: Two spots closer in angle than this (degrees) are one direction, not two.
NONCOLLINEAR_DEG = 15.0
#: A maximum whose ray keeps this fraction of its prominence at 0.75 and 1.3 times its
#: radius is a streak, not a spot.
STREAK_FRACTION = 0.5


@dataclass(frozen=True)
class SpectrumPeak:
    """One spot or ring of the power spectrum.

    ``k`` cycles/px (period ``1 / k`` px); ``ky``, ``kx`` its components (a ring has
    ``kx = k``, ``ky = 0``); ``angle_deg`` in [0, 180) (NaN for a ring); ``prominence``
    ln(power / background).
    """

    k: float
    ky: float
    kx: float
    angle_deg: float
    prominence: float
    ring: bool = False

    @property
    def period_px(self) -> float:
        """The spot's period, px (``1 / k``)."""
        return 1.0 / self.k


@dataclass(frozen=True)
class Spectrum:
    """The averaged power spectrum (rfft layout, rows shifted so ky = 0 is in the middle)."""

    log_power: np.ndarray
    n: int  # transform size (square)
    block_px: int
    n_blocks: int

    @property
    def k_min(self) -> float:
        """Lowest frequency searched for peaks, cycles/px (longest period:
        :data:`MAX_PERIOD_FRACTION` of a block)."""
        return 1.0 / (MAX_PERIOD_FRACTION * self.block_px)


def _starts(size: int, block: int) -> list[int]:
    if size <= block:
        return [0]
    count = min(MAX_BLOCKS_PER_AXIS, size // block + 1)
    return [int(v) for v in np.rint(np.linspace(0, size - block, count))]


def power_spectrum(image: np.ndarray) -> Spectrum:
    """Welch-averaged log power spectrum of a float image (see the module docstring)."""
    from scipy import fft as sfft

    block = int(min(BLOCK_PX, *image.shape))
    n = 2 * block
    window = np.outer(np.hanning(block), np.hanning(block)).astype(np.float32)
    total = None
    count = 0
    for r in _starts(image.shape[0], block):
        for c in _starts(image.shape[1], block):
            tile = image[r : r + block, c : c + block].astype(np.float32)
            tile = (tile - tile.mean()) * window
            f = sfft.rfft2(tile, s=(n, n), workers=-1)
            power = f.real.astype(np.float64) ** 2 + f.imag.astype(np.float64) ** 2
            total = power if total is None else total + power
            count += 1
    assert total is not None
    total = np.fft.fftshift(total / count, axes=0)
    floor = 1e-12 * max(float(total.max()), 1e-30)
    return Spectrum(np.log(total + floor), n, block, count)


def _frequencies(n: int) -> tuple[np.ndarray, np.ndarray]:
    ky = (np.arange(n) - n // 2)[:, None] / n
    kx = np.arange(n // 2 + 1)[None, :] / n
    return ky, kx


def _radial_median(values: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
    """Median of ``values`` in each integer radius bin (NaN where a bin is empty)."""
    order = np.argsort(bins, kind="stable")
    v = values[order]
    edges = np.searchsorted(bins[order], np.arange(n_bins + 1), side="left")
    out = np.full(n_bins, np.nan)
    for i in range(n_bins):
        if edges[i + 1] > edges[i]:
            out[i] = np.median(v[edges[i] : edges[i + 1]])
    return out


def _refine(log_power: np.ndarray, i: int, j: int) -> tuple[float, float]:
    """Sub-bin offsets (dy, dx) of a maximum from parabolas through the log power."""

    def vertex(a: float, b: float, c: float) -> float:
        """Offset of the parabola's vertex through (-1, a), (0, b), (1, c), within +-0.5."""
        den = a - 2.0 * b + c
        return float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den < 0 else 0.0

    h, w = log_power.shape
    dy = vertex(log_power[i - 1, j], log_power[i, j], log_power[i + 1, j]) if 0 < i < h - 1 else 0
    dx = vertex(log_power[i, j - 1], log_power[i, j], log_power[i, j + 1]) if 0 < j < w - 1 else 0
    return dy, dx


def _on_streak(prominence: np.ndarray, i: int, j: int, n: int) -> bool:
    """True when the maximum lies on a radial streak (the spectrum of a straight edge or
    of scan-line noise): the log power stays high on the same ray at 0.75 and 1.3 times
    the radius (0.6 and 0.8 near Nyquist), where a lattice spot has background."""
    fy, fx = i - n // 2, j
    peak = prominence[i, j]

    def inside(factor: float) -> bool:
        """Whether the point at ``factor`` times the radius lies in the spectrum."""
        y, x = n // 2 + round(fy * factor), round(fx * factor)
        return 0 <= y < prominence.shape[0] and 0 <= x < prominence.shape[1]

    factors = (0.75, 1.3) if inside(1.3) else (0.6, 0.8)
    for factor in factors:
        y, x = n // 2 + round(fy * factor), round(fx * factor)
        if prominence[y, x] < STREAK_FRACTION * peak:
            return False
    return True


def find_spots(spec: Spectrum, sigmas: float = MIN_SPOT_SIGMAS) -> list[SpectrumPeak]:
    """The spectrum's spots, strongest first (at most :data:`MAX_SPOTS`): local maxima at
    least :data:`MIN_SPOT_PROMINENCE` and ``sigmas`` robust standard deviations above the
    radial median, not on a radial streak."""
    from scipy import ndimage as ndi

    n = spec.n
    ky, kx = _frequencies(n)
    k = np.hypot(ky, kx)
    bins = np.rint(k * n).astype(np.int64)
    n_bins = n // 2 + 1
    inside = (k >= spec.k_min) & (k <= 1.0 / MIN_PERIOD_PX)
    smooth = ndi.gaussian_filter(spec.log_power, 0.7, mode="nearest")
    median = _radial_median(smooth[inside], bins[inside], n_bins)
    median = np.where(np.isnan(median), np.nanmax(median), median)
    median = ndi.median_filter(median, size=5, mode="nearest")
    background = median[np.minimum(bins, n_bins - 1)]
    prominence = smooth - background
    inside &= background >= float(background[inside].max()) - MAX_DYNAMIC_RANGE_LN
    values = prominence[inside]
    sigma = 1.4826 * float(np.median(np.abs(values - np.median(values))))
    threshold = max(MIN_SPOT_PROMINENCE, sigmas * sigma)
    local_max = ndi.maximum_filter(prominence, size=5, mode="nearest") == prominence
    # One of each Friedel pair: the kx = 0 column holds both +ky and -ky.
    half = (kx > 0) | (ky > 0)
    rows, cols = np.nonzero(local_max & inside & half & (prominence >= threshold))
    order = np.argsort(-prominence[rows, cols])
    spots = []
    for i, j in zip(rows[order], cols[order]):
        if len(spots) == MAX_SPOTS:
            break
        if _on_streak(prominence, int(i), int(j), n):
            continue
        dy, dx = _refine(smooth, int(i), int(j))
        fy = (i + dy - n // 2) / n
        fx = (j + dx) / n
        spots.append(
            SpectrumPeak(
                k=float(math.hypot(fy, fx)),
                ky=float(fy),
                kx=float(fx),
                angle_deg=float(math.degrees(math.atan2(fy, fx)) % 180.0),
                prominence=float(prominence[i, j]),
            )
        )
    return spots


def find_rings(spec: Spectrum) -> list[SpectrumPeak]:
    """Peaks of the radially averaged log power above its running median, strongest first."""
    from scipy import ndimage as ndi

    n = spec.n
    ky, kx = _frequencies(n)
    k = np.hypot(ky, kx)
    bins = np.rint(k * n).astype(np.int64).ravel()
    counts = np.bincount(bins, minlength=n)
    profile = np.bincount(bins, spec.log_power.ravel(), minlength=n) / np.maximum(counts, 1)
    lo = max(2, math.ceil(spec.k_min * n))
    hi = min(n // 2, math.floor(n / MIN_PERIOD_PX))
    if hi - lo < 8:
        return []
    baseline = ndi.median_filter(profile[: hi + 1], size=max(9, n // 16), mode="nearest")
    prom = profile[: hi + 1] - baseline
    rings = []
    for i in range(lo + 1, hi):
        if prom[i] >= MIN_RING_PROMINENCE and prom[i] >= prom[i - 1] and prom[i] > prom[i + 1]:
            a, b, c = profile[i - 1], profile[i], profile[i + 1]
            den = a - 2 * b + c
            shift = float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den < 0 else 0.0
            kr = (i + shift) / n
            rings.append(SpectrumPeak(kr, 0.0, kr, math.nan, float(prom[i]), ring=True))
    return sorted(rings, key=lambda p: -p.prominence)


def closing_spots(spec: Spectrum) -> list[SpectrumPeak]:
    """Three weak spots that make a lattice together, or [] (see :data:`WEAK_SPOT_SIGMAS`).

    A lattice whose spots the transfer function or a small field leaves below the
    single-spot threshold still shows them as a set: two spots in different directions
    and a third at their sum or difference (one of each Friedel pair is listed, so the
    signs are tried both ways). Noise maxima at the weak threshold are few and do not
    obey the vector sum.
    """
    weak = find_spots(spec, sigmas=WEAK_SPOT_SIGMAS)
    tolerance = CLOSURE_TOLERANCE_BINS / spec.n
    vectors = [np.array([p.ky, p.kx]) for p in weak]
    for i, j in _noncollinear_pairs(weak):
        for combo in (vectors[i] + vectors[j], vectors[i] - vectors[j]):
            for m, v in enumerate(vectors):
                if m in (i, j):
                    continue
                if min(np.hypot(*(v - combo)), np.hypot(*(v + combo))) <= tolerance:
                    return [weak[i], weak[j], weak[m]]
    return []


def _noncollinear_pairs(spots: list[SpectrumPeak]) -> list[tuple[int, int]]:
    n = len(spots)
    return [
        (i, j)
        for i in range(n)
        for j in range(i + 1, n)
        if fold_angle_deg(spots[i].angle_deg - spots[j].angle_deg) > NONCOLLINEAR_DEG
    ]


def fold_angle_deg(a: float) -> float:
    """An undirected angle difference folded to [0, 90] degrees."""
    a = abs(a) % 180.0
    return min(a, 180.0 - a)


def lattice_peaks(image: np.ndarray) -> tuple[list[SpectrumPeak], Spectrum]:
    """Spots, plus the rings at radii where no spot lies (``image``: a 2-D float array)."""
    spec = power_spectrum(image)
    spots = find_spots(spec)
    rings = [r for r in find_rings(spec) if all(abs(s.k / r.k - 1.0) > 0.03 for s in spots)]
    return spots + rings, spec
