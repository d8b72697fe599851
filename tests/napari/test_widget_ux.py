"""First-use friction seen in a trial: dock heights, switching models in Find atoms."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from napari.components import ViewerModel

from napari_atomseg._napari.widgets import atoms as atoms_widget
from napari_atomseg._progress import Progress
from napari_atomseg.atoms import heatmap as atoms_heatmap
from napari_atomseg.atoms import options as atoms_options
from napari_atomseg.atoms.heatmap import HeatmapResult
from napari_atomseg.errors import AtomsegError
from tests._synth import graded_square_lattice

PS_NM = 0.02
WIDGETS = ("Find atoms", "Segment regions", "Fine-tune atom finder", "Simulate micrograph")
SCREEN_PX = (1600, 1000)


# ----------------------------------------------------------------------------- docks
@pytest.mark.qt
@pytest.mark.parametrize("pair", [(a, b) for i, a in enumerate(WIDGETS) for b in WIDGETS[i + 1 :]])
def test_two_docks_fit_a_1000_px_screen(make_napari_viewer, qtbot, pair) -> None:
    """Any two of the widgets docked in a 1600 x 1000 window: the window stays 1000 px
    tall (the canvas keeps its height) and both widgets show every row without
    scrolling. Before: Find atoms + Segment regions needed 1,330 px and grew the window.
    """
    from qtpy.QtWidgets import QScrollArea

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(*SCREEN_PX)
    docks = []
    for name in pair:
        docks.append(viewer.window.add_plugin_dock_widget("napari-atomseg", name)[0])
        qtbot.wait(50)
    window.resize(*SCREEN_PX)
    qtbot.wait(100)
    assert window.height() == SCREEN_PX[1]
    assert viewer.window._qt_viewer.canvas.native.height() > 0.8 * SCREEN_PX[1]
    for dock in docks:
        scroll = dock.widget()
        assert isinstance(scroll, QScrollArea)  # scrolls when the dock is short...
        assert dock.minimumSizeHint().height() < 200
        bar = scroll.verticalScrollBar()
        assert bar.maximum() == 0, (dock.name, dock.height(), scroll.widget().sizeHint())


def test_advanced_options_fold(qtbot) -> None:
    w = atoms_widget.FindAtomsWidget(ViewerModel())
    assert w.advanced.expanded is False
    assert not any(x.visible for x in w.advanced.section)
    w.advanced.changed.emit(True)  # a click
    assert w.advanced.expanded and all(not x._explicitly_hidden for x in w.advanced.section)
    assert w.refine in w.advanced.section and w.views in w.advanced.section


# ----------------------------------------------------------------------------- models
CARDS = {"a.yaml": {"threshold": 0.3}, "b.yaml": {"threshold": 0.7, "min_separation_nm": 0.1}}


@pytest.fixture
def two_models(monkeypatch):
    """Two model cards (thresholds 0.3 and 0.7) and a network that answers with the
    synthetic heatmap, tagged with the card it was asked for; returns the calls."""
    image, heat, _, _ = graded_square_lattice()
    calls = []

    def fake(img, pixel_size_nm=None, model="default", **kw):
        calls.append(Path(str(model)).name)
        yield Progress(0, 1, "fake network")
        result = HeatmapResult.from_arrays(img, heat, pixel_size_nm)
        pp = CARDS.get(Path(str(model)).name, {})
        return dataclasses.replace(result, postprocess=pp, contrast=kw.get("contrast", "auto"))

    monkeypatch.setattr(atoms_heatmap, "iter_predict_heatmap", fake)
    monkeypatch.setattr(
        atoms_options, "model_postprocess", lambda m: CARDS.get(Path(str(m)).name, {})
    )
    viewer = ViewerModel()
    viewer.add_image(image, name="lat", scale=(PS_NM, PS_NM), units="nm")
    widget = atoms_widget.FindAtomsWidget(viewer)
    widget.model_card.value = "a.yaml"
    return viewer, widget, calls


def _idle(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: not widget.panel.busy, timeout=30_000)


def test_switching_model_shows_its_threshold_and_keeps_it(qtbot, two_models) -> None:
    viewer, w, calls = two_models
    w.run()
    _idle(qtbot, w)
    assert w.threshold.value == pytest.approx(0.3) and calls == ["a.yaml"]
    points = viewer.layers["lat columns"]
    n_found = len(points.data)
    w.model_card.value = "b.yaml"
    assert w.threshold.value == pytest.approx(0.7)  # at once
    # Before: a live preview started here on model a's heatmaps and moved the slider
    # back to 0.3 (and kept the panel busy).
    assert not w._timer.isActive() and not w.panel.busy
    qtbot.wait(400)
    assert w.threshold.value == pytest.approx(0.7) and not w.panel.busy
    assert len(points.data) == n_found
    # Moving a slider does not post-process model a's heatmaps as if they were b's.
    w.separation_nm.value = 0.12
    qtbot.wait(400)
    assert not w.panel.busy and "another model" in w.panel.status.value
    assert w.threshold.value == pytest.approx(0.7)
    w.run()
    _idle(qtbot, w)
    assert calls == ["a.yaml", "b.yaml"]
    assert points.metadata["model_choice"].endswith("b.yaml")
    assert w.threshold.value == pytest.approx(0.7)


def test_find_atoms_during_a_preview_runs_instead_of_refusing(qtbot, two_models) -> None:
    _viewer, w, calls = two_models
    w.run()
    _idle(qtbot, w)
    w.live_preview.value = False  # drive the preview by hand
    assert w.preview() is not None and w.panel.busy
    with pytest.raises(AtomsegError):  # what used to reach the user
        w.panel.start(lambda: iter(()), on_result=lambda _: None)
    assert w.run() is None  # accepted: starts when the preview has stopped
    qtbot.waitUntil(lambda: len(calls) == 2, timeout=30_000)
    _idle(qtbot, w)
    assert "already running" not in w.panel.status.value
    assert "columns" in w.panel.status.value


@pytest.mark.qt
def test_opening_a_fold_widens_the_dock_to_its_rows(make_napari_viewer, qtbot) -> None:
    """Rows a fold reveals (folder sorting: file fields, a table) must not be clipped: the
    dock learns their width (a scroll area does not pass it on by itself)."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    from qtpy.QtCore import Qt

    dock, widget = viewer.window.add_plugin_dock_widget("napari-atomseg", "Segment regions")
    qtbot.wait(100)
    # As narrow as the folded rows allow (the width a user may have dragged it to).
    viewer.window._qt_window.resizeDocks([dock], [1], Qt.Orientation.Horizontal)
    qtbot.wait(100)
    narrow = dock.width()
    widget.sorting_fold.changed.emit(True)  # a click
    qtbot.wait(200)
    rows = dock.widget().widget()
    assert dock.widget().viewport().width() >= rows.minimumSizeHint().width() > narrow
