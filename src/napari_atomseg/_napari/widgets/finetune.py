"""The "Fine-tune atom finder" widget: corrected Points layers -> a model adapted to them.

After Find atoms, correct the columns with napari's own tools (add / delete / move), then
fine-tune the network on the corrected image(s) and run the new model on the rest of the
series (pick its card as "model card" in Find atoms, or ``napari-atomseg atoms --model``).

Pairs: choose an image and the Points layer that marks **every** atom in it, press "Add
pair" (repeat for more images); with no pair added, the chosen image and points are used.
For a 3-D stack the frame shown is used, with the points on that frame. Points are taken
from world coordinates into the image's pixels (scale and translate of both layers), so
a Points layer in nm over a calibrated image works as well as one in pixels.

Time: *Estimate time* times the set-up and a few steps of this very run here
(:func:`~napari_atomseg.atoms.finetune_time.iter_measure_finetune`, ~10 s) and shows the
whole run's duration, following the steps and pairs chosen; Fine-tune measures first when
that was not done, says how long it will take, and the status line counts down the time
left during the run.

Training runs in a worker (:func:`napari_atomseg.atoms.finetune_user.iter_finetune_atoms`)
with progress and Cancel; the model goes to ``folder/NAME.yaml`` + ``.safetensors``. A
cancelled run leaves nothing behind (no checkpoint, log or half-made model).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, LineEdit, PushButton, SpinBox

if TYPE_CHECKING:
    import napari.viewer

from napari_atomseg._progress import Progress
from napari_atomseg.atoms import finetune_user
from napari_atomseg.atoms.finetune_time import FinetuneTiming, iter_measure_finetune
from napari_atomseg.errors import AtomsegError, InputError

from ..image_source import current_frame_index, image_frames, layer_pixel_size_nm
from ._common import DockContainer, Fold, layer_combo, model_names
from ._runner import RunPanel, notify_error


def points_in_image_px(points_layer: Any, image_layer: Any, frame: int | None = None) -> np.ndarray:
    """(N, 2) row, col in the image's pixels of the points (on ``frame`` for a stack)."""
    data = np.asarray(points_layer.data, dtype=np.float64)
    if data.size == 0:
        return np.zeros((0, 2))
    world = data * np.asarray(points_layer.scale) + np.asarray(points_layer.translate)
    img_scale = np.asarray(image_layer.scale, dtype=np.float64)
    img_translate = np.asarray(image_layer.translate, dtype=np.float64)
    if world.shape[1] < 2:
        raise InputError(f"points layer {points_layer.name!r}: needs 2-D positions")
    yx = (world[:, -2:] - img_translate[-2:]) / img_scale[-2:]
    if frame is not None and world.shape[1] >= 3 and len(img_scale) >= 3:
        f = (world[:, -3] - img_translate[-3]) / img_scale[-3]
        yx = yx[np.round(f) == frame]
    return yx


