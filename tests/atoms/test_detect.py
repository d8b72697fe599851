"""find_atoms and its two halves: heatmap prediction and post-processing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_atomseg._progress import Progress, drain
from napari_atomseg.atoms import heatmap as atoms_heatmap
from napari_atomseg.atoms.find import find_atoms, heatmap_to_atoms, iter_find_atoms, labels_for
from napari_atomseg.atoms.heatmap import HeatmapResult, predict_heatmap
from napari_atomseg.atoms.image_check import (
    HRTEM_MIN_PROMINENCE,
    check_disagrees,
    default_min_prominence,
)
from napari_atomseg.atoms.imaging import imaging_from_metadata
from napari_atomseg.atoms.metrics import point_metrics
from napari_atomseg.atoms.options import VIEWS_CHOICES
from napari_atomseg.errors import InputError, ModelError, ResultWarning
from tests.atoms.synth import heatmap_for, hex_hollows_px, hex_lattice_px, render

PS = 0.02
_RNG = np.random.default_rng(123)


@pytest.fixture(scope="module")
def lattice():
    rng = np.random.default_rng(0)
    shape = (256, 256)
    true = hex_lattice_px(shape, 0.3 / PS, margin_px=3, jitter_px=0.3, seed=0)
    img = rng.poisson(render(shape, true, 0.045 / PS, 150, 30)).astype(np.float32)
    # A network-like heatmap: right columns, peaks a little off (0.25 px rms).
    heat = heatmap_for(shape, true + rng.normal(0, 0.25, true.shape), 0.045 / PS)
    return img, heat, true


def _metrics(df, true):
    return point_metrics(
        df[["y_px", "x_px"]].to_numpy(), true, radius_fraction_of_spacing=0.5, pixel_size_nm=PS
    )


@pytest.mark.parametrize(
    "refine, max_rms_pm", [("gaussian", 3.0), ("com", 3.0), ("heatmap", 9.0), ("none", 9.0)]
)
def test_post_processing_finds_and_refines_every_column(lattice, refine, max_rms_pm):
    img, heat, true = lattice
    before = img.copy()
    res = HeatmapResult.from_arrays(img, heat, PS)
    df = heatmap_to_atoms(res, refine=refine)
    np.testing.assert_array_equal(img, before)
    m = _metrics(df, true)
    assert m.f1 == 1.0
    assert m.rms_error_pm < max_rms_pm  # the heatmap alone is 0.25 px = 5 pm off
    assert list(df.columns[:6]) == ["y_px", "x_px", "y_nm", "x_nm", "confidence", "intensity"]
    np.testing.assert_allclose(df["y_nm"], df["y_px"] * PS)
    # Nearest of six jittered (0.3 px) neighbours: slightly below the lattice spacing.
    assert df["nn_spacing_nm"].median() == pytest.approx(0.29, rel=0.02)
    assert (np.diff(df["confidence"].to_numpy()) <= 0).all()
    assert df.attrs["median_nn_spacing_px"] == pytest.approx(df["nn_spacing_px"].median())
    assert HeatmapResult.from_arrays(img, heat, PS).lattice_spacing_px == pytest.approx(
        15.0, rel=0.02
    )
    assert df.attrs["contrast"] == "bright"
    if refine == "gaussian":
        assert df["refined"].all()
        assert df["sigma_nm"].median() == pytest.approx(0.045, rel=0.05)
        assert df["intensity"].median() == pytest.approx(
            150 * 2 * np.pi * (0.045 / PS) ** 2, rel=0.05
        )


def test_dark_atoms_are_detected_and_refined_on_the_inverted_image(lattice):
    img, heat, true = lattice
    dark = img.max() - img
    df = heatmap_to_atoms(HeatmapResult.from_arrays(dark, heat, PS))
    assert df.attrs["contrast"] == "dark"
    assert _metrics(df, true).rms_error_pm < 3.0
    forced = heatmap_to_atoms(HeatmapResult.from_arrays(dark, heat, PS), contrast="bright")
    assert forced.attrs["contrast"] == "bright"


def test_threshold_and_min_separation_sliders(lattice):
    img, heat, true = lattice
    res = HeatmapResult.from_arrays(img, heat, PS)
    weak = heat.copy()
    # Halve the heatmap of the left half: a 0.6 threshold drops those columns.
    weak[:, :128] *= 0.5
    res_weak = HeatmapResult.from_arrays(img, weak, PS)
    df = heatmap_to_atoms(res_weak, threshold=0.6, refine="none")
    assert (df["x_px"] > 120).all()
    # A separation larger than the spacing keeps far fewer columns.
    sparse = heatmap_to_atoms(res, min_separation_nm=0.5, refine="none")
    assert len(sparse) < 0.5 * len(true)
    assert sparse["nn_spacing_nm"].min() >= 0.5 - 1e-6
    assert heatmap_to_atoms(res, min_separation_px=3, refine="none").attrs["min_separation_px"] == 3


def test_spacing_head_sets_the_suppression_radius():
    shape = (160, 160)
    true = hex_lattice_px(shape, 16.0, margin_px=4, seed=1)
    heat = np.maximum(
        heatmap_for(shape, true, 2.4), 0.7 * heatmap_for(shape, true + np.array([0.0, 4.5]), 1.0)
    )
    img = render(shape, true, 2.4, 100.0, 10.0)
    spacing = np.full(shape, 16.0 * PS, np.float32)
    with_head = heatmap_to_atoms(HeatmapResult.from_arrays(img, heat, PS, spacing_nm=spacing))
    without = heatmap_to_atoms(HeatmapResult.from_arrays(img, heat, PS), nms_fraction=0.0)
    assert len(with_head) == len(true)
    assert len(without) > len(true)


def test_hough_method(lattice):
    img, heat, true = lattice
    df = heatmap_to_atoms(HeatmapResult.from_arrays(img, heat, PS), method="hough")
    m = _metrics(df, true)
    assert m.f1 > 0.99 and m.rms_error_pm < 3.0
    assert df.attrs["method"] == "hough"


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
    assert {"y_px", "x_px", "confidence", "intensity", "nn_spacing_px"} <= set(df.columns)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"threshold": 1.5}, "threshold"),
        ({"refine": "fancy"}, "refine"),
        ({"method": "magic"}, "method"),
        ({"contrast": "grey"}, "contrast"),
        ({"min_separation_nm": 0.1, "min_separation_px": 2}, "not both"),
    ],
)
def test_bad_post_processing_options(lattice, kwargs, match):
    img, heat, _ = lattice
    with pytest.raises(InputError, match=match):
        heatmap_to_atoms(HeatmapResult.from_arrays(img, heat, PS), **kwargs)


def test_from_arrays_validates():
    with pytest.raises(InputError, match="shape"):
        HeatmapResult.from_arrays(_RNG.random((32, 32)), np.zeros((16, 16)))
    with pytest.raises(InputError, match="NaN"):
        HeatmapResult.from_arrays(_RNG.random((32, 32)), np.full((32, 32), np.nan))
    with pytest.raises(InputError, match="RGB"):
        HeatmapResult.from_arrays(_RNG.random((32, 32, 3)), np.zeros((32, 32)))


# --------------------------------------------------------------------- with a model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained atoms model exported through the backend (plumbing, not accuracy)."""
    import torch

    from napari_atomseg.backend.cards import card_from_dict
    from napari_atomseg.backend.registry import build_from_card, export_model

    card = card_from_dict(
        {
            "name": "atoms_tiny_test",
            "task": "atoms",
            "architecture": {"type": "unet", "base_channels": 4, "depth": 1},
            "outputs": [
                {"name": "heatmap", "activation": "sigmoid"},
                {"name": "spacing", "activation": "sigmoid"},
            ],
            "input": {
                "normalisation": "robust_zscore",
                "working_pixel_size_nm": 0.025,
                "pixel_size_range_nm": [0.002, 0.1],
                "tile_px": 64,
                "overlap_px": 16,
            },
            "training": {"config": {"task_options": {"spacing_scale_nm": 2.0}}},
        }
    )
    torch.manual_seed(0)
    module = build_from_card(card)
    return export_model(module, card, tmp_path_factory.mktemp("model"))


