"""The shipped default atom model: its card, its weights' integrity, and that it works."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.atoms.find import find_atoms
from napari_atomseg.atoms.metrics import point_metrics
from napari_atomseg.backend import default_model_name, get_model
from napari_atomseg.backend.cards import load_card
from napari_atomseg.backend.registry import sha256_file

PS = 0.02


@pytest.fixture(scope="module")
def card():
    return load_card(default_model_name("atoms"))


def test_card_records_how_it_was_made(card):
    assert card.name == "atoms_default" and card.task == "atoms" and card.default
    assert card.weights is not None
    path = card.weights_path
    assert path.suffix == ".safetensors" and path.parent.name == "models"
    assert path.stat().st_size == card.weights.size_bytes < 5_000_000
    assert sha256_file(path) == card.weights.sha256
    training = card.training
    assert training["command"].startswith("napari-atomseg train configs/atoms_")
    assert training["config_file"].startswith("configs/atoms_")
    assert training["seed"] == training["config"]["seed"]
    assert training["config"]["task_options"]["mix"] == "configs/atoms_mix_v2.yaml"
    # (strict: peaks within 1.5 working px of the target peak, over hard held-out examples)
    assert card.metrics["validation"]["f1"] > 0.3  # 0.38 at export; a sanity floor


def test_model_loads_and_matches_its_card(card):
    loaded = get_model("atoms_default", "cpu")
    assert loaded.card.weights.sha256 == card.weights.sha256
    assert loaded.card.input.working_pixel_size_nm == pytest.approx(0.03)


@pytest.fixture(scope="module")
def haadf():
    """A fixed simulated HAADF image (SrTiO3 [001], moderate dose), its visible columns and
    which of them are pure oxygen."""
    from napari_atomseg.simulation import SimulationParameters, simulate

    res = simulate(
        SimulationParameters(
            material="SrTiO3",
            zone_axis="001",
            shape_px=(192, 192),
            pixel_size_nm=PS,
            dose_e_per_A2=5e4,
            rotation_deg=17.0,
            seed=4242,
        )
    )
    cols = res.columns[res.columns["visible"]]
    yx = cols[["y_px", "x_px"]].to_numpy(float)
    oxygen = cols["elements"].str.fullmatch(r"O\d*").to_numpy()
    b = 4
    inside = (yx >= b).all(1) & (yx <= np.array(res.image.shape) - 1 - b).all(1)
    return np.asarray(res.image, np.float32), yx[inside], oxygen[inside]


def _found(image: np.ndarray) -> tuple[np.ndarray, object]:
    df = find_atoms(image, PS, threads=1)
    pred = df[["y_px", "x_px"]].to_numpy()
    b = 4
    return pred[(pred >= b).all(1) & (pred <= np.array(image.shape) - 1 - b).all(1)], df


def test_default_model_finds_the_cation_columns_of_a_haadf_image(haadf):
    image, truth, oxygen = haadf
    assert (~oxygen).sum() > 150
    pred, df = _found(image)
    m = point_metrics(pred, truth, radius_nm=0.05, pixel_size_nm=PS)
    assert m.precision >= 0.98  # nothing where the image has no column
    cations = point_metrics(pred, truth[~oxygen], radius_nm=0.05, pixel_size_nm=PS)
    assert cations.recall >= 0.97
    assert m.rms_error_pm < 10.0
    assert np.isfinite(df["nn_spacing_nm"]).all()


@pytest.mark.xfail(
    strict=True,
    reason="known limit of the shipped network (docs/atoms.md): faint columns beside "
    "bright ones; it finds about half the O columns the simulator calls visible",
)
def test_default_model_finds_the_oxygen_columns_of_a_haadf_image(haadf):
    image, truth, oxygen = haadf
    pred, _ = _found(image)
    m = point_metrics(pred, truth[oxygen], radius_nm=0.05, pixel_size_nm=PS)
    assert m.recall >= 0.9


def test_default_model_finds_every_carbon_atom_of_clear_graphene_stem():
    """Monolayer graphene in HAADF-STEM where its single carbon atoms are clear (3e5 e/A^2):
    every atom, nothing else, with and without the pixel size (measured F1 0.993-0.998 on
    benchmarks/atoms_graphene_stem.py's images; blob_log at its tuned threshold 0.994-0.998)."""
    from napari_atomseg.simulation import SimulationParameters, simulate

    sim = simulate(SimulationParameters(material="graphene", mode="haadf", shape_px=(192, 192),
                                        pixel_size_nm=0.01, dose_e_per_A2=3e5, seed=3,
                                        rotation_deg=11.0))  # fmt: skip
    from scipy.spatial import cKDTree

    def inner(yx):  # 10 px off the border; matches may lie beyond it
        return yx[((yx >= 10) & (yx < 182)).all(axis=1)]

    truth = sim.columns[["y_px", "x_px"]].to_numpy()
    for px in (0.01, None):
        found = find_atoms(sim.image, px, imaging="stem", contrast="bright")[["y_px", "x_px"]]
        found = found.to_numpy()
        # Carbon atoms are 14 px apart: within 7 px (0.07 nm) a match is one to one.
        recall = np.mean(cKDTree(found).query(inner(truth))[0] <= 7.0)
        precision = np.mean(cKDTree(truth).query(inner(found))[0] <= 7.0)
        assert precision >= 0.98 and recall >= 0.97, (px, precision, recall)


def test_images_much_finer_than_the_working_grid_map_back():
    # 0.005 nm/px is 6x finer than the model's 0.03 nm/px: the heatmap is up-sampled 6x
    # on the way back (this failed with the input's 4x up-sampling cap before).
    from napari_atomseg.atoms.heatmap import predict_heatmap

    rng = np.random.default_rng(0)
    image = rng.poisson(100, (200, 200)).astype(np.float32)
    res = predict_heatmap(image, 0.005, threads=1)
    assert res.heatmap.shape == image.shape
    assert np.isfinite(res.heatmap).all()


def test_every_shipped_atoms_model_loads_with_its_recorded_provenance():
    from napari_atomseg.backend import list_models

    cards = list_models("atoms")
    assert [c.name for c in cards][:1] == ["atoms_default"]  # the default first
    for c in cards:
        assert sha256_file(c.weights_path) == c.weights.sha256
        # made by one of the project's own commands: a training config in configs/, or the
        # users' fine-tuning command starting from another shipped model
        command = c.training["command"]
        if command.startswith("napari-atomseg finetune "):
            assert c.training["config"]["init_from"] in [other.name for other in cards]
        else:
            assert command.startswith("napari-atomseg train configs/atoms_")
        assert get_model(c.name, "cpu").card.name == c.name
