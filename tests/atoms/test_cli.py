"""`napari-atomseg atoms INPUT... --out DIR`: files, folders, globs, stacks, errors.

Uses an untrained tiny atoms model exported through the backend (plumbing, not accuracy:
the CSVs must equal what find_atoms returns for the same image and model); the shipped
model's accuracy is tested in test_default_model.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_atomseg.atoms._cli import SUMMARY_NAME, expand_inputs, output_names
from napari_atomseg.atoms.find import find_atoms
from napari_atomseg.atoms.heatmap import HeatmapResult
from napari_atomseg.cli import main
from napari_atomseg.io import Calibration, read_points_csv, write_image_tiff
from tests._models import export_tiny_atoms_model
from tests._synth import heatmap_for, hex_hollows_px, hex_lattice_px, render_columns

PS = 0.025


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return export_tiny_atoms_model(tmp_path_factory.mktemp("model"), "atoms_cli_test")


def _image(seed: int, shape=(96, 96)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    true = hex_lattice_px(shape, 0.25 / PS, margin_px=2, seed=seed)
    return rng.poisson(render_columns(shape, true, 0.04 / PS, 200, 20)).astype(np.float32)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "images"
    (d / "sub").mkdir(parents=True)
    write_image_tiff(d / "a.tif", _image(1), Calibration.from_pixel_size_nm(PS))
    write_image_tiff(d / "sub" / "b.tif", _image(2), Calibration.from_pixel_size_nm(PS))
    tifffile.imwrite(d / "plain.tif", _image(3))  # no calibration at all
    (d / "broken.dm3").write_bytes(b"\x00\x00\x00\x03 not a DigitalMicrograph file")
    (d / "notes.txt").write_text("not an image")
    return d


def _run(args, capsys):
    code = main(["atoms", *map(str, args)])
    return code, capsys.readouterr().err


def test_folder_writes_one_csv_per_image_equal_to_find_atoms(folder, tmp_path, tiny_model, capsys):
    out = tmp_path / "out"
    model = str(tiny_model.path)
    code, err = _run(
        [folder, "--out", out, "--model", model, "--threshold", "0.05", "--refine", "com"],
        capsys,
    )
    assert code == 1  # broken.dm3 failed; the others went on
    assert "broken.dm3" in err and "error" in err
    summary = pd.read_csv(out / SUMMARY_NAME)
    names = summary["file"].map(lambda f: f.split("/")[-1]).tolist()
    assert names == ["a.tif", "broken.dm3", "plain.tif"]  # not recursive, no .txt
    ok = summary[summary["error"].isna()]
    assert len(ok) == 2 and (ok["model"] == "atoms_cli_test").all()
    a = ok.iloc[0]
    assert a["pixel_size_nm"] == pytest.approx(PS) and not a["pixel_size_estimated"]
    assert summary.iloc[1]["n_columns"] == 0 and isinstance(summary.iloc[1]["error"], str)

    pts, table = read_points_csv(out / "a_atoms.csv")
    direct = find_atoms(_image(1), PS, model=model, threshold=0.05, refine="com")
    assert len(direct) == a["n_columns"] > 0
    np.testing.assert_allclose(pts, direct[["y_px", "x_px"]].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(table["y_nm"], direct["y_nm"], rtol=1e-6)
    np.testing.assert_allclose(table["confidence"], direct["confidence"], rtol=1e-6)
    assert list(table.columns[:4]) == ["y_px", "x_px", "y_nm", "x_nm"]

    # The uncalibrated file: pixel columns, plus nm from the estimated pixel size if any.
    plain = ok.iloc[1]
    _, ptable = read_points_csv(out / "plain_atoms.csv")
    assert len(ptable) == plain["n_columns"]
    if plain["pixel_size_estimated"]:
        np.testing.assert_allclose(
            ptable["y_nm"], ptable["y_px"] * plain["pixel_size_nm"], rtol=1e-6
        )


def test_globs_recursion_overrides_and_overwrite(folder, tmp_path, tiny_model, capsys):
    out = tmp_path / "out"
    model = str(tiny_model.path)
    args = [f"{folder}/**/*.tif", "--out", out, "--model", model, "--recursive"]
    args += ["--pixel-size-nm", "0.03", "--threshold", "0.05", "--min-separation-nm", "0.1"]
    args += ["--refine", "none"]  # the separation applies to the heatmap peaks
    code, err = _run(args, capsys)
    assert code == 0, err
    summary = pd.read_csv(out / SUMMARY_NAME)
    assert sorted(summary["file"].map(lambda f: f.split("/")[-1])) == [
        "a.tif",
        "b.tif",
        "plain.tif",
    ]
    assert (summary["pixel_size_nm"] == 0.03).all()
    _, table = read_points_csv(out / "plain_atoms.csv")
    np.testing.assert_allclose(table["x_nm"], table["x_px"] * 0.03, rtol=1e-6)
    # Peaks at least the minimum separation apart (up to the sub-pixel shift, < 1 px).
    from scipy.spatial import cKDTree

    d, _ = cKDTree(table[["y_nm", "x_nm"]].to_numpy()).query(table[["y_nm", "x_nm"]], k=2)
    assert d[:, 1].min() >= 0.1 - 0.03
    # A second run into the same --out skips the finished images (resume); --overwrite
    # redoes them.
    stamp = (out / "plain_atoms.csv").stat().st_mtime_ns
    code, err = _run(args, capsys)
    assert code == 0 and "3 already done" in err
    assert (out / "plain_atoms.csv").stat().st_mtime_ns == stamp
    assert len(pd.read_csv(out / SUMMARY_NAME)) == 3
    code, err = _run([*args, "--overwrite"], capsys)
    assert code == 0, err
    assert (out / "plain_atoms.csv").stat().st_mtime_ns > stamp


def test_stack_gives_one_table_with_a_frame_column(tmp_path, tiny_model, capsys):
    stack = np.stack([_image(4), _image(5)])
    path = tmp_path / "stack.tif"
    write_image_tiff(path, stack, Calibration.from_pixel_size_nm(PS, ndim=3))
    out = tmp_path / "out"
    code, err = _run(
        [path, "--out", out, "--model", tiny_model.path, "--threshold", "0.05"], capsys
    )
    assert code == 0, err
    pts, table = read_points_csv(out / "stack_atoms.csv")
    assert pts.shape[1] == 3 and set(np.unique(pts[:, 0])) == {0.0, 1.0}
    assert len(table) == len(pts) and "confidence" in table
    second = find_atoms(_image(5), PS, model=str(tiny_model.path), threshold=0.05)
    np.testing.assert_allclose(pts[pts[:, 0] == 1][:, 1:], second[["y_px", "x_px"]], atol=1e-6)


def test_usage_errors(tmp_path, tiny_model, capsys):
    out = tmp_path / "out"
    code, err = _run([tmp_path / "nothing_*.tif", "--out", out], capsys)
    assert code == 2 and "matches no file" in err
    img = tmp_path / "x.tif"
    write_image_tiff(img, _image(6), Calibration.from_pixel_size_nm(PS))
    code, err = _run([img, "--out", out, "--model", "no_such_model"], capsys)
    assert code == 2 and "no_such_model" in err
    code, err = _run([img, "--out", out, "--model", tiny_model.path, "--threshold", "2"], capsys)
    assert code == 2 and "--threshold" in err
    # A missing file named explicitly is a per-file error, not a usage error.
    code, err = _run(
        [img, tmp_path / "missing.dm4", "--out", out, "--model", tiny_model.path], capsys
    )
    assert code == 1 and "missing.dm4" in err


def test_expand_and_names(tmp_path):
    (tmp_path / "d").mkdir()
    for n in ("a.tif", "b.mrc", "c.txt"):
        (tmp_path / "d" / n).write_bytes(b"x")
    files, problems = expand_inputs([str(tmp_path / "d"), str(tmp_path / "d" / "a.tif")])
    assert [f.name for f in files] == ["a.tif", "b.mrc"] and not problems
    names = output_names([tmp_path / "x" / "a.tif", tmp_path / "y" / "a.dm4"])
    assert sorted(names.values()) == ["a_atoms.csv", "a_atoms_2.csv"]


def test_contrast_option_reaches_find_atoms(folder, tmp_path, tiny_model, capsys):
    out = tmp_path / "out"
    model = str(tiny_model.path)
    args = [folder / "a.tif", "--out", out, "--model", model, "--threshold", "0.05"]
    code, err = _run([*args, "--refine", "com", "--contrast", "dark"], capsys)
    assert code == 0, err
    pts, _ = read_points_csv(out / "a_atoms.csv")
    direct = find_atoms(_image(1), PS, model=model, threshold=0.05, refine="com", contrast="dark")
    np.testing.assert_allclose(pts, direct[["y_px", "x_px"]].to_numpy(), atol=1e-6)
    # --min-evidence reaches find_atoms like every other finder option.
    code, err = _run([*args, "--refine", "none", "--min-evidence", "0", "--overwrite"], capsys)
    assert code == 0, err
    pts, _ = read_points_csv(out / "a_atoms.csv")
    direct = find_atoms(_image(1), PS, model=model, threshold=0.05, refine="none", min_evidence=0)
    np.testing.assert_allclose(pts, direct[["y_px", "x_px"]].to_numpy(), atol=1e-6)
    with pytest.raises(SystemExit) as usage:  # argparse: exit code 2 with the choices
        main(["atoms", *map(str, args), "--contrast", "black"])
    assert usage.value.code == 2


def test_cli_choices_are_the_library_s():
    """The parser takes its choices from the (light) options module: they cannot drift
    from the library's."""
    import argparse

    from napari_atomseg.atoms._cli import configure
    from napari_atomseg.atoms.options import (
        CONTRASTS,
        IMAGING_MODES,
        REFINE_METHODS,
        VIEWS_CHOICES,
    )

    parser = argparse.ArgumentParser()
    configure(parser)
    choices = {a.dest: tuple(a.choices) for a in parser._actions if a.choices}
    assert choices["refine"] == REFINE_METHODS
    assert choices["contrast"] == CONTRASTS
    assert choices["imaging"] == ("auto", *IMAGING_MODES, "unknown")
    assert choices["views"] == VIEWS_CHOICES


