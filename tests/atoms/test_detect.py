"""find_atoms and its two halves: the network's answer and post-processing."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from napari_atomseg._progress import Progress, drain
from napari_atomseg.atoms import heatmap as atoms_heatmap
from napari_atomseg.atoms.find import (
    find_atoms,
    heatmap_to_atoms,
    iter_find_atoms,
    labels_for,
    more_confident,
    network_inversions,
)
from napari_atomseg.atoms.heatmap import HeatmapResult, predict_heatmap
from napari_atomseg.atoms.imaging import imaging_from_metadata
from napari_atomseg.atoms.metrics import point_metrics
from napari_atomseg.atoms.options import VIEWS_CHOICES, FinderOptions
from napari_atomseg.errors import InputError, ModelError, ResultWarning
from tests._synth import heatmap_for, hex_hollows_px, hex_lattice_px, render_columns

PS = 0.02
_RNG = np.random.default_rng(123)


@pytest.fixture(scope="module")
def lattice():
    rng = np.random.default_rng(0)
    shape = (256, 256)
    true = hex_lattice_px(shape, 0.3 / PS, margin_px=3, jitter_px=0.3, seed=0)
    img = rng.poisson(render_columns(shape, true, 0.045 / PS, 150, 30)).astype(np.float32)
    # A network-like heatmap: right columns, peaks a little off (0.25 px rms).
    heat = heatmap_for(shape, true + rng.normal(0, 0.25, true.shape), 0.045 / PS)
    return img, heat, true


def _metrics(df, true):
    return point_metrics(
        df[["y_px", "x_px"]].to_numpy(), true, radius_fraction_of_spacing=0.5, pixel_size_nm=PS
    )


@pytest.mark.parametrize("refine, max_rms_pm", [("gaussian", 3.0), ("com", 3.0), ("none", 9.0)])
def test_post_processing_finds_and_refines_every_column(lattice, refine, max_rms_pm):
    img, heat, true = lattice
    before = img.copy()
    res = HeatmapResult.from_arrays(img, heat, PS)
    df = heatmap_to_atoms(res, refine=refine)
    np.testing.assert_array_equal(img, before)
    m = _metrics(df, true)
    assert m.f1 == 1.0
    assert m.rms_error_pm < max_rms_pm  # the heatmap alone is 0.25 px = 5 pm off
    assert list(df.columns[:8]) == [
        "y_px", "x_px", "y_nm", "x_nm", "confidence", "evidence", "height", "intensity",
    ]  # fmt: skip
    np.testing.assert_allclose(df["y_nm"], df["y_px"] * PS)
    # Nearest of six jittered (0.3 px) neighbours: slightly below the lattice spacing.
    assert df["nn_spacing_nm"].median() == pytest.approx(0.29, rel=0.02)
    assert (np.diff(df["confidence"].to_numpy()) <= 0).all()
    assert df.attrs["median_nn_spacing_px"] == pytest.approx(df["nn_spacing_px"].median())
    assert df.attrs["contrast"] == "bright" and df.attrs["unsupported_removed"] == 0
    # The joint fit's heights are the columns' 150 counts above the 30 of background.
    assert df["height"].median() == pytest.approx(150, rel=0.1)
    assert df["evidence"].min() > 10
    if refine == "gaussian":
        assert df["refined"].all()
        assert df["sigma_nm"].median() == pytest.approx(0.045, rel=0.05)
        assert df["intensity"].median() == pytest.approx(
            150 * 2 * np.pi * (0.045 / PS) ** 2, rel=0.05
        )


def test_a_network_that_marks_hollows_cannot_put_a_column_there(lattice):
    """Heatmap peaks between the columns (a lattice prior filling empty space) have no
    image evidence and are dropped; the real columns stay. When most peaks are hollows
    the result says so."""
    img, heat, true = lattice
    hollows = hex_hollows_px(true, 0.3 / PS, img.shape)
    both = np.maximum(heat, heatmap_for(img.shape, hollows, 0.045 / PS))
    res = HeatmapResult.from_arrays(img, both, PS)
    df = heatmap_to_atoms(res)
    m = _metrics(df, true)
    # A hollow's evidence is noise: at the default two noise levels about 1 % get
    # through, at four none.
    assert m.recall == 1.0 and m.false_positives <= 0.01 * len(hollows)
    assert df.attrs["unsupported_removed"] >= 0.95 * len(hollows)
    assert _metrics(heatmap_to_atoms(res, min_evidence=4.0), true).precision == 1.0
    only_hollows = HeatmapResult.from_arrays(img, heatmap_for(img.shape, hollows, 0.045 / PS), PS)
    df = heatmap_to_atoms(only_hollows)
    assert len(df) <= 0.05 * len(hollows)
    (warning,) = df.attrs["warnings"]
    assert "shows no column" in warning and "hollows" in warning
    with pytest.warns(ResultWarning, match="shows no column"):
        warnings.warn(warning, ResultWarning, stacklevel=1)


def test_a_light_column_beside_a_heavy_one_is_in_the_image():
    """SrTiO3-like: bright corners, faint (8 %) columns on the cell edges. A faint column
    sits in its bright neighbours' tails; the joint fit gives each its own height."""
    shape, a = (200, 200), 0.39 / PS
    corners = np.array([(i * a, j * a) for i in range(-1, 7) for j in range(-1, 7)]) + 12.0
    edges = np.concatenate([corners + np.array([0, a / 2]), corners + np.array([a / 2, 0])])
    inside = lambda p: p[(p > 4).all(1) & (p < shape[0] - 5).all(1)]  # noqa: E731
    corners, edges = inside(corners), inside(edges)
    clean = render_columns(shape, corners, 0.05 / PS, 400, 50) + render_columns(
        shape, edges, 0.05 / PS, 32, 0
    )
    img = np.random.default_rng(3).poisson(clean).astype(np.float32)
    heat = heatmap_for(shape, np.concatenate([corners, edges]), 0.045 / PS)
    df = heatmap_to_atoms(HeatmapResult.from_arrays(img, heat, PS))
    assert _metrics(df, np.concatenate([corners, edges])).f1 == 1.0
    light = df["height"] < 100
    assert light.sum() == len(edges)
    assert df.loc[light, "height"].median() == pytest.approx(32, rel=0.25)


