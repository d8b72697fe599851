"""CSV and label-TIFF writers: columns, calibration round trip, overwrite rules, atomicity."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_atomseg.errors import FileWriteError, InputError
from napari_atomseg.io import (
    Calibration,
    RawAxis,
    build_calibration,
    read_image,
    read_images,
    read_points_csv,
    write_image_tiff,
    write_labels_tiff,
    write_points_csv,
)

POINTS = np.array([[10.0, 20.0], [30.5, 40.25], [0.0, 63.0]])


def test_points_csv_pixel_and_nm_columns(tmp_path: Path) -> None:
    cal = Calibration.from_pixel_size_nm((0.02, 0.025))
    out = write_points_csv(
        tmp_path / "cols.csv",
        POINTS,
        cal,
        {"confidence": [0.9, 0.5, 0.1], "class": ["Pt", "Pt", "C"]},
    )
    table = pd.read_csv(out)
    assert list(table.columns) == ["y_px", "x_px", "y_nm", "x_nm", "confidence", "class"]
    np.testing.assert_allclose(table[["y_px", "x_px"]], POINTS)
    np.testing.assert_allclose(table["y_nm"], POINTS[:, 0] * 0.02)
    np.testing.assert_allclose(table["x_nm"], POINTS[:, 1] * 0.025)
    assert list(table["class"]) == ["Pt", "Pt", "C"]
    coords, back = read_points_csv(out)
    np.testing.assert_allclose(coords, POINTS)
    assert back["confidence"].tolist() == [0.9, 0.5, 0.1]


def test_points_csv_uncalibrated_and_reciprocal(tmp_path: Path) -> None:
    out = write_points_csv(tmp_path / "px.csv", POINTS)
    assert list(pd.read_csv(out).columns) == ["y_px", "x_px"]
    recip = build_calibration([RawAxis(0.5, "1/nm"), RawAxis(0.5, "1/nm")])
    out = write_points_csv(tmp_path / "k.csv", POINTS, recip)
    table = pd.read_csv(out)
    assert list(table.columns) == ["y_px", "x_px", "ky_per_nm", "kx_per_nm"]
    np.testing.assert_allclose(table["kx_per_nm"], POINTS[:, 1] * 0.5)


def test_points_csv_stack_axes(tmp_path: Path) -> None:
    pts = np.array([[0, 1.0, 2.0], [2, 3.0, 4.0]])
    frames = Calibration.from_pixel_size_nm(0.1, ndim=3)
    table = pd.read_csv(write_points_csv(tmp_path / "f.csv", pts, frames))
    assert list(table.columns) == ["frame", "y_px", "x_px", "y_nm", "x_nm"]
    volume = build_calibration([RawAxis(2.0, "A"), RawAxis(1.0, "A"), RawAxis(1.0, "A")])
    table = pd.read_csv(write_points_csv(tmp_path / "v.csv", pts, volume))
    assert list(table.columns) == ["z_px", "y_px", "x_px", "z_nm", "y_nm", "x_nm"]
    np.testing.assert_allclose(table["z_nm"], [0.0, 0.4])
    coords, _ = read_points_csv(tmp_path / "v.csv")
    np.testing.assert_allclose(coords, pts)


def test_points_csv_empty_table(tmp_path: Path) -> None:
    out = write_points_csv(
        tmp_path / "none.csv", np.zeros((0, 2)), Calibration.from_pixel_size_nm(0.1)
    )
    table = pd.read_csv(out)
    assert len(table) == 0 and list(table.columns) == ["y_px", "x_px", "y_nm", "x_nm"]


def test_points_csv_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="N, 2"):
        write_points_csv(tmp_path / "a.csv", np.zeros(5))
    with pytest.raises(InputError, match="NaN"):
        write_points_csv(tmp_path / "a.csv", [[np.nan, 1.0]])
    with pytest.raises(InputError, match="3 values"):
        write_points_csv(tmp_path / "a.csv", POINTS, features={"c": [1, 2]})
    with pytest.raises(InputError, match="calibration has 3 axes"):
        write_points_csv(tmp_path / "a.csv", POINTS, Calibration.from_pixel_size_nm(0.1, ndim=3))
    cal = Calibration.from_pixel_size_nm(0.1)
    with pytest.raises(InputError, match="clashes"):
        write_points_csv(tmp_path / "a.csv", POINTS, cal, {"y_nm": [0.0, 0.0, 0.0]})
    # the same values under a coordinate name are accepted (not repeated)
    out = write_points_csv(tmp_path / "a.csv", POINTS, cal, {"y_nm": POINTS[:, 0] * 0.1})
    assert list(pd.read_csv(out).columns) == ["y_px", "x_px", "y_nm", "x_nm"]
    assert not (tmp_path / "missing").exists()
    with pytest.raises(FileWriteError, match="does not exist"):
        write_points_csv(tmp_path / "missing" / "a.csv", POINTS)


def test_never_overwrites_silently(tmp_path: Path) -> None:
    path = tmp_path / "cols.csv"
    path.write_text("precious")
    with pytest.raises(FileWriteError, match="already exists"):
        write_points_csv(path, POINTS)
    assert path.read_text() == "precious"
    write_points_csv(path, POINTS, overwrite=True)
    assert path.read_text().startswith("y_px,x_px")


def test_refuses_to_overwrite_the_input_image(tmp_path: Path) -> None:
    image = tmp_path / "scan.tif"
    image.write_bytes(b"the micrograph")
    cal = Calibration.from_pixel_size_nm(0.1, source_path=str(image))
    labels = np.zeros((8, 8), np.uint8)
    for call in (
        lambda **kw: write_labels_tiff(image, labels, cal, **kw),
        lambda **kw: write_points_csv(image, POINTS, cal, **kw),
    ):
        with pytest.raises(FileWriteError, match="is an input file"):
            call(overwrite=True)
        assert image.read_bytes() == b"the micrograph"
    # an input named explicitly, reached by another path
    other = tmp_path / "sub" / ".." / "scan.tif"
    (tmp_path / "sub").mkdir()
    with pytest.raises(FileWriteError, match="is an input file"):
        write_points_csv(other, POINTS, inputs=[image], overwrite=True)
    write_labels_tiff(image, labels, cal, overwrite=True, overwrite_input=True)
    assert image.read_bytes() != b"the micrograph"


def test_atomic_write_keeps_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tifffile

    path = tmp_path / "mask.tif"
    path.write_bytes(b"old mask")

    def broken_imwrite(filename, *args, **kwargs):
        Path(filename).write_bytes(b"half a ti")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", broken_imwrite)
    with pytest.raises(FileWriteError, match="No space left"):
        write_labels_tiff(path, np.ones((4, 4), np.uint8), overwrite=True)
    assert path.read_bytes() == b"old mask"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.tif"]  # no temp file left


def test_written_files_have_normal_permissions(tmp_path: Path) -> None:
    out = write_points_csv(tmp_path / "p.csv", POINTS)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_labels_tiff_round_trip(tmp_path: Path) -> None:
    labels = np.zeros((3, 40, 50), np.int64)
    labels[1, 5:15, 10:30] = 1
    labels[2, 20:30, 5:10] = 2
    cal = build_calibration([RawAxis(0.5, "nm"), RawAxis(0.0177, "nm"), RawAxis(0.0177, "nm")])
    names = {0: "lattice", 1: "contamination", 2: "particle"}
    out = write_labels_tiff(tmp_path / "mask.tif", labels, cal, names)
    (image,) = read_images(out)
    np.testing.assert_array_equal(image.data, labels)
    assert image.data.dtype == np.uint8
    back = image.calibration
    assert back.scale == pytest.approx((0.5, 0.0177, 0.0177), rel=1e-6)
    assert back.units == ("nm", "nm", "nm")
    assert back.metadata["class_names"] == names


def test_labels_tiff_is_imagej_compatible(tmp_path: Path) -> None:
    import tifffile

    out = write_labels_tiff(
        tmp_path / "m.tif",
        np.eye(16, dtype=np.int32) * 3,
        Calibration.from_pixel_size_nm(0.25),
        {3: "atom"},
    )
    with tifffile.TiffFile(out) as tif:
        assert tif.is_imagej
        ij = tif.imagej_metadata
        assert ij["unit"] == "nm"
        assert "3 = atom" in ij["Info"]  # what Fiji shows in Image > Show Info
        page = tif.pages[0]
        num, den = page.tags["XResolution"].value
        assert den / num == pytest.approx(0.25, rel=1e-7)  # Fiji: pixel width = 1 / resolution


def test_labels_dtype_choice_and_errors(tmp_path: Path) -> None:
    big = np.zeros((8, 8), np.int32)
    big[0, 0] = 70000
    (image,) = read_images(write_labels_tiff(tmp_path / "big.tif", big))
    assert image.data.dtype == np.float32 and image.data[0, 0] == 70000
    (image,) = read_images(write_labels_tiff(tmp_path / "b.tif", np.ones((8, 8), bool)))
    assert image.data.dtype == np.uint8 and not image.calibration.calibrated
    with pytest.raises(InputError, match="negative"):
        write_labels_tiff(tmp_path / "n.tif", -np.ones((4, 4), np.int16))
    with pytest.raises(InputError, match="integer"):
        write_labels_tiff(tmp_path / "f.tif", np.ones((4, 4), np.float32))
    with pytest.raises(InputError, match="2-D or 3-D"):
        write_labels_tiff(tmp_path / "f.tif", np.ones(4, np.uint8))


def test_image_tiff_keeps_the_acquisition_facts(tmp_path: Path) -> None:
    """Microscope, voltage and acquisition mode (STEM/TEM: the atom finder's imaging
    mode) survive a write and read; the new file's own path and format replace the old."""
    cal = Calibration.from_pixel_size_nm(0.02).with_metadata(
        acquisition_mode="TEM", voltage_kV=300.0, instrument="Titan", source_path="/old.dm4"
    )
    path = write_image_tiff(tmp_path / "a.tif", np.ones((8, 8), np.float32), cal)
    _, back = read_image(path)
    assert back.metadata["acquisition_mode"] == "TEM"
    assert back.metadata["voltage_kV"] == 300.0 and back.metadata["instrument"] == "Titan"
    assert back.metadata["source_path"] == str(path)
    assert back.pixel_size_nm == pytest.approx(0.02)
