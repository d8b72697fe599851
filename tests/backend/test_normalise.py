"""Normalisations named in cards."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.backend.normalisation import NORMALISATIONS, normalise
from napari_atomseg.errors import InputError


def test_robust_zscore_matches_zscore_on_gaussian_pixels_and_ignores_hot_pixels():
    rng = np.random.default_rng(0)
    img = rng.normal(100.0, 5.0, (256, 256)).astype(np.float32)
    z = normalise(img, "robust_zscore")
    assert abs(float(np.median(z))) < 0.02
    assert abs(float(z.std()) - 1.0) < 0.03
    hot = img.copy()
    hot.flat[::997] = 1e6  # X-ray spikes
    zh = normalise(hot, "robust_zscore")
    assert abs(float(np.median(zh[zh < 10].std())) - 1.0) < 0.05
    assert zh.max() == 20.0  # clipped
    assert normalise(hot, "zscore").std() == pytest.approx(
        1.0, abs=1e-3
    )  # classic one is dominated


def test_all_normalisations_return_new_float32_and_leave_input():
    img = np.random.default_rng(1).random((64, 80)).astype(np.float64) * 300
    keep = img.copy()
    for name in NORMALISATIONS:
        out = normalise(img, name)
        assert out.dtype == np.float32 and out.shape == img.shape
    assert np.array_equal(img, keep)
    mm = normalise(img, "minmax")
    assert mm.min() == 0.0 and mm.max() == pytest.approx(1.0)
    pr = normalise(img, {"name": "percentile_range", "low_pct": 0, "high_pct": 100, "clip": None})
    assert pr.min() == 0.0 and pr.max() == pytest.approx(1.0)


def test_large_images_use_a_subgrid_with_the_same_result():
    rng = np.random.default_rng(2)
    img = rng.gamma(3.0, 10.0, (2100, 2100)).astype(np.float32)
    full = normalise(img, "robust_zscore")
    assert abs(float(np.median(full))) < 0.01


def test_errors():
    with pytest.raises(InputError, match="unknown name"):
        normalise(np.ones((4, 4)), "wavelet")
    with pytest.raises(InputError, match="no contrast"):
        normalise(np.ones((32, 32)), "robust_zscore")
    with pytest.raises(InputError, match="2-D"):
        normalise(np.ones((2, 4, 4)))


# ----------------------------------------------------------------- background subtraction
def _spot(shape, centre, sigma, amp):
    y, x = np.mgrid[: shape[0], : shape[1]]
    return amp * np.exp(-((y - centre[0]) ** 2 + (x - centre[1]) ** 2) / (2 * sigma**2))


def test_subtract_background_removes_a_ramp_to_the_edges_and_keeps_atoms():
    from napari_atomseg.backend.normalisation import subtract_background

    shape = (200, 330)
    y, x = np.mgrid[: shape[0], : shape[1]]
    atoms = _spot(shape, (60, 80), 2.0, 50.0) + _spot(shape, (150, 300), 2.0, 50.0)
    img = (5000.0 + 7.0 * x - 4.0 * y + atoms).astype(np.float32)
    keep = img.copy()
    out = subtract_background(img, 40.0)
    assert np.array_equal(img, keep) and out.dtype == np.float32
    # The ramp is gone everywhere, the edges included (a reflected Gaussian would leave
    # +-slope * sigma ~ 280 there); the atoms keep their height above the new zero.
    far = atoms < 1e-3
    assert np.abs(out[far]).max() < 2.0
    assert out[60, 80] == pytest.approx(50.0, abs=2.0)
    assert out[150, 300] == pytest.approx(50.0, abs=2.0)


def test_subtract_background_follows_a_local_bump_like_a_full_gaussian_filter():
    from scipy import ndimage as ndi

    from napari_atomseg.backend.normalisation import subtract_background

    shape = (256, 256)
    rng = np.random.default_rng(3)
    bump = _spot(shape, (128, 100), 45.0, 3000.0)  # a thick patch of support
    img = (1000.0 + bump + rng.normal(0, 10, shape)).astype(np.float32)
    out = subtract_background(img, 30.0)
    full = img - ndi.gaussian_filter(img.astype(np.float64), 30.0, mode="reflect")
    inner = (slice(70, 186), slice(70, 186))
    # Block means + linear interpolation: within 1 % of the bump's height of the exact
    # filter (which leaves ~930 of this wider bump), and the pixel noise passes unchanged.
    assert np.abs(out - full)[inner].max() < 0.01 * 3000
    assert np.abs(out)[inner].max() < 0.4 * 3000
    noise = rng.normal(0, 10, shape).astype(np.float32)
    assert subtract_background(noise, 30.0).std() == pytest.approx(noise.std(), rel=0.01)


def test_subtract_background_in_place_tiny_images_and_errors():
    from napari_atomseg.backend.normalisation import subtract_background

    img = np.random.default_rng(4).random((64, 64)).astype(np.float32) + 10
    ref = subtract_background(img, 8.0)
    same = subtract_background(img, 8.0, out=img)
    assert same is img and np.allclose(img, ref)
    tiny = subtract_background(np.arange(6, dtype=np.float64).reshape(2, 3), 50.0)
    assert tiny.shape == (2, 3) and np.abs(tiny).max() < 1e-4  # a plane: nothing left
    for bad in (0.0, -3.0, float("nan")):
        with pytest.raises(InputError, match="background sigma"):
            subtract_background(img, bad)
    with pytest.raises(InputError, match="2-D"):
        subtract_background(np.ones((2, 4, 4)), 5.0)
    with pytest.raises(InputError, match="out must be float32"):
        subtract_background(img, 5.0, out=np.zeros((3, 3), np.float32))


def test_stats_sample_is_a_regular_view_of_at_most_the_asked_size():
    from napari_atomseg.backend.normalisation import stats_sample

    img = np.arange(2048 * 2048, dtype=np.float32).reshape(2048, 2048)
    small = np.ones((100, 100), np.float32)
    assert stats_sample(small, 1 << 20) is small
    grid = stats_sample(img, 1 << 20)
    assert grid.shape == (1024, 1024) and np.shares_memory(grid, img)
    assert grid[1, 1] == img[2, 2]
    flat = stats_sample(img.ravel()[::3], 1000)
    assert 0 < flat.size <= 1000
    # A percentile of the sample is the image's within its granularity.
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(3000, 3000)).astype(np.float32)
    assert np.percentile(stats_sample(noise, 1 << 20), 25) == pytest.approx(
        np.percentile(noise, 25), abs=0.01
    )
