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


def _lattice_with_atoms(shape, shift, atoms_yx, period=10.0):
    """A square lattice of Gaussian columns plus brighter single atoms, all moved by
    ``shift`` (the content's step)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    y, x = yy - shift[0], xx - shift[1]
    img = np.cos(np.pi * y / period) ** 8 * np.cos(np.pi * x / period) ** 8
    for ay, ax in atoms_yx:
        img += 3 * np.exp(-((y - ay) ** 2 + (x - ax) ** 2) / (2 * 1.5**2))
    return img


def test_residual_tells_a_step_from_its_lattice_alias():
    """Shifted by the true step the two frames differ by nothing; shifted by the step
    plus a lattice vector the lattice still matches but the single atoms do not."""
    from napari_atomseg.track.registration import _log_likelihood_ratio, _residual_msd

    atoms = [(40, 50), (90, 30), (70, 110)]
    prev = _lattice_with_atoms((160, 160), (0, 0), atoms)
    frame = _lattice_with_atoms((160, 160), (7.0, -3.0), atoms)
    steps = np.array([[7.0, -3.0], [7.0, 7.0]])  # the true step, and one period away
    msd, view = _residual_msd(prev, frame, steps)
    assert view > 100 * 100 and msd[0] < 1e-3 * msd[1]
    assert _log_likelihood_ratio(prev, frame, steps, 2.0) < -100
    assert _log_likelihood_ratio(prev, frame, steps[::-1], 2.0) > 100


def test_step_choice_weighs_evidence_against_the_drift_scale():
    """Weak evidence for a far alias loses to a small drift scale; strong evidence wins."""
    from napari_atomseg.track.registration import _StepCandidates

    steps = np.array([[1.0, 1.0], [1.0, 17.0]])
    weak = _StepCandidates(steps, np.array([0.0, 5.0]))
    assert weak.choose(scale_px=2.0) == 0  # prior: -(289 - 1) / 8 = -36
    assert weak.choose(scale_px=20.0) == 1  # prior: -0.36
    strong = _StepCandidates(steps, np.array([0.0, 50.0]))
    assert strong.choose(scale_px=2.0) == 1
    assert _StepCandidates(steps[:1], np.zeros(1)).choose(None) == 0


def test_rechoosing_a_step_moves_every_later_frame():
    from napari_atomseg.track.registration import _rechoose, _StepCandidates

    steps = np.array([[1.0, 0.0], [1.0, 16.0]])
    candidates = {
        1: (_StepCandidates(steps, np.array([0.0, 1.0])), 1),  # taken: the far one
        2: (_StepCandidates(steps[:1], np.zeros(1)), 0),
        3: (_StepCandidates(steps[:1], np.zeros(1)), 0),
    }
    drift = np.array([[0, 0], [1, 16], [2, 16], [3, 16]], float)
    reference = np.array([0, 0, 1, 2])
    out = _rechoose(drift, reference, candidates, scale_px=1.0)  # a small drift: [1, 0]
    np.testing.assert_allclose(out, [[0, 0], [1, 0], [2, 0], [3, 0]])
    assert _rechoose(drift, reference, candidates, None) is drift


def test_lattice_steps_beyond_half_a_period_on_a_simulated_movie():
    """MoS2 (0.316 nm = 15.8 px) with twelve hopping Pt atoms, 30 frames of 128^2 whose
    random-walk steps reach 15 px: the previous rule (the smallest of near-equal peaks)
    took two steps a lattice vector wrong on this movie (drift RMS 34 px)."""
    from napari_atomseg.simulation import SimulationParameters
    from napari_atomseg.simulation.movie import MovieParameters, simulate_movie

    frame = SimulationParameters(
        material="MoS2", shape_px=(128, 128), pixel_size_nm=0.02, dose_e_per_A2=1e4, seed=201
    )
    movie = simulate_movie(MovieParameters(frame=frame, n_frames=30, drift_max_nm=1.0))
    reg = register(as_stack(movie.frames))
    error = reg.drift_px - movie.drift_px
    assert np.sqrt((error**2).sum(1).mean()) < 0.2


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
