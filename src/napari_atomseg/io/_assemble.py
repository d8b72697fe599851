"""From (pixels, raw axes, metadata) as a format module found them to :class:`ImageData`.

Shared by every format so the same rules hold everywhere: size-1 stack axes dropped,
structured RGB(A) and TIFF RGB kept as colour (``rgb=True``), bool -> uint8, complex ->
a magnitude and a phase image, calibration built by :func:`build_calibration`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._arrays import native, split_complex, structured_rgb_to_channels, to_display_dtype
from .calibration import ImageData, RawAxis, build_calibration


def assemble_images(
    data: np.ndarray,
    axes: Sequence[RawAxis],
    *,
    name: str,
    metadata: Mapping[str, Any],
    original_metadata: Mapping[str, Any] | None = None,
    where: str = "",
    rgb: bool = False,
    lead_names: Sequence[str] | None = None,
) -> list[ImageData]:
    """Build the image(s) of one signal.

    ``axes`` describes every non-channel axis of ``data`` (row, col order). ``rgb`` says the
    last axis of ``data`` is a colour channel (TIFF RGB); structured RGB(A) dtypes are
    detected here. Returns one image, or two (magnitude, phase) for complex data.
    """
    data = np.asarray(data)
    channels = structured_rgb_to_channels(data) if data.dtype.names else None
    if channels is not None:
        data, rgb = channels, True
    elif data.dtype.names:
        raise ValueError(f"unsupported structured pixel type {data.dtype}")
    n_plain = data.ndim - (1 if rgb else 0)
    axes = list(axes)
    if len(axes) != n_plain:
        raise ValueError(
            f"{len(axes)} axis descriptions for data of shape {data.shape} (rgb={rgb})"
        )
    lead = list(lead_names) if lead_names is not None else None
    # Drop size-1 stack axes (a "stack" of one frame is an image).
    while n_plain > 2 and data.shape[0] == 1:
        data = data[0]
        axes.pop(0)
        if lead is not None:
            lead.pop(0)
        n_plain -= 1
    if n_plain < 2:
        raise ValueError(f"not an image: {n_plain}-D data of shape {data.shape}")

    md = dict(metadata)
    calibration = build_calibration(axes, md, where=where, lead_names=lead)
    original = dict(original_metadata or {})
    if np.iscomplexobj(data):
        magnitude, phase = split_complex(data)
        return [
            ImageData(
                magnitude,
                calibration.with_metadata(complex_part="magnitude"),
                f"{name} (magnitude)",
                False,
                original,
            ),
            ImageData(
                phase,
                calibration.with_metadata(complex_part="phase", intensity_unit="rad"),
                f"{name} (phase)",
                False,
                original,
            ),
        ]
    data = to_display_dtype(native(data))
    return [ImageData(data, calibration, name, rgb, original)]


# HyperSpy/rosettasciio metadata keys (their documented units) -> our flat key.
_INSTRUMENT_KEYS: dict[str, str] = {
    "microscope": "instrument",
    "beam_energy": "voltage_kV",  # keV of the electrons == accelerating voltage in kV
    "magnification": "magnification",
    "camera_length": "camera_length_mm",
    "acquisition_mode": "acquisition_mode",
    "dwell_time": "dwell_time_s",
    "beam_current": "beam_current_nA",
    "working_distance": "working_distance_mm",
    "convergence_angle": "convergence_angle_mrad",
}
_GENERAL_KEYS = ("title", "date", "time", "time_zone", "authors")


def summarize_hyperspy_metadata(tree: Mapping[str, Any]) -> dict[str, Any]:
    """The handful of acquisition facts users look for, from a rosettasciio metadata tree."""
    out: dict[str, Any] = {}
    general = tree.get("General", {}) or {}
    for key in _GENERAL_KEYS:
        value = general.get(key)
        if value not in (None, ""):
            out[key] = value
    instruments = tree.get("Acquisition_instrument", {}) or {}
    for kind in ("TEM", "SEM"):
        inst = instruments.get(kind)
        if not isinstance(inst, Mapping):
            continue
        out["microscope_type"] = kind
        for key, ours in _INSTRUMENT_KEYS.items():
            value = _plain(inst.get(key))
            if value in (None, ""):
                continue
            if ours in ("magnification", "voltage_kV") and value == 0:
                continue  # Velox/TIA write 0 for "not recorded"
            out[ours] = value
        detector = inst.get("Detector")
        if isinstance(detector, Mapping) and detector:
            out["detector"] = ", ".join(str(k) for k in detector)
        break
    signal = tree.get("Signal", {}) or {}
    if signal.get("quantity"):
        out["intensity_quantity"] = signal["quantity"]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value
