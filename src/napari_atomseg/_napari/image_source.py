"""What a widget feeds to compute: 2-D frames and the pixel size of a napari Image layer.

An Image layer may be 2-D, a 3-D stack (frame, y, x), RGB or multiscale, calibrated or in
pixels. :func:`image_frames` returns the 2-D planes to process (the current frame or
every frame) without modifying the layer; :func:`layer_pixel_size_nm` reads the in-plane
pixel size the same way the writers do (``metadata["calibration"]``, else scale + units).
RGB and >3-D data pass through unchanged so compute can refuse them with its own clear
message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_atomseg.errors import InputError

from .layers import Geometry
from .writer import layer_calibration


@dataclass(frozen=True)
class Frame:
    """One 2-D plane of an image layer: its index along the stack axis (None for 2-D)."""

    index: int | None
    data: Any


def layer_geometry(layer: Any) -> Geometry:
    """The :class:`Geometry` (scale, units, labels, translate) of an existing layer."""
    return Geometry.from_layer(layer)


def layer_pixel_size_nm(layer: Any) -> float | None:
    """In-plane pixel size of an Image layer in nm, or None when it is in pixels."""
    meta = {
        "scale": tuple(layer.scale),
        "units": tuple(layer.units),
        "axis_labels": tuple(layer.axis_labels),
        "metadata": dict(layer.metadata),
    }
    return layer_calibration(meta, len(layer.scale)).pixel_size_nm


def _full_resolution(layer: Any) -> Any:
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def current_frame_index(layer: Any, world_point: Any) -> int | None:
    """Index along a stack's first axis shown at ``world_point`` (viewer.dims.point)."""
    if layer.ndim != 3 or getattr(layer, "rgb", False):
        return None
    point = np.asarray(world_point, dtype=np.float64)[-layer.ndim :]
    data_point = layer.world_to_data(point)
    n = _full_resolution(layer).shape[0]
    return int(np.clip(np.round(data_point[0]), 0, n - 1))


def image_frames(layer: Any, frame: int | None = None, all_frames: bool = False) -> list[Frame]:
    """The 2-D planes to process: the whole image (2-D), ``frame`` or every frame (3-D)."""
    data = _full_resolution(layer)
    if getattr(layer, "rgb", False) or layer.ndim == 2:
        return [Frame(None, data)]
    if layer.ndim != 3:
        raise InputError(
            f"layer {layer.name!r}: {layer.ndim}-D images are not supported; use a 2-D image "
            "or a 3-D stack (frame, y, x)"
        )
    if all_frames:
        return [Frame(i, data[i]) for i in range(data.shape[0])]
    index = 0 if frame is None else int(frame)
    return [Frame(index, data[index])]
