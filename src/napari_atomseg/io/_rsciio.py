"""DM3/DM4, TIA SER/EMI, Velox/Berkeley EMD, HyperSpy HSPY/ZSPY, vendor TIFFs: rosettasciio.

rosettasciio (the HyperSpy readers) knows these formats' tag trees; this module only turns
its signal dictionaries into :class:`ImageData`: image signals become images (stacks for
one navigation axis), spectra and plots are skipped with a reason, the metadata mapping
rosettasciio ships is applied to get the voltage, magnification and instrument.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ._assemble import assemble_images, summarize_hyperspy_metadata
from .calibration import ImageData, RawAxis

#: format key -> (rosettasciio module, human-readable format name, extra reader kwargs)
_READERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "dm": ("rsciio.digitalmicrograph", "Gatan DigitalMicrograph", {}),
    "tia": ("rsciio.tia", "FEI/Thermo TIA (SER/EMI)", {}),
    # "images": skip EDS spectrum streams (slow, and not images); their element maps stay.
    "emd": ("rsciio.emd", "EMD (Velox / Berkeley)", {"select_type": "images"}),
    "tiff": ("rsciio.tiff", "TIFF (vendor metadata)", {}),
    # HyperSpy's own files (what Atomap and TEMUL users save): axes carry the calibration.
    "hspy": ("rsciio.hspy", "HyperSpy HSPY (HDF5)", {}),
    "zspy": ("rsciio.zspy", "HyperSpy ZSPY (zarr)", {}),
}


def format_name(fmt: str, path: Path) -> str:
    """Human-readable name of a format key, e.g. 'Gatan DigitalMicrograph (DM4)'."""
    name = _READERS[fmt][1]
    if fmt == "dm":
        name += f" ({path.suffix.upper().lstrip('.')})"
    return name


def read_signals(path: Path, fmt: str) -> list[dict[str, Any]]:
    """rosettasciio's raw signal dictionaries for ``path`` (exceptions propagate)."""
    module_name, _, kwargs = _READERS[fmt]
    module = importlib.import_module(module_name)
    return module.file_reader(str(path), lazy=False, **kwargs)


def read_rsciio(path: Path, fmt: str) -> tuple[list[ImageData], list[str]]:
    """Every image signal of ``path``, and a reason for each signal that is not an image."""
    signals = read_signals(path, fmt)
    candidates: list[tuple[int, dict[str, Any]]] = []
    skipped: list[str] = []
    for index, signal in enumerate(signals):
        reason = _not_an_image(signal)
        if reason:
            skipped.append(f"signal {index} ({_title(signal) or 'untitled'}): {reason}")
        else:
            candidates.append((index, signal))
    images: list[ImageData] = []
    for index, signal in candidates:
        title = _title(signal)
        name = path.stem
        if len(candidates) > 1:
            name = f"{path.stem} [{title or index}]"
        tree = apply_mapping(signal)
        metadata = {
            "format": format_name(fmt, path),
            "reader": f"rosettasciio {_rsciio_version()}",
            "source_path": str(path),
            "signal_index": index,
            **summarize_hyperspy_metadata(tree),
        }
        if "acquisition_mode" not in metadata:
            mode = _velox_acquisition_mode(signal.get("original_metadata") or {})
            if mode:
                metadata["acquisition_mode"] = mode
        axes = [
            RawAxis(_axis_scale(a), a.get("units"), str(a.get("name") or ""))
            for a in signal["axes"]
        ]
        images.extend(
            assemble_images(
                signal["data"],
                axes,
                name=name,
                metadata=metadata,
                original_metadata={
                    "original_metadata": signal.get("original_metadata", {}),
                    "hyperspy_metadata": tree,
                },
                where=str(path),
            )
        )
    return images, skipped


def _velox_acquisition_mode(original: Mapping[str, Any]) -> str | None:
    """STEM or TEM from a Velox EMD's own metadata (rosettasciio maps neither): a scanning
    detector (``DetectorMetadata.DetectorType``) means STEM; a camera image taken in the
    TEM operating mode (``Optics.OperatingMode`` 1; STEM files say 2) means TEM."""
    detector = original.get("DetectorMetadata")
    if isinstance(detector, Mapping) and detector.get("DetectorType") == "ScanningDetector":
        return "STEM"
    optics = original.get("Optics")
    if isinstance(optics, Mapping) and isinstance(original.get("BinaryResult"), Mapping):
        return {"1": "TEM", "2": "STEM"}.get(str(optics.get("OperatingMode", "")).strip())
    return None


def _title(signal: Mapping[str, Any]) -> str:
    general = (signal.get("metadata") or {}).get("General", {}) or {}
    return str(general.get("title") or "")


def _axis_scale(axis: Mapping[str, Any]) -> float:
    scale = axis.get("scale")
    if scale is None:
        # A non-uniform axis (explicit coordinates): no single pixel size.
        return float("nan")
    return float(scale)


def _not_an_image(signal: Mapping[str, Any]) -> str:
    """Why ``signal`` is not an image or image stack ('' if it is one)."""
    data = signal["data"]
    axes = signal["axes"]
    if len(axes) != data.ndim:
        return f"{len(axes)} axis descriptions for {data.ndim}-D data"
    signal_axes = [a for a in axes if not a.get("navigate", False)]
    nav_sizes = [int(a["size"]) for a in axes if a.get("navigate", False)]
    kind = ((signal.get("metadata") or {}).get("Signal", {}) or {}).get("signal_type") or ""
    if len(signal_axes) < 2:
        what = kind or "spectrum or line plot"
        return f"{len(signal_axes)}-D signal ({what}), not an image"
    big_nav = [s for s in nav_sizes if s > 1]
    if len(signal_axes) == 2 and len(big_nav) > 1:
        return f"{data.ndim}-D data (a 4-D STEM or similar dataset), not an image or stack"
    if len(signal_axes) > 2 and data.ndim - data.shape.count(1) > 3:
        return f"{data.ndim}-D data of shape {data.shape}, not an image or stack"
    return ""


def apply_mapping(signal: Mapping[str, Any]) -> dict[str, Any]:
    """rosettasciio's metadata tree with its ``mapping`` (original tag -> metadata) applied.

    HyperSpy does this when it builds a signal; without HyperSpy we do it here. A tag whose
    conversion function rejects its value is listed under ``General.mapping_errors``.
    """
    tree = _deep_copy(signal.get("metadata") or {})
    original = signal.get("original_metadata") or {}
    errors: list[str] = []
    mapping: Mapping[str, tuple[str, Callable[[Any], Any] | None]] = signal.get("mapping") or {}
    for source, (target, convert) in mapping.items():
        value = _get_path(original, source)
        if value is None:
            continue
        if convert is not None:
            try:
                value = convert(value)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
                errors.append(f"{source}: {type(exc).__name__}: {exc}")
                continue
        if value is not None:
            _set_path(tree, target, value)
    if errors:
        tree.setdefault("General", {})["mapping_errors"] = errors
    return tree


def _get_path(tree: Mapping[str, Any], path: str) -> Any:
    node: Any = tree
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


def _deep_copy(tree: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in tree.items()}


def _rsciio_version() -> str:
    import rsciio

    return str(getattr(rsciio, "__version__", "?"))