def test_positions_follow_the_image_not_the_lattice_the_network_expects():
    """B columns displaced 15 pm from their cell centres, the heatmap at the ideal sites
    (a network that expects the centred lattice): the refined shift is the image's."""
    shape, a = (240, 240), 0.39 / 0.01
    shift_px = np.array([0.0, 0.015 / 0.01])
    ideal_a = np.array([(i * a, j * a) for i in range(7) for j in range(7)]) + 6.0
    ideal_b = ideal_a + a / 2
    ideal_b = ideal_b[(ideal_b < shape[0] - 6).all(1)]
    img = render_columns(shape, ideal_a, 4.0, 300, 20) + render_columns(
        shape, ideal_b + shift_px, 4.0, 120, 0
    )
    img = np.random.default_rng(5).poisson(img * 20).astype(np.float32)
    heat = heatmap_for(shape, np.concatenate([ideal_a, ideal_b]), 4.0)
    df = heatmap_to_atoms(HeatmapResult.from_arrays(img, heat, 0.01), refine="gaussian")
    pos = df[["y_px", "x_px"]].to_numpy()
    near_b = np.linalg.norm(pos[:, None] - ideal_b[None], axis=2).min(axis=1) < 5
    measured = (
        pos[near_b] - ideal_b[np.linalg.norm(pos[near_b, None] - ideal_b[None], axis=2).argmin(1)]
    )
    assert measured[:, 1].mean() * 10 == pytest.approx(15.0, abs=1.0)  # pm
    assert abs(measured[:, 0].mean() * 10) < 1.0


def test_dark_columns_are_found_on_the_inverted_image(lattice):
    """A result whose network saw the inverted image (contrast "dark") fits and refines
    the inverted image."""
    img, heat, true = lattice
    dark = img.max() - img
    df = heatmap_to_atoms(HeatmapResult.from_arrays(dark, heat, PS, inverted=True))
    assert df.attrs["contrast"] == "dark" and df.attrs["network_input"] == "inverted"
    assert _metrics(df, true).f1 == 1.0 and _metrics(df, true).rms_error_pm < 3.0
    as_is = heatmap_to_atoms(HeatmapResult.from_arrays(dark, heat, PS))
    assert len(as_is) < 0.1 * len(true)  # bright columns wanted, dark ones given


