"""AtomsTask: target rendering, examples from the simulator, loss, metrics, a smoke run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from napari_atomseg.atoms.peaks import find_peaks
from napari_atomseg.atoms.training import IGNORE, AtomsTask, render_heatmap, to_working_px
from napari_atomseg.errors import InputError


def _table(yx, visible=None):
    yx = np.asarray(yx, float)
    return pd.DataFrame(
        {
            "y_px": yx[:, 0],
            "x_px": yx[:, 1],
            "visible": np.ones(len(yx), bool) if visible is None else visible,
        }
    )


def test_working_grid_mapping_matches_the_backend_resampling():
    from napari_atomseg.backend import resample

    # A single bright pixel's centre must land where to_working_px says.
    img = np.zeros((101, 101), np.float32)
    img[40, 61] = 1.0
    out = resample(img, 0.01, 0.025)
    com = np.array(np.unravel_index(np.argmax(out), out.shape), float)
    expected = to_working_px(np.array([40.0, 61.0]), 0.01, 0.025)
    assert np.abs(com - expected).max() <= 0.5


def test_render_target_places_peaks_on_the_columns():
    task = AtomsTask(working_pixel_size_nm=0.02, patch_px=64)
    cols = np.array([[20.3, 20.7], [20.2, 40.1], [45.6, 30.4]])  # px at 0.02 nm/px: no resampling
    target = task.render_target(_table(cols), 0.02, (0, 0), (64, 64))
    assert target.shape == (1, 64, 64) and target.dtype == np.float32
    pos, _ = find_peaks(target[0], 0.5, 2.0)
    order = np.lexsort((pos[:, 1], pos[:, 0]))
    np.testing.assert_allclose(pos[order], cols[np.lexsort((cols[:, 1], cols[:, 0]))], atol=0.1)
    # sigma = 0.15 x spacing (>= 0.39 nm here) capped at 0.05 nm = 2.5 px.
    assert target[0, 45, 30 + 3] == pytest.approx(
        np.exp(-(2.6**2 + 0.6**2) / (2 * 2.5**2)), abs=0.03
    )


def test_invisible_and_unresolvable_columns_are_ignored_not_negative():
    task = AtomsTask(working_pixel_size_nm=0.02, patch_px=64)
    cols = np.array([[10.0, 10.0], [30.0, 30.0], [50.0, 50.0], [50.0, 52.0]])
    visible = np.array([True, False, True, True])  # the last two are 0.04 nm apart
    target = task.render_target(_table(cols, visible), 0.02, (0, 0), (64, 64))[0]
    assert target[10, 10] == pytest.approx(1.0)
    assert target[30, 30] == IGNORE
    assert target[50, 51] == IGNORE
    assert (target[target >= 0] <= 1).all()
    assert target[0, 63] == 0.0  # background stays background


def test_spacing_channel_encodes_the_local_spacing():
    task = AtomsTask(working_pixel_size_nm=0.02, patch_px=64, spacing_head=True)
    cols = np.array([[20.0, 20.0], [20.0, 35.0], [50.0, 20.0]])  # nn 0.3 nm for the pair
    target = task.render_target(_table(cols), 0.02, (0, 0), (64, 64))
    assert target.shape == (2, 64, 64) and task.channels_out == 2
    assert target[1, 20, 20] == pytest.approx(0.3, abs=0.01)
    assert target[1, 50, 20] == pytest.approx(0.6, abs=0.01)  # nn to (20, 20): 0.6 nm
    assert target[1, 5, 60] == IGNORE


@pytest.mark.parametrize("spacing_head", [False, True])
def test_make_example_from_the_simulator(spacing_head):
    task = AtomsTask(patch_px=64, spacing_head=spacing_head)
    x, y = task.make_example(np.random.default_rng(3))
    assert x.shape == (1, 64, 64) and x.dtype == np.float32 and np.isfinite(x).all()
    assert y.shape == (task.channels_out, 64, 64) and y.dtype == np.float32
    assert ((y[0] == IGNORE) | ((y[0] >= 0) & (y[0] <= 1))).all()
    # Deterministic from the generator's state.
    x2, y2 = task.make_example(np.random.default_rng(3))
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def test_loss_ignores_ignored_pixels_and_metrics_score_perfect_logits():
    task = AtomsTask(working_pixel_size_nm=0.02, patch_px=64)
    cols = np.array([[20.0, 20.0], [20.0, 40.0], [45.0, 30.0]])
    t = task.render_target(_table(cols, np.array([True, True, False])), 0.02, (0, 0), (64, 64))
    target = torch.from_numpy(t[None])
    perfect = torch.logit(target.clamp(1e-4, 1 - 1e-4))
    # Any logits in ignored pixels: the loss must not change.
    other = perfect.clone()
    other[target < 0] = 10.0
    assert float(task.loss(perfect, target)) == pytest.approx(float(task.loss(other, target)))
    assert float(task.loss(perfect, target)) < float(task.loss(torch.zeros_like(perfect), target))
    m = task.validation_metrics(perfect, target)
    assert m["f1"] == 1.0 and m["rms_px"] < 0.05
    m0 = task.validation_metrics(torch.full_like(perfect, -5.0), target)
    assert m0["recall"] == 0.0


def test_card_defaults_and_option_errors():
    d = AtomsTask(working_pixel_size_nm=0.025).card_defaults()
    assert d["task"] == "atoms"
    assert d["input"]["working_pixel_size_nm"] == 0.025
    lo, hi = d["input"]["pixel_size_range_nm"]
    assert lo < 0.025 < hi == pytest.approx(0.1)
    with pytest.raises(InputError, match="patch_px"):
        AtomsTask(patch_px=8)
    with pytest.raises(InputError, match="working_pixel_size_nm"):
        AtomsTask(working_pixel_size_nm=0)


def test_background_option_flattens_examples_and_is_written_to_the_card():
    plain = AtomsTask(working_pixel_size_nm=0.03, patch_px=64)
    flat = AtomsTask(working_pixel_size_nm=0.03, patch_px=64, background_sigma_nm=0.9)
    assert "background_sigma_nm" not in plain.card_defaults()["input"]
    assert flat.card_defaults()["input"]["background_sigma_nm"] == 0.9
    # Columns on a support that thickens fast from left to right (a wedge 30x the atoms).
    y, x = np.mgrid[:96, :96]
    cols = _table([(r, c) for r in range(8, 96, 10) for c in range(8, 96, 10)])
    atoms = sum(
        np.exp(-((y - r) ** 2 + (x - c) ** 2) / 4.0) for r, c in cols[["y_px", "x_px"]].to_numpy()
    )
    wedge = atoms + 0.3 * x
    img_flat, _ = flat.example_from_simulation(wedge, 0.03, cols, np.random.default_rng(0))
    ref_flat, _ = flat.example_from_simulation(atoms, 0.03, cols, np.random.default_rng(0))
    img_plain, _ = plain.example_from_simulation(wedge, 0.03, cols, np.random.default_rng(0))
    ref_plain, _ = plain.example_from_simulation(atoms, 0.03, cols, np.random.default_rng(0))
    # With the option the network sees (almost) the wedge-free example; without, not.
    assert np.abs(img_flat - ref_flat).max() < 0.1 * np.ptp(ref_flat)
    assert np.abs(img_plain - ref_plain).max() > 0.5 * np.ptp(ref_plain)
    # The pixel-size estimator reads images before any preparation: the scale reference
    # is measured on the same examples without the subtraction.
    raw = flat.scale_reference_task()
    assert raw.background_sigma_nm is None and raw.patch_px == 64
    assert plain.scale_reference_task() is plain
    with pytest.raises(InputError, match="background_sigma_nm"):
        AtomsTask(background_sigma_nm=0)


def test_render_heatmap_handles_columns_outside_the_window():
    heat = render_heatmap((16, 16), np.array([[-2.0, 8.0], [100.0, 100.0]]), np.array([2.0, 2.0]))
    assert heat[0, 8] == pytest.approx(np.exp(-4 / 8), rel=1e-5)
    assert heat[15, 15] == 0.0


def test_smoke_training_with_the_backend_loop(tmp_path):
    from napari_atomseg.backend.train_loop import train

    cfg = {
        "name": "atoms_smoke",
        "task": "napari_atomseg.atoms.training:AtomsTask",
        "task_options": {"patch_px": 64},
        "card": {"architecture": {"base_channels": 4, "depth": 1}},
        "steps": 3,
        "batch_size": 2,
        "workers": 0,
        "val_examples": 2,
        "val_every": 3,
        "log_every": 1,
        "checkpoint_every": 3,
        "crop_px": 64,
        "out_dir": str(tmp_path / "run"),
    }
    result = train(cfg, log=None)
    card = result.card
    assert card.task == "atoms" and card.channels == ("heatmap",)
    assert card.input.working_pixel_size_nm == 0.025
    assert {"f1", "precision", "recall", "loss"} <= set(result.validation)
    assert result.weights_path.is_file()


def test_atoms_distill_loss_follows_the_teacher_and_skips_ignored_pixels():
    import torch

    from napari_atomseg.atoms.training import AtomsTask

    task = AtomsTask()
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(2, task.channels_out, 16, 16, generator=g)
    target = torch.zeros(2, task.channels_out, 16, 16)
    target[:, 0, :4] = -1.0  # ignored rows
    far = torch.zeros_like(teacher)
    assert task.distill_loss(teacher, teacher, target) < task.distill_loss(far, teacher, target)
    changed = teacher.clone()
    changed[:, 0, :4] += 5.0  # only ignored pixels differ
    assert torch.isclose(
        task.distill_loss(changed, teacher, target), task.distill_loss(teacher, teacher, target)
    )
