"""Unit strings from real files and from napari layers -> canonical units and factors."""

from __future__ import annotations

import math

import pytest

from napari_atomseg.io import length_to_nm, parse_unit, reciprocal_to_per_nm
from napari_atomseg.io.units import napari_unit


@pytest.mark.parametrize(
    ("unit", "factor"),
    [
        ("nm", 1.0),
        ("n_m", 1.0),  # Berkeley EMD (Acquisition_18.emd)
        ("nanometer", 1.0),  # pint / napari layer.units
        ("m", 1e9),
        ("cm", 1e7),
        ("mm", 1e6),
        ("um", 1e3),
        ("µm", 1e3),  # U+00B5 MICRO SIGN (DM, Velox)
        ("μm", 1e3),  # U+03BC GREEK MU
        ("\\u00B5m", 1e3),  # ImageJ writes the escape literally
        ("micron", 1e3),
        ("micrometer", 1e3),
        ("A", 0.1),
        ("Å", 0.1),  # U+00C5
        ("Å", 0.1),  # U+212B ANGSTROM SIGN
        ("angstrom", 0.1),
        ("pm", 1e-3),
        (" nm ", 1.0),
    ],
)
def test_lengths_convert_to_nm(unit: str, factor: float) -> None:
    parsed = parse_unit(unit)
    assert parsed.kind == "length"
    assert parsed.canonical == "nm"
    assert parsed.factor == pytest.approx(factor, rel=1e-12)
    assert length_to_nm(2.5, unit) == pytest.approx(2.5 * factor, rel=1e-12)


@pytest.mark.parametrize(
    ("unit", "factor"),
    [
        ("1/nm", 1.0),
        ("1 / nm", 1.0),
        ("1 / nanometer", 1.0),  # pint spelling
        ("nm^-1", 1.0),
        ("nm-1", 1.0),
        ("1/A", 10.0),
        ("1/Å", 10.0),
        ("A^-1", 10.0),
        ("1/um", 1e-3),
        ("1/m", 1e-9),
        ("1/pm", 1e3),
    ],
)
def test_reciprocal_lengths_convert_to_per_nm(unit: str, factor: float) -> None:
    parsed = parse_unit(unit)
    assert parsed.kind == "reciprocal"
    assert parsed.canonical == "1/nm"
    assert reciprocal_to_per_nm(2.0, unit) == pytest.approx(2.0 * factor, rel=1e-12)


@pytest.mark.parametrize("unit", [None, "", "px", "pixel", "pixels", "css_pixel", "<undefined>"])
def test_no_unit_means_pixels(unit: object) -> None:
    parsed = parse_unit(unit)
    assert (parsed.kind, parsed.canonical, parsed.factor) == ("none", "px", 1.0)


@pytest.mark.parametrize(
    ("unit", "canonical", "factor"),
    [
        ("s", "s", 1.0),
        ("ms", "s", 1e-3),
        ("keV", "eV", 1e3),
        ("eV", "eV", 1.0),
        ("deg", "deg", 1.0),
        ("mrad", "rad", 1e-3),
    ],
)
def test_other_quantities(unit: str, canonical: str, factor: float) -> None:
    parsed = parse_unit(unit)
    assert parsed.kind == "other"
    assert parsed.canonical == canonical
    assert parsed.factor == pytest.approx(factor)


@pytest.mark.parametrize("unit", ["units4", "counts", "1/s/furlong", "nmx"])
def test_unknown_units_are_flagged_not_guessed(unit: str) -> None:
    parsed = parse_unit(unit)
    assert parsed.kind == "unknown"
    assert math.isnan(parsed.factor)
    assert not parsed.is_spatial


def test_converters_reject_the_wrong_kind() -> None:
    with pytest.raises(ValueError, match="not a length unit"):
        length_to_nm(1.0, "1/nm")
    with pytest.raises(ValueError, match="not a reciprocal"):
        reciprocal_to_per_nm(1.0, "nm")


def test_napari_spelling_avoids_css_pixel() -> None:
    # pint reads "px" as the CSS pixel (1/96 inch): a length. napari must get "pixel".
    assert napari_unit("px") == "pixel"
    assert napari_unit("nm") == "nm"
    assert napari_unit("1/nm") == "1/nm"
