"""The Bragg filter's fast pieces give the numbers of the plain formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.special import erf

from napari_atomseg.segmentation.bragg import (
    _aperture_half_plane,
    _divide_by_envelope,
    _lowpass_pair,
    bragg_filter,
)
from tests._synth import contaminated_lattice


@pytest.mark.parametrize(
    ("shape", "sigma"), [((96, 128), 1.3), ((200, 170), 3.16), ((64, 64), 7.9)]
)
def test_fft_lowpass_equals_ndimage_reflect(shape, sigma):
    rng = np.random.default_rng(int(sigma * 10))
    a = np.abs(rng.normal(size=shape)).astype(np.float32)
    b = ndi.gaussian_filter(rng.random(shape), 2.0).astype(np.float32) * 5
    low_a, low_b = _lowpass_pair(a, b, sigma)
    for got, image in ((low_a, a), (low_b, b)):
        expected = ndi.gaussian_filter(image, sigma, mode="reflect")
        assert got.dtype == np.float32 and got.shape == shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6 * float(np.abs(image).max()))
    single, none = _lowpass_pair(a, None, sigma)
    assert none is None
    np.testing.assert_allclose(single, low_a, rtol=0, atol=1e-6 * float(a.max()))


def test_lowpass_wider_than_the_image_falls_back_to_ndimage():
    a = np.random.default_rng(0).random((20, 30)).astype(np.float32)
    low, _ = _lowpass_pair(a, None, 8.0)  # radius 32 > 20 px
    np.testing.assert_array_equal(low, ndi.gaussian_filter(a, 8.0, mode="reflect"))


def test_envelope_division_equals_the_outer_product():
    shape, sigma = (50, 70), 4.2
    values = np.random.default_rng(1).normal(size=(60, 90)).astype(np.float32)

    def profile(n):
        x = np.arange(n, dtype=np.float64)
        s = math.sqrt(2.0) * sigma
        return 0.5 * (erf((x + 0.5) / s) - erf((x - n + 0.5) / s))

    expected = values[:50, :70] / np.outer(profile(50), profile(70))
    got = _divide_by_envelope(values, shape, sigma)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)


def test_separable_aperture_equals_the_2d_gaussian():
    hp, full_width = 300, 320
    wr = full_width // 2 + 1
    centres = np.array([(0.0, 0.0), (0.1, 0.05), (-0.2, 0.15), (0.45, 0.3)])
    sigma = 0.012
    got = _aperture_half_plane((hp, wr), full_width, centres, sigma)
    ky = np.arange(hp)[:, None] / hp
    kx = np.arange(wr)[None, :] / full_width
    expected = np.zeros((hp, wr))
    for gy, gx in centres:
        dy = (ky - gy + 0.5) % 1.0 - 0.5
        g = np.exp(-((dy**2 + (kx - gx) ** 2) / (2 * sigma**2)))
        expected = np.maximum(expected, g)
    near = expected > 1e-3  # within 3.7 sigma: inside every evaluated 4.5-sigma box
    np.testing.assert_allclose(got[near], expected[near], rtol=1e-6)


def test_bragg_maps_match_the_direct_lowpass():
    image, _mask = contaminated_lattice((192, 224), period_px=6.3, seed=4)
    res = bragg_filter(image)
    img = (image - image.mean()) / image.std()
    sigma = res.parameters.lowpass_sigma_periods * res.lattice_period_px
    direct = ndi.gaussian_filter(np.abs(img - res.bragg_image), sigma, mode="reflect")
    np.testing.assert_allclose(res.residual, direct, rtol=0, atol=1e-5)
    assert res.mask.sum() > 0


def test_residual_and_mask_without_the_lattice_map():
    image, _mask = contaminated_lattice((192, 224), period_px=6.3, seed=5)
    full = bragg_filter(image)
    lean = bragg_filter(image, lattice_amplitude=False)
    assert lean.lattice_amplitude is None and full.lattice_amplitude is not None
    np.testing.assert_allclose(lean.residual, full.residual, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(lean.mask, full.mask)
    np.testing.assert_array_equal(lean.bragg_image, full.bragg_image)
    assert lean.threshold == pytest.approx(full.threshold, rel=1e-6)
