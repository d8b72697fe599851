"""npe2 writers: Points -> CSV with px/nm/feature columns, Labels -> calibrated TIFF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_atomseg.errors import FileWriteError
from tests._synth import cosine_pattern
from tests.io._make import write_imagej_tiff

PLUGIN = "napari-atomseg"


@pytest.fixture(scope="module")
def viewer_model():
    npe2 = pytest.importorskip("npe2")
    npe2.PluginManager.instance().discover()
    from napari.components import ViewerModel

    return ViewerModel()


@pytest.fixture
def image_layer(tmp_path: Path, viewer_model):
    path = write_imagej_tiff(tmp_path / "scan.tif", cosine_pattern(), 0.02, "nm")
    viewer_model.layers.clear()
    (layer,) = viewer_model.open(str(path), plugin=PLUGIN)
    return layer


def _save(path: Path, layer) -> list[str]:
    import npe2

    return npe2.write(str(path), [layer], plugin_name=PLUGIN)


def test_points_layer_to_csv_with_nm_and_features(
    tmp_path: Path, image_layer, viewer_model
) -> None:
    points = viewer_model.add_points(
        [[10.0, 20.0], [30.0, 5.5]],
        scale=image_layer.scale,
        units=image_layer.units,
        features={"confidence": [0.9, 0.4], "class": ["Pt", "C"]},
        name="columns",
    )
    written = _save(tmp_path / "columns.csv", points)
    table = pd.read_csv(written[0])
    assert list(table.columns) == ["y_px", "x_px", "y_nm", "x_nm", "confidence", "class"]
    np.testing.assert_allclose(table["y_nm"], [0.2, 0.6], rtol=1e-9)
    np.testing.assert_allclose(table["x_nm"], [0.4, 0.11], rtol=1e-9)
    assert table["class"].tolist() == ["Pt", "C"]


def test_points_layer_in_pixels_has_px_columns_only(tmp_path: Path, viewer_model) -> None:
    points = viewer_model.add_points([[1.0, 2.0]])
    table = pd.read_csv(_save(tmp_path / "px.csv", points)[0])
    assert list(table.columns) == ["y_px", "x_px"]


def test_writer_refuses_to_replace_the_source_image(image_layer, viewer_model) -> None:
    source = Path(image_layer.metadata["source_path"])
    before = source.read_bytes()
    labels = viewer_model.add_labels(
        np.zeros(image_layer.data.shape, np.uint8),
        scale=image_layer.scale,
        units=image_layer.units,
        metadata=dict(image_layer.metadata),
    )
    with pytest.raises(FileWriteError, match="is an input file"):
        _save(source, labels)
    assert source.read_bytes() == before


def test_labels_layer_round_trip(tmp_path: Path, image_layer, viewer_model) -> None:
    mask = np.zeros(image_layer.data.shape, np.int32)
    mask[5:20, 10:40] = 1
    mask[30:40, 0:8] = 2
    labels = viewer_model.add_labels(
        mask,
        scale=image_layer.scale,
        units=image_layer.units,
        metadata={"class_names": {0: "lattice", 1: "contamination", 2: "particle"}},
    )
    (written,) = _save(tmp_path / "mask.tif", labels)
    viewer_model.layers.clear()
    (back,) = viewer_model.open(written, plugin=PLUGIN)
    assert type(back).__name__ == "Labels"
    np.testing.assert_array_equal(back.data, mask)
    assert tuple(back.scale) == pytest.approx((0.02, 0.02), rel=1e-6)
    assert str(back.units[-1]) == "nanometer"
    assert back.metadata["class_names"] == {0: "lattice", 1: "contamination", 2: "particle"}
