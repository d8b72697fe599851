"""Points x Labels: which points fall on a given class, and flagging or dropping them.

Used by the Segment widget for the atom-and-bond workflow: columns found on
contamination are not lattice columns, so they are flagged in a feature column or
removed. The Labels layer is read as it is *now*, so regions the user painted over count.
Coordinates go through world space (scale and translate of each layer), so a 2-D points
layer works on a 3-D stack's labels (the labels' last two axes) and vice versa.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _to_world(layer: Any, data: np.ndarray) -> np.ndarray:
    return data * np.asarray(layer.scale) + np.asarray(layer.translate)


def points_on_class(points: Any, labels: Any, class_value: int) -> np.ndarray:
    """bool (N,): True where a point of ``points`` lies on ``class_value`` of ``labels``."""
    data = np.asarray(points.data, dtype=np.float64).reshape(-1, points.ndim)
    if len(data) == 0:
        return np.zeros(0, dtype=bool)
    world = _to_world(points, data)
    label_data = np.asarray(labels.data)
    n = min(world.shape[1], label_data.ndim)
    # Align the trailing axes (y, x); a stack axis present in both is matched too.
    scale = np.asarray(labels.scale)[-n:]
    translate = np.asarray(labels.translate)[-n:]
    idx = np.rint((world[:, -n:] - translate) / scale).astype(np.int64)
    shape = np.asarray(label_data.shape[-n:])
    inside = np.all((idx >= 0) & (idx < shape), axis=1)
    out = np.zeros(len(data), dtype=bool)
    if inside.any():
        sel = idx[inside]
        if label_data.ndim > n:  # labels stack, 2-D points: use the first frame
            values = label_data[(0,) * (label_data.ndim - n) + tuple(sel.T)]
        else:
            values = label_data[tuple(sel.T)]
        out[inside] = values == class_value
    return out


def flag_points(points: Any, on_class: np.ndarray, feature: str) -> int:
    """Add/replace the bool feature ``feature`` (True on the class); returns how many."""
    features = points.features.copy()
    features[feature] = np.asarray(on_class, dtype=bool)
    points.features = features
    defaults = dict(points.feature_defaults.iloc[0]) if len(points.feature_defaults) else {}
    defaults[feature] = False
    points.feature_defaults = defaults
    return int(np.count_nonzero(on_class))


def drop_points(points: Any, on_class: np.ndarray) -> int:
    """Remove the points on the class (features stay aligned); returns how many."""
    index = set(np.flatnonzero(on_class).tolist())
    if index:
        points.selected_data = index
        points.remove_selected()
    return len(index)
