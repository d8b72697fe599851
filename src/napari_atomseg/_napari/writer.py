"""npe2 writers: a Points layer -> CSV (px and nm columns), a Labels layer -> calibrated TIFF.

The layer's ``scale`` and ``units`` give the calibration (nm columns appear when the layer
is in nm, as layers opened by this plugin's reader and results derived from them are). The
file named in napari's Save dialog is replaced if it exists (the dialog has asked), except
when it is the image the layer came from (``metadata["source_path"]``): that is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from napari_atomseg.io import Calibration, write_labels_tiff, write_points_csv


def layer_calibration(meta: Mapping[str, Any], ndim: int) -> Calibration:
    """The calibration of a layer from its napari attributes (scale, units, metadata)."""
    scale = list(meta.get("scale") or [1.0] * ndim)
    units = meta.get("units")
    metadata = dict(meta.get("metadata") or {})
    stored = metadata.get("calibration")
    extra = {"source_path": metadata["source_path"]} if metadata.get("source_path") else {}
    if isinstance(stored, Mapping):
        cal = Calibration.from_dict(stored)
        if cal.ndim == ndim and np.allclose(cal.scale, scale, rtol=1e-9):
            return cal.with_metadata(**extra)
    labels = meta.get("axis_labels")
    return Calibration.from_napari(scale, units, labels, extra)


def _inputs(meta: Mapping[str, Any]) -> list[str]:
    metadata = meta.get("metadata") or {}
    source = metadata.get("source_path")
    return [str(source)] if source else []


def write_points(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Points layer to ``path`` (CSV) with pixel, nm and feature columns."""
    coords = np.asarray(data, dtype=np.float64)
    ndim = coords.shape[1] if coords.ndim == 2 else len(meta.get("scale") or (1, 1))
    if coords.size == 0:
        coords = coords.reshape(0, ndim)
    cal = layer_calibration(meta, ndim)
    features = meta.get("features")
    if features is not None and len(getattr(features, "columns", ())) == 0:
        features = None
    out = write_points_csv(path, coords, cal, features, overwrite=True, inputs=_inputs(meta))
    return [str(out)]


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Labels layer to ``path`` (ImageJ TIFF with pixel size and class names)."""
    labels = np.asarray(data)
    cal = layer_calibration(meta, labels.ndim)
    class_names = (meta.get("metadata") or {}).get("class_names")
    out = write_labels_tiff(path, labels, cal, class_names, overwrite=True, inputs=_inputs(meta))
    return [str(out)]
