"""SegmentationTask: class mapping, examples, loss with partial labels, metrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_atomseg.errors import InputError  # noqa: E402
from napari_atomseg.segmentation.training import (  # noqa: E402
    IGNORE,
    NOT_FLAGGED,
    SegmentationTask,
    resample_labels,
    sim_classes_to_labels,
)
from tests._synth import contaminated_lattice, disc  # noqa: E402


def test_sim_class_mapping():
    classes = np.array([[0, 1], [2, 3]], np.uint8)
    np.testing.assert_array_equal(
        sim_classes_to_labels({"classes": classes}, "contamination"), [[2, 0], [1, 1]]
    )
    particle = np.array([[0, 1], [1, 0]], np.uint8)
    np.testing.assert_array_equal(
        sim_classes_to_labels({"particle": particle}, "particles"), particle
    )
    with pytest.raises(InputError):
        sim_classes_to_labels({"classes": np.array([[4]])}, "contamination")
    with pytest.raises(InputError, match="mode"):
        SegmentationTask(mode="cells")


@dataclass
class _Params:
    pixel_size_nm: float
    shape_px: tuple[int, int] = (64, 64)
    seed: int = 0


@dataclass
class _Result:
    image: np.ndarray
    masks: dict
    pixel_size_nm: float


def _fake_simulate(params):
    shape = params.shape_px
    mask = disc(shape, (shape[0] / 2, shape[1] / 2), shape[0] / 4)
    image, _ = contaminated_lattice(
        shape, period_px=0.213 / params.pixel_size_nm, mask=mask, seed=params.seed
    )
    classes = np.where(mask, 3, 1).astype(np.uint8)
    classes[:4] = 0  # a strip of vacuum
    return _Result(
        image,
        {"classes": classes, "particle": (classes == 1).astype(np.uint8)},
        params.pixel_size_nm,
    )


def test_make_example_resamples_to_working_sampling():
    task = SegmentationTask(
        "contamination",
        working_pixel_size_nm=0.04,
        tile_px=64,
        simulate_fn=_fake_simulate,
        parameters_fn=lambda rng: _Params(0.02),
    )
    image, target = task.make_example(np.random.default_rng(0))
    assert image.shape == (1, 64, 64) and image.dtype == np.float32
    assert target.shape == (64, 64) and target.dtype == np.int64
    assert abs(float(np.median(image))) < 0.2  # robust z-score
    # Simulated at 0.02 nm/px over 130 px -> the disc (radius 32 px there) is 16 px here.
    frac_amorphous = (target == 1).mean()
    assert frac_amorphous == pytest.approx(np.pi * 16**2 / 64**2, rel=0.15)
    assert set(np.unique(target)) <= {0, 1, 2}


def test_resample_labels_area_weighted():
    labels = np.zeros((100, 100), np.int64)
    labels[:, 50:] = 1
    out = resample_labels(labels, 2, 0.01, 0.02)
    assert out.shape == (50, 50)
    assert (out[:, :24] == 0).all() and (out[:, 26:] == 1).all()


def test_real_example_partial_labels():
    task = SegmentationTask("contamination", working_pixel_size_nm=0.04)
    image, mask = contaminated_lattice((128, 128), period_px=6.0, seed=1)
    x, t = task.real_example(image, mask, pixel_size_nm=0.02)
    assert x.shape == (1, 64, 64) and t.shape == (64, 64)
    assert set(np.unique(t)) == {1, NOT_FLAGGED}
    assert (t == 1).mean() == pytest.approx(mask.mean(), abs=0.02)


def test_loss_partial_labels_and_gradients():
    task = SegmentationTask("contamination", dice_weight=0.5)
    target = torch.tensor([[[0, 1], [NOT_FLAGGED, IGNORE]]])
    good = torch.tensor([[[[9.0, -9], [9, 0]], [[-9, 9], [-9, 0]], [[-9, -9], [-9, 0]]]])
    # The NOT_FLAGGED pixel may be crystal or vacuum: predicting vacuum there is fine...
    also_good = good.clone()
    also_good[0, :, 1, 0] = torch.tensor([-9.0, -9, 9])
    # ...but predicting the flagged class (amorphous) there is penalised.
    bad = good.clone()
    bad[0, :, 1, 0] = torch.tensor([-9.0, 9, -9])
    l_good, l_also, l_bad = (task.loss(x, target) for x in (good, also_good, bad))
    assert float(l_good) < 0.01 and float(l_also) < 0.01
    assert float(l_bad) > 1.0
    # The IGNORE pixel does not matter at all.
    other = good.clone()
    other[0, :, 1, 1] = torch.tensor([5.0, -3, 2])
    assert float(task.loss(other, target)) == pytest.approx(float(l_good), abs=1e-6)
    logits = torch.zeros(2, 3, 8, 8, requires_grad=True)
    task.loss(logits, torch.randint(0, 3, (2, 8, 8))).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_validation_metrics_values():
    task = SegmentationTask("particles")
    target = torch.tensor([[[1, 1, 0, 0], [0, 0, 0, 0]]])
    pred = torch.tensor([[[1, 0, 1, 0], [0, 0, 0, 0]]])
    logits = torch.nn.functional.one_hot(pred, 2).permute(0, 3, 1, 2).float()
    m = task.validation_metrics(logits, target)
    assert m["pixel_accuracy"] == pytest.approx(6 / 8)
    assert m["dice_particle"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
    assert m["jaccard_particle"] == pytest.approx(1 / 3)
    assert m["mean_jaccard"] == pytest.approx(0.5 * (1 / 3 + 5 / 7))


def test_card_defaults_build_a_valid_card_whose_channels_are_the_classes():
    from napari_atomseg.backend import card_from_dict

    task = SegmentationTask("contamination", working_pixel_size_nm=0.05)
    data = task.card_defaults()
    data.update(name="seg_test", architecture={"type": "unet"})
    card = card_from_dict(data)
    assert card.channels == ("crystal", "amorphous", "vacuum")
    assert card.input.working_pixel_size_nm == 0.05
