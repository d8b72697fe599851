"""npe2 reader: electron-micrograph files -> calibrated napari Image layers.

``get_reader`` only looks at the extension and the first bytes (never raises, returns None
for anything it cannot read, so other plugins get their turn). The returned function reads
through :func:`napari_atomseg.io.read_images` and raises
:class:`napari_atomseg.errors.FileReadError` naming the file and the problem.

Each image signal becomes one layer: ``scale`` = pixel size, ``units`` = nm / 1/nm (or
``pixel`` when uncalibrated), ``axis_labels``, and ``metadata`` holding the calibration
(``metadata["calibration"]``, see :meth:`napari_atomseg.io.Calibration.from_dict`), the
source path and the file's own metadata tree. Complex data gives a magnitude layer and a
hidden phase layer; label TIFFs written by this plugin come back as Labels layers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from napari_atomseg.io import ImageData, read_images, sniff_format

LayerData = tuple[Any, dict[str, Any], str]


def get_reader(
    path: str | Sequence[str],
) -> Callable[[str | Sequence[str]], list[LayerData]] | None:
    """Return :func:`read_layers` if every path is a file this plugin reads, else None."""
    try:
        paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    except TypeError:
        return None
    if not paths or any(not isinstance(p, str | os.PathLike) for p in paths):
        return None
    if any(sniff_format(p) is None for p in paths):
        return None
    return read_layers


def read_layers(path: str | Sequence[str]) -> list[LayerData]:
    """Layer data tuples for every image signal in ``path`` (one path or several)."""
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    layers: list[LayerData] = []
    for p in paths:
        layers.extend(image_to_layer_data(image, os.fspath(p)) for image in read_images(p))
    return layers


def image_to_layer_data(image: ImageData, source_path: str) -> LayerData:
    """One :class:`ImageData` as a napari layer data tuple (Image, or Labels for masks)."""
    cal = image.calibration
    metadata = {
        "calibration": cal.to_dict(),
        "pixel_size_nm": cal.pixel_size_nm,
        "source_path": source_path,
        "original_metadata": image.original_metadata,
    }
    kwargs: dict[str, Any] = {
        "name": image.name,
        "metadata": metadata,
        **cal.layer_kwargs(),
    }
    if "class_names" in cal.metadata and not image.rgb:
        data = image.data
        if data.dtype.kind == "f":  # >65535 labels were stored as float32
            data = data.astype("int32")
        metadata["class_names"] = dict(cal.metadata["class_names"])
        return data, kwargs, "labels"
    kwargs["rgb"] = image.rgb
    part = cal.metadata.get("complex_part")
    if part == "phase":
        kwargs["colormap"] = "twilight_shifted"
        kwargs["visible"] = False
    return image.data, kwargs, "image"
