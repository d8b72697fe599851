"""TIFF: ImageJ, DigitalMicrograph-exported, HyperSpy-written and plain TIFFs via tifffile;
microscope-vendor TIFFs (Thermo/FEI, Zeiss CZ_SEM, TVIPS, JEOL SightX, Olympus SIS) via
rosettasciio's TIFF reader, which knows those metadata blocks.

Calibration sources, first match wins:

1. vendor metadata (FEI ``PixelWidth``; Zeiss: the true image pixel size, i.e. the CZ_SEM
   pixel size, which refers to a 1024-px-wide display, times 1024 / image width; TVIPS
   ``PixelSizeX``; JEOL magnification / camera length);
2. Gatan DM tags 65003-65011 (written by DM's TIFF export and by HyperSpy): float64 exact;
3. ImageJ: ``unit``/``yunit``/``zunit`` in the description, pixel size = 1 / XResolution,
   ``spacing`` for z, ``finterval`` for time;
4. otherwise uncalibrated. Bare TIFF ``XResolution``/``ResolutionUnit`` tags without any of
   the above are print resolutions (72 dpi...), not pixel sizes, and are not used; napari's
   built-in reader ignores them too.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileReadError
from ._assemble import assemble_images
from ._rsciio import read_rsciio
from .calibration import ACQUISITION_FACTS, CalibrationWarning, ImageData, RawAxis

# DigitalMicrograph TIFF-export private tags (as decoded by rosettasciio).
_DM_X_UNIT, _DM_Y_UNIT, _DM_Z_UNIT = 65003, 65004, 65005
_DM_X_SCALE, _DM_Y_SCALE, _DM_Z_SCALE = 65009, 65010, 65011

# Lines of a DM tag dump (kept by DM in ImageJ "Info") worth surfacing.
_DM_INFO_KEYS = {
    "Microscope Info.Voltage": ("voltage_kV", 1e-3),
    "Microscope Info.Indicated Magnification": ("magnification", 1.0),
    "Microscope Info.Name": ("instrument", None),
    "Microscope Info.Illumination Mode": ("acquisition_mode", None),
}


def is_vendor_tiff(tif: Any) -> str:
    """The vendor whose metadata block ``tif`` carries ('' if none we delegate)."""
    flags = tif.flags
    page = tif.pages.first
    if "fei" in flags:
        return "Thermo Fisher/FEI"
    if "sem" in flags:
        return "Zeiss (CZ_SEM)"
    if "tvips" in flags:
        return "TVIPS"
    if page.is_sis:
        return "Olympus SIS"
    make = page.tags.get("Make")
    if make is not None and str(make.value).strip() == "JEOL Ltd.":
        return "JEOL SightX"
    return ""


def read_tiff(path: Path) -> tuple[list[ImageData], list[str]]:
    """Images of a TIFF file and reasons for anything skipped."""
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except tifffile.TiffFileError as exc:
        raise FileReadError(f"{path}: not a valid TIFF file ({exc})") from exc
    with tif:
        if not tif.series or not tif.pages:
            raise FileReadError(
                f"{path}: the TIFF holds no readable image (truncated or corrupt: the first "
                "image directory points outside the file)"
            )
        _check_not_truncated(path, tif)
        vendor = is_vendor_tiff(tif)
        if not vendor:
            return _read_plain(path, tif), _skipped_series(tif)
    images, skipped = read_rsciio(path, "tiff")
    if images and not images[0].calibration.calibrated:
        warnings.warn(
            f"{path}: the {vendor} metadata holds no usable pixel size; the image is read "
            "UNCALIBRATED (pixels). Set the pixel size by hand if you know it.",
            CalibrationWarning,
            stacklevel=3,
        )
    images = [
        _with(img, format=f"TIFF ({vendor})", vendor=vendor, reader="rosettasciio tiff")
        for img in images
    ]
    return images, skipped


def _with(image: ImageData, **metadata: Any) -> ImageData:
    return ImageData(
        image.data,
        image.calibration.with_metadata(**metadata),
        image.name,
        image.rgb,
        image.original_metadata,
    )


def _skipped_series(tif: Any) -> list[str]:
    return [
        f"TIFF series {i} {s.shape} ({s.kind or 'extra'}), e.g. a thumbnail: not read"
        for i, s in enumerate(tif.series[1:], start=1)
    ]


def _check_not_truncated(path: Path, tif: Any) -> None:
    """Raise if the pixel data of the first series extends past the end of the file."""
    size = os.path.getsize(path)
    series = tif.series[0]
    end = 0
    if series.dataoffset is not None:
        end = int(series.dataoffset) + int(series.nbytes)
    else:
        pages = series.pages
        for page in (pages[0], pages[-1]):
            if page is None:
                continue
            offsets = getattr(page, "dataoffsets", ()) or ()
            counts = getattr(page, "databytecounts", ()) or ()
            for offset, count in zip(offsets, counts):
                end = max(end, int(offset) + int(count))
    if end > size:
        raise FileReadError(
            f"{path}: the TIFF is truncated: its image data needs {end:,} bytes but the file "
            f"has {size:,} (incomplete copy or download?)"
        )


def _read_plain(path: Path, tif: Any) -> list[ImageData]:
    series = tif.series[0]
    page = series.keyframe
    axes = series.axes
    try:
        data = series.asarray()
    except (ValueError, OSError, IndexError, KeyError) as exc:
        hint = " (pip install imagecodecs)" if "imagecodecs" in str(exc) else ""
        raise FileReadError(f"{path}: could not decode the TIFF pixels ({exc}){hint}") from exc
    rgb = page.photometric == 2 and axes.endswith("S") and data.shape[-1] in (3, 4)
    if axes.endswith("S") and not rgb:
        # Extra samples that are not colour: make them a leading "channel" axis.
        data = np.moveaxis(data, -1, 0)
        axes = "C" + axes[:-1]
    plain_axes = axes[:-1] if rgb else axes
    if len(plain_axes) < 2:
        raise FileReadError(f"{path}: not an image (TIFF axes {series.axes!r})")

    tags = {tag.code: tag.value for tag in page.tags.values()}
    ij = tif.imagej_metadata or {}
    metadata: dict[str, Any] = {"source_path": str(path), "reader": "tifffile"}
    scales, units, source = _plain_calibration(tags, ij, plain_axes)
    metadata["format"] = {
        "dm": "TIFF (DigitalMicrograph/HyperSpy tags)",
        "imagej": "TIFF (ImageJ)",
        "": "TIFF",
    }[source]
    software = tags.get(305)
    if software:
        metadata["software"] = str(software)
    metadata.update(_dm_info_summary(ij.get("Info")))
    class_names = _class_names(ij)
    if class_names:
        metadata["class_names"] = class_names
    raw_axes = [RawAxis(s, u, a) for s, u, a in zip(scales, units, plain_axes)]
    lead = [_LEAD_NAMES.get(a, "frame") for a in plain_axes[:-2]]
    if len(lead) > 1:
        lead = [f"{n}{i}" if lead.count(n) > 1 else n for i, n in enumerate(lead)]
    original = {
        "tiff_tags": {str(k): _short(v) for k, v in tags.items()},
        "imagej_metadata": dict(ij),
    }
    return assemble_images(
        data,
        raw_axes,
        name=path.stem,
        metadata=metadata,
        original_metadata=original,
        where=str(path),
        rgb=rgb,
        lead_names=lead,
    )


_LEAD_NAMES = {"Z": "z", "T": "time", "C": "channel", "Q": "frame", "I": "frame"}


def _plain_calibration(
    tags: Mapping[int, Any], ij: Mapping[str, Any], axes: str
) -> tuple[list[float], list[str | None], str]:
    """Per-axis (scale, unit) from DM tags or ImageJ metadata; '' source = none found."""
    n = len(axes)
    scales: list[float] = [1.0] * n
    units: list[str | None] = [None] * n
    if _DM_X_SCALE in tags and _DM_Y_SCALE in tags:
        scales[-1], units[-1] = float(tags[_DM_X_SCALE]), str(tags.get(_DM_X_UNIT) or "")
        scales[-2], units[-2] = float(tags[_DM_Y_SCALE]), str(tags.get(_DM_Y_UNIT) or "")
        if "Z" in axes and _DM_Z_SCALE in tags:
            i = axes.index("Z")
            scales[i], units[i] = float(tags[_DM_Z_SCALE]), str(tags.get(_DM_Z_UNIT) or "")
        return scales, units, "dm"
    unit = ij.get("unit")
    if unit is not None and str(unit).strip().lower() in ("inch", "inches", "in"):
        # ImageJ copies a print resolution (dpi) as "inch": not a pixel size.
        unit = None
    if unit is not None and 282 in tags and 283 in tags:
        unit = _imagej_unit(str(unit))
        scales[-1] = _inverse_rational(tags[282])
        scales[-2] = _inverse_rational(tags[283])
        units[-1] = unit
        units[-2] = _imagej_unit(str(ij.get("yunit", unit)))
        if "Z" in axes and "spacing" in ij:
            i = axes.index("Z")
            scales[i] = float(ij["spacing"])
            units[i] = _imagej_unit(str(ij.get("zunit", unit)))
        if "T" in axes and ij.get("finterval"):
            i = axes.index("T")
            scales[i] = float(ij["finterval"])
            units[i] = str(ij.get("tunit", "s"))
        return scales, units, "imagej"
    return scales, units, ""


def _imagej_unit(unit: str) -> str:
    # ImageJ spells micrometres "micron" or "\u00B5m" (literally); "pixel" means none.
    return {"micron": "um", "microns": "um"}.get(unit.strip().lower(), unit)


def _inverse_rational(value: Any) -> float:
    """Pixel size from a TIFF resolution (pixels per unit, as a rational pair or a float)."""
    if isinstance(value, tuple | list) and len(value) == 2:
        num, den = float(value[0]), float(value[1])
        return den / num if num else float("nan")
    v = float(value)
    return 1.0 / v if v else float("nan")


def _dm_info_summary(info: object) -> dict[str, Any]:
    """Voltage, magnification and microscope from a DM tag dump stored in ImageJ 'Info'
    (or the facts this plugin's writer stored there)."""
    if not isinstance(info, str):
        return {}
    if "ImageTags" not in info:
        own: dict[str, Any] = {}
        for line in info.splitlines():
            key, sep, value = line.partition(" = ")
            # The facts this plugin's writer keeps there (key = value lines).
            kind = ACQUISITION_FACTS.get(key.strip()) if sep else None
            if kind is not None and value.strip():
                try:
                    own[key.strip()] = kind(value.strip())
                except ValueError:
                    continue
        return own
    found: dict[str, Any] = {}
    for line in info.splitlines():
        key, sep, value = line.partition(" = ")
        if not sep:
            continue
        for suffix, (ours, factor) in _DM_INFO_KEYS.items():
            if key.endswith(suffix) and ours not in found:
                if factor is None:
                    found[ours] = value.strip()
                else:
                    try:
                        found[ours] = float(value) * factor
                    except ValueError:
                        continue
    return found


def _class_names(ij: Mapping[str, Any]) -> dict[int, str]:
    """Label class names written by :func:`napari_atomseg.io.write_labels_tiff`."""
    import json

    text = ij.get("atomseg_classes")
    if not isinstance(text, str):
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        return {}
    if not isinstance(raw, dict):
        return {}
    return {int(k): str(v) for k, v in raw.items() if re.fullmatch(r"-?\d+", str(k))}


def _short(value: Any) -> Any:
    """TIFF tag values for metadata: long byte strings and arrays summarised."""
    if isinstance(value, bytes):
        return value[:256].decode("latin-1") if len(value) <= 256 else f"<{len(value)} bytes>"
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 16 else f"<array {value.shape}>"
    if isinstance(value, tuple) and len(value) > 16:
        return f"<{len(value)} values>"
    return value