def test_dark_contrast_shows_the_network_the_inverted_image(lattice, tiny_model):
    """contrast='dark' runs the network on the inverted image (and refines on it): the
    same columns as the inverted image given as bright, while the result keeps the
    original image."""
    img, _, _ = lattice
    dark = img.max() - img
    path = str(tiny_model.path)
    res = predict_heatmap(dark, PS, model=path, contrast="dark")
    np.testing.assert_array_equal(res.image, dark)
    assert res.contrast == "dark"
    inv = predict_heatmap(-dark, PS, model=path)
    np.testing.assert_allclose(res.heatmap, inv.heatmap, atol=1e-6)
    as_dark = find_atoms(dark, PS, model=path, contrast="dark", refine="com", threshold=0.0)
    as_bright = find_atoms(-dark, PS, model=path, contrast="bright", refine="com", threshold=0.0)
    np.testing.assert_allclose(
        as_dark[["y_px", "x_px"]].to_numpy(), as_bright[["y_px", "x_px"]].to_numpy(), atol=1e-4
    )
    assert as_dark.attrs["contrast"] == "dark"
    with pytest.raises(InputError, match="contrast"):
        predict_heatmap(dark, PS, model=path, contrast="black")


def test_find_atoms_runs_the_model_end_to_end(lattice, tiny_model):
    img, _, _ = lattice
    steps = []
    gen = iter_find_atoms(img, PS, model=str(tiny_model.path), refine="com", threshold=0.0)
    # (an untrained network: threshold 0 so that there are columns to post-process)
    df = drain(gen, callback=steps.append)
    assert all(isinstance(s, Progress) for s in steps) and len(steps) >= 3
    assert df.attrs["model"] == "atoms_tiny_test"
    assert df.attrs["pixel_size_nm"] == PS and not df.attrs["pixel_size_estimated"]
    assert "y_nm" in df
    res = predict_heatmap(img, PS, model=str(tiny_model.path))
    assert res.heatmap.shape == img.shape and res.heatmap.dtype == np.float32
    assert res.heatmap.min() >= 0.0 and res.heatmap.max() <= 1.0
    assert res.spacing_nm is not None and res.spacing_nm.max() <= 2.0  # scaled by the card
    # The same network output gives the same columns through either path.
    again = heatmap_to_atoms(res, refine="com", threshold=0.0)
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
    """A model card's recommended ``postprocess`` (e.g. its calibrated threshold) is what
    heatmap_to_atoms uses when the caller gives nothing; the caller's options win."""
    from napari_atomseg.atoms.options import card_postprocess, model_postprocess
    from napari_atomseg.backend import load_card
    from tests._models import export_tiny_atoms_model

    img, heat, true = lattice
    weak = heat.copy()
    weak[:, :128] *= 0.5  # left half peaks ~0.5x: below 0.6, above 0.2
    plain = HeatmapResult.from_arrays(img, weak, PS)
    calibrated = HeatmapResult.from_arrays(img, weak, PS)
    calibrated.postprocess = {"threshold": 0.3, "refine": "none"}
    plain_df = heatmap_to_atoms(plain, refine="none")  # module default 0.5
    assert plain_df.attrs["threshold"] == 0.5 and (plain_df["x_px"] > 120).all()
    low = heatmap_to_atoms(calibrated)
    assert low.attrs["threshold"] == 0.3 and low.attrs["refine"] == "none"
    assert _metrics(low, true).recall > 0.95 and len(low) > 1.5 * len(plain_df)
    high = heatmap_to_atoms(calibrated, threshold=0.6, refine="com")
    assert high.attrs["threshold"] == 0.6 and high.attrs["refine"] == "com"
    assert (high["x_px"] > 120).all()

    card = export_tiny_atoms_model(
        tmp_path, "atoms_pp_test", postprocess={"threshold": 0.3, "bogus": 1}
    )
    loaded = load_card(card.path)
    assert loaded.postprocess["threshold"] == 0.3
    assert card_postprocess(loaded) == {"threshold": 0.3}  # unknown keys are not options
    assert model_postprocess(str(card.path)) == {"threshold": 0.3}
    assert model_postprocess("no_such_model") == {}
    res = predict_heatmap(img, PS, model=str(card.path))
    assert res.postprocess == {"threshold": 0.3}
    assert heatmap_to_atoms(res, refine="none").attrs["threshold"] == 0.3


