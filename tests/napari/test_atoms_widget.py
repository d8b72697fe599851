"""The Find atoms widget: network once, live preview, layers, stacks, errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from napari.components import ViewerModel
from napari.utils.notifications import notification_manager

from napari_atomseg._napari.widgets import atoms as atoms_widget
from napari_atomseg._progress import Progress
from napari_atomseg.atoms import heatmap as atoms_heatmap
from napari_atomseg.atoms import options as atoms_options
from napari_atomseg.atoms.heatmap import HeatmapResult
from napari_atomseg.atoms.options import (
    DEFAULT_MIN_EVIDENCE,
    DEFAULT_MIN_SEPARATION_NM,
    DEFAULT_REFINE,
    DEFAULT_THRESHOLD,
)
from tests._synth import LATTICE_PIXEL_SIZE_NM as PS_NM
from tests._synth import graded_square_lattice


def _wait(qtbot, widget, timeout=60_000):
    qtbot.waitUntil(lambda: not widget.panel.busy, timeout=timeout)


@pytest.fixture
def fake_network(monkeypatch):
    """Replace the network by the synthetic heatmap and count how often it runs."""
    image, heat, true, heights = graded_square_lattice()
    calls = []
    contrasts = []
    inverts = []
    seen_inverted = []
    # The heatmap it answers with for the image as it is (False) and inverted (True).
    answers = {False: heat, True: heat}

    views = []

    def fake(img, pixel_size_nm=None, model="default", **kw):
        calls.append(model)
        views.append(kw.get("views", 1))
        contrast = kw.get("contrast", "auto")
        contrasts.append(contrast)
        inverts.append(kw.get("invert"))
        inverted = contrast == "dark" if kw.get("invert") is None else kw["invert"]
        seen_inverted.append(inverted)
        yield Progress(0, 1, "fake network")
        # As the backend does, a missing pixel size is estimated (here: the true one).
        size = PS_NM if pixel_size_nm is None else pixel_size_nm
        result = HeatmapResult.from_arrays(img, answers[inverted], size)
        return dataclasses.replace(
            result, contrast=contrast, inverted=inverted, pixel_size_estimated=pixel_size_nm is None
        )

    monkeypatch.setattr(atoms_heatmap, "iter_predict_heatmap", fake)
    fake.contrasts = contrasts
    fake.inverts = inverts
    fake.seen_inverted = seen_inverted
    fake.answers = answers
    fake.views = views
    return image, true, heights, calls


def _find_dark_columns(qtbot, image):
    """Find atoms on ``image`` with the columns said to be dark; (viewer, widget)."""
    viewer = ViewerModel()
    viewer.add_image(image, name="lat", scale=(PS_NM, PS_NM), units="nm")
    w = atoms_widget.FindAtomsWidget(viewer)
    w.threshold.value = 0.1
    w.contrast.value = "dark"
    _wait(qtbot, w)
    w.run()
    _wait(qtbot, w)
    return viewer, w


def test_live_preview_reruns_only_post_processing(qtbot, fake_network):
    image, true, heights, calls = fake_network
    viewer = ViewerModel()
    viewer.add_image(image, name="lat", scale=(PS_NM, PS_NM), units="nm")
    w = atoms_widget.FindAtomsWidget(viewer)
    w.threshold.value = 0.1
    w.separation_nm.value = 0.05
    _wait(qtbot, w)
    w.run()
    _wait(qtbot, w)
    points = viewer.layers["lat columns"]
    assert len(points.data) == len(true)
    np.testing.assert_allclose(points.scale, (PS_NM, PS_NM))
    assert str(points.units[0]) in ("nm", "nanometer")
    assert {"confidence", "intensity", "nn_spacing_nm", "source"} <= set(points.features)
    assert (points.features["source"] == "model").all()
    # Markers are half the 12 px lattice spacing.
    assert points.metadata["point_size_px"] == pytest.approx(6.0, rel=0.05)
    labels = viewer.layers["lat column labels"]
    assert labels.data.max() == len(true)
    assert len(calls) == 1

    # Peak heights run 0.2..1.0 evenly: threshold 0.6 keeps about half of them.
    w.threshold.value = 0.6
    qtbot.waitUntil(lambda: len(points.data) < len(true), timeout=20_000)
    _wait(qtbot, w)
    expected = int(np.sum(heights > 0.6))
    assert abs(len(points.data) - expected) <= 2
    assert len(calls) == 1  # the network did not run again
    # The hidden column labels were not redone by the preview; showing them catches up.
    assert labels.metadata["stale"] is True
    labels.visible = True
    qtbot.waitUntil(lambda: labels.metadata["stale"] is False, timeout=20_000)
    _wait(qtbot, w)
    assert labels.data.max() == len(points.data)
    # With the labels visible, the preview keeps them current itself.
    n_before = len(points.data)
    w.threshold.value = 0.3
    qtbot.waitUntil(lambda: len(points.data) > n_before, timeout=20_000)
    _wait(qtbot, w)
    assert labels.data.max() == len(points.data)
    assert labels.metadata["stale"] is False
    assert len(calls) == 1


def test_stack_all_frames_and_pixel_override(qtbot, fake_network):
    image, true, _, calls = fake_network
    viewer = ViewerModel()
    # (The fake network answers every frame with frame 0's heatmap.)
    layer = viewer.add_image(np.stack([image, image]), name="stack")  # in pixels
    w = atoms_widget.FindAtomsWidget(viewer)
    w.threshold.value = 0.1
    w.all_frames.value = True
    w.pixel_size_nm.value = 0.025
    w.run()
    _wait(qtbot, w)
    assert len(calls) == 2
    points = viewer.layers["stack columns"]
    assert points.data.shape == (2 * len(true), 3)
    assert set(points.data[:, 0]) == {0.0, 1.0}
    # The override calibrated the uncalibrated image, and the results share its scale.
    np.testing.assert_allclose(layer.scale[-2:], (0.025, 0.025))
    np.testing.assert_allclose(points.scale, (1.0, 0.025, 0.025))
    assert viewer.layers["stack column labels"].data.shape == layer.data.shape


def test_current_frame_only(qtbot, fake_network):
    image, _, _, calls = fake_network
    viewer = ViewerModel()
    viewer.add_image(np.stack([image, image, image]), name="s", scale=(1, PS_NM, PS_NM))
    viewer.dims.set_current_step(0, 2)
    w = atoms_widget.FindAtomsWidget(viewer)
    w.threshold.value = 0.1
    w.run()
    _wait(qtbot, w)
    assert len(calls) == 1, w.panel.status.value
    assert set(viewer.layers["s columns"].data[:, 0]) == {2.0}


def test_tiny_model_end_to_end(qtbot, tiny_atoms_card):
    """The real backend path (untrained model): layers appear with the right geometry."""
    image, *_ = graded_square_lattice()
    viewer = ViewerModel()
    viewer.add_image(image, name="img", scale=(PS_NM, PS_NM), units="nm")
    w = atoms_widget.FindAtomsWidget(viewer)
    w.model_card.value = str(tiny_atoms_card)
    w.threshold.value = 0.3
    w.live_preview.value = False
    w.run()
    _wait(qtbot, w)
    points = viewer.layers["img columns"]
    assert points.metadata["model"] == "atoms_widget_test"
    assert points.metadata["pixel_size_used_nm"] == pytest.approx(PS_NM)
    np.testing.assert_allclose(points.scale, (PS_NM, PS_NM))
    assert viewer.layers["img column labels"].data.shape == image.shape
    assert "columns" in w.panel.status.value


def test_errors_become_notifications(qtbot, tmp_path):
    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        viewer = ViewerModel()
        viewer.add_image(np.full((64, 64), 3.0), name="flat", scale=(PS_NM, PS_NM))
        w = atoms_widget.FindAtomsWidget(viewer)
        w.model_card.value = str(tmp_path / "missing.yaml")  # no such model
        w.run()
        _wait(qtbot, w)
        qtbot.waitUntil(lambda: bool(seen), timeout=10_000)
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    messages = [str(n.message) for n in seen]
    assert any("missing.yaml" in m or "constant" in m for m in messages), messages
    # refused before the run (the shared pixel-size estimate checks the image) or failed
    status = w.panel.status.value
    assert "failed" in status or ("not started" in status and "constant" in status)


def test_choosing_a_model_moves_the_sliders_to_its_recommended_settings(qtbot, tmp_path):
    """Each model card may record its calibrated threshold and refinement: picking the
    model sets the sliders (the user can still move them)."""
    from tests._models import export_tiny_atoms_model

    card = export_tiny_atoms_model(
        tmp_path, "atoms_pp_widget", postprocess={"threshold": 0.27, "refine": "com"}
    )
    viewer = ViewerModel()
    w = atoms_widget.FindAtomsWidget(viewer)
    w.model_card.value = str(card.path)
    assert w.threshold.value == pytest.approx(0.27)
    assert w.refine.value == "com"
    assert w.settings().threshold == pytest.approx(0.27)
    w.threshold.value = 0.6  # the user's choice stands until the model changes again
    assert w.settings().threshold == pytest.approx(0.6)
    w._apply_model_defaults()  # what choosing a model again does
    assert w.threshold.value == pytest.approx(0.27)


def test_model_defaults_reset_what_the_new_card_does_not_say(qtbot, monkeypatch):
    """Choosing a model moves the sliders to its card's postprocess; a card that names no
    refinement (or threshold) gets the library default, not the previous model's."""
    cards = {
        "a.yaml": {
            "threshold": 0.3,
            "refine": "com",
            "min_separation_nm": 0.1,
            "min_evidence": 3.5,
        },
        "b.yaml": {},
    }
    monkeypatch.setattr(atoms_options, "model_postprocess", lambda m: cards.get(Path(m).name, {}))
    w = atoms_widget.FindAtomsWidget(ViewerModel())
    w.live_preview.value = False
    w.model_card.value = "a.yaml"
    assert (w.threshold.value, w.refine.value) == (pytest.approx(0.3), "com")
    assert w.separation_nm.value == pytest.approx(0.1)
    assert w.min_evidence.value == 3.5 and w.settings().min_evidence == 3.5
    w.model_card.value = "b.yaml"
    assert w.threshold.value == pytest.approx(DEFAULT_THRESHOLD)
    assert w.refine.value == DEFAULT_REFINE
    assert w.separation_nm.value == pytest.approx(DEFAULT_MIN_SEPARATION_NM)
    assert w.min_evidence.value == DEFAULT_MIN_EVIDENCE


