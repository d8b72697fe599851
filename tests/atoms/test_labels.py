"""Column instance labels and the circular-Hough finder."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.atoms.labels import column_labels
from napari_atomseg.errors import InputError
from tests._synth import heatmap_for, hex_lattice_px


def test_labels_follow_row_order_and_cover_each_column():
    shape = (160, 160)
    true = hex_lattice_px(shape, 14.0, margin_px=2, seed=0)
    heat = heatmap_for(shape, true, 3.0)
    before = heat.copy()
    lab = column_labels(heat, true, level=0.2, max_radius_px=6.0)
    np.testing.assert_array_equal(heat, before)
    assert lab.dtype == np.int32 and lab.shape == shape
    centre = np.rint(true).astype(int)
    # Label i+1 sits on column i; every column has a compact region.
    np.testing.assert_array_equal(lab[centre[:, 0], centre[:, 1]], np.arange(1, len(true) + 1))
    areas = np.bincount(lab.ravel(), minlength=len(true) + 1)[1:]
    interior = (true > 8).all(1) & (true < 152).all(1)
    assert areas[interior].min() > 0.8 * np.pi * 5**2
    assert areas.max() <= np.pi * 6.5**2
    # Pixels of a label are never farther than max_radius from its centre.
    rows, cols = np.nonzero(lab)
    d = np.hypot(rows - true[lab[rows, cols] - 1, 0], cols - true[lab[rows, cols] - 1, 1])
    assert d.max() <= 6.0


def test_labels_without_radius_split_touching_blobs_by_watershed():
    heat = heatmap_for((40, 60), np.array([[20.0, 20.0], [20.0, 30.0]]), 4.0)
    lab = column_labels(heat, [[20.0, 20.0], [20.0, 30.0]], level=0.3)
    assert set(np.unique(lab)) == {0, 1, 2}
    assert (lab[20, :25] != 2).all() and (lab[20, 26:] != 1).all()


def test_labels_edge_cases():
    heat = np.zeros((32, 32), np.float32)
    assert column_labels(heat, np.zeros((0, 2))).max() == 0
    lab = column_labels(heat, [[5.0, 5.0], [100.0, 100.0]])  # second outside the image
    assert lab[5, 5] == 1 and (lab == 2).sum() == 0
    with pytest.raises(InputError):
        column_labels(np.zeros((4, 4, 4)), [[1, 1]])