def test_hrtem_columns_may_stand_out_either_way(lattice):
    """Phase contrast: a sublattice can be dark where the other is bright. With
    imaging="hrtem" a column needs evidence of either sign, with STEM its contrast's."""
    img, heat, true = lattice
    flipped = img.copy()
    left = true[:, 1] < 128
    mixed = render_columns(img.shape, true[~left], 0.045 / PS, 150, 100) - render_columns(
        img.shape, true[left], 0.045 / PS, 60, 0
    )
    flipped = np.random.default_rng(1).poisson(np.clip(mixed, 1, None)).astype(np.float32)
    res = HeatmapResult.from_arrays(flipped, heat, PS)
    assert _metrics(heatmap_to_atoms(res, imaging="hrtem"), true).recall == 1.0
    stem = heatmap_to_atoms(res, imaging="stem")
    assert _metrics(stem, true).recall == pytest.approx((~left).mean(), abs=0.03)


def test_threshold_evidence_and_separation_sliders(lattice):
    img, heat, true = lattice
    weak = heat.copy()
    weak[:, :128] *= 0.5  # a 0.6 threshold drops the left half
    res_weak = HeatmapResult.from_arrays(img, weak, PS)
    assert (heatmap_to_atoms(res_weak, threshold=0.6)["x_px"] > 120).all()
    res = HeatmapResult.from_arrays(img, heat, PS)
    sparse = heatmap_to_atoms(res, min_separation_nm=0.5, refine="none")
    assert len(sparse) < 0.5 * len(true)
    assert heatmap_to_atoms(res, min_separation_px=3, refine="none").attrs["min_separation_px"] == 3
    strict = heatmap_to_atoms(res, min_evidence=1e3)
    assert len(strict) == 0 and strict.attrs["unsupported_removed"] == len(true)
    # The fit is made once per separation: the threshold and evidence only filter.
    assert len(res._cache) == 3


def test_without_pixel_size_columns_are_in_pixels_only(lattice):
    img, heat, true = lattice
    df = heatmap_to_atoms(HeatmapResult.from_arrays(img, heat, None))
    assert "y_nm" not in df and "nn_spacing_nm" not in df and "sigma_nm" not in df
    assert df.attrs["min_separation_px"] == 2.0
    assert len(df) == len(true)
    with pytest.raises(InputError, match="needs the pixel size"):
        heatmap_to_atoms(HeatmapResult.from_arrays(img, heat, None), min_separation_nm=0.1)


def test_labels_match_rows(lattice):
    img, heat, _ = lattice
    res = HeatmapResult.from_arrays(img, heat, PS)
    df = heatmap_to_atoms(res)
    lab = labels_for(res, df)
    assert lab.max() == len(df)
    idx = np.rint(df[["y_px", "x_px"]].to_numpy()).astype(int)
    np.testing.assert_array_equal(lab[idx[:, 0], idx[:, 1]], np.arange(1, len(df) + 1))


def test_empty_heatmap_gives_an_empty_table_with_all_columns(lattice):
    img, heat, _ = lattice
    df = heatmap_to_atoms(HeatmapResult.from_arrays(img, np.zeros_like(heat), PS))
    assert len(df) == 0
    assert {"y_px", "x_px", "confidence", "evidence", "intensity"} <= set(df.columns)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"threshold": 1.5}, "threshold"),
        ({"refine": "heatmap"}, "refine"),
        ({"contrast": "grey"}, "contrast"),
        ({"min_evidence": -1}, "min_evidence"),
        ({"exclude_border_px": 2.5}, "exclude_border_px"),
        ({"min_separation_nm": 0.1, "min_separation_px": 2}, "not both"),
        ({"contrast_check": False}, "unknown option"),
    ],
)
def test_bad_post_processing_options(lattice, kwargs, match):
    img, heat, _ = lattice
    with pytest.raises(InputError, match=match):
        heatmap_to_atoms(HeatmapResult.from_arrays(img, heat, PS), **kwargs)


