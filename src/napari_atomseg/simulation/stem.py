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

from . import _fft, optics
from .potentials import calibrated_z_exponent, haadf_cross_section_A2
from .render import (
    RenderGrid,
    bilinear_correction,
    deposit,
    make_grid,
    sample_statistical,
    statistical_layer_counts,
)
from .scene import Scene
from .stem_depth import DepthProbes, depth_points, layer_depth_ranges, render_depth_columns
from .stem_probe import blurred_probe_ft, probe_on_grid


@dataclass
class FastStemImage:
    """Fractions of the beam reaching the detector at each output pixel."""

    columns: np.ndarray  # from crystalline columns / particles / single atoms (H, W)
    other: np.ndarray  # from amorphous material (H, W)
    psf_peak_per_A2: float  # peak of the probe intensity (incl. blur), 1/A^2
    psf_area_A2: float  # area of the probe intensity above half its peak (A^2)
    column_signal_A2: np.ndarray  # effective cross-section of each scene column (A^2)
    #: probe peak per scene column (1/A^2), where the depth of field makes it differ
    column_peak_per_A2: np.ndarray | None = None


def stem_grid(p, margin_A: float) -> RenderGrid:
    """Internal grid for the probe intensity.

    The probe intensity transfers frequencies up to K = 2 alpha / lambda but very weakly
    near K; a sampling of lambda / (2.8 alpha) keeps everything above ~2 % of the
    transfer below Nyquist. Coarser output pixels are oversampled (at most 2x).
    """
    lam = optics.wavelength_A(p.energy_keV)
    target = lam / (2.8 * p.convergence_mrad * 1e-3)
    return make_grid(p.shape_px, p.pixel_size_nm * 10, target, margin_A, camera=False)


def probe_psf_ft(p, grid: RenderGrid, defocus_A: float | None = None, transform_only: bool = False):
    """rfft2 of the probe intensity (with source-size and atom blur, and the weak broad
    halo of ``probe_tail_fraction``), its peak (1/A^2) and the area above half the peak
    (A^2). ``defocus_A`` overrides the parameters' defocus (depth of field);
    ``transform_only`` returns the rfft2 alone (one inverse FFT less)."""
    probe = probe_on_grid(p, grid.shape, grid.sampling_A, defocus_A)
    psf_ft = blurred_probe_ft(p, grid, sfft.rfft2(probe, workers=_fft.FFT_WORKERS))
    if transform_only:
        return psf_ft
    psf = sfft.irfft2(psf_ft, s=grid.shape, workers=_fft.FFT_WORKERS)
    peak = float(psf.max())
    area = float(np.count_nonzero(psf >= 0.5 * peak)) * grid.sampling_A**2
    return psf_ft, peak, area


def saturation_factor(n_atoms: np.ndarray, saturation_atoms: float) -> np.ndarray:
    """N_eff / N for columns of ``n_atoms``: N_s (1 - exp(-N / N_s)) / N (1 for N -> 0)."""
    n = np.asarray(n_atoms, dtype=float)
    ns = float(saturation_atoms)
    return np.where(n > 0, ns * -np.expm1(-n / ns) / np.maximum(n, 1e-12), 1.0)


def z_exponent(p, kind: str = "columns") -> float:
    """The parameters' Z exponent for atoms in columns or isolated atoms, or the one
    calibrated for their energy and detector (:func:`.potentials.calibrated_z_exponent`)."""
    value = p.z_exponent if kind == "columns" else getattr(p, "z_exponent_isolated", None)
    if value is not None:
        return float(value)
    return calibrated_z_exponent(p.energy_keV, p.adf_inner_mrad, p.adf_outer_mrad, kind)


def _cross_sections(p, z, kind: str = "columns") -> np.ndarray:
    return haadf_cross_section_A2(
        z, z_exponent(p, kind), p.energy_keV, p.adf_inner_mrad, p.adf_outer_mrad
    )


