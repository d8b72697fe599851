"""Training targets: heatmap widths follow local spacing, labels, spacing."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.simulation.targets import heatmap_and_labels, mean_spacing


def test_heatmap_sigma_follows_local_spacing_and_is_capped():
    # A dense pair (4 px apart) and an isolated point.
    y = np.array([20.0, 20.0, 40.0])
    x = np.array([10.0, 14.0, 40.0])
    heat, labels, sigma = heatmap_and_labels(
        (64, 64),
        y,
        x,
        np.array([1, 2, 3], dtype=np.int32),
        sigma_fraction=0.25,
        sigma_max_px=2.5,
        radius_fraction=0.35,
        radius_max_px=3.0,
    )
    np.testing.assert_allclose(sigma, [1.0, 1.0, 2.5])
    assert heat.max() == pytest.approx(1.0)
    assert heat[20, 10] == pytest.approx(1.0) and heat[40, 40] == pytest.approx(1.0)
    # Width check: one sigma away the Gaussian is exp(-1/2).
    assert heat[40, 42] == pytest.approx(np.exp(-0.5 * (2 / 2.5) ** 2), rel=1e-5)
    # Between the pair the larger value wins (no summing above 1).
    assert heat.max() <= 1.0
    # Labels: nearest column wins inside disks of 0.35 x 4 = 1.4 px (capped at 3 px).
    assert labels[20, 10] == 1 and labels[20, 14] == 2 and labels[40, 40] == 3
    assert labels[20, 12] == 0  # 2 px from both: outside both 1.4 px disks
    assert labels[40, 43] == 3 and labels[40, 44] == 0


def test_subpixel_centres_are_respected():
    heat, _, _ = heatmap_and_labels(
        (32, 32), np.array([10.4]), np.array([12.5]), np.array([1], np.int32), 0.2, 2.0, 0.3, 2.0
    )
    # The two pixels straddling x = 12.5 are equal; the peak row is 10.
    assert heat[10, 12] == pytest.approx(heat[10, 13])
    assert heat[10, 12] > heat[11, 12]


def test_mean_spacing():
    assert np.isnan(mean_spacing(np.array([1.0]), np.array([1.0])))
    y = np.array([0.0, 0.0, 0.0])
    x = np.array([0.0, 2.0, 5.0])
    assert mean_spacing(y, x) == pytest.approx((2 + 2 + 3) / 3)


def test_empty_target():
    heat, labels, sigma = heatmap_and_labels(
        (16, 16), np.zeros(0), np.zeros(0), np.zeros(0, np.int32), 0.2, 2.0, 0.3, 2.0
    )
    assert heat.sum() == 0 and labels.sum() == 0 and sigma.size == 0


def test_resolved_columns_needs_a_peak_of_its_own():
    from napari_atomseg.simulation.groundtruth import resolved_columns

    yy, xx = np.mgrid[0:64, 0:64].astype(float)

    def blob(y, x, a, s=2.0):
        return a * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * s * s))

    # A strong column, a weak one 3 px away (shoulder), and a weak one 12 px away (own peak).
    img = blob(20, 20, 1.0) + blob(20, 23, 0.1) + blob(40, 40, 1.0) + blob(40, 52, 0.1)
    ys = np.array([20.0, 20.0, 40.0, 40.0])
    xs = np.array([20.0, 23.0, 40.0, 52.0])
    assert resolved_columns(img, ys, xs).tolist() == [True, False, True, True]
    # Dark columns: the same test on the inverted contrast.
    assert resolved_columns(-img, ys, xs, sign=-1.0).tolist() == [True, False, True, True]
    assert not resolved_columns(-img, ys, xs, sign=1.0)[:2].any()
    assert resolved_columns(img, np.zeros(0), np.zeros(0)).shape == (0,)


def test_group_consensus_equalises_equivalent_columns():
    from napari_atomseg.simulation.groundtruth import group_consensus

    counts = np.array([[1, 0]] * 6 + [[0, 2]] * 6 + [[3, 0]] * 2)
    region = np.zeros(14, int)
    values = np.array([1.0, 2, 3, 4, 5, 6, 10, 10, 10, 11, 12, 100, 7, 8])
    out = group_consensus(values, counts, region)
    assert np.allclose(out[:6], 3.5) and np.allclose(out[6:12], 10.5)
    assert out[12:].tolist() == [7.0, 8.0]  # groups below min_group keep their own values
    votes = np.array([True] * 4 + [False] * 2 + [False] * 5 + [True] + [True, False])
    assert group_consensus(votes, counts, region).tolist() == [True] * 6 + [False] * 6 + [
        True,
        False,
    ]
    # A different region is a different group.
    region2 = region.copy()
    region2[:3] = 1
    assert group_consensus(values, counts, region2)[0] == 1.0