def test_options_are_one_frozen_checked_object():
    opts = FinderOptions(threshold=0.3, contrast="dark")
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.threshold = 0.5  # type: ignore[misc]
    assert opts.replace(refine="com").refine == "com" and opts.refine is None
    assert FinderOptions.from_kwargs(opts, views=2).views == 2
    with pytest.raises(InputError, match="views"):
        opts.replace(views=3)


def test_from_arrays_validates():
    with pytest.raises(InputError, match="shape"):
        HeatmapResult.from_arrays(_RNG.random((32, 32)), np.zeros((16, 16)))
    with pytest.raises(InputError, match="NaN"):
        HeatmapResult.from_arrays(_RNG.random((32, 32)), np.full((32, 32), np.nan))
    with pytest.raises(InputError, match="RGB"):
        HeatmapResult.from_arrays(_RNG.random((32, 32, 3)), np.zeros((32, 32)))


# --------------------------------------------------------------------- polarity


@pytest.mark.parametrize(
    "contrast, imaging, expected",
    [
        ("bright", "hrtem", (False,)),
        ("dark", None, (True,)),
        ("auto", None, (False,)),
        ("auto", "stem", (False,)),
        ("auto", "hrtem", (False, True)),
    ],
)
def test_which_ways_round_the_network_sees_the_image(contrast, imaging, expected):
    assert network_inversions(contrast, imaging) == expected


def test_hrtem_of_unknown_contrast_keeps_the_more_confident_polarity(lattice, monkeypatch):
    """A network sure of the inverted image's columns (0.9) and unsure of the image as it
    is (0.5, hollows): find_atoms runs both and keeps the inverted answer."""
    img, heat, true = lattice
    dark = (img.max() - img).astype(np.float32)
    hollows = hex_hollows_px(true, 0.3 / PS, img.shape)
    answers = {True: 0.9 * heat, False: 0.5 * heatmap_for(img.shape, hollows, 0.045 / PS)}
    seen = []

    def fake(image, pixel_size_nm=None, model="default", *, contrast="auto", invert=None, **kw):
        seen.append(invert)
        yield Progress(0, 1, "fake network")
        res = HeatmapResult.from_arrays(image, answers[bool(invert)], pixel_size_nm, invert)
        return dataclasses.replace(res, contrast=contrast)

    monkeypatch.setattr(atoms_heatmap, "iter_predict_heatmap", fake)
    df = find_atoms(dark, PS, imaging="hrtem")
    assert seen == [False, True]
    assert df.attrs["contrast"] == "dark" and "chosen" in df.attrs["polarity"]
    assert _metrics(df, true).f1 == 1.0
    seen.clear()
    find_atoms(dark, PS, imaging="stem")
    assert seen == [False]


def test_more_confident_compares_the_best_columns_of_each():
    import pandas as pd

    a = pd.DataFrame({"confidence": [0.9, 0.9, 0.3]})
    b = pd.DataFrame({"confidence": [0.7] * 10})
    assert more_confident([(None, a), (None, b)]) == 0  # top 3: 0.7 vs 0.7.. a's 0.9s win
    assert more_confident([(None, pd.DataFrame({"confidence": []})), (None, b)]) == 1


# --------------------------------------------------------------------- with a model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained atoms model exported through the backend (plumbing, not accuracy)."""
    from tests._models import export_tiny_atoms_model

    return export_tiny_atoms_model(tmp_path_factory.mktemp("model"), "atoms_tiny_test")


def test_dark_contrast_shows_the_network_the_inverted_image(lattice, tiny_model):
    """contrast='dark' runs the network on the inverted image (and fits it): the same
    columns as the inverted image given as bright, while the result keeps the original."""
    img, _, _ = lattice
    dark = img.max() - img
    path = str(tiny_model.path)
    res = predict_heatmap(dark, PS, model=path, contrast="dark")
    np.testing.assert_array_equal(res.image, dark)
    assert res.contrast == "dark" and res.inverted
    inv = predict_heatmap(-dark, PS, model=path)
    np.testing.assert_allclose(res.heatmap, inv.heatmap, atol=1e-6)
    opts = {"refine": "com", "threshold": 0.0, "min_evidence": 0.0}
    as_dark = find_atoms(dark, PS, model=path, contrast="dark", **opts)
    as_bright = find_atoms(-dark, PS, model=path, contrast="bright", **opts)
    np.testing.assert_allclose(
        as_dark[["y_px", "x_px"]].to_numpy(), as_bright[["y_px", "x_px"]].to_numpy(), atol=1e-4
    )
    assert as_dark.attrs["contrast"] == "dark"
    with pytest.raises(InputError, match="contrast"):
        predict_heatmap(dark, PS, model=path, contrast="black")


