"""Electron optics: wavelength, aberrations, STEM probe, HRTEM transfer, camera MTF.

Conventions follow abTEM (and Kirkland, *Advanced Computing in Electron Microscopy*) so
parameters mean the same thing here and in abTEM's multislice (tests check it):

- the aberration phase is chi(alpha, phi) = 2 pi / lambda * (1/2 alpha^2 (C10 + C12 cos
  2(phi - phi12)) + 1/4 alpha^4 C30), alpha the scattering angle, phi its azimuth
  measured from the column (x) axis towards the row (y) axis;
- ``defocus = -C10`` (positive defocus = underfocus, Scherzer defocus is positive for
  positive Cs); Cs = C30; two-fold astigmatism = C12 at angle phi12;
- waves are multiplied by exp(-i chi); the temporal envelope uses the 1/e focal spread
  and the spatial envelope the angular spread (standard deviation), as in abTEM's CTF.

Everything here works in Angstrom and radians on NumPy grids laid out (row, col) = (y, x):
``array[i, j]`` is the frequency (ky[i], kx[j]). abTEM arrays are (x, y), so an abTEM
array ``a`` corresponds to ``a.T`` here. Nothing in this module imports abTEM.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft

from . import _fft
from .electron import C_LIGHT, E_CHARGE, H_PLANCK, M_E, wavelength_A


def interaction_sigma_per_V_A(energy_keV: float) -> float:
    """Interaction constant sigma (rad per V*Angstrom): phase = sigma * projected potential."""
    energy_eV = float(energy_keV) * 1e3
    mass = M_E * (1 + E_CHARGE * energy_eV / (M_E * C_LIGHT**2))
    lam_m = wavelength_A(energy_keV) * 1e-10
    # 2 pi m e lambda / h^2 is in rad / (V m); 1e-10 converts to rad / (V Angstrom).
    return 2 * math.pi * mass * E_CHARGE * lam_m / H_PLANCK**2 * 1e-10


def frequency_grid(
    shape: tuple[int, int], sampling_A: float, rfft: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Spatial frequencies (ky, kx) in 1/Angstrom, broadcastable to ``shape``.

    With ``rfft=True`` the x axis has ``shape[1] // 2 + 1`` entries (``numpy.fft.rfft2``
    layout).
    """
    ky = np.fft.fftfreq(shape[0], d=sampling_A)[:, None]
    kx = (np.fft.rfftfreq if rfft else np.fft.fftfreq)(shape[1], d=sampling_A)[None, :]
    return ky.astype(np.float64), kx.astype(np.float64)


def aberration_phase(
    ky: np.ndarray,
    kx: np.ndarray,
    wavelength: float,
    defocus_A: float = 0.0,
    cs_A: float = 0.0,
    astigmatism_A: float = 0.0,
    astigmatism_angle_rad: float = 0.0,
) -> np.ndarray:
    """Aberration phase chi (radians) on a frequency grid (abTEM/Kirkland convention)."""
    k2 = ky**2 + kx**2
    alpha2 = k2 * wavelength**2
    chi = 0.5 * alpha2 * (-defocus_A) + 0.25 * alpha2**2 * cs_A
    if astigmatism_A:
        phi = np.arctan2(ky, kx)
        chi = chi + 0.5 * alpha2 * astigmatism_A * np.cos(2 * (phi - astigmatism_angle_rad))
    return (2 * np.pi / wavelength) * chi


def soft_aperture(
    alpha_rad: np.ndarray,
    cutoff_mrad: float,
    angular_step_mrad: float | np.ndarray,
) -> np.ndarray:
    """Aperture of ones inside ``cutoff_mrad`` with a one-sample linear edge (as abTEM).

    ``angular_step_mrad`` is the grid's angular sampling along the direction of each
    frequency (a scalar for square sampling).
    """
    # At alpha = 0 the step along the (undefined) direction is 0: inf, clipped, set below.
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (cutoff_mrad * 1e-3 - alpha_rad) / (np.asarray(angular_step_mrad) * 1e-3) + 0.5
    out = np.clip(value, 0.0, 1.0)
    if out.ndim and alpha_rad.ndim:
        out[alpha_rad == 0] = 1.0
    return out


