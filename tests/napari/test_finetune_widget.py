"""The Fine-tune atom finder widget: corrected Points layers -> a new model card."""

from __future__ import annotations

import numpy as np
import pytest
from napari.components import ViewerModel

from napari_atomseg._napari.widgets import finetune as finetune_widget
from napari_atomseg.backend.cards import load_card
from tests._models import export_tiny_atoms_model, training_recipe
from tests._synth import LATTICE_PIXEL_SIZE_NM as PS_NM
from tests._synth import graded_square_lattice


def _wait(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(lambda: not widget.panel.busy, timeout=timeout)


@pytest.fixture
def recipe_model(tmp_path):
    """A tiny atoms model whose card records a training recipe (fast to fine-tune)."""
    return export_tiny_atoms_model(
        tmp_path / "base",
        "tiny_recipe_widget",
        training=training_recipe(PS_NM),
    )


def test_points_in_nm_over_a_calibrated_image_become_pixels():
    viewer = ViewerModel()
    img = viewer.add_image(np.zeros((3, 50, 60)), scale=(1, PS_NM, PS_NM), translate=(0, 0.1, 0))
    px = np.array([[10.0, 20.0], [30.5, 5.25]])
    # world = px * scale + translate; a Points layer with unit scale holds world coordinates
    world = np.column_stack([[1, 2], px[:, 0] * PS_NM + 0.1, px[:, 1] * PS_NM])
    pts = viewer.add_points(world)
    np.testing.assert_allclose(finetune_widget.points_in_image_px(pts, img, frame=1), px[:1])
    np.testing.assert_allclose(finetune_widget.points_in_image_px(pts, img, frame=2), px[1:])
    # the same points stored in pixels with the image's scale
    pts_px = viewer.add_points(px, scale=(PS_NM, PS_NM), translate=(0.1, 0))
    img2 = viewer.add_image(np.zeros((50, 60)), scale=(PS_NM, PS_NM), translate=(0.1, 0))
    np.testing.assert_allclose(finetune_widget.points_in_image_px(pts_px, img2), px)


def test_widget_fine_tunes_on_the_corrected_points(qtbot, tmp_path, recipe_model):
    image, _, true, _ = graded_square_lattice()
    viewer = ViewerModel()
    img = viewer.add_image(image, name="lat", scale=(PS_NM, PS_NM), units="nm")
    viewer.add_points(true, name="lat columns", scale=(PS_NM, PS_NM))
    w = finetune_widget.FinetuneAtomsWidget(viewer)
    assert w.image.value is img and w.points.value.name == "lat columns"
    w.run()  # no folder chosen yet: refused with a message
    assert "folder" in w.panel.status.value
    w.add_pair.changed.emit(True)
    w.add_pair.changed.emit(True)
    assert w.pairs_label.value.count("lat + lat columns") == 2
    images, pts, sizes = w.training_data()
    assert len(images) == 2 and sizes == [pytest.approx(PS_NM)] * 2
    np.testing.assert_allclose(pts[0], true)
    w.clear_pairs.changed.emit(True)
    assert "none" in w.pairs_label.value

    assert w.chosen_base() == "atoms_default"
    w.base_card.value = str(recipe_model.path)
    assert w.chosen_base() == str(recipe_model.path)
    w.steps.value = 10
    w.folder.value = str(tmp_path / "out")
    w.model_name.value = "mine"
    w.run()
    _wait(qtbot, w)
    assert w.card_path == tmp_path / "out" / "mine.yaml", w.panel.status.value
    card = load_card(w.card_path)
    assert card.metrics["fine_tuning"]["atoms"] == len(true)
    status = w.panel.status.value
    assert status.startswith("done:") and "mine.yaml" in status and "threshold" in status


def test_uncalibrated_image_is_refused(tmp_path):
    viewer = ViewerModel()
    viewer.add_image(np.random.default_rng(0).random((64, 64)), name="raw")
    viewer.add_points(np.array([[5.0, 5.0]]), name="p")
    w = finetune_widget.FinetuneAtomsWidget(viewer)
    w.folder.value = str(tmp_path)
    assert w.run() is None
    assert "no pixel size" in w.panel.status.value
