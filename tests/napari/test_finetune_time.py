"""Fine-tuning: its duration is shown before it starts; a cancelled run leaves no files."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from napari.components import ViewerModel

from napari_atomseg._napari.widgets import finetune as finetune_widget
from napari_atomseg._progress import drain
from napari_atomseg.atoms import finetune_user
from napari_atomseg.atoms.finetune_time import THRESHOLD_S_PER_IMAGE, iter_measure_finetune
from tests._models import export_tiny_atoms_model, training_recipe
from tests._synth import graded_square_lattice

PS_NM = 0.02


@pytest.fixture
def recipe_model(tmp_path):
    """A tiny atoms model whose card records a training recipe (fast to fine-tune)."""
    return export_tiny_atoms_model(
        tmp_path / "base",
        "tiny_recipe_time",
        training=training_recipe(PS_NM),
    )


@pytest.fixture
def widget(recipe_model):
    image, _, true, _ = graded_square_lattice()
    viewer = ViewerModel()
    viewer.add_image(image, name="lat", scale=(PS_NM, PS_NM), units="nm")
    viewer.add_points(true, name="lat columns", scale=(PS_NM, PS_NM))
    w = finetune_widget.FinetuneAtomsWidget(viewer)
    w.base_card.value = str(recipe_model.path)
    return w


def _idle(qtbot, w, timeout=120_000) -> None:
    qtbot.waitUntil(lambda: not w.panel.busy, timeout=timeout)


def test_estimate_is_shown_before_starting_and_follows_the_steps(qtbot, widget) -> None:
    w = widget
    assert "not measured" in w.estimate.value and w.estimated_s() is None
    w.measure()
    _idle(qtbot, w)
    timing = w._timing[w.chosen_base()]
    assert 0 < timing.step_s < 60 and timing.setup_s >= 0 and timing.n_images == 1
    w.steps.value = 600
    assert w.estimated_s() == pytest.approx(timing.total_s(600, 1))
    assert w.estimate.value.startswith("about ") and "s/step measured here" in w.estimate.value
    shown = w.estimate.value
    w.steps.value = 6000
    assert w.estimate.value != shown  # follows the steps at once, no new measurement
    assert w.estimated_s() == pytest.approx(timing.total_s(6000, 1))


def test_measuring_times_real_steps_and_keeps_nothing(recipe_model, tmp_path: Path) -> None:
    image, _, true, _ = graded_square_lattice()
    before = set(Path(tempfile.gettempdir()).glob("atomseg_timing_*"))
    timing = drain(
        iter_measure_finetune(
            [image], [true], PS_NM, base=str(recipe_model.path), n_steps=2, threads=1
        )
    )
    assert np.isfinite(timing.step_s) and timing.step_s > 0 and timing.n_images == 1
    assert set(Path(tempfile.gettempdir()).glob("atomseg_timing_*")) == before
    expected = timing.setup_s * 3 + 600 * timing.step_s + 3 * THRESHOLD_S_PER_IMAGE
    assert timing.total_s(600, 3) == pytest.approx(expected)
    assert finetune_widget.format_duration(45) == "45 s"
    assert finetune_widget.format_duration(390) == "6.5 min"


def test_cancelled_run_leaves_no_checkpoint(qtbot, widget, tmp_path: Path) -> None:
    w = widget
    out = tmp_path / "models"
    out.mkdir()
    (out / "keep.txt").write_text("the user's file")
    w.folder.value = str(out)
    w.steps.value = 20000
    messages: list[str] = []
    shown = w.panel._on_progress

    def record(step):
        messages.append(step.message)
        shown(step)

    w.panel._on_progress = record  # (connected when the run starts)
    w.run()
    qtbot.waitUntil(lambda: (out / "checkpoint.safetensors").exists(), timeout=120_000)
    assert any("about" in m and "for 20000 steps" in m for m in messages)  # said up front
    assert any("left" in m for m in messages)  # and counted down
    w.panel.cancel.changed.emit(True)
    _idle(qtbot, w)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert w.panel.status.value == "cancelled"


def test_cancelling_the_generator_removes_only_new_files(tmp_path: Path, recipe_model) -> None:
    image, _, true, _ = graded_square_lattice()
    out = tmp_path / "new_folder"
    run = finetune_user.iter_finetune_atoms(
        [image], [true], PS_NM, out, base=str(recipe_model.path), steps=20000, threads=1
    )
    for _progress in run:
        if (out / "checkpoint.safetensors").exists():
            break
    assert (out / "checkpoint.safetensors").exists()
    run.close()
    assert not out.exists()  # made by the run, empty after clean-up: removed