def test_warnings_are_printed_and_recorded_in_the_summary(
    folder, tmp_path, tiny_model, capsys, monkeypatch
):
    """A network whose peaks all sit between the columns: the CSV is still written; the
    summary's warnings column and stderr say why the result needs a look."""
    from napari_atomseg._progress import Progress
    from napari_atomseg.atoms import heatmap as atoms_heatmap

    def between_columns(image, pixel_size_nm=None, model="default", *, contrast="auto", **kw):
        true = hex_lattice_px((96, 96), 0.25 / PS, margin_px=2, seed=1)
        hollows = hex_hollows_px(true, 0.25 / PS, (96, 96))
        yield Progress(0, 1, "network")
        res = HeatmapResult.from_arrays(
            image, heatmap_for((96, 96), hollows, 0.04 / PS), pixel_size_nm
        )
        res.contrast = contrast
        return res

    monkeypatch.setattr(atoms_heatmap, "iter_predict_heatmap", between_columns)
    out = tmp_path / "out"
    img = folder / "a.tif"
    code, err = _run(
        [img, "--out", out, "--model", tiny_model.path, "--contrast", "bright"], capsys
    )
    assert code == 0, err
    summary = pd.read_csv(out / SUMMARY_NAME)
    (warning,) = summary["warnings"]
    assert "the image shows no column" in warning and "hollows" in warning
    assert f"warning: {img}: the image shows no column" in err
    assert (out / "a_atoms.csv").is_file()

    # A network that marks the columns: an ordinary result leaves the column empty.
    def on_columns(image, pixel_size_nm=None, model="default", *, contrast="auto", **kw):
        true = hex_lattice_px((96, 96), 0.25 / PS, margin_px=2, seed=1)
        yield Progress(0, 1, "network")
        return HeatmapResult.from_arrays(
            image, heatmap_for((96, 96), true, 0.04 / PS), pixel_size_nm
        )

    monkeypatch.setattr(atoms_heatmap, "iter_predict_heatmap", on_columns)
    code, err = _run([img, "--out", out, "--model", tiny_model.path, "--overwrite"], capsys)
    assert code == 0 and "warning:" not in err
    assert pd.read_csv(out / SUMMARY_NAME)["warnings"].isna().all()


