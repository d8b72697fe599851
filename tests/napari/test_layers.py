"""layers.py: results -> layer data tuples, checked in a ViewerModel (no Qt needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from napari.components import ViewerModel
from napari.layers import Layer

from napari_atomseg._napari.layers import (
    Geometry,
    atoms_points,
    class_labels,
    point_size_px,
)
from napari_atomseg._napari.masking import points_on_class
from napari_atomseg._napari.writer import write_points
from napari_atomseg.io import Calibration

GEOM = Geometry.from_calibration(Calibration.from_pixel_size_nm(0.05))


def _atoms(n=4, frame=None):
    df = pd.DataFrame(
        {
            "y_px": np.arange(n, dtype=float) * 10 + 5,
            "x_px": np.arange(n, dtype=float) * 10 + 7,
            "y_nm": np.arange(n) * 0.5 + 0.25,
            "x_nm": np.arange(n) * 0.5 + 0.35,
            "confidence": np.linspace(0.9, 0.6, n).astype(np.float32),
            "nn_spacing_px": np.full(n, 14.0),
        }
    )
    if frame is not None:
        df.insert(0, "frame", frame)
    return df


def test_points_keep_pixels_and_features_without_coordinates(tmp_path):
    viewer = ViewerModel()
    layer = viewer.add_layer(Layer.create(*atoms_points(_atoms(), GEOM, "cols")))
    np.testing.assert_allclose(layer.data[:, 0], [5, 15, 25, 35])
    np.testing.assert_allclose(layer.scale, (0.05, 0.05))
    assert "y_nm" not in layer.features and "y_px" not in layer.features
    assert layer.size[0] == pytest.approx(7.0)  # half the 14 px spacing
    # A point added by hand is marked as such.
    layer.add([[50.0, 50.0]])
    assert list(layer.features["source"]) == ["model"] * 4 + ["manual"]
    assert np.isnan(layer.features["confidence"].iloc[-1])
    # A moved point is saved where it now is (no stale y_px feature to clash with).
    layer.data = layer.data + np.array([1.0, 0.0])
    out = tmp_path / "cols.csv"
    data, meta, _ = layer.as_layer_data_tuple()  # what napari hands to a writer
    write_points(str(out), data, meta)
    table = pd.read_csv(out)
    np.testing.assert_allclose(table["y_px"][:4], [6, 16, 26, 36])
    np.testing.assert_allclose(table["y_nm"][:4], np.array([6, 16, 26, 36]) * 0.05)
    assert list(table["source"]) == ["model"] * 4 + ["manual"]


def test_stack_points_carry_the_frame():
    geom = Geometry((1.0, 0.05, 0.05), ("pixel", "nm", "nm"), ("frame", "y", "x"), (0, 0, 0))
    data, kwargs, kind = atoms_points(_atoms(frame=2), geom, "cols")
    assert kind == "points"
    np.testing.assert_allclose(data[:, 0], 2)
    assert "frame" not in kwargs["features"]


def test_class_labels_have_names_colours_and_fractions():
    labels = np.zeros((10, 10), np.uint8)
    labels[:, :3] = 1
    labels[:, 9] = 2
    viewer = ViewerModel()
    layer = viewer.add_layer(
        Layer.create(*class_labels(labels, ("crystal", "amorphous", "vacuum"), GEOM, "seg"))
    )
    assert list(layer.features["class"]) == ["crystal", "amorphous", "vacuum"]
    np.testing.assert_allclose(layer.features["area_fraction"], [0.6, 0.3, 0.1])
    assert layer.metadata["class_names"] == {0: "crystal", 1: "amorphous", 2: "vacuum"}
    assert layer.colormap.map(0)[-1] == 0  # label 0 transparent
    assert layer.colormap.map(1)[-1] == 1
    assert not np.allclose(layer.colormap.map(1), layer.colormap.map(2))


def test_point_size_and_mask_lookup():
    assert point_size_px(_atoms()) == pytest.approx(7.0)
    assert point_size_px(_atoms().drop(columns="nn_spacing_px")) == 4.0
    viewer = ViewerModel()
    mask = np.zeros((40, 40), np.uint8)
    mask[:20] = 1
    labels = viewer.add_labels(mask, scale=(0.05, 0.05))
    points = viewer.add_points([[5, 5], [30, 5], [100, 100]], scale=(0.05, 0.05))
    assert list(points_on_class(points, labels, 1)) == [True, False, False]