def test_find_atoms_runs_the_model_end_to_end(lattice, tiny_model):
    img, _, _ = lattice
    steps = []
    opts = {"refine": "com", "threshold": 0.0, "min_evidence": 0.0}
    # (an untrained network: threshold 0 so that there are columns to post-process)
    df = drain(iter_find_atoms(img, PS, model=str(tiny_model.path), **opts), steps.append)
    assert all(isinstance(s, Progress) for s in steps) and len(steps) >= 2
    assert df.attrs["model"] == "atoms_tiny_test"
    assert df.attrs["pixel_size_nm"] == PS and not df.attrs["pixel_size_estimated"]
    assert "y_nm" in df
    res = predict_heatmap(img, PS, model=str(tiny_model.path))
    assert res.heatmap.shape == img.shape and res.heatmap.dtype == np.float32
    assert res.heatmap.min() >= 0.0 and res.heatmap.max() <= 1.0
    # The same network output gives the same columns through either path.
    again = heatmap_to_atoms(res, **opts)
    np.testing.assert_allclose(again[["y_px", "x_px"]], df[["y_px", "x_px"]])


def test_find_atoms_rejects_bad_input_before_running(tiny_model):
    path = str(tiny_model.path)
    with pytest.raises(InputError, match="NaN"):
        find_atoms(np.full((64, 64), np.nan), 0.02, model=path)
    with pytest.raises(InputError, match="RGB"):
        find_atoms(np.zeros((64, 64, 3)), 0.02, model=path)
    with pytest.raises(InputError, match="unknown option"):
        find_atoms(_RNG.random((64, 64)), 0.02, model=path, thresh=0.3)
    with pytest.raises(InputError, match="refine"):
        find_atoms(_RNG.random((64, 64)), 0.02, model=path, refine="best")
    with pytest.raises(InputError, match="outside the range"):
        find_atoms(_RNG.random((64, 64)), 5.0, model=path)
    with pytest.raises(ModelError, match="unknown model"):
        find_atoms(_RNG.random((64, 64)), 0.02, model="no_such_model")


def test_card_postprocess_sets_the_defaults_and_explicit_options_win(lattice, tmp_path):
    """A model card's recommended ``postprocess`` (its calibrated threshold, evidence,
    refinement) is what post-processing uses when the caller gives nothing; the caller's
    options win; keys of older cards (rescorer, noise ramp, image check, refine heatmap)
    still load and are left out."""
    from napari_atomseg.atoms.options import card_postprocess, model_postprocess
    from napari_atomseg.backend import load_card
    from tests._models import export_tiny_atoms_model

    img, heat, true = lattice
    weak = heat.copy()
    weak[:, :128] *= 0.5  # left half peaks ~0.5x: below 0.6, above 0.2
    plain = HeatmapResult.from_arrays(img, weak, PS)
    calibrated = HeatmapResult.from_arrays(img, weak, PS)
    calibrated.postprocess = {"threshold": 0.3, "refine": "none", "min_evidence": 4.0}
    plain_df = heatmap_to_atoms(plain)  # module default 0.5
    assert plain_df.attrs["threshold"] == 0.5 and (plain_df["x_px"] > 120).all()
    low = heatmap_to_atoms(calibrated)
    assert low.attrs["threshold"] == 0.3 and low.attrs["refine"] == "none"
    assert low.attrs["min_evidence"] == 4.0
    assert _metrics(low, true).recall > 0.95 and len(low) > 1.5 * len(plain_df)
    high = heatmap_to_atoms(calibrated, threshold=0.6, refine="com")
    assert high.attrs["threshold"] == 0.6 and high.attrs["refine"] == "com"
    assert (high["x_px"] > 120).all()

    old = {
        "threshold": 0.3, "refine": "heatmap", "contrast_check": True, "threshold_noisy": 0.6,
        "rescorer": {"weights": [1, 2]}, "bogus": 1,
    }  # fmt: skip
    card = export_tiny_atoms_model(tmp_path, "atoms_pp_test", postprocess=old)
    loaded = load_card(card.path)
    assert loaded.postprocess["threshold"] == 0.3
    assert card_postprocess(loaded) == {"threshold": 0.3, "refine": "heatmap"}
    assert model_postprocess(str(card.path)) == {"threshold": 0.3, "refine": "heatmap"}
    assert model_postprocess("no_such_model") == {}
    res = predict_heatmap(img, PS, model=str(card.path))
    df = heatmap_to_atoms(res)
    assert df.attrs["threshold"] == 0.3 and df.attrs["refine"] == "gaussian"


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"acquisition_mode": "STEM"}, "stem"),
        ({"acquisition_mode": "TEM"}, "hrtem"),
        ({"acquisition_mode": "HAADF-STEM imaging"}, "stem"),
        ({"calibration": {"metadata": {"acquisition_mode": "TEM"}}}, "hrtem"),
        ({"calibration": {"metadata": {"acquisition_mode": "DIFFRACTION"}}}, None),
        ({"simulation_parameters": {"mode": "haadf"}}, "stem"),
        ({"simulation_parameters": {"mode": "hrtem"}}, "hrtem"),
        ({"acquisition_mode": ""}, None),
        ({"acquisition_mode": 3}, None),
        ({}, None),
        (None, None),
    ],
)
def test_imaging_from_metadata(metadata, expected):
    assert imaging_from_metadata(metadata) == expected


