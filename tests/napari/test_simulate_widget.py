"""The Simulate micrograph widget: form -> parameters -> layers; absurd values refused."""

from __future__ import annotations

import numpy as np
import pytest
from napari.components import ViewerModel
from napari.utils.notifications import notification_manager

from napari_atomseg._napari.widgets.simulate import SimulateWidget
from napari_atomseg.errors import InputError


def test_simulation_becomes_calibrated_layers(qtbot):
    viewer = ViewerModel()
    w = SimulateWidget(viewer)
    w.material.value = "MoS2"
    w.pixel_size_nm.value = 0.02
    w.field_of_view_nm.value = 1.6  # 80 px
    w.contamination.value = 0.3
    w.run()
    qtbot.waitUntil(lambda: not w.panel.busy, timeout=120_000)
    image = viewer.layers["simulated"]
    assert image.data.shape == (80, 80)
    np.testing.assert_allclose(image.scale, (0.02, 0.02))
    assert image.metadata["simulation_parameters"]["material"] == "MoS2"
    truth = viewer.layers["simulated ground truth"]
    assert len(truth.data) > 20  # a 1.6 nm field of MoS2 (0.18 nm spacing)
    assert {"z_sum", "elements", "visible", "region"} <= set(truth.features)
    # Mo (42) + 2 S (16): columns hold Z sums 42 or 32.
    assert set(truth.features["z_sum"]) <= {42, 32}
    np.testing.assert_allclose(truth.scale, (0.02, 0.02))
    classes = viewer.layers["simulated classes"]
    assert list(classes.features["class"]) == ["vacuum", "crystal", "support", "contamination"]
    assert classes.metadata["class_names"][3] == "contamination"
    fractions = classes.features["area_fraction"].to_numpy()
    assert fractions.sum() == pytest.approx(1.0)
    assert "visible columns" in w.panel.status.value


def test_zone_axes_follow_the_material(qtbot):
    w = SimulateWidget(ViewerModel())
    w.material.value = "SrTiO3"
    assert set(w.zone_axis.choices) >= {"001", "011"}
    # A bulk crystal has a thickness, not a number of layers (widgets not shown: isHidden).
    assert not w.thickness_nm.native.isHidden()
    assert w.layers.native.isHidden()
    w.material.value = "MoS2"
    assert w.thickness_nm.native.isHidden()
    assert not w.layers.native.isHidden()


def test_absurd_field_of_view_is_refused_with_a_message(qtbot):
    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        viewer = ViewerModel()
        w = SimulateWidget(viewer)
        w.pixel_size_nm.value = 0.002
        w.field_of_view_nm.value = 400.0  # 200,000 px across
        with pytest.raises(InputError, match="16-8192 px"):
            w.parameters()
        assert w.run() is None
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    assert any("field of view" in str(n.message) for n in seen)
    assert len(viewer.layers) == 0
