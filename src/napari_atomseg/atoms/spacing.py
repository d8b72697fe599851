"""Column spacing: local nearest-neighbour distances of points, and the lattice spacing of
an image from its autocorrelation.

The spacing sets every length scale of the atom finder (suppression radius, refinement
window, heatmap width, match radius), so it is computed in one place. Everything here is
in pixels; callers convert with the pixel size.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from .._validate import as_image2d
from ..errors import InputError


def as_points(points: object, name: str = "points") -> np.ndarray:
    """Return ``points`` as a new float64 ``(N, 2)`` array of (row, col), or raise InputError."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError(f"{name}: expected an (N, 2) array of (row, col), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: contains NaN/inf coordinates")
    return arr.copy()


def nearest_neighbour_distances_px(points_px: object, k: int = 1) -> np.ndarray:
    """Distance (px) from each point to its ``k``-th nearest other point.

    Returns a float64 array of length N; NaN where fewer than ``k + 1`` points exist.
    """
    pts = as_points(points_px)
    if k < 1:
        raise InputError(f"k: must be >= 1, got {k}")
    out = np.full(len(pts), np.nan)
    if len(pts) <= k:
        return out
    dist, _ = cKDTree(pts).query(pts, k=k + 1)
    return np.asarray(dist[:, k], dtype=np.float64)


def local_spacing_px(points_px: object, n_neighbours: int = 6) -> np.ndarray:
    """Robust local column spacing (px) around each point.

    The nearest-neighbour distance alone is fragile: one spurious or missing detection
    changes it. Here the spacing of point *i* is the median, over *i* and its
    ``n_neighbours`` nearest points, of their nearest-neighbour distances, which follows
    real spacing changes (interfaces, particles) while ignoring single outliers.
    NaN for fewer than two points.
    """
    pts = as_points(points_px)
    nn = nearest_neighbour_distances_px(pts)
    if len(pts) < 2:
        return nn
    k = min(n_neighbours + 1, len(pts))
    _, idx = cKDTree(pts).query(pts, k=k)
    idx = np.atleast_2d(idx)
    return np.median(nn[idx], axis=1)


def median_spacing_px(points_px: object) -> float:
    """Median nearest-neighbour distance (px) of a point set; NaN for fewer than two points."""
    nn = nearest_neighbour_distances_px(points_px)
    return float(np.median(nn)) if np.isfinite(nn).any() else float("nan")


def autocorrelation(image: object, highpass_sigma_px: float | None = None) -> np.ndarray:
    """Normalised, centred autocorrelation of an image (float64, peak 1 at the centre).

    A Hann window suppresses edge artefacts; a Gaussian high-pass (``highpass_sigma_px``,
    default a tenth of the short side) removes the slowly varying background that would
    otherwise dominate the correlation. Both the high-pass and the correlation are done in
    Fourier space with zero padding (no wrap-around), so the cost is two FFTs.
    """
    img = as_image2d(image)
    h, w = img.shape
    if highpass_sigma_px is None:
        highpass_sigma_px = min(h, w) / 10.0
    img -= img.mean()
    img *= np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    # Padding to a fast FFT length of at least twice the size avoids wrap-around.
    shape = (sfft.next_fast_len(2 * h, real=True), sfft.next_fast_len(2 * w, real=True))
    spec = sfft.rfft2(img, s=shape, workers=-1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    ky = np.fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    kx = np.fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    # Gaussian high-pass (1 - low-pass) applied to the image = its square on the power.
    lowpass = np.exp(np.float32(-2.0 * (np.pi * highpass_sigma_px) ** 2) * (ky * ky + kx * kx))
    power *= (1.0 - lowpass) ** 2
    ac = sfft.irfft2(power, s=shape, workers=-1)
    # Lag (0, 0) is at [0, 0]; roll so that it sits at the centre of an (h, w) array.
    ac = np.roll(ac, (h // 2, w // 2), axis=(0, 1))[:h, :w].astype(np.float64)
    peak = ac[h // 2, w // 2]
    return ac / peak if peak > 0 else ac


def lattice_spacing_px(
    image: object,
    min_spacing_px: float = 2.0,
    max_spacing_px: float | None = None,
    min_peak: float = 0.1,
) -> float:
    """Nearest-neighbour spacing (px) of the dominant lattice in ``image``, or NaN.

    The autocorrelation of a lattice image has a peak at every lattice vector; the nearest
    non-central peak is the nearest-neighbour column spacing (for a heatmap with one blob
    per column this is exact; for a raw HRTEM image it is the shortest fringe period).
    Peaks are located with sub-pixel accuracy (parabolic fit). Returns NaN when no
    off-centre peak reaches ``min_peak`` of the central one (amorphous regions, isolated
    atoms): the caller must then fall back on point spacings.
    """
    ac = autocorrelation(image)
    h, w = ac.shape
    if max_spacing_px is None:
        max_spacing_px = min(h, w) / 4.0
    # Only lags up to max_spacing_px matter: work on that central window.
    m = int(np.ceil(max_spacing_px)) + 2
    cy0, cx0 = h // 2, w // 2
    ac = ac[max(0, cy0 - m) : cy0 + m + 1, max(0, cx0 - m) : cx0 + m + 1]
    cy, cx = cy0 - max(0, cy0 - m), cx0 - max(0, cx0 - m)
    h, w = ac.shape
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - cy, xx - cx)
    # The central peak's own flank is not a lattice peak: start beyond its first minimum
    # along the radial profile.
    radial = ndi.mean(
        ac, labels=np.rint(r).astype(np.int64), index=np.arange(int(max_spacing_px) + 2)
    )
    first_min = int(np.argmax(np.diff(radial) > 0)) if np.any(np.diff(radial) > 0) else 0
    inner = max(min_spacing_px, float(first_min))
    maxima = (ac == ndi.maximum_filter(ac, size=3)) & (r >= inner) & (r <= max_spacing_px)
    maxima &= ac >= min_peak
    if not maxima.any():
        return float("nan")
    ys, xs = np.nonzero(maxima)
    heights = ac[ys, xs]
    # Several lattice vectors share the shortest length; take the strongest peaks' distances
    # (within 70 % of the highest) and return the shortest of those.
    strong = heights >= 0.7 * heights.max()
    ys, xs = ys[strong], xs[strong]
    dists = []
    for y, x in zip(ys, xs):
        dy, dx = _parabolic_offset(ac, y, x)
        dists.append(np.hypot(y + dy - cy, x + dx - cx))
    return float(np.min(dists))


def _parabolic_offset(arr: np.ndarray, y: int, x: int) -> tuple[float, float]:
    """Sub-pixel offset of a local maximum from a 1-D parabola through 3 samples per axis."""
    h, w = arr.shape
    off = [0.0, 0.0]
    for axis, (i, n) in enumerate(((y, h), (x, w))):
        if 0 < i < n - 1:
            if axis == 0:
                a, b, c = arr[y - 1, x], arr[y, x], arr[y + 1, x]
            else:
                a, b, c = arr[y, x - 1], arr[y, x], arr[y, x + 1]
            denom = a - 2 * b + c
            if denom < 0:
                off[axis] = float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))
    return off[0], off[1]
