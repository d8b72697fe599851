"""Tiled inference: equivalence with untiled runs, blending weights, progress, cancel."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from napari_atomseg._progress import Progress, drain
from napari_atomseg.backend import iter_predict, predict
from napari_atomseg.backend.registry import get_model
from napari_atomseg.backend.tiling import plan_tiles, tile_weight, weight_sums
from napari_atomseg.errors import Cancelled, InputError


def image(shape=(300, 277), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.sin(yy / 5.0) * np.cos(xx / 7.0) + rng.normal(0, 0.3, shape)
    return (img * 100 + 1000).astype(np.uint16)


@pytest.mark.parametrize(
    ("shape", "tile", "overlap", "multiple"),
    [
        ((300, 277), 64, 16, 4),
        ((50, 1000), 128, 32, 8),
        ((20, 20), 64, 16, 8),
        ((513, 64), 64, 0, 16),
    ],
)
def test_plan_covers_everything_with_positive_weight(shape, tile, overlap, multiple):
    plan = plan_tiles(shape, tile, overlap, multiple)
    assert all(s % multiple == 0 for s in plan.padded_shape + plan.tile_shape)
    assert plan.padded_shape[0] >= shape[0] and plan.padded_shape[1] >= shape[1]
    total = np.zeros(plan.padded_shape)
    for t in plan.tiles:
        assert t.row + plan.tile_shape[0] <= plan.padded_shape[0]
        assert t.col + plan.tile_shape[1] <= plan.padded_shape[1]
        total[t.row : t.row + plan.tile_shape[0], t.col : t.col + plan.tile_shape[1]] += (
            tile_weight(plan, t)
        )
    assert total.min() > 0
    rows, cols = weight_sums(plan)
    assert np.allclose(np.outer(rows, cols), total)  # the separable shortcut is exact


def test_weights_are_zero_at_inner_tile_edges_and_one_at_image_edges():
    plan = plan_tiles((256, 256), 128, 32, 1)
    first = plan.tiles[0]
    w = tile_weight(plan, first)
    assert w[0, 0] == 1.0  # image corner: no neighbour
    assert (w[:, -8:] == 0).all() and (w[-8:, :] == 0).all()  # faces a neighbour: dead band
    assert w[60, 60] == 1.0


@pytest.mark.parametrize("pixel_size_nm", [0.02, 0.013])
def test_tiled_equals_untiled_away_from_borders(make_model, pixel_size_nm):
    card = make_model()  # depth 2: receptive field well beyond the 8-px dead band
    model = get_model(card.path)
    img = image()
    tiled = predict(model, img, pixel_size_nm, tile_px=64, overlap_px=32)
    whole = predict(model, img, pixel_size_nm, tile_px=4096)
    assert tiled.outputs.shape == whole.outputs.shape == (1, *img.shape)
    inner = (slice(None), slice(12, -12), slice(12, -12))
    diff = np.abs(tiled.outputs - whole.outputs)
    assert diff[inner].max() < 1e-4
    assert diff.max() < 1e-3


def test_prediction_fields_softmax_and_input_untouched(make_model):
    card = make_model(
        "multi",
        task="segmentation",
        classes=["vacuum", "crystal", "amorphous"],
        outputs=[
            {"name": "classes", "activation": "softmax"},
            {"name": "edge", "activation": "sigmoid"},
        ],
    )
    img = image((130, 170))
    keep = img.copy()
    pred = predict(card.path, img, 0.025)
    assert np.array_equal(img, keep)
    assert pred.channels == ("vacuum", "crystal", "amorphous", "edge")
    assert pred.outputs.dtype == np.float32 and pred.outputs.shape == (4, 130, 170)
    assert np.allclose(pred.outputs[:3].sum(0), 1.0, atol=1e-5)
    assert ((pred.outputs >= 0) & (pred.outputs <= 1)).all()
    assert pred.pixel_size_nm == 0.025 and not pred.pixel_size_estimated
    assert pred.working_pixel_size_nm == 0.02
    assert pred.model_name == "multi"
    assert pred.channel("edge").shape == (130, 170)
    with pytest.raises(InputError, match="no channel"):
        pred.channel("particle")
    assert set(pred.timings_s) >= {
        "resample_s",
        "normalise_s",
        "network_s",
        "map_back_s",
        "total_s",
    }


def test_small_image_is_reflect_padded(make_model):
    card = make_model()  # depth 2: receptive field well beyond the 8-px dead band
    pred = predict(card.path, image((17, 23)), 0.02)
    assert pred.outputs.shape == (1, 17, 23)
    assert np.isfinite(pred.outputs).all()


def test_unknown_pixel_size_is_estimated(make_model):
    card = make_model()
    pred = predict(card.path, image((128, 128)))
    assert pred.pixel_size_estimated
    assert 0.005 <= pred.pixel_size_nm <= 0.1  # clipped to the card's range at worst


def test_bad_inputs(make_model):
    card = make_model()
    with pytest.raises(InputError, match="outside the range"):
        predict(card.path, image((64, 64)), 0.5)
    with pytest.raises(InputError, match="NaN"):
        predict(card.path, np.full((64, 64), np.nan), 0.02)
    with pytest.raises(InputError, match="RGB"):
        predict(card.path, np.zeros((64, 64, 3)), 0.02)
    with pytest.raises(InputError, match="batch_size"):
        predict(card.path, image((64, 64)), 0.02, batch_size=0)


def test_progress_per_tile_and_cancel_between_tiles(make_model):
    card = make_model()
    model = get_model(card.path)
    calls = []
    handle = model.module.register_forward_hook(lambda *a: calls.append(1))
    try:
        steps = []
        pred = drain(
            iter_predict(model, image(), 0.02, tile_px=64, overlap_px=16, batch_size=1),
            steps.append,
        )
        n_tiles = len(plan_tiles(pred.outputs.shape[1:], 64, 16, model.stride_multiple))
        tile_steps = [s for s in steps if s.message.startswith("tile")]
        assert len(tile_steps) == n_tiles == len(calls)
        assert tile_steps[-1] == Progress(n_tiles, n_tiles, f"tile {n_tiles}/{n_tiles}")

        calls.clear()
        gen = iter_predict(model, image(), 0.02, tile_px=64, overlap_px=16, batch_size=1)
        for step in gen:
            if step.message.startswith("tile"):
                break
        gen.close()  # what napari's thread_worker does on cancel
        assert len(calls) == 1
        with pytest.raises(Cancelled):
            drain(
                iter_predict(model, image(), 0.02, tile_px=64, batch_size=1),
                should_stop=lambda: True,
            )
    finally:
        handle.remove()


def test_worker_thread_gives_the_same_result_and_restores_threads(make_model):
    card = make_model()
    img = image((150, 150))
    before = torch.get_num_threads()
    main = predict(card.path, img, 0.02, threads=1)
    assert torch.get_num_threads() == before
    out = {}
    t = threading.Thread(
        target=lambda: out.setdefault("p", predict(card.path, img, 0.02, threads=2))
    )
    t.start()
    t.join()
    assert np.allclose(out["p"].outputs, main.outputs, atol=1e-6)


def test_card_background_is_subtracted_at_the_working_sampling(make_model):
    from napari_atomseg.backend.normalisation import subtract_background

    inp = {
        "normalisation": "robust_zscore",
        "working_pixel_size_nm": 0.02,
        "pixel_size_range_nm": [0.005, 0.1],
        "tile_px": 64,
        "overlap_px": 16,
    }
    plain = make_model("plain", seed=3, input=inp)
    flat = make_model("flat", seed=3, input={**inp, "background_sigma_nm": 0.6})
    _y, x = np.mgrid[:96, :112]
    img = (image((96, 112)) + 300.0 * x).astype(np.float32)  # a thickness wedge
    keep = img.copy()
    got = predict(flat.path, img, 0.02).outputs
    assert np.array_equal(img, keep)
    # The same network on the image flattened by hand (0.6 nm = 30 working px) ...
    want = predict(plain.path, subtract_background(img, 30.0), 0.02).outputs
    same = np.abs(got - want).max()
    assert same < 1e-5
    # ... and the wedge no longer reaches the network.
    assert np.abs(got - predict(plain.path, img, 0.02).outputs).max() > 100 * max(same, 1e-7)