def test_contrast_check_drops_heatmap_peaks_that_are_not_image_maxima(lattice):
    img, heat, true = lattice
    hollows = hex_hollows_px(true, 0.3 / PS, img.shape)
    # A network that also marks every hollow (its lattice prior), as strongly as a column.
    fooled = np.maximum(heat, heatmap_for(img.shape, hollows, 0.045 / PS))
    res = HeatmapResult.from_arrays(img, fooled, PS)
    off = heatmap_to_atoms(res, refine="none", contrast_check=False)
    assert _metrics(off, true).precision < 0.55  # about one hollow per column
    on = heatmap_to_atoms(res, refine="none")  # on by default
    m = _metrics(on, true)
    # A hollow here is flat background (no dip), so a few survive on the noise, most of
    # them on the border where the ring leaves the field.
    assert m.recall == 1.0 and m.precision > 0.98
    assert on.attrs["contrast_check"] is True
    removed = on.attrs["contrast_check_removed"]
    assert removed == len(off) - len(on) > 0.97 * len(hollows)
    # Dark columns: the hollows are now the image's maxima and the columns its minima.
    dark = img.max() - img
    on_dark = heatmap_to_atoms(HeatmapResult.from_arrays(dark, fooled, PS), contrast="dark")
    assert _metrics(on_dark, true).precision > 0.98
    # Told the wrong contrast, the check keeps the hollows and drops the columns.
    wrong = heatmap_to_atoms(HeatmapResult.from_arrays(dark, fooled, PS), contrast="bright")
    assert _metrics(wrong, true).recall < 0.05


