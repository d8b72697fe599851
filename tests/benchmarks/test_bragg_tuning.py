"""Choosing Bragg parameters by (cross-)validation."""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks.lib.bragg_tuning import (
    BraggGrid,
    GridScores,
    best_candidate,
    bragg_grid_scores,
    cross_validated,
)

from napari_atomseg.errors import InputError
from napari_atomseg.segmentation import segment
from napari_atomseg.segmentation.metrics import confusion_matrix
from tests._synth import contaminated_lattice


def test_grid_scores_match_segment_exactly():
    items = [contaminated_lattice(seed=s) for s in (1, 2)]
    grid = BraggGrid(
        aperture_sigma_rel=(0.05,),
        lowpass_sigma_periods=(0.5, 1.0),
        mask_threshold=(1.5, 3.0),
        smooth_sigma=(0.0, 2.0),
        min_region_size=(0.0,),
    )
    scores = bragg_grid_scores(items, grid)
    assert scores.confusion.shape == (8, 2, 2, 2)
    # Every candidate reproduces what segment() gives with the same options.
    for i in (0, 5, 7):
        options = scores.candidates[i]
        for n, (image, truth) in enumerate(items):
            result = segment(image, method="bragg", **options)
            expected = confusion_matrix(truth, result.flagged_mask, 2)
            np.testing.assert_array_equal(scores.confusion[i, n], expected)
    best = best_candidate(scores)
    assert scores.pooled_table().iloc[best]["jaccard"] > 0.8


def _fake_scores():
    # Candidate 0 is perfect on images 0-1 and useless on 2-3; candidate 1 the reverse.
    good = np.array([[90, 0], [0, 10]])
    bad = np.array([[80, 10], [10, 0]])
    conf = np.array([[good, good, bad, bad], [bad, bad, good, good]])
    return GridScores([{"mask_threshold": 1.0}, {"mask_threshold": 2.0}], conf)


def test_cross_validation_scores_each_fold_with_parameters_chosen_elsewhere():
    scores = _fake_scores()
    assert best_candidate(scores, [0, 1]) == 0
    assert best_candidate(scores, [2, 3]) == 1
    splits = [(np.array([2, 3]), np.array([0, 1])), (np.array([0, 1]), np.array([2, 3]))]
    cv = cross_validated(scores, splits)
    # Folds were chosen on the *other* images, so every held-out image gets the bad one.
    assert cv.chosen == [{"mask_threshold": 2.0}, {"mask_threshold": 1.0}]
    assert all(s.summary()["jaccard"] == 0.0 for s in cv.per_image)
    with pytest.raises(InputError, match="never test"):
        cross_validated(scores, splits[:1])
    with pytest.raises(InputError, match="objective"):
        best_candidate(scores, objective="dice")
