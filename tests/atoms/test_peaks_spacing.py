"""Peak finding / NMS and spacing estimation."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.atoms.peaks import find_peaks, local_maxima, suppress
from napari_atomseg.atoms.spacing import (
    lattice_spacing_px,
    local_spacing_px,
    median_spacing_px,
    nearest_neighbour_distances_px,
)
from napari_atomseg.errors import InputError
from tests._synth import heatmap_for, hex_lattice_px, render_columns


def _brute_force_nms(pts, scores, radius):
    order = np.lexsort((np.arange(len(pts)), -scores))
    kept = []
    for i in order:
        if all(np.hypot(*(pts[i] - pts[k])) >= radius[i] for k in kept):
            kept.append(i)
    return np.sort(kept)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_suppress_equals_sequential_greedy_nms(seed):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 60, (400, 2))
    scores = rng.integers(0, 20, 400).astype(float)  # many ties
    radius = rng.uniform(1, 6, 400)
    np.testing.assert_array_equal(
        suppress(pts, scores, radius), _brute_force_nms(pts, scores, radius)
    )


def test_find_peaks_recovers_a_lattice_with_subpixel_accuracy():
    shape = (256, 256)
    true = hex_lattice_px(shape, 12.0, margin_px=2, seed=1)
    heat = heatmap_for(shape, true, 2.5)
    before = heat.copy()
    pos, conf = find_peaks(heat, threshold=0.5, min_separation_px=3)
    np.testing.assert_array_equal(heat, before)
    assert len(pos) == len(true)
    d = np.hypot(*(pos[:, None, :] - true[None]).transpose(2, 0, 1)).min(axis=1)
    assert d.max() < 0.15  # parabolic sub-pixel on a Gaussian peak
    assert (np.diff(conf) <= 0).all()  # sorted by decreasing confidence
    assert conf.min() >= 0.5


def test_threshold_and_min_separation_act_as_documented():
    heat = np.zeros((64, 64), np.float32)
    heat[10, 10], heat[10, 14], heat[40, 40] = 0.9, 0.8, 0.3
    pos, _ = find_peaks(heat, threshold=0.5, min_separation_px=1, subpixel=False)
    assert {tuple(p) for p in pos} == {(10.0, 10.0), (10.0, 14.0)}
    pos, conf = find_peaks(heat, threshold=0.5, min_separation_px=5, subpixel=False)
    assert [tuple(p) for p in pos] == [(10.0, 10.0)] and conf[0] == pytest.approx(0.9)
    pos, _ = find_peaks(heat, threshold=0.2, min_separation_px=1, subpixel=False)
    assert len(pos) == 3


def test_spacing_aware_radius_removes_shoulders_not_neighbours():
    shape = (200, 200)
    true = hex_lattice_px(shape, 16.0, margin_px=3, seed=2)
    heat = heatmap_for(shape, true, 3.0)
    rng = np.random.default_rng(0)
    # A weak spurious bump 4 px beside every column (a shoulder).
    fake = true + np.array([0.0, 4.0])
    heat = np.maximum(heat, 0.6 * heatmap_for(shape, fake, 1.0))
    plain, _ = find_peaks(heat, 0.5, min_separation_px=2)
    aware, _ = find_peaks(heat, 0.5, min_separation_px=2, spacing_px=16.0, nms_fraction=0.5)
    spacing_map = np.full(shape, 16.0)
    aware_map, _ = find_peaks(heat, 0.5, min_separation_px=2, spacing_px=spacing_map)
    assert len(plain) > len(true)
    assert len(aware) == len(true) == len(aware_map)
    assert rng is not None


def test_local_maxima_plateau_yields_one_peak():
    heat = np.zeros((20, 20))
    heat[5:7, 5:7] = 1.0
    cand, _ = local_maxima(heat, 0.5)
    assert len(cand) == 4
    pos, _ = find_peaks(heat, 0.5, min_separation_px=2)
    assert len(pos) == 1


def test_find_peaks_border_and_bad_input():
    heat = np.zeros((30, 30))
    heat[0, 15] = heat[15, 15] = 1.0
    assert len(find_peaks(heat, 0.5, exclude_border_px=2)[0]) == 1
    with pytest.raises(InputError, match="2-D"):
        find_peaks(np.zeros((3, 3, 3)))
    with pytest.raises(InputError, match="spacing_px"):
        find_peaks(heat, 0.5, spacing_px=np.ones((5, 5)))
    assert find_peaks(heat, 2.0)[0].shape == (0, 2)


def test_nearest_neighbour_and_local_spacing():
    true = hex_lattice_px((300, 300), 10.0, margin_px=1, seed=3)
    nn = nearest_neighbour_distances_px(true)
    np.testing.assert_allclose(nn, 10.0, atol=1e-9)
    assert median_spacing_px(true) == pytest.approx(10.0)
    # One spurious point barely changes the robust local spacing of its neighbours.
    pts = np.vstack([true, true[100] + [2.0, 0.0]])
    loc = local_spacing_px(pts)
    assert np.median(loc) == pytest.approx(10.0)
    assert np.isnan(nearest_neighbour_distances_px([[1.0, 2.0]])).all()
    assert np.isnan(median_spacing_px(np.zeros((0, 2))))


@pytest.mark.parametrize("spacing", [7.3, 12.0, 21.5])
def test_lattice_spacing_from_autocorrelation(spacing):
    shape = (256, 256)
    true = hex_lattice_px(shape, spacing, seed=4)
    img = render_columns(shape, true, spacing / 6, 100.0, 10.0)
    img = np.random.default_rng(0).poisson(img).astype(float)
    assert lattice_spacing_px(img) == pytest.approx(spacing, rel=0.02)


def test_lattice_spacing_is_nan_without_a_lattice():
    rng = np.random.default_rng(5)
    pts = rng.uniform(0, 256, (20, 2))
    img = rng.poisson(render_columns((256, 256), pts, 2.0, 30.0, 50.0)).astype(float)
    assert np.isnan(lattice_spacing_px(img))


def test_local_prominence_is_positive_on_columns_and_negative_on_hollows():
    from napari_atomseg.atoms.peaks import local_prominence
    from tests._synth import hex_lattice_px, render_columns

    shape, s = (128, 128), 12.0
    cols = hex_lattice_px(shape, s, margin_px=6, seed=1)
    img = render_columns(shape, cols, 2.0, 100.0, 5.0)
    hollows = cols + np.array([s * np.sqrt(3) / 6, s / 2])
    hollows = hollows[((hollows > 12) & (hollows < 116)).all(axis=1)]
    pts = np.vstack([cols, hollows])
    d = np.full(len(pts), s)
    score = local_prominence(img, pts, d)
    assert (score[: len(cols)] > 20).all()
    assert (score[len(cols) :] < -10).all()
    # Inverted image: the signs swap; NaN / infinite distances fall back to the median.
    inv = local_prominence(-img, pts, np.where(np.arange(len(pts)) % 7, d, np.nan))
    assert (inv[: len(cols)] < 0).all() and (inv[len(cols) :] > 0).all()
    assert local_prominence(img, np.zeros((0, 2)), np.zeros(0)).shape == (0,)
    with pytest.raises(InputError, match="distance_px"):
        local_prominence(img, pts, d[:-1])
