"""Point tables: this plugin's CSV, napari's Points CSV and ImageJ Results, read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_atomseg.errors import FileReadError
from napari_atomseg.io import (
    Calibration,
    read_points_table,
    sniff_points_csv,
    write_points_csv,
)
from tests._data import shared_path

POINTS = np.array([[10.25, 20.5], [3.0, 40.75], [0.0, 7.5]])


def test_own_table_round_trip_recovers_the_pixel_size(tmp_path: Path) -> None:
    cal = Calibration.from_pixel_size_nm(0.0293)
    features = {"confidence": [0.9, 0.5, 0.7], "class": ["Pt", "C", "Pt"]}
    path = write_points_csv(tmp_path / "a.csv", POINTS, cal, features)
    assert sniff_points_csv(path) == "atomseg"
    table = read_points_table(path)
    np.testing.assert_array_equal(table.points_px, POINTS)
    assert table.calibration.pixel_size_nm == 0.0293  # exactly: 10 digits are written
    assert table.calibration.units == ("nm", "nm")
    assert list(table.features.columns) == ["confidence", "class"]
    assert table.features["class"].tolist() == ["Pt", "C", "Pt"]
    assert table.calibration.metadata["source_path"] == str(path)


def test_own_table_uncalibrated_and_stack(tmp_path: Path) -> None:
    path = write_points_csv(tmp_path / "px.csv", POINTS, None, {"confidence": [1, 1, 1]})
    table = read_points_table(path)
    assert not table.calibration.calibrated and table.calibration.units == ("px", "px")
    cal = Calibration((2.0, 0.01, 0.01), ("nm", "nm", "nm"), ("z", "y", "x"), True)
    pts3 = np.column_stack([[0.0, 1.0, 2.0], POINTS])
    table = read_points_table(write_points_csv(tmp_path / "z.csv", pts3, cal))
    np.testing.assert_array_equal(table.points_px, pts3)
    assert table.calibration.scale == pytest.approx((2.0, 0.01, 0.01))
    assert table.calibration.axis_names == ("z", "y", "x")
    assert table.features.empty


def test_own_table_in_reciprocal_space(tmp_path: Path) -> None:
    cal = Calibration((0.5, 0.5), ("1/nm", "1/nm"), ("ky", "kx"), True)
    table = read_points_table(write_points_csv(tmp_path / "k.csv", POINTS, cal))
    assert table.calibration.units == ("1/nm", "1/nm")
    assert table.calibration.scale == pytest.approx((0.5, 0.5))


def test_napari_points_csv_with_and_without_pixel_size(tmp_path: Path) -> None:
    path = tmp_path / "napari.csv"
    path.write_text(
        "index,axis-0,axis-1,confidence,refined,source,pixel_size_nm\n"
        "0,1.5,2.25,0.9,True,model,0.01\n"
        "1,3.0,4.0,0.5,False,manual,0.01\n"
    )
    assert sniff_points_csv(path) == "napari"
    table = read_points_table(path)
    np.testing.assert_array_equal(table.points_px, [[1.5, 2.25], [3.0, 4.0]])
    assert table.calibration.pixel_size_nm == pytest.approx(0.01)
    assert list(table.features.columns) == ["confidence", "refined", "source", "pixel_size_nm"]
    assert table.features["refined"].tolist() == [True, False]
    path.write_text("index,axis-0,axis-1,axis-2\n0,2,1.5,2.25\n")
    table = read_points_table(path)
    np.testing.assert_array_equal(table.points_px, [[2.0, 1.5, 2.25]])
    assert not table.calibration.calibrated and table.calibration.ndim == 3


def test_imagej_results_are_pixels_x_then_y(tmp_path: Path) -> None:
    path = tmp_path / "Results.csv"
    path.write_text(" ,X,Y,Mean\n1,90,201,12.5\n2,148,274,13\n")
    assert sniff_points_csv(path) == "imagej"
    table = read_points_table(path)
    np.testing.assert_array_equal(table.points_px, [[201, 90], [274, 148]])
    assert list(table.features.columns) == ["Mean"]
    assert "pixels" in table.calibration.metadata["calibration_note"]
    path.write_text(" ,X,Y,Slice\n1,1,2,1\n2,3,4,3\n")
    table = read_points_table(path)
    np.testing.assert_array_equal(table.points_px, [[0, 2, 1], [2, 4, 3]])


@pytest.mark.shared_data
def test_real_imagej_results_of_the_pt_set() -> None:
    path = shared_path("pt_single_atoms", "coordinates", "027_Results.csv")
    table = read_points_table(path)
    raw = pd.read_csv(path)
    assert table.layout == "imagej" and len(table.points_px) == len(raw) == 43
    np.testing.assert_array_equal(table.points_px[:, 0], raw["Y"])
    np.testing.assert_array_equal(table.points_px[:, 1], raw["X"])


def test_not_a_point_table(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    assert sniff_points_csv(path) is None
    assert sniff_points_csv(tmp_path / "missing.csv") is None
    with pytest.raises(FileReadError, match=r"other\.csv: no point coordinates"):
        read_points_table(path)
    path.write_text("y_px,x_px\n1,\n")
    with pytest.raises(FileReadError, match="NaN or empty"):
        read_points_table(path)
