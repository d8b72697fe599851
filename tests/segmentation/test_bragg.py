"""The Bragg filter: peak finding, apertures, padding, masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_atomseg.errors import InputError
from napari_atomseg.segmentation.bragg import (
    BraggParameters,
    bragg_filter,
    default_min_frequency,
    find_bragg_peaks,
    lattice_frequency,
    with_options,
)
from napari_atomseg.segmentation.metrics import MaskScores
from tests._synth import contaminated_lattice, cosine_hex_lattice


def test_peaks_of_a_hexagonal_lattice():
    period = 6.3
    image = 100 + cosine_hex_lattice((256, 256), period, angle_deg=7.0)
    peaks = find_bragg_peaks(image, peak_threshold=8, max_peaks=6)
    assert len(peaks) == 6
    np.testing.assert_allclose(peaks["g_cycles_per_px"], 1 / period, rtol=0.01)
    angles = np.sort(np.rad2deg(np.arctan2(peaks.ky_cycles_per_px, peaks.kx_cycles_per_px)) % 360)
    np.testing.assert_allclose(angles, 7.0 + 60.0 * np.arange(6), atol=1.0)
    assert lattice_frequency(peaks) == pytest.approx(1 / period, rel=0.01)


def test_no_peaks_without_lattice_and_filter_still_works():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(128, 128)).astype(np.float32)
    assert find_bragg_peaks(noise, peak_threshold=30).empty
    res = bragg_filter(noise, BraggParameters(peak_threshold=30))
    assert res.peaks.empty and math.isnan(res.lattice_frequency_cycles_per_px)
    assert math.isnan(res.lattice_period_px)
    assert res.mask.shape == noise.shape


def test_refined_peaks_are_sub_bin_accurate():
    # 2.5x the Welch tile: the full-transform refinement must beat the tile's bin (1/256).
    period = 5.77
    image = cosine_hex_lattice((640, 640), period, angle_deg=13.0)
    res = bragg_filter(image, BraggParameters(max_peaks=6))
    err = np.abs(res.peaks["g_cycles_per_px"].to_numpy() - 1 / period)
    assert err.max() < 0.1 / 640


@pytest.mark.parametrize("period", [4.2, 6.3, 11.0])
def test_mask_finds_contamination_patch(period):
    image, truth = contaminated_lattice((256, 256), period_px=period, seed=3)
    res = bragg_filter(image)
    assert res.lattice_period_px == pytest.approx(period, rel=0.02)
    scores = MaskScores.from_masks(truth, res.mask)
    assert scores.per_class.loc["1", "jaccard"] > 0.8
    assert scores.pixel_accuracy > 0.95


def test_residual_small_on_clean_lattice_and_padding_prevents_edge_artefacts():
    # A period that does not tile the image: without padding the FFT's wrap-around
    # breaks the lattice at the borders and the residual lights up there; zero padding
    # with the envelope normalisation keeps the lattice at full strength to the edge.
    image = 100 + 10 * cosine_hex_lattice((200, 200), 6.71, angle_deg=11.0)
    padded = bragg_filter(image, BraggParameters(mask_threshold=0.3))
    unpadded = bragg_filter(image, BraggParameters(mask_threshold=0.3, pad_periods=0.0))
    border = np.zeros(image.shape, bool)
    border[:8], border[-8:], border[:, :8], border[:, -8:] = True, True, True, True
    assert unpadded.residual[border].max() > 0.5
    assert padded.residual[border].max() < 0.15
    assert not padded.mask.any()
    # The interior is clean either way.
    assert padded.residual[~border].mean() < 0.1


def test_input_not_modified_and_units_irrelevant():
    image, _ = contaminated_lattice(seed=5)
    original = image.copy()
    a = bragg_filter(image)
    b = bragg_filter(image * 7.0 + 1000.0)  # standardised inside
    np.testing.assert_array_equal(image, original)
    np.testing.assert_allclose(a.residual, b.residual, atol=1e-3)
    np.testing.assert_array_equal(a.mask, b.mask)


def test_pixel_size_sets_min_frequency_and_g_per_nm():
    p = BraggParameters()
    assert default_min_frequency(p, None) == pytest.approx(1 / 64)
    assert default_min_frequency(p, 0.03) == pytest.approx(0.03 / 1.5)
    assert default_min_frequency(BraggParameters(min_frequency_cycles_per_px=0.1), 0.03) == 0.1
    image, _ = contaminated_lattice(seed=1)
    res = bragg_filter(image, pixel_size_nm=0.02)
    np.testing.assert_allclose(res.peaks.g_per_nm, res.peaks.g_cycles_per_px / 0.02)


def test_parameter_validation():
    with pytest.raises(InputError, match="aperture_sigma_rel"):
        BraggParameters(aperture_sigma_rel=0.9).validated()
    with pytest.raises(InputError, match="unknown Bragg-filter option"):
        with_options(None, aperture=0.1)
    assert with_options(None, mask_threshold=1.5).mask_threshold == 1.5
    with pytest.raises(InputError, match="pixel_size_nm"):
        bragg_filter(np.ones((32, 32)) + np.eye(32), pixel_size_nm=-1)
