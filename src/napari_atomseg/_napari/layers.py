"""Results -> napari layer data tuples ``(data, kwargs, layer_type)``; no viewer, no Qt.

Every function here is pure: it takes a compute result (a simulation, a columns table, a
label mask) plus the :class:`Geometry` of the image it belongs to, and returns what
``viewer._add_layer_from_data`` / ``Layer.create`` understand. The widgets only decide
*which* layers to add or update; how a result looks as a layer is decided here, once.

Conventions
-----------
- Layers share the image's ``scale``, ``units``, ``axis_labels`` and ``translate``, so a
  result overlays its image and napari's scale bar is in nm when the image is calibrated.
- Points hold positions in the image's pixel (data) coordinates; the columns' other
  numbers go to ``features`` (never the coordinates themselves: a moved point must not
  disagree with a stale ``y_px``). Points added by hand get ``source = "manual"``. On a
  calibrated image every point also carries the in-plane ``pixel_size_nm`` (points added
  by hand too), so napari's own Points CSV -- the first choice of *Save Selected
  Layers*, which writes data coordinates and features but no scale -- still opens
  calibrated through this plugin's reader (:mod:`napari_atomseg.io.points_table`).
- Labels carrying classes get a direct colormap (label 0 transparent) and a features
  table with an ``index`` column, so napari's status bar shows the class under the
  cursor; ``metadata["class_names"]`` is what the label-TIFF writer stores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from napari_atomseg.io import Calibration
from napari_atomseg.io.points_table import PIXEL_SIZE_FEATURE

LayerData = tuple[Any, dict[str, Any], str]

#: Columns of an atoms table that are coordinates (they become the Points data).
COORDINATE_COLUMNS = ("frame", "y_px", "x_px", "y_nm", "x_nm")
#: Colour of each class name; classes not listed get a colour from ``_FALLBACK``.
CLASS_COLOURS: dict[str, str] = {
    "crystal": "#00ced1",  # as label 0 (segmentation) it is transparent like every 0
    "background": "#808080",
    "vacuum": "#4169e1",
    "amorphous": "#ff8c00",
    "contamination": "#ff8c00",
    "support": "#9acd32",
    "particle": "#ff00ff",
}
_FALLBACK = ("#00ffff", "#ffd700", "#dc143c", "#7fffd4", "#ff69b4")
#: Simulation class masks: 0 vacuum, 1 crystal, 2 support, 3 contamination (scene.py).
SIMULATION_CLASSES = ("vacuum", "crystal", "support", "contamination")


@dataclass(frozen=True)
class Geometry:
    """Where an image lives in napari's world: per-axis scale, units, labels, translate."""

    scale: tuple[float, ...]
    units: tuple[Any, ...]
    axis_labels: tuple[str, ...]
    translate: tuple[float, ...]

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.scale)

    @classmethod
    def from_calibration(cls, cal: Calibration) -> Geometry:
        """The geometry of a new layer of an image with this calibration (no translate)."""
        kw = cal.layer_kwargs()
        return cls(
            tuple(float(s) for s in kw["scale"]),
            tuple(kw["units"]),
            tuple(kw["axis_labels"]),
            (0.0,) * cal.ndim,
        )

    @classmethod
    def from_layer(cls, layer: Any) -> Geometry:
        """The geometry of an existing napari layer (its displayed, non-RGB axes)."""
        return cls(
            tuple(float(s) for s in layer.scale),
            tuple(layer.units),
            tuple(str(a) for a in layer.axis_labels),
            tuple(float(t) for t in layer.translate),
        )

    def layer_kwargs(self) -> dict[str, Any]:
        """``scale``, ``units``, ``axis_labels`` and ``translate`` for a napari layer."""
        return {
            "scale": self.scale,
            "units": self.units,
            "axis_labels": self.axis_labels,
            "translate": self.translate,
        }

    def calibration(self) -> Calibration:
        """The :class:`Calibration` these axes describe (``px`` axes are uncalibrated)."""
        return Calibration.from_napari(self.scale, self.units, self.axis_labels)

    def with_pixel_size_nm(self, pixel_size_nm: float) -> Geometry:
        """The same axes with the last two set to ``pixel_size_nm`` nm."""
        scale = (*self.scale[:-2], float(pixel_size_nm), float(pixel_size_nm))
        units = (*self.units[:-2], "nm", "nm")
        return Geometry(scale, units, self.axis_labels, self.translate)


def _metadata_calibration(geometry: Geometry) -> dict[str, Any]:
    cal = geometry.calibration()
    return {"calibration": cal.to_dict(), "pixel_size_nm": cal.pixel_size_nm}


