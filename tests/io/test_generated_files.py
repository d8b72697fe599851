"""Reading files written here (mrcfile, tifffile, rosettasciio): runs on a fresh clone."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_atomseg.errors import FileReadError
from napari_atomseg.io import CalibrationWarning, read_image, read_images, sniff_format
from tests._synth import cosine_pattern
from tests.io._make import (
    write_dm_tag_tiff,
    write_hyperspy_tiff,
    write_imagej_tiff,
    write_mrc,
)


# ----------------------------------------------------------------------------- MRC
def test_mrc_voxel_size_in_angstrom_becomes_nm(tmp_path: Path) -> None:
    data = cosine_pattern((48, 64))
    path = write_mrc(tmp_path / "a.mrc", data, 0.8)
    image, cal = read_image(path)
    np.testing.assert_array_equal(image, data)
    assert cal.calibrated
    assert cal.pixel_size_nm == pytest.approx(0.08, rel=1e-6)
    assert cal.units == ("nm", "nm")
    assert cal.metadata["format"] == "MRC (mrc)"
    assert cal.metadata["voxel_size_A"][:2] == pytest.approx([0.8, 0.8])


def test_mrc_non_square_voxels(tmp_path: Path) -> None:
    path = write_mrc(tmp_path / "ns.mrc", cosine_pattern((48, 64)), (1.0, 2.0, 1.0))  # x, y, z in A
    _, cal = read_image(path)
    assert cal.pixel_size_yx_nm == pytest.approx((0.2, 0.1))
    assert cal.pixel_size_nm is None


@pytest.mark.parametrize("voxel", [0.0, -10.0])
def test_mrc_zero_or_negative_size_is_uncalibrated_with_warning(
    tmp_path: Path, voxel: float
) -> None:
    path = write_mrc(tmp_path / "neg.mrc", cosine_pattern((32, 32), np.float32), voxel)
    with pytest.warns(CalibrationWarning, match="UNCALIBRATED") as record:
        image, cal = read_image(path)
    assert "neg.mrc" in str(record[0].message)
    assert not cal.calibrated
    assert cal.scale == (1.0, 1.0) and cal.units == ("px", "px")
    assert cal.pixel_size_nm is None
    assert image.shape == (32, 32)


def test_mrcs_stack_has_a_frame_axis(tmp_path: Path) -> None:
    data = cosine_pattern((3, 32, 40))
    path = write_mrc(tmp_path / "movie.mrcs", data, 1.5)
    (im,) = read_images(path)
    assert im.data.shape == (3, 32, 40)
    cal = im.calibration
    assert cal.axis_names == ("frame", "y", "x")
    assert cal.scale == pytest.approx((1.0, 0.15, 0.15))
    assert cal.units == ("px", "nm", "nm")


def test_mrc_volume_has_a_scaled_z_axis(tmp_path: Path) -> None:
    path = write_mrc(
        tmp_path / "vol.mrc", cosine_pattern((4, 32, 32), np.float32), 2.0, volume=True
    )
    _, cal = read_image(path)
    assert cal.axis_names == ("z", "y", "x")
    assert cal.scale == pytest.approx((0.2, 0.2, 0.2))
    assert cal.units == ("nm", "nm", "nm")


def test_mrc_complex_gives_magnitude_and_phase(tmp_path: Path) -> None:
    z = (cosine_pattern((16, 16), np.float32) * np.exp(1j * 0.5)).astype(np.complex64)
    path = write_mrc(tmp_path / "c.mrc", z, 1.0)
    magnitude, phase = read_images(path)
    assert magnitude.name == "c (magnitude)" and phase.name == "c (phase)"
    np.testing.assert_allclose(magnitude.data, np.abs(z), rtol=1e-6)
    np.testing.assert_allclose(phase.data, 0.5, atol=1e-6)
    assert phase.calibration.metadata["complex_part"] == "phase"
    assert magnitude.calibration.pixel_size_nm == pytest.approx(0.1)


# ----------------------------------------------------------------------------- TIFF
@pytest.mark.parametrize(
    ("unit", "size", "expected_nm"),
    [
        ("nm", 0.0177, 0.0177),
        ("micron", 0.25, 250.0),  # ImageJ's own spelling
        ("\\u00B5m", 0.25, 250.0),  # what ImageJ writes for µm
        ("um", 0.25, 250.0),
        ("A", 0.5, 0.05),
        ("angstrom", 0.5, 0.05),
        ("pm", 25.0, 0.025),
    ],
)
def test_imagej_unit_and_resolution(
    tmp_path: Path, unit: str, size: float, expected_nm: float
) -> None:
    path = write_imagej_tiff(tmp_path / "ij.tif", cosine_pattern(), size, unit)
    image, cal = read_image(path)
    assert image.shape == (48, 64)
    assert cal.pixel_size_nm == pytest.approx(expected_nm, rel=1e-6)
    assert cal.metadata["format"] == "TIFF (ImageJ)"


@pytest.mark.parametrize("compression", ["lzw", "zlib", "zstd"])
def test_compressed_imagej_tiff(tmp_path: Path, compression: str) -> None:
    # Microscope software often writes LZW/deflate TIFFs; imagecodecs decodes them.
    data = cosine_pattern((48, 64))
    path = write_imagej_tiff(
        tmp_path / f"c_{compression}.tif", data, 0.05, "nm", compression=compression
    )
    image, cal = read_image(path)
    np.testing.assert_array_equal(image, data)
    assert cal.pixel_size_nm == pytest.approx(0.05, rel=1e-6)


def test_imagej_reciprocal_units(tmp_path: Path) -> None:
    path = write_imagej_tiff(tmp_path / "dp.tif", cosine_pattern(), 0.02, "1/A")
    _, cal = read_image(path)
    assert cal.is_reciprocal
    assert cal.reciprocal_pixel_size_per_nm == pytest.approx(0.2, rel=1e-6)


def test_imagej_non_square_and_stack_spacing(tmp_path: Path) -> None:
    path = write_imagej_tiff(
        tmp_path / "st.tif", cosine_pattern((3, 48, 64)), (0.2, 0.1), "nm", spacing=0.5
    )
    (im,) = read_images(path)
    assert im.data.shape == (3, 48, 64)
    assert im.calibration.axis_names == ("z", "y", "x")
    assert im.calibration.scale == pytest.approx((0.5, 0.2, 0.1), rel=1e-6)


@pytest.mark.parametrize("unit", ["pixel", "inch"])
def test_imagej_without_a_length_unit_is_uncalibrated(tmp_path: Path, unit: str) -> None:
    path = write_imagej_tiff(tmp_path / "px.tif", cosine_pattern(), 1 / 72, unit)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        _, cal = read_image(path)
    assert not cal.calibrated


def test_plain_tiff_print_resolution_is_not_a_pixel_size(tmp_path: Path) -> None:
    import tifffile

    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, cosine_pattern(), resolution=(72, 72), resolutionunit="INCH")
    image, cal = read_image(path)
    np.testing.assert_array_equal(image, cosine_pattern())
    assert not cal.calibrated
    assert cal.metadata["format"] == "TIFF"


def test_dm_exported_tiff_tags(tmp_path: Path) -> None:
    path = write_dm_tag_tiff(tmp_path / "dm.tif", cosine_pattern(dtype=np.int32), 0.168675, "µm")
    _, cal = read_image(path)
    assert cal.pixel_size_nm == pytest.approx(168.675, rel=1e-9)
    assert cal.metadata["format"] == "TIFF (DigitalMicrograph/HyperSpy tags)"


@pytest.mark.parametrize(("unit", "expected_nm"), [("nm", 0.5), ("Å", 0.05)])
def test_hyperspy_written_tiff(tmp_path: Path, unit: str, expected_nm: float) -> None:
    path = write_hyperspy_tiff(tmp_path / "hs.tif", cosine_pattern(dtype=np.float32), 0.5, unit)
    _, cal = read_image(path)
    assert cal.pixel_size_nm == pytest.approx(expected_nm, rel=1e-9)


def test_rgb_tiff_stays_rgb(tmp_path: Path) -> None:
    import tifffile

    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[5:10, :, 2] = 50
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    (im,) = read_images(path)
    assert im.rgb
    np.testing.assert_array_equal(im.data, rgb)
    assert im.calibration.ndim == 2


def test_bool_and_float16_become_displayable(tmp_path: Path) -> None:
    import tifffile

    mask = cosine_pattern() > 1000
    tifffile.imwrite(tmp_path / "b.tif", mask)
    image, _ = read_image(tmp_path / "b.tif")
    assert image.dtype in (np.uint8, np.bool_) or image.dtype.kind == "u"
    np.testing.assert_array_equal(image.astype(bool), mask)
    tifffile.imwrite(tmp_path / "h.tif", cosine_pattern().astype(np.float16))
    image, _ = read_image(tmp_path / "h.tif")
    assert image.dtype == np.float32


def test_big_endian_data_comes_back_native(tmp_path: Path) -> None:
    import tifffile

    tifffile.imwrite(tmp_path / "be.tif", cosine_pattern(), byteorder=">")
    image, _ = read_image(tmp_path / "be.tif")
    assert image.dtype.byteorder in ("=", "|", "<" if np.little_endian else ">")
    assert image.dtype.isnative
    np.testing.assert_array_equal(image, cosine_pattern())


def test_input_file_is_not_modified(tmp_path: Path) -> None:
    path = write_imagej_tiff(tmp_path / "keep.tif", cosine_pattern(), 0.1, "nm")
    before = path.read_bytes()
    image, _ = read_image(path)
    image[:] = 0  # the returned array is ours to change
    assert path.read_bytes() == before


# ----------------------------------------------------------------------------- errors
def test_missing_empty_unsupported(tmp_path: Path) -> None:
    with pytest.raises(FileReadError, match="no such file"):
        read_image(tmp_path / "nope.dm4")
    (tmp_path / "empty.dm3").write_bytes(b"")
    with pytest.raises(FileReadError, match="empty"):
        read_image(tmp_path / "empty.dm3")
    (tmp_path / "x.gif").write_bytes(b"GIF89a....")
    with pytest.raises(FileReadError, match=r"unsupported file type '\.gif'"):
        read_image(tmp_path / "x.gif")
    (tmp_path / "x.png").write_bytes(b"\x89PNX....")
    with pytest.raises(FileReadError, match=r"x.png: is not a PNG/JPEG/BMP picture file"):
        read_image(tmp_path / "x.png")
    with pytest.raises(FileReadError, match="is a folder"):
        read_image(tmp_path)


@pytest.mark.parametrize("cut", [0.5, 0.95])
def test_truncated_generated_files(tmp_path: Path, cut: float) -> None:
    sources = [
        write_mrc(tmp_path / "t.mrc", cosine_pattern((64, 64)), 1.0),
        write_imagej_tiff(tmp_path / "t.tif", cosine_pattern((64, 64)), 0.1, "nm"),
    ]
    for src in sources:
        raw = src.read_bytes()
        bad = tmp_path / f"cut_{src.name}"
        bad.write_bytes(raw[: int(len(raw) * cut)])
        with pytest.raises(FileReadError, match="truncated") as info:
            read_images(bad)
        assert bad.name in str(info.value)


def test_garbage_generated_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for name in ("g.mrc", "g.tif", "g.dm4", "g.dm3", "g.ser", "g.emd"):
        bad = tmp_path / name
        bad.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
        assert sniff_format(bad) is None
        with pytest.raises(FileReadError, match="is not") as info:
            read_images(bad)
        assert name in str(info.value)


def test_corrupt_dm_header(tmp_path: Path) -> None:
    bad = tmp_path / "zero.dm4"
    bad.write_bytes(b"\x00\x00\x00\x04" + b"\x00" * 200)  # empty tag tree
    with pytest.raises(FileReadError, match=r"zero\.dm4: corrupt DM4 header"):
        read_images(bad)


def test_lazy_top_level_api(tmp_path: Path) -> None:
    import napari_atomseg

    path = write_mrc(tmp_path / "top.mrc", cosine_pattern(), 2.0)
    image, cal = napari_atomseg.read_image(path)
    assert image.shape == (48, 64)
    assert isinstance(cal, napari_atomseg.Calibration)
    assert cal.pixel_size_nm == pytest.approx(0.2)
