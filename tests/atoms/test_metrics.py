"""Point matching and detection metrics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from napari_atomseg.atoms.metrics import match_points, point_metrics
from napari_atomseg.errors import InputError


def test_perfect_and_known_counts():
    true = np.array([[0.0, 0.0], [0.0, 10.0], [10.0, 0.0], [10.0, 10.0]])
    pred = np.array([[0.3, 0.4], [0.0, 10.0], [25.0, 25.0]])  # 2 hits, 1 FP, 2 FN
    m = point_metrics(pred, true, radius_px=1.0, pixel_size_nm=0.02)
    assert (m.true_positives, m.false_positives, m.false_negatives) == (2, 1, 2)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(0.5)
    assert m.f1 == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))
    assert m.jaccard == pytest.approx(2 / 5)
    assert m.rms_error_px == pytest.approx(np.sqrt((0.5**2 + 0) / 2))
    assert m.rms_error_pm == pytest.approx(m.rms_error_px * 20)
    # Chamfer: pred->true [0.5, 0, |(25,25)-(10,10)|]; true->pred [0.5, 0, |(10,0)-(0.3,0.4)|, 10].
    far, mid = np.hypot(15, 15), np.hypot(9.7, 0.4)
    assert m.chamfer_px == pytest.approx(0.5 * ((0.5 + 0 + far) / 3 + (0.5 + 0 + mid + 10) / 4))
    assert point_metrics(true, true, radius_px=0.5).f1 == 1.0


def test_matching_is_one_to_one_and_maximal():
    # Greedy nearest-first would pair p1-t0 (0.9) and leave two unmatched; optimal pairs both.
    m = match_points([[0, 0], [0, 1.9]], [[0, 1.0], [0, 2.9]], 1.5)
    assert list(m.predicted) == [0, 1] and list(m.true) == [0, 1]
    # Two predictions on one truth: only one counts.
    m = point_metrics([[0, 0], [0, 0.2]], [[0, 0.1]], radius_px=1)
    assert (m.true_positives, m.false_positives) == (1, 1)


def test_matching_equals_brute_force_on_small_random_sets():
    rng = np.random.default_rng(0)
    for _ in range(20):
        pred = rng.uniform(0, 6, (5, 2))
        true = rng.uniform(0, 6, (5, 2))
        r = 1.5
        m = match_points(pred, true, r)
        d = np.hypot(*(pred[:, None] - true[None]).transpose(2, 0, 1))
        best = (0, 0.0)
        for perm in itertools.permutations(range(5)):
            ok = d[np.arange(5), perm] <= r
            score = (ok.sum(), -d[np.arange(5), perm][ok].sum())
            best = max(best, score)
        assert len(m.predicted) == best[0]
        assert -m.distance_px.sum() == pytest.approx(best[1])
        assert len(set(m.predicted)) == len(m.predicted) == len(set(m.true))


def test_radius_in_nm_and_fraction_of_spacing():
    true = np.array([[0.0, 0.0], [0.0, 20.0], [20.0, 0.0]])
    pred = true + np.array([0.0, 3.0])
    assert point_metrics(pred, true, radius_nm=0.1, pixel_size_nm=0.02).f1 == 1.0  # 5 px > 3
    assert point_metrics(pred, true, radius_nm=0.1, pixel_size_nm=0.05).f1 == 0.0  # 2 px < 3
    m = point_metrics(pred, true, radius_fraction_of_spacing=0.25)
    assert m.radius_px == pytest.approx(5.0) and m.f1 == 1.0


def test_empty_sets_and_errors():
    assert point_metrics(np.zeros((0, 2)), np.zeros((0, 2)), radius_px=1).f1 == 1.0
    m = point_metrics(np.zeros((0, 2)), [[1.0, 1.0]], radius_px=1)
    assert m.recall == 0.0 and m.precision == 1.0 and m.f1 == 0.0 and np.isnan(m.chamfer_px)
    with pytest.raises(InputError, match="exactly one"):
        point_metrics([[0, 0]], [[0, 0]], radius_px=1, radius_nm=0.1)
    with pytest.raises(InputError, match="pixel_size_nm"):
        point_metrics([[0, 0]], [[0, 0]], radius_nm=0.1)
    with pytest.raises(InputError, match="at least two"):
        point_metrics([[0, 0]], [[0, 0]], radius_fraction_of_spacing=0.5)
    with pytest.raises(InputError, match="N, 2"):
        point_metrics([[0, 0, 0]], [[0, 0]], radius_px=1)


def test_large_sets_match_quickly_and_correctly():
    rng = np.random.default_rng(1)
    true = rng.uniform(0, 2000, (40000, 2))
    pred = true[:36000] + rng.normal(0, 0.3, (36000, 2))
    pred = np.vstack([pred, rng.uniform(0, 2000, (2000, 2))])
    m = point_metrics(pred, true, radius_px=2.0)
    assert m.true_positives >= 36000
    assert m.rms_error_px == pytest.approx(0.3 * np.sqrt(2), rel=0.1)


def test_box_iou_metrics_follow_the_papers_21_px_rule():
    """Two 21 px boxes overlap with IoU > 0.5 when their centres are less than 7 px apart
    along one axis; matching is one to one."""
    from napari_atomseg.atoms.metrics import box_iou_metrics

    true = np.array([[10.0, 10.0], [50.0, 50.0], [100.0, 100.0]])
    pred = np.array([[13.0, 10.0], [50.0, 57.5], [200.0, 200.0], [100.0, 103.0], [101.0, 100.0]])
    m = box_iou_metrics(pred, true)
    # (13,10): IoU 378/504 = 0.75; (50,57.5): 283.5/598.5 = 0.47; one of the two near
    # (100,100) is matched, the other is a false positive.
    assert (m.true_positives, m.false_positives, m.false_negatives) == (2, 3, 1)
    assert m.precision == pytest.approx(2 / 5) and m.recall == pytest.approx(2 / 3)
    empty = box_iou_metrics(np.zeros((0, 2)), true)
    assert empty.recall == 0 and empty.precision == 1.0
