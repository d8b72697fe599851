"""What kind of image a file or layer holds (STEM or HRTEM), read from its metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Words of a file's acquisition mode (``Calibration.metadata["acquisition_mode"]``: DM's
#: "Illumination Mode", TIA's "Mode", ...) and simulation modes, by imaging mode.
_STEM_WORDS = ("STEM", "HAADF", "ADF", "ABF")
_TEM_WORDS = ("TEM", "HRTEM", "IMAGING", "EFTEM", "CTEM")


def imaging_from_metadata(metadata: Mapping[str, Any] | None) -> str | None:
    """``"stem"``, ``"hrtem"`` or None (not said) from a file's or layer's metadata.

    Reads ``acquisition_mode`` (what the readers take from DM/TIA/EMD metadata) from
    ``metadata`` itself, its ``"calibration"`` entry (napari layers opened by this
    plugin) or the simulator's ``"simulation_parameters"`` (``mode``: haadf / hrtem).
    Anything else -- a diffraction mode, an unknown word, nothing -- gives None.
    """
    if not metadata:
        return None
    candidates: list[Any] = [metadata.get("acquisition_mode")]
    cal = metadata.get("calibration")
    if isinstance(cal, Mapping):
        inner = cal.get("metadata")
        if isinstance(inner, Mapping):
            candidates.append(inner.get("acquisition_mode"))
    params = metadata.get("simulation_parameters")
    if isinstance(params, Mapping):
        candidates.append(params.get("mode"))  # "haadf" / "hrtem": words of the lists
    for value in candidates:
        if not isinstance(value, str) or not value.strip():
            continue
        words = value.upper().replace("-", " ").replace("_", " ").split()
        if any(w in _STEM_WORDS for w in words):
            return "stem"
        if any(w in _TEM_WORDS for w in words):
            return "hrtem"
    return None