def point_size_px(atoms: pd.DataFrame, default_px: float = 4.0) -> float:
    """Marker diameter in pixels: half the median nearest-neighbour spacing (>= 1.5 px)."""
    if "nn_spacing_px" in atoms and len(atoms):
        spacing = atoms["nn_spacing_px"].to_numpy(dtype=np.float64)
        spacing = spacing[np.isfinite(spacing)]
        if spacing.size:
            return float(max(1.5, 0.5 * np.median(spacing)))
    return float(default_px)


def _features(atoms: pd.DataFrame, pixel_size_nm: float | None) -> pd.DataFrame:
    drop = [c for c in COORDINATE_COLUMNS if c in atoms.columns]
    feats = atoms.drop(columns=drop).reset_index(drop=True)
    feats["source"] = pd.Categorical(["model"] * len(feats), categories=["model", "manual"])
    return _with_pixel_size(feats, pixel_size_nm)


def _with_pixel_size(features: pd.DataFrame, pixel_size_nm: float | None) -> pd.DataFrame:
    """``features`` with the constant ``pixel_size_nm`` column (calibrated images only)."""
    if pixel_size_nm is not None:
        features[PIXEL_SIZE_FEATURE] = float(pixel_size_nm)
    return features


def _source_categorical(features: pd.DataFrame) -> pd.DataFrame:
    """A ``source`` column read back from a table becomes the model / manual categories;
    a table without one is the model's when it has the model's ``confidence``, else
    placed by hand (ImageJ, napari)."""
    if "source" not in features:
        value = "model" if "confidence" in features else "manual"
        features["source"] = pd.Categorical([value] * len(features), ["model", "manual"])
        return features
    values = features["source"].astype(str)
    if set(values) <= {"model", "manual"}:
        features["source"] = pd.Categorical(values, categories=["model", "manual"])
    return features


def _feature_defaults(features: pd.DataFrame) -> dict[str, Any]:
    """What a point added by hand gets: NaN numbers, False flags, ``source = manual``,
    and the layer's pixel size."""
    out: dict[str, Any] = {}
    for name, col in features.items():
        if name == "source":
            out[name] = "manual"
        elif name == PIXEL_SIZE_FEATURE and len(col):
            out[name] = float(col.iloc[0])
        elif col.dtype == bool:
            out[name] = False
        elif col.dtype.kind in "iu":
            out[name] = -1
        elif col.dtype.kind == "f":
            out[name] = np.nan
        else:
            out[name] = ""
    return out


def atoms_points(
    atoms: pd.DataFrame,
    geometry: Geometry,
    name: str,
    metadata: Mapping[str, Any] | None = None,
) -> LayerData:
    """A Points layer of atomic columns (``y_px, x_px`` [+ ``frame`` for stacks]).

    ``atoms`` is a :func:`napari_atomseg.find_atoms` table; for a 3-D stack it also has an
    integer ``frame`` column (the index along the first axis). Positions stay in pixels;
    the layer takes the image's scale, so it overlays the image in nm.
    """
    if geometry.ndim not in (2, 3):
        raise ValueError(f"atoms_points: expected a 2-D or 3-D image, got {geometry.ndim}-D")
    cols = ["y_px", "x_px"] if geometry.ndim == 2 else ["frame", "y_px", "x_px"]
    missing = [c for c in cols if c not in atoms.columns]
    if missing:
        raise ValueError(f"atoms_points: table lacks column(s) {missing}")
    data = atoms[cols].to_numpy(dtype=np.float64).reshape(-1, geometry.ndim)
    features = _features(atoms, geometry.calibration().pixel_size_nm)
    return _points(data, features, point_size_px(atoms), geometry, name, metadata)


def table_points(
    points_px: np.ndarray,
    features: pd.DataFrame,
    geometry: Geometry,
    name: str,
    metadata: Mapping[str, Any] | None = None,
) -> LayerData:
    """A Points layer of a point table read from a file (positions in pixels, the
    table's other columns as features), drawn as :func:`atoms_points` draws columns."""
    features = _source_categorical(features.reset_index(drop=True).copy())
    if PIXEL_SIZE_FEATURE not in features:
        features = _with_pixel_size(features, geometry.calibration().pixel_size_nm)
    size = point_size_px(features)
    data = np.asarray(points_px, dtype=np.float64).reshape(-1, geometry.ndim)
    return _points(data, features, size, geometry, name, metadata)


def _points(
    data: np.ndarray,
    features: pd.DataFrame,
    size: float,
    geometry: Geometry,
    name: str,
    metadata: Mapping[str, Any] | None,
) -> LayerData:
    meta = {**_metadata_calibration(geometry), "point_size_px": size, **(metadata or {})}
    kwargs = {
        "name": name,
        "features": features,
        "feature_defaults": _feature_defaults(features),
        "size": size,
        "symbol": "disc",
        "face_color": "transparent",
        "border_color": "#ffd700",
        "border_width": 0.15,
        "border_width_is_relative": True,
        "metadata": meta,
        **geometry.layer_kwargs(),
    }
    return data, kwargs, "points"