def test_contrast_check_keeps_a_light_column_beside_a_heavy_one():
    # SrTiO3-like: a weak column 0.2 nm from a heavy one whose tail tilts the weak one's
    # surroundings; the heatmap peak is 0.5 px off the weak column's image maximum.
    shape = (96, 96)
    heavy = np.array([[48.0, 38.0]])
    light = np.array([[48.0, 48.0]])
    img = render(shape, heavy, 0.06 / PS, 1000, 10) + render(shape, light, 0.04 / PS, 120, 0)
    heat = heatmap_for(shape, np.vstack([heavy, light + np.array([0.0, 0.5])]), 0.045 / PS)
    df = heatmap_to_atoms(HeatmapResult.from_arrays(img, heat, PS), refine="none")
    assert len(df) == 2
    assert df.attrs["contrast_check_removed"] == 0


def test_heatmap_centre_of_mass_averages_out_heatmap_noise(lattice):
    """refine="heatmap" reads the whole disc of the network's answer, not 3 samples."""
    img, _, true = lattice
    rng = np.random.default_rng(5)
    heat = heatmap_for(img.shape, true, 0.06 / PS) + rng.normal(0, 0.03, img.shape)
    res = HeatmapResult.from_arrays(img, np.clip(heat, 0, 1), PS)
    rms = {
        r: _metrics(heatmap_to_atoms(res, refine=r, contrast_check=False), true).rms_error_pm
        for r in ("none", "heatmap")
    }
    assert rms["heatmap"] < 0.3 * rms["none"], rms


# ------------------------------------------- the network's peaks against the contrast


def test_a_result_whose_peaks_are_not_image_extrema_carries_a_warning(lattice):
    img, heat, true = lattice
    hollows = hex_hollows_px(true, 0.3 / PS, img.shape)
    on_hollows = heatmap_for(img.shape, hollows, 0.045 / PS)
    wrong = heatmap_to_atoms(HeatmapResult.from_arrays(img, on_hollows, PS), contrast="bright")
    removed = wrong.attrs["contrast_check_removed"]
    assert removed > 0.9 * len(hollows)
    (message,) = wrong.attrs["warnings"]
    assert f"removed {removed} of the network's" in message
    assert "set the contrast to 'dark'" in message and "hollows" in message
    # The right peaks: nothing to say.
    right = heatmap_to_atoms(HeatmapResult.from_arrays(img, heat, PS), contrast="bright")
    assert right.attrs["warnings"] == [] and right.attrs["network_input"] == "as is"
    # Without the check nothing is removed, so nothing is said either.
    unchecked = heatmap_to_atoms(
        HeatmapResult.from_arrays(img, on_hollows, PS), contrast_check=False
    )
    assert unchecked.attrs["warnings"] == []


@pytest.mark.parametrize(
    "removed, candidates, disagrees",
    [(7, 9, False), (6, 10, False), (7, 10, True), (480, 1000, False), (950, 1000, True)],
)
def test_check_disagrees_needs_a_majority_of_enough_peaks(removed, candidates, disagrees):
    assert check_disagrees(removed, candidates) is disagrees


