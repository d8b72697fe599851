"""Calibration of an image: per-axis pixel size and unit, as napari wants them.

:class:`Calibration` is the contract between the readers, the compute packages and the
napari layers: ``scale`` and ``units`` per axis (``"nm"`` for real space, ``"1/nm"`` for
reciprocal space, ``"px"`` when the file gives no usable calibration), the axis names, a
``calibrated`` flag and the file's metadata (instrument, voltage, magnification, original
units...). :func:`build_calibration` turns the raw (scale, unit) pairs a file stores into a
:class:`Calibration`, applying the rules every reader shares: units are converted in one
place (:mod:`.units`), a missing, zero, negative or unintelligible in-plane calibration gives
an uncalibrated image and a :class:`CalibrationWarning` (never an invented pixel size).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .units import NM, PER_NM, PX, napari_unit, parse_unit

#: Two in-plane pixel sizes closer than this (relative) count as square pixels.
SQUARE_PIXEL_RTOL = 1e-3
#: The acquisition facts of ``Calibration.metadata`` that belong to the image, not to the
#: file it is in (name -> type): kept when a calibration is rebuilt (a pixel-size
#: override, a frame of a stack) and written into / read back from this plugin's TIFFs.
#: ``acquisition_mode`` (STEM / TEM) is the atom finder's imaging mode.
ACQUISITION_FACTS: dict[str, type] = {
    "instrument": str,
    "voltage_kV": float,
    "magnification": float,
    "camera_length_mm": float,
    "acquisition_mode": str,
}


class CalibrationWarning(UserWarning):
    """A file's calibration is missing, invalid or ambiguous; the image is read uncalibrated."""