def class_colormap(class_names: Sequence[str]) -> Any:
    """napari direct label colormap: label i -> colour of ``class_names[i]``."""
    from napari.utils.colormaps import DirectLabelColormap

    colours: dict[int | None, Any] = {None: "#00000000", 0: "#00000000"}
    spare = iter(_FALLBACK * 4)
    for value, cls_name in enumerate(class_names):
        if value == 0:
            continue  # label 0 is always transparent (napari's background)
        colours[value] = CLASS_COLOURS.get(cls_name) or next(spare)
    return DirectLabelColormap(color_dict=colours)


def class_labels(
    labels: np.ndarray,
    class_names: Sequence[str],
    geometry: Geometry,
    name: str,
    metadata: Mapping[str, Any] | None = None,
    opacity: float = 0.5,
) -> LayerData:
    """A Labels layer of classes: value i = ``class_names[i]`` (colours, names, fractions)."""
    names = tuple(str(n) for n in class_names)
    data = np.asarray(labels)
    counts = np.bincount(data.ravel().astype(np.int64), minlength=len(names))[: len(names)]
    fractions = counts / max(1, data.size)
    features = pd.DataFrame(
        {"index": np.arange(len(names)), "class": names, "area_fraction": fractions}
    )
    meta = {
        **_metadata_calibration(geometry),
        "class_names": dict(enumerate(names)),
        "class_fractions": {n: float(f) for n, f in zip(names, fractions)},
        **(metadata or {}),
    }
    kwargs = {
        "name": name,
        "colormap": class_colormap(names),
        "features": features,
        "opacity": opacity,
        "metadata": meta,
        **geometry.layer_kwargs(),
    }
    return data, kwargs, "labels"


def instance_labels(
    labels: np.ndarray,
    geometry: Geometry,
    name: str,
    metadata: Mapping[str, Any] | None = None,
    visible: bool = False,
) -> LayerData:
    """A Labels layer of column instances (label i + 1 = row i of the columns table)."""
    kwargs = {
        "name": name,
        "opacity": 0.4,
        "visible": visible,
        "metadata": {**_metadata_calibration(geometry), **(metadata or {})},
        **geometry.layer_kwargs(),
    }
    return np.asarray(labels), kwargs, "labels"


def simulation_layers(result: Any, name: str = "simulated") -> list[LayerData]:
    """A :class:`napari_atomseg.simulation.SimulationResult` as Image + Points + Labels.

    Image: the noisy micrograph (parameters in ``metadata``). Points: every ground-truth
    column with its ``z_sum, n_atoms, elements, visible, region`` features (invisible ones
    drawn faint). Labels (hidden): the class mask (vacuum / crystal / support /
    contamination) and the column instance labels.
    """
    cal = Calibration.from_pixel_size_nm(result.pixel_size_nm)
    geometry = Geometry.from_calibration(cal)
    params = result.parameters.to_dict()
    common = {"simulation_parameters": params, "column_spacing_nm": result.column_spacing_nm}
    image = result.image
    lo, hi = np.percentile(image, [0.5, 99.5])
    image_kwargs = {
        "name": name,
        "colormap": "gray",
        "contrast_limits": (float(lo), float(hi) if hi > lo else float(lo) + 1.0),
        "metadata": {**_metadata_calibration(geometry), **common},
        **geometry.layer_kwargs(),
    }
    layers: list[LayerData] = [(image, image_kwargs, "image")]

    columns = result.columns
    spacing_px = result.column_spacing_nm / result.pixel_size_nm
    size = float(max(1.5, 0.5 * spacing_px)) if np.isfinite(spacing_px) else 4.0
    data, kwargs, _ = atoms_points(columns, geometry, f"{name} ground truth", common)
    visible = (
        columns["visible"].to_numpy(bool) if "visible" in columns else np.ones(len(columns), bool)
    )
    kwargs.update(
        size=size,
        border_color=np.where(visible[:, None], [[0.0, 1.0, 0.5, 1.0]], [[0.6, 0.6, 0.6, 0.5]])
        if len(columns)
        else "#00ff80",
        visible=False,
    )
    kwargs["metadata"]["point_size_px"] = size
    layers.append((data, kwargs, "points"))
    classes = class_labels(
        result.masks["classes"], SIMULATION_CLASSES, geometry, f"{name} classes", common
    )
    classes[1]["visible"] = False  # the crystal class would cover the whole image
    layers.append(classes)
    if "column_labels" in result.masks:
        layers.append(
            instance_labels(result.masks["column_labels"], geometry, f"{name} column labels")
        )
    return layers
