"""Putting layer data tuples into a viewer: add a new layer, or update one in place.

Updating in place (instead of remove + add) keeps the layer's position in the layer list,
its visibility and the user's display settings, and is what makes the live preview
smooth: moving a slider replaces the points' data and features, nothing else.
"""

from __future__ import annotations

from typing import Any

from napari.layers import Image, Labels, Layer, Points

from ..layers import LayerData

_CLASSES = {"image": Image, "labels": Labels, "points": Points}


def find_layer(viewer: Any, name: str, layer_type: str) -> Layer | None:
    """The layer called ``name`` if it exists and is of ``layer_type``, else None."""
    if name in viewer.layers:
        layer = viewer.layers[name]
        if isinstance(layer, _CLASSES[layer_type]):
            return layer
    return None


def add_or_update(viewer: Any, layer_data: LayerData) -> Layer:
    """Update the layer named in ``layer_data`` if it exists with that type, else add it."""
    data, kwargs, layer_type = layer_data
    layer = find_layer(viewer, kwargs.get("name", ""), layer_type)
    if layer is None:
        return viewer.add_layer(Layer.create(data, dict(kwargs), layer_type))
    for key in ("scale", "units", "axis_labels", "translate"):
        if key in kwargs:
            setattr(layer, key, kwargs[key])
    layer.data = data
    if layer_type == "points":
        layer.features = kwargs.get("features", {})
        if "feature_defaults" in kwargs:
            layer.feature_defaults = kwargs["feature_defaults"]
        if "size" in kwargs:
            layer.size = kwargs["size"]
            layer.current_size = kwargs["size"]
    elif layer_type == "labels":
        if "colormap" in kwargs:
            layer.colormap = kwargs["colormap"]
        if "features" in kwargs:
            layer.features = kwargs["features"]
    layer.metadata.clear()
    layer.metadata.update(kwargs.get("metadata", {}))
    return layer
