"""The "Segment regions" widget: Image layer -> class Labels (+ points clean-up, sorting).

Segmentation (:func:`napari_atomseg.segmentation.api.iter_segment`) runs in a worker with the
method (``auto`` -- the default everywhere: the U-Net checked against the Bragg filter --,
the U-Net alone or the Bragg filter), task and the few parameters worth touching; the
result is a Labels layer with named classes (napari shows the class under the cursor),
the area fraction of each class in its features and in the status line, and what to
check (fall-backs, inputs outside the training range) under it and as a notification.
For particles a second Labels layer holds one label per particle (its table -- area,
equivalent diameter, centroid -- as the layer's features) and the widget plots the size
histogram. On an uncalibrated layer the pixel size is the layer's shared estimate
(:mod:`napari_atomseg._napari.scale_panel`), the one Find atoms uses too. Live preview
re-runs the segmentation (debounced) when a parameter changes. The Labels layer can be
painted over to correct it; "Apply to points" then flags (feature ``in_<class>``) or drops
the Points on the flagged class using the layer as it is now. The folder-sorting section
(:class:`~napari_atomseg._napari.widgets.sorting.SortFolderWidget`) uses the same settings.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
)
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QTimer

if TYPE_CHECKING:
    import napari.viewer

from napari_atomseg._progress import Progress, as_part
from napari_atomseg.errors import AtomsegError, InputError
from napari_atomseg.segmentation import api as seg_api

from ..image_source import (
    Frame,
    current_frame_index,
    image_frames,
    layer_geometry,
)
from ..layers import Geometry, class_labels
from ..masking import drop_points, flag_points, points_on_class
from ..scale_panel import ScalePanel
from ._common import DockContainer, Fold, layer_combo, model_names
from ._runner import RunPanel, notify_error
from ._viewer import add_or_update, find_layer
from .size_histogram import SizeHistogram
from .sorting import SortFolderWidget

PREVIEW_DELAY_MS = 300
#: The model choice that means "the task's shipped default".
TASK_DEFAULT_MODEL = "(task default)"
#: What the flagged class is called in the points' feature column, per task.
FLAG_FEATURE = {"contamination": "in_contamination", "particles": "in_particle"}
#: Default "min region" and its unit per method: segmentation.api's clean-up defaults (the
#: Bragg value in lattice periods was chosen by cross-validation, the U-Net's is in nm).
MIN_REGION = {"bragg": (4.0, "lattice periods"), "unet": (1.0, "nm"), "auto": (1.0, "nm")}


def segment_steps(
    frames: Sequence[Frame], pixel_size_nm: float | None, task: str, method: str, **options: Any
) -> Generator[Progress, None, list[tuple[int | None, Any]]]:
    """Segment every frame (generator yielding Progress)."""
    out = []
    for k, frame in enumerate(frames):
        steps = seg_api.iter_segment(frame.data, pixel_size_nm, task, method, **options)
        result = yield from as_part(steps, k, len(frames), "frame")
        out.append((frame.index, result))
    return out


def stack_instances(
    results: Sequence[tuple[int | None, Any]], shape: tuple[int, ...]
) -> tuple[np.ndarray, Any]:
    """One label per particle over every frame (labels stay unique across frames) and the
    particle table with a ``frame`` column."""
    import pandas as pd

    if len(shape) == 2:
        result = results[0][1]
        return result.instances, result.particles.assign(frame=0)
    out = np.zeros(shape, dtype=np.int32)
    tables, offset = [], 0
    for index, result in results:
        inst = result.instances
        out[index] = np.where(inst > 0, inst + offset, 0)
        tables.append(
            result.particles.assign(label=result.particles["label"] + offset, frame=index)
        )
        offset += int(inst.max())
    return out, pd.concat(tables, ignore_index=True)


def particle_labels(
    instances: np.ndarray, table: Any, geometry: Geometry, name: str, meta: dict
) -> Any:
    """A Labels layer description of the particle instances (features: the table)."""
    from ..layers import instance_labels

    layer_meta = {**meta, "n_particles": len(table)}
    data, kwargs, layer_type = instance_labels(instances, geometry, name, layer_meta, visible=True)
    # napari matches Labels features to label values by their "index" column.
    kwargs["features"] = table.assign(index=table["label"])
    return data, kwargs, layer_type


def stack_labels(results: Sequence[tuple[int | None, Any]], shape: tuple[int, ...]) -> np.ndarray:
    """The labels of ``(frame index, SegmentationResult)`` pairs as one uint8 array of
    ``shape`` (a 2-D image's own labels; frames not segmented stay 0)."""
    if len(shape) == 2:
        return results[0][1].labels
    labels = np.zeros(shape, dtype=np.uint8)
    for index, result in results:
        labels[index] = result.labels
    return labels


class SegmentWidget(DockContainer):
    """Dock widget: contamination / particle masks, points clean-up and folder sorting."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.image = layer_combo(viewer, "image", "image")
        self.all_frames = CheckBox(value=False, text="every frame of a stack")
        self.task = ComboBox(choices=tuple(seg_api.TASK_CLASSES), label="task")
        self.method = ComboBox(
            choices=seg_api.METHODS, value=seg_api.DEFAULT_METHOD, label="method",
            tooltip="auto: the U-Net, checked against the Bragg filter (which takes over on "
            "a crystal the network gets grossly wrong); unet: no fall-back; bragg: no model",
        )  # fmt: skip
        self.model = ComboBox(choices=self._models, label="model")
        self.model_card = FileEdit(mode="r", filter="*.yaml", label="or model card", value="")
        self.pixel_size_nm = FloatSpinBox(
            value=0.0, min=0.0, max=100.0, step=0.001, label="pixel size (nm)",
            tooltip="0 = the layer's calibration (the U-Net estimates it when unknown)",
        )  # fmt: skip
        self.mask_threshold = FloatSpinBox(
            value=1.5, min=0.1, max=20.0, step=0.1, label="residual threshold",
            tooltip="Bragg, contamination: residual level counted as amorphous "
            "(x the clean-lattice level)",
        )  # fmt: skip
        self.particle_fraction = FloatSpinBox(
            value=0.5, min=0.01, max=0.99, step=0.05, label="lattice fraction",
            tooltip="Bragg, particles: share of lattice signal that makes a pixel particle",
        )  # fmt: skip
        self.min_region = FloatSpinBox(
            value=4.0, min=0.0, max=1000.0, step=0.5, label="min region",
            tooltip="regions smaller than a square of this side are absorbed",
        )  # fmt: skip
        self.live_preview = CheckBox(value=False, text="live preview (re-segment on change)")
        self.run_button = PushButton(text="Segment")
        self.panel = RunPanel()
        self.fractions = Label(value="")
        self.warnings = Label(value="", visible=False)  # shown when there are warnings
        self.scale = ScalePanel(self.image)
        self.histogram = SizeHistogram()
        self.points = layer_combo(viewer, "points", "points", optional=True)
        self.points_action = ComboBox(choices=("flag", "drop"), label="points on class")
        self.apply_button = PushButton(text="Apply to points")
        self.sorting = SortFolderWidget(self.sorting_settings)
        self.scale_fold = Fold("pixel-size estimate", [self.scale])
        # Model and clean-up settings, set once and left: folded so two docks fit 1000 px.
        tuning = [self.model, self.model_card, self.mask_threshold, self.particle_fraction]
        self.settings_fold = Fold(
            "model, clean-up", [*tuning, self.min_region], on_toggle=self._sync
        )
        # Sections used after segmenting, folded so two docks fit a 1000 px screen.
        points_section = [self.points, self.points_action, self.apply_button]
        self.points_fold = Fold("Atomic columns on the flagged class", points_section)
        self.sorting_fold = Fold("Sort a folder (same settings)", [self.sorting])
        super().__init__(
            widgets=[
                self.image,
                self.all_frames,
                self.task,
                self.method,
                self.pixel_size_nm,
                self.scale_fold,
                self.scale,
                self.settings_fold,
                self.model,
                self.model_card,
                self.mask_threshold,
                self.particle_fraction,
                self.min_region,
                self.live_preview,
                self.run_button,
                self.panel,
                self.fractions,
                self.warnings,
                self.histogram,
                self.points_fold,
                *points_section,
                self.sorting_fold,
                self.sorting,
            ]
        )
        self.run_button.changed.connect(self.run)
        self.apply_button.changed.connect(self.apply_to_points)
        self.method.changed.connect(self._method_changed)
        self.task.changed.connect(self._sync)
        self._timer = QTimer(self.native)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DELAY_MS)
        self._timer.timeout.connect(self._preview)
        for w in (
            self.task,
            self.method,
            self.mask_threshold,
            self.particle_fraction,
            self.min_region,
        ):
            w.changed.connect(self._schedule_preview)
        self._method_changed()

    # --- settings --------------------------------------------------------------------
    @staticmethod
    def _models(_widget: Any = None) -> list[str]:
        # "(task default)" first: the shipped default of whichever task is chosen.
        return [TASK_DEFAULT_MODEL, *model_names("segmentation")]

    def _method_changed(self) -> None:
        value, unit = MIN_REGION[self.method.value]
        self.min_region.value = value
        self.min_region.label = f"min region ({unit})"
        self._sync()

    def _sync(self) -> None:
        unet = self.method.value != "bragg"
        shown = getattr(self, "settings_fold", None) is None or self.settings_fold.expanded
        self.model.visible = shown and unet
        self.model_card.visible = shown and unet
        self.min_region.visible = shown and not (unet and self.task.value == "particles")
        self.mask_threshold.visible = shown and not unet and self.task.value == "contamination"
        self.particle_fraction.visible = shown and not unet and self.task.value == "particles"

    def options(self) -> dict[str, Any]:
        """Keyword options for :func:`iter_segment` from the form."""
        opts: dict[str, Any] = {"min_region_size": float(self.min_region.value)}
        if self.method.value != "bragg" and self.task.value == "particles":
            opts = {}  # the scale-free particle model cleans up in pixels (api defaults)
        if self.method.value != "bragg":
            card = str(self.model_card.value or "").strip()
            if card.endswith((".yaml", ".yml")):
                opts["model"] = card
            elif self.model.value and not self.model.value.startswith("("):
                opts["model"] = self.model.value
        elif self.task.value == "contamination":
            opts["mask_threshold"] = float(self.mask_threshold.value)
        else:
            opts["particle_fraction"] = float(self.particle_fraction.value)
        return opts

    def sorting_settings(self) -> dict[str, Any]:
        """Task, method, pixel size override and options, for the sorting section."""
        return {
            "task": self.task.value,
            "method": self.method.value,
            "pixel_size_nm": float(self.pixel_size_nm.value) or None,
            **self.options(),
        }

    def result_name(self, image_name: str) -> str:
        """Name of the Labels layer made for ``image_name`` (and the task)."""
        return f"{image_name} {self.task.value}"

    # --- run -------------------------------------------------------------------------
    def run(self) -> Any:
        """Segment the chosen image (current frame or all); returns the worker."""
        layer = self.image.value
        try:
            if layer is None:
                raise InputError("Segment regions: open or choose an Image layer first")
            geometry = layer_geometry(layer)
            # The override, else the calibration, else the layer's shared estimate.
            pixel_size: Any = float(self.pixel_size_nm.value) or None
            if pixel_size is None:
                calibrated, estimate = self.scale.pixel_size_for(layer)
                pixel_size = estimate if estimate is not None else calibrated
            index = current_frame_index(layer, self._viewer.dims.point)
            frames = image_frames(layer, index, all_frames=bool(self.all_frames.value))
            task, method = self.task.value, self.method.value
            return self.panel.start(
                segment_steps,
                frames,
                pixel_size,
                task,
                method,
                **self.options(),
                on_result=lambda res: self._show(layer, geometry, res),
            )
        except AtomsegError as exc:
            notify_error(exc)
            self.panel.status.value = f"not started: {exc}"[:200]
            return None

    def _show(self, layer: Any, geometry: Geometry, results: list[tuple[int | None, Any]]) -> str:
        shape = tuple(np.shape(layer.data[0] if layer.multiscale else layer.data))
        if getattr(layer, "rgb", False):
            shape = shape[:-1]
        labels = stack_labels(results, shape)
        first = results[0][1]
        meta = {
            "source_layer": layer.name,
            "task": first.task,
            "method": first.method,
            "pixel_size_used_nm": first.pixel_size_nm,
            "pixel_size_estimated": bool(first.pixel_size_estimated),
            "model": first.details.get("model", ""),
            "flagged_class": seg_api.FLAGGED_CLASS[first.task],
        }
        source = layer.metadata.get("source_path")
        if source:
            meta["source_path"] = source
        meta["method_used"] = first.details.get("method_used", first.method)
        meta["warnings"] = list(first.warnings)
        meta["has_lattice"] = first.has_lattice
        name = f"{layer.name} {first.task}"
        add_or_update(self._viewer, class_labels(labels, first.class_names, geometry, name, meta))
        fractions = self._viewer.layers[name].metadata["class_fractions"]
        text = ", ".join(f"{k} {100 * v:.1f}%" for k, v in fractions.items())
        self.fractions.value = text
        self._show_warnings(results)
        self._show_particles(layer, geometry, results, meta)
        size = first.pixel_size_nm
        where = "" if size is None else f" at {size:.4g} nm/px"
        if first.pixel_size_estimated:
            where += " (estimated)"
        return f"{meta['method_used']}, {len(results)} frame(s){where}"

    def _show_warnings(self, results: list[tuple[int | None, Any]]) -> None:
        found = list(dict.fromkeys(w for _, r in results for w in r.warnings))
        self.warnings.value = "<br>".join(f"&#9888; {w}" for w in found)
        self.warnings.visible = bool(found)
        for warning in found:
            show_warning(warning)

    def _show_particles(
        self, layer: Any, geometry: Geometry, results: list[tuple[int | None, Any]], meta: dict
    ) -> None:
        """Particles: a second Labels layer (one label per particle) + the size histogram."""
        first = results[0][1]
        if first.instances is None:
            self.histogram.visible = False
            return
        shape = tuple(np.shape(layer.data[0] if layer.multiscale else layer.data))
        if getattr(layer, "rgb", False):
            shape = shape[:-1]
        instances, table = stack_instances(results, shape)
        name = f"{layer.name} particles"
        add_or_update(self._viewer, particle_labels(instances, table, geometry, name, meta))
        self.histogram.show(table)

    # --- preview ---------------------------------------------------------------------
    def _schedule_preview(self, _value: Any = None) -> None:
        if self.live_preview.value:
            self._timer.start()

    def _preview(self) -> None:
        if self.panel.busy:
            self._timer.start()  # try again once the running segmentation is done
            return
        if self.image.value is not None:
            self.run()

    # --- points ----------------------------------------------------------------------
    def apply_to_points(self) -> int:
        """Flag or drop the chosen Points on the flagged class; returns how many."""
        try:
            points = self.points.value
            image = self.image.value
            if points is None or image is None:
                raise InputError("choose an image (segmented) and a Points layer first")
            labels = find_layer(self._viewer, self.result_name(image.name), "labels")
            if labels is None:
                raise InputError(
                    f"no '{self.result_name(image.name)}' layer yet; press Segment first"
                )
            task = labels.metadata.get("task", self.task.value)
            flagged = int(labels.metadata.get("flagged_class", seg_api.FLAGGED_CLASS[task]))
            on_class = points_on_class(points, labels, flagged)
            if self.points_action.value == "drop":
                n = drop_points(points, on_class)
                message = f"{points.name}: removed {n} point(s) on {task}"
            else:
                n = flag_points(points, on_class, FLAG_FEATURE[task])
                message = f"{points.name}: {n} point(s) flagged {FLAG_FEATURE[task]}"
        except AtomsegError as exc:
            notify_error(exc)
            return 0
        show_info(message)
        self.panel.status.value = message
        return n