def _weights(p, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Each render point's cross-section (A^2; columns saturate) and each column's signal.

    Atoms in crystal and particle columns scatter with the columns' Z exponent; single
    atoms, adatoms and amorphous material with the isolated atoms' one."""
    from .scene import REGIONS

    z = scene.column_atomic_numbers()
    sigma_col = _cross_sections(p, z, "columns")
    sigma_iso = _cross_sections(p, z, "isolated")
    saturation = saturation_factor(scene.column_counts.sum(1), p.haadf_saturation_atoms)
    isolated_col = np.isin(
        scene.column_region, (REGIONS.index("single_atom"), REGIONS.index("adatom"))
    )
    col = scene.point_column
    is_col = col >= 0
    iso_point = ~is_col | isolated_col[np.maximum(col, 0)] if len(isolated_col) else ~is_col
    weights = scene.point_atoms * np.where(
        iso_point, sigma_iso[scene.point_element], sigma_col[scene.point_element]
    )
    if saturation.size:
        weights = weights * np.where(is_col, saturation[np.maximum(col, 0)], 1.0)
    signal = np.where(
        isolated_col, scene.column_counts @ sigma_iso, scene.column_counts @ sigma_col
    )
    return weights, signal * saturation


@dataclass
class HaadfSpectra:
    """The noise-free HAADF fractions on the internal grid, in Fourier space (rfft2).

    Kept separate from the sampling so a movie can shift the specimen by a sub-pixel
    drift exactly (a phase ramp) and add moving atoms by linearity (:mod:`.movie`).
    """

    columns_ft: np.ndarray  # columns / particles / single atoms, probe-convolved
    other_ft: np.ndarray | None  # amorphous material, probe-convolved (None: none)
    psf_ft: np.ndarray  # rfft2 of the probe intensity incl. blur (at ``defocus_nm``)
    psf_peak_per_A2: float
    psf_area_A2: float
    column_signal_A2: np.ndarray  # effective cross-section of each scene column (A^2)
    point_weights: np.ndarray  # what each render point deposits (cross-section x saturation)
    #: probe peak per scene column (1/A^2), where the depth of field makes it differ
    column_peak_per_A2: np.ndarray | None = None


def haadf_spectra(p, scene: Scene, grid: RenderGrid, rng: np.random.Generator) -> HaadfSpectra:
    """Probe-convolved column and amorphous fractions on the internal grid (rfft2).

    With ``depth_of_field`` single atoms, adatoms and the amorphous layers are convolved
    with the probe at their depth (:mod:`.stem_depth`); ``psf_ft`` stays the focal one."""
    weights, column_signal = _weights(p, scene)
    if getattr(p, "depth_of_field", False):
        return _spectra_with_depth(p, scene, grid, rng, weights, column_signal)
    is_col = scene.point_column >= 0
    correction = bilinear_correction(grid.shape)
    psf_ft, peak, area = probe_psf_ft(p, grid)
    workers = _fft.FFT_WORKERS
    dep = deposit(grid, scene.point_yx_A[is_col], weights[is_col])
    cols_ft = sfft.rfft2(dep, workers=workers) * correction
    # Amorphous material: explicit atoms and the statistical part share one FFT (no
    # bilinear correction: a sub-pixel blur of amorphous atoms is immaterial).
    other = _amorphous_deposit(p, scene, grid, rng, weights, ~is_col, None)
    other_ft = None
    if other is not None:
        other_ft = sfft.rfft2(other, workers=workers) * psf_ft
    return HaadfSpectra(
        columns_ft=cols_ft * psf_ft,
        other_ft=other_ft,
        psf_ft=psf_ft,
        psf_peak_per_A2=peak,
        psf_area_A2=area,
        column_signal_A2=column_signal,
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
    workers = _fft.FFT_WORKERS
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
        column_peak_per_A2=spectra.column_peak_per_A2,
    )


def _amorphous_deposit(p, scene: Scene, grid, rng, weights, select, kinds) -> np.ndarray | None:
    """Deposit of the selected amorphous points plus the statistical layers of ``kinds``
    (None: all), weighted by their cross-sections."""
    other = None
    if select.any():
        other = deposit(grid, scene.point_yx_A[select], weights[select])
    means = statistical_layer_counts(scene, grid, kinds)
    if means:
        from ase.data import atomic_numbers

        w = {s: float(_cross_sections(p, atomic_numbers[s], "isolated")) for s in means}
        stat = sample_statistical(means, w, rng)
        other = stat if other is None else other + stat
    return other


def _spectra_with_depth(p, scene: Scene, grid, rng, weights, column_signal) -> HaadfSpectra:
    """:func:`haadf_spectra` with the depth of field (see :mod:`.stem_depth`)."""
    from .scene import REGIONS

    workers = _fft.FFT_WORKERS
    is_col = scene.point_column >= 0
    correction = bilinear_correction(grid.shape)
    psf_ft, peak, area = probe_psf_ft(p, grid)
    probes = DepthProbes(p, grid)
    deep = depth_points(scene, (REGIONS.index("single_atom"), REGIONS.index("adatom")))
    flat = is_col & ~deep
    cols_ft = sfft.rfft2(deposit(grid, scene.point_yx_A[flat], weights[flat]), workers=workers)
    cols_ft = cols_ft * correction * psf_ft
    column_peak = np.full(scene.n_columns, peak)
    extra = render_depth_columns(probes, grid, scene, deep, weights, correction, column_peak)
    if extra is not None:
        cols_ft = cols_ft + extra
    other_ft = None
    ranges = layer_depth_ranges(scene)
    for code, kind in ((1, "support"), (2, "contamination")):
        select = ~is_col & (scene.point_layer == code)
        dep = _amorphous_deposit(p, scene, grid, rng, weights, select, (kind,))
        if dep is None:
            continue
        term = sfft.rfft2(dep, workers=workers) * probes.layer_psf_ft(*ranges[code])
        other_ft = term if other_ft is None else other_ft + term
    return HaadfSpectra(
        columns_ft=cols_ft,
        other_ft=other_ft,
        psf_ft=psf_ft,
        psf_peak_per_A2=peak,
        psf_area_A2=area,
        column_signal_A2=column_signal,
        point_weights=weights,
        column_peak_per_A2=column_peak,
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
