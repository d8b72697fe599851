"""Drift registration: known shifts, damaged frames, lattices, aligned stack and average."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_atomseg.io.stack import as_stack
from napari_atomseg.track import register_stack
from napari_atomseg.track.registration import aligned_stack, register, registered_average


def _scene(shape=(200, 200), seed=0):
    """A non-periodic texture: blobs of random brightness."""
    rng = np.random.default_rng(seed)
    img = np.zeros(shape)
    img[rng.integers(0, shape[0], 400), rng.integers(0, shape[1], 400)] = rng.random(400) * 5
    return ndi.gaussian_filter(img, 2.0)


def _movie(drift, shape=(128, 128), noise=0.02, seed=0):
    """Frames cut from one big scene: frame t's content moved by drift[t]."""
    big = _scene((shape[0] + 80, shape[1] + 80), seed)
    rng = np.random.default_rng(seed + 1)
    frames = []
    for d in drift:
        moved = ndi.shift(big, d, order=3, mode="nearest")
        frames.append(moved[40 : 40 + shape[0], 40 : 40 + shape[1]] + rng.normal(0, noise, shape))
    return np.stack(frames).astype(np.float32)


DRIFT = np.array([[0, 0], [1.3, -0.4], [3.7, 2.2], [6.1, 5.5], [4.2, 9.9], [2.0, 13.4]])


def test_known_subpixel_drift_is_recovered():
    reg = register(as_stack(_movie(DRIFT)))
    np.testing.assert_allclose(reg.drift_px, DRIFT, atol=0.06)
    assert reg.reliable.all() and not reg.warnings
    assert list(reg.table(0.02, 0.5).columns) == [
        "frame",
        "time_s",
        "drift_y_px",
        "drift_x_px",
        "drift_y_nm",
        "drift_x_nm",
        "peak_to_noise",
        "reliable",
    ]


def test_agrees_with_scikit_image_on_a_pair():
    from skimage.registration import phase_cross_correlation

    # Periodic frames (a Fourier shift), so that neither method meets an image edge.
    scene = _scene((128, 128), 4)
    moved = np.fft.ifft2(ndi.fourier_shift(np.fft.fft2(scene), DRIFT[1])).real
    frames = np.stack([scene, moved]).astype(np.float32)
    shift, _, _ = phase_cross_correlation(frames[0], frames[1], upsample_factor=50)
    np.testing.assert_allclose(-shift, DRIFT[1], atol=0.03)
    reg = register(as_stack(frames))
    # scikit-image returns the shift that registers the moving image: minus our drift.
    np.testing.assert_allclose(reg.drift_px[1], -shift, atol=0.08)


def test_damaged_frame_is_flagged_and_interpolated():
    frames = _movie(DRIFT)
    frames[3] = np.random.default_rng(5).normal(0, 1, frames[3].shape)  # beam blanked
    reg = register(as_stack(frames))
    assert not reg.reliable[3] and reg.reliable[[0, 1, 2, 4, 5]].all()
    np.testing.assert_allclose(reg.drift_px[3], (DRIFT[2] + DRIFT[4]) / 2, atol=0.1)
    np.testing.assert_allclose(reg.drift_px[[4, 5]], DRIFT[[4, 5]], atol=0.08)
    assert "3" in reg.warnings[0] and "interpolated" in reg.warnings[0]


def test_lattice_drift_larger_than_half_a_period():
    """A periodic lattice correlates with itself every period: steps of 6 px on a 10 px
    lattice must be followed step by step, not snapped to the nearest lattice vector."""
    yy, xx = np.mgrid[0:160, 0:160]
    rng = np.random.default_rng(2)
    drift = np.cumsum(np.r_[[[0, 0]], rng.normal(0, 4, (7, 2))], axis=0)
    frames = []
    for d in drift:
        lat = np.cos(2 * np.pi * (yy - d[0]) / 10) + np.cos(2 * np.pi * (xx - d[1]) / 10)
        dot = np.exp(-((yy - 80 - d[0]) ** 2 + (xx - 70 - d[1]) ** 2) / 8) * 6  # a defect
        frames.append(lat + dot + rng.normal(0, 0.3, lat.shape))
    reg = register(as_stack(np.stack(frames)))
    np.testing.assert_allclose(reg.drift_px, drift - drift[0], atol=0.1)


def test_aligned_stack_is_lazy_and_aligned_and_average_is_sharper():
    frames = _movie(DRIFT, noise=0.05)
    drift, aligned = register_stack(frames)
    assert hasattr(aligned, "dask") and aligned.shape == frames.shape
    a = np.asarray(aligned)
    # Aligned frames agree with frame 0 in the part every frame covers.
    core = (slice(20, 100), slice(20, 100))
    assert np.abs(a[5][core] - frames[0][core]).std() < 0.5
    reg = register(as_stack(frames))
    average, count = registered_average(as_stack(frames), reg)
    assert count.max() == 6 and count.min() >= 1
    clean = _movie(DRIFT[:1], noise=0.0)[0]
    assert (
        np.abs(average[core] - clean[core]).std()
        < 0.5 * np.abs(frames[0][core] - clean[core]).std()
    )
    np.testing.assert_allclose(drift, reg.drift_px)


def test_nonrigid_tiles_follow_a_smooth_warp():
    shape = (192, 192)
    big = _scene((shape[0] + 80, shape[1] + 80), 3)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    frames = []
    for k in range(4):
        warp = 1.5 * k / 3 * np.sin(np.pi * xx / shape[1])  # rows bend, most in the middle
        coords = [yy + 40 - warp, xx + 40]
        frames.append(ndi.map_coordinates(big, coords, order=3))
    stack = as_stack(np.stack(frames).astype(np.float32))
    reg = register(stack, tiles=3)
    assert reg.field_px.shape == (4, 3, 3, 2)
    # The middle column of tiles moved more than the outer ones in the last frame.
    total = reg.drift_px[3, 0] + reg.field_px[3, :, :, 0]
    assert total[:, 1].mean() - total[:, 0].mean() > 0.1
    assert total[:, 1].mean() - total[:, 2].mean() > 0.1
    a = np.asarray(aligned_stack(stack, reg))
    rigid = np.asarray(
        aligned_stack(stack, type(reg)(reg.drift_px, reg.peak_to_noise, reg.reliable, reg.frames))
    )
    core = (slice(30, 160), slice(30, 160))
    assert np.abs(a[3][core] - a[0][core]).mean() < np.abs(rigid[3][core] - rigid[0][core]).mean()


def test_bad_options():
    from napari_atomseg.errors import InputError

    with pytest.raises(InputError, match="tiles"):
        register(as_stack(_movie(DRIFT[:2])), tiles=40)
