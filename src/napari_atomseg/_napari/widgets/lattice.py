"""The "Analyse lattice" widget: Points (+ Image, + a Shapes reference) -> lattice layers.

The analysis (:func:`napari_atomseg.lattice.api.iter_analyse_lattice`, then the maps) runs
in a worker; the results go into layers: the Points layer's features gain the lattice
columns (``sublattice``, ``lattice_h``, strains, displacements, intensities) and its
points are coloured by sublattice; the strain and displacement maps become calibrated
Image layers (diverging colormap centred on zero); the displacements a Vectors layer
drawn N x longer (N in its name). The intensity histogram is drawn from the Points
features. To re-assign columns by hand, select them and press "Set sublattice of
selected"; the next run keeps the points' sublattice column (unless unticked).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
)
from napari.layers import Shapes

if TYPE_CHECKING:
    import napari.viewer

from napari_atomseg._progress import Progress
from napari_atomseg.errors import AtomsegError, InputError
from napari_atomseg.lattice.api import iter_analyse_lattice
from napari_atomseg.lattice.maps import lattice_maps
from napari_atomseg.lattice.options import SCAN_CORRECTIONS, LatticeOptions
from napari_atomseg.lattice.regions import region_means

from ..image_source import layer_pixel_size_nm
from ..lattice_layers import (
    map_layers,
    points_table,
    shapes_mask,
    sublattice_colours,
    vector_layer,
)
from ..layers import Geometry
from ._common import layer_combo
from ._runner import RunPanel, notify_error
from ._viewer import add_or_update

_HISTOGRAM_BINS = 60
#: Feature columns the analysis writes (stale values are never a hand-added point's default).
_LATTICE_PREFIXES = (
    "lattice_", "strain_", "rotation_", "dilatation", "displacement_", "intensity_",
    "gaussian_", "voronoi_",
)  # fmt: skip


def lattice_steps(
    table: pd.DataFrame,
    image: np.ndarray | None,
    pixel_size_nm: float | None,
    reference: Any,
    options: LatticeOptions,
    shape: tuple[int, int] | None,
) -> Generator[Progress, None, tuple[pd.DataFrame, Any]]:
    """The analysis, then its maps (generator yielding Progress)."""
    result = yield from iter_analyse_lattice(
        table, image, pixel_size_nm, reference, options=options
    )
    yield Progress(5, 6, "maps")
    maps = lattice_maps(result, shape, pixel_size_nm=result.attrs.get("pixel_size_nm"))
    return result, maps


def _shapes_combo(viewer: Any) -> ComboBox:
    def choices(_widget: Any = None) -> list[Any]:
        """The "(whole field)" entry, then (name, layer) of every Shapes layer."""
        return [("(whole field)", None)] + [
            (layer.name, layer) for layer in viewer.layers if isinstance(layer, Shapes)
        ]

    combo = ComboBox(choices=choices, label="reference region", nullable=True)
    viewer.layers.events.inserted.connect(lambda _e=None: combo.reset_choices())
    viewer.layers.events.removed.connect(lambda _e=None: combo.reset_choices())
    return combo


class AnalyseLatticeWidget(Container):
    """Dock widget: sublattices, strain maps, polarisation vectors, intensities."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.points = layer_combo(viewer, "points", "columns (points)")
        self.image = layer_combo(viewer, "image", "image", optional=True)
        self.reference = _shapes_combo(viewer)
        self.reference_sublattice = SpinBox(
            value=-1, min=-1, max=15, label="reference sublattice",
            tooltip="-1: the brightest; strains and displacements refer to its cell",
        )  # fmt: skip
        self.neighbour_cells = SpinBox(
            value=1, min=1, max=3, label="neighbour cells",
            tooltip="same-sublattice neighbours within this many cells enter each column's "
            "strain: 2 halves the noise at half the resolution",
        )  # fmt: skip
        self.scan_correction = ComboBox(
            choices=SCAN_CORRECTIONS, value="none", label="scan correction",
            tooltip="correct scan distortion from the reference region taken as perfect "
            "(nonlinear: also drift that changes during the frame)",
        )  # fmt: skip
        self.keep_sublattices = CheckBox(
            value=True, text="keep the points' sublattice column (hand edits)"
        )
        self.vector_scale = FloatSpinBox(
            value=0.0, min=0.0, max=10000.0, step=5.0, label="arrow scale",
            tooltip="0: automatic (typical displacements drawn a third of the spacing)",
        )  # fmt: skip
        self.run_button = PushButton(text="Analyse lattice")
        self.panel = RunPanel()
        self.summary = Label(value="")
        self.summary.native.setWordWrap(True)
        self.assign_to = SpinBox(value=0, min=-1, max=15, label="sublattice")
        self.assign_button = PushButton(text="Set sublattice of selected points")
        self.histogram = _Histogram()
        super().__init__(
            widgets=[
                self.points,
                self.image,
                self.reference,
                self.reference_sublattice,
                self.neighbour_cells,
                self.scan_correction,
                self.keep_sublattices,
                self.vector_scale,
                self.run_button,
                self.panel,
                self.summary,
                Label(value="<b>Hand re-assignment</b>"),
                self.assign_to,
                self.assign_button,
                self.histogram,
            ]
        )
        self.run_button.changed.connect(self.run)
        self.assign_button.changed.connect(self.assign_selected)

    # --- settings ----------------------------------------------------------------------
    def options(self) -> LatticeOptions:
        """The :class:`LatticeOptions` the form sets (reference sublattice -1: automatic)."""
        ref = int(self.reference_sublattice.value)
        return LatticeOptions(
            reference_sublattice=None if ref < 0 else ref,
            neighbour_cells=int(self.neighbour_cells.value),
            scan_correction=str(self.scan_correction.value),
            use_table_sublattices=bool(self.keep_sublattices.value),
        )

    def _inputs(self) -> tuple[Any, Any, pd.DataFrame, Any, float | None, Any, Geometry]:
        points, image_layer = self.points.value, self.image.value
        if points is None:
            raise InputError("Analyse lattice: choose the Points layer of the columns first")
        if image_layer is not None and (image_layer.ndim != 2 or image_layer.rgb):
            raise InputError(
                f"Analyse lattice: {image_layer.name!r} is not a 2-D grey-scale image; "
                "pick one frame"
            )
        table = points_table(points, image_layer)
        source = image_layer if image_layer is not None else points
        geometry = Geometry(
            tuple(float(s) for s in source.scale[-2:]),
            tuple(source.units[-2:]),
            tuple(str(a) for a in source.axis_labels[-2:]),
            tuple(float(t) for t in source.translate[-2:]),
        )
        if image_layer is not None:
            data = image_layer.data[0] if image_layer.multiscale else image_layer.data
            image = np.asarray(data)
            pixel_size = layer_pixel_size_nm(image_layer)
            shape = image.shape
        else:
            image = None
            pixel_size = geometry.calibration().pixel_size_nm
            pos = table[["y_px", "x_px"]].to_numpy()
            shape = (int(np.ceil(pos[:, 0].max())) + 2, int(np.ceil(pos[:, 1].max())) + 2)
        reference = None
        if self.reference.value is not None:
            reference = shapes_mask(self.reference.value, image_layer, shape)
        return points, image_layer, table, image, pixel_size, (reference, shape), geometry

    # --- run ---------------------------------------------------------------------------
    def run(self) -> Any:
        """Analyse the chosen Points layer; returns the worker (None if not started)."""
        try:
            points, _, table, image, ps, (reference, shape), geometry = self._inputs()
            return self.panel.start(
                lattice_steps,
                table,
                image,
                ps,
                reference,
                self.options(),
                shape,
                on_result=lambda res: self._show(points, geometry, reference, res),
            )
        except AtomsegError as exc:
            notify_error(exc)
            self.panel.status.value = f"not started: {exc}"[:200]
            return None

    def _show(self, points: Any, geometry: Geometry, reference: Any, result: Any) -> str:
        table, maps = result
        self._update_points(points, table)
        meta = {
            "source_layer": points.name,
            "cell": table.attrs["cell"],
            "reference": table.attrs["reference"],
            "scan_distortion": {
                k: v for k, v in table.attrs["scan_distortion"].items() if k != "correction"
            },
        }
        for layer_data in map_layers(maps, geometry, points.name, meta):
            add_or_update(self._viewer, layer_data)
        scale = float(self.vector_scale.value) or None
        vectors, used = vector_layer(table, geometry, f"{points.name} displacements", scale, meta)
        if vectors is not None:
            old = [ly for ly in self._viewer.layers if ly.name.startswith(f"{points.name} displ")]
            for ly in old:
                if ly.__class__.__name__ == "Vectors":
                    self._viewer.layers.remove(ly)
            from napari.layers import Layer

            self._viewer.add_layer(Layer.create(*vectors))
        # The columns stay on top of the maps they are coloured over.
        self._viewer.layers.move(self._viewer.layers.index(points), len(self._viewer.layers))
        self.histogram.draw(points.features)
        return self._summary_text(table, reference, used if vectors is not None else None)

    def _update_points(self, points: Any, table: pd.DataFrame) -> None:
        features = points.features.reset_index(drop=True).copy()
        for name in table.columns:
            if name not in ("y_px", "x_px"):
                features[name] = table[name].to_numpy()
        before = points.feature_defaults
        added = set(table.columns) - set(before.columns)
        points.features = features
        # A point added by hand starts unassigned, with no lattice values.
        points.feature_defaults = _feature_defaults(features, before, added)
        colours = sublattice_colours(table["sublattice"].to_numpy())
        points.face_color = colours
        points.border_color = colours
        points.metadata["lattice"] = {
            k: v for k, v in table.attrs.items() if k not in ("sublattice_detection",)
        }

    def _summary_text(self, table: pd.DataFrame, reference: Any, arrows: float | None) -> str:
        cell = table.attrs["cell"]
        lines = [
            f"{len(table.attrs['sublattices'])} sublattices; cell |a| {cell['a']:.4g}, "
            f"|b| {cell['b']:.4g} {cell['unit']}, {cell['angle_deg']:.2f} deg; reference: "
            f"{table.attrs['reference']}"
        ]
        dist = table.attrs["scan_distortion"]
        if "slow_scan_scale" in dist:
            lines.append(
                f"scan distortion ({dist['symmetry']}): slow-scan scale "
                f"{dist['slow_scan_scale']:+.2%}, shear {dist['scan_shear_deg']:+.2f} deg"
            )
        disp_cols = [c for c in table.columns if c.startswith("displacement_x_")]
        if disp_cols and arrows is not None:
            means = region_means(table, reference).set_index("sublattice")
            col = disp_cols[0]
            unit = col.rsplit("_", 1)[-1]
            parts = []
            for m, row in means.iterrows():
                x, y = row.get(f"{col}_mean"), row.get(f"displacement_y_{unit}_mean")
                if x is not None and np.isfinite(x):
                    parts.append(f"{m}: ({x:+.1f}, {y:+.1f}) {unit}")
            lines.append(
                f"mean displacement (x, y) in the reference region: {'; '.join(parts)}; "
                f"arrows drawn x{arrows:.0f}"
            )
        lines += [f"! {w}" for w in table.attrs["warnings"]]
        return "\n".join(lines)

    # --- hand re-assignment -----------------------------------------------------------
    def assign_selected(self) -> int:
        """Set the sublattice of the selected points; returns how many were changed."""
        points = self.points.value
        if points is None or not points.selected_data:
            notify_error(InputError("select points on the chosen Points layer first"))
            return 0
        features = points.features.reset_index(drop=True).copy()
        if "sublattice" not in features:
            features["sublattice"] = -1
        chosen = sorted(points.selected_data)
        values = features["sublattice"].to_numpy(dtype=np.int64).copy()
        values[chosen] = int(self.assign_to.value)
        features["sublattice"] = values
        points.features = features
        points.face_color = sublattice_colours(values)
        points.border_color = sublattice_colours(values)
        return len(chosen)


