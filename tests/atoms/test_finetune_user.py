"""Fine-tuning the atom finder on hand-corrected points (atoms.finetune_user, `finetune` CLI)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_atomseg.atoms import find_atoms, point_metrics
from napari_atomseg.atoms.finetune_user import (
    RECIPE,
    find_points_file,
    finetune_atoms,
    finetune_config,
    match_radius_nm,
    read_points_table,
)
from napari_atomseg.backend.cards import load_card
from napari_atomseg.cli import main
from napari_atomseg.errors import FileReadError, InputError
from napari_atomseg.io import Calibration, write_image_tiff, write_points_csv
from tests._models import export_tiny_atoms_model, training_recipe
from tests._synth import hex_lattice_px, render_columns

PS = 0.02


def _decoy_scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sharp atoms (labelled) among equally bright blobs 2.7x wider (not atoms): a
    distinction the synthetic-only default model does not make."""
    rng = np.random.default_rng(seed)
    atoms = rng.uniform(10, 246, (40, 2))
    decoys = rng.uniform(10, 246, (40, 2))
    gap = np.linalg.norm(decoys[:, None] - atoms[None], axis=-1).min(1)
    decoys = decoys[gap > 12]
    img = render_columns((256, 256), atoms, 0.045 / PS, 60, 20) + render_columns(
        (256, 256), decoys, 0.12 / PS, 60
    )
    return rng.poisson(img).astype(np.float32), atoms


def _f1(model, scenes) -> float:
    tp = fp = fn = 0
    for img, atoms in scenes:
        df = find_atoms(img, PS, model=model, contrast="bright")
        m = point_metrics(
            df[["y_px", "x_px"]].to_numpy(float), atoms, radius_nm=0.1, pixel_size_nm=PS
        )
        tp, fp, fn = tp + m.true_positives, fp + m.false_positives, fn + m.false_negatives
    return 2 * tp / (2 * tp + fp + fn)


# --------------------------------------------------------------------------- points tables
def test_points_tables_of_every_layout_give_row_col_px(tmp_path):
    pts = np.array([[10.5, 20.25], [30.0, 40.0]])
    write_points_csv(tmp_path / "ours.csv", pts, Calibration.from_pixel_size_nm(0.05))
    pd.DataFrame({"index": [0, 1], "axis-0": pts[:, 0], "axis-1": pts[:, 1]}).to_csv(
        tmp_path / "napari.csv", index=False
    )
    pd.DataFrame(
        {"index": [0], "axis-0": [3.0], "axis-1": pts[:1, 0], "axis-2": pts[:1, 1]}
    ).to_csv(tmp_path / "napari3d.csv", index=False)
    pd.DataFrame({" ": [1, 2], "X": pts[:, 1], "Y": pts[:, 0]}).to_csv(
        tmp_path / "imagej.csv", index=False
    )
    pd.DataFrame({"y_nm": pts[:, 0] * 0.05, "x_nm": pts[:, 1] * 0.05}).to_csv(
        tmp_path / "nm.csv", index=False
    )
    for name in ("ours", "napari", "imagej"):
        np.testing.assert_allclose(read_points_table(tmp_path / f"{name}.csv"), pts)
    np.testing.assert_allclose(read_points_table(tmp_path / "napari3d.csv"), pts[:1])
    np.testing.assert_allclose(read_points_table(tmp_path / "nm.csv", 0.05), pts)
    with pytest.raises(FileReadError, match="pixel size is needed"):
        read_points_table(tmp_path / "nm.csv")


def test_points_table_errors_name_the_problem(tmp_path):
    (tmp_path / "cols.csv").write_text("a,b\n1,2\n")
    with pytest.raises(FileReadError, match="no atom coordinates"):
        read_points_table(tmp_path / "cols.csv")
    (tmp_path / "nan.csv").write_text("y_px,x_px\n1,2\n,3\n")
    with pytest.raises(FileReadError, match="NaN"):
        read_points_table(tmp_path / "nan.csv")
    with pytest.raises(FileReadError, match="cannot read"):
        read_points_table(tmp_path / "missing.csv")


