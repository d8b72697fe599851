"""Image statistics used to calibrate the simulator against real micrographs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.signal import lfilter

from napari_atomseg.simulation.imagestats import (
    NoiseFit,
    fit_poisson_gaussian,
    line_jitter_px,
    spot_contrast,
    spot_width_nm,
    texture_spectrum,
)
from napari_atomseg.simulation.lattice2d import PlainLattice, render_gaussians
from tests._data import shared_path


def _poisson_image(seed=0, gain=37.0, dark=1000.0, read=40.0, shape=(384, 384)):
    rng = np.random.default_rng(seed)
    mean_e = 20 * np.exp(30 * gaussian_filter(rng.standard_normal(shape), 20)) + 2
    image = gain * rng.poisson(mean_e) + dark + rng.normal(0, read, shape)
    return image, mean_e


def test_poisson_gaussian_fit_recovers_gain_zero_and_electrons():
    image, mean_e = _poisson_image()
    fit = fit_poisson_gaussian(image)
    assert fit.gain == pytest.approx(37.0, rel=0.05)
    assert fit.electrons_per_pixel == pytest.approx(np.median(mean_e), rel=0.08)
    assert fit.poisson_fraction > 0.95 and fit.fit_r2 > 0.98
    assert abs(fit.fast_scan_correlation) < 0.03 and fit.line_noise_fraction < 0.05
    # Given the true dark level, the read noise (40 counts ~ 1.1 electrons) comes out.
    with_dark = fit_poisson_gaussian(image, zero_level=1000.0)
    assert 0.3 < with_dark.read_noise_electrons < 1.6
    assert image.min() > 0  # nothing was modified in place
    before = image.copy()
    fit_poisson_gaussian(image)
    np.testing.assert_array_equal(image, before)


def test_fast_scan_correlation_and_line_noise_are_measured():
    image, _ = _poisson_image(1)
    a = np.exp(-1.0 / 1.2)
    smeared = lfilter([1 - a], [1, -a], image, axis=1)
    assert fit_poisson_gaussian(smeared).fast_scan_correlation == pytest.approx(a, abs=0.04)
    pixel = fit_poisson_gaussian(image).noise_std_at_median
    rng = np.random.default_rng(2)
    for fraction in (0.3, 1.0):
        lined = image + rng.normal(0, fraction * pixel, (image.shape[0], 1))
        assert fit_poisson_gaussian(lined).line_noise_fraction == pytest.approx(fraction, rel=0.25)


def test_texture_spectrum_puts_a_pattern_in_its_band():
    h = w = 384
    px = 0.03
    _, x = np.mgrid[0:h, 0:w] * px
    pattern = 1000.0 * (1 + 0.1 * np.sin(2 * np.pi * x / 0.7))  # a 0.7 nm period, 10 %
    flat = NoiseFit(1.0, 0.0, 0.0, 1000.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0)
    tx = texture_spectrum(pattern, px, flat)
    bands = dict(zip(tx.band_periods_nm, tx.band_rms))
    assert bands[(0.4, 1.0)] == pytest.approx(0.1 / np.sqrt(2), rel=0.15)
    assert bands[(0.15, 0.4)] < 0.01 and bands[(1.0, 2.5)] < 0.01
    # White Poisson noise alone is removed as the floor.
    rng = np.random.default_rng(0)
    noisy = rng.poisson(1000.0, (h, w)).astype(float)
    fit = fit_poisson_gaussian(noisy)
    assert max(texture_spectrum(noisy, px, fit).band_rms[:3]) < 0.004


def _spots(sigma_nm=0.1, px=0.03, amplitude=50.0, background=200.0, n=25, seed=0):
    rng = np.random.default_rng(seed)
    shape = (320, 320)
    pos = rng.uniform(30, 290, (n, 2))
    image = background + render_gaussians(shape, pos, sigma_nm / px, np.full(n, amplitude))
    return image, pos


def test_spot_contrast_and_width():
    image, pos = _spots()
    flat = NoiseFit(1.0, 1.0, 0.0, 200.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0)
    sc = spot_contrast(image, pos, 0.03, flat, probe_sigma_nm=0.04)
    # A Gaussian of sigma s smoothed by p peaks at A s^2 / (s^2 + p^2).
    expected = 50.0 * 0.1**2 / (0.1**2 + 0.04**2) / 200.0
    assert sc.n == 25
    assert sc.relative[0] == pytest.approx(expected, rel=0.1)
    assert spot_width_nm(image, pos, 0.03) == pytest.approx(0.1, rel=0.05)
    assert np.isnan(spot_width_nm(image, pos[:2], 0.03))


def test_line_jitter_is_measured_on_lattices_and_refused_on_noise():
    lattice = PlainLattice(kind="square", a_nm=0.3, rotation_deg=8.0)
    pos, _ = lattice.positions_nm((9.6, 9.6))
    rng = np.random.default_rng(1)
    shape = (320, 320)
    clean = render_gaussians(shape, pos / 0.03, 2.0, np.ones(len(pos)))
    assert line_jitter_px(clean) < 0.03
    shifts = rng.normal(0, 0.3, shape[0])
    jittered = np.stack(
        [
            np.interp(np.arange(shape[1]) - s, np.arange(shape[1]), row)
            for row, s in zip(clean, shifts)
        ]
    )
    # The shift of a line against the mean of its neighbours: rms sqrt(1.5) x the jitter.
    assert line_jitter_px(jittered) == pytest.approx(0.3 * np.sqrt(1.5), rel=0.25)
    assert np.isnan(line_jitter_px(rng.normal(0, 1, shape)))


def test_a_real_single_atom_micrograph_is_shot_noise_limited():
    from napari_atomseg import read_image

    path = shared_path("pt_single_atoms", "images", "021_HAADF_15nm_Sample_PtNC_21Oct20.tif")
    image, _ = read_image(path)
    fit = fit_poisson_gaussian(image, zero_level=float(np.percentile(image, 0.5)))
    # About 22 detected electrons per pixel on the support (see docs/simulation.md).
    assert 15 < fit.electrons_per_pixel < 30
    assert fit.poisson_fraction > 0.9 and fit.fit_r2 > 0.95
    assert fit.fast_scan_correlation < 0.1
