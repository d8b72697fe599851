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
    DEFAULT_CONTRAST_CHECK,
    DEFAULT_MIN_SEPARATION_NM,
    DEFAULT_REFINE,
    DEFAULT_THRESHOLD,
)
from tests.napari._synth import lattice
from tests.napari.conftest import PS_NM


def _wait(qtbot, widget, timeout=60_000):
    qtbot.waitUntil(lambda: not widget.panel.busy, timeout=timeout)


@pytest.fixture
def fake_network(monkeypatch):
    """Replace the network by the synthetic heatmap and count how often it runs."""
    image, heat, true, heights = lattice()
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
        result = HeatmapResult.from_arrays(img, answers[inverted], pixel_size_nm)
        return dataclasses.replace(result, contrast=contrast, inverted=inverted)

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
    layer = viewer.add_image(np.stack([image, image[::-1]]), name="stack")  # in pixels
    w = atoms_widget.FindAtomsWidget(viewer)
    w.threshold.value = 0.1
    # The fake network gives frame 1 (flipped) frame 0's heatmap: its peaks are not all on
    # that frame's columns, so the image check would rightly drop a few.
    w.contrast_check.value = False
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
    assert len(calls) == 1
    assert set(viewer.layers["s columns"].data[:, 0]) == {2.0}


def test_tiny_model_end_to_end(qtbot, tiny_atoms_card):
    """The real backend path (untrained model): layers appear with the right geometry."""
    image, *_ = lattice()
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
    assert "failed" in w.panel.status.value


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
    # Auto threshold: the card's value, which find_atoms picks itself (None here).
    assert w.auto_threshold.value is True and w.settings().threshold is None
    w.threshold.value = 0.6  # the user's choice stands until the model changes again
    assert w.auto_threshold.value is False
    assert w.settings().threshold == pytest.approx(0.6)
    w._apply_model_defaults()  # what choosing a model again does
    assert w.auto_threshold.value is True and w.threshold.value == pytest.approx(0.27)


def test_model_defaults_reset_what_the_new_card_does_not_say(qtbot, monkeypatch):
    """Choosing a model moves the sliders to its card's postprocess; a card that names no
    refinement (or threshold) gets the library default, not the previous model's."""
    cards = {
        "a.yaml": {
            "threshold": 0.3,
            "refine": "com",
            "min_separation_nm": 0.1,
            "contrast_check": False,
        },
        "b.yaml": {},
    }
    monkeypatch.setattr(atoms_options, "model_postprocess", lambda m: cards.get(Path(m).name, {}))
    w = atoms_widget.FindAtomsWidget(ViewerModel())
    w.live_preview.value = False
    w.model_card.value = "a.yaml"
    assert (w.threshold.value, w.refine.value) == (pytest.approx(0.3), "com")
    assert w.separation_nm.value == pytest.approx(0.1)
    assert w.contrast_check.value is False and w.settings().contrast_check is False
    w.model_card.value = "b.yaml"
    assert w.threshold.value == pytest.approx(DEFAULT_THRESHOLD)
    assert w.refine.value == DEFAULT_REFINE
    assert w.separation_nm.value == pytest.approx(DEFAULT_MIN_SEPARATION_NM)
    assert w.contrast_check.value is DEFAULT_CONTRAST_CHECK


def test_column_contrast_reaches_the_network_and_stays_for_the_preview(qtbot, fake_network):
    image, _, _, calls = fake_network
    viewer, w = _find_dark_columns(qtbot, image)
    # The columns are bright, so told "dark" the image check removes the network's
    # peaks: a second look shows it the image the other way round (this fake network
    # answers the same), the first answer stays and the status line says why.
    assert atoms_heatmap.iter_predict_heatmap.contrasts == ["dark", "dark"]
    assert atoms_heatmap.iter_predict_heatmap.inverts == [None, False]
    assert "WARNING: the image check removed" in w.panel.status.value
    assert "set the contrast to 'bright'" in w.panel.status.value
    points = viewer.layers["lat columns"]
    assert points.metadata["settings"]["contrast"] == "dark"
    # Changing the choice does not re-run anything; a preview keeps the network's contrast.
    w.contrast.value = "bright"
    w.threshold.value = 0.2
    w.preview()
    _wait(qtbot, w)
    assert len(calls) == 2
    assert viewer.layers["lat columns"].metadata["settings"]["contrast"] == "dark"


