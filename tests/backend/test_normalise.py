"""Normalisations named in cards."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.backend.normalise import NORMALISATIONS, normalise
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
