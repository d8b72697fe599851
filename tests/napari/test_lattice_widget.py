"""The Analyse lattice widget: Points + Image + a Shapes reference -> lattice layers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from napari.components import ViewerModel

from napari_atomseg._napari.widgets.lattice import AnalyseLatticeWidget
from napari_atomseg.simulation.deformation import Deformation, perovskite_columns

PS = 0.02
SHAPE = (200, 200)


def _wait(qtbot, panel, timeout=120_000):
    qtbot.waitUntil(lambda: not panel.busy, timeout=timeout)


@pytest.fixture
def viewer_with_columns():
    cols = perovskite_columns(SHAPE, PS, Deformation(shifts_pm=(("Ti", 0.0, 20.0),)))
    yy, xx = np.indices(SHAPE, dtype=np.float64)
    img = np.full(SHAPE, 5.0)
    amp = cols["element"].map({"Sr": 100.0, "Ti": 60.0, "O": 15.0}).to_numpy()
    for (y, x), a in zip(cols[["y_px", "x_px"]].to_numpy(), amp):
        img += a * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 8.0)
    viewer = ViewerModel()
    viewer.add_image(img.astype(np.float32), name="sto", scale=(PS, PS), units="nm")
    points = viewer.add_points(cols[["y_px", "x_px"]].to_numpy(), name="cols", scale=(PS, PS))
    points.features = pd.DataFrame({"element": cols["element"].to_numpy()})
    # A reference rectangle drawn in world units (nm), like a user would.
    viewer.add_shapes([np.array([[0.4, 0.4], [3.6, 3.6]])], shape_type="rectangle", name="ref")
    return viewer, cols


def test_widget_adds_sublattices_maps_vectors_and_histogram(qtbot, viewer_with_columns):
    viewer, _cols = viewer_with_columns
    w = AnalyseLatticeWidget(viewer)
    w.points.value = viewer.layers["cols"]
    w.image.value = viewer.layers["sto"]
    w.reference.value = viewer.layers["ref"]
    assert w.run() is not None
    _wait(qtbot, w.panel)
    points = viewer.layers["cols"]
    feats = points.features
    assert {"sublattice", "strain_xx", "displacement_x_pm", "intensity_integrated"} <= set(feats)
    groups = feats.groupby("sublattice")["element"].agg(lambda e: set(e))
    assert groups[0] == {"Sr"} and groups[1] == {"Ti"}
    # Points are coloured by sublattice.
    colours = {tuple(np.round(c, 3)) for c in points.face_color[feats["sublattice"] == 0]}
    assert len(colours) == 1
    assert colours != {tuple(np.round(points.face_color[feats["sublattice"] == 1][0], 3))}
    strain = viewer.layers["cols strain_xx"]
    np.testing.assert_allclose(strain.scale, (PS, PS))
    lo, hi = strain.contrast_limits
    assert lo == pytest.approx(-hi)
    assert "mask" in strain.metadata["reference"]
    vectors = next(ly for ly in viewer.layers if ly.name.startswith("cols displacements"))
    assert "x" in vectors.name and vectors.metadata["arrow_scale"] > 1
    ti = vectors.features["sublattice"] == 1
    np.testing.assert_allclose(vectors.features["displacement_x_pm"][ti], 20.0, atol=1e-3)
    np.testing.assert_allclose(vectors.features["displacement_x_pm"][~ti], 0.0, atol=1e-3)
    assert w.histogram.quantity == "intensity_integrated"
    assert "mean displacement" in w.panel.status.value
    # A point added by hand starts unassigned.
    points.add(np.array([[100.0, 100.0]]))
    assert points.features["sublattice"].iloc[-1] == -1
    assert np.isnan(points.features["strain_xx"].iloc[-1])


def test_hand_reassignment_survives_a_rerun(qtbot, viewer_with_columns):
    viewer, _ = viewer_with_columns
    w = AnalyseLatticeWidget(viewer)
    w.points.value = viewer.layers["cols"]
    w.image.value = viewer.layers["sto"]
    w.run()
    _wait(qtbot, w.panel)
    points = viewer.layers["cols"]
    oxygen = np.nonzero(points.features["sublattice"].to_numpy() == 3)[0]
    points.selected_data = set(oxygen.tolist())
    w.assign_to.value = 2
    assert w.assign_selected() == len(oxygen)
    w.run()
    _wait(qtbot, w.panel)
    assert set(points.features["sublattice"]) == {0, 1, 2}


def test_widget_explains_missing_input(qtbot):
    viewer = ViewerModel()
    w = AnalyseLatticeWidget(viewer)
    assert w.run() is None
    assert "Points" in w.panel.status.value


def test_docks_from_the_manifest_in_a_real_viewer(make_napari_viewer, qtbot, viewer_with_columns):
    model, _ = viewer_with_columns
    viewer = make_napari_viewer()
    _dock, w = viewer.window.add_plugin_dock_widget("napari-atomseg", "Analyse lattice")
    assert w.run() is None  # no Points layer yet: a message, not an exception
    for layer in model.layers:
        viewer.add_layer(layer)
    w.points.value = viewer.layers["cols"]
    w.image.value = viewer.layers["sto"]
    w.run()
    qtbot.waitUntil(lambda: not w.panel.busy, timeout=120_000)
    assert "cols strain_xx" in viewer.layers
    assert viewer.layers[-1].name == "cols"  # the columns stay on top of the maps