def test_second_look_when_the_network_marks_the_hollows(qtbot, fake_network):
    """Dark columns; the network, shown the inverted image, marks the hollows between
    them, and shown the image as it is, the columns: the widget keeps the second answer
    and says so."""
    image, true, _, _ = fake_network
    answers = atoms_heatmap.iter_predict_heatmap.answers
    answers[True] = np.roll(answers[False], (6, 6), axis=(0, 1))  # the square lattice's hollows
    seen = atoms_heatmap.iter_predict_heatmap.seen_inverted
    viewer, w = _find_dark_columns(qtbot, image.max() - image)
    assert seen == [True, False]
    assert "second look kept" in w.panel.status.value and "WARNING" not in w.panel.status.value
    points = viewer.layers["lat columns"]
    d = np.linalg.norm(points.data[:, None, :] - true[None, :, :], axis=2).min(axis=1)
    assert len(points.data) == len(true) and d.max() < 1.0
    # The live preview post-processes the kept (second) network answer.
    w.threshold.value = 0.6
    w.preview()
    _wait(qtbot, w)
    assert seen == [True, False]
    assert "second look kept" in w.panel.status.value
    points = viewer.layers["lat columns"]
    d = np.linalg.norm(points.data[:, None, :] - true[None, :, :], axis=2).min(axis=1)
    assert 0 < len(points.data) < len(true) and d.max() < 1.0


def test_min_prominence_slider_is_a_live_post_processing_setting(qtbot, fake_network):
    image, true, _, calls = fake_network
    viewer = ViewerModel()
    viewer.add_image(image, name="lat", scale=(PS_NM, PS_NM), units="nm")
    w = atoms_widget.FindAtomsWidget(viewer)
    assert w.min_prominence.value == 0.0  # off unless the card says otherwise
    w.threshold.value = 0.1
    _wait(qtbot, w)
    w.run()
    _wait(qtbot, w)
    points = viewer.layers["lat columns"]
    assert len(points.data) == len(true)
    # Every column here is equally bright (Poisson noise aside): the slider's top, 1.0 x
    # the median, drops the fainter half, in the live preview (no network run).
    w.min_prominence.value = 1.0
    qtbot.waitUntil(lambda: len(points.data) < 0.7 * len(true), timeout=20_000)
    _wait(qtbot, w)
    assert len(points.data) > 0.3 * len(true)
    assert len(calls) == 1
    assert w.settings().min_prominence == 1.0


def test_imaging_mode_sets_the_min_prominence_default(qtbot, fake_network):
    """imaging auto reads the layer's acquisition mode (a file's, or the simulator's):
    HRTEM with bright or auto columns moves min prominence to the white-atom default;
    STEM, unknown and dark columns keep it off. The mode is recorded in the settings."""
    from napari_atomseg.atoms.image_check import HRTEM_MIN_PROMINENCE
    from napari_atomseg.io import Calibration

    image, _, _, _ = fake_network
    viewer = ViewerModel()
    viewer.add_image(image, name="stem")
    cal = Calibration.from_pixel_size_nm(PS_NM).with_metadata(acquisition_mode="TEM")
    viewer.add_image(
        image,
        name="tem",
        scale=(PS_NM, PS_NM),
        units="nm",
        metadata={"calibration": cal.to_dict()},
    )
    w = atoms_widget.FindAtomsWidget(viewer)
    w.image.value = viewer.layers["tem"]
    assert w.imaging.value == "auto" and w.chosen_imaging() == "hrtem"
    assert w.min_prominence.value == HRTEM_MIN_PROMINENCE
    w.contrast.value = "dark"
    assert w.min_prominence.value == 0.0
    w.contrast.value = "bright"
    assert w.min_prominence.value == HRTEM_MIN_PROMINENCE
    w.image.value = viewer.layers["stem"]  # says nothing: unknown
    assert w.chosen_imaging() is None and w.min_prominence.value == 0.0
    w.imaging.value = "hrtem"
    assert w.min_prominence.value == HRTEM_MIN_PROMINENCE
    w.imaging.value = "stem"
    assert w.min_prominence.value == 0.0 and w.settings().imaging == "stem"
    w.image.value = viewer.layers["tem"]
    w.imaging.value = "auto"
    w.threshold.value = 0.1
    _wait(qtbot, w)
    w.run()
    _wait(qtbot, w)
    points = viewer.layers["tem columns"]
    assert points.metadata["settings"]["imaging"] == "hrtem"
    assert "HRTEM (from the file)" in w.panel.status.value
    assert points.metadata["settings"]["min_prominence"] == HRTEM_MIN_PROMINENCE