def test_min_evidence_option(tmp_path, tiny_model, capsys):
    import argparse

    from napari_atomseg.atoms._cli import configure, finder_options

    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["x.tif", "--out", "o", "--min-evidence", "3"])
    assert finder_options(args).min_evidence == 3.0
    assert finder_options(parser.parse_args(["x.tif", "--out", "o"])).min_evidence is None
    assert finder_options(parser.parse_args(["x.tif", "--out", "o", "--views", "4"])).views == 4
    assert finder_options(parser.parse_args(["x.tif", "--out", "o"])).views == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["x.tif", "--out", "o", "--views", "3"])
    img = tmp_path / "a.tif"
    write_image_tiff(img, _image(1), Calibration.from_pixel_size_nm(PS))
    code, err = _run([img, "--out", tmp_path / "out", "--min-evidence", "-2"], capsys)
    assert code == 2 and "--min-evidence: -2.0 is outside the allowed range" in err


def test_imaging_is_read_from_each_file_unless_given(tmp_path, tiny_model, capsys):
    """--imaging auto (default) takes STEM / HRTEM from each file's acquisition mode; the
    summary says which was used; a given --imaging wins for every file."""
    folder = tmp_path / "in"
    folder.mkdir()
    cal = Calibration.from_pixel_size_nm(PS)
    write_image_tiff(folder / "tem.tif", _image(1), cal.with_metadata(acquisition_mode="TEM"))
    write_image_tiff(folder / "stem.tif", _image(2), cal.with_metadata(acquisition_mode="STEM"))
    write_image_tiff(folder / "plain.tif", _image(3), cal)
    out = tmp_path / "out"
    code, err = _run([folder, "--out", out, "--model", tiny_model.path], capsys)
    assert code == 0, err
    summary = pd.read_csv(out / SUMMARY_NAME).set_index(pd.Index(["plain", "stem", "tem"]))
    assert summary["imaging"].to_dict() == {"plain": "unknown", "stem": "stem", "tem": "hrtem"}
    code, err = _run(
        [folder, "--out", out, "--model", tiny_model.path, "--imaging", "stem", "--overwrite"],
        capsys,
    )
    assert code == 0, err
    assert set(pd.read_csv(out / SUMMARY_NAME)["imaging"]) == {"stem"}