def test_column_contrast_reaches_the_network_and_stays_for_the_preview(qtbot, fake_network):
    image, _, _, calls = fake_network
    viewer, w = _find_dark_columns(qtbot, image)
    # The columns are bright: told "dark", the network sees the inverted image and the
    # image shows no dark column at its peaks. The status line says why.
    assert atoms_heatmap.iter_predict_heatmap.contrasts == ["dark"]
    assert atoms_heatmap.iter_predict_heatmap.seen_inverted == [True]
    assert "WARNING: the image shows no column" in w.panel.status.value
    assert "set the contrast to 'bright'" in w.panel.status.value
    points = viewer.layers["lat columns"]
    assert points.metadata["settings"]["contrast"] == "dark"
    # Changing the choice does not re-run anything; a preview keeps the network's contrast.
    w.contrast.value = "bright"
    w.threshold.value = 0.2
    w.preview()
    _wait(qtbot, w)
    assert len(calls) == 1
    assert viewer.layers["lat columns"].metadata["settings"]["contrast"] == "dark"


def test_hrtem_of_unknown_contrast_runs_both_ways_and_says_which_it_kept(qtbot, fake_network):
    """imaging auto reads the layer's acquisition mode: an HRTEM file with the contrast
    left to auto is shown to the network both ways round and the status line says which
    was kept; the live preview post-processes the kept answer."""
    from napari_atomseg.io import Calibration

    image, true, _, calls = fake_network
    answers = atoms_heatmap.iter_predict_heatmap.answers
    answers[True] = 0.5 * np.roll(answers[False], (6, 6), axis=(0, 1))  # unsure: hollows
    viewer = ViewerModel()
    cal = Calibration.from_pixel_size_nm(PS_NM).with_metadata(acquisition_mode="TEM")
    viewer.add_image(
        image, name="tem", scale=(PS_NM, PS_NM), units="nm", metadata={"calibration": cal.to_dict()}
    )
    w = atoms_widget.FindAtomsWidget(viewer)
    assert w.imaging.value == "auto" and w.chosen_imaging() == "hrtem"
    w.threshold.value = 0.1
    _wait(qtbot, w)
    w.run()
    _wait(qtbot, w)
    assert atoms_heatmap.iter_predict_heatmap.seen_inverted == [False, True]
    points = viewer.layers["tem columns"]
    assert points.metadata["settings"]["imaging"] == "hrtem"
    assert "columns bright (chosen" in w.panel.status.value
    assert "HRTEM (from the file)" in w.panel.status.value
    d = np.linalg.norm(points.data[:, None, :] - true[None, :, :], axis=2).min(axis=1)
    assert len(points.data) == len(true) and d.max() < 1.0
    w.threshold.value = 0.6
    w.preview()
    _wait(qtbot, w)
    assert len(calls) == 2  # the preview ran no network
    assert 0 < len(viewer.layers["tem columns"].data) < len(true)
    # ... and still says which answer it post-processed (a preview used to drop it).
    assert "columns bright (chosen" in w.panel.status.value


