"""PNG/JPEG/BMP pictures (uncalibrated grey) and HyperSpy HSPY/ZSPY files (calibrated)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_atomseg.errors import FileReadError
from napari_atomseg.io import (
    PICTURE_EXTENSIONS,
    SUPPORTED_EXTENSIONS,
    read_image,
    read_images,
    sniff_format,
)
from napari_atomseg.io._picture import LUMINANCE_WEIGHTS
from tests._data import shared_path
from tests._synth import cosine_pattern
from tests.io._make import hspy_to_zspy, write_hspy


def _grey8() -> np.ndarray:
    return (cosine_pattern((40, 56)) % 256).astype(np.uint8)


# ----------------------------------------------------------------------------- pictures
@pytest.mark.parametrize("suffix", [".png", ".bmp"])
def test_grey_picture_reads_exactly_uncalibrated(tmp_path: Path, suffix: str) -> None:
    grey = _grey8()
    path = tmp_path / f"scan{suffix}"
    Image.fromarray(grey).save(path)
    assert sniff_format(path) == "picture"
    image, cal = read_image(path)
    np.testing.assert_array_equal(image, grey)
    assert image.dtype == np.uint8
    assert not cal.calibrated and cal.pixel_size_nm is None
    assert cal.units == ("px", "px")
    assert "no pixel size" in cal.metadata["calibration_note"]
    assert "colour_note" not in cal.metadata


def test_16_bit_png_keeps_its_values(tmp_path: Path) -> None:
    counts = cosine_pattern((32, 48), np.uint16) * 20
    path = tmp_path / "counts.png"
    Image.fromarray(counts).save(path)
    image, _ = read_image(path)
    np.testing.assert_array_equal(image, counts)
    assert image.dtype == np.uint16


def test_grey_saved_as_rgb_gives_one_channel_unchanged(tmp_path: Path) -> None:
    grey = _grey8()
    path = tmp_path / "export.png"
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(path)
    (im,) = read_images(path)
    assert im.rgb is False
    np.testing.assert_array_equal(im.data, grey)
    assert "colour_note" not in im.calibration.metadata


def test_true_colour_becomes_luminance_with_a_note(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)
    path = tmp_path / "false_colour.png"
    Image.fromarray(rgb).save(path)
    image, cal = read_image(path)
    expected = (rgb.astype(np.float32) * np.asarray(LUMINANCE_WEIGHTS, np.float32)).sum(-1)
    np.testing.assert_allclose(image, expected, rtol=1e-6)
    assert image.dtype == np.float32 and image.ndim == 2
    assert "luminance" in cal.metadata["colour_note"]


def test_transparency_is_noted(tmp_path: Path) -> None:
    grey = _grey8()
    alpha = np.full_like(grey, 255)
    alpha[:5] = 0
    path = tmp_path / "cut_out.png"
    Image.fromarray(np.stack([grey, grey, grey, alpha], axis=-1)).save(path)
    image, cal = read_image(path)
    np.testing.assert_array_equal(image, grey)
    assert "alpha" in cal.metadata["colour_note"]


def test_jpeg_is_read_grey(tmp_path: Path) -> None:
    grey = _grey8()
    path = tmp_path / "shot.jpg"
    Image.fromarray(grey).save(path, quality=95)
    image, cal = read_image(path)
    assert image.shape == grey.shape
    assert np.abs(image.astype(float) - grey).mean() < 3  # lossy, but the same picture
    assert cal.metadata["format"] == "JPEG picture"


def test_damaged_pictures_say_why(tmp_path: Path) -> None:
    path = tmp_path / "half.png"
    Image.fromarray(_grey8()).save(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileReadError, match=r"half.png: corrupt PNG picture"):
        read_image(path)
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"GIF89a" + bytes(100))
    with pytest.raises(FileReadError, match="is not a PNG/JPEG/BMP picture file"):
        read_image(fake)


def test_picture_extensions_are_supported() -> None:
    assert set(PICTURE_EXTENSIONS) == {".png", ".jpg", ".jpeg", ".bmp"}
    assert set(PICTURE_EXTENSIONS) <= set(SUPPORTED_EXTENSIONS)
    assert {".hspy", ".zspy"} <= set(SUPPORTED_EXTENSIONS)


@pytest.mark.shared_data
def test_real_bmp_with_identical_channels() -> None:
    path = shared_path("real_panel", "10_tmd_haadf_hole_contamination.bmp")
    image, cal = read_image(path)
    raw = np.asarray(Image.open(path))
    assert raw.shape == (1024, 1024, 3)
    np.testing.assert_array_equal(image, raw[..., 0])
    assert not cal.calibrated and "colour_note" not in cal.metadata


# ----------------------------------------------------------------------------- HyperSpy
def test_hspy_and_zspy_keep_the_calibration(tmp_path: Path) -> None:
    stack = cosine_pattern((3, 32, 40))
    hspy = write_hspy(tmp_path / "series.hspy", stack, 0.05, "nm", frame_axis=True)
    zspy = hspy_to_zspy(hspy, tmp_path / "series.zspy")
    assert zspy.is_dir()
    for path, fmt in ((hspy, "hspy"), (zspy, "zspy")):
        assert sniff_format(path) == fmt
        (im,) = read_images(path)
        np.testing.assert_array_equal(im.data, stack)
        cal = im.calibration
        assert cal.scale == pytest.approx((1.0, 0.05, 0.05))
        assert cal.units == ("px", "nm", "nm")
        assert cal.axis_names == ("frame", "y", "x")
        assert cal.metadata["voltage_kV"] == pytest.approx(300.0)
        assert "HyperSpy" in cal.metadata["format"]


def test_hspy_in_angstrom_comes_in_nm(tmp_path: Path) -> None:
    path = write_hspy(tmp_path / "a.hspy", cosine_pattern((32, 40)), 0.5, "Å")
    _, cal = read_image(path)
    assert cal.pixel_size_nm == pytest.approx(0.05)


def test_damaged_hspy_and_plain_folder_named_zspy(tmp_path: Path) -> None:
    path = write_hspy(tmp_path / "a.hspy", cosine_pattern((32, 40)), 0.5, "nm")
    raw = path.read_bytes()
    cut = tmp_path / "cut.hspy"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileReadError, match=r"cut.hspy: .*HSPY"):
        read_image(cut)
    folder = tmp_path / "empty.zspy"
    folder.mkdir()
    assert sniff_format(folder) is None
    with pytest.raises(FileReadError, match="without zarr metadata"):
        read_image(folder)


@pytest.mark.shared_data
def test_real_hspy_series() -> None:
    (im,) = read_images(shared_path("real_panel", "06_sto_abf_5frame_series.hspy"))
    assert im.data.shape == (5, 512, 512)
    assert im.calibration.pixel_size_nm == pytest.approx(0.0092024, rel=1e-5)
    assert im.calibration.units == ("px", "nm", "nm")


def test_info_command_reports_pictures_and_hyperspy(tmp_path: Path, capsys) -> None:
    from napari_atomseg.cli import main

    Image.fromarray(_grey8()).save(tmp_path / "shot.png")
    write_hspy(tmp_path / "scan.hspy", cosine_pattern((32, 40)), 0.05, "nm")
    assert main(["info", str(tmp_path / "shot.png"), str(tmp_path / "scan.hspy")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("shot: 40x56 uint8, uncalibrated (pixels)")
    assert "format=PNG picture" in out[0]
    assert out[1].startswith("scan: 32x40 uint16, 0.05 nm/px")