def test_views_reach_the_network_and_its_second_look(qtbot, fake_network):
    """The views combo (test-time augmentation) goes to every network pass, the second
    look's included; the live preview does not run the network again."""
    image, _, _, calls = fake_network
    viewer = ViewerModel()
    viewer.add_image(image, name="lat", scale=(PS_NM, PS_NM), units="nm")
    w = atoms_widget.FindAtomsWidget(viewer)
    assert w.views.value == 1
    w.views.value = 4
    w.contrast.value = "dark"  # dark columns: the second look runs too
    _wait(qtbot, w)
    w.run()
    _wait(qtbot, w)
    assert atoms_heatmap.iter_predict_heatmap.views == [4, 4]
    assert viewer.layers["lat columns"].metadata["settings"]["views"] == 4
    w.threshold.value = 0.3
    qtbot.wait(400)
    _wait(qtbot, w)
    assert len(calls) == 2


def _low_dose_widget(monkeypatch, image, heat, card):
    """A widget on layer "low" whose network answers ``heat`` under ``card``'s
    post-processing (image check and refinement off: noise makes some hollows image
    maxima; keep them all). Returns (viewer, widget, the models the network ran for)."""
    monkeypatch.setattr(atoms_options, "model_postprocess", lambda m: dict(card))
    calls = []

    def fake(img, pixel_size_nm=None, model="default", **kw):
        calls.append(model)
        yield Progress(0, 1, "fake network")
        result = HeatmapResult.from_arrays(img, heat, pixel_size_nm)
        result.postprocess = dict(card)
        return result

    monkeypatch.setattr(atoms_heatmap, "iter_predict_heatmap", fake)
    viewer = ViewerModel()
    viewer.add_image(image, name="low", scale=(PS_NM, PS_NM), units="nm")
    w = atoms_widget.FindAtomsWidget(viewer)
    w.contrast_check.value = False
    w.refine.value = "none"
    return viewer, w, calls


def test_auto_threshold_is_raised_on_a_noisy_image_and_shown(qtbot, monkeypatch):
    """A card with a noise ramp: on a low-dose image the widget leaves the threshold to
    default_threshold, shows the raised value on the slider and in the status
    line, and the hollows the network marks at 0.5 are gone; moving the slider hands the
    threshold back to the user (and the preview keeps the hollows at 0.45)."""
    from tests.atoms.synth import low_dose_lattice_with_hollows

    image, heat, true, hollows = low_dose_lattice_with_hollows((192, 192), PS_NM)
    card = {"threshold": 0.4, "threshold_noisy": 0.6, "noise_ramp": [0.15, 0.25]}
    viewer, w, calls = _low_dose_widget(monkeypatch, image, heat, card)
    assert w.auto_threshold.value is True and w.threshold.value == pytest.approx(0.4)
    _wait(qtbot, w)
    w.run()
    _wait(qtbot, w)
    points = viewer.layers["low columns"]
    assert abs(len(points.data) - len(true)) <= 3  # columns only
    assert w.threshold.value == pytest.approx(0.6, abs=0.01)
    assert w.auto_threshold.value is True  # showing the value used is not the user's move
    assert "threshold 0.60 (noisy image" in w.panel.status.value
    assert points.metadata["threshold_used"] == [pytest.approx(0.6)]
    assert points.metadata["settings"]["threshold"] is None
    # The user moves the slider: their value, live.
    w.threshold.value = 0.45
    assert w.auto_threshold.value is False
    qtbot.waitUntil(lambda: len(points.data) > len(true) + len(hollows) // 2, timeout=20_000)
    _wait(qtbot, w)
    assert points.metadata["threshold_used"] == [pytest.approx(0.45)]
    assert len(calls) == 1  # the network ran once


def test_rescorer_decision_is_reported(qtbot, monkeypatch):
    """A card with a per-peak rescorer (here one that keeps every peak down to 0.1): the
    status line says the rescorer chose the columns and how far it departed from the
    threshold; the hollows the ramp would drop are kept."""
    from napari_atomseg.atoms.rescore import FEATURE_NAMES
    from tests.atoms.synth import low_dose_lattice_with_hollows

    image, heat, true, hollows = low_dose_lattice_with_hollows((192, 192), PS_NM)
    n = len(FEATURE_NAMES)
    rescorer = {
        "features": list(FEATURE_NAMES),
        "mean": [0.0] * n,
        "std": [1.0] * n,
        "w1": [[0.0] * n],
        "b1": [0.0],
        "w2": [0.0],
        "b2": 10.0,
        "keep_probability": 0.5,
    }
    card = {
        "threshold": 0.4,
        "threshold_noisy": 0.6,
        "noise_ramp": [0.1, 0.2],
        "rescorer": rescorer,
    }
    viewer, w, _ = _low_dose_widget(monkeypatch, image, heat, card)
    _wait(qtbot, w)
    w.run()
    _wait(qtbot, w)
    points = viewer.layers["low columns"]
    assert len(points.data) >= len(true) + 0.9 * len(hollows)
    status = w.panel.status.value
    assert "the rescorer kept" in status and "below threshold 0.60" in status