@pytest.fixture()
def two_faced_network(lattice, monkeypatch):
    """A network that marks the columns of the image as it is and the hollows of the
    inverted one (the phase-contrast ambiguity the second look is for); records calls."""

    img, heat, true = lattice
    hollows = heatmap_for(img.shape, hex_hollows_px(true, 0.3 / PS, img.shape), 0.045 / PS)
    calls = []  # whether the network saw the image inverted, per call
    answers = {False: heat, True: hollows}  # its heatmap for the image as it is / inverted

    def fake(image, pixel_size_nm=None, model="default", *, contrast="auto", invert=None, **kw):
        inverted = contrast == "dark" if invert is None else invert
        calls.append(inverted)
        yield Progress(0, 1, "network")
        res = HeatmapResult.from_arrays(image, answers[inverted], pixel_size_nm)
        res.contrast, res.inverted = contrast, inverted
        return res

    monkeypatch.setattr(atoms_heatmap, "iter_predict_heatmap", fake)
    fake.answers = answers
    return img.max() - img, true, calls


def test_second_look_shows_the_network_the_other_way_round_and_keeps_the_better(
    two_faced_network,
):
    # Dark columns: the network sees the inverted image first, marks the hollows, the
    # check removes them; the second look (the image as it is) finds the columns.
    dark, true, calls = two_faced_network
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResultWarning)  # a solved case says nothing
        df = find_atoms(dark, PS, contrast="dark", refine="none")
    assert calls == [True, False]
    m = _metrics(df, true)
    assert m.recall > 0.99 and m.precision > 0.98
    assert df.attrs["network_input"] == "as is"
    assert df.attrs["second_look"].startswith("kept: the network saw the image as is")
    assert df.attrs["warnings"] == []


def test_no_second_look_when_the_contrast_is_auto_or_the_peaks_agree(two_faced_network, lattice):
    dark, true, calls = two_faced_network
    df = find_atoms(dark, PS, contrast="auto", refine="none")
    assert calls == [False] and "second_look" not in df.attrs
    calls.clear()
    img, _, _ = lattice
    df = find_atoms(img, PS, contrast="bright", refine="none")
    assert calls == [False] and "second_look" not in df.attrs
    assert _metrics(df, true).f1 > 0.99


def test_a_second_look_that_is_no_better_is_discarded_and_the_warning_stays(
    two_faced_network, lattice
):

    _, _, calls = two_faced_network
    answers = atoms_heatmap.iter_predict_heatmap.answers
    answers[False] = answers[True]  # the hollows both ways round
    img, _, _ = lattice
    with pytest.warns(ResultWarning, match="the image check removed"):
        df = find_atoms(img, PS, contrast="bright", refine="none")
    assert calls == [False, True]
    assert df.attrs["second_look"].startswith("discarded")
    assert df.attrs["network_input"] == "as is"
    assert len(df.attrs["warnings"]) == 1


@pytest.mark.parametrize("missing, kept", [(0.1, False), (0.3, True)])
def test_dark_columns_always_get_a_second_look_kept_only_when_clearly_better(
    two_faced_network, lattice, missing, kept
):
    """With dark columns the network also sees the image as it is; that answer replaces
    the first (inverted) one only with more than SECOND_LOOK_MARGIN x its columns."""

    dark, true, calls = two_faced_network
    img, _, _ = lattice
    answers = atoms_heatmap.iter_predict_heatmap.answers
    rng = np.random.default_rng(1)
    some = true[rng.random(len(true)) >= missing]
    answers[True] = heatmap_for(img.shape, some, 0.045 / PS)  # first look: columns missing
    answers[False] = heatmap_for(img.shape, true, 0.045 / PS)  # second look: all of them
    df = find_atoms(dark, PS, contrast="dark", refine="none")
    assert calls == [True, False]
    assert df.attrs["second_look"].startswith("kept" if kept else "discarded")
    assert df.attrs["network_input"] == ("as is" if kept else "inverted")
    assert len(df) == pytest.approx(len(true) if kept else len(some), abs=2)


def test_second_look_can_be_turned_off(two_faced_network):
    dark, _, calls = two_faced_network
    with pytest.warns(ResultWarning, match="not darker than their surroundings"):
        df = find_atoms(dark, PS, contrast="dark", refine="none", second_look=False)
    assert calls == [True] and "second_look" not in df.attrs
    assert df.attrs["warnings"]  # the first answer's peaks are the hollows: it says so
    with pytest.raises(InputError, match="second_look"):
        find_atoms(dark, PS, contrast="dark", second_look="no")