def probe_intensity(
    shape: tuple[int, int],
    sampling_A: float,
    energy_keV: float,
    convergence_mrad: float,
    defocus_A: float = 0.0,
    cs_A: float = 0.0,
    astigmatism_A: float = 0.0,
    astigmatism_angle_rad: float = 0.0,
) -> np.ndarray:
    """STEM probe intensity |psi(r)|^2 on a periodic grid, centred on pixel (0, 0).

    Normalised so that ``sum * sampling_A**2 == 1``: the result is in 1/Angstrom^2 and
    convolving a map of cross-sections (Angstrom^2) with it gives the scattered fraction.
    The probe is built exactly as abTEM's ``Probe`` (soft aperture, exp(-i chi)).
    """
    lam = wavelength_A(energy_keV)
    ky, kx = frequency_grid(shape, sampling_A)
    # abTEM softens the aperture edge over one angular sample, measured along each
    # frequency's direction (it matters for non-square grids).
    step_y = lam * 1e3 / (shape[0] * sampling_A)
    step_x = lam * 1e3 / (shape[1] * sampling_A)
    step_mrad = max(step_y, step_x)
    k2 = (ky**2 + kx**2).astype(np.float32)
    # Only frequencies inside the aperture carry the probe: evaluate chi there only.
    k_cut = (convergence_mrad + step_mrad) * 1e-3 / lam
    inside = k2 <= np.float32(k_cut**2)
    rows, cols = np.nonzero(inside)
    kyi = ky[rows, 0]
    kxi = kx[0, cols]
    k_abs = np.sqrt(kyi**2 + kxi**2)
    alpha = k_abs * lam
    safe = np.maximum(k_abs, 1e-12)
    step = np.sqrt((kyi / safe * step_y) ** 2 + (kxi / safe * step_x) ** 2)
    aperture = soft_aperture(alpha, convergence_mrad, step)
    chi = aberration_phase(kyi, kxi, lam, defocus_A, cs_A, astigmatism_A, astigmatism_angle_rad)
    wave_ft = np.zeros(shape, dtype=np.complex64)
    wave_ft[rows, cols] = aperture * np.exp(-1j * chi)
    wave = sfft.ifft2(wave_ft, workers=_fft.FFT_WORKERS)
    intensity = wave.real**2 + wave.imag**2
    intensity /= intensity.sum(dtype=np.float64) * sampling_A**2
    return intensity


def gaussian_transfer(ky: np.ndarray, kx: np.ndarray, sigma_A: float) -> np.ndarray:
    """Fourier transform of a unit-integral Gaussian of standard deviation ``sigma_A``."""
    return np.exp(-2 * np.pi**2 * sigma_A**2 * (ky**2 + kx**2))


def fwhm_to_sigma(fwhm: float) -> float:
    """Standard deviation of a Gaussian with the given full width at half maximum."""
    return fwhm / (2 * math.sqrt(2 * math.log(2)))