@dataclass(frozen=True)
class Calibration:
    """Per-axis physical pixel size of an image, in napari's (row, col) axis order.

    Attributes
    ----------
    scale
        Size of one pixel along each axis, in ``units`` (e.g. ``(0.0177, 0.0177)`` nm).
    units
        Unit of each axis: ``"nm"`` (real space), ``"1/nm"`` (reciprocal space), ``"px"``
        (uncalibrated), or ``"s"``/``"eV"``/``"deg"``/``"rad"`` for a stack axis that is
        time, energy or angle. For napari use :attr:`napari_units`.
    axis_names
        ``("y", "x")``, ``("ky", "kx")`` in reciprocal space, with a leading ``"z"``,
        ``"time"``, ``"frame"``... for stacks. RGB(A) channels are not an axis here.
    calibrated
        True when the two in-plane axes carry a physical unit (nm or 1/nm).
    metadata
        What the file says about the acquisition where present: ``instrument``,
        ``voltage_kV``, ``magnification``, ``camera_length_mm``, ``acquisition_mode``,
        ``date``, ``title``..., plus ``format``, ``source_path``, ``original_units``,
        ``original_scale`` and any ``calibration_note`` explaining an uncalibrated result.
        Not part of equality.
    """

    scale: tuple[float, ...]
    units: tuple[str, ...]
    axis_names: tuple[str, ...]
    calibrated: bool
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        scale = tuple(float(s) for s in self.scale)
        units = tuple(str(u) for u in self.units)
        names = tuple(str(n) for n in self.axis_names)
        if not len(scale) == len(units) == len(names):
            raise ValueError(
                f"Calibration: scale {scale}, units {units} and axis_names {names} "
                "must have one entry per axis"
            )
        if len(scale) < 2:
            raise ValueError(f"Calibration: an image has at least 2 axes, got {len(scale)}")
        for s in scale:
            if not (math.isfinite(s) and s > 0):
                raise ValueError(f"Calibration: every scale must be positive and finite: {scale}")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "axis_names", names)
        object.__setattr__(self, "calibrated", bool(self.calibrated))
        object.__setattr__(self, "metadata", dict(self.metadata))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def uncalibrated(cls, ndim: int = 2, **metadata: Any) -> Calibration:
        """Pixels only: scale 1 and unit ``"px"`` on every axis."""
        names = _default_names(ndim, ("y", "x"))
        return cls((1.0,) * ndim, (PX,) * ndim, names, False, metadata)

    @classmethod
    def from_pixel_size_nm(
        cls, pixel_size_nm: float | tuple[float, float], ndim: int = 2, **metadata: Any
    ) -> Calibration:
        """A real-space calibration from an in-plane pixel size in nm (square or (y, x)).

        Leading stack axes (``ndim > 2``) are uncalibrated frames.
        """
        if isinstance(pixel_size_nm, tuple | list):
            py, px = (float(v) for v in pixel_size_nm)
        else:
            py = px = float(pixel_size_nm)
        lead = ndim - 2
        return cls(
            (1.0,) * lead + (py, px),
            (PX,) * lead + (NM, NM),
            _default_names(ndim, ("y", "x")),
            True,
            metadata,
        )

    @classmethod
    def from_napari(
        cls,
        scale: Sequence[float],
        units: Sequence[object] | None = None,
        axis_labels: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Calibration:
        """Rebuild a calibration from a napari layer's ``scale``, ``units`` and ``axis_labels``.

        ``units`` may be strings or pint units (``layer.units``); they are converted to nm /
        1/nm. A layer without units, or in pixels, gives an uncalibrated calibration.
        """
        ndim = len(scale)
        if units is None:
            units = ("",) * ndim
        if len(units) != ndim:
            raise ValueError(f"scale has {ndim} axes but units has {len(units)}")
        names = tuple(axis_labels) if axis_labels is not None else None
        raw = [
            RawAxis(float(s), str(u), names[i] if names else "")
            for i, (s, u) in enumerate(zip(scale, units))
        ]
        with warnings.catch_warnings():
            # A layer in pixels is not a defect of a file; do not warn about it.
            warnings.simplefilter("ignore", CalibrationWarning)
            cal = build_calibration(raw, dict(metadata or {}))
        if names is not None and len(names) == ndim and not _is_default(names):
            cal = dataclasses.replace(cal, axis_names=tuple(str(n) for n in names))
        return cal

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict` (e.g. from ``layer.metadata["calibration"]``)."""
        return cls(
            tuple(data["scale"]),
            tuple(data["units"]),
            tuple(data["axis_names"]),
            bool(data["calibrated"]),
            dict(data.get("metadata", {})),
        )

    # ------------------------------------------------------------------ views
    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.scale)

    @property
    def napari_units(self) -> tuple[str, ...]:
        """``units`` spelled for napari's ``layer.units`` (``"px"`` -> ``"pixel"``)."""
        return tuple(napari_unit(u) for u in self.units)

    @property
    def is_reciprocal(self) -> bool:
        """True when the in-plane axes are in 1/nm (a diffraction pattern or an FFT)."""
        return self.calibrated and self.units[-2:] == (PER_NM, PER_NM)

    @property
    def pixel_size_yx_nm(self) -> tuple[float, float] | None:
        """In-plane (row, col) pixel size in nm, or None when not calibrated in real space."""
        if self.calibrated and self.units[-2:] == (NM, NM):
            return (self.scale[-2], self.scale[-1])
        return None

    @property
    def is_square(self) -> bool:
        """True when the in-plane pixel sizes agree within :data:`SQUARE_PIXEL_RTOL`."""
        sy, sx = self.scale[-2:]
        return self.units[-2] == self.units[-1] and math.isclose(sy, sx, rel_tol=SQUARE_PIXEL_RTOL)

    @property
    def pixel_size_nm(self) -> float | None:
        """The in-plane pixel size in nm, or None.

        None when the image is uncalibrated, in reciprocal space, or its pixels are not
        square within :data:`SQUARE_PIXEL_RTOL` (then use :attr:`pixel_size_yx_nm`).
        """
        yx = self.pixel_size_yx_nm
        if yx is None or not self.is_square:
            return None
        return 0.5 * (yx[0] + yx[1])

    @property
    def reciprocal_pixel_size_per_nm(self) -> float | None:
        """In-plane pixel size in 1/nm for a square-pixel reciprocal-space image, else None."""
        if not self.is_reciprocal or not self.is_square:
            return None
        return 0.5 * (self.scale[-2] + self.scale[-1])

    def layer_kwargs(self) -> dict[str, Any]:
        """``scale``, ``units`` and ``axis_labels`` ready for a napari layer."""
        return {
            "scale": self.scale,
            "units": self.napari_units,
            "axis_labels": self.axis_names,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (lists, str, float) for layer metadata and JSON."""
        return {
            "scale": list(self.scale),
            "units": list(self.units),
            "axis_names": list(self.axis_names),
            "calibrated": self.calibrated,
            "pixel_size_nm": self.pixel_size_nm,
            "metadata": _jsonable(self.metadata),
        }

    def acquisition_facts(self) -> dict[str, Any]:
        """The :data:`ACQUISITION_FACTS` this calibration's metadata holds."""
        return {k: self.metadata[k] for k in ACQUISITION_FACTS if k in self.metadata}

    def with_metadata(self, **extra: Any) -> Calibration:
        """A copy with ``extra`` merged into :attr:`metadata`."""
        return dataclasses.replace(self, metadata={**self.metadata, **extra})


@dataclass(frozen=True)
class ImageData:
    """One image signal read from a file.

    Attributes
    ----------
    data
        The pixels, (row, col) order, native byte order. 2-D, or 3-D for stacks; RGB(A)
        images have a trailing channel axis of 3 or 4 (then ``rgb`` is True).
    calibration
        One entry per non-channel axis of ``data``.
    name
        A short name for a layer (file stem, plus the signal title for multi-signal files).
    rgb
        True for colour images (uint8/uint16 RGB or RGBA).
    original_metadata
        The file's own metadata tree (DM tags, TIFF tags, MRC header...), unmodified.
    """

    data: np.ndarray
    calibration: Calibration
    name: str
    rgb: bool = False
    original_metadata: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        expected = self.data.ndim - (1 if self.rgb else 0)
        if self.calibration.ndim != expected:
            raise ValueError(
                f"ImageData {self.name!r}: data shape {self.data.shape} (rgb={self.rgb}) "
                f"needs {expected} calibrated axes, calibration has {self.calibration.ndim}"
            )


@dataclass(frozen=True)
class RawAxis:
    """One axis as the file stores it: pixel size, unit string and name."""

    scale: float
    unit: str | None
    name: str = ""


def build_calibration(
    axes: Sequence[RawAxis],
    metadata: dict[str, Any] | None = None,
    *,
    where: str = "",
    lead_names: Sequence[str] | None = None,
) -> Calibration:
    """Turn a file's raw axes (row, col order) into a :class:`Calibration`.

    Rules, shared by every reader:

    - the last two axes are the image plane. Both in a length unit -> nm; both in a
      reciprocal length -> 1/nm. Both without a unit -> uncalibrated, silently (the file
      just has no calibration).
    - a zero, negative or non-finite in-plane pixel size, a unit that is not understood, or
      one axis in real and one in reciprocal space -> uncalibrated with a
      :class:`CalibrationWarning` saying why (``where`` names the file). No size is invented.
    - leading (stack) axes keep a physical unit when they have one (nm for z, s for time,
      eV, deg...) and a positive scale; otherwise they are frames (scale 1, ``"px"``).
      ``lead_names`` overrides their names (e.g. ``"channel"`` for a TIFF C axis).

    Parameters
    ----------
    axes
        The file's axes, row/col (the image plane) last: scale, unit string and name.
    metadata
        Facts the reader found (acquisition mode, voltage, ...); the original units,
        scales and names are added.
    where
        The file, named in warnings.
    lead_names
        Names for the leading (stack) axes, replacing theirs.

    Returns
    -------
    Calibration
        Canonical units (nm, 1/nm, s, eV, deg, rad, or px when uncalibrated); a
        ``calibration_note`` in the metadata says why an image is uncalibrated.
    """
    if len(axes) < 2:
        raise ValueError(f"an image needs at least 2 axes, got {len(axes)}")
    md = dict(metadata or {})
    parsed = [parse_unit(a.unit) for a in axes]
    md.setdefault("original_units", [a.unit or "" for a in axes])
    md.setdefault("original_scale", [float(a.scale) for a in axes])
    md.setdefault("original_axis_names", [a.name for a in axes])

    ay, ax = axes[-2:]
    py, px = parsed[-2:]
    prefix = f"{where}: " if where else ""
    calibrated = False
    note = ""
    if py.kind == px.kind and py.kind in ("length", "reciprocal"):
        sy, sx = float(ay.scale) * py.factor, float(ax.scale) * px.factor
        if all(math.isfinite(s) and s > 0 for s in (sy, sx)):
            calibrated = True
        else:
            note = (
                f"pixel size ({ay.scale:g} {ay.unit}, {ax.scale:g} {ax.unit}) is zero, "
                "negative or not a number, which means 'not calibrated'"
            )
    elif py.kind == px.kind == "none":
        note = "the file stores no pixel size"
    else:
        note = (
            f"in-plane units ({ay.unit!r}, {ax.unit!r}) are not a usable length or "
            "reciprocal-length pair"
        )
    if note and not (py.kind == px.kind == "none"):
        warnings.warn(
            f"{prefix}{note}; the image is read UNCALIBRATED (pixels). Set the pixel size "
            "by hand if you know it.",
            CalibrationWarning,
            stacklevel=3,
        )
    if note:
        md["calibration_note"] = note

    if calibrated:
        unit = py.canonical
        plane_scale = (float(ay.scale) * py.factor, float(ax.scale) * px.factor)
        plane_units = (unit, unit)
        plane_names = ("ky", "kx") if unit == PER_NM else ("y", "x")
    else:
        plane_scale, plane_units, plane_names = (1.0, 1.0), (PX, PX), ("y", "x")

    lead_scale: list[float] = []
    lead_units: list[str] = []
    names: list[str] = []
    n_lead = len(axes) - 2
    for i, (a, p) in enumerate(zip(axes[:-2], parsed[:-2])):
        value = float(a.scale) * p.factor if p.kind in ("length", "reciprocal", "other") else 0
        if math.isfinite(value) and value > 0:
            lead_scale.append(value)
            lead_units.append(p.canonical)
            names.append(_lead_name(p.canonical, i, n_lead))
        else:
            lead_scale.append(1.0)
            lead_units.append(PX)
            names.append("frame" if n_lead == 1 else f"frame{i}")
    if lead_names is not None:
        if len(lead_names) != n_lead:
            raise ValueError(f"lead_names {lead_names} must name the {n_lead} stack axes")
        names = [str(n) for n in lead_names]
    return Calibration(
        tuple(lead_scale) + plane_scale,
        tuple(lead_units) + plane_units,
        tuple(names) + plane_names,
        calibrated,
        md,
    )


def _lead_name(unit: str, index: int, n_lead: int) -> str:
    base = {NM: "z", PER_NM: "kz", "s": "time", "eV": "energy", "deg": "angle", "rad": "angle"}
    name = base.get(unit, "frame")
    return name if n_lead == 1 else f"{name}{index}"


def _default_names(ndim: int, plane: tuple[str, str]) -> tuple[str, ...]:
    lead = ndim - 2
    if lead < 0:
        raise ValueError(f"an image has at least 2 axes, got {ndim}")
    if lead == 1:
        return ("frame", *plane)
    return tuple(f"frame{i}" for i in range(lead)) + plane


def _is_default(names: Sequence[str]) -> bool:
    """napari's default axis labels are '-2', '-1' / '0', '1', ...; those carry no meaning."""
    return all(str(n).lstrip("-").isdigit() for n in names)


def _jsonable(value: Any) -> Any:
    """Metadata as plain Python (numpy scalars -> float/int, tuples -> lists, bytes -> str)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"<array {value.shape} {value.dtype}>"
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
