"""The "Find atoms" widget: Image layer -> Points (columns) + Labels (column regions).

Run: the network (:func:`napari_atomseg.atoms.find.iter_network_answer`) runs once per
frame in a worker (twice for HRTEM of unknown contrast, which keeps the more confident
polarity), then post-processing (:func:`~napari_atomseg.atoms.heatmap_to_atoms`)
and the column labels. The network's answers (:class:`HeatmapResult`, one per frame) are
kept in the Points layer's ``metadata["heatmaps"]``, so the live preview -- moving the
threshold / separation sliders or the refinement -- re-runs only the post-processing on
them and updates the Points layer in place (and the column Labels when they are shown;
a hidden one is marked ``metadata["stale"]`` and redone, from the points as they are
then, when it is made visible). Correct the points afterwards
with napari's own tools (points added by hand get ``source = "manual"``) and save them
with File > Save Selected Layers (CSV).

Threshold and evidence: the sliders start at the chosen model card's recommended values;
a column needs both the network's confidence and the image's evidence (how far it stands
out of the noise at the column scale).

Pixel size: the layer's calibration; the override field wins when > 0. On an
uncalibrated layer the override also calibrates the image layer (scale in nm), so image
and results agree. Without either, the layer's shared estimate is used
(:mod:`napari_atomseg._napari.scale_panel`: computed once, kept in the layer's metadata,
the same number Segment regions uses; reported in the status line and in
``metadata["pixel_size_estimated"]``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    FloatSlider,
    FloatSpinBox,
    PushButton,
)
from napari.utils.notifications import show_warning
from qtpy.QtCore import QTimer

if TYPE_CHECKING:
    import napari.viewer

from napari_atomseg.atoms import options as atoms_options
from napari_atomseg.atoms.heatmap import HeatmapResult
from napari_atomseg.atoms.imaging import imaging_from_metadata
from napari_atomseg.atoms.options import (
    CONTRASTS,
    DEFAULT_MIN_EVIDENCE,
    DEFAULT_MIN_SEPARATION_NM,
    DEFAULT_REFINE,
    DEFAULT_THRESHOLD,
    REFINE_METHODS,
    VIEWS_CHOICES,
    FinderOptions,
    option_help,
)
from napari_atomseg.errors import AtomsegError, InputError

from ..image_source import (
    current_frame_index,
    image_frames,
    layer_geometry,
    layer_pixel_size_nm,
)
from ..layers import Geometry, atoms_points, instance_labels
from ..scale_panel import ScalePanel, stored_scale
from ._atoms_jobs import (
    FrameAtoms,
    combine,
    find_atoms_steps,
    labels_steps,
    refresh_steps,
    result_warnings,
)
from ._common import DockContainer, Fold, layer_combo, model_names
from ._runner import RunPanel, notify_error
from ._viewer import add_or_update, find_layer

PREVIEW_DELAY_MS = 150
#: The imaging combo: (label, value); auto reads the layer's metadata.
IMAGING_CHOICES = [
    ("auto (from the file)", "auto"),
    ("STEM (HAADF, ADF, ABF)", "stem"),
    ("HRTEM", "hrtem"),
    ("unknown", "unknown"),
]


class FindAtomsWidget(DockContainer):
    """Dock widget: find every atomic column of an image, with a live preview."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.image = layer_combo(viewer, "image", "image")
        self.all_frames = CheckBox(value=False, text="every frame of a stack")
        self.model = ComboBox(choices=self._models, label="model")
        self.model_card = FileEdit(mode="r", filter="*.yaml", label="or model card", value="")
        self.pixel_size_nm = FloatSpinBox(
            value=0.0, min=0.0, max=100.0, step=0.001, label="pixel size (nm)",
            tooltip="0 = the layer's calibration, or estimated when the layer is in pixels",
        )  # fmt: skip
        self.threshold = FloatSlider(
            value=DEFAULT_THRESHOLD, min=0.02, max=0.98, step=0.01, label="threshold",
            tooltip=option_help("threshold"),
        )  # fmt: skip
        self.min_evidence = FloatSlider(
            value=DEFAULT_MIN_EVIDENCE, min=0.0, max=30.0, step=0.25, label="min evidence",
            tooltip=option_help("min_evidence"),
        )  # fmt: skip
        self.separation_nm = FloatSlider(
            value=0.07, min=0.0, max=0.5, step=0.005, label="min separation (nm)"
        )
        self.refine = ComboBox(choices=REFINE_METHODS, value=DEFAULT_REFINE, label="refinement")
        self.contrast = ComboBox(
            choices=CONTRASTS, value="auto", label="columns",
            tooltip=option_help("contrast") + "; a change takes effect on Find atoms",
        )  # fmt: skip
        self.imaging = ComboBox(
            choices=IMAGING_CHOICES, value="auto", label="imaging",
            tooltip="what the image is: auto reads the file's acquisition mode (DM, TIA, EMD) "
            "or the simulation's; for HRTEM of auto contrast the network sees the image "
            "both ways round",
        )  # fmt: skip
        self.views = ComboBox(
            choices=list(VIEWS_CHOICES), value=1, label="views",
            tooltip=option_help("views") + "; a change takes effect on Find atoms",
        )  # fmt: skip
        self.live_preview = CheckBox(value=True, text="live preview (post-processing only)")
        self.run_button = PushButton(text="Find atoms")
        self.panel = RunPanel()
        self.scale = ScalePanel(self.image)
        self.scale_fold = Fold("pixel-size estimate", [self.scale])
        # Set once and left: folded away so two docks fit a 1000 px screen.
        advanced = [self.refine, self.contrast, self.imaging, self.views]
        self.advanced = Fold("refinement, contrast, imaging, views", advanced)
        super().__init__(
            widgets=[
                self.image,
                self.all_frames,
                self.model,
                self.model_card,
                self.pixel_size_nm,
                self.scale_fold,
                self.scale,
                self.threshold,
                self.min_evidence,
                self.separation_nm,
                self.advanced,
                *advanced,
                self.live_preview,
                self.run_button,
                self.panel,
            ]
        )
        #: True while the sliders move to a newly chosen model's values (no preview).
        self._applying_model = False
        #: The running job is a preview or a column-labels update, which a press of
        #: Find atoms supersedes; _run_next: that press, waiting for it to stop.
        self._disposable_job = False
        self._run_next = False
        self.run_button.changed.connect(self.run)
        self._timer = QTimer(self.native)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DELAY_MS)
        self._timer.timeout.connect(self.preview)
        self._preview_pending = False
        for w in (self.threshold, self.min_evidence, self.separation_nm, self.refine):
            w.changed.connect(self._schedule_preview)
        self.model.changed.connect(self._apply_model_defaults)
        self.model_card.changed.connect(self._apply_model_defaults)
        self._apply_model_defaults()

    def _apply_model_defaults(self, _value: Any = None) -> None:
        """Move the sliders to the chosen model's recommended post-processing (its card's
        ``postprocess``): each model is calibrated for its own threshold. What the card
        does not say goes back to the library default, never the previous model's value."""
        # The columns shown came from the previous model's heatmaps: re-post-processing
        # them with this model's settings would show neither model's answer. So no
        # preview until Find atoms runs the new model (see _stored).
        self._timer.stop()
        self._applying_model = True
        try:
            pp = atoms_options.model_postprocess(self.chosen_model())
            self.threshold.value = float(pp.get("threshold", DEFAULT_THRESHOLD))
            self.min_evidence.value = float(pp.get("min_evidence", DEFAULT_MIN_EVIDENCE))
            self.separation_nm.value = float(pp.get("min_separation_nm", DEFAULT_MIN_SEPARATION_NM))
            refine = pp.get("refine", DEFAULT_REFINE)
            self.refine.value = refine if refine in REFINE_METHODS else DEFAULT_REFINE
        finally:
            self._applying_model = False

    def chosen_imaging(self) -> str | None:
        """``"stem"``, ``"hrtem"`` or None: the combo's choice, or with auto what the
        chosen layer's metadata says (:func:`imaging_from_metadata`)."""
        value = self.imaging.value
        if value == "auto":
            layer = self.image.value
            return imaging_from_metadata(getattr(layer, "metadata", None))
        return None if value == "unknown" else value

    # --- settings --------------------------------------------------------------------
    @staticmethod
    def _models(_widget: Any = None) -> list[str]:
        return model_names("atoms") or ["default"]

    def settings(self) -> FinderOptions:
        """The finder's options as the controls say (checked by FinderOptions)."""
        return FinderOptions(
            threshold=float(self.threshold.value),
            min_evidence=float(self.min_evidence.value),
            min_separation_nm=float(self.separation_nm.value),
            refine=self.refine.value,
            contrast=self.contrast.value,
            imaging=self.chosen_imaging(),
            views=int(self.views.value),
        )

    def chosen_model(self) -> str:
        """The model card path typed in, else the chosen model's name (``"default"``)."""
        card = str(self.model_card.value or "").strip()
        if card and card != "." and card.endswith((".yaml", ".yml")):
            return card
        return self.model.value or "default"

    def result_names(self, image_name: str) -> tuple[str, str]:
        """Names of the Points and the column Labels layers made for ``image_name``."""
        return f"{image_name} columns", f"{image_name} column labels"

    # --- run -------------------------------------------------------------------------
    def run(self) -> Any:
        """Start network + post-processing on the chosen image; returns the worker.

        A live preview (or column-labels update) still running is stopped first and the
        run starts when it has (returns None then): a press of Find atoms always counts.
        """
        if self.panel.busy and self._disposable_job:
            self._timer.stop()
            self._run_next = True
            self.panel.stop_quietly()
            self.panel.status.value = "starting after the preview stops..."
            return None
        layer = self.image.value
        try:
            if layer is None:
                raise InputError("Find atoms: open or choose an Image layer first")
            geometry, pixel_size = self._pixel_size(layer)
            index = current_frame_index(layer, self._viewer.dims.point)
            frames = image_frames(layer, index, all_frames=bool(self.all_frames.value))
            model = self.chosen_model()
            worker = self.panel.start(
                find_atoms_steps,
                frames,
                pixel_size,
                model,
                self.settings(),
                on_result=lambda res: self._show(layer, geometry, res, model, select=True),
            )
        except AtomsegError as exc:
            notify_error(exc)
            self.panel.status.value = f"not started: {exc}"[:200]
            return None
        return worker

    def _pixel_size(self, layer: Any) -> tuple[Geometry, float | None]:
        """(result geometry, pixel size for compute) following the module's rules."""
        geometry = layer_geometry(layer)
        from_layer = layer_pixel_size_nm(layer)
        override = float(self.pixel_size_nm.value) or None
        if override is None:
            # The calibration, else the layer's shared estimate (one number for every tool).
            return geometry, self.scale.pixel_size_for(layer)[0]
        if from_layer is None:
            geometry = geometry.with_pixel_size_nm(override)
            layer.scale = geometry.scale
            layer.units = geometry.units
            layer.metadata["calibration"] = geometry.calibration().to_dict()
            layer.metadata["pixel_size_nm"] = override
        elif not np.isclose(override, from_layer, rtol=1e-3):
            show_warning(
                f"{layer.name}: using {override} nm/px for finding atoms; the layer says "
                f"{from_layer:.6g} nm/px (its scale is left as it is)"
            )
        return geometry, override

    def _image_shape(self, layer: Any) -> tuple[int, ...]:
        shape = tuple(np.shape(layer.data[0] if layer.multiscale else layer.data))
        return shape[:-1] if getattr(layer, "rgb", False) else shape

    def _show(
        self,
        layer: Any,
        geometry: Geometry,
        results: list[FrameAtoms],
        model: str,
        select: bool = False,
    ) -> str:
        """Results -> layers. ``model``: the model choice that made the heatmaps (kept in
        the Points metadata as ``model_choice``). ``select`` (after Find atoms) makes the
        Points layer the active one, so napari shows its add / select / move tools, ready
        for correction."""
        atoms, labels = combine(results, self._image_shape(layer))
        first = results[0].heatmap
        points_name, labels_name = self.result_names(layer.name)
        shared = stored_scale(layer) if layer_pixel_size_nm(layer) is None else None
        estimated = bool(first.pixel_size_estimated) or (
            shared is not None and shared.source != "user" and not self.pixel_size_nm.value
        )
        meta = {
            "source_layer": layer.name,
            "model": first.model_name,
            "model_choice": model,
            "pixel_size_used_nm": first.pixel_size_nm,
            "pixel_size_estimated": estimated,
            "settings": {**dataclasses.asdict(self.settings()), "contrast": first.contrast},
            "threshold_used": [r.atoms.attrs.get("threshold") for r in results],
            "heatmaps": [(r.index, r.heatmap) for r in results],
        }
        source = layer.metadata.get("source_path")
        if source:
            meta["source_path"] = source
        points = add_or_update(self._viewer, atoms_points(atoms, geometry, points_name, meta))
        existing = find_layer(self._viewer, labels_name, "labels")
        if labels is not None:
            labels_meta = {"source_layer": layer.name, "stale": False}
            labels_layer = add_or_update(
                self._viewer, instance_labels(labels, geometry, labels_name, labels_meta)
            )
            # A hidden labels layer is not redrawn by the preview; showing it catches up.
            labels_layer.events.visible.connect(self._labels_shown)
        elif existing is not None:
            existing.metadata["stale"] = True
        if select:  # (adding the hidden column labels made them the active layer)
            self._viewer.layers.selection.active = points
        ps = first.pixel_size_nm
        size_text = "unknown pixel size" if ps is None else f"{ps:.5g} nm/px"
        if estimated:
            size_text += " (estimated)"
        summary = f"{len(atoms)} columns in {len(results)} frame(s), {size_text}"
        dropped = sum(int(r.atoms.attrs.get("unsupported_removed", 0)) for r in results)
        if dropped:
            summary += f"; {dropped} network peak(s) without image evidence dropped"
        imaging = results[0].atoms.attrs.get("imaging", "unknown")
        if imaging != "unknown":
            source = " (from the file)" if self.imaging.value == "auto" else ""
            summary += f"; {'HRTEM' if imaging == 'hrtem' else 'STEM'}{source}"
        chosen = [r.atoms.attrs["polarity"] for r in results if "polarity" in r.atoms.attrs]
        if chosen:
            summary += f"; {chosen[0]}"
        problems = result_warnings(results)
        if problems:
            summary += "; WARNING: " + " | ".join(problems)
        return summary

    # --- live preview ----------------------------------------------------------------
    def _schedule_preview(self, _value: Any = None) -> None:
        # A newly chosen model's values are no reason to run again.
        if self.live_preview.value and not self._applying_model:
            self._timer.start()

    def _stored(self) -> tuple[Any, list[tuple[int | None, HeatmapResult]]] | None:
        """(image layer, stored heatmaps) when the chosen model made them, else None."""
        layer = self.image.value
        if layer is None:
            return None
        points = find_layer(self._viewer, self.result_names(layer.name)[0], "points")
        if points is None or not points.metadata.get("heatmaps"):
            return None
        if points.metadata.get("model_choice", self.chosen_model()) != self.chosen_model():
            self.panel.status.value = (
                f"{points.name} came from another model: press Find atoms to run this one"
            )
            return None
        return layer, list(points.metadata["heatmaps"])

    def preview(self) -> Any:
        """Re-run post-processing on the stored network output; returns the worker.

        The column labels are recomputed only when their layer is visible (they cost about
        as much as a Gaussian refinement); a hidden one is marked stale and redone when
        shown.
        """
        stored = self._stored()
        if stored is None:
            return None
        if self.panel.busy:
            self._preview_pending = True
            return None
        layer, heatmaps = stored
        points_name, labels_name = self.result_names(layer.name)
        points = find_layer(self._viewer, points_name, "points")
        labels = find_layer(self._viewer, labels_name, "labels")
        geometry = Geometry.from_layer(points)
        # The contrast the network ran with stays until Find atoms runs it again.
        options = self.settings().replace(contrast=heatmaps[0][1].contrast)
        model = self.chosen_model()
        worker = self.panel.start(
            refresh_steps,
            heatmaps,
            options,
            labels is not None and labels.visible,
            on_result=lambda res: self._show(layer, geometry, res, model),
            on_finish=self._after_preview,
        )
        self._disposable_job = True
        return worker

    def _after_preview(self) -> None:
        self._disposable_job = False
        if self._run_next:  # Find atoms was pressed meanwhile: it wins
            self._run_next = False
            self._preview_pending = False
            self.run()
        elif self._preview_pending:
            self._preview_pending = False
            self._timer.start()

    # --- column labels catching up ----------------------------------------------------
    def _labels_shown(self, event: Any = None) -> None:
        labels = getattr(event, "source", None)
        if labels is None or not labels.visible or not labels.metadata.get("stale"):
            return
        self.update_labels(labels)

    def update_labels(self, labels: Any) -> Any:
        """Recompute a column Labels layer for its Points as they are now; the worker."""
        source = labels.metadata.get("source_layer", "")
        points = find_layer(self._viewer, self.result_names(source)[0], "points")
        if points is None or not points.metadata.get("heatmaps") or self.panel.busy:
            return None
        shape = tuple(labels.data.shape)

        def show(new: np.ndarray) -> str:
            """Put the new labels in the layer; the status line."""
            labels.data = new
            labels.metadata["stale"] = False
            return f"column labels for {len(points.data)} columns"

        worker = self.panel.start(
            labels_steps,
            list(points.metadata["heatmaps"]),
            np.asarray(points.data),
            shape,
            on_result=show,
            on_finish=self._after_preview,
        )
        self._disposable_job = True
        return worker
