"""Lattice results <-> napari layers; pure functions, no viewer, no Qt.

- :func:`points_table` -- a Points layer (+ its image) -> the table ``analyse_lattice``
  takes: positions in the image's pixels, the layer's features as columns;
- :func:`shapes_mask` -- a Shapes layer -> the boolean reference mask on the image grid;
- :func:`sublattice_colours` -- RGBA per point from its ``sublattice``;
- :func:`map_layers` -- strain / displacement maps -> Image layer data, calibrated, with a
  diverging colormap centred on zero;
- :func:`vector_layer` -- displacements -> a Vectors layer drawn ``scale`` times longer
  than they are (the factor in its name and metadata).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgba

from napari_atomseg.errors import InputError
from napari_atomseg.lattice.figure import arrow_scale, sublattice_colour
from napari_atomseg.lattice.maps import LatticeMaps, symmetric_limits

from .layers import Geometry, LayerData

#: Diverging colormap of the maps (blue negative, white zero, red positive).
MAP_COLORMAP = "RdBu_r"
#: Maps shown when added (the others are added hidden).
VISIBLE_MAPS = ("strain_xx",)


def _world(layer: Any, data: np.ndarray) -> np.ndarray:
    return (
        data * np.asarray(layer.scale)[-data.shape[1] :]
        + np.asarray(layer.translate)[-data.shape[1] :]
    )


def to_image_px(layer: Any, image_layer: Any | None, data: np.ndarray) -> np.ndarray:
    """(N, 2) row, col in the image's pixels (the layer's own data frame without image)."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] < 2:
        raise InputError(f"layer {layer.name!r}: needs 2-D positions")
    if image_layer is None:
        return data[:, -2:]
    world = _world(layer, data)[:, -2:]
    scale = np.asarray(image_layer.scale, dtype=np.float64)[-2:]
    translate = np.asarray(image_layer.translate, dtype=np.float64)[-2:]
    return (world - translate) / scale


def points_table(points: Any, image_layer: Any | None) -> pd.DataFrame:
    """The columns of a Points layer as a table (``y_px, x_px`` + its features)."""
    if len(points.data) == 0:
        raise InputError(f"points layer {points.name!r} is empty")
    yx = to_image_px(points, image_layer, np.asarray(points.data))
    table = pd.DataFrame({"y_px": yx[:, 0], "x_px": yx[:, 1]})
    features = points.features.reset_index(drop=True)
    for name in features.columns:
        if name not in table.columns and name not in ("y_nm", "x_nm", "frame"):
            table[name] = features[name].to_numpy()
    return table


def shapes_mask(shapes: Any, image_layer: Any | None, shape_px: tuple[int, int]) -> np.ndarray:
    """Pixels of the image inside any polygon, rectangle or ellipse of a Shapes layer."""
    from skimage.draw import ellipse, polygon

    mask = np.zeros(shape_px, dtype=bool)
    for kind, verts in zip(shapes.shape_type, shapes.data):
        v = to_image_px(shapes, image_layer, np.asarray(verts))
        if kind == "ellipse":
            centre = v.mean(axis=0)
            r = 0.5 * np.ptp(v, axis=0)
            rr, cc = ellipse(centre[0], centre[1], r[0], r[1], shape=shape_px)
        elif kind in ("rectangle", "polygon"):
            rr, cc = polygon(v[:, 0], v[:, 1], shape=shape_px)
        else:
            continue
        mask[rr, cc] = True
    if not mask.any():
        raise InputError(
            f"shapes layer {shapes.name!r}: draw a rectangle, polygon or ellipse over the "
            "unstrained region"
        )
    return mask


def sublattice_colours(sublattice: np.ndarray) -> np.ndarray:
    """(N, 4) RGBA per point from its sublattice (-1, unassigned, grey)."""
    palette = {int(m): to_rgba(sublattice_colour(int(m))) for m in np.unique(sublattice)}
    return np.array([palette[int(m)] for m in sublattice], dtype=np.float32)


def map_layers(
    maps: LatticeMaps, geometry: Geometry, prefix: str, metadata: dict[str, Any]
) -> list[LayerData]:
    """One calibrated Image layer per map (diverging colormap centred on zero)."""
    scale = (*geometry.scale[-2:],)
    scale = tuple(s * maps.step_px for s in scale)
    translate = geometry.translate[-2:]
    out = []
    for name, data in maps.maps.items():
        lo, hi = symmetric_limits(data)
        kwargs = {
            "name": f"{prefix} {name}",
            "scale": scale,
            "translate": translate,
            "units": geometry.units[-2:],
            "colormap": MAP_COLORMAP,
            "contrast_limits": (lo, hi),
            "opacity": 0.7,
            "blending": "translucent",
            "visible": name in VISIBLE_MAPS,
            "metadata": {**metadata, "quantity": name, "map_step_px": maps.step_px},
        }
        out.append((data, kwargs, "image"))
    return out


def vector_layer(
    table: pd.DataFrame,
    geometry: Geometry,
    name: str,
    scale: float | None = None,
    metadata: dict[str, Any] | None = None,
) -> tuple[LayerData | None, float]:
    """Displacements as a Vectors layer in the image's pixel frame, ``scale`` x longer
    (auto: see :func:`~napari_atomseg.lattice.figure.arrow_scale`). None when there are
    none."""
    ps = table.attrs.get("pixel_size_nm")
    if "displacement_x_pm" in table and ps:
        disp = table[["displacement_y_pm", "displacement_x_pm"]].to_numpy(np.float64) / (
            1000.0 * ps
        )
        unit, per_px = "pm", 1000.0 * ps
    elif "displacement_x_px" in table:
        disp = table[["displacement_y_px", "displacement_x_px"]].to_numpy(np.float64)
        unit, per_px = "px", 1.0
    else:
        return None, 1.0
    ok = np.isfinite(disp).all(axis=1)
    if not ok.any():
        return None, 1.0
    spacing = float(np.nanmedian(table.get("nn_spacing_px", pd.Series([20.0]))))
    sub = table["sublattice"].to_numpy()
    scale = float(scale) if scale else arrow_scale(disp, spacing, sub)
    pos = table[["y_px", "x_px"]].to_numpy(np.float64)[ok]
    data = np.stack([pos, disp[ok]], axis=1)
    features = pd.DataFrame(
        {
            "sublattice": table["sublattice"].to_numpy()[ok],
            f"displacement_y_{unit}": disp[ok, 0] * per_px,
            f"displacement_x_{unit}": disp[ok, 1] * per_px,
        }
    )
    meta = {
        **(metadata or {}),
        "arrow_scale": scale,
        "unit": unit,
        "note": f"arrows are drawn {scale:.0f}x longer than the displacements",
    }
    kwargs = {
        "name": f"{name} (arrows x{scale:.0f})",
        "length": scale,
        "vector_style": "arrow",
        "edge_width": max(0.5, 0.06 * spacing),
        "edge_color": "#ffd700",
        "features": features,
        "metadata": meta,
        **geometry.layer_kwargs(),
    }
    return (data, kwargs, "vectors"), scale