def test_min_evidence_slider_is_a_live_post_processing_setting(qtbot, fake_network):
    image, true, _, calls = fake_network
    viewer = ViewerModel()
    viewer.add_image(image, name="lat", scale=(PS_NM, PS_NM), units="nm")
    w = atoms_widget.FindAtomsWidget(viewer)
    assert w.min_evidence.value == DEFAULT_MIN_EVIDENCE
    w.threshold.value = 0.1
    _wait(qtbot, w)
    w.run()
    _wait(qtbot, w)
    points = viewer.layers["lat columns"]
    assert len(points.data) == len(true)
    assert "evidence" in points.features
    # A noisier image of the same lattice: its columns stand a few noise levels out.
    noisy = image + np.random.default_rng(2).normal(0, 3 * image.std(), image.shape)
    viewer.layers["lat"].data = noisy.astype(np.float32)
    w.run()
    _wait(qtbot, w)
    assert len(points.data) >= 0.8 * len(true)
    # Demanding more evidence than the faintest columns have drops them, live.
    evidence = points.features["evidence"].to_numpy()
    assert np.percentile(evidence, 30) < w.min_evidence.max
    w.min_evidence.value = float(np.percentile(evidence, 30))
    n_before = len(points.data)
    qtbot.waitUntil(lambda: len(points.data) < 0.8 * n_before, timeout=20_000)
    _wait(qtbot, w)
    assert len(calls) == 2


def test_views_reach_the_network(qtbot, fake_network):
    """The views combo (test-time augmentation) goes to the network; the live preview
    does not run the network again."""
    image, _, _, calls = fake_network
    viewer = ViewerModel()
    viewer.add_image(image, name="lat", scale=(PS_NM, PS_NM), units="nm")
    w = atoms_widget.FindAtomsWidget(viewer)
    assert w.views.value == 1
    w.views.value = 4
    _wait(qtbot, w)
    w.run()
    _wait(qtbot, w)
    assert atoms_heatmap.iter_predict_heatmap.views == [4]
    assert viewer.layers["lat columns"].metadata["settings"]["views"] == 4
    w.threshold.value = 0.3
    qtbot.wait(400)
    _wait(qtbot, w)
    assert len(calls) == 1
