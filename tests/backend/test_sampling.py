"""Resampling keeps the physical frame exactly; anti-aliasing; caps; label maps."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.backend.sampling import MAX_UPSAMPLE, resample, resample_labels, resampled_shape
from napari_atomseg.errors import InputError


def gaussian(shape, centre, sigma):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * sigma**2)).astype(
        np.float32
    )


def centroid(img):
    w = np.clip(img, 0, None)
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    return (w * yy).sum() / w.sum(), (w * xx).sum() / w.sum()


@pytest.mark.parametrize(
    ("p_from", "p_to"), [(0.01, 0.0137), (0.01, 0.025), (0.02, 0.011), (0.03, 0.0299)]
)
def test_blob_lands_on_its_physical_position(p_from, p_to):
    centre = (83.3, 120.7)
    img = gaussian((200, 230), centre, 5.0)
    out = resample(img, p_from, p_to)
    assert out.shape == resampled_shape(img.shape, p_from, p_to)
    assert out.dtype == np.float32
    f = p_to / p_from
    want = [(c + 0.5) / f - 0.5 for c in centre]  # pixel centres at (i + 0.5) * p
    got = centroid(out)
    assert np.allclose(got, want, atol=0.01)


@pytest.mark.parametrize(("p_from", "p_to"), [(0.01, 0.0137), (0.01, 0.025), (0.02, 0.011)])
def test_round_trip_is_exact_on_the_original_grid(p_from, p_to):
    """Down (or up) and back with output_shape=original: same shape, same frame, small error."""
    img = gaussian((211, 198), (100.2, 90.6), 6.0) + 0.5 * gaussian((211, 198), (40.0, 150.0), 8.0)
    work = resample(img, p_from, p_to)
    back = resample(work, p_to, p_from, output_shape=img.shape)
    assert back.shape == img.shape
    assert np.allclose(centroid(back), centroid(img), atol=0.02)
    assert np.abs(back - img).max() < 0.02  # band-limited content survives


def test_downsampling_is_anti_aliased():
    """A pattern above the new Nyquist frequency must not alias into a strong low frequency."""
    xx = np.arange(512)
    stripes = np.tile(np.cos(2 * np.pi * 0.4 * xx), (64, 1)).astype(np.float32)  # 0.4 cycles/px
    out = resample(stripes, 0.01, 0.04)  # new Nyquist: 0.125 cycles of the old pixels
    # naive subsampling would keep an amplitude ~1 (the mirrored edges are left out)
    assert np.abs(out[:, 2:-2]).max() < 0.03


def test_identity_returns_a_copy_and_input_is_untouched():
    img = np.random.default_rng(0).random((40, 50)).astype(np.float32)
    keep = img.copy()
    out = resample(img, 0.02, 0.02)
    assert out is not img and np.array_equal(out, img)
    resample(img, 0.02, 0.033)
    assert np.array_equal(img, keep)


def test_stack_and_integer_input():
    img = (np.random.default_rng(1).random((3, 60, 70)) * 1000).astype(np.uint16)
    out = resample(img, 0.01, 0.02)
    assert out.shape == (3, 30, 35) and out.dtype == np.float32
    assert np.allclose(out[1], resample(img[1], 0.01, 0.02), atol=1e-3)


def test_upsampling_cap_and_bad_arguments():
    img = np.ones((32, 32), np.float32)
    resample(img, 0.04, 0.04 / MAX_UPSAMPLE)  # exactly at the cap: fine
    with pytest.raises(InputError, match="too coarse"):
        resample(img, 0.05, 0.01)
    with pytest.raises(InputError, match="from_pixel_size_nm: must be a positive"):
        resample(img, -1, 0.02)
    with pytest.raises(InputError, match="2-D image or"):
        resample(np.ones((2, 2, 2, 2)), 0.01, 0.02)


def test_resample_labels_keeps_label_values_and_frame():
    labels = np.zeros((100, 120), np.int32)
    labels[20:40, 30:70] = 3
    labels[60:90, 10:20] = 7
    out = resample_labels(labels, 0.01, 0.025)
    assert out.dtype == np.int32 and out.shape == resampled_shape(labels.shape, 0.01, 0.025)
    assert set(np.unique(out)) == {0, 3, 7}
    back = resample_labels(out, 0.025, 0.01, output_shape=labels.shape)
    assert (back == labels).mean() > 0.97