def test_points_file_is_found_beside_the_image_name(tmp_path):
    (tmp_path / "a_atoms.csv").write_text("y_px,x_px\n")
    (tmp_path / "b.csv").write_text("y_px,x_px\n")
    assert find_points_file("data/a.dm4", tmp_path).name == "a_atoms.csv"
    assert find_points_file("b.tif", tmp_path).name == "b.csv"
    with pytest.raises(InputError, match=r"c_atoms\.csv"):
        find_points_file("c.tif", tmp_path)


# --------------------------------------------------------------------------- config
def test_config_reproduces_the_base_model_s_task():
    cfg = finetune_config("default", "out", "mine", steps=50, seed=3, synthetic_fraction=0.1)
    base = load_card("atoms_default")
    opts = base.training["config"]["task_options"]
    assert cfg["task"] == base.training["config"]["task"]
    assert cfg["init_from"] == "atoms_default"  # a shipped model by name, portable
    # the same targets and input preparation as the base model (background subtraction)
    for key in ("working_pixel_size_nm", "sigma_fraction", "background_sigma_nm"):
        assert cfg["task_options"][key] == opts[key]
    assert cfg["steps"] == cfg["val_every"] == 50 and cfg["seed"] == 3
    assert cfg["pairs_fraction"] == pytest.approx(0.9)
    assert cfg["lr"] == RECIPE["lr"] and cfg["out_dir"] == cfg["export_dir"] == "out"
    from pathlib import Path

    assert Path(cfg["task_options"]["mix"]).is_file()  # resolved for any working directory
    plain = finetune_config("default", "out", work_dir="runs/x", description="mine")
    assert plain["pairs_fraction"] == 1.0 and plain["example_pool"] == 0  # the default
    assert plain["val_examples"] == 0
    assert (plain["out_dir"], plain["export_dir"]) == ("runs/x", "out")
    assert plain["card"]["description"] == "mine"


def test_config_refuses_models_it_cannot_fine_tune(tmp_path):
    with pytest.raises(InputError, match="only atom-finder models"):
        finetune_config("segment_contamination", tmp_path)
    tiny = export_tiny_atoms_model(tmp_path, "no_recipe")
    with pytest.raises(InputError, match="records no training task"):
        finetune_config(tiny.path, tmp_path)
    with pytest.raises(InputError, match="synthetic_fraction"):
        finetune_config("default", tmp_path, synthetic_fraction=0.95)
    with pytest.raises(InputError, match="model name 'my model'"):
        finetune_config("default", tmp_path, "my model")


def test_bad_inputs_are_refused_before_training(tmp_path):
    img, atoms = _decoy_scene(0)
    with pytest.raises(InputError, match="2 image"):
        finetune_atoms([img, img], [atoms], PS, tmp_path)
    with pytest.raises(InputError, match="outside"):
        finetune_atoms([img], [atoms * 3], PS, tmp_path)
    with pytest.raises(InputError, match="pixel size is needed"):
        finetune_atoms([img], [atoms], None, tmp_path)
    with pytest.raises(InputError, match="no atom positions"):
        finetune_atoms([img], [np.zeros((0, 2))], PS, tmp_path)
    with pytest.raises(InputError, match="NaN"):
        finetune_atoms([img], [np.full((3, 2), np.nan)], PS, tmp_path)
    with pytest.raises(InputError, match="contrast"):
        finetune_atoms([img], [atoms], PS, tmp_path, contrast="auto")
    assert not any(tmp_path.iterdir())  # nothing written


def test_match_radius_follows_the_labelled_spacing():
    img = np.zeros((10, 10))
    sparse = [(img, 0.02, np.array([[0.0, 0.0], [0.0, 100.0]]))]
    dense = [(img, 0.02, hex_lattice_px((200, 200), 5.0))]  # 0.1 nm apart
    assert match_radius_nm(sparse) == pytest.approx(0.1)
    assert match_radius_nm(dense) == pytest.approx(0.05, rel=0.02)


