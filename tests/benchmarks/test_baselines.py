"""The classical baselines and their tuning."""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks.lib.baselines import BASELINES, normalise_01, pooled_f1, tune

from napari_atomseg.atoms.metrics import point_metrics
from napari_atomseg.errors import InputError
from tests._synth import hex_lattice_px, render_columns

PS = 0.02  # nm/px


def _image(seed: int, dark: bool = False, dose: float = 200.0):
    rng = np.random.default_rng(seed)
    shape = (128, 128)
    true = hex_lattice_px(shape, 0.25 / PS, margin_px=3, jitter_px=0.2, seed=seed)
    clean = render_columns(shape, true, 0.04 / PS, dose, dose / 5)
    img = rng.poisson(clean).astype(np.float32)
    if dark:
        img = img.max() - img
    return img, true


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_each_baseline_finds_a_clean_lattice(name):
    img, true = _image(0)
    before = img.copy()
    params = {
        "blob_log": {"sigma_nm": 0.04, "threshold": 0.05},
        "blob_dog": {"sigma_nm": 0.04, "threshold": 0.05},
        "peak_local_max": {"smooth_sigma_nm": 0.02, "min_distance_nm": 0.1, "threshold_rel": 0.3},
        "atomap_like": {"separation_nm": 0.1, "threshold_rel": 0.3},
    }[name]
    pred = BASELINES[name](img, PS, **params)
    np.testing.assert_array_equal(img, before)
    m = point_metrics(pred, true, radius_fraction_of_spacing=0.5)
    assert m.f1 > 0.97, m
    if name == "atomap_like":
        assert m.rms_error_px < 0.2  # Gaussian refinement


def test_dark_atoms_need_inversion():
    img, true = _image(1, dark=True)
    b = BASELINES["blob_log"]
    bright = point_metrics(b(img, PS, bright_atoms=True), true, radius_fraction_of_spacing=0.3)
    dark = point_metrics(b(img, PS, bright_atoms=False), true, radius_fraction_of_spacing=0.3)
    assert dark.f1 > 0.97 and bright.f1 < 0.5


def test_tune_picks_a_setting_that_transfers():
    tune_set = [_image(s, dose=60.0) for s in (10, 11)]
    test_img, test_true = _image(12, dose=60.0)
    res = tune(
        "blob_dog",
        [t[0] for t in tune_set],
        [t[1] for t in tune_set],
        [PS, PS],
        radius_nm=0.08,
        grid={"sigma_nm": [0.03, 0.05], "threshold": [0.005, 0.05, 0.5]},
    )
    assert res.params["threshold"] < 0.5  # 0.5 finds nothing
    # The refinement round adds midpoints beyond the grid.
    assert len(res.table) > 6
    assert res.f1 == max(r["f1"] for r in res.table)
    f1, rms_nm = pooled_f1(BASELINES["blob_dog"], res.params, [test_img], [test_true], [PS], 0.08)
    assert f1 > 0.9 and rms_nm < 0.02


def test_baseline_errors():
    img, _ = _image(0)
    with pytest.raises(InputError, match="pixel size"):
        BASELINES["blob_log"](img, None)
    with pytest.raises(InputError, match="unknown parameter"):
        BASELINES["blob_log"](img, PS, sigma=3)
    with pytest.raises(InputError, match="unknown baseline"):
        tune("nope", [img], [np.zeros((0, 2))], [PS], 0.1)
    with pytest.raises(InputError, match="NaN"):
        normalise_01(np.full((32, 32), np.nan))
