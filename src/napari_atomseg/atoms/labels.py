"""Per-column instance labels: a watershed of the heatmap seeded at the detected columns.

Label ``i + 1`` belongs to row ``i`` of the positions (the DataFrame row order), 0 is
background, so a napari Labels layer and a Points layer describe the same columns. The
region of a column is where the heatmap is above ``level`` and closer to that column's
basin than to any other's, clipped to a disc of ``max_radius_px`` around its centre.
"""

from __future__ import annotations

import numpy as np
from skimage import measure
from skimage.segmentation import watershed

from .._validate import check_range
from ..errors import InputError
from .spacing import as_points


def column_labels(
    heatmap: np.ndarray,
    positions_px: object,
    level: float = 0.2,
    max_radius_px: float | np.ndarray | None = None,
) -> np.ndarray:
    """Instance label image (int32, same shape as ``heatmap``) of the given columns.

    Parameters
    ----------
    heatmap
        2-D array, high at columns (network output in [0, 1]). Not modified.
    positions_px
        ``(N, 2)`` (row, col) of the columns; label ``i + 1`` is column ``i``. Positions
        outside the image get no region.
    level
        Heatmap value below which a pixel is background.
    max_radius_px
        Largest distance (px) of a labelled pixel from its column centre (scalar or one
        per column); default: no limit beyond the watershed.
    """
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2:
        raise InputError(f"heatmap: expected a 2-D array, got shape {heat.shape}")
    level = check_range(level, -1e30, 1e30, "level")
    pos = as_points(positions_px, "positions_px")
    h, w = heat.shape
    labels = np.zeros((h, w), dtype=np.int32)
    if len(pos) == 0:
        return labels
    centre = np.rint(pos).astype(np.int64)
    inside = (centre[:, 0] >= 0) & (centre[:, 0] < h) & (centre[:, 1] >= 0) & (centre[:, 1] < w)
    idx = np.flatnonzero(inside)
    markers = np.zeros((h, w), dtype=np.int32)
    # If two columns round to the same pixel the stronger (earlier) keeps it: assign in
    # reverse so the first writer wins.
    markers[centre[idx[::-1], 0], centre[idx[::-1], 1]] = (idx[::-1] + 1).astype(np.int32)
    mask = (heat >= level) | (markers > 0)
    labels = watershed(-heat, markers=markers, mask=mask).astype(np.int32)
    if max_radius_px is not None:
        radii = np.broadcast_to(np.asarray(max_radius_px, dtype=np.float64), (len(pos),))
        rows, cols = np.nonzero(labels)
        lab = labels[rows, cols] - 1
        far = (rows - pos[lab, 0]) ** 2 + (cols - pos[lab, 1]) ** 2 > radii[lab] ** 2
        labels[rows[far], cols[far]] = 0
        # Clipping can split a region; keep only the part connected to its centre.
        labels = _keep_centre_component(labels, centre, idx)
    return labels


def _keep_centre_component(labels: np.ndarray, centre: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Zero every fragment of a label that is not connected to the label's centre pixel."""
    # measure.label separates touching regions of different labels.
    comps, n = measure.label(labels, background=0, connectivity=1, return_num=True)
    if n == 0:
        return labels
    keep_comp = np.zeros(n + 1, dtype=bool)
    good = labels[centre[idx, 0], centre[idx, 1]] == idx + 1
    keep_comp[comps[centre[idx[good], 0], centre[idx[good], 1]]] = True
    out = labels.copy()
    out[~keep_comp[comps]] = 0
    return out
