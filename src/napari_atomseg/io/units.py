"""Physical units of image axes: the one place unit strings are parsed and converted.

Microscope files spell the same unit in many ways ("um", "µm", "μm", "micron", "\\u00B5m",
"micrometer"; "A", "Å", "Angstrom"; "n_m" in Berkeley EMD files; "1/nm", "nm^-1",
"1 / nanometer" ...). Every reader and writer goes through :func:`parse_unit`, which maps a
unit string to a :class:`ParsedUnit`: its kind (real-space length, reciprocal length, another
physical quantity such as time, no unit at all, or a unit we do not understand) and the factor
that converts a value in that unit to the canonical unit of its kind:

- lengths -> ``"nm"``
- reciprocal lengths -> ``"1/nm"``
- time -> ``"s"``, energy -> ``"eV"``, angles -> ``"deg"`` / ``"rad"``
- no unit -> ``"px"`` (uncalibrated pixels)

Pint spellings that napari writes into ``layer.units`` ("nanometer", "1 / nanometer",
"pixel") are understood too, so a layer's units can be turned back into a calibration.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

#: Canonical units.
NM = "nm"
PER_NM = "1/nm"
PX = "px"

UnitKind = Literal["length", "reciprocal", "other", "none", "unknown"]

# Length units -> nanometres per unit.
_LENGTH_NM: dict[str, float] = {
    "km": 1e12,
    "m": 1e9,
    "cm": 1e7,
    "mm": 1e6,
    "um": 1e3,
    "nm": 1.0,
    "a": 0.1,
    "pm": 1e-3,
    "fm": 1e-6,
    "in": 2.54e7,
}

# Spellings -> keys of _LENGTH_NM (after _clean(): lower case, no spaces, mu -> u).
_LENGTH_ALIASES: dict[str, str] = {
    "kilometer": "km",
    "kilometre": "km",
    "meter": "m",
    "metre": "m",
    "meters": "m",
    "metres": "m",
    "centimeter": "cm",
    "centimetre": "cm",
    "millimeter": "mm",
    "millimetre": "mm",
    "micrometer": "um",
    "micrometre": "um",
    "micrometers": "um",
    "micron": "um",
    "microns": "um",
    "nanometer": "nm",
    "nanometre": "nm",
    "nanometers": "nm",
    "n_m": "nm",  # Berkeley EMD / ncempy writes "n_m"
    "u_m": "um",
    "p_m": "pm",
    "a_": "a",
    "ang": "a",
    "angstrom": "a",
    "angstroms": "a",
    "angstroem": "a",
    "picometer": "pm",
    "picometre": "pm",
    "femtometer": "fm",
    "inch": "in",
    "inches": "in",
}

# Other physical quantities that may label a stack axis: spelling -> (canonical, factor).
_OTHER_UNITS: dict[str, tuple[str, float]] = {
    "s": ("s", 1.0),
    "sec": ("s", 1.0),
    "second": ("s", 1.0),
    "seconds": ("s", 1.0),
    "ms": ("s", 1e-3),
    "millisecond": ("s", 1e-3),
    "us": ("s", 1e-6),
    "microsecond": ("s", 1e-6),
    "ns": ("s", 1e-9),
    "nanosecond": ("s", 1e-9),
    "min": ("s", 60.0),
    "minute": ("s", 60.0),
    "h": ("s", 3600.0),
    "ev": ("eV", 1.0),
    "electron_volt": ("eV", 1.0),
    "kev": ("eV", 1e3),
    "kiloelectron_volt": ("eV", 1e3),
    "deg": ("deg", 1.0),
    "degree": ("deg", 1.0),
    "degrees": ("deg", 1.0),
    "°": ("deg", 1.0),
    "rad": ("rad", 1.0),
    "radian": ("rad", 1.0),
    "mrad": ("rad", 1e-3),
    "milliradian": ("rad", 1e-3),
}

# Spellings meaning "no physical unit": the axis is in pixels / frames.
_NO_UNIT = {
    "",
    "none",
    "px",
    "pixel",
    "pixels",
    "pix",
    "css_pixel",
    "frame",
    "frames",
    "slice",
    "slices",
    "dimensionless",
    "<undefined>",
    "undefined",
}

_RECIPROCAL_PATTERNS = (
    re.compile(r"^1/(?P<base>.+)$"),
    re.compile(r"^(?P<base>.+?)(\^|\*\*)?-1$"),
    re.compile(r"^/(?P<base>.+)$"),
    re.compile(r"^per_?(?P<base>.+)$"),
)


@dataclass(frozen=True)
class ParsedUnit:
    """What a unit string means.

    Attributes
    ----------
    kind
        ``"length"`` (real space), ``"reciprocal"`` (1/length, diffraction and FFTs),
        ``"other"`` (time, energy, angle), ``"none"`` (no unit: pixels) or ``"unknown"``.
    canonical
        The unit values are converted to: ``"nm"``, ``"1/nm"``, ``"s"``, ``"eV"``, ``"deg"``,
        ``"rad"`` or ``"px"`` (for ``"none"`` and ``"unknown"``).
    factor
        Multiply a value in the original unit by this to get it in ``canonical``
        (``nan`` for ``"unknown"``).
    original
        The unit string as given.
    """

    kind: UnitKind
    canonical: str
    factor: float
    original: str

    @property
    def is_spatial(self) -> bool:
        """True for real-space or reciprocal-space lengths."""
        return self.kind in ("length", "reciprocal")


def _clean(unit: str) -> str:
    text = unit.strip()
    # "\u00B5m" literally (ImageJ writes the escape sequence into its description).
    text = text.replace("\\u00B5", "u").replace("\\u00b5", "u")
    # micro signs: U+00B5 MICRO SIGN and U+03BC GREEK SMALL LETTER MU.
    text = text.replace("\u00b5", "u").replace("\u03bc", "u")
    # Angstrom signs: U+00C5 and U+212B.
    text = text.replace("\u212b", "a").replace("\u00c5", "a")
    text = text.lower()
    text = re.sub(r"\s+", "", text)
    return text


def _length_factor(cleaned: str) -> float | None:
    key = _LENGTH_ALIASES.get(cleaned, cleaned)
    return _LENGTH_NM.get(key)


def parse_unit(unit: object) -> ParsedUnit:
    """Parse a unit string (or ``None`` / a pint unit) from a file or a napari layer.

    Never raises: a unit that is not understood comes back with ``kind="unknown"`` and the
    caller decides (readers then treat the axis as uncalibrated and warn).

    Parameters
    ----------
    unit
        The unit as the file spells it (``"nm"``, ``"Å"``, ``"1/nm"``, ``"µm"``, ...);
        None or ``""`` means no unit.

    Returns
    -------
    ParsedUnit
        Its kind, canonical unit and the factor to that unit.
    """
    original = "" if unit is None else str(unit)
    cleaned = _clean(original)
    if cleaned in _NO_UNIT:
        return ParsedUnit("none", PX, 1.0, original)
    factor = _length_factor(cleaned)
    if factor is not None:
        return ParsedUnit("length", NM, factor, original)
    for pattern in _RECIPROCAL_PATTERNS:
        match = pattern.match(cleaned)
        if match:
            base = _length_factor(match.group("base").strip("()"))
            if base is not None:
                # value [1/unit] = value / (base nm) = value / base [1/nm]
                return ParsedUnit("reciprocal", PER_NM, 1.0 / base, original)
    other = _OTHER_UNITS.get(cleaned)
    if other is not None:
        return ParsedUnit("other", other[0], other[1], original)
    return ParsedUnit("unknown", PX, math.nan, original)


def length_to_nm(value: float, unit: str) -> float:
    """Convert a length ``value`` given in ``unit`` (m, um, µm, nm, A, Å, pm, ...) to nm.

    Parameters
    ----------
    value
        The length in ``unit``.
    unit
        A length unit, any spelling :func:`parse_unit` understands.

    Returns
    -------
    float
        The length in nm.

    Raises
    ------
    ValueError
        When ``unit`` is not a length unit.
    """
    parsed = parse_unit(unit)
    if parsed.kind != "length":
        raise ValueError(f"{unit!r} is not a length unit (got kind {parsed.kind!r})")
    return float(value) * parsed.factor


def reciprocal_to_per_nm(value: float, unit: str) -> float:
    """Convert a reciprocal length ``value`` in ``unit`` (1/nm, 1/A, nm^-1, ...) to 1/nm.

    Parameters
    ----------
    value
        The reciprocal length in ``unit``.
    unit
        A reciprocal length unit, any spelling :func:`parse_unit` understands.

    Returns
    -------
    float
        The value in 1/nm.

    Raises
    ------
    ValueError
        When ``unit`` is not a reciprocal length unit.
    """
    parsed = parse_unit(unit)
    if parsed.kind != "reciprocal":
        raise ValueError(f"{unit!r} is not a reciprocal length unit (got kind {parsed.kind!r})")
    return float(value) * parsed.factor


def napari_unit(unit: str) -> str:
    """The spelling of a canonical unit that napari (pint) understands for ``layer.units``.

    ``"px"`` becomes ``"pixel"``: pint reads ``"px"`` as the CSS pixel (1/96 inch), a length,
    which would make napari's scale bar show inches for an uncalibrated image.
    """
    return "pixel" if unit == PX else unit