def hrtem_wave_transfer(
    ky: np.ndarray,
    kx: np.ndarray,
    energy_keV: float,
    defocus_A: float = 0.0,
    cs_A: float = 0.0,
    astigmatism_A: float = 0.0,
    astigmatism_angle_rad: float = 0.0,
    focal_spread_A: float = 0.0,
    angular_spread_mrad: float = 0.0,
    aperture_mrad: float | None = None,
    angular_step_mrad: float | None = None,
    k_max_per_A: float | None = None,
) -> np.ndarray:
    """Objective-lens transfer applied to the exit wave (quasi-coherent approximation).

    Returns ``A(k) * exp(-i chi(k)) * E_t(k) * E_s(k)`` (complex64) exactly as abTEM's
    ``CTF(semiangle_cutoff, focal_spread, angular_spread, ...)``: the temporal envelope
    exp(-(pi/(2 lambda) * focal_spread * alpha^2)^2) with the 1/e focal spread, and the
    spatial envelope exp(-(theta_s / 2)^2 |grad chi|^2) with theta_s the angular spread
    (standard deviation, mrad). ``aperture_mrad=None`` means no objective aperture.
    ``k_max_per_A`` skips frequencies where the envelopes are negligible (set to 0).
    """
    lam = wavelength_A(energy_keV)
    shape = np.broadcast(ky, kx).shape
    k2_full = (ky**2 + kx**2).astype(np.float32)
    if k_max_per_A is not None:
        rows, cols = np.nonzero(k2_full <= np.float32(k_max_per_A**2))
    else:
        rows, cols = np.nonzero(np.ones(shape, dtype=bool))
    kyi = np.broadcast_to(ky, shape)[rows, cols]
    kxi = np.broadcast_to(kx, shape)[rows, cols]
    alpha = np.sqrt(kyi**2 + kxi**2) * lam
    chi = aberration_phase(kyi, kxi, lam, defocus_A, cs_A, astigmatism_A, astigmatism_angle_rad)
    envelope = np.ones_like(alpha)
    if focal_spread_A:
        envelope *= np.exp(-((0.5 * np.pi / lam * focal_spread_A * alpha**2) ** 2))
    if angular_spread_mrad:
        phi = np.arctan2(kyi, kxi)
        c10 = -defocus_A
        c12 = astigmatism_A
        dchi_dk = (
            2
            * np.pi
            / lam
            * ((c12 * np.cos(2 * (phi - astigmatism_angle_rad)) + c10) * alpha + cs_A * alpha**3)
        )
        dchi_dphi = -2 * np.pi / lam * (c12 * np.sin(2 * (phi - astigmatism_angle_rad)) * alpha)
        spread = angular_spread_mrad * 1e-3
        envelope *= np.exp(-((spread / 2) ** 2) * (dchi_dk**2 + dchi_dphi**2))
    if aperture_mrad is not None:
        if angular_step_mrad is None:
            angular_step_mrad = 1e-9
        envelope *= soft_aperture(alpha, aperture_mrad, angular_step_mrad)
    transfer = np.zeros(shape, dtype=np.complex64)
    transfer[rows, cols] = envelope * np.exp(-1j * chi)
    return transfer


def envelope_cutoff_per_A(
    energy_keV: float,
    focal_spread_A: float,
    cs_A: float,
    defocus_A: float,
    angular_spread_mrad: float,
    aperture_mrad: float | None,
    threshold: float = 1e-3,
) -> float:
    """Spatial frequency (1/Angstrom) beyond which the HRTEM transfer is below ``threshold``.

    Used to choose an internal sampling fine enough that nothing transferred is aliased.
    """
    lam = wavelength_A(energy_keV)
    k = np.linspace(0.0, 4.0, 4001)
    alpha = k * lam
    env = np.ones_like(k)
    if focal_spread_A:
        env *= np.exp(-((0.5 * np.pi / lam * focal_spread_A * alpha**2) ** 2))
    if angular_spread_mrad:
        dchi = 2 * np.pi / lam * (-defocus_A * alpha + cs_A * alpha**3)
        env *= np.exp(-((angular_spread_mrad * 1e-3 / 2) ** 2) * dchi**2)
    if aperture_mrad is not None:
        env *= alpha <= aperture_mrad * 1e-3
    above = np.nonzero(env >= threshold)[0]
    return float(k[above[-1]]) if above.size else float(k[1])


def camera_mtf(shape: tuple[int, int], mtf_at_nyquist: float) -> np.ndarray:
    """Camera modulation transfer function on an rfft2 grid of the final image.

    A Lorentzian-like MTF(f) = 1 / (1 + (f / f0)^2) with f in cycles per pixel, f0 chosen
    so that MTF = ``mtf_at_nyquist`` at f = 0.5 along an axis (typical scintillator
    cameras 0.1-0.3, direct detectors 0.5-0.8). 1.0 means a perfect detector.
    """
    if mtf_at_nyquist >= 1.0:
        return np.ones((shape[0], shape[1] // 2 + 1))
    f0_sq = 0.25 * mtf_at_nyquist / (1.0 - mtf_at_nyquist)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    return 1.0 / (1.0 + (fy**2 + fx**2) / f0_sq)


def scherzer_defocus_A(cs_A: float, energy_keV: float) -> float:
    """Scherzer defocus (Angstrom, abTEM sign: positive = underfocus for positive Cs)."""
    lam = wavelength_A(energy_keV)
    return float(np.sign(cs_A) * math.sqrt(1.5 * abs(cs_A) * lam))
