"""The Python API on the real instrument files in ../shared/data (skipped when absent)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_atomseg.errors import FileReadError
from napari_atomseg.io import CalibrationWarning, read_image, read_images
from tests._data import shared_path

from ._expected import EXPECTED, Expected

pytestmark = pytest.mark.shared_data


@pytest.mark.parametrize("case", EXPECTED, ids=lambda c: c.id)
def test_read_images_calibration(case: Expected) -> None:
    path = shared_path("formats", *case.path.split("/"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = read_images(path)
    calibration_warnings = [w for w in caught if issubclass(w.category, CalibrationWarning)]
    assert bool(calibration_warnings) == case.warns, [str(w.message) for w in caught]
    if case.warns:
        assert path.name in str(calibration_warnings[0].message)
    assert len(images) == case.n_images
    for image in images:
        cal = image.calibration
        if case.shape is not None:
            assert image.data.shape == case.shape
        assert image.data.dtype.isnative
        if case.scale is None:
            assert not cal.calibrated
            assert set(cal.units[-2:]) == {"px"}
            assert cal.pixel_size_nm is None
        else:
            assert cal.calibrated
            assert cal.scale == pytest.approx(case.scale, rel=1e-6)
            assert cal.units == case.units
        assert cal.metadata["source_path"] == str(path)
        for key, value in case.metadata.items():
            assert cal.metadata[key] == (
                pytest.approx(value) if isinstance(value, float) else value
            ), key


def test_pixel_size_nm_on_real_files() -> None:
    _, cal = read_image(shared_path("formats", "openNCEM", "Acquisition_18.emd"))
    assert cal.pixel_size_nm == pytest.approx(0.0122465, rel=1e-5)  # README, "n_m" unit
    _, cal = read_image(
        shared_path("formats", "openNCEM", "dmTest_float32_nonSquare_diffPixelSize.dm3")
    )
    assert cal.pixel_size_nm is None and cal.pixel_size_yx_nm == pytest.approx((0.2, 1.0))
    _, cal = read_image(
        shared_path(
            "formats", "rosettasciio", "digitalmicrograph", "2D", "test_diffraction_pattern.dm3"
        )
    )
    assert cal.pixel_size_nm is None
    assert cal.reciprocal_pixel_size_per_nm == pytest.approx(0.174433, rel=1e-5)


def test_multi_signal_dm_keeps_the_image_and_names_the_skipped_plot() -> None:
    (image,) = read_images(
        shared_path("formats", "rosettasciio", "digitalmicrograph", "2D", "multi_signal.dm3")
    )
    assert image.name == "multi_signal"
    skipped = image.calibration.metadata["skipped_signals"]
    assert len(skipped) == 1 and "Plot" in skipped[0] and "not an image" in skipped[0]


def test_velox_with_several_detectors_gives_one_image_each() -> None:
    images = read_images(
        shared_path(
            "formats",
            "rosettasciio",
            "emd",
            "velox_emd_version11_unzipped",
            "Test_SI_16x16_215_kx.emd",
        )
    )
    names = [im.name for im in images]
    assert names == [f"Test_SI_16x16_215_kx [{t}]" for t in ("C", "Ca", "O", "Cu", "HAADF")]
    assert images[-1].data.dtype == np.uint16


def test_dm_data_types() -> None:
    folder = shared_path("formats", "rosettasciio", "digitalmicrograph", "2D")
    numbered = [p for p in folder.glob("test-*.dm[34]") if p.stem[5:].isdigit()]
    assert len(numbered) == 30
    for path in sorted(numbered):
        images = read_images(path)
        for im in images:
            assert not im.calibration.calibrated  # 1.0 with no unit in these files
            assert im.data.dtype.kind in "uif"
            assert im.data.dtype.isnative
    # complex64 / complex128 -> magnitude + phase
    magnitude, phase = read_images(folder / "test-13.dm4")
    assert magnitude.name.endswith("(magnitude)") and phase.name.endswith("(phase)")
    assert np.all(magnitude.data >= 0) and np.all(np.abs(phase.data) <= np.pi)
    # RGBA -> rgb with a channel axis
    (rgba,) = read_images(folder / "test-23.dm4")
    assert rgba.rgb and rgba.data.shape == (2, 2, 4) and rgba.data.dtype == np.uint8
    # bool -> uint8 0/1
    (mask,) = read_images(folder / "test-14.dm4")
    assert mask.data.dtype == np.uint8 and set(np.unique(mask.data)) <= {0, 1}


def test_packed_complex_fft_reads() -> None:
    images = read_images(
        shared_path(
            "formats", "rosettasciio", "digitalmicrograph", "2D", "test_fft_packed_complex8.dm4"
        )
    )
    assert [im.calibration.metadata["complex_part"] for im in images] == ["magnitude", "phase"]


def test_spectrum_only_file_is_a_clear_error() -> None:
    path = shared_path("formats", "openNCEM", "08_carbon.dm3")
    with pytest.raises(FileReadError, match=r"08_carbon\.dm3: contains no image .*EELS"):
        read_images(path)


def test_jpeg_compressed_tiff_reads() -> None:
    # imagecodecs is a dependency, so JPEG-compressed vendor TIFFs decode.
    path = shared_path("formats", "rosettasciio", "tiff", "olympus_SIS.tif")
    image, _ = read_image(path)
    assert image.shape == (101, 112, 3)
    assert image.dtype == np.uint8


def test_hyperspy_written_tiff_from_pt_dataset() -> None:
    folder = shared_path("pt_single_atoms", "images")
    path = sorted(folder.glob("*.tif*"))[0]
    image, cal = read_image(path)
    assert image.shape == (512, 512)
    assert cal.pixel_size_nm == pytest.approx(0.029296875, rel=1e-9)
    assert cal.metadata["software"] == "hyperspy"


def test_dm_metadata_is_kept() -> None:
    (image,) = read_images(
        shared_path("formats", "rosettasciio", "digitalmicrograph", "2D", "test_STEM_image.dm3")
    )
    md = image.calibration.metadata
    assert md["format"] == "Gatan DigitalMicrograph (DM3)"
    assert md["acquisition_mode"] == "STEM"
    assert md["original_units"] == ["nm", "nm"]
    assert "ImageList" in image.original_metadata["original_metadata"]
