"""`napari-atomseg segment` / `sort` and the ranking table, on TIFF files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_atomseg.cli import main
from napari_atomseg.io import read_image
from napari_atomseg.segmentation.sorting import rank_images, ranking_table
from tests._synth import contaminated_lattice, disc

PIXEL_NM = 0.025


def _write(path, image):
    tifffile.imwrite(
        path,
        image.astype(np.float32),
        imagej=True,
        resolution=(1 / PIXEL_NM, 1 / PIXEL_NM),
        metadata={"unit": "nm"},
    )


@pytest.fixture
def folder(tmp_path):
    """Three images with 0 %, ~4 % and ~20 % contamination, and a broken file."""
    d = tmp_path / "images"
    d.mkdir()
    shape = (192, 192)
    for name, radius in (("clean", 0), ("little", 22), ("lots", 48)):
        mask = disc(shape, (96, 96), radius) if radius else np.zeros(shape, bool)
        image, _ = contaminated_lattice(shape, mask=mask, seed=radius)
        _write(d / f"{name}.tif", image)
    (d / "broken.tif").write_bytes(b"II*\x00 this is not a tiff")
    (d / "notes.txt").write_text("ignored: not an image format")
    return d


def test_segment_cli_writes_masks_and_ranking(folder, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["segment", str(folder), "--method", "bragg", "--out", str(out)])
    assert code == 1  # broken.tif failed, the others went on
    err = capsys.readouterr().err
    assert "broken.tif" in err and "error" in err
    table = pd.read_csv(out / "segmentation.csv")
    ok = table[table["error"].isna()]
    assert list(ok["file"].map(lambda f: f.split("/")[-1])) == [
        "clean.tif",
        "little.tif",
        "lots.tif",
    ]
    assert list(ok["rank"]) == [1, 2, 3]
    assert ok["fraction_amorphous"].is_monotonic_increasing
    assert ok.iloc[2]["fraction_amorphous"] == pytest.approx(np.pi * 48**2 / 192**2, abs=0.04)
    assert table[table["error"].notna()]["rank"].isna().all()
    labels, cal = read_image(out / "lots_labels.tif")
    assert labels.shape == (192, 192) and set(np.unique(labels)) <= {0, 1, 2}
    assert cal.pixel_size_nm == pytest.approx(PIXEL_NM, rel=1e-4)
    with tifffile.TiffFile(out / "lots_labels.tif") as tif:
        classes = json.loads(tif.imagej_metadata["atomseg_classes"])
    assert classes == {"0": "crystal", "1": "amorphous", "2": "vacuum"}
    # A second run into the same --out skips what is finished (resume), and says so.
    assert main(["segment", str(folder / "clean.tif"), "--method", "bragg", "--out", str(out)]) == 0
    assert "1 already done" in capsys.readouterr().err
    assert (
        main(
            [
                "segment",
                str(folder / "clean.tif"),
                "--method",
                "bragg",
                "--out",
                str(out),
                "--overwrite",
                "-o",
                "mask_threshold=100",
            ]
        )
        == 0
    )


def test_sort_cli_prints_and_writes_csv(folder, tmp_path, capsys):
    csv = tmp_path / "rank.csv"
    code = main(["sort", str(folder), "--method", "bragg", "--csv", str(csv)])
    assert code == 1
    printed = capsys.readouterr().out
    assert printed.index("clean.tif") < printed.index("little.tif") < printed.index("lots.tif")
    assert len(pd.read_csv(csv)) == 4


def test_bad_option_is_a_usage_error(folder, tmp_path, capsys):
    code = main(
        [
            "segment",
            str(folder),
            "--method",
            "bragg",
            "--out",
            str(tmp_path / "o"),
            "-o",
            "nonsense",
        ]
    )
    assert code == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_rank_images_api_and_table_order(folder):
    table = rank_images(sorted(folder.glob("*.tif")), method="bragg")
    assert list(table.columns[:2]) == ["rank", "file"]
    assert table.iloc[-1]["file"].endswith("broken.tif")
    rows = [
        {
            "file": "a",
            "fraction_crystal": 0.5,
            "fraction_amorphous": 0.5,
            "fraction_vacuum": 0,
            "pixel_size_nm": None,
            "pixel_size_estimated": False,
            "method": "bragg",
            "error": "",
        },
        {"file": "b", "error": "unreadable"},
        {
            "file": "c",
            "fraction_crystal": 0.9,
            "fraction_amorphous": 0.1,
            "fraction_vacuum": 0,
            "pixel_size_nm": None,
            "pixel_size_estimated": False,
            "method": "bragg",
            "error": "",
        },
    ]
    ranked = ranking_table(rows)
    assert list(ranked["file"]) == ["c", "a", "b"]
    assert list(ranked["rank"].astype("object")) == [1, 2, pd.NA]


def test_plain_pictures_are_read_uncalibrated(tmp_path, capsys):
    """PNG files (like the published graphene set) are ranked too, without a pixel size."""
    import imageio.v3 as iio

    from napari_atomseg.segmentation.sorting import read_any, supported_files

    d = tmp_path / "png"
    d.mkdir()
    shape = (160, 160)
    for name, radius in (("clean", 0), ("lots", 45)):
        mask = disc(shape, (80, 80), radius) if radius else np.zeros(shape, bool)
        image, _ = contaminated_lattice(shape, mask=mask, seed=radius)
        grey = np.clip((image - image.min()) / np.ptp(image) * 255, 0, 255).astype(np.uint8)
        iio.imwrite(d / f"{name}.png", grey)
    (d / "notes.txt").write_text("not an image")
    files = supported_files(d)
    assert [f.name for f in files] == ["clean.png", "lots.png"]
    image, cal = read_any(files[1])  # (napari_atomseg.io's picture reader)
    np.testing.assert_array_equal(image, iio.imread(files[1]))
    assert cal.pixel_size_nm is None
    assert main(["sort", str(d), "--method", "bragg"]) == 0
    out = capsys.readouterr().out
    assert out.index("clean.png") < out.index("lots.png")  # best (cleanest) first


def test_particles_write_instances_and_a_table(tmp_path, capsys):
    from napari_atomseg.simulation.bf_particles import random_bf_parameters, render_bf_particles

    d = tmp_path / "bf"
    d.mkdir()
    params = random_bf_parameters(
        np.random.default_rng(8), diameter_px=(9, 12), shape_px=(128, 128)
    )
    image = render_bf_particles(params).image
    _write(d / "bf.tif", image)
    out = tmp_path / "out"
    code = main(["segment", str(d), "--task", "particles", "--method", "bragg", "--out", str(out)])
    assert code == 0
    table = pd.read_csv(out / "segmentation.csv")
    assert "n_particles" in table and "warnings" in table and "pixel_size_source" in table
    instances, cal = read_image(out / "bf_instances.tif")
    particles = pd.read_csv(out / "bf_particles.csv")
    assert int(instances.max()) == len(particles) == int(table["n_particles"].iloc[0])
    assert {"area_nm2", "equivalent_diameter_nm", "centroid_y_nm"} <= set(particles.columns)
    assert cal.pixel_size_nm == pytest.approx(PIXEL_NM)
