"""Fast ADF/HAADF-STEM: incoherent imaging, probe intensity convolved with a Z^n object.

In the incoherent approximation the annular-dark-field signal at probe position r is
sum_atoms sigma(Z) * |psi_probe(r - r_atom)|^2: the fraction of the beam scattered onto the
detector. sigma(Z) = sigma_Au (Z / 79)^n (:mod:`.potentials`); long columns saturate
(channelling, absorption), modelled as N_eff = N_s (1 - exp(-N / N_s)) per column. The
probe comes from the same aberration function as abTEM's (:mod:`.optics`) and is blurred
by the finite source size and the thermal vibration of the atoms. The result is sampled
at the (scan-distorted) probe positions of every output pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy.ndimage import map_coordinates

from . import optics, render
from .potentials import haadf_cross_section_A2
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

#: rms width (Angstrom) of the ADF "object" of one atom: thermal vibration plus the
#: finite extent of high-angle scattering
ATOM_BLUR_A = 0.08


@dataclass
class FastStemImage:
    """Fractions of the beam reaching the detector at each output pixel."""

    columns: np.ndarray  # from crystalline columns / particles / single atoms (H, W)
    other: np.ndarray  # from amorphous material (H, W)
    psf_peak_per_A2: float  # peak of the probe intensity (incl. blur), 1/A^2
    psf_area_A2: float  # area of the probe intensity above half its peak (A^2)
    column_signal_A2: np.ndarray  # effective cross-section of each scene column (A^2)


def stem_grid(p, margin_A: float) -> RenderGrid:
    """Internal grid for the probe intensity.

    The probe intensity transfers frequencies up to K = 2 alpha / lambda but very weakly
    near K; a sampling of lambda / (2.8 alpha) keeps everything above ~2 % of the
    transfer below Nyquist. Coarser output pixels are oversampled (at most 2x).
    """
    lam = optics.wavelength_A(p.energy_keV)
    target = lam / (2.8 * p.convergence_mrad * 1e-3)
    return make_grid(p.shape_px, p.pixel_size_nm * 10, target, margin_A, camera=False)


def probe_psf_ft(p, grid: RenderGrid) -> tuple[np.ndarray, float]:
    """rfft2 of the probe intensity (with source-size and atom blur), its peak (1/A^2) and
    the area above half the peak (A^2)."""
    probe = optics.probe_intensity(
        grid.shape,
        grid.sampling_A,
        p.energy_keV,
        p.convergence_mrad,
        defocus_A=p.defocus_nm * 10,
        cs_A=p.cs_um * 1e4,
        astigmatism_A=p.astigmatism_nm * 10,
        astigmatism_angle_rad=np.deg2rad(p.astigmatism_angle_deg),
    )
    blur = np.hypot(optics.fwhm_to_sigma(p.source_size_nm * 10), ATOM_BLUR_A)
    gauss = radial_function(grid, lambda k: np.exp(-2 * np.pi**2 * blur**2 * k**2))
    psf_ft = sfft.rfft2(probe, workers=render.FFT_WORKERS) * gauss
    psf = sfft.irfft2(psf_ft, s=grid.shape, workers=render.FFT_WORKERS)
    peak = float(psf.max())
    area = float(np.count_nonzero(psf >= 0.5 * peak)) * grid.sampling_A**2
    return psf_ft, peak, area


def saturation_factor(n_atoms: np.ndarray, saturation_atoms: float) -> np.ndarray:
    """N_eff / N for columns of ``n_atoms``: N_s (1 - exp(-N / N_s)) / N (1 for N -> 0)."""
    n = np.asarray(n_atoms, dtype=float)
    ns = float(saturation_atoms)
    return np.where(n > 0, ns * -np.expm1(-n / ns) / np.maximum(n, 1e-12), 1.0)


def _cross_sections(p, z) -> np.ndarray:
    return haadf_cross_section_A2(z, p.z_exponent, p.energy_keV, p.adf_inner_mrad, p.adf_outer_mrad)


@dataclass
class HaadfSpectra:
    """The noise-free HAADF fractions on the internal grid, in Fourier space (rfft2).

    Kept separate from the sampling so a movie can shift the specimen by a sub-pixel
    drift exactly (a phase ramp) and add moving atoms by linearity (:mod:`.movie`).
    """

    columns_ft: np.ndarray  # columns / particles / single atoms, probe-convolved
    other_ft: np.ndarray | None  # amorphous material, probe-convolved (None: none)
    psf_ft: np.ndarray  # rfft2 of the probe intensity incl. blur
    psf_peak_per_A2: float
    psf_area_A2: float
    column_signal_A2: np.ndarray  # effective cross-section of each scene column (A^2)
    point_weights: np.ndarray  # what each render point deposits (cross-section x saturation)


def haadf_spectra(p, scene: Scene, grid: RenderGrid, rng: np.random.Generator) -> HaadfSpectra:
    """Probe-convolved column and amorphous fractions on the internal grid (rfft2)."""
    sigma_el = _cross_sections(p, scene.column_atomic_numbers())
    saturation = saturation_factor(scene.column_counts.sum(1), p.haadf_saturation_atoms)
    col = scene.point_column
    is_col = col >= 0
    weights = scene.point_atoms * sigma_el[scene.point_element]
    if saturation.size:
        weights = weights * np.where(is_col, saturation[np.maximum(col, 0)], 1.0)

    correction = bilinear_correction(grid.shape)
    psf_ft, peak, area = probe_psf_ft(p, grid)
    workers = render.FFT_WORKERS
    dep = deposit(grid, scene.point_yx_A[is_col], weights[is_col])
    cols_ft = sfft.rfft2(dep, workers=workers) * correction
    # Amorphous material: explicit atoms and the statistical part share one FFT (no
    # bilinear correction: a sub-pixel blur of amorphous atoms is immaterial).
    other = None
    if (~is_col).any():
        other = deposit(grid, scene.point_yx_A[~is_col], weights[~is_col])
    means = statistical_layer_counts(scene, grid)
    if means:
        from ase.data import atomic_numbers

        w = {s: float(_cross_sections(p, atomic_numbers[s])) for s in means}
        stat = sample_statistical(means, w, rng)
        other = stat if other is None else other + stat
    other_ft = None
    if other is not None:
        other_ft = sfft.rfft2(other, workers=workers) * psf_ft
    return HaadfSpectra(
        columns_ft=cols_ft * psf_ft,
        other_ft=other_ft,
        psf_ft=psf_ft,
        psf_peak_per_A2=peak,
        psf_area_A2=area,
        column_signal_A2=(scene.column_counts @ sigma_el) * saturation,
        point_weights=weights,
    )


def render_haadf(
    p,
    scene: Scene,
    grid: RenderGrid,
    sample_yx_A: tuple[np.ndarray, np.ndarray] | None,
    rng: np.random.Generator,
) -> FastStemImage:
    """Noise-free HAADF fractions at the output pixels.

    ``sample_yx_A`` are the probe positions of the output pixels (scan distortion); None
    means the ideal raster.
    """
    spectra = haadf_spectra(p, scene, grid, rng)
    workers = render.FFT_WORKERS
    cols = sfft.irfft2(spectra.columns_ft, s=grid.shape, workers=workers)
    if spectra.other_ft is not None:
        other = sfft.irfft2(spectra.other_ft, s=grid.shape, workers=workers)
    else:
        other = np.zeros(grid.shape)
    return FastStemImage(
        columns=sample_output(grid, cols, sample_yx_A),
        other=sample_output(grid, other, sample_yx_A),
        psf_peak_per_A2=spectra.psf_peak_per_A2,
        psf_area_A2=spectra.psf_area_A2,
        column_signal_A2=spectra.column_signal_A2,
    )


def sample_output(
    grid: RenderGrid, fine: np.ndarray, sample_yx_A: tuple[np.ndarray, np.ndarray] | None
) -> np.ndarray:
    """Point-sample the internal image at the output probe positions."""
    h, w = grid.output_shape
    s = grid.oversample
    b = grid.block_start_px
    if sample_yx_A is None:
        return fine[b : b + h * s : s, b : b + w * s : s].astype(np.float32)
    iy, ix = grid.to_index(*sample_yx_A)
    out = map_coordinates(fine, [iy.ravel(), ix.ravel()], order=1, mode="grid-wrap")
    return out.reshape(h, w).astype(np.float32)