def _feature_defaults(features: pd.DataFrame, before: Any, added: set[str]) -> dict[str, Any]:
    """Defaults for hand-added points: the layer's own for its own columns, unassigned /
    NaN / False for the analysis's (``added`` and every lattice column)."""
    known = {}
    if before is not None and len(before):
        known = {name: before[name].iloc[0] for name in before.columns}
    out: dict[str, Any] = {}
    for name, col in features.items():
        if name == "sublattice":
            out[name] = -1
        elif name in known and name not in added and not name.startswith(_LATTICE_PREFIXES):
            out[name] = known[name]
        elif col.dtype == bool:
            out[name] = False
        elif col.dtype.kind in "iu":
            out[name] = -1
        elif col.dtype.kind == "f":
            out[name] = np.nan
        else:
            out[name] = ""
    return out


class _Histogram(Container):
    """Intensity histogram per sublattice, drawn from a Points layer's features."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        super().__init__(labels=False)
        self.figure = Figure(figsize=(3.5, 2.2), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(180)
        self.native.layout().addWidget(self.canvas)
        self.quantity = ""

    def draw(self, features: pd.DataFrame) -> str:
        """Histogram of ``intensity_integrated`` (else ``intensity``) per sublattice."""
        from napari_atomseg.lattice.figure import sublattice_colour

        self.figure.clear()
        ax = self.figure.add_subplot(111)
        name = next(
            (
                c
                for c in ("intensity_integrated", "intensity")
                if c in features and np.isfinite(features[c].to_numpy(np.float64)).any()
            ),
            "",
        )
        self.quantity = name
        if name:
            values = features[name].to_numpy(np.float64)
            sub = features.get("sublattice", pd.Series(np.zeros(len(values), int)))
            sub = sub.to_numpy()
            ok = np.isfinite(values)
            bins = np.histogram_bin_edges(values[ok], bins=_HISTOGRAM_BINS)
            for m in sorted(set(sub[ok])):
                ax.hist(values[ok & (sub == m)], bins=bins, alpha=0.6,
                        color=sublattice_colour(int(m)), label=str(m))  # fmt: skip
            ax.legend(title="sublattice", fontsize=6, title_fontsize=6)
            ax.set_xlabel(name, fontsize=7)
            ax.tick_params(labelsize=6)
        self.canvas.draw_idle()
        return name
