"""The shipped segmentation models: cards, verified weights, defaults and sane results."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_atomseg.backend import get_model  # noqa: E402
from napari_atomseg.backend.cards import MODELS_DIR, load_card  # noqa: E402
from napari_atomseg.segmentation import segment  # noqa: E402
from napari_atomseg.segmentation._unet import default_model  # noqa: E402
from napari_atomseg.segmentation.metrics import MaskScores  # noqa: E402
from tests._data import REPO_ROOT, shared_path  # noqa: E402

SHIPPED = {
    "segment_contamination": ("crystal", "amorphous", "vacuum"),
    "segment_contamination_synthetic": ("crystal", "amorphous", "vacuum"),
    "segment_particles": ("background", "particle"),
    "segment_particles_bf": ("background", "particle"),
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_card_and_weights(name):
    card = load_card(name)
    assert card.task == "segmentation" and tuple(card.channels) == SHIPPED[name]
    assert (MODELS_DIR / f"{name}.safetensors").is_file()
    loaded = get_model(name, device="cpu")  # verifies the sha256 in the card
    assert loaded.card.weights.sha256 == card.weights.sha256
    # Produced by the train command from a committed config, with its seed and metrics.
    training = card.training
    assert "napari-atomseg train" in training["command"]
    assert (REPO_ROOT / training["config_file"]).is_file()
    assert isinstance(training["seed"], int) and training["steps"] > 0
    assert training["seed"] == training["config"]["seed"]
    assert card.metrics["validation"]


def test_defaults_are_the_shipped_models():
    assert default_model("contamination").name == "segment_contamination"
    assert default_model("particles").name == "segment_particles"
    assert load_card("segment_contamination").training["init_from"]["name"] == (
        "segment_contamination_synthetic"
    )
    # The particle model: the two stages of configs/segment_particles.yaml.
    training = load_card("segment_particles").training
    assert training["config_file"] == "configs/segment_particles.yaml"
    assert [s["stage"] for s in training["stages"]] == ["fresh", "pool"]
    assert training["stages"][0]["sha256"] == training["init_from"]["sha256"]


def test_contamination_on_a_real_graphene_image():
    """In-sample (the shipped model was fine-tuned on all 31 images): a sanity check only;
    the held-out numbers come from benchmarks/segmentation.py (k-fold)."""
    from napari_atomseg.segmentation.data import load_graphene_contamination

    folder = shared_path("graphene_contamination")
    items = {it.name: it for it in load_graphene_contamination(folder)}
    it = items["2013_1213_Gr_129"]
    res = segment(it.image, it.pixel_size_nm)
    assert res.details["model"] == "segment_contamination"
    frac = res.class_fractions()["amorphous"]
    assert frac == pytest.approx(float(it.mask.mean()), abs=0.06)
    assert MaskScores.from_masks(it.mask, res.flagged_mask).summary(1)["jaccard"] > 0.6
    # Clean image: (almost) nothing flagged.
    clean = items["2014_0601_Gr_FS_017_layer_0014"]
    assert segment(clean.image, clean.pixel_size_nm).flagged_mask.mean() < 0.05


def test_particles_on_a_fixed_synthetic_image():
    from napari_atomseg.simulation import SimulationParameters, simulate

    sim = simulate(
        SimulationParameters(
            material="Pt",
            scene="particles",
            mode="haadf",
            shape_px=(192, 192),
            pixel_size_nm=0.06,
            n_particles=2,
            particle_diameter_nm=3.0,
            support_thickness_nm=4.0,
            seed=123_456_789,
        )
    )
    truth = np.asarray(sim.masks["particle"]) > 0
    assert 0.02 < truth.mean() < 0.5
    res = segment(sim.image, sim.pixel_size_nm, task="particles")
    assert res.details["model"] == "segment_particles"
    assert MaskScores.from_masks(truth, res.flagged_mask).summary(1)["f1"] > 0.85


@pytest.mark.parametrize(
    ("px", "source", "expected"),
    [
        (0.08, "user", "segment_particles"),  # lattice-resolving, given
        (0.08, "lattice", "segment_particles"),  # measured on a lattice
        (0.40, "user", "segment_particles_bf"),  # survey sampling, given
        (0.08, "features", "segment_particles_bf"),  # a guess from blob widths
        (None, "none", "segment_particles_bf"),  # nothing known
    ],
)
def test_particle_model_follows_what_is_known_of_the_scale(px, source, expected):
    from napari_atomseg.segmentation._unet import model_for_image

    card, why = model_for_image("particles", px, source)
    assert card.name == expected and why
    assert model_for_image("contamination", px, source)[0].name == "segment_contamination"


def test_bright_field_survey_particles_without_a_pixel_size():
    """The issue's case: 8-bit bright-field frames of particles a few pixels across, grey
    levels squeezed into a narrow range, no pixel size. The default picks the scale-free
    model and beats a smoothed Otsu threshold (held-out seed of the BF simulator)."""
    from dataclasses import replace

    from skimage.filters import gaussian, threshold_otsu

    from napari_atomseg.simulation.bf_particles import random_bf_parameters, render_bf_particles

    rng = np.random.default_rng([20261207, 1])
    p = random_bf_parameters(
        rng, diameter_nm=(2.0, 4.0), diameter_px=(5.0, 10.0), pixel_size_nm=(0.2, 0.8),
        shape_px=(256, 256), materials={"Au": 1.0},
    )  # fmt: skip
    p = replace(p, coverage=0.2, grey_range=30.0, grey_offset=100.0, quantise=True)
    sim = render_bf_particles(p)
    res = segment(sim.image, task="particles")
    assert res.details["model"] == "segment_particles_bf"
    dice = MaskScores.from_masks(sim.mask, res.flagged_mask).summary(1)["f1"]
    smooth = gaussian(sim.image.astype(float), 1.0)
    otsu = smooth < threshold_otsu(smooth)  # particles are dark in bright field
    dice_otsu = MaskScores.from_masks(sim.mask, otsu).summary(1)["f1"]
    assert dice > 0.7 and dice > dice_otsu + 0.1


@pytest.mark.parametrize(("task", "px"), [("contamination", 0.005), ("contamination", 0.2),
                                          ("contamination", 0.25), ("particles", 0.005),
                                          ("particles", 0.2), ("particles", 0.4),
                                          ("particles", 2.0)])  # fmt: skip
def test_ordinary_pixel_sizes_are_accepted(task, px):
    """Issue 19: 0.005-0.2 nm/px is ordinary sampling (2 nm/px for particle surveys); the
    cards' own upper limits (0.25 and 0.4 nm/px, 5x their working sampling) hold too --
    0.25 was refused by the 4x up-sampling cap until the cap followed the card."""
    rng = np.random.default_rng(0)
    image = rng.normal(100.0, 10.0, (256, 256)).astype(np.float32)
    res = segment(image, px, task=task)
    assert res.labels.shape == image.shape
