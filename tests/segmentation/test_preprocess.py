"""Pre-processing: flat-field, spike removal, standardisation."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.errors import InputError
from napari_atomseg.segmentation.preprocess import (
    PreprocessOptions,
    fit_polynomial_surface,
    flatfield,
    median_filter,
    preprocess,
    remove_spikes,
    standardise,
)
from tests._synth import cosine_hex_lattice


def _illuminated(shape=(200, 240)):
    yy, xx = np.mgrid[: shape[0], : shape[1]] / np.array(shape).reshape(2, 1, 1)
    illumination = 1.0 + 0.6 * xx - 0.4 * yy**2 + 0.3 * xx * yy  # total degree 2
    lattice = 100.0 + 10.0 * cosine_hex_lattice(shape, 7.0)
    return (lattice * illumination).astype(np.float32), illumination, lattice


def test_polynomial_surface_recovers_exact_quadratic():
    yy, xx = np.mgrid[:100, :130].astype(np.float64)
    surface = 5.0 + 0.02 * xx - 0.03 * yy + 1e-4 * xx * yy - 2e-4 * yy**2
    fit = fit_polynomial_surface(surface, order=2)
    # Block averaging of a quadratic is exact up to a constant offset per block (<1e-3 here).
    np.testing.assert_allclose(fit, surface, atol=2e-3)


def test_flatfield_divide_removes_illumination():
    image, _illumination, lattice = _illuminated()
    before = image[:, :40].mean() / image[:, -40:].mean()
    out = flatfield(image, order=2, mode="divide")
    after = out[:, :40].mean() / out[:, -40:].mean()
    assert before < 0.8  # the ramp is strong
    assert abs(after - 1.0) < 0.01
    # The lattice contrast is kept: correlation with the true lattice stays near 1.
    assert np.corrcoef(out.ravel(), lattice.ravel())[0, 1] > 0.99


def test_flatfield_subtract_and_auto_for_signed_data():
    _yy, xx = np.mgrid[:64, :64].astype(np.float32)
    signed = 0.5 * cosine_hex_lattice((64, 64), 5.0) + (xx - 32) / 8.0  # crosses zero
    with pytest.raises(InputError, match="subtract"):
        flatfield(signed, mode="divide")
    out_auto = flatfield(signed, mode="auto")
    out_sub = flatfield(signed, mode="subtract")
    np.testing.assert_array_equal(out_auto, out_sub)
    # The linear ramp is gone: column means are flat to within the lattice's ripple.
    assert np.ptp(out_sub.mean(axis=0)) < 0.5 * np.ptp(signed.mean(axis=0)) / 8


def test_flatfield_rejects_bad_mode_and_order():
    image, *_ = _illuminated((64, 64))
    with pytest.raises(InputError, match="mode"):
        flatfield(image, mode="multiply")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="flatfield_order"):
        flatfield(image, order=9)


def test_remove_spikes_replaces_only_spikes():
    rng = np.random.default_rng(1)
    image = (100 + 10 * cosine_hex_lattice((128, 128), 6.0) + rng.normal(0, 1, (128, 128))).astype(
        np.float32
    )
    spiky = image.copy()
    where = [(10, 10), (50, 77), (100, 3), (64, 64), (127, 127)]
    for r, c in where:
        spiky[r, c] += 5000.0
    original = spiky.copy()
    cleaned, n = remove_spikes(spiky, threshold_sigma=8.0)
    np.testing.assert_array_equal(spiky, original)  # input untouched
    assert n == len(where)
    for r, c in where:
        assert abs(cleaned[r, c] - image[r, c]) < 40  # back near the lattice value
    others = np.ones(image.shape, bool)
    for r, c in where:
        others[r, c] = False
    np.testing.assert_array_equal(cleaned[others], spiky[others])


def test_median_filter_removes_isolated_pixel():
    image = np.zeros((32, 32), np.float32)
    image[5, 5] = 1.0
    image[20:, :] = 2.0  # a step, so the image is not constant
    out = median_filter(image, 3)
    assert out[5, 5] == 0.0
    assert out[25, 10] == 2.0


def test_standardise_plain_and_robust():
    rng = np.random.default_rng(2)
    image = rng.normal(50, 4, (64, 64)).astype(np.float32)
    z = standardise(image)
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 1e-5
    image[0, :10] = 1e6  # outliers pull mean/std but not median/MAD
    zr = standardise(image, robust=True)
    assert abs(float(np.median(zr))) < 1e-5
    assert 0.9 < 1.4826 * float(np.median(np.abs(zr))) < 1.1


def test_preprocess_pipeline_order_and_no_mutation():
    image, *_ = _illuminated((96, 96))
    image[40, 40] = 1e5  # an X-ray hit must not pull the illumination fit
    original = image.copy()
    out = preprocess(image)
    np.testing.assert_array_equal(image, original)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert abs(float(out.mean())) < 1e-4 and abs(float(out.std()) - 1) < 1e-4
    assert abs(out[40, 40]) < 5  # the spike is gone
    # Steps can be switched off.
    raw = preprocess(image, PreprocessOptions(None, spike_threshold_sigma=None, standardise=False))
    np.testing.assert_array_equal(raw, image.astype(np.float32))


def test_a_frame_of_only_hot_pixels_is_refused_with_the_reason():
    """Before: 'image: is constant (every pixel = 0.0)', about an image that was not."""
    from napari_atomseg.segmentation import segment

    frame = np.zeros((128, 128), np.float32)
    frame.flat[::997] = 5000.0  # X-ray hits on a blank frame
    with pytest.raises(InputError, match="isolated outlier pixel"):
        segment(frame, 0.02)


def test_standardise_is_independent_of_the_data_scale():
    """Values near 1e30 (float32 holds them) overflowed the float32 variance: the
    standardised image came out all zeros and was refused as constant."""
    from napari_atomseg.segmentation.preprocess import standardise

    img = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    np.testing.assert_allclose(standardise(img * 1e30), standardise(img), atol=1e-5)
