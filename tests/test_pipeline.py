"""The main job (pipeline.process_image and `napari-atomseg demo`) end to end.

Plumbing is tested with a tiny untrained model and the Bragg filter, so these tests do not
depend on the shipped weights; tests/test_shipped_models.py covers those.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from napari_atomseg.errors import FileWriteError, InputError
from napari_atomseg.io import Calibration, read_image, read_points_csv, write_image_tiff
from napari_atomseg.pipeline import flag_atoms, process_image
from tests._models import export_tiny_atoms_model

PS = 0.02


@pytest.fixture(scope="module")
def tiny_atoms_model(tmp_path_factory):
    return export_tiny_atoms_model(tmp_path_factory.mktemp("model"), "atoms_tiny_pipeline")


@pytest.fixture(scope="module")
def micrograph():
    from napari_atomseg.simulation import SimulationParameters, simulate

    sim = simulate(
        SimulationParameters(
            material="MoS2",
            mode="haadf",
            shape_px=(192, 192),
            pixel_size_nm=PS,
            seed=3,
            contamination_coverage=0.3,
        )
    )
    return sim


def test_flag_atoms_marks_columns_on_the_flagged_class():
    atoms = pd.DataFrame({"y_px": [1.2, 5.6, 9.0], "x_px": [1.0, 5.4, 9.4], "confidence": 1.0})
    labels = np.zeros((10, 10), np.uint8)
    labels[4:7, 4:7] = 1
    labels[9, 9] = 2
    out = flag_atoms(atoms, labels, ("crystal", "amorphous", "vacuum"))
    assert out["in_contamination"].tolist() == [False, True, False]
    assert out["region"].tolist() == ["crystal", "amorphous", "vacuum"]
    assert "in_contamination" not in atoms  # input untouched
    empty = flag_atoms(atoms.iloc[:0], labels, ("crystal", "amorphous", "vacuum"))
    assert len(empty) == 0 and "in_contamination" in empty


def test_process_image_writes_consistent_results(tmp_path, micrograph, tiny_atoms_model):
    img = micrograph.image
    before = img.copy()
    cal = Calibration.from_pixel_size_nm(PS)
    res = process_image(
        img,
        cal,
        tmp_path,
        "mos2",
        atoms_options={"model": str(tiny_atoms_model.path), "threshold": 0.0},
        segment_options={"method": "bragg"},
    )
    np.testing.assert_array_equal(img, before)
    assert len(res.atoms) > 0
    assert set(res.files) == {"atoms_csv", "regions_tif", "summary_json"}
    coords, table = read_points_csv(res.files["atoms_csv"])
    assert len(table) == len(res.atoms)
    for col in ("y_nm", "x_nm", "confidence", "region", "in_contamination"):
        assert col in table.columns
    np.testing.assert_allclose(table["y_nm"], (table["y_px"]) * PS, rtol=0, atol=1e-6)
    # every flag agrees with the written label image
    labels, lcal = read_image(res.files["regions_tif"])
    assert labels.shape == img.shape and lcal.pixel_size_nm == pytest.approx(PS)
    r = np.rint(coords[:, 0]).astype(int).clip(0, img.shape[0] - 1)
    c = np.rint(coords[:, 1]).astype(int).clip(0, img.shape[1] - 1)
    np.testing.assert_array_equal(table["in_contamination"].to_numpy(), labels[r, c] == 1)
    summary = json.loads(res.files["summary_json"].read_text())
    assert summary["n_columns"] == len(res.atoms)
    assert summary["n_columns_in_contamination"] == int(table["in_contamination"].sum())
    assert sum(summary["class_fractions"].values()) == pytest.approx(1.0, abs=1e-5)
    # How the columns were found, for a batch run's records.
    finder = summary["atom_finder"]
    assert finder["threshold"] == 0.0 and finder["imaging"] == "unknown"
    assert finder["model"] == res.atoms.attrs["model"]
    assert finder["warnings"] == res.atoms.attrs["warnings"]


def test_process_image_never_overwrites_its_input(tmp_path, micrograph, tiny_atoms_model):
    cal = Calibration.from_pixel_size_nm(PS)
    src = write_image_tiff(tmp_path / "x_regions.tif", micrograph.image, cal)
    before = src.read_bytes()
    with pytest.raises(FileWriteError, match="input file"):
        process_image(
            micrograph.image,
            cal,
            tmp_path,
            "x",
            atoms_options={"model": str(tiny_atoms_model.path), "threshold": 0.0},
            segment_options={"method": "bragg"},
            inputs=(src,),
        )
    assert src.read_bytes() == before


def test_process_image_rejects_bad_names_and_images(tmp_path):
    with pytest.raises(InputError, match="name"):
        process_image(np.ones((64, 64)), None, tmp_path, "a/b")
    bad = np.full((64, 64), np.nan)
    with pytest.raises(InputError):
        process_image(bad, None, tmp_path, "nan", segment_options={"method": "bragg"})


def test_demo_cli_reports_unreadable_files_and_goes_on(tmp_path, capsys):
    from napari_atomseg.cli import main

    garbage = tmp_path / "broken.dm4"
    garbage.write_bytes(b"not a dm4 file at all" * 10)
    code = main([
        "demo", str(garbage), "--out", str(tmp_path / "out"), "--no-viewer",
        "--segment-method", "bragg",
    ])  # fmt: skip
    assert code == 1
    assert "broken.dm4" in capsys.readouterr().err


def test_launch_layer_data_keeps_scale_and_features(tmp_path, micrograph, tiny_atoms_model):
    from napari.components import ViewerModel

    from napari_atomseg._napari.launch import result_layer_data

    res = process_image(
        micrograph.image,
        Calibration.from_pixel_size_nm(PS),
        tmp_path,
        "v",
        atoms_options={"model": str(tiny_atoms_model.path), "threshold": 0.0},
        segment_options={"method": "bragg"},
    )
    viewer = ViewerModel()
    for data, kwargs, kind in result_layer_data(res, micrograph.image):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    image, points, labels = viewer.layers
    assert tuple(image.scale) == pytest.approx((PS, PS))
    assert tuple(points.scale) == pytest.approx((PS, PS))
    assert len(points.data) == len(res.atoms)
    assert points.features["in_contamination"].dtype == bool
    assert labels.metadata["class_names"] == ["crystal", "amorphous", "vacuum"]


def test_demo_cli_on_a_png_uses_the_default_and_writes_everything(tmp_path, micrograph):
    """A plain PNG (as published data sets come) runs through the whole main job with the
    shipped models and the one default segmentation method."""
    from skimage.io import imsave

    from napari_atomseg.cli import main

    img = micrograph.image
    png = tmp_path / "mos2.png"
    scaled = (255 * (img - img.min()) / (img.max() - img.min())).astype(np.uint8)
    imsave(png, scaled, check_contrast=False)
    out = tmp_path / "out"
    code = main(["demo", str(png), "--out", str(out), "--no-viewer", "--pixel-size-nm", str(PS)])
    assert code == 0
    summary = json.loads((out / "mos2_summary.json").read_text())
    assert summary["pixel_size_nm"] == pytest.approx(PS)
    assert summary["n_columns"] > 50
    assert summary["class_fractions"]["crystal"] > 0.5  # a clean lattice stays crystal
    _, table = read_points_csv(out / "mos2_atoms.csv")
    assert len(table) == summary["n_columns"]
    assert png.read_bytes()[:4] == b"\x89PNG"  # input untouched
    assert summary["segmentation"]["method"] in ("auto", "bragg (fallback)")


def test_uncalibrated_image_gets_one_estimate_for_both_steps(
    tmp_path, micrograph, tiny_atoms_model
):
    res = process_image(
        micrograph.image,
        None,
        tmp_path,
        "mos2",
        atoms_options={"model": str(tiny_atoms_model.path)},
        segment_options={"method": "bragg"},
        material="MoS2",
    )
    assert res.scale is not None and res.scale.material == "MoS2"
    assert res.pixel_size_nm == pytest.approx(PS, rel=0.03)
    assert res.atoms.attrs["pixel_size_nm"] == pytest.approx(res.pixel_size_nm)
    summary = json.loads(res.files["summary_json"].read_text())
    assert summary["pixel_size_estimated"] is True
    assert summary["pixel_size_estimate"]["source"] == "material"


def test_no_lattice_means_no_column_in_contamination(tmp_path, tiny_atoms_model):
    """Single atoms on amorphous carbon: the amorphous class is the support; no flags."""
    from napari_atomseg.simulation import SimulationParameters, simulate

    sim = simulate(
        SimulationParameters(scene="single_atoms", mode="haadf", shape_px=(160, 160),
                             pixel_size_nm=0.03, single_atom_density_per_nm2=0.5,
                             support_thickness_nm=4, seed=5)
    )  # fmt: skip
    res = process_image(
        sim.image,
        Calibration.from_pixel_size_nm(0.03),
        tmp_path,
        "pt",
        atoms_options={"model": str(tiny_atoms_model.path), "threshold": 0.05},
    )
    assert res.segmentation["has_lattice"] is False
    assert res.class_fractions["crystal"] == 0.0
    assert not res.atoms["in_contamination"].any()
    assert any("no lattice" in w for w in res.segmentation["warnings"])


class _Stop(Exception):
    pass


@pytest.mark.parametrize(
    ("mode", "given", "expected"),
    [("TEM", None, "hrtem"), ("STEM", None, "stem"), (None, None, None), ("TEM", "stem", "stem")],
)
def test_the_atom_finder_is_told_the_file_s_imaging_mode(
    tmp_path, monkeypatch, mode, given, expected
):
    """STEM or HRTEM comes from the calibration's acquisition mode unless the caller's
    atoms_options name it."""
    import napari_atomseg.atoms as atoms_api

    seen = {}

    def spy(image, pixel_size_nm=None, **options):
        seen.update(options)
        raise _Stop

    monkeypatch.setattr(atoms_api, "find_atoms", spy)
    cal = Calibration.from_pixel_size_nm(0.02)
    if mode:
        cal = cal.with_metadata(acquisition_mode=mode)
    options = {} if given is None else {"imaging": given}
    with pytest.raises(_Stop):
        process_image(np.ones((32, 32)), cal, tmp_path, "x", atoms_options=options)
    assert seen["imaging"] == expected


def test_demo_keeps_the_file_s_acquisition_mode_through_a_pixel_size_override(tmp_path, micrograph):
    """--pixel-size-nm rebuilds the calibration; the file's acquisition mode (TEM here)
    must survive it, reach the atom finder and be recorded in the summary."""
    from napari_atomseg.cli import main

    tif = tmp_path / "tem.tif"
    cal = Calibration.from_pixel_size_nm(0.05).with_metadata(acquisition_mode="TEM")
    write_image_tiff(tif, micrograph.image, cal)
    out = tmp_path / "out"
    args = ["demo", str(tif), "--out", str(out), "--no-viewer", "--pixel-size-nm", str(PS)]
    assert main(args) == 0
    summary = json.loads((out / "tem_summary.json").read_text())
    assert summary["pixel_size_nm"] == pytest.approx(PS)
    assert summary["atom_finder"]["imaging"] == "hrtem"
    assert summary["atom_finder"]["model"] == "atoms_default"
