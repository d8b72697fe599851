"""Calibration rules shared by every reader (build_calibration) and the Calibration API."""

from __future__ import annotations

import json
import warnings

import pytest

from napari_atomseg.io import Calibration, CalibrationWarning, RawAxis, build_calibration


def _build(*axes: tuple[float, str | None], **kw):
    return build_calibration([RawAxis(s, u) for s, u in axes], **kw)


def test_square_real_space_image() -> None:
    cal = _build((0.5, "A"), (0.5, "A"))
    assert cal.calibrated
    assert cal.scale == (0.05, 0.05)
    assert cal.units == ("nm", "nm")
    assert cal.axis_names == ("y", "x")
    assert cal.pixel_size_nm == pytest.approx(0.05)
    assert cal.pixel_size_yx_nm == pytest.approx((0.05, 0.05))
    assert cal.napari_units == ("nm", "nm")
    assert cal.metadata["original_units"] == ["A", "A"]
    assert cal.metadata["original_scale"] == [0.5, 0.5]


def test_non_square_pixels_have_no_single_pixel_size() -> None:
    # openNCEM dmTest_float32_nonSquare_diffPixelSize.dm3: y 2 A, x 1 nm
    cal = _build((2.0, "A"), (1.0, "nm"))
    assert cal.calibrated
    assert cal.scale == pytest.approx((0.2, 1.0))
    assert cal.pixel_size_nm is None
    assert cal.pixel_size_yx_nm == pytest.approx((0.2, 1.0))
    assert not cal.is_square


def test_nearly_square_pixels_count_as_square() -> None:
    # FEI navcam: 263974.0 vs 263974.6 nm (2e-6 relative)
    cal = _build((263974.0, "nm"), (263974.6, "nm"))
    assert cal.is_square
    assert cal.pixel_size_nm == pytest.approx(263974.3)


def test_reciprocal_space() -> None:
    cal = _build((0.02, "1/A"), (0.02, "1/A"))
    assert cal.is_reciprocal
    assert cal.units == ("1/nm", "1/nm")
    assert cal.axis_names == ("ky", "kx")
    assert cal.scale == pytest.approx((0.2, 0.2))
    assert cal.pixel_size_nm is None  # not a real-space pixel size
    assert cal.reciprocal_pixel_size_per_nm == pytest.approx(0.2)


def test_no_units_is_silently_uncalibrated() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no CalibrationWarning for a plain uncalibrated file
        cal = _build((1.0, ""), (1.0, None))
    assert not cal.calibrated
    assert cal.units == ("px", "px")
    assert cal.napari_units == ("pixel", "pixel")
    assert cal.pixel_size_nm is None
    assert cal.metadata["calibration_note"] == "the file stores no pixel size"


@pytest.mark.parametrize("size", [-1.0, 0.0, float("nan"), float("inf")])
def test_invalid_pixel_size_is_uncalibrated_with_a_warning(size: float) -> None:
    with pytest.warns(CalibrationWarning, match=r"UNCALIBRATED.*") as record:
        cal = _build((size, "nm"), (size, "nm"), where="scan.mrc")
    assert "scan.mrc" in str(record[0].message)
    assert not cal.calibrated
    assert cal.scale == (1.0, 1.0)
    assert cal.units == ("px", "px")
    assert cal.pixel_size_nm is None
    assert "not calibrated" in cal.metadata["calibration_note"]


@pytest.mark.parametrize(
    ("uy", "ux"), [("nm", "1/nm"), ("units2", "units1"), ("nm", ""), ("s", "s")]
)
def test_unusable_unit_pairs_warn(uy: str, ux: str) -> None:
    with pytest.warns(CalibrationWarning, match="not a usable"):
        cal = _build((1.0, uy), (1.0, ux))
    assert not cal.calibrated


def test_stack_axes() -> None:
    # openNCEM 3-D DM: z 4 um, y 3 nm, x 2 pm
    cal = _build((4.0, "um"), (3.0, "nm"), (2.0, "pm"))
    assert cal.scale == pytest.approx((4000.0, 3.0, 0.002))
    assert cal.units == ("nm", "nm", "nm")
    assert cal.axis_names == ("z", "y", "x")
    # a time series (Velox stack) and an index axis
    cal = _build((0.8, "s"), (8.0, "pm"), (8.0, "pm"))
    assert cal.units[0] == "s" and cal.axis_names[0] == "time" and cal.scale[0] == 0.8
    cal = _build((1.0, ""), (0.1, "nm"), (0.1, "nm"))
    assert (cal.scale[0], cal.units[0], cal.axis_names[0]) == (1.0, "px", "frame")
    cal = _build((1.0, ""), (0.1, "nm"), (0.1, "nm"), lead_names=["channel"])
    assert cal.axis_names == ("channel", "y", "x")


def test_calibration_validates_itself() -> None:
    with pytest.raises(ValueError, match="one entry per axis"):
        Calibration((1.0, 1.0), ("nm",), ("y", "x"), True)
    with pytest.raises(ValueError, match="positive"):
        Calibration((0.0, 1.0), ("nm", "nm"), ("y", "x"), True)
    with pytest.raises(ValueError, match="at least 2"):
        Calibration((1.0,), ("nm",), ("x",), True)


def test_constructors_and_round_trips() -> None:
    cal = Calibration.from_pixel_size_nm(0.02, ndim=3, source_path="a.dm4")
    assert cal.scale == (1.0, 0.02, 0.02)
    assert cal.units == ("px", "nm", "nm")
    assert cal.pixel_size_nm == 0.02
    assert Calibration.from_pixel_size_nm((0.1, 0.2)).pixel_size_yx_nm == (0.1, 0.2)
    assert Calibration.uncalibrated(2).units == ("px", "px")

    as_dict = cal.to_dict()
    json.dumps(as_dict)  # plain Python, storable in layer metadata / JSON
    back = Calibration.from_dict(as_dict)
    assert back == cal
    assert back.metadata["source_path"] == "a.dm4"


def test_from_napari_understands_pint_units() -> None:
    pint = pytest.importorskip("pint")
    ureg = pint.UnitRegistry()
    cal = Calibration.from_napari(
        [0.0177, 0.0177], [ureg.Unit("nanometer"), ureg.Unit("nanometer")], ["y", "x"]
    )
    assert cal.calibrated and cal.pixel_size_nm == pytest.approx(0.0177)
    cal = Calibration.from_napari([0.5, 0.5], ["1 / nanometer", "1 / nanometer"])
    assert cal.is_reciprocal
    # a layer in pixels: uncalibrated, and no warning (not a file defect)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cal = Calibration.from_napari([1.0, 1.0], ["pixel", "pixel"], ["-2", "-1"])
    assert not cal.calibrated
    assert cal.axis_names == ("y", "x")  # napari's default labels carry no meaning


def test_layer_kwargs_are_what_napari_wants() -> None:
    kwargs = Calibration.from_pixel_size_nm(0.05).layer_kwargs()
    assert kwargs == {"scale": (0.05, 0.05), "units": ("nm", "nm"), "axis_labels": ("y", "x")}


def test_metadata_is_not_part_of_equality() -> None:
    a = Calibration.from_pixel_size_nm(0.05, instrument="A")
    b = Calibration.from_pixel_size_nm(0.05, instrument="B")
    assert a == b
    assert hash(a) == hash(b)
    assert a.with_metadata(x=1).metadata == {"instrument": "A", "x": 1}
