"""Find atoms -> correct -> File > Save Selected Layers -> open again, in a real viewer.

napari offers its own Points CSV writer first (npe2 sorts writers of equal specificity by
registration order, and napari's builtins register first; a plugin cannot change that),
then this plugin's. Both must round-trip: positions, scale (nm) and features.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_atomseg._napari.widgets import atoms as atoms_widget
from napari_atomseg._progress import Progress
from napari_atomseg.atoms import heatmap as atoms_heatmap
from napari_atomseg.atoms.heatmap import HeatmapResult
from tests._synth import graded_square_lattice

PS_NM = 0.02
PLUGIN = "napari-atomseg"


@pytest.fixture
def found(make_napari_viewer, qtbot, monkeypatch):
    """A viewer after Find atoms on a calibrated lattice (the network replaced by the
    synthetic heatmap), with one point added by hand: (viewer, image, points)."""
    image, heat, true, _ = graded_square_lattice()

    def fake_network(img, pixel_size_nm=None, model="default", **kw):
        yield Progress(0, 1, "fake network")
        result = HeatmapResult.from_arrays(img, heat, pixel_size_nm)
        return dataclasses.replace(result, contrast=kw.get("contrast", "auto"))

    monkeypatch.setattr(atoms_heatmap, "iter_predict_heatmap", fake_network)
    viewer = make_napari_viewer()
    layer = viewer.add_image(image, name="lat", scale=(PS_NM, PS_NM), units="nm")
    widget = atoms_widget.FindAtomsWidget(viewer)
    widget.threshold.value = 0.1
    qtbot.waitUntil(lambda: not widget.panel.busy, timeout=30_000)
    widget.run()
    qtbot.waitUntil(lambda: not widget.panel.busy, timeout=60_000)
    points = viewer.layers["lat columns"]
    assert len(points.data) == len(true)
    points.add([[5.0, 7.0]])  # a correction: a column the model missed
    return viewer, layer, points


def test_points_layer_is_selected_after_find_atoms(found) -> None:
    viewer, _, points = found
    assert viewer.layers.selection.active is points
    assert viewer.layers.selection == {points}
    assert not viewer.layers["lat column labels"].visible


def _csv_writers(points) -> list:
    from napari.plugins._npe2 import file_extensions_string_for_layers

    _, writers = file_extensions_string_for_layers([points])
    return [w for w in writers if ".csv" in w.filename_extensions]


def test_every_csv_choice_of_save_selected_layers_round_trips(found, tmp_path: Path) -> None:
    viewer, image, points = found
    writers = _csv_writers(points)
    assert {w.command for w in writers} >= {"napari.write_points", f"{PLUGIN}.write_points"}
    manual = points.features["source"] == "manual"
    assert manual.sum() == 1
    assert points.features.loc[manual, "pixel_size_nm"].tolist() == [PS_NM]
    for k, writer in enumerate(writers):  # the first is what the dialog offers first
        path = tmp_path / f"saved_{k}.csv"
        viewer.layers.selection.active = points
        saved = viewer.layers.save(str(path), selected=True, _writer=writer)
        assert saved == [str(path)], writer.command
        (back,) = viewer.open(str(path), plugin=PLUGIN)
        np.testing.assert_allclose(back.data, points.data, rtol=0, atol=1e-6)  # 10 digits
        np.testing.assert_allclose(back.scale, image.scale, rtol=1e-9)
        assert [str(u) for u in back.units] == ["nanometer", "nanometer"]
        for name in ("confidence", "intensity", "nn_spacing_nm"):
            np.testing.assert_allclose(
                back.features[name].to_numpy(float),
                points.features[name].to_numpy(float),
                rtol=1e-8,
                equal_nan=True,
            )
        assert back.features["source"].tolist() == points.features["source"].tolist()
        assert list(back.features["source"].cat.categories) == ["model", "manual"]


def test_plugin_writer_has_nm_columns_and_features(found, tmp_path: Path) -> None:
    viewer, _, points = found
    (ours,) = [w for w in _csv_writers(points) if w.command == f"{PLUGIN}.write_points"]
    path = tmp_path / "columns.csv"
    viewer.layers.save(str(path), selected=True, _writer=ours)
    table = pd.read_csv(path)
    assert list(table.columns[:4]) == ["y_px", "x_px", "y_nm", "x_nm"]
    assert {"confidence", "intensity", "source", "pixel_size_nm"} <= set(table.columns)
    np.testing.assert_allclose(table["y_nm"], table["y_px"] * PS_NM, rtol=1e-9)


@pytest.mark.shared_data
def test_imagej_results_open_as_points(make_napari_viewer) -> None:
    from tests._data import shared_path

    viewer = make_napari_viewer()
    path = shared_path("pt_single_atoms", "coordinates", "027_Results.csv")
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    raw = pd.read_csv(path)
    np.testing.assert_array_equal(layer.data, raw[["Y", "X"]].to_numpy(float))
    assert [str(u) for u in layer.units] == ["pixel", "pixel"]
    assert (layer.features["source"] == "manual").all()
    assert "pixels" in layer.metadata["calibration_note"]


@pytest.mark.qt
def test_table_without_scale_lands_on_its_image(make_napari_viewer, tmp_path: Path) -> None:
    """ImageJ Results hold pixels and no scale: opened over the one calibrated image they
    fit on, they take its scale (before: drawn 1/0.0293 times too far out, in pixels)."""
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((64, 80)), name="scan", scale=(0.0293, 0.0293), units="nm")
    path = tmp_path / "Results.csv"
    path.write_text(" ,X,Y\n1,70,10\n2,5,60\n")
    (points,) = viewer.open(str(path), plugin=PLUGIN)
    np.testing.assert_array_equal(points.data, [[10, 70], [60, 5]])
    np.testing.assert_allclose(points.scale, image.scale)
    assert [str(u) for u in points.units] == ["nanometer", "nanometer"]
    assert "image layer 'scan'" in points.metadata["calibration_note"]
    # Two calibrated images it fits on: ambiguous, so it stays in pixels.
    viewer.add_image(np.zeros((64, 80)), name="other", scale=(0.05, 0.05), units="nm")
    (again,) = viewer.open(str(path), plugin=PLUGIN)
    assert [str(u) for u in again.units] == ["pixel", "pixel"]
    # Points beyond the image's pixel grid do not fit it.
    viewer.layers.remove("other")
    path.write_text(" ,X,Y\n1,700,10\n")
    (outside,) = viewer.open(str(path), plugin=PLUGIN)
    assert [str(u) for u in outside.units] == ["pixel", "pixel"]
