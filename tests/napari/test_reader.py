"""The npe2 reader: get_reader never raises; files open as calibrated napari layers.

Real files are opened through npe2's plugin manager (``npe2.read``) and through napari's
``ViewerModel.open(..., plugin="napari-atomseg")``; a few through a real Qt viewer.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_atomseg._napari.reader import get_reader, layer_data, read_layers
from napari_atomseg.errors import FileReadError
from napari_atomseg.io import Calibration, CalibrationWarning, read_images
from tests._data import shared_path
from tests._synth import cosine_pattern
from tests.io._expected import EXPECTED, Expected
from tests.io._make import write_imagej_tiff, write_mrc

PLUGIN = "napari-atomseg"


@pytest.fixture(scope="module")
def plugin_manager():
    npe2 = pytest.importorskip("npe2")
    pm = npe2.PluginManager.instance()
    pm.discover()
    assert PLUGIN in {m.name for m in pm.iter_manifests()}, "plugin not installed"
    return pm


@pytest.fixture(scope="module")
def viewer_model(plugin_manager):
    from napari.components import ViewerModel

    return ViewerModel()


def _expected_napari_units(units: tuple[str, ...]) -> tuple[str, ...]:
    return tuple("pixel" if u == "px" else u for u in units)


# ----------------------------------------------------------------------------- get_reader
@pytest.mark.parametrize(
    "path", [None, 123, b"x.dm4", [], ["a.dm4", 3], "no_such_file.dm4", "image.png", "."]
)
def test_get_reader_returns_none_and_never_raises(path: object) -> None:
    assert get_reader(path) is None  # type: ignore[arg-type]


def test_get_reader_accepts_generated_files(tmp_path: Path) -> None:
    mrc = write_mrc(tmp_path / "a.mrc", cosine_pattern(), 1.0)
    tif = write_imagej_tiff(tmp_path / "a.tif", cosine_pattern(), 0.1, "nm")
    assert get_reader(str(mrc)) is read_layers
    assert get_reader(str(tif)) is read_layers
    assert get_reader([str(mrc), str(tif)]) is read_layers
    # A damaged file with our extension is ours to explain (see test_reader_errors.py);
    # a folder, another extension or a CSV that is no point table is not.
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all" * 10)
    assert get_reader(str(bad)) is read_layers
    assert get_reader(str(tmp_path)) is None
    other = tmp_path / "notes.txt"
    other.write_text("x")
    assert get_reader([str(mrc), str(other)]) is None
    table = tmp_path / "shapes.csv"
    table.write_text("index,shape-type,vertex-index,axis-0,axis-1\n")
    assert get_reader(str(table)) is None  # napari's Shapes CSV
    table.write_text("a,b\n1,2\n")
    assert get_reader(str(table)) is None


def test_layer_data_from_generated_files(tmp_path: Path) -> None:
    mrc = write_mrc(tmp_path / "a.mrc", cosine_pattern((3, 32, 32)), 1.5, volume=True)
    ((data, kwargs, kind),) = get_reader(str(mrc))(str(mrc))
    assert kind == "image"
    assert data.shape == (3, 32, 32)
    assert kwargs["scale"] == pytest.approx((0.15, 0.15, 0.15))
    assert kwargs["units"] == ("nm", "nm", "nm")
    assert kwargs["axis_labels"] == ("z", "y", "x")
    assert kwargs["name"] == "a"
    assert kwargs["rgb"] is False
    cal = Calibration.from_dict(kwargs["metadata"]["calibration"])
    assert cal.pixel_size_nm == pytest.approx(0.15)
    assert kwargs["metadata"]["source_path"] == str(mrc)


def test_generated_files_open_in_a_viewer_model(tmp_path: Path, viewer_model) -> None:
    tif = write_imagej_tiff(tmp_path / "lattice.tif", cosine_pattern(), 0.0177, "nm")
    viewer_model.layers.clear()
    (layer,) = viewer_model.open(str(tif), plugin=PLUGIN)
    assert layer.scale == pytest.approx((0.0177, 0.0177), rel=1e-6)
    assert tuple(str(u) for u in layer.units) == ("nanometer", "nanometer")
    assert layer.metadata["pixel_size_nm"] == pytest.approx(0.0177, rel=1e-6)
    neg = write_mrc(tmp_path / "neg.mrc", cosine_pattern(dtype=np.float32), -10.0)
    with pytest.warns(CalibrationWarning, match="UNCALIBRATED"):
        (layer,) = viewer_model.open(str(neg), plugin=PLUGIN)
    assert tuple(layer.scale) == (1.0, 1.0)
    assert tuple(str(u) for u in layer.units) == ("pixel", "pixel")


def test_complex_gives_visible_magnitude_and_hidden_phase(tmp_path: Path) -> None:
    z = (cosine_pattern(dtype=np.float32) * np.exp(0.3j)).astype(np.complex64)
    path = write_mrc(tmp_path / "c.mrc", z, 1.0)
    (_, mag_kw, _), (phase, phase_kw, _) = read_layers(str(path))
    assert mag_kw.get("visible", True) is True
    assert phase_kw["visible"] is False
    assert phase_kw["colormap"] == "twilight_shifted"
    np.testing.assert_allclose(phase, 0.3, atol=1e-6)


# ----------------------------------------------------------------------------- real files
@pytest.mark.shared_data
@pytest.mark.parametrize("case", EXPECTED, ids=lambda c: c.id)
def test_real_file_through_npe2(case: Expected, plugin_manager) -> None:
    import npe2

    path = shared_path("formats", *case.path.split("/"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)  # checked in tests/io
        layers = npe2.read([str(path)], stack=False, plugin_name=PLUGIN)
    assert len(layers) == case.n_images
    for data, kwargs, kind in layers:
        assert kind == "image"
        if case.shape is not None:
            assert np.shape(data) == case.shape
        if case.scale is None:
            assert tuple(kwargs["scale"][-2:]) == (1.0, 1.0)
            assert tuple(kwargs["units"][-2:]) == ("pixel", "pixel")
        else:
            assert tuple(kwargs["scale"]) == pytest.approx(case.scale, rel=1e-6)
            assert tuple(kwargs["units"]) == _expected_napari_units(case.units)
        assert kwargs["metadata"]["source_path"] == str(path)


@pytest.mark.shared_data
@pytest.mark.parametrize("case", EXPECTED, ids=lambda c: c.id)
def test_real_file_in_viewer_model(case: Expected, viewer_model) -> None:
    path = shared_path("formats", *case.path.split("/"))
    viewer_model.layers.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        layers = viewer_model.open(str(path), plugin=PLUGIN)
    assert len(layers) == case.n_images
    for layer in layers:
        expected = case.scale if case.scale is not None else (1.0,) * layer.ndim
        assert tuple(layer.scale) == pytest.approx(expected, rel=1e-6)
        units = _expected_napari_units(case.units) if case.scale is not None else ("pixel",) * 2
        assert tuple(str(u) for u in layer.units)[-2:] == tuple(
            {"nm": "nanometer", "1/nm": "1 / nanometer", "pixel": "pixel"}[u] for u in units[-2:]
        )


# ----------------------------------------------------------------------------- bad copies
_BAD_SOURCES = [
    "rosettasciio/digitalmicrograph/2D/test_STEM_image.dm3",
    "rosettasciio/digitalmicrograph/2D/test-MonarcCL_mono-image.dm4",
    "rosettasciio/mrc/HAADFscan.mrc",
    "openNCEM/temp.mrc",
    "rosettasciio/tiff/test_loading_image_saved_with_imageJ.tif",
    "rosettasciio/tiff/TVIPS_bin4_unzipped/TVIPS_bin4.tif",
    "rosettasciio/tiff/tiff_Zeiss_SEM_unzipped/test_tiff_Zeiss_SEM_512pix.tif",
    "openNCEM/16_STOimage_1.ser",
    "openNCEM/Acquisition_18.emd",
    "openNCEM/Camera_Ceta_Imaging_Micro.emd",
]


def _damaged_copies(src: Path, folder: Path) -> dict[str, Path]:
    raw = src.read_bytes()
    rng = np.random.default_rng(7)
    variants = {
        "half": raw[: len(raw) // 2],
        "ninety": raw[: int(len(raw) * 0.9)],
        "garbage": rng.integers(0, 256, len(raw), dtype=np.uint8).tobytes(),
        "garbage_body": raw[:64] + rng.integers(0, 256, len(raw) - 64, dtype=np.uint8).tobytes(),
    }
    out = {}
    for kind, content in variants.items():
        path = folder / f"{kind}_{src.name}"
        path.write_bytes(content)
        out[kind] = path
    return out


@pytest.mark.shared_data
@pytest.mark.parametrize("source", _BAD_SOURCES, ids=lambda s: s.split("/")[-1])
def test_truncated_and_garbage_copies(source: str, tmp_path: Path) -> None:
    src = shared_path("formats", *source.split("/"))
    for kind, path in _damaged_copies(src, tmp_path).items():
        # get_reader never raises and takes the file, so the user learns why it fails.
        assert get_reader(str(path)) is read_layers, kind
        with pytest.raises(FileReadError) as info:
            layer_data(str(path))
        assert path.name in str(info.value), (kind, str(info.value))
        with pytest.raises(FileReadError) as info:
            read_images(path)
        message = str(info.value)
        assert path.name in message
        if kind in ("half", "ninety"):
            assert "truncated" in message, message


# ----------------------------------------------------------------------------- Qt viewer
_QT_FILES = [
    "openNCEM/Acquisition_18.emd",
    "rosettasciio/digitalmicrograph/2D/test_STEM_image.dm3",
    "rosettasciio/mrc/HAADFscan.mrc",
    "rosettasciio/tiff/tiff_Zeiss_SEM_unzipped/test_tiff_Zeiss_SEM_512pix.tif",
]


@pytest.mark.qt
@pytest.mark.shared_data
def test_qt_viewer_opens_real_files_with_scale(make_napari_viewer) -> None:
    expected = {c.path: c for c in EXPECTED}
    viewer = make_napari_viewer()
    viewer.canvas.overlays.scale_bar.visible = True
    for rel in _QT_FILES:
        path = shared_path("formats", *rel.split("/"))
        viewer.layers.clear()
        (layer,) = viewer.open(str(path), plugin=PLUGIN)
        assert tuple(layer.scale) == pytest.approx(expected[rel].scale, rel=1e-6)
        assert str(layer.units[-1]) == "nanometer"
        assert layer.data.shape[-2:] == np.shape(layer.data)[-2:]