def test_min_prominence_drops_hollows_that_are_weak_image_maxima(lattice):
    """White-atom HRTEM: hollows can be true but weak image maxima, which the image check
    keeps; min_prominence (a fraction of the median column's prominence) drops them."""
    img, heat, true = lattice
    hollows = hex_hollows_px(true, 0.3 / PS, img.shape)
    weak = img + render(img.shape, hollows, 0.045 / PS, 25, 0).astype(np.float32)
    fooled = np.maximum(heat, heatmap_for(img.shape, hollows, 0.045 / PS))
    res = HeatmapResult.from_arrays(weak, fooled, PS)
    checked = heatmap_to_atoms(res, refine="none")
    assert _metrics(checked, true).precision < 0.7  # most hollows pass the plain check
    strict = heatmap_to_atoms(res, refine="none", min_prominence=0.3)
    m = _metrics(strict, true)
    assert m.recall > 0.99 and m.precision > 0.97
    assert strict.attrs["min_prominence"] == 0.3
    assert strict.attrs["min_prominence_removed"] == len(checked) - len(strict) > 0.9 * len(hollows)
    # Off by default; the card can set it; out-of-range values are refused.
    assert checked.attrs["min_prominence"] == 0.0 and checked.attrs["min_prominence_removed"] == 0
    res.postprocess = {"min_prominence": 0.3}
    assert len(heatmap_to_atoms(res, refine="none")) == len(strict)
    with pytest.raises(InputError, match="min_prominence"):
        heatmap_to_atoms(res, min_prominence=1.5)


def test_imaging_hrtem_turns_on_the_stricter_check_for_white_atoms(lattice):
    """imaging="hrtem" with bright columns: min_prominence defaults to
    HRTEM_MIN_PROMINENCE and drops weak-maximum hollows the plain check keeps; STEM,
    unknown and dark-column HRTEM keep it off; a value the caller gives always wins."""
    img, heat, true = lattice
    hollows = hex_hollows_px(true, 0.3 / PS, img.shape)
    weak = img + render(img.shape, hollows, 0.045 / PS, 25, 0).astype(np.float32)
    fooled = np.maximum(heat, heatmap_for(img.shape, hollows, 0.045 / PS))
    res = HeatmapResult.from_arrays(weak, fooled, PS)
    hrtem = heatmap_to_atoms(res, refine="none", contrast="bright", imaging="hrtem")
    m = _metrics(hrtem, true)
    assert m.recall > 0.99 and m.precision > 0.97
    assert hrtem.attrs["min_prominence"] == HRTEM_MIN_PROMINENCE == 0.4
    assert hrtem.attrs["imaging"] == "hrtem"
    assert hrtem.attrs["min_prominence_removed"] > 0.9 * len(hollows)
    for imaging in ("stem", None):
        plain = heatmap_to_atoms(res, refine="none", contrast="bright", imaging=imaging)
        assert plain.attrs["min_prominence"] == 0.0
        assert plain.attrs["imaging"] == (imaging or "unknown")
        assert _metrics(plain, true).precision < 0.7
    # auto contrast that finds bright columns counts as white atoms too.
    auto = heatmap_to_atoms(res, refine="none", imaging="hrtem")
    assert auto.attrs["contrast"] == "bright" and len(auto) == len(hrtem)
    # The caller's value wins, 0 included.
    given = heatmap_to_atoms(res, refine="none", imaging="hrtem", min_prominence=0.0)
    assert given.attrs["min_prominence"] == 0.0 and len(given) > len(hrtem)
    # Dark columns keep it off (measured: it costs them F1 at 0.4).
    dark = HeatmapResult.from_arrays(-weak, fooled, PS)
    black = heatmap_to_atoms(dark, refine="none", contrast="dark", imaging="hrtem")
    assert black.attrs["min_prominence"] == 0.0
    with pytest.raises(InputError, match="imaging: expected one of"):
        heatmap_to_atoms(res, imaging="TEM")


