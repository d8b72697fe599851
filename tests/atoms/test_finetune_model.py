"""The shipped single-atoms-on-carbon model (atoms_pt_carbon): card, and that it finds atoms.

Its cross-validated scores on real Pt come from ``benchmarks/atoms_pt_cv.py`` (recorded in
the card); these tests only check that the shipped file is the one the card describes and
that it finds isolated atoms (a synthetic image and a crop of a real one).
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.atoms.find import find_atoms
from napari_atomseg.atoms.metrics import point_metrics
from napari_atomseg.backend import default_model_name
from napari_atomseg.backend.cards import load_card
from napari_atomseg.backend.registry import sha256_file
from tests._data import shared_path
from tests._synth import render_columns

NAME = "atoms_pt_carbon"
PS = 0.029296875  # nm/px of the real Pt images


@pytest.fixture(scope="module")
def card():
    return load_card(NAME)


def threshold(card) -> float:
    return float(card.metrics["cross_validation"]["recommended_threshold"])


def test_card_records_recipe_and_cross_validation(card):
    assert card.task == "atoms" and not card.default
    assert default_model_name("atoms") != NAME  # an extra model, never the default
    assert sha256_file(card.weights_path) == card.weights.sha256
    training = card.training
    # made by the users' own fine-tuning command, from the shipped default model
    assert training["command"].startswith("napari-atomseg finetune ")
    assert "--name atoms_pt_carbon" in training["command"]
    assert training["config"]["init_from"] == "atoms_default"
    assert training["seed"] == training["config"]["seed"]
    options = training["config"]["task_options"]
    assert (options["sigma_fraction"], options["sigma_max_nm"], options["sigma_min_px"]) == (
        0.25,
        0.08,
        1.5,
    )
    assert training["data"]["fine_tuning_pairs"] == 11
    cv = card.metrics["cross_validation"]
    assert cv["command"].startswith("python benchmarks/atoms_pt_cv.py")
    assert cv["n_images"] == 11 and cv["folds"] == 4
    assert 0.0 < cv["f1"] <= 1.0 and 0.0 < threshold(card) < 1.0
    # ... and it is the card's post-processing default (find_atoms, CLI, widget).
    assert card.postprocess["threshold"] == threshold(card)


def synthetic_single_atoms(amplitude: float, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """14 isolated heavy atoms (Gaussian, sigma 0.04 nm, >= 0.4 nm apart) on an uneven,
    Poisson-noisy carbon-like background of 200 +- 40 counts; (image, true positions)."""
    rng = np.random.default_rng(seed)
    shape = (160, 160)
    pts: list[np.ndarray] = []
    while len(pts) < 14:
        p = rng.uniform(10, 150, 2)
        if all(np.hypot(*(p - q)) > 0.4 / PS for q in pts):
            pts.append(p)
    truth = np.array(pts)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    background = 200 + 40 * np.sin(yy / 37.0) * np.cos(xx / 23.0)
    image = render_columns(shape, truth, 0.04 / PS, amplitude) + background
    return rng.poisson(image).astype(np.float32), truth


def score(image: np.ndarray, truth: np.ndarray, threshold: float):
    found = find_atoms(image, PS, model=NAME, threshold=threshold, threads=1)
    return point_metrics(found[["y_px", "x_px"]].to_numpy(), truth, radius_nm=0.1, pixel_size_nm=PS)


def test_finds_isolated_synthetic_atoms(card):
    # Faint atoms (peak 60 counts over 200 +- 14 noise), as on thick carbon: the card's
    # recommended threshold (0.5) finds every one, nothing else, to a few pm.
    m = score(*synthetic_single_atoms(60.0), threshold(card))
    assert (m.true_positives, m.false_positives) == (14, 0), m
    assert m.rms_error_pm < 15.0  # measured 9.7 pm (3.6 pm for the bright atoms below)
    # Bright atoms (peak 160): the model, tuned to faint real atoms, also gives background
    # texture confidences up to ~0.6 here (measured: 3 false positives at 0.5, 1 at 0.6),
    # so clean images need a threshold of 0.7 -- or the default model (documented in
    # docs/atoms_pt.md).
    m = score(*synthetic_single_atoms(160.0), 0.7)
    assert (m.true_positives, m.false_positives) == (14, 0), m


def test_finds_atoms_on_a_real_pt_crop(card):
    """A 256^2 crop of real image 034 (one of its training images: a plumbing check, not a
    score -- the cross-validated scores are in the card)."""
    from benchmarks.lib.pt import read_pt_image

    image, ps, truth = read_pt_image("034", shared_path("pt_single_atoms"))
    r0, c0, side = 200, 200, 256
    crop = image[r0 : r0 + side, c0 : c0 + side]
    inside = ((truth >= (r0, c0)) & (truth < (r0 + side, c0 + side))).all(1)
    true = truth[inside] - (r0, c0)
    found = find_atoms(crop, ps, model=NAME, threshold=threshold(card), threads=1)
    m = point_metrics(found[["y_px", "x_px"]].to_numpy(), true, radius_nm=0.1, pixel_size_nm=ps)
    assert len(true) >= 15
    # Measured 2026-11-29 (atoms_default fine-tuned by `napari-atomseg finetune`, card
    # threshold 0.5): 12 of 20 labelled atoms found, 18 points, F1 0.63 (the model shipped
    # before: 11 of 20, 26 points, F1 0.48). On real Pt the cross-validated F1 is 0.54:
    # see docs/atoms_pt.md.
    assert m.recall >= 0.55 and m.f1 >= 0.55, m
