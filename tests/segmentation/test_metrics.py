"""Mask metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_atomseg.errors import InputError
from napari_atomseg.segmentation.metrics import MaskScores, confusion_matrix, pooled, summarise


def _example():
    truth = np.array([[1, 1, 1, 0], [0, 0, 0, 0]])
    pred = np.array([[1, 1, 0, 1], [0, 0, 0, 0]])
    # class 1: tp 2, fp 1, fn 1; class 0: tp 4, fp 1, fn 1
    return truth, pred


def test_confusion_and_binary_scores():
    truth, pred = _example()
    cm = confusion_matrix(truth, pred, 2)
    np.testing.assert_array_equal(cm, [[4, 1], [1, 2]])
    s = MaskScores.from_masks(truth, pred, ("clean", "contamination"))
    assert s.pixel_accuracy == pytest.approx(6 / 8)
    assert s.balanced_accuracy == pytest.approx(0.5 * (4 / 5 + 2 / 3))
    row = s.per_class.loc["contamination"]
    assert row.precision == pytest.approx(2 / 3)
    assert row.recall == pytest.approx(2 / 3)
    assert row.jaccard == pytest.approx(2 / 4)
    assert row.f1 == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    summary = s.summary("contamination")
    assert summary == s.summary(1)
    assert set(summary) == {
        "pixel_accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "jaccard",
        "f1",
    }


def test_three_classes_and_absent_class_is_nan():
    truth = np.array([0, 0, 1, 1, 1, 0])
    pred = np.array([0, 1, 1, 1, 0, 0])
    s = MaskScores.from_masks(truth, pred, ("a", "b", "c"))
    assert math.isnan(s.per_class.loc["c", "jaccard"])
    assert s.per_class.loc["c", "true_px"] == 0
    # Balanced accuracy averages only classes present in the truth.
    assert s.balanced_accuracy == pytest.approx(0.5 * (2 / 3 + 2 / 3))


def test_pooled_equals_scoring_concatenated_images():
    rng = np.random.default_rng(0)
    truths = [rng.random((20, 30)) < 0.3 for _ in range(4)]
    preds = [t ^ (rng.random(t.shape) < 0.1) for t in truths]
    each = [MaskScores.from_masks(t, p) for t, p in zip(truths, preds)]
    together = MaskScores.from_masks(np.concatenate(truths), np.concatenate(preds))
    np.testing.assert_array_equal(pooled(each).confusion, together.confusion)
    table = summarise(each)
    assert list(table.index) == ["pooled", "mean", "std"]
    assert table.loc["pooled", "jaccard"] == pytest.approx(together.summary()["jaccard"])
    assert table.loc["mean", "f1"] == pytest.approx(np.mean([e.summary()["f1"] for e in each]))


def test_errors():
    with pytest.raises(InputError, match="same shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((3, 2)), 2)
    with pytest.raises(InputError, match=r"0\.\.1"):
        confusion_matrix(np.array([0, 2]), np.array([0, 1]), 2)
    s = MaskScores.from_masks(np.array([0, 1]), np.array([0, 1]), ("x", "y"))
    with pytest.raises(InputError, match="unknown class"):
        s.summary("z")
    with pytest.raises(InputError, match="cannot pool"):
        _ = s + MaskScores.from_masks(np.array([0, 1]), np.array([0, 1]), ("p", "q"))
    with pytest.raises(InputError, match="no scores"):
        pooled([])
