"""The image noise level and the noise-adapted threshold (atoms.noise, detect.default_threshold)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.atoms.candidates import default_threshold
from napari_atomseg.atoms.find import heatmap_to_atoms
from napari_atomseg.atoms.heatmap import HeatmapResult
from napari_atomseg.atoms.noise import (
    noise_adapted_threshold,
    noise_level,
    pixel_noise_sigma,
)
from napari_atomseg.errors import InputError
from tests.atoms.synth import heatmap_for, hex_lattice_px, low_dose_lattice_with_hollows, render

PS = 0.02
CARD = {"threshold": 0.4, "threshold_noisy": 0.6, "noise_ramp": [0.15, 0.25]}


def _lattice(shape=(256, 256), amplitude=1.0, seed=0, ps=PS):
    """Columns 0.3 nm apart, 0.045 nm wide, at ``ps`` nm/px."""
    true = hex_lattice_px(shape, 0.3 / ps, margin_px=3, seed=seed)
    return render(shape, true, 0.045 / ps, amplitude, 0.0).astype(np.float32), true


def test_pixel_noise_sigma_measures_white_noise_under_a_lattice():
    """Immerkaer's estimator sees the added noise, not the columns (within 10 %)."""
    clean, _ = _lattice(amplitude=100.0)
    rng = np.random.default_rng(1)
    for sigma in (1.0, 5.0, 20.0):
        noisy = clean + rng.normal(0, sigma, clean.shape).astype(np.float32)
        assert pixel_noise_sigma(noisy) == pytest.approx(sigma, rel=0.1)
    assert pixel_noise_sigma(clean) < 0.2  # the columns alone hardly count
    with pytest.raises(InputError, match="2-D image"):
        pixel_noise_sigma(np.zeros((2, 50)))


def test_noise_level_rises_with_noise_and_ignores_scale_and_offset():
    clean, _ = _lattice()
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 1, clean.shape).astype(np.float32)
    levels = [noise_level(clean + s * noise, PS) for s in (0.02, 0.1, 0.3)]
    assert levels[0] < levels[1] < levels[2]
    assert levels[0] < 0.05 and levels[2] > 0.25
    # Counts or volts, with or without a dark level: the same image, the same level.
    img = clean + 0.1 * noise
    assert noise_level(1000 * img + 5000, PS) == pytest.approx(levels[1], rel=1e-3)
    # A thickness ramp under the columns is background, not contrast.
    ramp = np.linspace(0, 20, clean.shape[1], dtype=np.float32)[None, :]
    assert noise_level(img + ramp, PS) == pytest.approx(levels[1], rel=0.15)
    # Referred to 0.03 nm/px: the same specimen and dose sampled twice as finely (a
    # quarter of the counts per pixel: twice the relative noise) reads about the same.
    fine, _ = _lattice(shape=(512, 512), ps=PS / 2)
    fine_noise = rng.normal(0, 1, fine.shape).astype(np.float32)
    assert noise_level(fine + 0.2 * fine_noise, PS / 2) == pytest.approx(levels[1], rel=0.2)


def test_noise_level_none_without_a_pixel_size_or_contrast():
    clean, _ = _lattice()
    assert noise_level(clean, None) is None
    assert noise_level(np.full((64, 64), 7.0, np.float32), PS) is None


def test_noise_level_of_a_large_image_is_measured_on_tiles():
    """A 1100^2 image is measured on four 256^2 tiles and reads like its 256^2 crop."""
    clean, _ = _lattice(shape=(1100, 1100))
    img = clean + 0.1 * np.random.default_rng(3).normal(0, 1, clean.shape).astype(np.float32)
    assert noise_level(img, PS) == pytest.approx(noise_level(img[:256, :256], PS), rel=0.1)


def test_noise_adapted_threshold_ramp():
    f = noise_adapted_threshold
    assert f(0.4, 0.6, (0.15, 0.25), 0.05) == 0.4
    assert f(0.4, 0.6, (0.15, 0.25), 0.15) == 0.4
    assert f(0.4, 0.6, (0.15, 0.25), 0.2) == pytest.approx(0.5)
    assert f(0.4, 0.6, (0.15, 0.25), 0.25) == pytest.approx(0.6)
    assert f(0.4, 0.6, (0.15, 0.25), 3.0) == pytest.approx(0.6)
    assert f(0.4, 0.6, (0.15, 0.25), None) == 0.4
    for bad in ((0.25, 0.15), (-0.1, 0.2), (0.1, float("nan"))):
        with pytest.raises(InputError, match="noise ramp"):
            f(0.4, 0.6, bad, 0.2)


@pytest.fixture(scope="module")
def low_dose_with_hollows():
    return low_dose_lattice_with_hollows((256, 256), PS)


