"""Mask clean-up: smoothing, small regions, holes."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.errors import InputError
from napari_atomseg.segmentation.cleanup import (
    clean_labels,
    fill_holes,
    remove_small_regions,
    smooth_boundaries,
)
from tests._synth import disc


def test_smoothing_removes_speckle_and_keeps_area():
    rng = np.random.default_rng(0)
    truth = disc((128, 128), (64, 64), 30)
    noisy = truth ^ (rng.random(truth.shape) < 0.05)  # 5 % of pixels flipped
    smooth = smooth_boundaries(noisy.astype(np.uint8), 2.0).astype(bool)
    assert (smooth != truth).mean() < 0.005
    assert abs(int(smooth.sum()) - int(truth.sum())) < 0.02 * truth.sum()


def test_smoothing_three_classes_majority():
    lab = np.zeros((60, 60), np.uint8)
    lab[:, 20:40] = 1
    lab[:, 40:] = 2
    lab[30, 10] = 2  # isolated wrong pixels in each class
    lab[10, 30] = 0
    out = smooth_boundaries(lab, 1.5)
    assert out[30, 10] == 0 and out[10, 30] == 1
    # Straight boundaries stay where they are.
    np.testing.assert_array_equal(out[45], lab[45])
    assert smooth_boundaries(lab, 0.0) is not lab


def test_small_regions_go_to_their_surroundings():
    lab = np.zeros((50, 50), np.uint8)
    lab[5:8, 5:8] = 1  # 9 px island of class 1 in class 0
    lab[20:45, 20:45] = 1
    lab[30:32, 30:32] = 2  # 4 px island of class 2 inside class 1
    out = remove_small_regions(lab, 10)
    assert out[6, 6] == 0
    assert (out[30:32, 30:32] == 1).all()
    assert out[25, 25] == 1 and out.sum() == 25 * 25
    np.testing.assert_array_equal(remove_small_regions(lab, 0), lab)


def test_fill_holes_only_foreground_classes_and_size_limit():
    lab = np.zeros((40, 40), np.uint8)
    lab[5:35, 5:35] = 1
    lab[10:12, 10:12] = 0  # 4 px hole
    lab[20:28, 20:28] = 0  # 64 px hole
    small = fill_holes(lab, max_hole_px=10)
    assert (small[10:12, 10:12] == 1).all() and (small[20:28, 20:28] == 0).all()
    assert (fill_holes(lab)[5:35, 5:35] == 1).all()
    # A contamination patch (class 1) inside clean lattice (class 0) is never "filled".
    patch = np.zeros((40, 40), np.uint8)
    patch[10:20, 10:20] = 1
    np.testing.assert_array_equal(fill_holes(patch), patch)
    # ...unless class 0 is asked for explicitly.
    assert (fill_holes(patch, classes=[0]) == 0).all()


def test_clean_labels_bool_roundtrip_and_no_mutation():
    mask = disc((64, 64), (32, 32), 15)
    mask[32, 32] = False  # a pin hole
    mask[2, 2] = True  # a speck
    original = mask.copy()
    out = clean_labels(mask, smooth_sigma_px=0.0, min_region_px=5)
    np.testing.assert_array_equal(mask, original)
    assert out.dtype == bool
    assert out[32, 32] and not out[2, 2]


def test_bad_labels_rejected():
    with pytest.raises(InputError, match="2-D"):
        clean_labels(np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(InputError, match=">= 0"):
        clean_labels(-np.ones((4, 4), np.int32))
    with pytest.raises(InputError, match="integer"):
        clean_labels(np.zeros((4, 4), np.float32))