def format_duration(seconds: float) -> str:
    """'45 s', '6.5 min', '1.4 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def timed_finetune(
    timing: FinetuneTiming | None, base: str, *args: Any, **kwargs: Any
) -> Generator[Progress, None, Path]:
    """:func:`~napari_atomseg.atoms.finetune_user.iter_finetune_atoms` that first states
    how long it will take (measuring when ``timing`` is None) and then counts the time
    left down in its progress messages."""
    steps = int(kwargs["steps"])
    if timing is None:
        options = {k: v for k, v in kwargs.items() if k in ("contrast", "device", "threads")}
        timing = yield from iter_measure_finetune(*args[:3], base=base, **options)
    expected = timing.total_s(steps, len(args[0]))
    yield Progress(0, steps, f"about {format_duration(expected)} for {steps} steps")
    start = None
    run = finetune_user.iter_finetune_atoms(*args, base=base, **kwargs)
    while True:
        try:
            progress = next(run)
        except StopIteration as stop:
            return stop.value
        if progress.message.startswith("step") and progress.done > 0:
            start = start or (time.perf_counter(), progress.done)
            t0, done0 = start
            if progress.done > done0:
                rate = (time.perf_counter() - t0) / (progress.done - done0)
                left = rate * (progress.total - progress.done)
                progress = Progress(
                    progress.done,
                    progress.total,
                    f"{progress.message}, about {format_duration(left)} left",
                )
        try:
            yield progress
        except GeneratorExit:
            run.close()  # the training's own clean-up (checkpoint removed)
            raise


class FinetuneAtomsWidget(DockContainer):
    """Dock widget: fine-tune the atom finder on hand-corrected Points layers."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.image = layer_combo(viewer, "image", "image")
        self.points = layer_combo(viewer, "points", "atoms (points)")
        self.add_pair = PushButton(text="Add pair")
        self.clear_pairs = PushButton(text="Clear pairs")
        self.pairs_label = Label(value="pairs: none (the image and points above are used)")
        self.base = ComboBox(choices=self._models, label="start from")
        self.base_card = FileEdit(mode="r", filter="*.yaml", label="or model card", value="")
        self.contrast = ComboBox(
            choices=("bright", "dark"), value="bright", label="columns",
            tooltip="bright (HAADF) or dark (black-atom HRTEM: the network learns the "
            "inverted image; use contrast 'dark' in Find atoms too)",
        )  # fmt: skip
        self.steps = SpinBox(
            value=finetune_user.RECIPE["steps"], min=10, max=20000, step=50, label="steps",
            tooltip=f"training steps of {finetune_user.RECIPE['batch_size']} crops",
        )  # fmt: skip
        self.estimate_button = PushButton(
            text="Estimate time", tooltip="time a few training steps of this run here (~10 s)"
        )
        self.estimate = Label(value="")
        self.folder = FileEdit(mode="d", label="save to folder", value="")
        self.model_name = LineEdit(value=finetune_user.DEFAULT_NAME, label="model name")
        self.run_button = PushButton(
            text="Fine-tune",
            tooltip="when done, pick the new card as 'or model card' in Find atoms",
        )
        self.panel = RunPanel()
        self.card_path: Path | None = None
        self._pairs: list[tuple[Any, Any, int | None]] = []
        #: Timings measured here, per base model (a measurement, not a result).
        self._timing: dict[str, FinetuneTiming] = {}
        self.base_options = Fold("model card, contrast", [self.base_card, self.contrast])
        pair_buttons = Container(
            widgets=[self.add_pair, self.clear_pairs], layout="horizontal", labels=False
        )
        pair_buttons.margins = (0, 0, 0, 0)
        time_row = Container(
            widgets=[self.estimate_button, self.estimate], layout="horizontal", labels=False
        )
        time_row.margins = (0, 0, 0, 0)
        super().__init__(
            widgets=[
                self.image,
                self.points,
                pair_buttons,
                self.pairs_label,
                self.base,
                self.base_options,
                self.base_card,
                self.contrast,
                self.steps,
                time_row,
                self.folder,
                self.model_name,
                self.run_button,
                self.panel,
            ]
        )
        for label, lines in ((self.pairs_label, 2), (self.panel.status, 3), (self.estimate, 2)):
            label.native.setWordWrap(True)  # long paths must not widen the dock
            label.native.setMinimumHeight(lines * label.native.fontMetrics().lineSpacing())
        self.add_pair.changed.connect(self._add_pair)
        self.clear_pairs.changed.connect(self._clear_pairs)
        self.run_button.changed.connect(self.run)
        self.estimate_button.changed.connect(self.measure)
        for w in (self.steps, self.base, self.base_card):
            w.changed.connect(self._show_estimate)
        self._show_estimate()

    @staticmethod
    def _models(_widget: Any = None) -> list[str]:
        return model_names("atoms") or ["default"]

    def chosen_base(self) -> str:
        """The model to start from: the card file when one is chosen, else the name."""
        card = str(self.base_card.value or "").strip()
        if card and card != "." and card.endswith((".yaml", ".yml")):
            return card
        return self.base.value or "default"

    def _frame(self, layer: Any) -> int | None:
        return current_frame_index(layer, self._viewer.dims.point)

    def _add_pair(self, _value: Any = None) -> None:
        image, points = self.image.value, self.points.value
        if image is None or points is None:
            notify_error(InputError("choose an image and its points layer first"))
            return
        self._pairs.append((image, points, self._frame(image)))
        self._show_pairs()

    def _clear_pairs(self, _value: Any = None) -> None:
        self._pairs.clear()
        self._show_pairs()

    # --- time ------------------------------------------------------------------------
    def measure(self, _value: Any = None) -> Any:
        """Time a few training steps of this run here; returns the worker."""
        base = self.chosen_base()

        def show(timing: FinetuneTiming) -> str:
            """Keep the timing for this base model and show the estimate; the status line."""
            self._timing[base] = timing
            self._show_estimate()
            return f"{timing.step_s:.2f} s per training step here"

        try:
            images, points, sizes = self.training_data()
            return self.panel.start(
                iter_measure_finetune,
                images,
                points,
                sizes,
                base=base,
                contrast=self.contrast.value,
                on_result=show,
            )
        except AtomsegError as exc:
            notify_error(exc)
            self.panel.status.value = f"not measured: {exc}"[:200]
            return None

    def estimated_s(self) -> float | None:
        """The run's expected duration (s) with the current choices, once measured."""
        timing = self._timing.get(self.chosen_base())
        if timing is None:
            return None
        return timing.total_s(int(self.steps.value), max(1, len(self._pairs)))

    def _show_estimate(self, _value: Any = None) -> None:
        seconds = self.estimated_s()
        if seconds is None:
            self.estimate.value = "time: not measured yet"
            return
        step_s = self._timing[self.chosen_base()].step_s
        self.estimate.value = (
            f"about {format_duration(seconds)} ({step_s:.2f} s/step measured here)"
        )

    def _show_pairs(self) -> None:
        self._show_estimate()
        if not self._pairs:
            self.pairs_label.value = "pairs: none (the image and points above are used)"
            return
        names = [
            f"{img.name}{'' if f is None else f' [{f}]'} + {pts.name}"
            for img, pts, f in self._pairs
        ]
        self.pairs_label.value = "pairs: " + "; ".join(names)

    def training_data(self) -> tuple[list[np.ndarray], list[np.ndarray], list[float]]:
        """(images, points px, pixel sizes) of the pairs (or of the current choice)."""
        pairs = list(self._pairs)
        if not pairs:
            image, points = self.image.value, self.points.value
            if image is None or points is None:
                raise InputError("choose an image and the Points layer marking its atoms")
            pairs = [(image, points, self._frame(image))]
        images, pts, sizes = [], [], []
        for image, points, frame in pairs:
            ps = layer_pixel_size_nm(image)
            if ps is None:
                raise InputError(
                    f"image {image.name!r} has no pixel size; calibrate it first (type the "
                    "pixel size in Find atoms, or open the file with its calibration)"
                )
            (plane,) = image_frames(image, frame)
            images.append(np.asarray(plane.data))
            pts.append(points_in_image_px(points, image, frame))
            sizes.append(ps)
        return images, pts, sizes

    def output_folder(self) -> Path:
        """The chosen folder for the new model; InputError when none is chosen."""
        value = str(self.folder.value or "").strip()
        if not value or value == ".":
            raise InputError("choose a folder to save the fine-tuned model in")
        return Path(value)

    def run(self) -> Any:
        """Start fine-tuning; returns the worker (None when the input was refused)."""
        try:
            images, points, sizes = self.training_data()
            folder = self.output_folder()
            name = str(self.model_name.value).strip() or finetune_user.DEFAULT_NAME
            base = self.chosen_base()
            return self.panel.start(
                timed_finetune,
                self._timing.get(base),
                base,
                images,
                points,
                sizes,
                folder,
                name=name,
                contrast=self.contrast.value,
                steps=int(self.steps.value),
                on_result=self._done,
            )
        except AtomsegError as exc:
            notify_error(exc)
            self.panel.status.value = f"not started: {exc}"[:200]
            return None

    def _done(self, card_path: Path) -> str:
        from napari_atomseg.backend.cards import load_card

        self.card_path = Path(card_path)
        card = load_card(card_path)
        threshold = card.postprocess.get("threshold")
        f1 = card.metrics.get("fine_tuning", {}).get("training_f1")
        f1_text = f"; F1 {f1:.2f} on these images" if isinstance(f1, float) else ""
        return f"done: {card_path} (threshold {threshold}{f1_text})"