# --------------------------------------------------------------------------- training
def test_fine_tuning_teaches_what_the_labels_say(tmp_path):
    """The default model marks wide blobs as atoms; 60 steps on three labelled images
    teach it not to, measured on two images it never saw."""
    train = [_decoy_scene(s) for s in range(3)]
    held_out = [_decoy_scene(s) for s in (10, 11)]
    before = _f1("default", held_out)
    lines = []
    card_path = finetune_atoms(
        [i for i, _ in train],
        [a for _, a in train],
        PS,
        tmp_path / "model",
        name="mine",
        steps=60,
        synthetic_fraction=0,
        threads=1,
        log=lines.append,
    )
    after = _f1(card_path, held_out)
    assert before < 0.85
    assert after > 0.9 and after > before + 0.1
    card = load_card(card_path)
    assert card.name == "mine" and card_path.name == "mine.yaml"
    assert card.training["config"]["init_from"] == "atoms_default"
    tuned = card.metrics["fine_tuning"]
    assert tuned["images"] == 3 and tuned["atoms"] == 120
    chosen = f"{card.postprocess['threshold']}/{card.postprocess['min_evidence']}"
    assert chosen in tuned["grid_f1"]
    assert tuned["training_f1"] == max(tuned["grid_f1"].values())
    assert any("threshold" in line for line in lines)
    # the input preparation of the base model is kept (background subtraction), and its
    # scale reference (no synthetic validation set here to measure one)
    base = load_card("atoms_default")
    assert card.input.background_sigma_nm == base.input.background_sigma_nm
    assert card.input.scale_reference == base.input.scale_reference is not None


# --------------------------------------------------------------------------- CLI
@pytest.fixture
def labelled_files(tmp_path):
    d = tmp_path / "data"
    (d / "points").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(2):
        true = hex_lattice_px((96, 96), 0.25 / 0.025, margin_px=2, seed=k)
        img = rng.poisson(render_columns((96, 96), true, 0.04 / 0.025, 200, 20)).astype(np.float32)
        write_image_tiff(d / f"im{k}.tif", img, Calibration.from_pixel_size_nm(0.025))
        write_points_csv(d / "points" / f"im{k}_atoms.csv", true)
    return d


def _recipe_model(tmp_path):
    """A tiny atoms model whose card records a training recipe (fast to fine-tune)."""
    return export_tiny_atoms_model(
        tmp_path,
        "tiny_recipe",
        training=training_recipe(0.025),
    )


def test_cli_fine_tunes_and_the_atoms_command_uses_the_result(labelled_files, tmp_path, capsys):
    base = _recipe_model(tmp_path / "base")
    out = tmp_path / "mine"
    code = main(
        [
            "finetune",
            str(labelled_files / "im0.tif"),
            str(labelled_files / "im1.tif"),
            "--points",
            str(labelled_files / "points"),
            "--out",
            str(out),
            "--base",
            str(base.path),
            "--steps",
            "3",
            "--synthetic-fraction",
            "0",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    card_path = out / "atoms_finetuned.yaml"
    assert captured.out.strip() == str(card_path)
    assert "im0.tif:" in captured.err and "atoms from" in captured.err
    card = load_card(card_path)
    assert card.training["command"].startswith("napari-atomseg finetune")
    assert card.metrics["fine_tuning"]["images"] == 2
    code = main(
        [
            "atoms",
            str(labelled_files / "im0.tif"),
            "--out",
            str(tmp_path / "res"),
            "--model",
            str(card_path),
        ]
    )
    assert code == 0
    assert (tmp_path / "res" / "im0_atoms.csv").is_file()


def test_cli_errors_are_clear_and_exit_2(labelled_files, tmp_path, capsys):
    img = str(labelled_files / "im0.tif")
    code = main(["finetune", img, "--points", str(tmp_path), "--out", str(tmp_path / "o")])
    assert code == 2 and "no im0_atoms.csv or im0.csv" in capsys.readouterr().err
    code = main(
        [
            "finetune",
            img,
            img,
            "--points",
            str(labelled_files / "points" / "im0_atoms.csv"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "1 table(s) for 2 image(s)" in capsys.readouterr().err
    code = main(
        [
            "finetune",
            str(tmp_path / "nope.tif"),
            "--points",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "not a file" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
