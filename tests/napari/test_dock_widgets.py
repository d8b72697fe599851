"""The manifest's widgets dock into a real Qt viewer and run there (under Xvfb)."""

from __future__ import annotations

import numpy as np

from napari_atomseg._progress import Progress
from napari_atomseg.atoms import heatmap as atoms_heatmap
from napari_atomseg.atoms.heatmap import HeatmapResult
from tests._synth import LATTICE_PIXEL_SIZE_NM as PS_NM
from tests._synth import graded_square_lattice

WIDGETS = ("Find atoms", "Segment regions", "Simulate micrograph", "Fine-tune atom finder")


def test_every_widget_docks(make_napari_viewer):
    viewer = make_napari_viewer()
    widgets = {}
    for name in WIDGETS:
        _dock, widgets[name] = viewer.window.add_plugin_dock_widget("napari-atomseg", name)
    # Running with no image is a message (notification), not an exception.
    assert widgets["Find atoms"].run() is None
    assert widgets["Segment regions"].run() is None
    assert widgets["Fine-tune atom finder"].run() is None
    assert "choose an image" in widgets["Fine-tune atom finder"].panel.status.value
    assert "Image layer" in widgets["Find atoms"].panel.status.value
    # Layer pickers follow the layer list.
    layer = viewer.add_image(np.random.default_rng(0).random((64, 64)), name="img")
    assert widgets["Find atoms"].image.value is layer
    assert widgets["Segment regions"].image.value is layer


def test_find_atoms_in_a_real_viewer(make_napari_viewer, qtbot, monkeypatch):
    image, heat, true, _ = graded_square_lattice()

    def fake(img, pixel_size_nm=None, model="default", **kw):
        yield Progress(0, 1, "fake network")
        return HeatmapResult.from_arrays(img, heat, pixel_size_nm)

    monkeypatch.setattr(atoms_heatmap, "iter_predict_heatmap", fake)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="lat", scale=(PS_NM, PS_NM), units="nm")
    _dock, w = viewer.window.add_plugin_dock_widget("napari-atomseg", "Find atoms")
    w.threshold.value = 0.1
    w.run()
    qtbot.waitUntil(lambda: not w.panel.busy, timeout=30_000)
    points = viewer.layers["lat columns"]
    assert len(points.data) == len(true)
    w.threshold.value = 0.6  # live preview through the real Qt event loop
    qtbot.waitUntil(lambda: len(points.data) < len(true), timeout=30_000)
    qtbot.waitUntil(lambda: not w.panel.busy, timeout=30_000)
    labels = viewer.layers["lat column labels"]
    labels.visible = True
    qtbot.waitUntil(lambda: labels.metadata["stale"] is False, timeout=30_000)
    qtbot.waitUntil(lambda: not w.panel.busy, timeout=30_000)
    assert labels.data.max() == len(points.data)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    assert shot.ndim == 3 and shot.shape[0] > 100
