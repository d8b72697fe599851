"""Simulate micrograph, HRTEM: its defaults show columns; when none shows, it says why."""

from __future__ import annotations

import pytest
from napari.components import ViewerModel
from napari.utils.notifications import notification_manager

from napari_atomseg._napari.widgets.simulate import SimulateWidget
from napari_atomseg.simulation.optics import scherzer_defocus_A
from napari_atomseg.simulation.visibility import default_hrtem_optics


def _small(w: SimulateWidget) -> None:
    w.material.value = "MoS2"
    w.pixel_size_nm.value = 0.02
    w.field_of_view_nm.value = 2.0  # 100 px


def _visible(viewer) -> int:
    return int(viewer.layers["simulated ground truth"].features["visible"].sum())


def test_hrtem_defaults_are_corrected_optics_at_the_optimum_focus(qtbot) -> None:
    viewer = ViewerModel()
    w = SimulateWidget(viewer)
    _small(w)
    assert (w.cs_um.value, w.defocus_nm.value) == (0.0, 0.0)  # HAADF: a corrected probe
    w.mode.value = "hrtem"
    cs, defocus = default_hrtem_optics(200.0)
    assert w.cs_um.value == pytest.approx(cs) and w.optimum_defocus.value is True
    assert w.defocus_nm.value == pytest.approx(defocus, abs=0.01)
    assert defocus < 0  # negative Cs: overfocus (white atoms)
    w.cs_um.value = 1000.0  # an uncorrected lens: the defocus follows (Scherzer)
    assert w.defocus_nm.value == pytest.approx(scherzer_defocus_A(1e7, 200.0) / 10, abs=0.01)
    w.cs_um.value = cs
    w.run()
    qtbot.waitUntil(lambda: not w.panel.busy, timeout=120_000)
    # Before: Cs 0 and defocus 0 gave "0 visible columns".
    assert _visible(viewer) > 30, w.panel.status.value
    assert w.panel.status.value.endswith("visible columns")


def test_no_visible_columns_says_why(qtbot) -> None:
    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        viewer = ViewerModel()
        w = SimulateWidget(viewer)
        _small(w)
        w.mode.value = "hrtem"
        w.defocus_nm.value = -3.0  # typing a defocus turns the optimum off
        assert w.optimum_defocus.value is False
        w.cs_um.value = 0.0  # (the old defaults: no aberrations, in focus)
        w.defocus_nm.value = 0.0
        assert w.defocus_nm.value == 0.0 and w.optimum_defocus.value is False
        w.run()
        qtbot.waitUntil(lambda: not w.panel.busy, timeout=120_000)
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    assert _visible(viewer) == 0
    status = w.panel.status.value
    assert "0 visible columns" in status and "almost no phase contrast" in status
    assert "Cs -20 um" in status
    assert any("phase contrast" in str(n.message) for n in seen)