def test_default_min_prominence_follows_the_card():
    assert default_min_prominence("hrtem", False) == HRTEM_MIN_PROMINENCE
    assert default_min_prominence("hrtem", True) == 0.0
    assert default_min_prominence("stem", False, {"min_prominence": 0.2}) == 0.2
    assert default_min_prominence("hrtem", False, {"min_prominence_hrtem": 0.3}) == 0.3
    assert default_min_prominence("hrtem", True, {"min_prominence_hrtem": 0.3}) == 0.0
    with pytest.raises(InputError, match="min_prominence_hrtem"):
        default_min_prominence("hrtem", False, {"min_prominence_hrtem": 3})


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


def test_imaging_reaches_find_atoms_and_its_second_look(lattice):
    """find_atoms accepts imaging (a post-processing option) and records it."""
    img, _, _ = lattice
    df = find_atoms(img, PS, contrast="bright", imaging="stem", tile_px=256)
    assert df.attrs["imaging"] == "stem" and df.attrs["min_prominence"] == 0.0
    with pytest.raises(InputError, match="imaging"):
        find_atoms(img, PS, imaging="sem")


class _EchoPrediction:
    """What backend.iter_predict returns, for a network that answers its input: an
    equivariant "network", so every view turned back must give the same heatmap."""

    def __init__(self, image, pixel_size_nm):
        self.outputs = [np.asarray(image, np.float32), np.asarray(image, np.float32) * 2]
        self.channels = ("heatmap", "spacing")
        self.pixel_size_nm = pixel_size_nm if pixel_size_nm is not None else 0.03
        self.pixel_size_estimated = pixel_size_nm is None
        self.model_name = "echo"
        self.timings_s = {"network": 0.5}

    def channel(self, name):
        return self.outputs[self.channels.index(name)]


def test_views_turn_every_heatmap_back_before_averaging(monkeypatch):
    import napari_atomseg.backend as backend

    seen = []

    def echo(model, image, pixel_size_nm, **kw):
        seen.append((image.shape, pixel_size_nm))
        yield Progress(0, 1, "network")
        return _EchoPrediction(image, pixel_size_nm)

    monkeypatch.setattr(backend, "iter_predict", echo)
    monkeypatch.setattr(atoms_heatmap, "resolve_model", lambda model, device: _EchoModel())
    rng = np.random.default_rng(0)
    img = rng.random((40, 56)).astype(np.float32)  # not square: transposes must come back
    one = drain(iter_predict_heatmap_echo(img, views=1))
    for views in VIEWS_CHOICES:
        seen.clear()
        steps = []
        res = drain(iter_predict_heatmap_echo(img, views=views), callback=steps.append)
        assert len(seen) == views
        assert {shape for shape, _ in seen} <= {(40, 56), (56, 40)}
        np.testing.assert_allclose(res.heatmap, one.heatmap, atol=1e-6)
        np.testing.assert_allclose(res.spacing_nm, one.spacing_nm, rtol=1e-6)
        assert res.heatmap.shape == img.shape
        assert res.timings_s["network"] == pytest.approx(0.5 * views)
        if views > 1:
            assert any(f"view {views}/{views}" in s.message for s in steps)
    # An estimated pixel size is estimated once: later views get the first one's.
    seen.clear()
    res = drain(iter_predict_heatmap_echo(img, pixel_size_nm=None, views=4))
    assert [p for _, p in seen] == [None, 0.03, 0.03, 0.03] and res.pixel_size_estimated
    for bad in (0, 3, 16, True, 2.0):
        with pytest.raises(InputError, match="views: expected one of"):
            drain(iter_predict_heatmap_echo(img, views=bad))


def iter_predict_heatmap_echo(img, pixel_size_nm=0.02, **kw):
    from napari_atomseg.atoms.heatmap import iter_predict_heatmap

    return iter_predict_heatmap(img, pixel_size_nm, "echo", **kw)


class _EchoCard:
    task = "atoms"
    name = "echo"
    postprocess = None
    training = None


class _EchoModel:
    card = _EchoCard()


def test_a_card_s_hrtem_prominence_reaches_the_result():
    """postprocess.min_prominence_hrtem of a model card is kept by card_postprocess (it
    is not a find_atoms option, but default_min_prominence reads it)."""
    from types import SimpleNamespace

    from napari_atomseg.atoms.options import card_postprocess

    card = SimpleNamespace(postprocess={"min_prominence_hrtem": 0.3, "threshold": 0.4, "x": 1})
    pp = card_postprocess(card)
    assert pp == {"min_prominence_hrtem": 0.3, "threshold": 0.4}
    assert default_min_prominence("hrtem", False, pp) == 0.3
