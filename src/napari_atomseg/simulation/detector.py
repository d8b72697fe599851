"""Detector and scan: STEM scan distortions, dose and shot noise, camera MTF, artefacts.

STEM scans the probe line by line (fast axis = columns, slow axis = rows). The probe
position of output pixel (r, c) is displaced by per-line jitter, slow drift over the
frame and a decaying "flyback" distortion at the start of each line;
:class:`ScanDistortion` gives those positions (to sample the image) and inverts them (to
report where each column *appears*). Noise: Poisson counting of ``dose * pixel area``
electrons, detector gain and dark offset, Gaussian read noise, a detector response that
smears along the fast scan, a smooth background, an illumination gradient and occasional
bright spots (cosmic rays / X-ray hits on a camera, spikes on a STEM detector); per-line
offsets of a STEM scan (scan-line noise) and a non-linear, saturating detector response.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy.signal import lfilter

from . import optics
from .fields import SmoothField


@dataclass
class ScanDistortion:
    """Probe-position displacement (Angstrom) of every output pixel.

    ``dx_line`` is a per-row x shift (jitter), ``drift_yx_A`` the drift over the whole
    frame, ``flyback_A`` / ``flyback_decay_px`` the line-start distortion.
    """

    shape: tuple[int, int]
    pixel_A: float
    dx_line_A: np.ndarray
    dy_line_A: np.ndarray
    drift_yx_A: tuple[float, float]
    flyback_A: float
    flyback_decay_px: float

    @classmethod
    def none(cls, shape: tuple[int, int], pixel_A: float) -> ScanDistortion:
        """No distortion: every probe position is its pixel's centre."""
        return cls(shape, pixel_A, np.zeros(shape[0]), np.zeros(shape[0]), (0.0, 0.0), 0.0, 1.0)

    @classmethod
    def from_parameters(cls, p, rng: np.random.Generator) -> ScanDistortion:
        """Random line jitter (correlated from line to line) plus the drift and fly-back
        that ``p`` (:class:`~.parameters.SimulationParameters`) asks for."""
        h, w = p.shape_px
        px = p.pixel_size_nm * 10
        if p.scan_jitter_px > 0:
            # Line jitter is partly correlated from line to line (mains pick-up, vibration).
            rho = rng.uniform(0.0, 0.9)
            white = rng.standard_normal(h)
            jitter = lfilter([np.sqrt(1 - rho**2)], [1, -rho], white)
            dx = p.scan_jitter_px * px * jitter
            dy = 0.2 * p.scan_jitter_px * px * rng.standard_normal(h)
        else:
            dx = np.zeros(h)
            dy = np.zeros(h)
        drift = (p.drift_nm[0] * 10, p.drift_nm[1] * 10)
        return cls((h, w), px, dx, dy, drift, p.flyback_px * px, p.flyback_decay_px)

    @property
    def is_identity(self) -> bool:
        """True when no probe position is displaced."""
        return (
            not self.dx_line_A.any()
            and not self.dy_line_A.any()
            and self.drift_yx_A == (0.0, 0.0)
            and self.flyback_A == 0.0
        )

    def max_displacement_A(self) -> float:
        """An upper bound of any probe displacement, Angstrom (the parts' maxima added)."""
        return float(
            np.abs(self.dx_line_A).max(initial=0)
            + np.abs(self.dy_line_A).max(initial=0)
            + np.hypot(*self.drift_yx_A)
            + abs(self.flyback_A)
        )

    def _displacement(self, r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.shape
        rows = np.arange(h)
        t = (r * w + c) / (h * w)  # fraction of the frame time elapsed
        dy = np.interp(r, rows, self.dy_line_A) + self.drift_yx_A[0] * t
        dx = np.interp(r, rows, self.dx_line_A) + self.drift_yx_A[1] * t
        if self.flyback_A:
            dx = dx + self.flyback_A * np.exp(-np.maximum(c, 0) / self.flyback_decay_px)
        return dy, dx

    def probe_positions_A(self) -> tuple[np.ndarray, np.ndarray]:
        """(y, x) in Angstrom of the probe at every output pixel, shape (H, W) each."""
        h, w = self.shape
        r, c = np.meshgrid(np.arange(h, dtype=float), np.arange(w, dtype=float), indexing="ij")
        dy, dx = self._displacement(r, c)
        return r * self.pixel_A + dy, c * self.pixel_A + dx

    def apparent_pixels(self, y_A: np.ndarray, x_A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output-pixel (row, col) where a specimen point (y, x) in Angstrom appears."""
        r = np.asarray(y_A, dtype=float) / self.pixel_A
        c = np.asarray(x_A, dtype=float) / self.pixel_A
        if self.is_identity:
            return r, c
        r0, c0 = r.copy(), c.copy()
        for _ in range(12):  # fixed point: pixel = target - displacement(pixel)
            dy, dx = self._displacement(np.clip(r, 0, self.shape[0] - 1), c)
            r = r0 - dy / self.pixel_A
            c = c0 - dx / self.pixel_A
        return r, c


def smooth_background(shape, rng: np.random.Generator, scale_px: float) -> np.ndarray:
    """Positive smooth field of mean 1 (low-frequency background / gain variations)."""
    h, w = shape
    field = SmoothField(rng, (0.0, float(h), 0.0, float(w)), corr_A=scale_px)
    values = field.on_grid(np.arange(h, dtype=float), np.arange(w, dtype=float))
    return np.exp(0.5 * values - 0.125).astype(np.float32)


def illumination_ramp(shape, gradient: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative linear ramp 1 +- gradient/2 across the field, random direction."""
    h, w = shape
    angle = rng.uniform(0, 2 * np.pi)
    r, c = np.meshgrid(np.linspace(-0.5, 0.5, h), np.linspace(-0.5, 0.5, w), indexing="ij")
    return (1.0 + gradient * (np.sin(angle) * r + np.cos(angle) * c)).astype(np.float32)


def add_bright_spots(
    image: np.ndarray, rate_per_megapixel: float, level: float, rng: np.random.Generator
) -> np.ndarray:
    """Add a few small bright blobs (1-3 px) of ``level`` x (2-20) counts."""
    n = rng.poisson(rate_per_megapixel * image.size / 1e6)
    out = image
    h, w = image.shape
    for _ in range(n):
        r, c = rng.integers(0, h), rng.integers(0, w)
        size = int(rng.integers(1, 3))
        value = level * rng.uniform(2, 20)
        out[max(0, r - size + 1) : r + size, max(0, c - size + 1) : c + size] += value
    return out


def scan_lowpass(image: np.ndarray, tau_px: float) -> np.ndarray:
    """Causal exponential smoothing along rows (detector response during the fast scan)."""
    if tau_px <= 0:
        return image
    a = np.exp(-1.0 / tau_px)
    return lfilter([1 - a], [1, -a], image, axis=1).astype(np.float32)


def lowpass_delay_px(tau_px: float) -> float:
    """Mean delay (pixels) of :func:`scan_lowpass`, i.e. how far features move along x."""
    if tau_px <= 0:
        return 0.0
    a = np.exp(-1.0 / tau_px)
    return a / (1 - a)


def apply_mtf(image: np.ndarray, mtf_at_nyquist: float) -> np.ndarray:
    """Camera MTF (see :func:`.optics.camera_mtf`) applied in Fourier space."""
    if mtf_at_nyquist >= 1.0:
        return image
    mtf = optics.camera_mtf(image.shape, mtf_at_nyquist)
    return sfft.irfft2(sfft.rfft2(image) * mtf, s=image.shape).astype(np.float32)


def motion_blur(image: np.ndarray, length_px: float, angle_rad: float) -> np.ndarray:
    """Blur by uniform motion over ``length_px`` (specimen drift during an exposure)."""
    if length_px <= 0.05:
        return image
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.rfftfreq(image.shape[1])[None, :]
    proj = length_px * (np.sin(angle_rad) * fy + np.cos(angle_rad) * fx)
    return sfft.irfft2(sfft.rfft2(image) * np.sinc(proj), s=image.shape).astype(np.float32)


def line_offsets(shape, rms_counts: float, rng: np.random.Generator) -> np.ndarray:
    """Per-line additive offsets (H, 1): the detector's baseline wanders between scan lines
    (amplifier drift, mains pick-up), so whole lines are brighter or darker."""
    return (rms_counts * rng.standard_normal((shape[0], 1))).astype(np.float32)


def detector_response(
    signal: np.ndarray, gamma: float, saturation: float, reference: float
) -> np.ndarray:
    """Non-linear, saturating response applied to a signal above the dark level.

    ``reference`` is the brightest signal of the field (e.g. a high percentile of the
    noise-free image); the response keeps it fixed for ``gamma`` (y = ref (x / ref)^gamma,
    gamma < 1 compresses the bright end) and saturates smoothly at ``saturation`` x
    ``reference`` (y = x / (1 + (x / S)^6)^(1/6): linear well below S, flat at S; 0 = no
    saturation)."""
    if gamma == 1.0 and saturation <= 0:
        return signal
    ref = max(float(reference), 1e-12)
    x = np.maximum(np.asarray(signal, dtype=np.float64), 0.0)
    if gamma != 1.0:
        x = ref * (x / ref) ** gamma
    if saturation > 0:
        level = saturation * ref
        x = x / (1.0 + (x / level) ** 6) ** (1.0 / 6.0)
    return x.astype(np.float32)