def test_noisy_image_gets_the_card_s_noisy_threshold(low_dose_with_hollows):
    """Left to the card, a noisy image's threshold rises and the hollows go; the same
    columns at high dose keep the card's threshold; a given threshold always wins; a card
    without threshold_noisy (the Pt model) keeps its fixed threshold."""
    img, heat, true, hollows = low_dose_with_hollows
    res = HeatmapResult.from_arrays(img, heat, PS)
    res.postprocess = dict(CARD)
    assert res.noise_level > 0.25
    assert default_threshold(res, "stem", 0.3) == pytest.approx(0.6)
    assert default_threshold(res) == 0.4  # no spacing given: not known to be a lattice
    # The contrast check is off here: it would drop the hollows itself, being no image maxima.
    df = heatmap_to_atoms(res, refine="none", contrast_check=False)
    assert df.attrs["threshold"] == pytest.approx(0.6)
    assert df.attrs["threshold_base"] == 0.4 and df.attrs["threshold_from"] == "noise"
    assert df.attrs["noise_level"] == pytest.approx(res.noise_level)
    assert abs(len(df) - len(true)) <= 2  # columns, no hollows
    given = heatmap_to_atoms(res, threshold=0.4, refine="none", contrast_check=False)
    assert given.attrs["threshold_from"] == "given"
    assert len(given) >= len(true) + 0.9 * len(hollows)  # 0.4 keeps the hollows
    # High dose: the same scene at 1000x the counts keeps 0.4.
    rng = np.random.default_rng(5)
    bright = rng.poisson(render(img.shape, true, 0.045 / PS, 6000, 2000)).astype(np.float32)
    clean = HeatmapResult.from_arrays(bright, heat, PS)
    clean.postprocess = dict(CARD)
    assert clean.noise_level < 0.1
    kept = heatmap_to_atoms(clean, refine="none", contrast_check=False)
    assert kept.attrs["threshold"] == 0.4 and kept.attrs["threshold_from"] == "model card"
    # No ramp in the card: fixed, and no noise level is computed for the result.
    fixed = HeatmapResult.from_arrays(img, heat, PS)
    fixed.postprocess = {"threshold": 0.5}
    out = heatmap_to_atoms(fixed, refine="none", contrast_check=False)
    assert out.attrs["threshold"] == 0.5 and out.attrs["noise_level"] is None
    assert fixed._noise_level is None
    # Without a pixel size there is no noise level: the card's threshold.
    unknown = HeatmapResult.from_arrays(img, heat, None)
    unknown.postprocess = dict(CARD)
    assert default_threshold(unknown, None, 0.3) == 0.4
    assert heatmap_to_atoms(unknown, refine="none").attrs["threshold"] == 0.4
    # HRTEM keeps the card's threshold (the ramp was chosen on HAADF images).
    hrtem = heatmap_to_atoms(res, refine="none", contrast_check=False, imaging="hrtem")
    assert hrtem.attrs["threshold"] == 0.4 and hrtem.attrs["threshold_from"] == "model card"
    assert default_threshold(res, "stem", 0.3) == pytest.approx(0.6)
    assert default_threshold(res, "hrtem", 0.3) == 0.4


def test_sparse_atoms_on_a_noisy_support_keep_the_card_s_threshold():
    """The ramp is for lattices: isolated atoms 1 nm apart on a noisy support (the real Pt
    images' case, where faint real atoms sit at 0.4-0.6) keep the card's threshold."""
    rng = np.random.default_rng(6)
    shape = (256, 256)
    atoms = hex_lattice_px(shape, 1.0 / PS, margin_px=6, seed=6)
    img = rng.poisson(render(shape, atoms, 0.05 / PS, 4, 2)).astype(np.float32)
    heat = 0.5 * heatmap_for(shape, atoms, 0.045 / PS)
    res = HeatmapResult.from_arrays(img, heat, PS)
    res.postprocess = dict(CARD)
    df = heatmap_to_atoms(res, refine="none", contrast_check=False)
    assert df.attrs["threshold"] == 0.4 and df.attrs["threshold_from"] == "model card"
    assert len(df) == len(atoms)
    assert df.attrs["noise_level"] is None  # not needed, not measured
    assert default_threshold(res, "stem", 1.0) == 0.4
    assert res.noise_level > 0.25  # noisy all the same
    # A card may draw the line elsewhere.
    res.postprocess = {**CARD, "noise_ramp_max_spacing_nm": 2.0}
    assert heatmap_to_atoms(res, refine="none", contrast_check=False).attrs["threshold"] == 0.6


def test_bad_noise_settings_in_a_card_are_named(low_dose_with_hollows):
    img, heat, _, _ = low_dose_with_hollows
    res = HeatmapResult.from_arrays(img, heat, PS)
    res.postprocess = {**CARD, "noise_ramp": [0.3]}
    with pytest.raises(InputError, match="noise_ramp"):
        heatmap_to_atoms(res)
    res.postprocess = {**CARD, "threshold_noisy": 2}
    with pytest.raises(InputError, match="threshold_noisy"):
        heatmap_to_atoms(res)


def test_the_default_card_carries_the_noise_ramp():
    from napari_atomseg.atoms.options import model_postprocess

    pp = model_postprocess("default")
    assert pp["threshold"] == 0.4 and pp["threshold_noisy"] == 0.6
    assert list(pp["noise_ramp"]) == [0.1, 0.2]
    assert "threshold_noisy" not in model_postprocess("atoms_pt_carbon")
