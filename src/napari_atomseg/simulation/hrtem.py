"""Fast HRTEM: projected potential, phase-object exit wave, objective-lens transfer.

The specimen's projected potential V(r) is built in Fourier space from each element's
Lobato form factor (:mod:`.potentials`, identical to abTEM's) with a Debye-Waller blur.
The exit wave is the phase object exp(i sigma V) (projection approximation: exact for
single layers, good for thin specimens); the objective lens applies exp(-i chi) with
temporal and spatial coherence envelopes and an optional aperture, in the same
conventions as abTEM's ``CTF`` (:mod:`.optics`). The image |psi|^2 is binned into camera
pixels (the camera MTF and noise are applied in :mod:`.detector`). Black-atom or
white-atom contrast follows from the sign of defocus and Cs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.data import atomic_numbers
from scipy import fft as sfft

from . import _fft, optics, render
from .potentials import debye_waller_sigma_A, projected_potential_ft
from .render import (
    RenderGrid,
    bilinear_correction,
    deposit,
    make_grid,
    radial_function,
    sample_statistical,
    statistical_layer_counts,
)
from .scene import Scene

#: finest internal sampling used for HRTEM (Angstrom): resolves the phase grating of
#: light and heavy atoms well enough for everything the lens transfers
MIN_SAMPLING_A = 0.12


@dataclass
class FastHrtemImage:
    """Image intensity (vacuum = 1) and linear background contrast per pixel."""

    intensity: np.ndarray  # (H, W)
    other_contrast: np.ndarray  # linear image of the amorphous material alone
    psf_area_A2: float  # area of the central lobe of the linear point response (A^2)


def hrtem_transfer_cutoff_per_A(p, threshold: float = 1e-2) -> float:
    """Frequency (1/A) beyond which the lens transfers less than ``threshold``."""
    aperture = p.objective_aperture_mrad or None
    return optics.envelope_cutoff_per_A(
        p.energy_keV,
        p.focal_spread_nm * 10,
        p.cs_um * 1e4,
        p.defocus_nm * 10,
        p.angular_spread_mrad,
        aperture,
        threshold=threshold,
    )


def hrtem_grid(p, margin_A: float) -> RenderGrid:
    """Internal grid: sampling <= 1 / (2 k_max) (k_max where the transfer falls to 1 %).

    The transferred wave is then sampled without loss; |psi|^2 holds frequencies up to
    2 k_max, and those above the grid's Nyquist are products of two damped beams.
    """
    k_max = hrtem_transfer_cutoff_per_A(p)
    target = max(1.0 / (2.0 * k_max), MIN_SAMPLING_A)
    return make_grid(p.shape_px, p.pixel_size_nm * 10, target, margin_A, camera=True)


def delocalisation_A(p) -> float:
    """How far (Angstrom) the lens spreads a point: |grad chi| / (2 pi) at the frequency
    where the transfer has fallen to 10 % (what is delocalised further is faint)."""
    lam = optics.wavelength_A(p.energy_keV)
    k = hrtem_transfer_cutoff_per_A(p, threshold=0.1)
    return abs(-p.defocus_nm * 10 * lam * k + p.cs_um * 1e4 * lam**3 * k**3) + abs(
        p.astigmatism_nm * 10 * lam * k
    )


def lens_transfer(p, grid: RenderGrid) -> np.ndarray:
    """Objective-lens wave transfer on the full FFT grid (complex64), fast.

    Identical to :func:`.optics.hrtem_wave_transfer` (abTEM's CTF) except that the spatial
    envelope ignores astigmatism's (second-order) contribution to |grad chi|, which lets
    every envelope be a radial table lookup; the astigmatism phase itself is exact.
    """
    lam = optics.wavelength_A(p.energy_keV)
    defocus = p.defocus_nm * 10
    cs = p.cs_um * 1e4
    spread = p.angular_spread_mrad * 1e-3
    focal = p.focal_spread_nm * 10
    aperture = p.objective_aperture_mrad * 1e-3
    step = lam / (max(grid.shape) * grid.sampling_A)

    def envelope(k):
        """Temporal times spatial coherence envelope at spatial frequency ``k`` (1/A)."""
        alpha = k * lam
        env = np.exp(-((0.5 * np.pi / lam * focal * alpha**2) ** 2))
        dchi = 2 * np.pi / lam * (-defocus * alpha + cs * alpha**3)
        return env * np.exp(-((spread / 2) ** 2) * dchi**2)

    index, dk = render.radial_index_full(grid.shape, grid.sampling_A)
    k_table = np.arange(render.RADIAL_SAMPLES) * dk
    env = envelope(k_table).astype(np.float32)[index]
    # The phase varies fast at high k: evaluate it exactly (a polynomial in k^2), not
    # from the table.
    ky = np.fft.fftfreq(grid.shape[0], d=grid.sampling_A).astype(np.float32)[:, None]
    kx = np.fft.fftfreq(grid.shape[1], d=grid.sampling_A).astype(np.float32)[None, :]
    k2 = ky * ky + kx * kx
    c2 = np.float32(np.pi * lam * -defocus)
    c4 = np.float32(0.5 * np.pi * lam**3 * cs)
    phase = k2 * (c2 + c4 * k2)
    if aperture > 0:  # a sharp edge: evaluated exactly rather than from the table
        alpha = np.sqrt(k2) * np.float32(lam)
        env = env * np.clip((np.float32(aperture) - alpha) / np.float32(step) + 0.5, 0, 1)
    if p.astigmatism_nm:
        a2 = 2 * np.deg2rad(p.astigmatism_angle_deg)
        astig = (kx * kx - ky * ky) * np.float32(np.cos(a2)) + (2 * kx * ky) * np.float32(
            np.sin(a2)
        )
        phase += np.float32(np.pi * lam * p.astigmatism_nm * 10) * astig
    transfer = np.empty(grid.shape, dtype=np.complex64)
    transfer.real = env * np.cos(phase)
    transfer.imag = env * -np.sin(phase)
    return transfer


def _form_factor(grid: RenderGrid, symbol: str) -> np.ndarray:
    """Projected-potential form factor with Debye-Waller blur, per deposited atom per pixel."""
    dw = debye_waller_sigma_A(symbol)
    area = grid.sampling_A**2
    return radial_function(
        grid,
        lambda k: (
            projected_potential_ft(symbol, k**2) * np.exp(-2 * np.pi**2 * dw**2 * k**2) / area
        ),
    )


def _light_weights(symbols, grid: RenderGrid) -> dict[str, float]:
    """Weights that make light elements' potentials a multiple of carbon's.

    Amorphous layers mix C, N, O and H; their form factors have nearly the same shape,
    so one FFT with carbon's form factor and per-element weights (the ratio at 0.5 1/A,
    where amorphous speckle lives) replaces one FFT per element.
    """
    k2 = np.array([0.25])
    ref = float(projected_potential_ft("C", k2)[0])
    return {s: float(projected_potential_ft(s, k2)[0]) / ref for s in symbols}


def render_hrtem(p, scene: Scene, grid: RenderGrid, rng: np.random.Generator) -> FastHrtemImage:
    """Noise-free HRTEM intensity at the output (camera) pixels."""
    workers = _fft.FFT_WORKERS
    correction = bilinear_correction(grid.shape)
    is_col = scene.point_column >= 0
    means = statistical_layer_counts(scene, grid)
    rshape = (grid.shape[0], grid.shape[1] // 2 + 1)
    v_cols = np.zeros(rshape, dtype=np.complex64)
    v_other = np.zeros(rshape, dtype=np.complex64)
    z = {s: atomic_numbers[s] for s in [*scene.elements, *means]}

    # Columns (crystal, particles, single atoms): exact form factor per element.
    for index, symbol in enumerate(scene.elements):
        sel = is_col & (scene.point_element == index)
        if sel.any():
            dep = deposit(grid, scene.point_yx_A[sel], scene.point_atoms[sel])
            v_cols += sfft.rfft2(dep, workers=workers) * (correction * _form_factor(grid, symbol))

    # Amorphous material: heavy explicit atoms per element, light ones (and the
    # statistical part) together as carbon-equivalents.
    light = [s for s in z if z[s] <= 10]
    weights = _light_weights(light, grid)
    light_index = [i for i, s in enumerate(scene.elements) if s in weights]
    other = None
    amorphous = ~is_col
    if light_index:
        sel = amorphous & np.isin(scene.point_element, light_index)
        if sel.any():
            w = np.array([weights.get(s, 0.0) for s in scene.elements])[scene.point_element[sel]]
            other = deposit(grid, scene.point_yx_A[sel], scene.point_atoms[sel] * w)
    stat = sample_statistical({s: m for s, m in means.items() if s in weights}, weights, rng)
    if stat is not None:
        other = stat if other is None else other + stat
    if other is not None:
        # (no bilinear correction: statistical counts sit on pixel centres, and a
        # sub-pixel blur of amorphous atoms is immaterial)
        v_other += sfft.rfft2(other, workers=workers) * _form_factor(grid, "C")
    for index, symbol in enumerate(scene.elements):
        if z[symbol] <= 10:
            continue
        sel = amorphous & (scene.point_element == index)
        if sel.any():
            dep = deposit(grid, scene.point_yx_A[sel], scene.point_atoms[sel])
            v_other += sfft.rfft2(dep, workers=workers) * (correction * _form_factor(grid, symbol))

    sigma = optics.interaction_sigma_per_V_A(p.energy_keV)
    potential = sfft.irfft2(v_cols + v_other, s=grid.shape, workers=workers)
    wave = np.exp(1j * (sigma * potential).astype(np.float32))
    transfer = lens_transfer(p, grid)
    image_wave = sfft.ifft2(sfft.fft2(wave, workers=workers) * transfer, workers=workers)
    intensity = image_wave.real**2 + image_wave.imag**2

    # Linear (weak-phase) contrast: 2 sigma V convolved with the lens' -Im(T) response.
    linear = (-2.0 * sigma) * transfer[:, : rshape[1]].imag
    response = sfft.irfft2(linear.astype(np.complex64), s=grid.shape, workers=workers)
    centre = abs(float(response[0, 0]))
    near = _distance_A(grid) <= 0.8 / hrtem_transfer_cutoff_per_A(p)
    area = float(np.count_nonzero(near & (np.abs(response) >= 0.5 * centre))) * grid.sampling_A**2
    other_lin = sfft.irfft2(v_other * linear, s=grid.shape, workers=workers)
    return FastHrtemImage(
        intensity=grid.bin_to_output(intensity).astype(np.float32),
        other_contrast=grid.bin_to_output(other_lin).astype(np.float32),
        psf_area_A2=max(area, grid.sampling_A**2),
    )


def _distance_A(grid: RenderGrid) -> np.ndarray:
    """Distance (Angstrom) of each internal pixel from pixel (0, 0) on the periodic grid."""
    ny, nx = grid.shape
    y = np.minimum(np.arange(ny), ny - np.arange(ny))[:, None] * grid.sampling_A
    x = np.minimum(np.arange(nx), nx - np.arange(nx))[None, :] * grid.sampling_A
    return np.sqrt(y**2 + x**2)
