"""segment() / iter_segment(): both methods, options, results, errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

import napari_atomseg
from napari_atomseg._progress import Progress
from napari_atomseg.errors import InputError, ModelError
from napari_atomseg.segmentation import SegmentationResult, iter_segment, segment
from napari_atomseg.segmentation.metrics import MaskScores
from tests._synth import contaminated_lattice, cosine_hex_lattice, disc


def test_bragg_contamination_end_to_end():
    image, truth = contaminated_lattice(seed=11)
    original = image.copy()
    result = segment(image, method="bragg")
    np.testing.assert_array_equal(image, original)
    labels, names = result  # unpacks as (labels, class_names)
    assert names == ("crystal", "amorphous", "vacuum")
    assert labels.shape == image.shape and labels.dtype == np.uint8
    scores = MaskScores.from_masks(truth, result.flagged_mask)
    assert scores.summary()["jaccard"] > 0.85
    fractions = result.class_fractions()
    assert sum(fractions.values()) == pytest.approx(1.0)
    assert fractions["amorphous"] == pytest.approx(truth.mean(), abs=0.03)
    assert result.details["lattice_period_px"] == pytest.approx(6.3, rel=0.02)
    assert result.method == "bragg" and result.probabilities is None


def test_bragg_finds_vacuum_hole():
    shape = (256, 256)
    hole = disc(shape, (190, 70), 35)
    contamination = disc(shape, (70, 180), 40)
    image, _ = contaminated_lattice(shape, mask=contamination, vacuum=hole, seed=2)
    labels, names = segment(image, method="bragg")
    vac = labels == names.index("vacuum")
    inter = (vac & hole).sum() / (vac | hole).sum()
    assert inter > 0.6
    assert (labels[contamination] == 1).mean() > 0.9


def test_bragg_particles():
    shape = (256, 256)
    rng = np.random.default_rng(4)
    particle = disc(shape, (128, 128), 50)
    from scipy import ndimage as ndi

    carbon = ndi.gaussian_filter(rng.normal(size=shape), 2.0)
    carbon *= 1.0 / carbon.std()
    image = 100 + 10 * (
        cosine_hex_lattice(shape, 5.0) * particle * 1.5 + carbon + 0.3 * rng.normal(size=shape)
    )
    result = segment(image, task="particles", method="bragg")
    assert result.class_names == ("background", "particle")
    dice = MaskScores.from_masks(particle, result.flagged_mask).summary()["f1"]
    assert dice > 0.9


def test_generator_yields_progress_and_top_level_import():
    image, _ = contaminated_lattice(seed=1)
    gen = iter_segment(image, method="bragg")
    steps = []
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        result = stop.value
    assert all(isinstance(s, Progress) for s in steps)
    assert steps[-1].fraction == 1.0 and len(steps) >= 3
    assert isinstance(result, SegmentationResult)
    # The top-level function gives the same result.
    top = napari_atomseg.segment(image, method="bragg")
    np.testing.assert_array_equal(top.labels, result.labels)


def test_options_are_routed_and_checked():
    image, _ = contaminated_lattice(seed=3)
    strict = segment(image, method="bragg", mask_threshold=5.0, smooth_sigma=0)
    assert not strict.flagged_mask.any()
    px = segment(image, method="bragg", length_unit="px", min_region_size=0, smooth_sigma=0)
    assert px.details["cleanup"].length_unit == "px"
    with pytest.raises(InputError, match="unknown option 'mask_thresold'"):
        segment(image, method="bragg", mask_thresold=1.0)
    with pytest.raises(InputError, match="only apply to method='unet'"):
        segment(image, method="bragg", model="x")
    with pytest.raises(InputError, match="only apply to method='bragg'"):
        segment(image, task="particles", method="unet", mask_threshold=1.0)
    with pytest.raises(InputError, match="only apply to method='unet'"):
        segment(image, method="bragg", bragg_weight=0.5)
    with pytest.raises(InputError, match="contamination' only"):
        segment(image, task="particles", bragg_weight=0.5)
    with pytest.raises(InputError, match="bragg_weight"):
        segment(image, bragg_weight=1.5)
    with pytest.raises(InputError, match="task"):
        segment(image, task="cells", method="bragg")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="method"):
        segment(image, method="otsu")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="pixel size is unknown"):
        segment(image, method="bragg", length_unit="nm")
    with pytest.raises(InputError, match="RGB"):
        segment(np.zeros((64, 64, 3)), method="bragg")


# ---------------------------------------------------------------- U-Net path (fake backend)
@dataclass
class _Input:
    working_pixel_size_nm: float | None = 0.05
    pixel_size_range_nm: tuple[float, float] | None = None


@dataclass
class _Card:
    name: str
    task: str
    channels: tuple[str, ...]
    default: bool = False
    input: _Input = field(default_factory=_Input)


@dataclass
class _Loaded:
    card: _Card


@dataclass
class _Prediction:
    outputs: np.ndarray
    channels: tuple[str, ...]
    pixel_size_nm: float
    pixel_size_estimated: bool
    working_pixel_size_nm: float


def _fake_backend(monkeypatch, cards, make_outputs):
    import napari_atomseg.backend as backend

    calls = {}

    def list_models(task=None):
        return [c for c in cards if task is None or c.task == task]

    def get_model(name, device=None):
        calls["model"] = name
        return _Loaded(next(c for c in cards if c.name == name))

    def iter_predict(model, image, pixel_size_nm=None, **kw):
        calls["image"] = image
        calls["kw"] = kw
        yield Progress(0, 1, "tile")
        return _Prediction(
            make_outputs(image, model.card),
            model.card.channels,
            pixel_size_nm or 0.05,
            pixel_size_nm is None,
            0.04,
        )

    monkeypatch.setattr(backend, "list_models", list_models, raising=False)
    monkeypatch.setattr(backend, "get_model", get_model, raising=False)
    monkeypatch.setattr(backend, "iter_predict", iter_predict, raising=False)
    return calls


def test_unet_maps_channels_by_name(monkeypatch):
    image, truth = contaminated_lattice(seed=6)
    # Model channels in another order than the task's labels.
    card = _Card("seg_v1", "segmentation", ("vacuum", "amorphous", "crystal"), default=True)

    def outputs(img, c):
        p_am = truth.astype(np.float32) * 0.9 + 0.05
        return np.stack([np.full_like(p_am, 0.05), p_am, 0.95 - p_am])

    calls = _fake_backend(monkeypatch, [_Card("atoms", "atoms", ("heatmap",)), card], outputs)
    result = segment(
        image,
        pixel_size_nm=0.03,
        method="unet",
        tile_px=256,
        smooth_sigma=0,
        min_region_size=0,
        bragg_weight=0,  # the U-Net alone: arg-max of its probabilities
    )
    assert calls["model"] == "seg_v1" and calls["kw"]["tile_px"] == 256
    assert "bragg_weight" not in calls["kw"]
    np.testing.assert_array_equal(result.flagged_mask, truth)
    assert result.probabilities.shape == (3, *image.shape)
    np.testing.assert_allclose(result.probabilities[1], truth * 0.9 + 0.05, atol=1e-6)
    assert result.details["model"] == "seg_v1" and result.pixel_size_nm == 0.03
    # The backend gets the flat-fielded image, not standardised (it normalises per card).
    assert float(calls["image"].mean()) == pytest.approx(float(image.mean()), rel=0.01)


def test_unet_particle_sigmoid_and_missing_model(monkeypatch):
    image, truth = contaminated_lattice(seed=7)
    card = _Card("np_v1", "segmentation", ("particle",))
    _fake_backend(monkeypatch, [card], lambda img, c: truth[None].astype(np.float32))
    result = segment(image, task="particles", smooth_sigma=0, min_region_size=0)
    np.testing.assert_array_equal(result.flagged_mask, truth)
    assert result.pixel_size_estimated
    with pytest.raises(ModelError, match="no segmentation model for task 'contamination'"):
        segment(image, task="contamination")
    with pytest.raises(ModelError, match="cannot segment task 'contamination'"):
        segment(image, task="contamination", model="np_v1")


def test_bragg_contamination_map_is_a_logistic_of_residual_over_threshold():
    from napari_atomseg.segmentation.api import bragg_contamination_map
    from napari_atomseg.segmentation.bragg import bragg_filter

    image, truth = contaminated_lattice(seed=8)
    res = bragg_filter(image)
    q = bragg_contamination_map(res)
    assert q.dtype == np.float32 and q.shape == image.shape
    assert float(q.min()) >= 0.0 and float(q.max()) <= 1.0
    # 0.5 exactly at the filter's own threshold: q > 0.5 is the Bragg mask.
    np.testing.assert_array_equal(q > 0.5, res.mask)
    assert float(q[truth].mean()) > 0.8 > 0.2 > float(q[~truth].mean())


def test_unet_bragg_average_is_the_default_for_contamination(monkeypatch):
    from napari_atomseg.segmentation.api import bragg_contamination_map
    from napari_atomseg.segmentation.bragg import bragg_filter
    from napari_atomseg.segmentation.preprocess import PreprocessOptions, preprocess

    image, truth = contaminated_lattice(seed=9)
    card = _Card("seg_v1", "segmentation", ("crystal", "amorphous", "vacuum"), default=True)
    p_am = np.full(image.shape, 0.6, np.float32)
    p_am[:, :20] = 0.0  # the U-Net is sure there is no contamination here
    _fake_backend(
        monkeypatch, [card], lambda img, c: np.stack([1 - p_am, p_am, np.zeros_like(p_am)])
    )
    result = segment(
        image, 0.03, method="unet", smooth_sigma=0, min_region_size=0, fill_holes=False
    )
    assert result.details["unet_options"].bragg_weight == 0.5
    q = bragg_contamination_map(bragg_filter(preprocess(image, PreprocessOptions())))
    # (1 - w) p + w q > 0.5 with w = 0.5: p + q > 1.
    expected = p_am + q > 1.0
    assert (result.flagged_mask != expected).mean() < 1e-3
    assert not result.flagged_mask[:, :20].any()
    assert MaskScores.from_masks(truth, result.flagged_mask).summary(1)["jaccard"] > 0.7
    # The Bragg options shape its map; bragg_weight=0 gives the U-Net's arg-max alone.
    strict = segment(
        image, 0.03, method="unet", mask_threshold=50.0, smooth_sigma=0, min_region_size=0
    )
    assert not strict.flagged_mask.any()
    alone = segment(image, 0.03, method="unet", bragg_weight=0, smooth_sigma=0, min_region_size=0)
    assert alone.flagged_mask[:, 20:].all()


def test_unet_vacuum_needs_no_lattice():
    """The U-Net/Bragg default: a pixel the U-Net calls vacuum stays vacuum only where the
    Bragg filter sees no lattice fringes; contamination labels are never touched."""
    from napari_atomseg.segmentation import bragg as _bragg
    from napari_atomseg.segmentation.bragg_labels import (
        vacuum_needs_no_lattice as _vacuum_needs_no_lattice,
    )

    shape = (256, 256)
    hole = disc(shape, (190, 70), 35)
    contamination = disc(shape, (70, 180), 40)
    image, _ = contaminated_lattice(shape, mask=contamination, vacuum=hole, seed=2)
    bres = _bragg.bragg_filter(image, _bragg.with_options(None))
    # A U-Net that got crystal vs vacuum wrong everywhere outside the contamination.
    labels = np.where(contamination, 1, 2).astype(np.uint8)
    before = labels.copy()
    fixed = _vacuum_needs_no_lattice(labels, bres, 0.3)
    np.testing.assert_array_equal(labels, before)  # input not modified
    np.testing.assert_array_equal(fixed[contamination], 1)
    lattice = ~hole & ~contamination
    assert (fixed[lattice] == 0).mean() > 0.9  # lattice is crystal again
    assert (fixed[hole] == 2).mean() > 0.6  # the hole stays vacuum
    # No vacuum rule (vacuum_fraction None): unchanged.
    np.testing.assert_array_equal(_vacuum_needs_no_lattice(labels, bres, None), labels)


def test_an_image_with_no_length_scale_is_segmented_at_the_models_sampling():
    """Nothing in this image carries a length scale (no lattice, no features the estimate
    can measure), so the pixel size stays unknown: the U-Net runs at its working sampling
    and the clean-up (lengths in nm) uses that sampling too, instead of refusing."""
    from napari_atomseg.scale import estimate_image_scale

    img = np.random.default_rng(0).random((128, 96))  # white noise: no feature width either
    assert estimate_image_scale(img).pixel_size_nm is None
    res = segment(img, None)
    assert res.pixel_size_nm is None and res.labels.shape == img.shape
    assert any("working sampling" in w for w in res.warnings)