class _EchoPrediction:
    """What backend.iter_predict returns, for a network that answers its input: an
    equivariant "network", so every view turned back must give the same heatmap."""

    def __init__(self, image, pixel_size_nm):
        self.outputs = [np.asarray(image, np.float32)]
        self.channels = ("heatmap",)
        self.pixel_size_nm = pixel_size_nm if pixel_size_nm is not None else 0.03
        self.pixel_size_estimated = pixel_size_nm is None
        self.model_name = "echo"
        self.timings_s = {"network": 0.5}

    def channel(self, name):
        return self.outputs[self.channels.index(name)]


class _EchoCard:
    task = "atoms"
    name = "echo"
    postprocess = None
    training = None


class _EchoModel:
    card = _EchoCard()


def test_views_turn_every_heatmap_back_before_averaging(monkeypatch):
    import napari_atomseg.backend as backend
    from napari_atomseg.atoms.heatmap import iter_predict_heatmap

    seen = []

    def echo(model, image, pixel_size_nm, **kw):
        seen.append((image.shape, pixel_size_nm))
        yield Progress(0, 1, "network")
        return _EchoPrediction(image, pixel_size_nm)

    monkeypatch.setattr(backend, "iter_predict", echo)
    monkeypatch.setattr(atoms_heatmap, "resolve_model", lambda model, device: _EchoModel())
    img = np.random.default_rng(0).random((40, 56)).astype(np.float32)  # transposes return
    one = drain(iter_predict_heatmap(img, 0.02, "echo", views=1))
    for views in VIEWS_CHOICES:
        seen.clear()
        steps = []
        res = drain(iter_predict_heatmap(img, 0.02, "echo", views=views), steps.append)
        assert len(seen) == views
        assert {shape for shape, _ in seen} <= {(40, 56), (56, 40)}
        np.testing.assert_allclose(res.heatmap, one.heatmap, atol=1e-6)
        assert res.heatmap.shape == img.shape
        assert res.timings_s["network"] == pytest.approx(0.5 * views)
        if views > 1:
            assert any(f"view {views}/{views}" in s.message for s in steps)
    # An estimated pixel size is estimated once: later views get the first one's.
    seen.clear()
    res = drain(iter_predict_heatmap(img, None, "echo", views=4))
    assert [p for _, p in seen] == [None, 0.03, 0.03, 0.03] and res.pixel_size_estimated
    for bad in (0, 3, 16, True, 2.0):
        with pytest.raises(InputError, match="views: expected one of"):
            drain(iter_predict_heatmap(img, 0.02, "echo", views=bad))
