"""Model cards: parsing, validation messages, round trips, listing."""

from __future__ import annotations

import pytest
import yaml

from napari_atomseg.backend.cards import (
    MODELS_DIR,
    card_from_dict,
    default_model_name,
    list_models,
    load_card,
    save_card,
)
from napari_atomseg.errors import InputError, ModelError
from tests._models import tiny_card_dict


def test_round_trip_through_yaml(tmp_path):
    data = tiny_card_dict(
        "seg",
        task="segmentation",
        version="1",
        description="test model",
        classes=["vacuum", "crystal", "amorphous"],
        outputs=[
            {"name": "classes", "activation": "softmax"},
            {"name": "edge", "activation": "sigmoid"},
        ],
    )
    card = card_from_dict(data)
    assert card.channels == ("vacuum", "crystal", "amorphous", "edge")
    assert card.head_channels == (3, 1)
    path = save_card(card, tmp_path / "seg.yaml")
    again = load_card(path)
    assert again == card
    assert again.path == path.resolve()
    assert again.input.normalisation_spec == "robust_zscore"


def test_normalisation_with_parameters_survives_round_trip(tmp_path):
    data = tiny_card_dict()
    data["input"]["normalisation"] = {"name": "robust_zscore", "low_pct": 2, "high_pct": 98}
    card = card_from_dict(data)
    assert card.input.normalisation == "robust_zscore"
    assert dict(card.input.normalisation_params) == {"low_pct": 2, "high_pct": 98}
    assert load_card(save_card(card, tmp_path / "c.yaml")).input.normalisation_spec == {
        "name": "robust_zscore",
        "low_pct": 2,
        "high_pct": 98,
    }


def test_background_width_is_optional_validated_and_survives_round_trip(tmp_path):
    plain = card_from_dict(tiny_card_dict())
    assert plain.input.background_sigma_nm is None
    assert "background_sigma_nm" not in plain.input.to_dict()  # old cards stay unchanged
    assert plain.input.background_sigma_px(0.02) is None
    data = tiny_card_dict()
    data["input"]["background_sigma_nm"] = 1.2
    card = card_from_dict(data)
    assert load_card(save_card(card, tmp_path / "bg.yaml")).input.background_sigma_nm == 1.2
    assert card.input.background_sigma_px(0.03) == pytest.approx(40.0)
    with pytest.raises(InputError, match="pixel size"):
        card.input.background_sigma_px(None)
    for bad in (0, -1.0, "wide"):
        data["input"]["background_sigma_nm"] = bad
        with pytest.raises(ModelError, match="background_sigma_nm"):
            card_from_dict(data)


def test_multichannel_sigmoid_names():
    card = card_from_dict(
        tiny_card_dict(outputs=[{"name": "spacing", "activation": "identity", "channels": 2}])
    )
    assert card.channels == ("spacing_0", "spacing_1")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("architecture"), "missing required field 'architecture'"),
        (lambda d: d.update(colour="red"), "unknown field(s) ['colour']"),
        (lambda d: d.update(task="denoise"), "task must be one of"),
        (lambda d: d.update(name="bad name!"), "must be letters"),
        (
            lambda d: d.update(outputs=[{"name": "h", "activation": "tanh"}]),
            "activation must be one of",
        ),
        (
            lambda d: d.update(outputs=[{"name": "c", "activation": "softmax"}]),
            "needs 'channels' >= 2",
        ),
        (lambda d: d.update(outputs=[]), "non-empty list"),
        (lambda d: d["input"].update(normalisation="magic"), "unknown name 'magic'"),
        (
            lambda d: d["input"].update(normalisation={"name": "zscore", "p": 1}),
            "unknown parameter(s) ['p']",
        ),
        (lambda d: d["input"].update(working_pixel_size_nm=-1), "must be positive"),
        (
            lambda d: d["input"].update(pixel_size_range_nm=[0.03, 0.1]),
            "contain working_pixel_size_nm",
        ),
        (lambda d: d["input"].update(overlap_px=40), "overlap_px <= tile_px/2"),
        (lambda d: d["input"].update(colour=1), "input has unknown key(s)"),
        (
            lambda d: d.update(weights={"file": "w.pt", "sha256": "0" * 64}),
            "must be a .safetensors file",
        ),
        (lambda d: d.update(weights={"file": "w.safetensors", "sha256": "xyz"}), "64 hex digits"),
        (lambda d: d.update(classes=["only"]), "at least 2 names"),
    ],
)
def test_invalid_cards_name_the_problem(change, message):
    data = tiny_card_dict()
    change(data)
    with pytest.raises(ModelError) as info:
        card_from_dict(data)
    assert message in str(info.value)


def test_load_card_errors(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'no_such_model'"):
        load_card("no_such_model")
    with pytest.raises(ModelError, match="not found"):
        load_card(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ModelError, match="cannot be read as YAML"):
        load_card(bad)
    bad.write_text(yaml.safe_dump(tiny_card_dict(task="bogus")))
    with pytest.raises(ModelError, match=str(bad)):
        load_card(bad)


def test_list_models_filters_and_orders_default_first(tmp_path):
    for name, task, default in [
        ("b_atoms", "atoms", False),
        ("a_atoms", "atoms", False),
        ("z_atoms", "atoms", True),
        ("seg", "segmentation", False),
    ]:
        extra = {"default": True} if default else {}
        if task == "segmentation":
            extra.update(classes=["a", "b"], outputs=[{"name": "classes", "activation": "softmax"}])
        save_card(
            card_from_dict(tiny_card_dict(name, task=task, **extra)), tmp_path / f"{name}.yaml"
        )
    names = [c.name for c in list_models("atoms", models_dir=tmp_path)]
    assert names == ["z_atoms", "a_atoms", "b_atoms"]
    assert [c.name for c in list_models("segmentation", models_dir=tmp_path)] == ["seg"]
    with pytest.raises(InputError):
        list_models("denoise")


def test_shipped_cards_are_valid():
    """Every card shipped in the package parses (weights are checked in test_registry)."""
    for path in MODELS_DIR.glob("*.yaml"):
        card = load_card(path)
        assert card.weights is not None, f"{path} ships without weights"
    defaults = [c for c in list_models("atoms") if c.default]
    assert len(defaults) <= 1, "more than one default atoms model"
    if not defaults:
        with pytest.raises(ModelError, match="no default"):
            default_model_name("atoms")
    # segmentation cards serve several segment tasks (contamination, particles): at most
    # one default per segment task
    from napari_atomseg.segmentation._unet import card_fits_task

    for seg_task in ("contamination", "particles"):
        fitting = [c for c in list_models("segmentation") if card_fits_task(c, seg_task)]
        defaults = [c.name for c in fitting if c.default]
        assert len(defaults) <= 1, f"more than one default {seg_task} model: {defaults}"