def test_real_instrument_files_say_their_imaging_mode(tmp_path, tiny_model, capsys):
    """A TIA file of a STEM image (16_STOimage.emi) and a Velox EMD camera image taken in
    TEM mode: --imaging auto reads STEM and HRTEM from them."""
    from tests._data import shared_path

    files = [
        shared_path("formats", "openNCEM", "16_STOimage.emi"),
        shared_path("formats", "openNCEM", "Camera_Ceta_Imaging_Micro.emd"),
    ]
    out = tmp_path / "out"
    args = [*files, "--out", out, "--model", tiny_model.path, "--pixel-size-nm", "0.02"]
    code, err = _run(args, capsys)
    assert code == 0, err
    summary = pd.read_csv(out / SUMMARY_NAME)
    assert summary["imaging"].tolist() == ["stem", "hrtem"]


def test_summary_records_the_threshold_and_contrast_per_file(tmp_path, capsys):
    """The summary says per file which threshold was used (the card's, or --threshold
    for all) and the columns' contrast the finder worked with."""
    model = export_tiny_atoms_model(
        tmp_path / "m", "atoms_cli_card", postprocess={"threshold": 0.4}
    )
    folder = tmp_path / "in"
    folder.mkdir()
    cal = Calibration.from_pixel_size_nm(PS)
    true = hex_lattice_px((96, 96), 0.25 / PS, margin_px=2, seed=1)
    rng = np.random.default_rng(1)
    clean = rng.poisson(render_columns((96, 96), true, 0.04 / PS, 2000, 200)).astype(np.float32)
    noisy = rng.poisson(render_columns((96, 96), true, 0.04 / PS, 3, 1)).astype(np.float32)
    write_image_tiff(folder / "clean.tif", clean, cal)
    write_image_tiff(folder / "noisy.tif", noisy, cal)
    out = tmp_path / "out"
    code, err = _run([folder, "--out", out, "--model", model.path], capsys)
    assert code == 0, err
    summary = pd.read_csv(out / SUMMARY_NAME)
    assert summary["threshold"].tolist() == [0.4, 0.4]
    assert summary["threshold_from"].tolist() == ["model card", "model card"]
    assert summary["contrast"].tolist() == ["bright", "bright"]
    code, err = _run(
        [folder, "--out", out, "--model", model.path, "--threshold", "0.3", "--overwrite"], capsys
    )
    assert code == 0, err
    again = pd.read_csv(out / SUMMARY_NAME)
    assert again["threshold"].tolist() == [0.3, 0.3]
    assert again["threshold_from"].tolist() == ["given", "given"]


def test_material_pins_the_estimate_of_uncalibrated_files(folder, tmp_path, tiny_model, capsys):
    """``--material`` reaches the pixel-size estimate (find_atoms' ``material``); a name
    outside the catalogue is a usage error naming the flag."""
    from napari_atomseg.backend import get_model
    from napari_atomseg.backend.scale import estimate_pixel_size_nm

    out = tmp_path / "out"
    model = str(tiny_model.path)
    args = [folder / "plain.tif", "--out", out, "--model", model, "--threshold", "0.05"]
    code, err = _run([*args, "--material", "MoS2"], capsys)
    assert code == 0, err
    row = pd.read_csv(out / SUMMARY_NAME).iloc[0]
    card = get_model(model).card
    assert bool(row["pixel_size_estimated"])
    assert row["pixel_size_nm"] == pytest.approx(estimate_pixel_size_nm(_image(3), card, "MoS2"))
    direct = find_atoms(_image(3), None, model=model, threshold=0.05, material="MoS2")
    assert direct.attrs["pixel_size_nm"] == pytest.approx(row["pixel_size_nm"])
    code, err = _run([*args, "--material", "unobtainium", "--overwrite"], capsys)
    assert code == 2 and "--material" in err and "graphene" in err
